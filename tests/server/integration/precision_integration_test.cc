// BF16 and INT8 models served by the real nnserve binary: Predict in both
// tensor encodings (single calls and concurrent ones merged by dynamic
// batching) stays within the precision's tolerance of the float64
// reference, ModelInfo reports the precision with the per-layer kernels and
// deviations, and the per-layer latency metrics exist for every layer.
//
// Tolerances (relative L2 of the output batch vs the reference): 2e-2 for
// BF16, 5e-2 for INT8, as in tests/engine/precision_test.cc. Skipped on a
// CPU without native support for the precision.
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/precision.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct ServedPrecision {
  RandomModel model;
  engine::Precision precision;
};

double RelativeL2(const std::vector<float>& actual,
                  const std::vector<double>& expected) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
    ref += expected[i] * expected[i];
  }
  return std::sqrt(diff / ref);
}

double Tolerance(engine::Precision precision) {
  return precision == engine::Precision::kBf16 ? 2e-2 : 5e-2;
}

// The repository: "b16" (BF16) and "q8" (INT8), both
// 40 -> 96 GELU -> 48 TANH -> 6 IDENTITY, different weights.
class PrecisionIntegrationTest
    : public SharedServerTest<PrecisionIntegrationTest> {
 public:
  // Run by SharedServerTest::SetUpTestSuite.
  static void SetUpSharedSuite() {
    if (!Supported()) return;  // Tests skip.
    CreateRepository("nnserve_precision_itest");
    models_ = new std::vector<ServedPrecision>();
    uint32_t seed = 70;
    for (auto [name, precision] : {std::pair{"b16", engine::Precision::kBf16},
                                   std::pair{"q8", engine::Precision::kInt8}}) {
      RandomModel model = BuildRandomModel(
          name, 40,
          {LayerDef(96, Activation::kGelu), LayerDef(48, Activation::kTanh),
           LayerDef(6, Activation::kIdentity)},
          WeightLayout::kOutIn, ++seed);
      model.config.set_precision(engine::ToConfigPrecision(precision));
      WriteModelDir(repo_->path(), model, 1, FileFormat::kSafetensors,
                    formats::DType::kF32);
      models_->push_back({std::move(model), precision});
    }
    StartSharedServer({"--threads=2", "--layer-timing=true"});
  }

 protected:
  static void TearDownTestSuite() {
    SharedServerTest::TearDownTestSuite();
    delete models_;
    models_ = nullptr;
  }

  static bool Supported() {
    const engine::PrecisionSupport& support =
        engine::DetectedPrecisionSupport();
    return support.bf16 && support.int8;
  }

  void SetUp() override {
    if (!Supported()) {
      GTEST_SKIP() << "BF16 or INT8 is not native on this CPU (oneDNN ISA "
                   << engine::DetectedPrecisionSupport().isa << ")";
    }
    SharedServerTest::SetUp();
  }

  static RowBatch Rows(int64_t rows, uint32_t seed) {
    RowBatch batch;
    batch.rows = rows;
    batch.cols = 40;
    batch.values = RandomValues(static_cast<size_t>(rows * 40), 2.0f, seed);
    return batch;
  }

  static const Client& client() { return *server_->client; }

  static inline std::vector<ServedPrecision>* models_ = nullptr;
};

TEST_F(PrecisionIntegrationTest, PredictStaysNearTheReferenceInBothEncodings) {
  uint32_t seed = 1;
  for (const ServedPrecision& served : *models_) {
    const std::string& name = served.model.config.name();
    for (Encoding encoding : {Encoding::kValues, Encoding::kRaw}) {
      for (int64_t rows : {1, 7, 64, 200}) {
        SCOPED_TRACE(
            absl::StrCat(name, " rows=", rows,
                         encoding == Encoding::kRaw ? " raw" : " values"));
        const RowBatch batch = Rows(rows, ++seed);
        absl::StatusOr<v1::PredictRequest> request =
            MakePredictRequest(name, 0, batch, encoding);
        ASSERT_TRUE(request.ok()) << request.status();
        absl::StatusOr<v1::PredictResponse> response =
            client().Predict(*request);
        ASSERT_TRUE(response.ok()) << response.status();
        EXPECT_THAT(response->output().shape(), ElementsAre(rows, 6));
        absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
        ASSERT_TRUE(output.ok()) << output.status();
        EXPECT_LE(
            RelativeL2(output->values, ReferenceOutput(served.model, batch)),
            Tolerance(served.precision));
      }
    }
  }
}

// Concurrent one-row calls (merged into shared forward passes by the
// dynamic batcher) each stay within tolerance of their own reference.
TEST_F(PrecisionIntegrationTest, ConcurrentCallsStayNearTheReference) {
  for (const ServedPrecision& served : *models_) {
    const std::string& name = served.model.config.name();
    SCOPED_TRACE(name);
    AsyncPredicts calls(client());
    std::vector<RowBatch> batches;
    for (int i = 0; i < 48; ++i) {
      batches.push_back(Rows(1 + i % 3, 500 + i));
      absl::StatusOr<v1::PredictRequest> request =
          MakePredictRequest(name, 0, batches.back(), Encoding::kRaw);
      ASSERT_TRUE(request.ok()) << request.status();
      calls.Start(*request);
    }
    ASSERT_TRUE(calls.WaitFor(calls.size(), std::chrono::seconds(60)));
    for (size_t i = 0; i < calls.size(); ++i) {
      ASSERT_TRUE(calls[i].status.ok()) << calls[i].status.error_message();
      absl::StatusOr<RowBatch> output =
          DecodeTensor(calls[i].response.output());
      ASSERT_TRUE(output.ok()) << output.status();
      EXPECT_LE(
          RelativeL2(output->values, ReferenceOutput(served.model, batches[i])),
          Tolerance(served.precision))
          << "call " << i;
    }
  }
}

TEST_F(PrecisionIntegrationTest, ModelInfoReportsPrecisionAndDeviations) {
  for (const ServedPrecision& served : *models_) {
    const std::string& name = served.model.config.name();
    SCOPED_TRACE(name);
    absl::StatusOr<v1::ModelInfoResponse> info = client().ModelInfo(name);
    ASSERT_TRUE(info.ok()) << info.status();
    const v1::Precision want = engine::ToConfigPrecision(served.precision);
    EXPECT_EQ(info->requested_precision(), want);
    EXPECT_EQ(info->effective_precision(), want);
    EXPECT_EQ(info->precision_fallback_reason(), "");
    EXPECT_EQ(info->cpu_isa(), engine::DetectedPrecisionSupport().isa);
    EXPECT_THAT(info->precision_probe_source(), HasSubstr("generated"));
    EXPECT_EQ(info->precision_probe_rows(), 64);
    ASSERT_EQ(info->layers_size(), 3);
    for (const v1::LayerInfo& layer : info->layers()) {
      EXPECT_THAT(layer.kernel(), HasSubstr("brg:")) << layer.name();
      EXPECT_GT(layer.precision_relative_l2_deviation(), 0) << layer.name();
      EXPECT_LT(layer.precision_relative_l2_deviation(),
                Tolerance(served.precision))
          << layer.name();
      EXPECT_GT(layer.precision_max_abs_deviation(), 0) << layer.name();
    }
  }
}

TEST_F(PrecisionIntegrationTest, PerLayerLatencyIsExported) {
  for (const ServedPrecision& served : *models_) {
    absl::StatusOr<v1::PredictRequest> request = MakePredictRequest(
        served.model.config.name(), 0, Rows(2, 9), Encoding::kValues);
    ASSERT_TRUE(request.ok());
    ASSERT_TRUE(client().Predict(*request).ok());
  }
  absl::StatusOr<std::string> metrics = ScrapeMetrics(*server_->process);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  for (const ServedPrecision& served : *models_) {
    for (const v1::LayerConfig& layer : served.model.config.layers()) {
      const std::string model_label =
          absl::StrCat("model=\"", served.model.config.name(), "\"");
      const std::string layer_label =
          absl::StrCat("layer=\"", layer.name(), "\"");
      bool found = false;
      for (absl::string_view line : absl::StrSplit(*metrics, '\n')) {
        if (absl::StartsWith(line, "nnserve_layer_duration_seconds_count{") &&
            absl::StrContains(line, model_label) &&
            absl::StrContains(line, layer_label)) {
          found = true;
          const double count =
              std::stod(std::string(line.substr(line.rfind(' ') + 1)));
          EXPECT_GE(count, 1) << line;
        }
      }
      EXPECT_TRUE(found) << served.model.config.name() << " " << layer.name();
    }
  }
}

}  // namespace
}  // namespace nnserve::testing
