// Tests of how a model comes to run in BF16/INT8 and says so: the probe
// batch's sources (sample_input.npy files), the FP32 fallback on a CPU
// without native support (forced through EngineOptions::cpu_support), the
// config fields and their validation, and precision names.
#include <filesystem>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/model_config.h"
#include "engine/probe.h"
#include "engine/repository.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/precision_test_util.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"
#include "tests/util/tensor_files.h"

namespace nnserve::engine {
namespace {

using formats::DType;
using formats::Tensor;

using ::nnserve::testing::BuildRandomModel;
using ::nnserve::testing::FileFormat;
using ::nnserve::testing::NpyBytes;
using ::nnserve::testing::RandomModel;
using ::nnserve::testing::RandomValues;
using ::nnserve::testing::ReferenceForward;
using ::nnserve::testing::ScopedTempDir;
using ::nnserve::testing::WriteFile;
using ::nnserve::testing::WriteModelDir;
using ::testing::HasSubstr;

// The probe batch is the version's sample_input.npy, else the model
// directory's, else generated; a malformed one fails a reduced-precision
// load and is not read for an FP32 one.
TEST(PrecisionProbeTest, SampleInputFilesAreTheProbeBatch) {
  if (!Native(Precision::kInt8)) GTEST_SKIP() << NotNative(Precision::kInt8);
  RandomModel m = BuildRandomModel(
      "sampled", 6, {{5, Activation::kRelu}, {3, Activation::kSoftmax}},
      WeightLayout::kOutIn, 3);
  m.config.set_precision(v1::INT8);
  ScopedTempDir repo;
  const std::filesystem::path dir =
      WriteModelDir(repo.path(), m, 2, FileFormat::kNpy, DType::kF32);
  auto sample = [](int64_t rows, int64_t cols) {
    return NpyBytes(
        Tensor{{rows, cols},
               RandomValues(static_cast<size_t>(rows * cols), 1.0f, 5)},
        DType::kF32);
  };
  auto load = [&] { return LoadModel(dir, 0, EngineOptions{}); };

  absl::StatusOr<std::shared_ptr<const Model>> model = load();
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT((*model)->info().precision.probe_source, HasSubstr("generated"));

  WriteFile(dir / "sample_input.npy", sample(5, 6));
  model = load();
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info().precision.probe_source,
            (dir / "sample_input.npy").string());
  EXPECT_EQ((*model)->info().precision.probe_rows, 5);

  WriteFile(dir / "2" / "sample_input.npy", sample(3, 6));
  model = load();
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info().precision.probe_source,
            (dir / "2" / "sample_input.npy").string());
  EXPECT_EQ((*model)->info().precision.probe_rows, 3);

  // More rows than kMaxProbeRows are cut.
  WriteFile(dir / "2" / "sample_input.npy", sample(kMaxProbeRows + 10, 6));
  model = load();
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info().precision.probe_rows, kMaxProbeRows);

  WriteFile(dir / "2" / "sample_input.npy", sample(4, 7));
  model = load();
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("sample_input.npy: shape is [4, 7], expected [rows, "
                        "6] or [6]"));
  EngineOptions fp32;
  fp32.precision_override = Precision::kFp32;
  EXPECT_TRUE(LoadModel(dir, 0, fp32).ok());
}

// A CPU without native support (forced through EngineOptions::cpu_support):
// the model loads in FP32, says why, runs no probe and is FP32-exact.
TEST(PrecisionFallbackTest, LoadsInFp32WithTheReason) {
  const RandomModel m = Mlp784();
  for (Precision precision : {Precision::kBf16, Precision::kInt8}) {
    EngineOptions options = WithPrecision(precision);
    options.cpu_support = PrecisionSupport{"avx512_core", false, false};
    std::shared_ptr<const Model> model = CreateOrFail(m, options);
    ASSERT_NE(model, nullptr);
    const PrecisionReport& report = model->info().precision;
    EXPECT_EQ(report.requested, precision);
    EXPECT_EQ(report.effective, Precision::kFp32);
    EXPECT_EQ(report.isa, "avx512_core");
    EXPECT_THAT(report.fallback_reason,
                HasSubstr(std::string(PrecisionName(precision)) +
                          " requested, but oneDNN has no native"));
    EXPECT_THAT(report.fallback_reason, HasSubstr("running FP32"));
    EXPECT_FALSE(report.probed());
    for (const LayerPrecision& layer : report.layers) {
      EXPECT_EQ(layer.relative_l2_deviation, 0);
      EXPECT_THAT(layer.kernel, ::testing::Not(HasSubstr("bf16")));
      EXPECT_THAT(layer.kernel, ::testing::Not(HasSubstr("int8")));
    }
    const std::vector<float> input = RandomValues(784 * 5, 1.0f, 8);
    std::vector<float> output(50);
    ASSERT_TRUE(model->Forward(input, 5, output).ok());
    EXPECT_LE(::nnserve::testing::MaxRowRelativeError(
                  output, ReferenceForward(m.config, m.tensors, input, 5), 5),
              1e-5);
  }
}

// Only the precision the CPU lacks falls back.
TEST(PrecisionFallbackTest, SupportIsPerPrecision) {
  if (!Native(Precision::kBf16)) GTEST_SKIP() << NotNative(Precision::kBf16);
  const RandomModel m = BuildRandomModel("p", 8, {{4, Activation::kRelu}},
                                         WeightLayout::kOutIn, 2);
  EngineOptions options = WithPrecision(Precision::kBf16);
  options.cpu_support = PrecisionSupport{"", true, false};
  std::shared_ptr<const Model> model = CreateOrFail(m, options);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->info().precision.effective, Precision::kBf16);
  EXPECT_EQ(model->info().precision.isa, DetectedPrecisionSupport().isa);
  options.precision_override = Precision::kInt8;
  model = CreateOrFail(m, options);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->info().precision.effective, Precision::kFp32);
}

TEST(PrecisionConfigTest, ConfigFieldsReachTheModel) {
  if (!Native(Precision::kInt8)) GTEST_SKIP() << NotNative(Precision::kInt8);
  RandomModel m = BuildRandomModel("c", 8, {{4, Activation::kRelu}},
                                   WeightLayout::kOutIn, 2);
  m.config.set_precision(v1::INT8);
  std::shared_ptr<const Model> model = CreateOrFail(m, {});
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->info().precision.requested, Precision::kInt8);
  EXPECT_EQ(model->info().precision.effective, Precision::kInt8);
  // The override wins over the config.
  EngineOptions options;
  options.precision_override = Precision::kFp32;
  model = CreateOrFail(m, options);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->info().precision.requested, Precision::kFp32);
  EXPECT_FALSE(model->info().precision.probed());
}

TEST(PrecisionConfigTest, ParsesAndValidates) {
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(
      "precision: BF16 max_precision_deviation: 0.05", "c.pbtxt");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->precision(), v1::BF16);
  EXPECT_FLOAT_EQ(config->max_precision_deviation(), 0.05f);

  config = ParseModelConfig("precision: FP16", "c.pbtxt");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr("expected one of FP32, BF16, INT8"));

  RandomModel m = BuildRandomModel("v", 3, {{2, Activation::kRelu}},
                                   WeightLayout::kOutIn, 1);
  m.config.set_max_precision_deviation(-0.5f);
  absl::Status status = ValidateModelConfig(m.config, "c.pbtxt");
  EXPECT_THAT(status.message(),
              HasSubstr("max_precision_deviation is -0.5, expected a finite "
                        "value >= 0 (0 = no limit)"));
  m.config.set_max_precision_deviation(0);
  m.config.set_precision(static_cast<v1::Precision>(7));
  status = ValidateModelConfig(m.config, "c.pbtxt");
  EXPECT_THAT(status.message(),
              HasSubstr("precision is unknown value 7, expected FP32, BF16 "
                        "or INT8"));
}

TEST(PrecisionNamesTest, ParseAndPrint) {
  EXPECT_EQ(ParsePrecision("int8"), Precision::kInt8);
  EXPECT_EQ(ParsePrecision("BF16"), Precision::kBf16);
  EXPECT_EQ(ParsePrecision("Fp32"), Precision::kFp32);
  EXPECT_EQ(ParsePrecision("fp16"), std::nullopt);
  EXPECT_EQ(PrecisionName(Precision::kInt8), "INT8");
  EXPECT_EQ(ToConfigPrecision(Precision::kBf16), v1::BF16);
  EXPECT_EQ(FromConfigPrecision(v1::INT8), Precision::kInt8);
  EXPECT_EQ(FromConfigPrecision(9), std::nullopt);
}

}  // namespace
}  // namespace nnserve::engine
