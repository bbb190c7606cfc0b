// nnserve.v1.ModelRepository (LoadModel / UnloadModel) and nnserve-cli
// load|unload against the real nnserve binary in --model-control-mode
// explicit: a loaded model serves exact outputs; a missing model is
// NOT_FOUND; a version that fails validation (NaN weights, a truncated
// file) is refused with its validation message while the version served
// before keeps serving; an unloaded model is NOT_FOUND until loaded again;
// in the modes none and poll both calls answer FAILED_PRECONDITION naming
// the mode; request metrics count the calls.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/subprocess.h"
#include "tests/server/integration/integration_fixture.h"
#include "tests/util/tensor_files.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using ::testing::AnyOf;
using ::testing::Eq;
using ::testing::HasSubstr;

constexpr char kCli[] = NNSERVE_CLI_PATH;
constexpr double kMaxRelativeError = 1e-5;

// alpha: 12 → 16 RELU → 5 SOFTMAX (OUT_IN); weights from `seed`.
RandomModel Alpha(uint32_t seed) {
  return BuildRandomModel(
      "alpha", 12,
      {LayerDef(16, Activation::kRelu), LayerDef(5, Activation::kSoftmax)},
      WeightLayout::kOutIn, seed);
}

// beta: 7 → 9 TANH → 3 IDENTITY (IN_OUT).
RandomModel Beta() {
  return BuildRandomModel(
      "beta", 7,
      {LayerDef(9, Activation::kTanh), LayerDef(3, Activation::kIdentity)},
      WeightLayout::kInOut, 21);
}

void Write(const ScopedTempDir& repo, const RandomModel& model,
           int64_t version) {
  WriteModelDir(repo.path(), model, version, FileFormat::kSafetensors,
                formats::DType::kF32);
}

// Starts nnserve on `repo` in `mode`, loading `load_models` at start-up
// (explicit mode), and waits until it is SERVING.
absl::StatusOr<RunningServer> StartInMode(
    const ScopedTempDir& repo, const std::string& mode,
    const std::vector<std::string>& load_models = {}) {
  ServerOptions options;
  options.model_repository = repo.path();
  options.extra_args = {"--threads=2",
                        absl::StrCat("--model-control-mode=", mode)};
  for (const std::string& name : load_models) {
    options.extra_args.push_back(absl::StrCat("--load-model=", name));
  }
  return StartServer(options);
}

// Predict on `model` version 0 in both encodings answers `version` with the
// reference outputs of `model`'s weights.
void ExpectServes(const Client& client, const RandomModel& model,
                  int64_t version) {
  const std::string& name = model.config.name();
  const int64_t inputs = model.config.input().size();
  const RowBatch rows = RandomRows(3, inputs, 5);
  const std::vector<double> expected = ReferenceOutput(model, rows);
  for (Encoding encoding : {Encoding::kValues, Encoding::kRaw}) {
    absl::StatusOr<v1::PredictRequest> request =
        MakePredictRequest(name, 0, rows, encoding);
    ASSERT_TRUE(request.ok()) << request.status();
    absl::StatusOr<v1::PredictResponse> response = client.Predict(*request);
    ASSERT_TRUE(response.ok()) << name << ": " << response.status();
    EXPECT_EQ(response->version(), version) << name;
    absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
    ASSERT_TRUE(output.ok()) << output.status();
    EXPECT_LE(MaxRowRelativeError(output->values, expected, rows.rows),
              kMaxRelativeError)
        << name;
  }
}

// The status of a one-row Predict on `model` (`inputs` features).
absl::Status PredictStatus(const Client& client, const std::string& model,
                           int64_t inputs) {
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest(model, 0, RandomRows(1, inputs, 1), Encoding::kRaw);
  if (!request.ok()) return request.status();
  return client.Predict(*request).status();
}

// The state and error of `model` `version` in ListModels; STATE_UNSPECIFIED
// when it is not listed.
v1::ModelVersionStatus ListedVersion(const Client& client,
                                     const std::string& model,
                                     int64_t version) {
  absl::StatusOr<v1::ListModelsResponse> list = client.ListModels();
  EXPECT_TRUE(list.ok()) << list.status();
  if (!list.ok()) return {};
  for (const v1::ModelStatus& m : list->models()) {
    if (m.name() != model) continue;
    for (const v1::ModelVersionStatus& v : m.versions()) {
      if (v.version() == version) return v;
    }
  }
  return {};
}

// A validation failure is answered with one of these two codes.
::testing::Matcher<absl::StatusCode> IsValidationCode() {
  return AnyOf(Eq(absl::StatusCode::kInvalidArgument),
               Eq(absl::StatusCode::kFailedPrecondition));
}

TEST(RepositoryIntegrationTest, LoadModelServesItWithExactOutputs) {
  ScopedTempDir repo("nnserve_repo_rpc_itest");
  const RandomModel alpha = Alpha(11);
  const RandomModel beta = Beta();
  Write(repo, alpha, 1);
  Write(repo, beta, 1);
  absl::StatusOr<RunningServer> server =
      StartInMode(repo, "explicit", {"alpha"});
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;

  // Only the model named at start-up serves.
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, alpha, 1));
  EXPECT_EQ(PredictStatus(client, "beta", 7).code(),
            absl::StatusCode::kNotFound);

  absl::StatusOr<v1::LoadModelResponse> loaded = client.LoadModel("beta");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->model(), "beta");
  // The answer comes once the model serves: no waiting needed.
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, beta, 1));
  EXPECT_EQ(ListedVersion(client, "beta", 1).state(),
            v1::ModelVersionStatus::AVAILABLE);
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, alpha, 1));

  // Loading a model that already serves reloads it; it keeps serving.
  loaded = client.LoadModel("alpha");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->model(), "alpha");
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, alpha, 1));
}

TEST(RepositoryIntegrationTest, MissingOrMisnamedModelIsRefused) {
  ScopedTempDir repo("nnserve_repo_rpc_itest");
  const RandomModel alpha = Alpha(11);
  Write(repo, alpha, 1);
  absl::StatusOr<RunningServer> server =
      StartInMode(repo, "explicit", {"alpha"});
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;

  const absl::Status missing = client.LoadModel("nope").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_THAT(missing.message(), HasSubstr("nope"));
  const absl::Status unload_missing = client.UnloadModel("nope").status();
  EXPECT_EQ(unload_missing.code(), absl::StatusCode::kNotFound)
      << unload_missing;

  // Names that cannot be model directories never reach the repository.
  for (const std::string name : {"../alpha", "", "alpha/1"}) {
    SCOPED_TRACE(name);
    const absl::Status bad = client.LoadModel(name).status();
    EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(std::string(client.LoadModel("../alpha").status().message()),
              HasSubstr("'../alpha' is not a valid model name"));

  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, alpha, 1));

  // Refusals are counted under "_unknown": invented names make no series.
  absl::StatusOr<std::string> scrape = ScrapeMetrics(*server->process);
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_EQ(MetricSample(*scrape,
                         "nnserve_requests_total{code=\"NOT_FOUND\","
                         "method=\"LoadModel\",model=\"_unknown\"}"),
            1.0);
  EXPECT_EQ(MetricSample(*scrape,
                         "nnserve_requests_total{code=\"INVALID_ARGUMENT\","
                         "method=\"LoadModel\",model=\"_unknown\"}"),
            4.0);
  EXPECT_THAT(*scrape, ::testing::Not(HasSubstr("model=\"nope\"")));
}

TEST(RepositoryIntegrationTest, FailedLoadKeepsTheServedVersionAndSaysWhy) {
  ScopedTempDir repo("nnserve_repo_rpc_itest");
  const RandomModel v1 = Alpha(11);
  const RandomModel v2 = Alpha(12);
  Write(repo, v1, 1);
  absl::StatusOr<RunningServer> server =
      StartInMode(repo, "explicit", {"alpha"});
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, v1, 1));
  const std::filesystem::path v2_dir = repo.path() / "alpha" / "2";

  // Version 2 with a NaN weight.
  formats::TensorMap nan_weights = v2.tensors;
  nan_weights.at("fc0.weight").values[3] =
      std::numeric_limits<float>::quiet_NaN();
  WriteTensorFiles(v2_dir, nan_weights, FileFormat::kSafetensors,
                   formats::DType::kF32);
  absl::Status nan = client.LoadModel("alpha").status();
  EXPECT_THAT(nan.code(), IsValidationCode()) << nan;
  EXPECT_THAT(nan.message(), HasSubstr("non-finite"));
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, v1, 1));
  v1::ModelVersionStatus listed = ListedVersion(client, "alpha", 2);
  EXPECT_EQ(listed.state(), v1::ModelVersionStatus::FAILED);
  EXPECT_THAT(listed.error(), HasSubstr("non-finite"));
  EXPECT_EQ(ListedVersion(client, "alpha", 1).state(),
            v1::ModelVersionStatus::AVAILABLE);

  // Version 2 as a truncated safetensors file.
  const std::string complete =
      SafetensorsBytes(v2.tensors, formats::DType::kF32);
  WriteFile(v2_dir / "model.safetensors",
            std::string_view(complete).substr(0, complete.size() / 2));
  absl::Status truncated = client.LoadModel("alpha").status();
  EXPECT_THAT(truncated.code(), IsValidationCode()) << truncated;
  EXPECT_THAT(truncated.message(), HasSubstr("model.safetensors"));
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, v1, 1));
  listed = ListedVersion(client, "alpha", 2);
  EXPECT_EQ(listed.state(), v1::ModelVersionStatus::FAILED);
  EXPECT_THAT(listed.error(), HasSubstr("model.safetensors"));

  // Once its files are whole, version 2 loads and serves version 0.
  WriteTensorFiles(v2_dir, v2.tensors, FileFormat::kSafetensors,
                   formats::DType::kF32);
  absl::Status fixed = client.LoadModel("alpha").status();
  ASSERT_TRUE(fixed.ok()) << fixed;
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, v2, 2));
  EXPECT_EQ(ListedVersion(client, "alpha", 2).state(),
            v1::ModelVersionStatus::AVAILABLE);

  // Validation failures name a model of the repository: counted under it.
  absl::StatusOr<std::string> scrape = ScrapeMetrics(*server->process);
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_EQ(
      MetricSample(*scrape,
                   absl::StrCat("nnserve_requests_total{code=\"",
                                absl::StatusCodeToString(nan.code()),
                                "\",method=\"LoadModel\",model=\"alpha\"}")),
      nan.code() == truncated.code() ? 2.0 : 1.0);
  EXPECT_EQ(MetricSample(*scrape,
                         "nnserve_requests_total{code=\"OK\","
                         "method=\"LoadModel\",model=\"alpha\"}"),
            1.0);
}

TEST(RepositoryIntegrationTest, UnloadStopsServingUntilLoadedAgain) {
  ScopedTempDir repo("nnserve_repo_rpc_itest");
  const RandomModel alpha = Alpha(11);
  const RandomModel beta = Beta();
  Write(repo, alpha, 1);
  Write(repo, beta, 1);
  absl::StatusOr<RunningServer> server = StartInMode(repo, "explicit", {"*"});
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, alpha, 1));
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, beta, 1));

  absl::StatusOr<v1::UnloadModelResponse> unloaded =
      client.UnloadModel("alpha");
  ASSERT_TRUE(unloaded.ok()) << unloaded.status();
  EXPECT_EQ(unloaded->model(), "alpha");
  const absl::Status gone = PredictStatus(client, "alpha", 12);
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound) << gone;
  EXPECT_NE(ListedVersion(client, "alpha", 1).state(),
            v1::ModelVersionStatus::AVAILABLE);
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, beta, 1));

  absl::StatusOr<v1::LoadModelResponse> loaded = client.LoadModel("alpha");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, alpha, 1));
}

TEST(RepositoryIntegrationTest, NoneAndPollModesRefuseNamingTheMode) {
  ScopedTempDir repo("nnserve_repo_rpc_itest");
  const RandomModel alpha = Alpha(11);
  Write(repo, alpha, 1);
  for (const std::string mode : {"none", "poll"}) {
    SCOPED_TRACE(mode);
    absl::StatusOr<RunningServer> server = StartInMode(repo, mode);
    ASSERT_TRUE(server.ok()) << server.status();
    const Client& client = *server->client;
    ASSERT_NO_FATAL_FAILURE(ExpectServes(client, alpha, 1));
    // The mode is refused before any lookup, for any name.
    for (const std::string name : {"alpha", "nope"}) {
      const absl::Status load = client.LoadModel(name).status();
      EXPECT_EQ(load.code(), absl::StatusCode::kFailedPrecondition) << load;
      EXPECT_THAT(load.message(), HasSubstr(mode));
      const absl::Status unload = client.UnloadModel(name).status();
      EXPECT_EQ(unload.code(), absl::StatusCode::kFailedPrecondition) << unload;
      EXPECT_THAT(unload.message(), HasSubstr(mode));
    }
    // The refused unload left the model serving.
    ASSERT_NO_FATAL_FAILURE(ExpectServes(client, alpha, 1));
  }
}

TEST(RepositoryIntegrationTest, CliLoadAndUnload) {
  ScopedTempDir repo("nnserve_repo_rpc_itest");
  const RandomModel alpha = Alpha(11);
  const RandomModel beta = Beta();
  Write(repo, alpha, 1);
  Write(repo, beta, 1);
  absl::StatusOr<RunningServer> server =
      StartInMode(repo, "explicit", {"alpha"});
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;
  const auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(),
                {kCli, "--address", server->process->grpc_target()});
    absl::StatusOr<client_testing::CommandResult> result =
        client_testing::RunCommand(args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : client_testing::CommandResult{};
  };

  client_testing::CommandResult load = cli({"load", "--model", "beta"});
  EXPECT_EQ(load.exit_code, 0) << load.err;
  EXPECT_EQ(load.out, "loaded model 'beta'\n");
  ASSERT_NO_FATAL_FAILURE(ExpectServes(client, beta, 1));

  client_testing::CommandResult unload =
      cli({"unload", "--model", "beta", "--json"});
  EXPECT_EQ(unload.exit_code, 0) << unload.err;
  EXPECT_EQ(nlohmann::json::parse(unload.out),
            nlohmann::json({{"model", "beta"}}));
  EXPECT_EQ(PredictStatus(client, "beta", 7).code(),
            absl::StatusCode::kNotFound);

  client_testing::CommandResult missing = cli({"load", "--model", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.out, "");
  EXPECT_THAT(missing.err, HasSubstr("error: NOT_FOUND: "));
  EXPECT_THAT(missing.err, HasSubstr("nope"));
}

}  // namespace
}  // namespace nnserve::testing
