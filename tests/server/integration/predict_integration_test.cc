// Predict against the real nnserve binary: outputs of random models (every
// activation, both weight layouts, safetensors and .npy files) equal the
// double-precision reference in both tensor encodings, on the inline path
// (small work) and the worker-pool path (large work); argmax labels and
// classes; version selection.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr double kMaxRelativeError = 1e-5;

struct ServedModel {
  RandomModel model;
  int64_t version = 0;
};

// The repository every test in this file runs against:
//   alpha  v1, v2  OUT_IN  12 → 16 RELU → 8 TANH → 5 SOFTMAX, labels
//   beta   v3      IN_OUT  9 → 20 GELU → 11 SIGMOID (no bias), .npy files
//   gamma  v1      IN_OUT  6 → 10 LEAKY_RELU(0.2) → 7 ELU(0.5) → 4 IDENTITY
//   wide   v1      OUT_IN  64 → 256 RELU → 128 GELU → 10 SOFTMAX, labels
// wide has ~50k parameters: batches of more than ~5 rows exceed the
// server's default inline work limit and run on the inference workers.
class PredictIntegrationTest : public SharedServerTest<PredictIntegrationTest> {
 public:
  // Run by SharedServerTest::SetUpTestSuite.
  static void SetUpSharedSuite() {
    CreateRepository("nnserve_predict_itest");
    models_ = new std::vector<ServedModel>();
    auto add = [](std::string_view name, int64_t input,
                  std::vector<LayerDef> layers, WeightLayout layout,
                  uint32_t seed, int64_t version, FileFormat format,
                  std::vector<std::string> labels) {
      RandomModel model = BuildRandomModel(name, input, layers, layout, seed);
      for (const std::string& label : labels) {
        model.config.mutable_output()->add_labels(label);
      }
      // Every version directory serves (the default policy: the newest).
      model.config.mutable_version_policy()->mutable_all();
      WriteModelDir(repo_->path(), model, version, format,
                    formats::DType::kF32);
      models_->push_back({std::move(model), version});
    };
    const std::vector<LayerDef> alpha = {LayerDef(16, Activation::kRelu),
                                         LayerDef(8, Activation::kTanh),
                                         LayerDef(5, Activation::kSoftmax)};
    const std::vector<std::string> alpha_labels = {"ant", "bee", "cat", "dog",
                                                   "eel"};
    add("alpha", 12, alpha, WeightLayout::kOutIn, 11, 1,
        FileFormat::kSafetensors, alpha_labels);
    add("alpha", 12, alpha, WeightLayout::kOutIn, 12, 2,
        FileFormat::kSafetensors, alpha_labels);
    add("beta", 9,
        {LayerDef(20, Activation::kGelu),
         LayerDef(11, Activation::kSigmoid, /*bias=*/false)},
        WeightLayout::kInOut, 21, 3, FileFormat::kNpy, {});
    add("gamma", 6,
        {LayerDef(10, Activation::kLeakyRelu, true, 0.2f),
         LayerDef(7, Activation::kElu, true, 0.5f),
         LayerDef(4, Activation::kIdentity)},
        WeightLayout::kInOut, 31, 1, FileFormat::kSafetensors, {});
    std::vector<std::string> digits;
    for (int i = 0; i < 10; ++i) digits.push_back(absl::StrCat("d", i));
    add("wide", 64,
        {LayerDef(256, Activation::kRelu), LayerDef(128, Activation::kGelu),
         LayerDef(10, Activation::kSoftmax)},
        WeightLayout::kOutIn, 41, 1, FileFormat::kSafetensors, digits);

    StartSharedServer({"--threads=2"});
  }

 protected:
  static void TearDownTestSuite() {
    SharedServerTest::TearDownTestSuite();
    delete models_;
  }

  static const ServedModel& Find(const std::string& name, int64_t version) {
    for (const ServedModel& m : *models_) {
      if (m.model.config.name() == name && m.version == version) return m;
    }
    ADD_FAILURE() << "test bug: no model " << name << " v" << version;
    return models_->front();
  }

  // Rows with values in [-2, 2] (negative inputs exercise the activations'
  // negative branches).
  static RowBatch Rows(int64_t rows, int64_t cols, uint32_t seed) {
    RowBatch batch;
    batch.rows = rows;
    batch.cols = cols;
    batch.values = RandomValues(static_cast<size_t>(rows * cols), 2.0f, seed);
    return batch;
  }

  static const Client& client() { return *server_->client; }

  static std::vector<ServedModel>* models_;
};

std::vector<ServedModel>* PredictIntegrationTest::models_ = nullptr;

TEST_F(PredictIntegrationTest, OutputsMatchReferenceInBothEncodings) {
  uint32_t seed = 100;
  for (const ServedModel& served : *models_) {
    const RandomModel& model = served.model;
    const std::string& name = model.config.name();
    const int64_t inputs = model.config.input().size();
    const int64_t outputs = model.config.layers().rbegin()->units();
    for (Encoding encoding : {Encoding::kValues, Encoding::kRaw}) {
      for (int64_t rows : {1, 3, 64, 257}) {
        SCOPED_TRACE(
            absl::StrCat(name, " v", served.version, " rows=", rows,
                         encoding == Encoding::kRaw ? " raw" : " values"));
        const RowBatch batch = Rows(rows, inputs, ++seed);
        absl::StatusOr<v1::PredictRequest> request =
            MakePredictRequest(name, served.version, batch, encoding);
        ASSERT_TRUE(request.ok()) << request.status();
        absl::StatusOr<v1::PredictResponse> response =
            client().Predict(*request);
        ASSERT_TRUE(response.ok()) << response.status();
        EXPECT_EQ(response->model(), name);
        EXPECT_EQ(response->version(), served.version);
        EXPECT_THAT(response->output().shape(), ElementsAre(rows, outputs));
        // The response uses the request's encoding, and only that one.
        if (encoding == Encoding::kRaw) {
          EXPECT_EQ(response->output().values_size(), 0);
          EXPECT_EQ(response->output().raw().size(),
                    static_cast<size_t>(rows * outputs) * sizeof(float));
        } else {
          EXPECT_TRUE(response->output().raw().empty());
        }
        absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
        ASSERT_TRUE(output.ok()) << output.status();
        const std::vector<double> expected = ReferenceOutput(model, batch);
        ASSERT_EQ(output->values.size(), expected.size());
        EXPECT_LE(MaxRowRelativeError(output->values, expected, rows),
                  kMaxRelativeError);
      }
    }
  }
}

TEST_F(PredictIntegrationTest, OneDimensionalShapeIsBatchOfOne) {
  const ServedModel& gamma = Find("gamma", 1);
  const RowBatch batch = Rows(1, 6, 7);
  v1::PredictRequest request;
  request.set_model("gamma");
  request.mutable_input()->add_shape(6);
  for (float v : batch.values) request.mutable_input()->add_values(v);
  absl::StatusOr<v1::PredictResponse> response = client().Predict(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->output().shape(), ElementsAre(1, 4));
  absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_LE(MaxRowRelativeError(output->values,
                                ReferenceOutput(gamma.model, batch), 1),
            kMaxRelativeError);
}

TEST_F(PredictIntegrationTest, LabelsAndClassesAreTheArgmaxPerRow) {
  for (const std::string name : {"alpha", "wide"}) {
    SCOPED_TRACE(name);
    const ServedModel& served = Find(name, name == "alpha" ? 2 : 1);
    const v1::OutputConfig& out = served.model.config.output();
    const int64_t rows = 40;
    const RowBatch batch = Rows(rows, served.model.config.input().size(), 9);
    absl::StatusOr<v1::PredictRequest> request =
        MakePredictRequest(name, 0, batch, Encoding::kRaw);
    ASSERT_TRUE(request.ok()) << request.status();
    absl::StatusOr<v1::PredictResponse> response = client().Predict(*request);
    ASSERT_TRUE(response.ok()) << response.status();
    ASSERT_EQ(response->labels_size(), rows);
    ASSERT_EQ(response->classes_size(), rows);
    const std::vector<double> expected = ReferenceOutput(served.model, batch);
    const int64_t cols = out.labels_size();
    for (int64_t r = 0; r < rows; ++r) {
      const int want = ArgMaxRow(expected, cols, r);
      EXPECT_EQ(response->classes(r), want) << "row " << r;
      EXPECT_EQ(response->labels(r), out.labels(want)) << "row " << r;
    }
  }
}

TEST_F(PredictIntegrationTest, ModelsWithoutLabelsReturnNoLabelsOrClasses) {
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("beta", 0, Rows(4, 9, 3), Encoding::kValues);
  ASSERT_TRUE(request.ok()) << request.status();
  absl::StatusOr<v1::PredictResponse> response = client().Predict(*request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->labels(), IsEmpty());
  EXPECT_THAT(response->classes(), IsEmpty());
  EXPECT_EQ(response->version(), 3);
}

TEST_F(PredictIntegrationTest, VersionZeroServesTheNewestAndOlderOnRequest) {
  const RowBatch batch = Rows(8, 12, 5);
  const std::vector<double> v1_expected =
      ReferenceOutput(Find("alpha", 1).model, batch);
  const std::vector<double> v2_expected =
      ReferenceOutput(Find("alpha", 2).model, batch);
  // The two versions have different weights, so their outputs differ: the
  // comparisons below can tell which version answered.
  ASSERT_GT(MaxRowRelativeError(
                std::vector<float>(v1_expected.begin(), v1_expected.end()),
                v2_expected, 8),
            1e-2);

  for (const auto& [asked, served, expected] :
       {std::tuple{int64_t{0}, int64_t{2}, &v2_expected},
        std::tuple{int64_t{2}, int64_t{2}, &v2_expected},
        std::tuple{int64_t{1}, int64_t{1}, &v1_expected}}) {
    SCOPED_TRACE(absl::StrCat("asked version ", asked));
    absl::StatusOr<v1::PredictRequest> request =
        MakePredictRequest("alpha", asked, batch, Encoding::kValues);
    ASSERT_TRUE(request.ok()) << request.status();
    absl::StatusOr<v1::PredictResponse> response = client().Predict(*request);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->version(), served);
    absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
    ASSERT_TRUE(output.ok()) << output.status();
    EXPECT_LE(MaxRowRelativeError(output->values, *expected, 8),
              kMaxRelativeError);
  }
}

}  // namespace
}  // namespace nnserve::testing
