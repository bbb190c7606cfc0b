// Shared helpers for the server integration tests (tests/server/
// *_integration_test.cc): a temporary model repository, starting the real
// nnserve binary (tests/util/server_process.h) and waiting until gRPC health
// says SERVING, a connected nnserve::Client, output comparison, a base for
// suites that share one server (SharedServerTest), Predicts sent
// asynchronously (AsyncPredicts), a model heavy enough to queue calls
// (HeavyModel) and reading /metrics (ScrapeMetrics, MetricSample).
//
// Run them (each test starts its own nnserve on 127.0.0.1 with port 0):
//   cmake --build build --target nnserve server_predict_integration_test ...
//   ctest --test-dir build -R 'Integration|server_python_client' -j2
// or directly, with NNSERVE_BINARY=build/server/nnserve in the environment:
//   build/tests/server/server_predict_integration_test
// On failure the server's log tail is printed (ServerProcess destructor).
//
// Header-only so that the test utility library (tests/util) stays free of
// gRPC. Temporary repositories come from tests/util/model_builder.h
// (ScopedTempDir, WriteModelDir). Each object is owned by the test that creates
// it; nothing here is shared between threads except the Client (which is
// thread-safe).
#ifndef NNSERVE_TESTS_SERVER_INTEGRATION_FIXTURE_H_
#define NNSERVE_TESTS_SERVER_INTEGRATION_FIXTURE_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "client/channel.h"
#include "client/client.h"
#include "client/rows.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "tests/util/loopback_http.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"
#include "tests/util/server_process.h"

namespace nnserve::testing {

inline constexpr char kInferenceService[] = "nnserve.v1.Inference";

// A Client on a plaintext loopback channel with generous message limits.
inline absl::StatusOr<std::unique_ptr<Client>> ConnectClient(
    const std::string& target) {
  ChannelOptions options;
  options.target = target;
  options.max_message_bytes = 256 << 20;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options);
  if (!channel.ok()) return channel.status();
  return std::make_unique<Client>(*std::move(channel));
}

// Health of `service` on `client`, as a probe: true only for SERVING.
inline bool IsServing(const Client& client, const std::string& service) {
  CallOptions options;
  options.timeout = std::chrono::milliseconds(500);
  absl::StatusOr<ServingStatus> status = client.Health(service, options);
  return status.ok() && *status == ServingStatus::kServing;
}

// A running nnserve and a Client connected to it.
struct RunningServer {
  std::unique_ptr<ServerProcess> process;
  std::unique_ptr<Client> client;
};

// Starts nnserve with `options` (port 0 + --port-file), then waits until
// both health services ("" and nnserve.v1.Inference) say SERVING.
inline absl::StatusOr<RunningServer> StartServer(
    const ServerOptions& options,
    std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  RunningServer server;
  absl::StatusOr<std::unique_ptr<ServerProcess>> process =
      ServerProcess::Start(options, timeout);
  if (!process.ok()) return process.status();
  server.process = *std::move(process);
  absl::StatusOr<std::unique_ptr<Client>> client =
      ConnectClient(server.process->grpc_target());
  if (!client.ok()) return client.status();
  server.client = *std::move(client);
  const Client& c = *server.client;
  absl::Status serving = server.process->WaitUntil(
      [&c] { return IsServing(c, "") && IsServing(c, kInferenceService); },
      timeout, "health SERVING for \"\" and nnserve.v1.Inference");
  if (!serving.ok()) return serving;
  return server;
}

// The reference output of `model` for `batch` ([rows, output units],
// row-major, double precision; tests/util/reference.h).
inline std::vector<double> ReferenceOutput(const RandomModel& model,
                                           const RowBatch& batch) {
  return ReferenceForward(model.config, model.tensors, batch.values,
                          batch.rows);
}

// "heavy": 8 → 1024 RELU → 1024 RELU → 1024 RELU → 10 SOFTMAX (OUT_IN),
// ~2.1 M parameters, weights from `seed`. A 256-row call is ~1 GFLOP and a
// 1024-row call ~4.3 GFLOP (at least ~20 ms even at this CPU's peak), so
// calls sent together queue up behind the inference workers.
inline RandomModel HeavyModel(uint32_t seed = 3) {
  return BuildRandomModel("heavy", 8,
                          {LayerDef(1024, engine::Activation::kRelu),
                           LayerDef(1024, engine::Activation::kRelu),
                           LayerDef(1024, engine::Activation::kRelu),
                           LayerDef(10, engine::Activation::kSoftmax)},
                          engine::WeightLayout::kOutIn, seed);
}

// Index of the largest element of row `r` (first one on ties).
inline int ArgMaxRow(const std::vector<double>& values, int64_t cols,
                     int64_t r) {
  auto begin = values.begin() + r * cols;
  return static_cast<int>(std::max_element(begin, begin + cols) - begin);
}

// Base of a test suite whose tests all run against one nnserve over one
// temporary repository, started once for the suite. `Suite` is the derived
// class (each suite gets its own repo_ and server_). The suite defines a
// public static SetUpSharedSuite() (instead of SetUpTestSuite, which is this
// class's): it makes repo_ (CreateRepository), writes its models there and
// calls StartSharedServer; a suite with more state of its own tears it down
// in its own TearDownTestSuite, which calls this one.
//
// Setup records no gtest failure: GoogleTest skips every test of a suite
// whose SetUpTestSuite failed, and CTest counts skipped tests as passed. When
// the server does not start or SetUpSharedSuite throws, the reason is kept in
// setup_error_ and every test fails in SetUp with it.
template <typename Suite>
class SharedServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      Suite::SetUpSharedSuite();
    } catch (const std::exception& e) {
      RecordSetupError(absl::StrCat("suite setup threw: ", e.what()));
    }
  }

  // Makes the repository directory (see ScopedTempDir for `name`).
  static void CreateRepository(const std::string& name) {
    repo_ = new ScopedTempDir(name);
  }

  // Starts nnserve on repo_ with `extra_args` (StartServer) into server_;
  // if it does not start, records why instead.
  static void StartSharedServer(std::vector<std::string> extra_args) {
    ServerOptions options;
    options.model_repository = repo_->path();
    options.extra_args = std::move(extra_args);
    // A server that fails to start is stopped inside StartServer, where
    // ~ServerProcess reports an unclean exit or a sanitizer report as a
    // gtest failure: collect those into the message instead.
    ::testing::TestPartResultArray failures;
    absl::StatusOr<RunningServer> server = absl::UnknownError("not started");
    {
      ::testing::ScopedFakeTestPartResultReporter collect(&failures);
      server = StartServer(options);
    }
    if (server.ok()) {
      server_ = new RunningServer(*std::move(server));
      return;
    }
    std::string error =
        absl::StrCat("the server did not start: ", server.status().ToString());
    for (int i = 0; i < failures.size(); ++i) {
      absl::StrAppend(&error, "\n", failures.GetTestPartResult(i).message());
    }
    RecordSetupError(std::move(error));
  }

  // Keeps the first reason the suite's setup failed.
  static void RecordSetupError(std::string error) {
    if (setup_error_.empty()) setup_error_ = std::move(error);
  }

  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete repo_;
    repo_ = nullptr;
    setup_error_.clear();
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_NE(server_, nullptr)
        << "SetUpSharedSuite did not call StartSharedServer";
  }

  static inline ScopedTempDir* repo_ = nullptr;
  static inline RunningServer* server_ = nullptr;
  static inline std::string setup_error_;
};

// Predict calls sent asynchronously on one Client, and their outcomes. The
// test starts calls from one thread (Start) and waits for them (WaitFor);
// completions arrive on gRPC's threads. The destructor cancels calls still
// running and waits for their answers, so that none outlives this object.
class AsyncPredicts {
 public:
  // One call. Read its fields once it has completed (after WaitFor).
  struct Call {
    grpc::ClientContext context;
    v1::PredictRequest request;
    v1::PredictResponse response;
    grpc::Status status;
    bool done = false;
    // Whether it completed after Mark() was called.
    bool done_after_mark = false;
  };

  explicit AsyncPredicts(const Client& client) : client_(client) {}
  AsyncPredicts(const AsyncPredicts&) = delete;
  AsyncPredicts& operator=(const AsyncPredicts&) = delete;

  ~AsyncPredicts() {
    for (const std::unique_ptr<Call>& call : calls_) call->context.TryCancel();
    WaitFor(calls_.size(), std::chrono::seconds(120));
  }

  // Starts a Predict of (a copy of) `request` with its deadline `timeout`
  // from now.
  void Start(const v1::PredictRequest& request,
             std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    calls_.push_back(std::make_unique<Call>());
    Call* call = calls_.back().get();
    call->request = request;
    call->context.set_deadline(std::chrono::system_clock::now() + timeout);
    client_.stub().async()->Predict(&call->context, &call->request,
                                    &call->response,
                                    [this, call](grpc::Status status) {
                                      std::lock_guard<std::mutex> lock(mutex_);
                                      call->status = std::move(status);
                                      call->done = true;
                                      call->done_after_mark = marked_;
                                      ++completed_;
                                      changed_.notify_all();
                                    });
  }

  // Waits up to `timeout` until at least `count` calls have completed;
  // whether they have.
  bool WaitFor(size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout,
                             [&] { return completed_ >= count; });
  }

  // Calls that complete from now on have done_after_mark set.
  void Mark() {
    std::lock_guard<std::mutex> lock(mutex_);
    marked_ = true;
  }

  size_t completed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return completed_;
  }

  // The calls in the order they were started.
  size_t size() const { return calls_.size(); }
  const Call& operator[](size_t i) const { return *calls_[i]; }

 private:
  const Client& client_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  size_t completed_ = 0;
  bool marked_ = false;
  std::vector<std::unique_ptr<Call>> calls_;
};

// The body of GET /metrics on the server's metrics port.
inline absl::StatusOr<std::string> ScrapeMetrics(const ServerProcess& process) {
  absl::StatusOr<HttpResponse> response =
      HttpGet(process.metrics_port(), "/metrics");
  if (!response.ok()) return response.status();
  return response->body;
}

// The value of the sample `series` (exact text before the value, e.g.
// `nnserve_inference_rows_total{model="heavy",version="1"}`) in a scrape,
// if present.
inline std::optional<double> MetricSample(const std::string& text,
                                          const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
  }
  return std::nullopt;
}

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_INTEGRATION_FIXTURE_H_
