// Version policies and repository hygiene against the real binary.
// Policies (config.pbtxt version_policy): latest { num_versions: 2 }, all {}
// and specific { versions: [...] } serve exactly the versions they select,
// checked through ListModels and through Predict with explicit versions
// (and version 0 = the newest served); in poll mode a new version directory
// moves the latest window and a changed policy is applied. Hygiene: hidden
// directories (.git, Kubernetes' ..data link and ..<timestamp> directory)
// and lost+found neither stop start-up nor get listed; a directory whose
// name is not a valid model name is listed FAILED while the good models
// serve, at start-up and when it appears in a running poll-mode server.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/lifecycle_fixture.h"
#include "tests/util/live_repository.h"
#include "tests/util/tensor_files.h"

namespace nnserve::testing {
namespace {

namespace fs = std::filesystem;
using engine::Activation;
using engine::WeightLayout;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using State = v1::ModelVersionStatus;

constexpr double kPollSeconds = 0.2;
constexpr int64_t kInput = 6;

// Version `version` of model `name`: 6 → 10 TANH → 4 IDENTITY with
// weights seeded by the version, so every version answers differently.
RandomModel Version(const std::string& name, int64_t version) {
  return BuildRandomModel(
      name, kInput,
      {LayerDef(10, Activation::kTanh), LayerDef(4, Activation::kIdentity)},
      WeightLayout::kOutIn, static_cast<uint32_t>(100 + version));
}

// Publishes `name` with versions 1..count and `policy` (none when empty)
// in one rename.
std::vector<RandomModel> AddVersionedModel(
    LiveRepository& repo, const std::string& name, int64_t count,
    const v1::ModelVersionPolicy& policy) {
  std::vector<RandomModel> models;
  std::map<int64_t, formats::TensorMap> versions;
  for (int64_t v = 1; v <= count; ++v) {
    models.push_back(Version(name, v));
    versions[v] = models.back().tensors;
  }
  v1::ModelConfig config = models.front().config;
  if (policy.policy_choice_case() !=
      v1::ModelVersionPolicy::POLICY_CHOICE_NOT_SET) {
    *config.mutable_version_policy() = policy;
  }
  repo.AddModel(config, versions);
  return models;
}

v1::ModelVersionPolicy Latest(uint32_t n) {
  v1::ModelVersionPolicy policy;
  policy.mutable_latest()->set_num_versions(n);
  return policy;
}
v1::ModelVersionPolicy All() {
  v1::ModelVersionPolicy policy;
  policy.mutable_all();
  return policy;
}
v1::ModelVersionPolicy Specific(const std::vector<int64_t>& versions) {
  v1::ModelVersionPolicy policy;
  for (int64_t v : versions) policy.mutable_specific()->add_versions(v);
  return policy;
}

// Predict(`model`, `version`) is answered by `answers_as` with the
// reference output of `weights`.
void ExpectServes(const Client& client, const std::string& model,
                  int64_t version, int64_t answers_as,
                  const RandomModel& weights) {
  const RowBatch rows = RandomRows(3, kInput, 4);
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest(model, version, rows, Encoding::kValues);
  ASSERT_TRUE(request.ok()) << request.status();
  absl::StatusOr<v1::PredictResponse> response = client.Predict(*request);
  ASSERT_TRUE(response.ok())
      << model << " v" << version << ": " << response.status();
  EXPECT_EQ(response->version(), answers_as) << model << " v" << version;
  absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_LE(MaxRowRelativeError(output->values, ReferenceOutput(weights, rows),
                                rows.rows),
            1e-5)
      << model << " v" << version << " answered with other weights";
}

void ExpectNotFound(const Client& client, const std::string& model,
                    int64_t version) {
  absl::StatusOr<v1::PredictRequest> request = MakePredictRequest(
      model, version, RandomRows(1, kInput, 4), Encoding::kValues);
  ASSERT_TRUE(request.ok()) << request.status();
  absl::StatusOr<v1::PredictResponse> response = client.Predict(*request);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kNotFound)
      << model << " v" << version << ": " << response.status();
}

std::vector<int64_t> Available(const v1::ListModelsResponse& list,
                               const std::string& model) {
  return VersionsIn(list, model, State::AVAILABLE);
}

// Waits until exactly `versions` of `model` are AVAILABLE.
absl::StatusOr<v1::ListModelsResponse> WaitForAvailable(
    const RunningServer& server, const std::string& model,
    std::vector<int64_t> versions) {
  return WaitForList(
      server,
      [&](const v1::ListModelsResponse& l) {
        return Available(l, model) == versions;
      },
      absl::StrCat(model, " AVAILABLE exactly [", absl::StrJoin(versions, ","),
                   "]"));
}

std::vector<std::string> ModelNames(const v1::ListModelsResponse& list) {
  std::vector<std::string> names;
  for (const v1::ModelStatus& m : list.models()) names.push_back(m.name());
  return names;
}

TEST(ModelPolicyIntegrationTest, LatestTwoFollowsNewVersions) {
  LiveRepository repo;
  std::vector<RandomModel> v = AddVersionedModel(repo, "p", 3, Latest(2));
  absl::StatusOr<RunningServer> server =
      StartServer(PollingServerOptions(repo.path(), kPollSeconds));
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;
  absl::StatusOr<v1::ListModelsResponse> list =
      WaitForAvailable(*server, "p", {2, 3});
  ASSERT_TRUE(list.ok()) << list.status();
  ExpectNotFound(client, "p", 1);
  ExpectServes(client, "p", 2, 2, v[1]);
  ExpectServes(client, "p", 3, 3, v[2]);
  ExpectServes(client, "p", 0, 3, v[2]);

  // Version 4 appears: the window moves to {3, 4}.
  v.push_back(Version("p", 4));
  repo.AddVersion("p", 4, v[3].tensors);
  list = WaitForAvailable(*server, "p", {3, 4});
  ASSERT_TRUE(list.ok()) << list.status();
  ExpectNotFound(client, "p", 2);
  ExpectServes(client, "p", 3, 3, v[2]);
  ExpectServes(client, "p", 0, 4, v[3]);
}

TEST(ModelPolicyIntegrationTest, AllServesEveryVersion) {
  LiveRepository repo;
  const std::vector<RandomModel> v = AddVersionedModel(repo, "p", 3, All());
  ServerOptions options;  // Mode none: the policy applies at start-up too.
  options.model_repository = repo.path();
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<v1::ListModelsResponse> list = server->client->ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(Available(*list, "p"), (std::vector<int64_t>{1, 2, 3}))
      << ListText(*list);
  for (int64_t version = 1; version <= 3; ++version) {
    ExpectServes(*server->client, "p", version, version, v[version - 1]);
  }
  ExpectServes(*server->client, "p", 0, 3, v[2]);
}

TEST(ModelPolicyIntegrationTest, SpecificServesExactlyTheListedVersions) {
  LiveRepository repo;
  // Version 5 is listed but has no directory: it is simply not served.
  const std::vector<RandomModel> v =
      AddVersionedModel(repo, "p", 3, Specific({1, 3, 5}));
  ServerOptions options;
  options.model_repository = repo.path();
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<v1::ListModelsResponse> list = server->client->ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(Available(*list, "p"), (std::vector<int64_t>{1, 3}))
      << ListText(*list);
  ExpectServes(*server->client, "p", 1, 1, v[0]);
  ExpectNotFound(*server->client, "p", 2);
  ExpectServes(*server->client, "p", 3, 3, v[2]);
  ExpectServes(*server->client, "p", 0, 3, v[2]);
  ExpectNotFound(*server->client, "p", 5);
}

TEST(ModelPolicyIntegrationTest, ChangedPolicyIsAppliedInPollMode) {
  LiveRepository repo;
  const std::vector<RandomModel> v = AddVersionedModel(repo, "p", 3, {});
  absl::StatusOr<RunningServer> server =
      StartServer(PollingServerOptions(repo.path(), kPollSeconds));
  ASSERT_TRUE(server.ok()) << server.status();
  // No policy: latest { num_versions: 1 }.
  ASSERT_TRUE(WaitForAvailable(*server, "p", {3}).ok());

  v1::ModelConfig config = v[0].config;
  *config.mutable_version_policy() = Specific({1, 2});
  repo.ReplaceConfig(config);
  absl::StatusOr<v1::ListModelsResponse> list =
      WaitForAvailable(*server, "p", {1, 2});
  ASSERT_TRUE(list.ok()) << list.status();
  ExpectServes(*server->client, "p", 0, 2, v[1]);
  ExpectServes(*server->client, "p", 1, 1, v[0]);
  ExpectNotFound(*server->client, "p", 3);
}

// Kubernetes ConfigMap/volume layout, git checkouts and ext4's lost+found
// in the repository root, none of them models.
void AddNonModelDirectories(const fs::path& repository) {
  const fs::path stamp = repository / "..2026_12_03_10_00_00.123";
  WriteFile(stamp / "config.pbtxt", "not a model config");
  fs::create_directory_symlink(stamp.filename(), repository / "..data");
  WriteFile(repository / ".git" / "HEAD", "ref: refs/heads/main\n");
  fs::create_directories(repository / ".git" / "objects");
  fs::create_directories(repository / "lost+found");
}

void ExpectNoHiddenEntries(const v1::ListModelsResponse& list) {
  for (const std::string& name : ModelNames(list)) {
    EXPECT_FALSE(name.empty() || name[0] == '.' || name == "lost+found")
        << "listed '" << name << "': " << ListText(list);
  }
}

// "bad name" (a space is not allowed in model names) is listed with every
// version FAILED and an error naming it.
void ExpectListedAsFailed(const v1::ListModelsResponse& list) {
  const v1::ModelStatus* bad = FindModel(list, "bad name");
  ASSERT_NE(bad, nullptr) << ListText(list);
  ASSERT_THAT(bad->versions(), Not(SizeIs(0))) << ListText(list);
  for (const v1::ModelVersionStatus& version : bad->versions()) {
    EXPECT_EQ(version.state(), State::FAILED) << ListText(list);
    EXPECT_THAT(version.error(), HasSubstr("bad name")) << ListText(list);
  }
}

TEST(ModelPolicyIntegrationTest, HiddenAndInvalidDirectoriesDoNotStopStartUp) {
  LiveRepository repo;
  const RandomModel good = Version("good", 1);
  repo.AddModel(good.config, {{1, good.tensors}});
  AddNonModelDirectories(repo.path());
  RandomModel bad = Version("bad name", 1);
  WriteModelDir(repo.path(), bad, 1, FileFormat::kSafetensors,
                formats::DType::kF32);

  // Default mode (none), no --allow-load-failures.
  ServerOptions options;
  options.model_repository = repo.path();
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<v1::ListModelsResponse> list = server->client->ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(ModelNames(*list),
              ::testing::UnorderedElementsAre("bad name", "good"))
      << ListText(*list);
  EXPECT_EQ(Available(*list, "good"), std::vector<int64_t>{1});
  ExpectListedAsFailed(*list);
  ExpectServes(*server->client, "good", 0, 1, good);
  ExpectNotFound(*server->client, "..data", 0);
}

TEST(ModelPolicyIntegrationTest, PollModeToleratesThemAppearingWhileServing) {
  LiveRepository repo;
  const RandomModel good = Version("good", 1);
  repo.AddModel(good.config, {{1, good.tensors}});
  absl::StatusOr<RunningServer> server =
      StartServer(PollingServerOptions(repo.path(), kPollSeconds));
  ASSERT_TRUE(server.ok()) << server.status();

  AddNonModelDirectories(repo.path());
  RandomModel bad = Version("bad name", 1);
  repo.AddModel(bad.config, {{1, bad.tensors}});
  // A model added last shows that a scan after all of the above finished.
  const RandomModel later = Version("later", 2);
  repo.AddModel(later.config, {{2, later.tensors}});
  absl::StatusOr<v1::ListModelsResponse> list = WaitForList(
      *server,
      [](const v1::ListModelsResponse& l) {
        return Available(l, "later") == std::vector<int64_t>{2} &&
               FindModel(l, "bad name") != nullptr;
      },
      "later AVAILABLE and 'bad name' listed");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(ModelNames(*list),
              ::testing::UnorderedElementsAre("bad name", "good", "later"))
      << ListText(*list);
  ExpectNoHiddenEntries(*list);
  ExpectListedAsFailed(*list);
  EXPECT_EQ(Available(*list, "good"), std::vector<int64_t>{1});
  ExpectServes(*server->client, "good", 0, 1, good);
  ExpectServes(*server->client, "later", 0, 2, later);
  EXPECT_TRUE(IsServing(*server->client, kInferenceService));
}

}  // namespace
}  // namespace nnserve::testing
