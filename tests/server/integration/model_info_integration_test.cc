// ModelInfo and ListModels of the real nnserve binary, and the start-up load
// policy: a model that fails validation stops the server (non-zero exit,
// the validation message in the log) unless --allow-load-failures, which
// serves the rest and lists the failed version with its error.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using std::chrono::seconds;
using ::testing::AllOf;
using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Population statistics of a tensor, as ModelInfo reports them.
v1::TensorStats Stats(const std::vector<float>& values) {
  v1::TensorStats stats;
  if (values.empty()) return stats;
  double sum = 0, min = values[0], max = values[0];
  for (float v : values) {
    sum += v;
    min = std::min<double>(min, v);
    max = std::max<double>(max, v);
  }
  const double mean = sum / values.size();
  double squares = 0;
  for (float v : values) squares += (v - mean) * (v - mean);
  stats.set_mean(mean);
  stats.set_std(std::sqrt(squares / values.size()));
  stats.set_min(min);
  stats.set_max(max);
  return stats;
}

void ExpectStats(const v1::TensorStats& actual, const v1::TensorStats& want) {
  EXPECT_THAT(actual.mean(), DoubleNear(want.mean(), 1e-6));
  EXPECT_THAT(actual.std(), DoubleNear(want.std(), 1e-6));
  EXPECT_THAT(actual.min(), DoubleNear(want.min(), 1e-7));
  EXPECT_THAT(actual.max(), DoubleNear(want.max(), 1e-7));
}

// Checks every ModelInfo field against the model that was written.
void ExpectInfoDescribes(const v1::ModelInfoResponse& info,
                         const RandomModel& model, int64_t version) {
  const v1::ModelConfig& config = model.config;
  EXPECT_EQ(info.name(), config.name());
  EXPECT_EQ(info.version(), version);
  EXPECT_EQ(info.input_name(), config.input().name());
  EXPECT_EQ(info.input_size(), config.input().size());
  EXPECT_EQ(info.output_name(), config.output().name());
  EXPECT_EQ(info.output_size(), config.layers().rbegin()->units());
  EXPECT_THAT(info.labels(),
              ::testing::ElementsAreArray(config.output().labels()));
  EXPECT_EQ(info.weight_layout(), config.weight_layout());
  ASSERT_EQ(info.layers_size(), config.layers_size());
  int64_t total = 0;
  int64_t in = config.input().size();
  for (int i = 0; i < config.layers_size(); ++i) {
    const v1::LayerConfig& want = config.layers(i);
    const v1::LayerInfo& layer = info.layers(i);
    SCOPED_TRACE(want.name());
    EXPECT_EQ(layer.name(), want.name());
    EXPECT_EQ(layer.input_size(), in);
    EXPECT_EQ(layer.output_size(), want.units());
    EXPECT_EQ(layer.activation(), want.activation());
    if (want.activation() == v1::LEAKY_RELU || want.activation() == v1::ELU) {
      const float alpha = want.has_alpha()
                              ? want.alpha()
                              : (want.activation() == v1::ELU ? 1.0f : 0.01f);
      EXPECT_FLOAT_EQ(layer.alpha(), alpha);
    }
    const bool has_bias = !want.bias().empty();
    EXPECT_EQ(layer.has_bias(), has_bias);
    const int64_t parameters =
        in * want.units() + (has_bias ? want.units() : 0);
    EXPECT_EQ(layer.parameters(), parameters);
    total += parameters;
    ExpectStats(layer.weight_stats(),
                Stats(model.tensors.at(want.weight()).values));
    ExpectStats(layer.bias_stats(),
                has_bias ? Stats(model.tensors.at(want.bias()).values)
                         : v1::TensorStats());
    in = want.units();
  }
  EXPECT_EQ(info.total_parameters(), total);
  EXPECT_EQ(info.weight_bytes(), total * 4);
  EXPECT_GT(info.load_duration_seconds(), 0);
}

TEST(ModelInfoIntegrationTest, DescribesEveryVersionAndListsAllModels) {
  ScopedTempDir repo("nnserve_info_itest");
  const std::vector<LayerDef> layers = {
      LayerDef(5, Activation::kLeakyRelu, true, 0.3f),
      LayerDef(3, Activation::kElu), LayerDef(2, Activation::kSoftmax)};
  RandomModel first =
      BuildRandomModel("info", 6, layers, WeightLayout::kOutIn, 1);
  RandomModel third =
      BuildRandomModel("info", 6, layers, WeightLayout::kOutIn, 3);
  for (RandomModel* m : {&first, &third}) {
    m->config.mutable_output()->add_labels("yes");
    m->config.mutable_output()->add_labels("no");
    m->config.mutable_version_policy()->mutable_all();  // Both versions.
  }
  const RandomModel plain = BuildRandomModel(
      "plain", 4, {LayerDef(2, Activation::kIdentity, /*bias=*/false)},
      WeightLayout::kInOut, 9);
  WriteModelDir(repo.path(), first, 1, FileFormat::kSafetensors,
                formats::DType::kF32);
  WriteModelDir(repo.path(), third, 3, FileFormat::kNpy, formats::DType::kF32);
  WriteModelDir(repo.path(), plain, 1, FileFormat::kSafetensors,
                formats::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;

  for (const auto& [asked, served, model] :
       {std::tuple{int64_t{0}, int64_t{3}, &third},
        std::tuple{int64_t{3}, int64_t{3}, &third},
        std::tuple{int64_t{1}, int64_t{1}, &first}}) {
    SCOPED_TRACE(absl::StrCat("info version ", asked));
    absl::StatusOr<v1::ModelInfoResponse> info =
        client.ModelInfo("info", asked);
    ASSERT_TRUE(info.ok()) << info.status();
    ExpectInfoDescribes(*info, *model, served);
    EXPECT_THAT(info->available_versions(), ElementsAre(1, 3));
  }
  absl::StatusOr<v1::ModelInfoResponse> info = client.ModelInfo("plain");
  ASSERT_TRUE(info.ok()) << info.status();
  ExpectInfoDescribes(*info, plain, 1);
  EXPECT_THAT(info->available_versions(), ElementsAre(1));

  absl::StatusOr<v1::ListModelsResponse> list = client.ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->models_size(), 2);
  std::vector<v1::ModelStatus> models(list->models().begin(),
                                      list->models().end());
  std::sort(models.begin(), models.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  EXPECT_EQ(models[0].name(), "info");
  ASSERT_EQ(models[0].versions_size(), 2);
  EXPECT_EQ(models[0].versions(0).version(), 1);
  EXPECT_EQ(models[0].versions(1).version(), 3);
  EXPECT_EQ(models[1].name(), "plain");
  ASSERT_EQ(models[1].versions_size(), 1);
  for (const v1::ModelStatus& model : models) {
    for (const v1::ModelVersionStatus& version : model.versions()) {
      EXPECT_EQ(version.state(), v1::ModelVersionStatus::AVAILABLE);
      EXPECT_TRUE(version.error().empty());
    }
  }
}

// A repository with a valid model "good" and a model "broken" whose config
// says 4 units for layer fc0 while its weight tensor fc0.weight has 5 rows.
void WriteGoodAndBroken(const std::filesystem::path& repo) {
  WriteModelDir(repo,
                BuildRandomModel("good", 3, {LayerDef(2, Activation::kRelu)},
                                 WeightLayout::kOutIn, 1),
                1, FileFormat::kSafetensors, formats::DType::kF32);
  RandomModel broken = BuildRandomModel(
      "broken", 3,
      {LayerDef(5, Activation::kRelu), LayerDef(2, Activation::kIdentity)},
      WeightLayout::kOutIn, 2);
  broken.config.mutable_layers(0)->set_units(4);
  WriteModelDir(repo, broken, 1, FileFormat::kSafetensors,
                formats::DType::kF32);
}

TEST(ModelInfoIntegrationTest, InvalidModelStopsStartupWithTheReason) {
  ScopedTempDir repo("nnserve_broken_itest");
  WriteGoodAndBroken(repo.path());
  ServerOptions options;
  options.model_repository = repo.path();
  absl::StatusOr<std::unique_ptr<ServerProcess>> process =
      ServerProcess::Launch(options);
  ASSERT_TRUE(process.ok()) << process.status();
  absl::StatusOr<ExitStatus> exit = (*process)->WaitForExit(seconds(60));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited) << exit->ToString();
  EXPECT_NE(exit->code, 0);
  // The log carries the full validation message: model, tensor, shapes.
  EXPECT_THAT((*process)->ReadLog(),
              AllOf(HasSubstr("broken"), HasSubstr("fc0.weight"),
                    HasSubstr("[5, 3]"), HasSubstr("[4, 3]")));
}

TEST(ModelInfoIntegrationTest, AllowLoadFailuresServesTheRestAndListsError) {
  ScopedTempDir repo("nnserve_allow_itest");
  WriteGoodAndBroken(repo.path());
  ServerOptions options;
  options.model_repository = repo.path();
  options.extra_args = {"--allow-load-failures"};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;

  absl::StatusOr<v1::ListModelsResponse> list = client.ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  bool saw_broken = false, saw_good = false;
  for (const v1::ModelStatus& model : list->models()) {
    ASSERT_EQ(model.versions_size(), 1) << model.name();
    const v1::ModelVersionStatus& version = model.versions(0);
    if (model.name() == "broken") {
      saw_broken = true;
      EXPECT_EQ(version.state(), v1::ModelVersionStatus::FAILED);
      EXPECT_THAT(version.error(), HasSubstr("fc0.weight"));
    } else if (model.name() == "good") {
      saw_good = true;
      EXPECT_EQ(version.state(), v1::ModelVersionStatus::AVAILABLE);
    }
  }
  EXPECT_TRUE(saw_broken && saw_good);

  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("broken", 0, RandomRows(1, 3, 1), Encoding::kValues);
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(client.Predict(*request).status().code(),
            absl::StatusCode::kNotFound);
  request =
      MakePredictRequest("good", 0, RandomRows(1, 3, 1), Encoding::kValues);
  ASSERT_TRUE(request.ok());
  EXPECT_TRUE(client.Predict(*request).ok());
}

}  // namespace
}  // namespace nnserve::testing
