// Tests for Model::ForwardWithLayers (engine/model.h): every requested
// layer's output matches the plain-loop reference of the model cut after that
// layer (tests/util/reference.h, row-normalised error <= 1e-5, as in
// model_test.cc), for every activation and for batches that span several
// execution chunks; the model output is bit-identical to Forward's; the last
// layer's capture is bit-identical to the output; bad requests are
// InvalidArgument naming what was wrong.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "engine/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"

namespace nnserve::engine {
namespace {

using ::nnserve::testing::BuildRandomModel;
using ::nnserve::testing::LayerDef;
using ::nnserve::testing::MaxRowRelativeError;
using ::nnserve::testing::RandomModel;
using ::nnserve::testing::RandomValues;
using ::nnserve::testing::ReferenceForward;
using ::testing::HasSubstr;

constexpr double kTolerance = 1e-5;

std::shared_ptr<const Model> CreateModel(const RandomModel& m) {
  absl::StatusOr<ModelSpec> spec = BuildModelSpec(m.config, m.tensors, "mem");
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return nullptr;
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(*std::move(spec), 1, EngineOptions{});
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

// The reference output of `m` cut after layer `layer`.
std::vector<double> ReferenceUpTo(const RandomModel& m, int layer,
                                  std::span<const float> input, int64_t rows) {
  v1::ModelConfig cut = m.config;
  cut.mutable_layers()->DeleteSubrange(layer + 1,
                                       cut.layers_size() - layer - 1);
  return ReferenceForward(cut, m.tensors, input, rows);
}

bool BitEqual(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

class LayersTest : public ::testing::TestWithParam<Activation> {};

TEST_P(LayersTest, EveryLayerMatchesTheReferenceCutAfterIt) {
  const Activation act = GetParam();
  const RandomModel m =
      BuildRandomModel("layers", 23, {{40, act}, {17, act, false}, {6, act}},
                       WeightLayout::kOutIn, 5);
  std::shared_ptr<const Model> model = CreateModel(m);
  ASSERT_NE(model, nullptr);
  for (int64_t rows : {1, 3, 700}) {
    const std::vector<float> input =
        RandomValues(static_cast<size_t>(rows * model->input_size()), 1.0f, 3);
    std::vector<float> plain(static_cast<size_t>(rows * 6));
    ASSERT_TRUE(model->Forward(input, rows, plain).ok());

    std::vector<std::vector<float>> captured = {
        std::vector<float>(static_cast<size_t>(rows * 40), std::nanf("")),
        std::vector<float>(static_cast<size_t>(rows * 17), std::nanf("")),
        std::vector<float>(static_cast<size_t>(rows * 6), std::nanf(""))};
    // Asked for out of order: the order of `layers` does not matter.
    const std::vector<LayerOutput> layers = {
        {2, captured[2]}, {0, captured[0]}, {1, captured[1]}};
    std::vector<float> output(static_cast<size_t>(rows * 6), std::nanf(""));
    std::vector<double> seconds(3, -1);
    const absl::Status status =
        model->ForwardWithLayers(input, rows, output, layers, seconds);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(BitEqual(output, plain)) << "rows=" << rows;
    EXPECT_TRUE(BitEqual(captured[2], output)) << "rows=" << rows;
    for (int layer = 0; layer < 3; ++layer) {
      EXPECT_LE(MaxRowRelativeError(captured[layer],
                                    ReferenceUpTo(m, layer, input, rows), rows),
                kTolerance)
          << "layer " << layer << " rows=" << rows;
    }
    for (double s : seconds) EXPECT_GE(s, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllActivations, LayersTest,
    ::testing::Values(Activation::kIdentity, Activation::kRelu,
                      Activation::kLeakyRelu, Activation::kElu,
                      Activation::kSigmoid, Activation::kTanh,
                      Activation::kGelu, Activation::kSoftmax));

TEST(LayersTest, OneHiddenLayerAloneLeavesTheOthersUntouched) {
  const RandomModel m = BuildRandomModel(
      "one", 9, {{12, Activation::kRelu}, {4, Activation::kIdentity}},
      WeightLayout::kInOut, 8);
  std::shared_ptr<const Model> model = CreateModel(m);
  ASSERT_NE(model, nullptr);
  const std::vector<float> input = RandomValues(2 * 9, 1.0f, 4);
  std::vector<float> hidden(2 * 12, std::nanf(""));
  std::vector<float> output(2 * 4);
  const std::vector<LayerOutput> layers = {{0, hidden}};
  ASSERT_TRUE(model->ForwardWithLayers(input, 2, output, layers).ok());
  EXPECT_LE(MaxRowRelativeError(hidden, ReferenceUpTo(m, 0, input, 2), 2),
            kTolerance);
  EXPECT_LE(MaxRowRelativeError(output, ReferenceUpTo(m, 1, input, 2), 2),
            kTolerance);
}

TEST(LayersTest, BadRequestsAreInvalidArgument) {
  const RandomModel m = BuildRandomModel(
      "bad", 5, {{7, Activation::kTanh}, {3, Activation::kIdentity}},
      WeightLayout::kOutIn, 2);
  std::shared_ptr<const Model> model = CreateModel(m);
  ASSERT_NE(model, nullptr);
  const std::vector<float> input = RandomValues(2 * 5, 1.0f, 1);
  std::vector<float> output(2 * 3);
  std::vector<float> hidden(2 * 7);
  std::vector<float> small(7);

  std::vector<LayerOutput> layers = {{2, hidden}};
  absl::Status status = model->ForwardWithLayers(input, 2, output, layers);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("expected an index below 2"));

  layers = {{0, small}};
  status = model->ForwardWithLayers(input, 2, output, layers);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("layer 'fc0' has room for 7"));

  layers = {{0, hidden}, {0, hidden}};
  status = model->ForwardWithLayers(input, 2, output, layers);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("asked for twice"));
}

}  // namespace
}  // namespace nnserve::engine
