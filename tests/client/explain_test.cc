// Tests for `nnserve-cli explain`'s per-layer summaries (client/explain.h).
#include "client/explain.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace nnserve::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// A response with one layer "h": 2 rows x 3 units.
v1::PredictResponse Response() {
  v1::PredictResponse response;
  response.set_model("m");
  response.set_version(3);
  v1::LayerTensor* layer = response.add_layers();
  layer->set_name("h");
  layer->mutable_tensor()->add_shape(2);
  layer->mutable_tensor()->add_shape(3);
  for (float v : {0.f, 2.f, 0.f,  //
                  0.f, 4.f, 1.f}) {
    layer->mutable_tensor()->add_values(v);
  }
  return response;
}

v1::ModelInfoResponse Info() {
  v1::ModelInfoResponse info;
  v1::LayerInfo* layer = info.add_layers();
  layer->set_name("h");
  layer->set_activation(v1::RELU);
  return info;
}

TEST(ExplainTest, SummarisesEachLayer) {
  absl::StatusOr<std::vector<LayerSummary>> layers =
      SummarizeLayers(Info(), Response(), 2);
  ASSERT_TRUE(layers.ok()) << layers.status();
  ASSERT_EQ(layers->size(), 1u);
  const LayerSummary& h = layers->front();
  EXPECT_EQ(h.name, "h");
  EXPECT_EQ(h.activation, "RELU");
  EXPECT_EQ(h.rows, 2);
  EXPECT_EQ(h.units, 3);
  EXPECT_DOUBLE_EQ(h.mean, 7.0 / 6.0);
  EXPECT_DOUBLE_EQ(h.max, 4.0);
  EXPECT_DOUBLE_EQ(h.zero_fraction, 0.5);
  EXPECT_EQ(h.dead_units, 1);  // Unit 0 is zero in both rows.
  EXPECT_THAT(h.top_units, ElementsAre(Pair(1, 3.0), Pair(2, 0.5)));

  const std::string text = ExplainText(Response(), *layers);
  EXPECT_THAT(text, HasSubstr("model m version 3: 2 rows through 1 layers"));
  EXPECT_THAT(text, HasSubstr("50.0%"));
  EXPECT_THAT(text, HasSubstr("1:3  2:0.5"));
  const nlohmann::json json = ExplainJson(Response(), *layers);
  EXPECT_EQ(json["layers"][0]["dead_units"], 1);
  EXPECT_EQ(json["layers"][0]["top_units"][0]["unit"], 1);
}

TEST(ExplainTest, MalformedLayerTensorIsDataLoss) {
  v1::PredictResponse response = Response();
  response.mutable_layers(0)->mutable_tensor()->add_values(9.f);  // 7 values.
  absl::StatusOr<std::vector<LayerSummary>> layers =
      SummarizeLayers(Info(), response, 2);
  EXPECT_EQ(layers.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(layers.status().message(), HasSubstr("layer 'h'"));
}

}  // namespace
}  // namespace nnserve::cli
