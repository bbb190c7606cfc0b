// Reloads in poll mode (--model-control-mode=poll) against the real
// binary, with Predict calls for version 0 in flight from several threads
// the whole time, every answer checked against the reference output of
// whichever version (and weights) answered it, and zero errors allowed:
// a new version directory appears (placed with a rename, as users are told
// to); a corrupt version appears (the old one keeps serving, the new one is
// listed FAILED with the validation message, and fixing its files makes it
// load); a version's weight file is replaced in place; a model directory is
// added and removed; SIGHUP rescans at once with a long poll interval.
// Conditions are waited for by polling ListModels (30 s at most); nothing
// asserts on durations.
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/health_watch.h"
#include "tests/server/integration/lifecycle_fixture.h"
#include "tests/util/live_repository.h"
#include "tests/util/tensor_files.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using State = v1::ModelVersionStatus;

constexpr double kPollSeconds = 0.2;
constexpr int64_t kInput = 64;
// 32 rows x ~9.4 k parameters is above the inline work limit, so the calls
// go through the scheduler and the inference workers, not only gRPC's
// threads.
constexpr int64_t kRows = 32;
// Answers of a version seen after an event before the test moves on.
constexpr int64_t kAnswers = 20;

// "m": 64 → 128 RELU → 8 IDENTITY; every seed gives the same config and
// different weights.
RandomModel ReloadModel(uint32_t seed) {
  return BuildRandomModel(
      "m", kInput,
      {LayerDef(128, Activation::kRelu), LayerDef(8, Activation::kIdentity)},
      WeightLayout::kOutIn, seed);
}

RowBatch Rows() { return RandomRows(kRows, kInput, 11); }

ExpectedAnswer Expect(const std::string& label, int64_t version,
                      const RandomModel& model) {
  return {label, version, ReferenceOutput(model, Rows())};
}

v1::PredictRequest Request(const std::string& model, int64_t version) {
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest(model, version, Rows(), Encoding::kRaw);
  EXPECT_TRUE(request.ok()) << request.status();
  return *request;
}

std::vector<int64_t> Available(const v1::ListModelsResponse& list,
                               const std::string& model = "m") {
  return VersionsIn(list, model, State::AVAILABLE);
}

// Fails the test unless the loop had no error, no wrong output and no old
// weights answering after new ones on any thread.
void ExpectCleanLoop(const CallLoop& loop) {
  ::testing::Test::RecordProperty("calls", loop.Summary());
  EXPECT_EQ(loop.errors(), 0) << loop.Summary();
  EXPECT_EQ(loop.mismatches(), 0) << loop.Summary();
  EXPECT_EQ(loop.order_violations(), 0) << loop.Summary();
}

TEST(ModelReloadIntegrationTest, NewVersionReplacesTheOldWithoutAnError) {
  LiveRepository repo;
  const RandomModel v1 = ReloadModel(1), v2 = ReloadModel(2);
  repo.AddModel(v1.config, {{1, v1.tensors}});
  absl::StatusOr<RunningServer> server =
      StartServer(PollingServerOptions(repo.path(), kPollSeconds));
  ASSERT_TRUE(server.ok()) << server.status();
  HealthWatch health(server->client->channel(), kInferenceService);
  ASSERT_TRUE(health.WaitFor(ServingStatus::kServing, seconds(30)));

  CallLoop loop(*server->client, Request("m", 0), kRows,
                {Expect("v1", 1, v1), Expect("v2", 2, v2)}, {});
  ASSERT_TRUE(loop.WaitForMoreAnswers("v1", kAnswers, seconds(30)))
      << loop.Summary();

  repo.AddVersion("m", 2, v2.tensors);
  // latest { num_versions: 1 } (the default): 2 replaces 1.
  absl::StatusOr<v1::ListModelsResponse> list = WaitForList(
      *server,
      [](const v1::ListModelsResponse& l) {
        return Available(l) == std::vector<int64_t>{2};
      },
      "version 2 alone AVAILABLE");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_TRUE(loop.WaitForMoreAnswers("v2", kAnswers, seconds(30)))
      << loop.Summary();
  loop.Stop();
  ExpectCleanLoop(loop);
  EXPECT_GT(loop.answers("v1"), 0);

  // Health never left SERVING.
  EXPECT_THAT(health.statuses(), ElementsAre(ServingStatus::kServing));
  // Version 1 is no longer served; asking for it by number says so.
  absl::StatusOr<v1::PredictResponse> old =
      server->client->Predict(Request("m", 1));
  EXPECT_EQ(old.status().code(), absl::StatusCode::kNotFound) << old.status();
  absl::StatusOr<v1::PredictResponse> now =
      server->client->Predict(Request("m", 2));
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->version(), 2);
}

TEST(ModelReloadIntegrationTest, CorruptVersionLeavesTheOldServingUntilFixed) {
  LiveRepository repo;
  const RandomModel v1 = ReloadModel(1), v2 = ReloadModel(2);
  repo.AddModel(v1.config, {{1, v1.tensors}});
  absl::StatusOr<RunningServer> server =
      StartServer(PollingServerOptions(repo.path(), kPollSeconds));
  ASSERT_TRUE(server.ok()) << server.status();
  HealthWatch health(server->client->channel(), kInferenceService);
  ASSERT_TRUE(health.WaitFor(ServingStatus::kServing, seconds(30)));

  CallLoop loop(*server->client, Request("m", 0), kRows,
                {Expect("v1", 1, v1), Expect("v2", 2, v2)}, {});
  ASSERT_TRUE(loop.WaitForMoreAnswers("v1", kAnswers, seconds(30)))
      << loop.Summary();

  // Version 2's weight file cut in half, as a copy still in progress or
  // an interrupted download would leave it.
  const std::string good = SafetensorsBytes(v2.tensors, formats::DType::kF32);
  repo.AddVersionFiles("m", 2,
                       {{kWeightFile, good.substr(0, good.size() / 2)}});
  absl::StatusOr<v1::ListModelsResponse> list = WaitForList(
      *server,
      [](const v1::ListModelsResponse& l) {
        auto versions = Versions(l, "m");
        return versions.count(2) && versions[2].state() == State::FAILED;
      },
      "version 2 FAILED");
  ASSERT_TRUE(list.ok()) << list.status();
  const std::string error = Versions(*list, "m")[2].error();
  EXPECT_THAT(error, HasSubstr(kWeightFile));
  EXPECT_THAT(error, HasSubstr("truncated"));
  EXPECT_EQ(Available(*list), std::vector<int64_t>{1}) << ListText(*list);
  // The old version keeps answering after the failure.
  ASSERT_TRUE(loop.WaitForMoreAnswers("v1", kAnswers, seconds(30)))
      << loop.Summary();
  EXPECT_EQ(loop.answers("v2"), 0);
  // The log says the same: a line about model m version 2 carrying the
  // message (compared up to the first character the log would escape).
  const std::string head =
      error.substr(0, std::min(error.find_first_of("\"\\\n"), size_t{40}));
  bool logged = false;
  for (absl::string_view line :
       absl::StrSplit(server->process->ReadLog(), '\n')) {
    logged = logged || (absl::StrContains(line, "model=m") &&
                        absl::StrContains(line, "version=2") &&
                        absl::StrContains(line, head));
  }
  EXPECT_TRUE(logged) << "no log line for m version 2 with '" << head << "'";

  // Completing the file (a new file renamed over the bad one) makes the
  // version load: a failed version is retried when its files change.
  repo.ReplaceWeights("m", 2, v2.tensors);
  list = WaitForList(
      *server,
      [](const v1::ListModelsResponse& l) {
        return Available(l) == std::vector<int64_t>{2};
      },
      "version 2 AVAILABLE after its file was fixed");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(Versions(*list, "m")[2].error(), IsEmpty());
  ASSERT_TRUE(loop.WaitForMoreAnswers("v2", kAnswers, seconds(30)))
      << loop.Summary();
  loop.Stop();
  ExpectCleanLoop(loop);
  EXPECT_THAT(health.statuses(), ElementsAre(ServingStatus::kServing));
}

TEST(ModelReloadIntegrationTest, WeightsReplacedInPlaceAreReloaded) {
  LiveRepository repo;
  const RandomModel before = ReloadModel(1), after = ReloadModel(5);
  repo.AddModel(before.config, {{1, before.tensors}});
  absl::StatusOr<RunningServer> server =
      StartServer(PollingServerOptions(repo.path(), kPollSeconds));
  ASSERT_TRUE(server.ok()) << server.status();

  CallLoop loop(*server->client, Request("m", 0), kRows,
                {Expect("before", 1, before), Expect("after", 1, after)}, {});
  ASSERT_TRUE(loop.WaitForMoreAnswers("before", kAnswers, seconds(30)))
      << loop.Summary();

  // Same version number, new weights: the file's inode, mtime (and here
  // not its size) change.
  repo.ReplaceWeights("m", 1, after.tensors);
  ASSERT_TRUE(loop.WaitForMoreAnswers("after", kAnswers, seconds(30)))
      << loop.Summary();
  loop.Stop();
  ExpectCleanLoop(loop);

  absl::StatusOr<v1::ListModelsResponse> list = server->client->ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(Available(*list), std::vector<int64_t>{1}) << ListText(*list);
}

TEST(ModelReloadIntegrationTest, ModelDirectoryAddedThenRemoved) {
  LiveRepository repo;
  const RandomModel m = ReloadModel(1);
  repo.AddModel(m.config, {{1, m.tensors}});
  absl::StatusOr<RunningServer> server =
      StartServer(PollingServerOptions(repo.path(), kPollSeconds));
  ASSERT_TRUE(server.ok()) << server.status();

  // "m" is called throughout; "n" comes and goes beside it.
  CallLoop loop(*server->client, Request("m", 0), kRows, {Expect("m", 1, m)},
                {});
  ASSERT_TRUE(loop.WaitForMoreAnswers("m", kAnswers, seconds(30)))
      << loop.Summary();

  const RandomModel n = BuildRandomModel(
      "n", 12,
      {LayerDef(16, Activation::kTanh), LayerDef(3, Activation::kSoftmax)},
      WeightLayout::kInOut, 9);
  repo.AddModel(n.config, {{4, n.tensors}});
  absl::StatusOr<v1::ListModelsResponse> list = WaitForList(
      *server,
      [](const v1::ListModelsResponse& l) {
        return Available(l, "n") == std::vector<int64_t>{4};
      },
      "model n version 4 AVAILABLE");
  ASSERT_TRUE(list.ok()) << list.status();
  const RowBatch rows = RandomRows(3, 12, 2);
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("n", 0, rows, Encoding::kValues);
  ASSERT_TRUE(request.ok()) << request.status();
  absl::StatusOr<v1::PredictResponse> answer =
      server->client->Predict(*request);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->version(), 4);
  absl::StatusOr<RowBatch> output = DecodeTensor(answer->output());
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_LE(MaxRowRelativeError(output->values, ReferenceOutput(n, rows), 3),
            1e-5);

  repo.RemoveModel("n");
  list = WaitForList(
      *server,
      [](const v1::ListModelsResponse& l) { return Available(l, "n").empty(); },
      "model n no longer AVAILABLE");
  ASSERT_TRUE(list.ok()) << list.status();
  answer = server->client->Predict(*request);
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kNotFound)
      << answer.status();
  EXPECT_EQ(Available(*list), std::vector<int64_t>{1}) << ListText(*list);

  ASSERT_TRUE(loop.WaitForMoreAnswers("m", kAnswers, seconds(30)))
      << loop.Summary();
  loop.Stop();
  ExpectCleanLoop(loop);
}

TEST(ModelReloadIntegrationTest, SighupRescansAtOnce) {
  LiveRepository repo;
  const RandomModel v1 = ReloadModel(1), v2 = ReloadModel(2);
  repo.AddModel(v1.config, {{1, v1.tensors}});
  // An hour between scans: only SIGHUP can make version 2 appear within
  // the test's waits.
  absl::StatusOr<RunningServer> server =
      StartServer(PollingServerOptions(repo.path(), 3600));
  ASSERT_TRUE(server.ok()) << server.status();

  CallLoop loop(*server->client, Request("m", 0), kRows,
                {Expect("v1", 1, v1), Expect("v2", 2, v2)}, {});
  ASSERT_TRUE(loop.WaitForMoreAnswers("v1", kAnswers, seconds(30)))
      << loop.Summary();
  repo.AddVersion("m", 2, v2.tensors);
  absl::StatusOr<v1::ListModelsResponse> list = server->client->ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(Available(*list), std::vector<int64_t>{1}) << ListText(*list);

  ASSERT_TRUE(server->process->Signal(SIGHUP).ok());
  list = WaitForList(
      *server,
      [](const v1::ListModelsResponse& l) {
        return Available(l) == std::vector<int64_t>{2};
      },
      "version 2 AVAILABLE after SIGHUP");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_TRUE(loop.WaitForMoreAnswers("v2", kAnswers, seconds(30)))
      << loop.Summary();
  loop.Stop();
  ExpectCleanLoop(loop);
  // SIGHUP is a rescan, not a shutdown.
  EXPECT_TRUE(server->process->Running());
  EXPECT_TRUE(IsServing(*server->client, kInferenceService));
}

}  // namespace
}  // namespace nnserve::testing
