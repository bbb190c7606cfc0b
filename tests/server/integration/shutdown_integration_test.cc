// Shutdown as callers that retry see it, against the real binary: callers
// in a loop that retry UNAVAILABLE (the code every gRPC client library and
// load balancer retries) keep calling while the server gets SIGTERM. Every
// call must come back OK with the exact answer or UNAVAILABLE — never
// CANCELLED, which clients do not retry — and the process exits 0.
// With --drain-seconds, health turns NOT_SERVING at once while calls are
// still answered normally, so balancers can move away first.
#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A model whose 16-row calls take a few hundred microseconds, so that
// calls are always in flight (in the handler, queued or computing) when the
// signal arrives.
RandomModel ShutdownModel() {
  return BuildRandomModel("m", 64,
                          {LayerDef(256, engine::Activation::kRelu),
                           LayerDef(256, engine::Activation::kRelu),
                           LayerDef(10, engine::Activation::kSoftmax)},
                          engine::WeightLayout::kOutIn, 5);
}

// Callers that call Predict back to back until the server is gone: after
// UNAVAILABLE they wait 10 ms and call again (as a retrying client would),
// and stop once the server process has exited. Half of them share one
// channel, half have their own, so calls race the shutdown both on one
// HTTP/2 connection and on many.
class RetryingCallers {
 public:
  RetryingCallers(const std::string& target, const v1::PredictRequest& request,
                  std::vector<double> expected, int64_t rows, int threads)
      : request_(request), expected_(std::move(expected)), rows_(rows) {
    absl::StatusOr<std::unique_ptr<Client>> shared = ConnectClient(target);
    if (shared.ok()) shared_ = *std::move(shared);
    for (int t = 0; t < threads; ++t) {
      std::unique_ptr<Client> own;
      if (t % 2 == 1) {
        absl::StatusOr<std::unique_ptr<Client>> c = ConnectClient(target);
        if (c.ok()) own = *std::move(c);
      }
      threads_.emplace_back([this, own = std::move(own)] {
        const Client& client = own ? *own : *shared_;
        Run(client);
      });
    }
  }
  ~RetryingCallers() { Join(); }

  void StopAfterServerExit() { server_gone_ = true; }
  void Join() {
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  // Calls answered, by code name; wrong OK answers counted as "MISMATCH".
  std::map<std::string, int64_t> codes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return codes_;
  }
  int64_t ok_calls() const { return ok_.load(); }
  // Calls that started after `t` and were answered OK.
  int64_t OkStartedAfter(std::chrono::steady_clock::time_point t) const {
    std::lock_guard<std::mutex> lock(mutex_);
    int64_t n = 0;
    for (auto start : ok_starts_) n += start > t ? 1 : 0;
    return n;
  }

 private:
  void Run(const Client& client) {
    CallOptions options;
    options.timeout = seconds(20);
    while (true) {
      const auto start = std::chrono::steady_clock::now();
      absl::StatusOr<v1::PredictResponse> response =
          client.Predict(request_, options);
      std::string code;
      if (response.ok()) {
        absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
        const bool exact =
            output.ok() &&
            MaxRowRelativeError(output->values, expected_, rows_) <= 1e-5;
        code = exact ? "OK" : "MISMATCH";
      } else {
        code = std::string(absl::StatusCodeToString(response.status().code()));
        if (code != "UNAVAILABLE") {
          code += ": " + std::string(response.status().message());
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ++codes_[code];
        if (code == "OK") ok_starts_.push_back(start);
      }
      if (code == "OK") ok_.fetch_add(1);
      if (!response.ok()) {
        if (server_gone_) return;
        std::this_thread::sleep_for(milliseconds(10));
      }
    }
  }

  const v1::PredictRequest request_;
  const std::vector<double> expected_;
  const int64_t rows_;
  std::unique_ptr<Client> shared_;
  std::atomic<bool> server_gone_{false};
  std::atomic<int64_t> ok_{0};
  mutable std::mutex mutex_;
  std::map<std::string, int64_t> codes_;
  std::vector<std::chrono::steady_clock::time_point> ok_starts_;
  std::vector<std::thread> threads_;
};

struct Fixture {
  ScopedTempDir repo{"nnserve_shutdown_itest"};
  RandomModel model = ShutdownModel();
  RowBatch batch = RandomRows(16, 64, 11);
  std::vector<double> expected;
  v1::PredictRequest request;

  Fixture() {
    WriteModelDir(repo.path(), model, 1, FileFormat::kSafetensors,
                  formats::DType::kF32);
    expected = ReferenceOutput(model, batch);
    absl::StatusOr<v1::PredictRequest> r =
        MakePredictRequest("m", 0, batch, Encoding::kRaw);
    if (r.ok()) request = *std::move(r);
  }
};

// Sends SIGTERM while the callers run, waits for exit 0, then stops them
// once each has seen the server gone.
void TerminateUnderLoad(RunningServer& server, RetryingCallers& callers) {
  ASSERT_TRUE(server.process->Signal(SIGTERM).ok());
  absl::StatusOr<ExitStatus> exit = server.process->WaitForExit(seconds(60));
  callers.StopAfterServerExit();
  callers.Join();
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited && exit->code == 0) << exit->ToString();
}

// Every answer was an exact OK or UNAVAILABLE.
void ExpectOnlyOkOrUnavailable(const std::map<std::string, int64_t>& codes) {
  for (const auto& [code, count] : codes) {
    EXPECT_TRUE(code == "OK" || code == "UNAVAILABLE")
        << count << " calls answered " << code;
  }
}

TEST(ShutdownIntegrationTest, RetryingCallersSeeOnlyOkOrUnavailable) {
  Fixture f;
  ASSERT_FALSE(f.request.model().empty());
  // Three rounds: each is a fresh server with its own timing.
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    ServerOptions options;
    options.model_repository = f.repo.path();
    options.extra_args = {"--threads=2"};
    absl::StatusOr<RunningServer> server = StartServer(options);
    ASSERT_TRUE(server.ok()) << server.status();
    RetryingCallers callers(server->process->grpc_target(), f.request,
                            f.expected, f.batch.rows, 8);
    const absl::Status warm =
        server->process->WaitUntil([&] { return callers.ok_calls() >= 200; },
                                   seconds(60), "200 calls answered");
    ASSERT_TRUE(warm.ok()) << warm;
    ASSERT_NO_FATAL_FAILURE(TerminateUnderLoad(*server, callers));
    const std::map<std::string, int64_t> codes = callers.codes();
    ExpectOnlyOkOrUnavailable(codes);
    EXPECT_GE(codes.count("OK") ? codes.at("OK") : 0, 200);
  }
}

TEST(ShutdownIntegrationTest, DrainSecondsKeepServingAfterHealthTurns) {
  Fixture f;
  ASSERT_FALSE(f.request.model().empty());
  ServerOptions options;
  options.model_repository = f.repo.path();
  options.extra_args = {"--threads=2", "--drain-seconds=3"};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  RetryingCallers callers(server->process->grpc_target(), f.request, f.expected,
                          f.batch.rows, 4);
  const absl::Status warm =
      server->process->WaitUntil([&] { return callers.ok_calls() >= 50; },
                                 seconds(60), "50 calls answered");
  ASSERT_TRUE(warm.ok()) << warm;
  ASSERT_TRUE(server->process->Signal(SIGTERM).ok());
  // Health turns NOT_SERVING (a balancer's cue to move away) ...
  const Client& probe = *server->client;
  const absl::Status turned = server->process->WaitUntil(
      [&] {
        absl::StatusOr<ServingStatus> s = probe.Health("");
        return s.ok() && *s == ServingStatus::kNotServing;
      },
      seconds(2), "health NOT_SERVING after SIGTERM");
  ASSERT_TRUE(turned.ok()) << turned;
  const auto not_serving_seen = std::chrono::steady_clock::now();
  // ... while calls that start after that are still answered normally.
  absl::StatusOr<v1::PredictResponse> late = probe.Predict(f.request);
  EXPECT_TRUE(late.ok()) << late.status();
  absl::StatusOr<ServingStatus> inference = probe.Health(kInferenceService);
  EXPECT_TRUE(inference.ok() && *inference == ServingStatus::kNotServing);

  absl::StatusOr<ExitStatus> exit = server->process->WaitForExit(seconds(60));
  callers.StopAfterServerExit();
  callers.Join();
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited && exit->code == 0) << exit->ToString();
  EXPECT_GT(callers.OkStartedAfter(not_serving_seen), 0);
  ExpectOnlyOkOrUnavailable(callers.codes());
  const std::string log = server->process->ReadLog();
  EXPECT_THAT(log, ::testing::HasSubstr("event=drain_started"));
}

}  // namespace
}  // namespace nnserve::testing
