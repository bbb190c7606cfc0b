// The FP32 fallback on a CPU without native BF16/INT8, as oneDNN itself
// sees it: this test binary caps oneDNN's ISA at plain AVX-512
// (ONEDNN_MAX_CPU_ISA=AVX512_CORE, set before oneDNN first reads it), so
// DetectedPrecisionSupport() must report no BF16/INT8, and models that ask
// for them must load in FP32 with the reason and compute FP32 results.
// (precision_test.cc forces the same through EngineOptions::cpu_support.)
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"

namespace nnserve::engine {
namespace {

// Runs during static initialization, before any test touches oneDNN.
const bool kIsaCapped = [] {
  return setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE", /*overwrite=*/1) == 0;
}();

using ::nnserve::testing::BuildRandomModel;
using ::nnserve::testing::RandomModel;
using ::nnserve::testing::RandomValues;
using ::testing::HasSubstr;

TEST(PrecisionIsaFallbackTest, CappedIsaHasNoNativeReducedPrecision) {
  ASSERT_TRUE(kIsaCapped);
  const PrecisionSupport& support = DetectedPrecisionSupport();
  // On a CPU older than AVX-512 the cap changes nothing; the point holds.
  EXPECT_THAT(support.isa, ::testing::AnyOf("avx512_core", "avx2", "avx",
                                            "sse41", "avx2_vnni"));
  EXPECT_FALSE(support.bf16);
  EXPECT_FALSE(support.int8);
}

TEST(PrecisionIsaFallbackTest, ModelsLoadInFp32AndSayWhy) {
  RandomModel m = BuildRandomModel(
      "cap", 30, {{20, Activation::kGelu}, {5, Activation::kSoftmax}},
      WeightLayout::kInOut, 4);
  for (v1::Precision precision : {v1::BF16, v1::INT8}) {
    m.config.set_precision(precision);
    absl::StatusOr<ModelSpec> spec = BuildModelSpec(m.config, m.tensors, "mem");
    ASSERT_TRUE(spec.ok()) << spec.status();
    absl::StatusOr<std::shared_ptr<const Model>> model =
        Model::Create(*std::move(spec), 1, EngineOptions{});
    ASSERT_TRUE(model.ok()) << model.status();
    const PrecisionReport& report = (*model)->info().precision;
    EXPECT_EQ(ToConfigPrecision(report.requested), precision);
    EXPECT_EQ(report.effective, Precision::kFp32);
    EXPECT_THAT(report.fallback_reason,
                HasSubstr("matmul on this CPU (effective ISA " +
                          DetectedPrecisionSupport().isa + "); running FP32"));
    EXPECT_FALSE(report.probed());
    const std::vector<float> input = RandomValues(30 * 9, 1.0f, 2);
    std::vector<float> output(45);
    ASSERT_TRUE((*model)->Forward(input, 9, output).ok());
    EXPECT_LE(
        ::nnserve::testing::MaxRowRelativeError(
            output,
            ::nnserve::testing::ReferenceForward(m.config, m.tensors, input, 9),
            9),
        1e-5);
  }
}

}  // namespace
}  // namespace nnserve::engine
