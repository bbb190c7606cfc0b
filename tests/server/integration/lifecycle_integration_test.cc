// Process lifecycle of the real nnserve binary: health NOT_SERVING while
// models load, SERVING once they are loaded and warmed up, NOT_SERVING on
// SIGTERM; draining in-flight calls on SIGTERM and exiting 0; refusing new
// calls once shutdown began.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/health_watch.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;

constexpr int kShutdownTimeoutSeconds = 20;

ServerOptions Options(const std::filesystem::path& repository) {
  ServerOptions options;
  options.model_repository = repository;
  options.extra_args = {"--threads=2", absl::StrCat("--shutdown-timeout=",
                                                    kShutdownTimeoutSeconds)};
  return options;
}

// Statuses form NOT_SERVING* SERVING+ (NOT_SERVING)* — never back to
// SERVING after NOT_SERVING once it was SERVING.
bool IsServingThenDraining(const std::vector<ServingStatus>& statuses) {
  int phase = 0;  // 0: before SERVING, 1: SERVING, 2: NOT_SERVING after.
  for (ServingStatus s : statuses) {
    if (s == ServingStatus::kServing) {
      if (phase == 2) return false;
      phase = 1;
    } else if (s == ServingStatus::kNotServing) {
      if (phase == 1) phase = 2;
    } else {
      return false;
    }
  }
  return true;
}

TEST(LifecycleIntegrationTest, HealthIsNotServingUntilEveryModelIsLoaded) {
  ScopedTempDir repo("nnserve_lifecycle_itest");
  // A big model (~5.5 M parameters, 22 MB; ~0.25 s to load here) keeps
  // the server loading long after it starts listening, and a small one
  // loads first.
  WriteModelDir(repo.path(),
                BuildRandomModel("big", 512,
                                 {LayerDef(1536, Activation::kRelu),
                                  LayerDef(1536, Activation::kRelu),
                                  LayerDef(1536, Activation::kRelu),
                                  LayerDef(4, Activation::kSoftmax)},
                                 WeightLayout::kOutIn, 1),
                1, FileFormat::kSafetensors, formats::DType::kF32);
  WriteModelDir(
      repo.path(),
      BuildRandomModel("a_small", 3, {LayerDef(2, Activation::kIdentity)},
                       WeightLayout::kOutIn, 2),
      1, FileFormat::kSafetensors, formats::DType::kF32);

  absl::StatusOr<std::unique_ptr<ServerProcess>> process =
      ServerProcess::Launch(Options(repo.path()));
  ASSERT_TRUE(process.ok()) << process.status();
  // The server listens (health NOT_SERVING) before it loads the models and
  // logs the port it bound.
  absl::StatusOr<std::string> port =
      (*process)->WaitForLogValue("event=listening grpc_port=", seconds(60));
  ASSERT_TRUE(port.ok()) << port.status();
  absl::StatusOr<std::unique_ptr<Client>> client =
      ConnectClient(absl::StrCat("127.0.0.1:", *port));
  ASSERT_TRUE(client.ok()) << client.status();
  HealthWatch overall((*client)->channel(), "");
  HealthWatch inference((*client)->channel(), kInferenceService);

  ASSERT_TRUE(overall.WaitFor(ServingStatus::kServing, seconds(60)))
      << (*process)->LogTail();
  ASSERT_TRUE(inference.WaitFor(ServingStatus::kServing, seconds(60)));
  // Loading the big model takes far longer than opening the watch, so the
  // first status the server pushed was NOT_SERVING.
  EXPECT_THAT(overall.statuses(),
              ElementsAre(ServingStatus::kNotServing, ServingStatus::kServing));
  EXPECT_THAT(inference.statuses(),
              ElementsAre(ServingStatus::kNotServing, ServingStatus::kServing));

  // SERVING means every version is loaded: ListModels says AVAILABLE and
  // the big model answers.
  absl::StatusOr<v1::ListModelsResponse> list = (*client)->ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->models_size(), 2);
  for (const v1::ModelStatus& model : list->models()) {
    for (const v1::ModelVersionStatus& version : model.versions()) {
      EXPECT_EQ(version.state(), v1::ModelVersionStatus::AVAILABLE)
          << model.name() << " v" << version.version();
    }
  }
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("big", 0, RandomRows(2, 512, 1), Encoding::kRaw);
  ASSERT_TRUE(request.ok());
  EXPECT_TRUE((*client)->Predict(*request).ok());

  // The port file appears once serving, with the logged gRPC port.
  ASSERT_TRUE((*process)->WaitForPorts(seconds(10)).ok());
  EXPECT_EQ(absl::StrCat((*process)->grpc_port()), *port);

  ASSERT_TRUE((*process)->Signal(SIGTERM).ok());
  EXPECT_TRUE(overall.WaitFor(ServingStatus::kNotServing, seconds(30)));
  EXPECT_TRUE(inference.WaitFor(ServingStatus::kNotServing, seconds(30)));
  // Hang up, as a prober that saw NOT_SERVING would (an open Watch keeps
  // the server's shutdown waiting; see OpenHealthWatch... below).
  overall.Cancel();
  inference.Cancel();
  absl::StatusOr<ExitStatus> exit =
      (*process)->WaitForExit(seconds(kShutdownTimeoutSeconds + 10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited && exit->code == 0) << exit->ToString();
  EXPECT_TRUE(IsServingThenDraining(overall.statuses()));
}

TEST(LifecycleIntegrationTest, SigtermDrainsInFlightCallsAndExitsZero) {
  ScopedTempDir repo("nnserve_drain_itest");
  // A 1024-row batch is ~4 GFLOP, tens of ms per call, and runs on the two
  // inference workers.
  const RandomModel heavy = HeavyModel(7);
  WriteModelDir(repo.path(), heavy, 1, FileFormat::kSafetensors,
                formats::DType::kF32);
  absl::StatusOr<RunningServer> server = StartServer(Options(repo.path()));
  ASSERT_TRUE(server.ok()) << server.status();
  ServerProcess& process = *server->process;
  const Client& client = *server->client;
  HealthWatch watch(client.channel(), kInferenceService);
  ASSERT_TRUE(watch.WaitFor(ServingStatus::kServing, seconds(30)));

  constexpr int kCalls = 24;
  constexpr int64_t kRows = 1024;
  const RowBatch batch = RandomRows(kRows, 8, 99);
  const std::vector<double> expected = ReferenceOutput(heavy, batch);
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("heavy", 0, batch, Encoding::kRaw);
  ASSERT_TRUE(request.ok()) << request.status();

  AsyncPredicts calls(client);
  for (int i = 0; i < kCalls; ++i) calls.Start(*request);
  // Signal once the server is demonstrably working through the calls; calls
  // completing from then on count as completed after the signal.
  ASSERT_TRUE(calls.WaitFor(1, seconds(60)));
  calls.Mark();
  ASSERT_TRUE(process.Signal(SIGTERM).ok());

  // Health goes NOT_SERVING, and the server refuses new calls.
  EXPECT_TRUE(watch.WaitFor(ServingStatus::kNotServing, seconds(30)));
  watch.Cancel();
  {
    absl::StatusOr<std::unique_ptr<Client>> late =
        ConnectClient(process.grpc_target());
    ASSERT_TRUE(late.ok());
    absl::StatusOr<v1::PredictRequest> small =
        MakePredictRequest("heavy", 0, RandomRows(1, 8, 1), Encoding::kRaw);
    ASSERT_TRUE(small.ok());
    // Refused with UNAVAILABLE (by the draining service, or as a closed
    // connection once the process has ended): never served once health
    // said NOT_SERVING (no --drain-seconds here), never CANCELLED.
    const absl::Status status = (*late)->Predict(*small).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  }

  ASSERT_TRUE(calls.WaitFor(kCalls, seconds(120)))
      << calls.completed() << " of " << kCalls << " calls completed";
  absl::StatusOr<ExitStatus> exit =
      process.WaitForExit(seconds(kShutdownTimeoutSeconds + 10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited && exit->code == 0) << exit->ToString();

  // Every call the server accepted completed OK with the right output;
  // calls that had not reached the server yet may be refused (UNAVAILABLE),
  // nothing else. Calls finished after the signal prove it drained.
  int ok_after_signal = 0;
  for (int i = 0; i < kCalls; ++i) {
    const AsyncPredicts::Call& call = calls[i];
    SCOPED_TRACE(absl::StrCat("call ", i));
    ASSERT_THAT(
        call.status.error_code(),
        AnyOf(Eq(grpc::StatusCode::OK), Eq(grpc::StatusCode::UNAVAILABLE)))
        << call.status.error_message();
    if (!call.status.ok()) continue;
    absl::StatusOr<RowBatch> output = DecodeTensor(call.response.output());
    ASSERT_TRUE(output.ok()) << output.status();
    EXPECT_LE(MaxRowRelativeError(output->values, expected, kRows), 1e-5);
    if (call.done_after_mark) ++ok_after_signal;
  }
  EXPECT_GT(ok_after_signal, 0);
  EXPECT_THAT(process.ReadLog(), HasSubstr("event=shutdown_complete"));
}

// gRPC clients with client-side health checking keep a Watch stream open on
// every connection. On SIGTERM the server must end such streams once its
// own calls have drained, not keep running until --shutdown-timeout.
TEST(LifecycleIntegrationTest, OpenHealthWatchDoesNotHoldShutdownToTimeout) {
  ScopedTempDir repo("nnserve_watch_itest");
  WriteModelDir(repo.path(),
                BuildRandomModel("m", 3, {LayerDef(2, Activation::kIdentity)},
                                 WeightLayout::kOutIn, 2),
                1, FileFormat::kSafetensors, formats::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  // Far longer than the wait below: exiting in time means the server did
  // not wait for the watch to be cancelled at the deadline.
  options.extra_args = {"--shutdown-timeout=600"};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  HealthWatch watch(server->client->channel(), "");
  ASSERT_TRUE(watch.WaitFor(ServingStatus::kServing, seconds(30)));

  ASSERT_TRUE(server->process->Signal(SIGTERM).ok());
  EXPECT_TRUE(watch.WaitFor(ServingStatus::kNotServing, seconds(30)));
  ASSERT_TRUE(watch.WaitForEnd(seconds(20)))
      << "the Watch stream is still open 20 s after SIGTERM";
  absl::StatusOr<ExitStatus> exit = server->process->WaitForExit(seconds(30));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited && exit->code == 0) << exit->ToString();
}

TEST(LifecycleIntegrationTest, IdleServerExitsZeroOnSigtermAndSigint) {
  ScopedTempDir repo("nnserve_idle_itest");
  WriteModelDir(repo.path(),
                BuildRandomModel("m", 3, {LayerDef(2, Activation::kIdentity)},
                                 WeightLayout::kOutIn, 2),
                1, FileFormat::kSafetensors, formats::DType::kF32);
  for (int sig : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(strsignal(sig));
    absl::StatusOr<RunningServer> server = StartServer(Options(repo.path()));
    ASSERT_TRUE(server.ok()) << server.status();
    ASSERT_TRUE(server->process->Signal(sig).ok());
    absl::StatusOr<ExitStatus> exit =
        server->process->WaitForExit(seconds(kShutdownTimeoutSeconds + 10));
    ASSERT_TRUE(exit.ok()) << exit.status();
    EXPECT_TRUE(exit->exited && exit->code == 0) << exit->ToString();
    EXPECT_THAT(server->process->ReadLog(),
                HasSubstr("event=shutdown_complete"));
  }
}

}  // namespace
}  // namespace nnserve::testing
