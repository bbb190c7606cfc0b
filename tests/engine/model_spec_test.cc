// Tests for config validation and BuildModelSpec (engine/model_spec.h).
#include "engine/model_spec.h"

#include <cmath>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"

namespace nnserve::engine {
namespace {

using ::nnserve::testing::BuildRandomModel;
using ::nnserve::testing::LayerDef;
using ::nnserve::testing::RandomModel;
using ::testing::HasSubstr;

// 6 -> 5 (RELU, bias) -> 3 (SOFTMAX, no bias).
RandomModel SmallModel(WeightLayout layout = WeightLayout::kOutIn) {
  return BuildRandomModel(
      "small", 6,
      {{5, Activation::kRelu, true}, {3, Activation::kSoftmax, false}}, layout,
      1);
}

std::string ValidateMessage(const v1::ModelConfig& config) {
  absl::Status status = ValidateModelConfig(config, "cfg.pbtxt");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("cfg.pbtxt"));
  return std::string(status.message());
}

std::string BuildMessage(const RandomModel& model) {
  absl::StatusOr<ModelSpec> spec =
      BuildModelSpec(model.config, model.tensors, "w.safetensors");
  EXPECT_FALSE(spec.ok());
  if (spec.ok()) return "";
  EXPECT_THAT(spec.status().message(), HasSubstr("w.safetensors"));
  return std::string(spec.status().message());
}

TEST(NamesTest, ModelNames) {
  EXPECT_TRUE(IsValidModelName("digits"));
  EXPECT_TRUE(IsValidModelName("a"));
  EXPECT_TRUE(IsValidModelName("Model_v2.1-beta"));
  EXPECT_TRUE(IsValidModelName(std::string(64, 'a')));
  EXPECT_FALSE(IsValidModelName(std::string(65, 'a')));
  EXPECT_FALSE(IsValidModelName(""));
  EXPECT_FALSE(IsValidModelName("_hidden"));
  EXPECT_FALSE(IsValidModelName(".."));
  EXPECT_FALSE(IsValidModelName("-x"));
  EXPECT_FALSE(IsValidModelName("a/b"));
  EXPECT_FALSE(IsValidModelName("a b"));
}

TEST(NamesTest, TensorNames) {
  EXPECT_TRUE(IsValidTensorName("fc1.weight"));
  EXPECT_TRUE(IsValidTensorName("_x"));
  EXPECT_TRUE(IsValidTensorName("dense/kernel") == false);
  EXPECT_TRUE(IsValidTensorName(std::string(128, 'w')));
  EXPECT_FALSE(IsValidTensorName(std::string(129, 'w')));
  EXPECT_FALSE(IsValidTensorName("../x"));
  EXPECT_FALSE(IsValidTensorName("/"));
  EXPECT_FALSE(IsValidTensorName("."));
  EXPECT_FALSE(IsValidTensorName(".."));
  EXPECT_FALSE(IsValidTensorName(".hidden"));
  EXPECT_FALSE(IsValidTensorName("a\\b"));
  EXPECT_FALSE(IsValidTensorName(""));
}

TEST(NamesTest, EnumNames) {
  EXPECT_EQ(ActivationName(Activation::kLeakyRelu), "LEAKY_RELU");
  EXPECT_EQ(ActivationName(Activation::kGelu), "GELU");
  EXPECT_EQ(ActivationName(Activation::kSoftmax), "SOFTMAX");
  EXPECT_EQ(WeightLayoutName(WeightLayout::kOutIn), "OUT_IN");
  EXPECT_EQ(WeightLayoutName(WeightLayout::kInOut), "IN_OUT");
}

TEST(ValidateModelConfigTest, AcceptsValidConfig) {
  EXPECT_TRUE(ValidateModelConfig(SmallModel().config, "cfg.pbtxt").ok());
}

TEST(ValidateModelConfigTest, BadModelName) {
  v1::ModelConfig config = SmallModel().config;
  config.set_name("../etc");
  EXPECT_THAT(ValidateMessage(config), HasSubstr("model name '../etc'"));
}

TEST(ValidateModelConfigTest, InputNameAndSize) {
  v1::ModelConfig config = SmallModel().config;
  config.mutable_input()->clear_name();
  EXPECT_THAT(ValidateMessage(config), HasSubstr("input.name is empty"));
  config = SmallModel().config;
  config.mutable_input()->set_size(0);
  EXPECT_THAT(ValidateMessage(config), HasSubstr("input.size is 0"));
}

TEST(ValidateModelConfigTest, NoLayers) {
  v1::ModelConfig config = SmallModel().config;
  config.clear_layers();
  EXPECT_THAT(ValidateMessage(config), HasSubstr("no layers"));
}

TEST(ValidateModelConfigTest, LayerNames) {
  v1::ModelConfig config = SmallModel().config;
  config.mutable_layers(1)->set_name("fc0");
  EXPECT_THAT(ValidateMessage(config),
              HasSubstr("layer 1 name 'fc0' is used by an earlier layer"));
  config.mutable_layers(1)->clear_name();
  EXPECT_THAT(ValidateMessage(config), HasSubstr("layer 1 has an empty name"));
}

TEST(ValidateModelConfigTest, Units) {
  v1::ModelConfig config = SmallModel().config;
  config.mutable_layers(0)->set_units(0);
  EXPECT_THAT(ValidateMessage(config),
              HasSubstr("layer 0 'fc0': units is 0, expected 1.."));
  config.mutable_layers(0)->set_units(int64_t{1} << 40);
  EXPECT_THAT(ValidateMessage(config), HasSubstr("units is 1099511627776"));
}

TEST(ValidateModelConfigTest, UnspecifiedActivationListsNames) {
  v1::ModelConfig config = SmallModel().config;
  config.mutable_layers(1)->set_activation(v1::ACTIVATION_UNSPECIFIED);
  const std::string message = ValidateMessage(config);
  EXPECT_THAT(message, HasSubstr("layer 1 'fc1': activation is unset"));
  EXPECT_THAT(message, HasSubstr("IDENTITY, RELU, LEAKY_RELU, ELU, SIGMOID, "
                                 "TANH, GELU, SOFTMAX"));
}

TEST(ValidateModelConfigTest, UnknownNumericActivation) {
  v1::ModelConfig config = SmallModel().config;
  config.mutable_layers(0)->set_activation(static_cast<v1::Activation>(42));
  EXPECT_THAT(ValidateMessage(config),
              HasSubstr("activation is unknown value 42"));
}

TEST(ValidateModelConfigTest, AlphaOnlyForLeakyReluAndElu) {
  v1::ModelConfig config = SmallModel().config;
  config.mutable_layers(0)->set_alpha(0.5f);
  EXPECT_THAT(ValidateMessage(config),
              HasSubstr("alpha is set but activation is RELU"));
  config.mutable_layers(0)->set_activation(v1::ELU);
  EXPECT_TRUE(ValidateModelConfig(config, "cfg.pbtxt").ok());
  config.mutable_layers(0)->set_alpha(std::nanf(""));
  EXPECT_THAT(ValidateMessage(config), HasSubstr("expected a finite number"));
}

TEST(ValidateModelConfigTest, TensorNames) {
  v1::ModelConfig config = SmallModel().config;
  config.mutable_layers(0)->clear_weight();
  EXPECT_THAT(ValidateMessage(config),
              HasSubstr("weight tensor name is empty"));
  config.mutable_layers(0)->set_weight("../x");
  EXPECT_THAT(ValidateMessage(config),
              HasSubstr("weight tensor name '../x' is invalid"));
  config = SmallModel().config;
  config.mutable_layers(0)->set_bias("..");
  EXPECT_THAT(ValidateMessage(config),
              HasSubstr("bias tensor name '..' is invalid"));
}

TEST(ValidateModelConfigTest, LabelsAndOutputSize) {
  v1::ModelConfig config = SmallModel().config;
  config.mutable_output()->add_labels("a");
  EXPECT_THAT(ValidateMessage(config),
              HasSubstr("output.labels has 1 entries, expected 0 or 3"));
  config.mutable_output()->add_labels("b");
  config.mutable_output()->add_labels("c");
  EXPECT_TRUE(ValidateModelConfig(config, "cfg.pbtxt").ok());
  config.mutable_output()->set_size(4);
  EXPECT_THAT(ValidateMessage(config),
              HasSubstr("output.size is 4, expected 0 (unset) or 3"));
  config.mutable_output()->set_size(3);
  EXPECT_TRUE(ValidateModelConfig(config, "cfg.pbtxt").ok());
}

TEST(BuildModelSpecTest, JoinsConfigAndTensors) {
  RandomModel model = SmallModel();
  model.config.mutable_output()->add_labels("a");
  model.config.mutable_output()->add_labels("b");
  model.config.mutable_output()->add_labels("c");
  absl::StatusOr<ModelSpec> spec =
      BuildModelSpec(model.config, model.tensors, "w");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "small");
  EXPECT_EQ(spec->input_name, "x");
  EXPECT_EQ(spec->input_size, 6);
  EXPECT_EQ(spec->output_name, "y");
  EXPECT_EQ(spec->output_size(), 3);
  EXPECT_EQ(spec->labels, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(spec->layers.size(), 2u);
  EXPECT_EQ(spec->layers[0].input_size, 6);
  EXPECT_EQ(spec->layers[0].units, 5);
  EXPECT_EQ(spec->layers[0].weight, model.tensors["fc0.weight"].values);
  EXPECT_EQ(spec->layers[0].bias, model.tensors["fc0.bias"].values);
  EXPECT_EQ(spec->layers[1].input_size, 5);
  EXPECT_EQ(spec->layers[1].activation, Activation::kSoftmax);
  EXPECT_TRUE(spec->layers[1].bias.empty());
}

TEST(BuildModelSpecTest, AlphaDefaults) {
  RandomModel model =
      BuildRandomModel("a", 3,
                       {{4, Activation::kLeakyRelu},
                        {4, Activation::kElu},
                        {2, Activation::kLeakyRelu, true, 0.3f}},
                       WeightLayout::kOutIn, 2);
  absl::StatusOr<ModelSpec> spec =
      BuildModelSpec(model.config, model.tensors, "w");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FLOAT_EQ(spec->layers[0].alpha, 0.01f);
  EXPECT_FLOAT_EQ(spec->layers[1].alpha, 1.0f);
  EXPECT_FLOAT_EQ(spec->layers[2].alpha, 0.3f);
}

TEST(BuildModelSpecTest, InOutIsTransposedToUnitsByIn) {
  RandomModel model = SmallModel(WeightLayout::kInOut);
  absl::StatusOr<ModelSpec> spec =
      BuildModelSpec(model.config, model.tensors, "w");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->weight_layout, WeightLayout::kInOut);
  const std::vector<float>& stored = model.tensors["fc0.weight"].values;
  const std::vector<float>& w = spec->layers[0].weight;  // [5, 6]
  ASSERT_EQ(w.size(), 30u);
  for (int u = 0; u < 5; ++u) {
    for (int k = 0; k < 6; ++k) {
      EXPECT_EQ(w[u * 6 + k], stored[k * 5 + u]) << u << "," << k;
    }
  }
}

TEST(BuildModelSpecTest, TensorSharedByTwoLayers) {
  RandomModel model = BuildRandomModel(
      "tied", 4, {{4, Activation::kTanh}, {4, Activation::kIdentity}},
      WeightLayout::kOutIn, 5);
  model.config.mutable_layers(1)->set_weight("fc0.weight");
  model.tensors.erase("fc1.weight");
  absl::StatusOr<ModelSpec> spec =
      BuildModelSpec(model.config, model.tensors, "w");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->layers[0].weight, model.tensors["fc0.weight"].values);
  EXPECT_EQ(spec->layers[1].weight, model.tensors["fc0.weight"].values);
  EXPECT_EQ(spec->layers[1].bias, model.tensors["fc1.bias"].values);
}

TEST(BuildModelSpecTest, MissingTensor) {
  RandomModel model = SmallModel();
  model.tensors.erase("fc1.weight");
  EXPECT_THAT(BuildMessage(model),
              HasSubstr("tensor 'fc1.weight' referenced by the config is "
                        "missing; tensors present: [fc0.bias, fc0.weight]"));
}

TEST(BuildModelSpecTest, ExtraTensor) {
  RandomModel model = SmallModel();
  model.tensors["optimizer.state"] = model.tensors["fc0.bias"];
  model.tensors["zz"] = model.tensors["fc0.bias"];
  EXPECT_THAT(BuildMessage(model),
              HasSubstr("not referenced by the config: 'optimizer.state', "
                        "'zz'"));
}

TEST(BuildModelSpecTest, ShapeMismatchBetweenConsecutiveLayers) {
  RandomModel model = BuildRandomModel(
      "m", 20, {{32, Activation::kRelu}, {10, Activation::kSoftmax}},
      WeightLayout::kOutIn, 3);
  model.config.mutable_layers(0)->set_name("hidden");
  model.config.mutable_layers(1)->set_name("output");
  model.config.mutable_layers(1)->set_weight("fc2.weight");
  formats::Tensor w = model.tensors["fc1.weight"];
  model.tensors.erase("fc1.weight");
  w.shape = {10, 31};
  w.values.resize(310);
  model.tensors["fc2.weight"] = w;
  EXPECT_THAT(BuildMessage(model),
              HasSubstr("layer 'output' weight 'fc2.weight' has shape [10, "
                        "31], expected [10, 32] (OUT_IN: [units, in]; in = 32 "
                        "from layer 'hidden')"));
}

TEST(BuildModelSpecTest, ShapeMismatchOfFirstLayerNamesInput) {
  RandomModel model = SmallModel(WeightLayout::kInOut);
  model.config.mutable_input()->set_size(7);
  EXPECT_THAT(BuildMessage(model),
              HasSubstr("layer 'fc0' weight 'fc0.weight' has shape [6, 5], "
                        "expected [7, 5] (IN_OUT: [in, units]; in = 7 from "
                        "input 'x')"));
}

TEST(BuildModelSpecTest, RankMismatch) {
  RandomModel model = SmallModel();
  model.tensors["fc0.weight"].shape = {30};
  EXPECT_THAT(BuildMessage(model),
              HasSubstr("weight 'fc0.weight' has shape [30], expected [5, 6]"));
}

TEST(BuildModelSpecTest, BiasShapeMismatch) {
  RandomModel model = SmallModel();
  model.tensors["fc0.bias"].shape = {1, 5};
  EXPECT_THAT(BuildMessage(model),
              HasSubstr("layer 'fc0' bias 'fc0.bias' has shape [1, 5], "
                        "expected [5]"));
}

TEST(BuildModelSpecTest, NaNIsRejectedWithIndex) {
  RandomModel model = SmallModel();
  model.tensors["fc0.weight"].values[17] = std::nanf("");
  const std::string message = BuildMessage(model);
  EXPECT_THAT(message, HasSubstr("tensor 'fc0.weight'"));
  EXPECT_THAT(message, HasSubstr("nan at flat index 17"));
}

TEST(BuildModelSpecTest, InfIsRejectedWithIndex) {
  RandomModel model = SmallModel();
  model.tensors["fc0.bias"].values[4] = -std::numeric_limits<float>::infinity();
  const std::string message = BuildMessage(model);
  EXPECT_THAT(message, HasSubstr("tensor 'fc0.bias'"));
  EXPECT_THAT(message, HasSubstr("-inf at flat index 4"));
}

TEST(BuildModelSpecTest, InvalidConfigIsRejectedBeforeTensors) {
  RandomModel model = SmallModel();
  model.config.mutable_layers(0)->set_activation(v1::ACTIVATION_UNSPECIFIED);
  absl::StatusOr<ModelSpec> spec =
      BuildModelSpec(model.config, model.tensors, "w");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), HasSubstr("activation is unset"));
}

}  // namespace
}  // namespace nnserve::engine
