// `nnserve serve` settings taken from environment variables (the container
// and Kubernetes way to configure it), against the real binary:
// NNSERVE_MAX_BATCH_ROWS, NNSERVE_ALLOW_LOAD_FAILURES, NNSERVE_LAYER_TIMING
// each change observable behaviour.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"
#include "tests/util/loopback_http.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(ConfigurationIntegrationTest, SettingsFromEnvironmentVariables) {
  ScopedTempDir repo("nnserve_config_itest");
  WriteModelDir(repo.path(),
                BuildRandomModel("good", 3,
                                 {LayerDef(4, Activation::kRelu),
                                  LayerDef(2, Activation::kSoftmax)},
                                 WeightLayout::kOutIn, 1),
                1, FileFormat::kSafetensors, formats::DType::kF32);
  // "broken" names 5 units for fc0 but its weights have 6 rows.
  RandomModel broken = BuildRandomModel(
      "broken", 3, {LayerDef(6, Activation::kRelu)}, WeightLayout::kOutIn, 2);
  broken.config.mutable_layers(0)->set_units(5);
  WriteModelDir(repo.path(), broken, 1, FileFormat::kSafetensors,
                formats::DType::kF32);

  ServerOptions options;
  options.model_repository = repo.path();
  options.environment = {{"NNSERVE_MAX_BATCH_ROWS", "4"},
                         {"NNSERVE_ALLOW_LOAD_FAILURES", "true"},
                         {"NNSERVE_LAYER_TIMING", "false"}};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;
  EXPECT_THAT(server->process->ReadLog(),
              AllOf(HasSubstr("max_batch_rows=4"),
                    HasSubstr("allow_load_failures=true"),
                    HasSubstr("layer_timing=false")));

  // NNSERVE_ALLOW_LOAD_FAILURES: serving despite the broken model.
  absl::StatusOr<v1::ListModelsResponse> list = client.ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  for (const v1::ModelStatus& model : list->models()) {
    ASSERT_EQ(model.versions_size(), 1);
    EXPECT_EQ(model.versions(0).state(),
              model.name() == "broken" ? v1::ModelVersionStatus::FAILED
                                       : v1::ModelVersionStatus::AVAILABLE)
        << model.name();
  }

  // NNSERVE_MAX_BATCH_ROWS: 4 rows pass, 5 are refused.
  absl::StatusOr<v1::PredictRequest> four =
      MakePredictRequest("good", 0, RandomRows(4, 3, 1), Encoding::kValues);
  ASSERT_TRUE(four.ok());
  EXPECT_TRUE(client.Predict(*four).ok());
  EXPECT_TRUE(client.Predict(*four).ok());
  absl::StatusOr<v1::PredictRequest> five =
      MakePredictRequest("good", 0, RandomRows(5, 3, 1), Encoding::kValues);
  ASSERT_TRUE(five.ok());
  const absl::Status refused = client.Predict(*five).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("4"));

  // NNSERVE_LAYER_TIMING=false: inferences are recorded, layers are not.
  absl::StatusOr<HttpResponse> scrape =
      HttpGet(server->process->metrics_port(), "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  bool saw_inference_count = false;
  for (absl::string_view line : absl::StrSplit(scrape->body, '\n')) {
    if (absl::StartsWith(line, "nnserve_inference_duration_seconds_count{") &&
        absl::StrContains(line, "model=\"good\"")) {
      saw_inference_count = true;
      EXPECT_TRUE(absl::EndsWith(line, " 2")) << line;
    }
    if (absl::StartsWith(line, "nnserve_layer_duration_seconds_count")) {
      EXPECT_TRUE(absl::EndsWith(line, " 0")) << line;
    }
  }
  EXPECT_TRUE(saw_inference_count) << scrape->body;
}

}  // namespace
}  // namespace nnserve::testing
