// Tests for nnserve-cli's formatting (client/cli_output.h) and the load
// report's percentile rule (client/load_generator.h).
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/cli_output.h"
#include "client/load_generator.h"

namespace nnserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::PredictResponse LabelledResponse() {
  v1::PredictResponse response;
  response.set_model("digits");
  response.set_version(2);
  response.add_labels("seven");
  response.add_classes(7);
  return response;
}

TEST(CliOutputTest, PredictTextShowsLabelClassAndTopOutputs) {
  RowBatch output{1, 10, std::vector<float>(10, 0.0f)};
  output.values[7] = 0.9f;
  output.values[3] = 0.08f;
  const std::string text = cli::PredictText(LabelledResponse(), output, 2);
  EXPECT_THAT(text, HasSubstr("model digits version 2: 1 rows x 10 outputs"));
  EXPECT_THAT(text, HasSubstr("row 0: label seven (class 7)  top: 7:0.9000  "
                              "3:0.0800"));
}

TEST(CliOutputTest, PredictTextShowsVectorsForUnlabelledModels) {
  v1::PredictResponse response;
  response.set_model("regressor");
  const RowBatch output{2, 2, {1.5f, -2, 0.25f, 3}};
  const std::string text = cli::PredictText(response, output, 3);
  EXPECT_THAT(text, HasSubstr("row 0: [1.5, -2]"));
  EXPECT_THAT(text, HasSubstr("row 1: [0.25, 3]"));
}

TEST(CliOutputTest, PredictJsonParsesBack) {
  const RowBatch output{1, 3, {0.1f, 0.2f, 0.7f}};
  v1::PredictResponse response = LabelledResponse();
  response.mutable_output()->set_raw("xxxx");  // Marks raw encoding.
  const nlohmann::json json =
      nlohmann::json::parse(cli::PredictJson(response, output).dump());
  EXPECT_EQ(json["model"], "digits");
  EXPECT_EQ(json["version"], 2);
  EXPECT_EQ(json["encoding"], "raw");
  ASSERT_EQ(json["rows"].size(), 1u);
  EXPECT_EQ(json["rows"][0]["class"], 7);
  EXPECT_EQ(json["rows"][0]["label"], "seven");
  EXPECT_FLOAT_EQ(json["rows"][0]["output"][2].get<float>(), 0.7f);
  // Floats are printed by their shortest round-trip decimal.
  EXPECT_THAT(json.dump(), HasSubstr("[0.1,0.2,0.7]"));
}

TEST(CliOutputTest, PredictShowsRequestedLayers) {
  v1::PredictResponse response;
  response.set_model("regressor");
  v1::LayerTensor* layer = response.add_layers();
  layer->set_name("hidden");
  layer->mutable_tensor()->add_shape(2);
  layer->mutable_tensor()->add_shape(3);
  for (float v : {0.f, 1.5f, 0.f, 2.f, 0.f, 0.25f}) {
    layer->mutable_tensor()->add_values(v);
  }
  const RowBatch output{2, 1, {1.f, 2.f}};
  const std::string text = cli::PredictText(response, output, 3);
  EXPECT_THAT(text, HasSubstr("layer hidden: 2 rows x 3 units\n"
                              "  row 0: [0, 1.5, 0]\n"
                              "  row 1: [2, 0, 0.25]\n"));
  const nlohmann::json json =
      nlohmann::json::parse(cli::PredictJson(response, output).dump());
  ASSERT_EQ(json["layers"]["hidden"].size(), 2u);
  EXPECT_EQ(json["layers"]["hidden"][1].dump(), "[2.0,0.0,0.25]");
}

TEST(CliOutputTest, ModelInfoAndListTables) {
  v1::ModelInfoResponse info;
  info.set_name("digits");
  info.set_version(1);
  info.add_available_versions(1);
  info.set_input_size(64);
  info.set_output_size(10);
  v1::LayerInfo* layer = info.add_layers();
  layer->set_name("fc1");
  layer->set_input_size(64);
  layer->set_output_size(32);
  layer->set_activation(v1::LEAKY_RELU);
  layer->set_alpha(0.01f);
  layer->set_parameters(2080);
  layer->set_has_bias(true);
  const std::string text = cli::ModelInfoText(info);
  EXPECT_THAT(text, HasSubstr("fc1"));
  EXPECT_THAT(text, HasSubstr("LEAKY_RELU(0.01)"));
  EXPECT_THAT(text, HasSubstr("2080"));
  EXPECT_THAT(text, HasSubstr("precision      FP32"));
  EXPECT_THAT(text, Not(HasSubstr("rel. L2 vs FP32")));

  // A reduced-precision model shows its per-layer deviation; a fallback
  // shows what was requested and why it did not run.
  v1::ModelInfoResponse int8 = info;
  int8.set_requested_precision(v1::INT8);
  int8.set_effective_precision(v1::INT8);
  int8.mutable_layers(0)->set_precision_relative_l2_deviation(0.0123);
  const std::string int8_text = cli::ModelInfoText(int8);
  EXPECT_THAT(int8_text, HasSubstr("precision      INT8\n"));
  EXPECT_THAT(int8_text, HasSubstr("rel. L2 vs FP32"));
  EXPECT_THAT(int8_text, HasSubstr("0.0123"));
  v1::ModelInfoResponse fallback = info;
  fallback.set_requested_precision(v1::BF16);
  fallback.set_precision_fallback_reason("no avx512_core_bf16");
  EXPECT_THAT(cli::ModelInfoText(fallback),
              HasSubstr("FP32 (requested BF16: no avx512_core_bf16)"));

  v1::ListModelsResponse list;
  v1::ModelStatus* model = list.add_models();
  model->set_name("broken");
  v1::ModelVersionStatus* version = model->add_versions();
  version->set_version(3);
  version->set_state(v1::ModelVersionStatus::FAILED);
  version->set_error("weights missing");
  EXPECT_THAT(cli::ModelListText(list),
              HasSubstr("broken  3        FAILED  weights missing"));

  const nlohmann::json json = cli::ProtoJson(info);
  EXPECT_EQ(json["name"], "digits");
  EXPECT_EQ(json["layers"][0]["activation"], "LEAKY_RELU");
}

TEST(CliOutputTest, LoadAndUnloadPrintOneLineNamingTheModel) {
  v1::LoadModelResponse loaded;
  loaded.set_model("digits");
  EXPECT_EQ(cli::LoadModelText(loaded), "loaded model 'digits'\n");
  v1::UnloadModelResponse unloaded;
  unloaded.set_model("mlp-784");
  EXPECT_EQ(cli::UnloadModelText(unloaded), "unloaded model 'mlp-784'\n");
  EXPECT_EQ(cli::ProtoJson(loaded), nlohmann::json({{"model", "digits"}}));
  EXPECT_EQ(cli::ProtoJson(unloaded), nlohmann::json({{"model", "mlp-784"}}));
}

TEST(CliOutputTest, LoadReportJsonHasThroughputLatencyAndErrors) {
  LoadReport report;
  report.concurrency = 8;
  report.batch_rows = 4;
  report.seconds = 2;
  report.calls = 100;
  report.rows = 400;
  report.calls_per_second = 50;
  report.rows_per_second = 200;
  report.p50_us = 70;
  report.errors["UNAVAILABLE"] = 2;
  report.failed_calls = 2;
  const nlohmann::json json = nlohmann::json::parse(
      cli::LoadReportJson(report, "digits", "raw", 1).dump());
  EXPECT_EQ(json["concurrency"], 8);
  EXPECT_EQ(json["rows_per_second"], 200.0);
  EXPECT_EQ(json["latency_us"]["p50"], 70.0);
  EXPECT_EQ(json["errors"]["UNAVAILABLE"], 2);
  EXPECT_THAT(cli::LoadReportText(report, "digits", "raw", 1),
              HasSubstr("UNAVAILABLE=2"));
}

TEST(LoadReportTest, NearestRankQuantile) {
  const std::vector<int64_t> sorted = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  EXPECT_EQ(NearestRankQuantile(sorted, 0.5), 50);
  EXPECT_EQ(NearestRankQuantile(sorted, 0.9), 90);
  EXPECT_EQ(NearestRankQuantile(sorted, 0.99), 100);
  EXPECT_EQ(NearestRankQuantile(sorted, 0.0), 10);
  EXPECT_EQ(NearestRankQuantile({}, 0.5), 0);
}

}  // namespace
}  // namespace nnserve
