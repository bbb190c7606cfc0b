// Tests for ParseModelConfig (engine/model_config.h).
#include "engine/model_config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnserve::engine {
namespace {

using ::testing::HasSubstr;

constexpr char kValid[] = R"pb(
  name: "digits"
  input { name: "pixels" size: 64 }
  output {
    name: "probs"
    labels: [ "a", "b" ]
  }
  weight_layout: IN_OUT
  layers {
    name: "hidden"
    units: 32
    activation: LEAKY_RELU
    alpha: 0.2
    weight: "fc1.weight"
    bias: "fc1.bias"
  }
  layers { name: "out" units: 2 activation: SOFTMAX weight: "fc2.weight" }
  dynamic_batching { max_batch_rows: 64 max_queue_delay_us: 200 }
)pb";

TEST(ParseModelConfigTest, ParsesEveryField) {
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(kValid, "c.pbtxt");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name(), "digits");
  EXPECT_EQ(config->input().name(), "pixels");
  EXPECT_EQ(config->input().size(), 64);
  EXPECT_EQ(config->output().labels_size(), 2);
  EXPECT_EQ(config->weight_layout(), v1::IN_OUT);
  ASSERT_EQ(config->layers_size(), 2);
  EXPECT_EQ(config->layers(0).activation(), v1::LEAKY_RELU);
  EXPECT_TRUE(config->layers(0).has_alpha());
  EXPECT_FLOAT_EQ(config->layers(0).alpha(), 0.2f);
  EXPECT_EQ(config->layers(0).bias(), "fc1.bias");
  EXPECT_FALSE(config->layers(1).has_alpha());
  EXPECT_TRUE(config->layers(1).bias().empty());
  EXPECT_EQ(config->dynamic_batching().max_batch_rows(), 64);
}

TEST(ParseModelConfigTest, EmptyTextIsAnEmptyConfig) {
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig("", "c.pbtxt");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->layers_size(), 0);
}

TEST(ParseModelConfigTest, SyntaxErrorNamesSourceLineAndColumn) {
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(
      "name: \"a\"\ninput { size: }\n", "models/a/config.pbtxt");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(),
              HasSubstr("models/a/config.pbtxt:2:15"));
}

TEST(ParseModelConfigTest, UnknownFieldIsRejectedByName) {
  absl::StatusOr<v1::ModelConfig> config =
      ParseModelConfig("name: \"a\"\nunits_typo: 3\n", "c.pbtxt");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("c.pbtxt:2:"));
  EXPECT_THAT(config.status().message(), HasSubstr("units_typo"));
}

TEST(ParseModelConfigTest, UnknownActivationListsAcceptedNames) {
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(
      "layers {\n  name: \"l\"\n  activation: SWISH\n}\n", "c.pbtxt");
  ASSERT_FALSE(config.ok());
  const std::string message(config.status().message());
  EXPECT_THAT(message, HasSubstr("c.pbtxt:3:"));
  EXPECT_THAT(message, HasSubstr("SWISH"));
  for (const char* name : {"IDENTITY", "RELU", "LEAKY_RELU", "ELU", "SIGMOID",
                           "TANH", "GELU", "SOFTMAX"}) {
    EXPECT_THAT(message, HasSubstr(name));
  }
  EXPECT_THAT(message, ::testing::Not(HasSubstr("ACTIVATION_UNSPECIFIED")));
}

TEST(ParseModelConfigTest, UnknownWeightLayoutListsAcceptedNames) {
  absl::StatusOr<v1::ModelConfig> config =
      ParseModelConfig("weight_layout: ROW_MAJOR\n", "c.pbtxt");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("ROW_MAJOR"));
  EXPECT_THAT(config.status().message(), HasSubstr("OUT_IN, IN_OUT"));
}

TEST(ParseModelConfigTest, WrongValueTypeIsRejected) {
  absl::StatusOr<v1::ModelConfig> config =
      ParseModelConfig("input { size: \"big\" }\n", "c.pbtxt");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("c.pbtxt:1:"));
}

}  // namespace
}  // namespace nnserve::engine
