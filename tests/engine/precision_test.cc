// Tests for BF16 and INT8 execution (engine/precision.h, batch_plan.h):
// accuracy against the float64 reference (tests/util/reference.h) for every
// activation, both weight layouts and several batch sizes; the reduced
// kernels really run; the load-time deviation report;
// max_precision_deviation; concurrency. (Probe files, fallback and config:
// precision_config_test.cc.)
//
// Error measure: relative L2 of the whole output batch,
// ||engine - reference||_2 / ||reference||_2, at most 2e-2 for BF16 and
// 5e-2 for INT8 (issue 12's targets). Measured on this suite's models they
// are ~3e-3 and ~1e-2; a wrong scale, bias or activation is off by > 0.1.
//
// The tests need a CPU that runs the precision natively (oneDNN's brgemm
// kernels); elsewhere they are skipped, and the fallback tests cover what
// such a CPU does.
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "engine/model.h"
#include "engine/probe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/precision_test_util.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"

namespace nnserve::engine {
namespace {

using ::nnserve::testing::BuildRandomModel;
using ::nnserve::testing::RandomModel;
using ::nnserve::testing::RandomValues;
using ::nnserve::testing::ReferenceForward;
using ::testing::HasSubstr;

// Relative L2 error of `rows` random rows (uniform in [-1, 1]).
double ForwardError(const Model& model, const RandomModel& m, int64_t rows,
                    uint32_t seed) {
  const std::vector<float> input =
      RandomValues(static_cast<size_t>(rows * model.input_size()), 1.0f, seed);
  std::vector<float> output(static_cast<size_t>(rows * model.output_size()),
                            std::nanf(""));
  absl::Status status = model.Forward(input, rows, output);
  EXPECT_TRUE(status.ok()) << status;
  return RelativeL2(output, ReferenceForward(m.config, m.tensors, input, rows));
}

struct ActivationCase {
  Activation activation;
  std::optional<float> alpha;
};

class PrecisionAccuracyTest
    : public ::testing::TestWithParam<
          std::tuple<Precision, ActivationCase, WeightLayout>> {};

TEST_P(PrecisionAccuracyTest, MatchesReferenceForEveryBatchSize) {
  const auto [precision, act, layout] = GetParam();
  if (!Native(precision)) GTEST_SKIP() << NotNative(precision);
  // As in model_test: odd widths, the activation on every layer, one layer
  // without bias.
  const RandomModel m =
      BuildRandomModel("act", 37,
                       {{64, act.activation, true, act.alpha},
                        {45, act.activation, false, act.alpha},
                        {10, act.activation, true, act.alpha}},
                       layout, 11);
  std::shared_ptr<const Model> model =
      CreateOrFail(m, WithPrecision(precision));
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->info().precision.effective, precision);
  for (int64_t rows : {1, 7, 64, 1000}) {
    EXPECT_LE(ForwardError(*model, m, rows, static_cast<uint32_t>(rows)),
              Tolerance(precision))
        << "rows=" << rows;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllActivations, PrecisionAccuracyTest,
    ::testing::Combine(
        ::testing::Values(Precision::kBf16, Precision::kInt8),
        ::testing::Values(ActivationCase{Activation::kIdentity, {}},
                          ActivationCase{Activation::kRelu, {}},
                          ActivationCase{Activation::kLeakyRelu, 0.2f},
                          ActivationCase{Activation::kElu, {}},
                          ActivationCase{Activation::kSigmoid, {}},
                          ActivationCase{Activation::kTanh, {}},
                          ActivationCase{Activation::kGelu, {}},
                          ActivationCase{Activation::kSoftmax, {}}),
        ::testing::Values(WeightLayout::kOutIn, WeightLayout::kInOut)),
    [](const auto& info) {
      return std::string(PrecisionName(std::get<0>(info.param))) + "_" +
             std::string(ActivationName(std::get<1>(info.param).activation)) +
             "_" + std::string(WeightLayoutName(std::get<2>(info.param)));
    });

class PrecisionTest : public ::testing::TestWithParam<Precision> {};

TEST_P(PrecisionTest, WideModelMatchesReferenceAndRunsReducedKernels) {
  const Precision precision = GetParam();
  if (!Native(precision)) GTEST_SKIP() << NotNative(precision);
  const RandomModel m = Mlp784();
  std::shared_ptr<const Model> model =
      CreateOrFail(m, WithPrecision(precision));
  ASSERT_NE(model, nullptr);
  const PrecisionReport& report = model->info().precision;
  EXPECT_EQ(report.requested, precision);
  EXPECT_EQ(report.effective, precision);
  EXPECT_EQ(report.fallback_reason, "");
  // oneDNN names the data type in its kernel: "brg:avx512_core_amx_int8",
  // "brg:avx512_core_bf16", ...
  const std::string type = precision == Precision::kBf16 ? "bf16" : "int8";
  ASSERT_EQ(report.layers.size(), 3u);
  for (const LayerPrecision& layer : report.layers) {
    EXPECT_THAT(layer.kernel, HasSubstr("brg:")) << layer.name;
    if (layer.kernel.find("amx") != std::string::npos) {
      EXPECT_THAT(layer.kernel, HasSubstr(type)) << layer.name;
    }
  }
  for (int64_t rows : {1, 3, 64, 300}) {
    EXPECT_LE(ForwardError(*model, m, rows, 100 + rows), Tolerance(precision))
        << rows;
  }
  // Not secretly FP32: the outputs differ from the FP32 model's.
  std::shared_ptr<const Model> fp32 = CreateOrFail(m, {});
  ASSERT_NE(fp32, nullptr);
  const std::vector<float> input = RandomValues(784 * 8, 1.0f, 3);
  std::vector<float> reduced_out(80), fp32_out(80);
  ASSERT_TRUE(model->Forward(input, 8, reduced_out).ok());
  ASSERT_TRUE(fp32->Forward(input, 8, fp32_out).ok());
  EXPECT_NE(reduced_out, fp32_out);
}

// The report's last-layer deviation is the relative L2 distance between
// this model's and an FP32 model's outputs on the same (generated) probe.
TEST_P(PrecisionTest, DeviationReportMatchesAnIndependentComparison) {
  const Precision precision = GetParam();
  if (!Native(precision)) GTEST_SKIP() << NotNative(precision);
  const RandomModel m = BuildRandomModel("dev", 50,
                                         {{40, Activation::kTanh},
                                          {30, Activation::kGelu},
                                          {6, Activation::kSoftmax}},
                                         WeightLayout::kInOut, 21);
  std::shared_ptr<const Model> model =
      CreateOrFail(m, WithPrecision(precision));
  std::shared_ptr<const Model> fp32 = CreateOrFail(m, {});
  ASSERT_NE(model, nullptr);
  ASSERT_NE(fp32, nullptr);
  const PrecisionReport& report = model->info().precision;
  EXPECT_TRUE(report.probed());
  EXPECT_EQ(report.probe_rows, kGeneratedProbeRows);
  EXPECT_THAT(report.probe_source, HasSubstr("generated"));
  ASSERT_EQ(report.layers.size(), 3u);
  EXPECT_EQ(report.layers[0].name, "fc0");
  EXPECT_EQ(report.layers[2].name, "fc2");
  for (const LayerPrecision& layer : report.layers) {
    EXPECT_GT(layer.relative_l2_deviation, 0) << layer.name;
    EXPECT_LT(layer.relative_l2_deviation, Tolerance(precision)) << layer.name;
    EXPECT_GT(layer.max_abs_deviation, 0) << layer.name;
  }

  absl::StatusOr<ModelSpec> spec = BuildModelSpec(m.config, m.tensors, "mem");
  ASSERT_TRUE(spec.ok());
  const ProbeBatch probe = GenerateProbeBatch(*spec);
  std::vector<float> reduced_out(static_cast<size_t>(probe.rows * 6));
  std::vector<float> fp32_out(reduced_out.size());
  ASSERT_TRUE(model->Forward(probe.values, probe.rows, reduced_out).ok());
  ASSERT_TRUE(fp32->Forward(probe.values, probe.rows, fp32_out).ok());
  LayerPrecision independent;
  MeasureDeviation(reduced_out, fp32_out, independent);
  EXPECT_DOUBLE_EQ(report.layers[2].relative_l2_deviation,
                   independent.relative_l2_deviation);
  EXPECT_DOUBLE_EQ(report.layers[2].max_abs_deviation,
                   independent.max_abs_deviation);
}

TEST_P(PrecisionTest, MaxPrecisionDeviationRefusesTheLoadNamingTheLayer) {
  const Precision precision = GetParam();
  if (!Native(precision)) GTEST_SKIP() << NotNative(precision);
  RandomModel m = Mlp784();
  m.config.set_max_precision_deviation(1e-6f);
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Create(m, WithPrecision(precision));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(model.status().message());
  // The first layer already deviates by more than 1e-6.
  EXPECT_THAT(message, HasSubstr("layer 'fc0' (1 of 3)"));
  EXPECT_THAT(message, HasSubstr("max_precision_deviation 1e-06"));
  EXPECT_THAT(message, HasSubstr(std::string(PrecisionName(precision))));

  // A limit above every layer's deviation loads.
  m.config.set_max_precision_deviation(0.1f);
  model = Create(m, WithPrecision(precision));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_FLOAT_EQ((*model)->info().precision.max_precision_deviation, 0.1f);
}

// Each thread's calls get their own quantization scales: concurrent
// forwards give bit-identical results to the same forwards run alone.
TEST_P(PrecisionTest, ConcurrentForwardsEqualSequentialOnes) {
  const Precision precision = GetParam();
  if (!Native(precision)) GTEST_SKIP() << NotNative(precision);
  const RandomModel m = BuildRandomModel("cc", 33,
                                         {{48, Activation::kGelu},
                                          {20, Activation::kLeakyRelu},
                                          {6, Activation::kSoftmax}},
                                         WeightLayout::kOutIn, 9);
  std::shared_ptr<const Model> model =
      CreateOrFail(m, WithPrecision(precision));
  ASSERT_NE(model, nullptr);
  constexpr int kThreads = 6;
  constexpr int kCalls = 30;
  std::vector<std::vector<float>> inputs, expected;
  std::vector<int64_t> rows;
  for (int i = 0; i < kThreads * kCalls; ++i) {
    // Different scales per call: the ranges differ by up to 8x.
    rows.push_back(1 + i % 9);
    inputs.push_back(RandomValues(static_cast<size_t>(rows.back() * 33),
                                  1.0f + static_cast<float>(i % 8), i));
    expected.emplace_back(static_cast<size_t>(rows.back() * 6));
    ASSERT_TRUE(
        model->Forward(inputs.back(), rows.back(), expected.back()).ok());
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) {
        const int i = c * kThreads + t;
        std::vector<float> out(expected[i].size());
        if (!model->Forward(inputs[i], rows[i], out).ok() ||
            out != expected[i]) {
          ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << t;
}

INSTANTIATE_TEST_SUITE_P(Reduced, PrecisionTest,
                         ::testing::Values(Precision::kBf16, Precision::kInt8),
                         [](const auto& info) {
                           return std::string(PrecisionName(info.param));
                         });

}  // namespace
}  // namespace nnserve::engine
