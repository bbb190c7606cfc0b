// Dynamic batching in the real nnserve binary: many concurrent callers with
// distinct inputs and random batch sizes each get exactly their own rows
// (checked against the reference forward pass) while the batcher merges
// them (nnserve_batch_rows accounts for every row); a model's config.pbtxt
// dynamic_batching overrides the server defaults (queue size 1 → calls
// refused with RESOURCE_EXHAUSTED naming max_queue_size); SIGTERM while
// calls are queued answers every one of them.
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration_fixture.h"
#include "tests/util/loopback_http.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using std::chrono::seconds;

// The value of the sample `series` (exact text before the value) in a
// scrape, if present.
std::optional<double> Sample(const std::string& text,
                             const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::string> Scrape(const ServerProcess& process) {
  absl::StatusOr<HttpResponse> response =
      HttpGet(process.metrics_port(), "/metrics");
  if (!response.ok()) return response.status();
  return response->body;
}

// ~2.1 M parameters: a 256-row call is ~1 GFLOP, milliseconds of work, so
// calls sent together queue up behind a single worker.
RandomModel HeavyModel() {
  return BuildRandomModel(
      "heavy", 8,
      {LayerDef(1024, Activation::kRelu), LayerDef(1024, Activation::kRelu),
       LayerDef(1024, Activation::kRelu), LayerDef(10, Activation::kSoftmax)},
      WeightLayout::kOutIn, 3);
}

struct AsyncCall {
  grpc::ClientContext context;
  v1::PredictRequest request;
  v1::PredictResponse response;
  grpc::Status status;
  bool done = false;
};

// Starts `requests` at once on `client`; returns once all have completed.
std::vector<std::unique_ptr<AsyncCall>> CallAllAtOnce(
    const Client& client, const std::vector<v1::PredictRequest>& requests) {
  std::mutex mutex;
  std::condition_variable changed;
  size_t completed = 0;
  std::vector<std::unique_ptr<AsyncCall>> calls;
  for (const v1::PredictRequest& request : requests) {
    calls.push_back(std::make_unique<AsyncCall>());
    AsyncCall* call = calls.back().get();
    call->request = request;
    call->context.set_deadline(std::chrono::system_clock::now() + seconds(120));
    client.stub().async()->Predict(&call->context, &call->request,
                                   &call->response,
                                   [&, call](grpc::Status status) {
                                     std::lock_guard<std::mutex> lock(mutex);
                                     call->status = std::move(status);
                                     call->done = true;
                                     ++completed;
                                     changed.notify_all();
                                   });
  }
  std::unique_lock<std::mutex> lock(mutex);
  changed.wait_for(lock, seconds(180),
                   [&] { return completed == requests.size(); });
  return calls;
}

TEST(BatchingIntegrationTest, ConcurrentCallersGetExactlyTheirOwnRows) {
  ScopedTempDir repo("nnserve_batching_itest");
  RandomModel model = BuildRandomModel(
      "mix", 20,
      {LayerDef(48, Activation::kTanh), LayerDef(6, Activation::kSoftmax)},
      WeightLayout::kOutIn, 21);
  for (int i = 0; i < 6; ++i) {
    model.config.mutable_output()->add_labels(absl::StrCat("class-", i));
  }
  WriteModelDir(repo.path(), model, 1, FileFormat::kSafetensors,
                engine::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  // Every call goes through the batcher (no inline forwards).
  options.extra_args = {"--threads=2", "--inline-work-limit=0",
                        "--batching-max-batch-rows=16"};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();

  constexpr int kThreads = 16;
  constexpr int kCallsPerThread = 30;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> rows_dist(1, 8);
  struct Case {
    v1::PredictRequest request;
    int64_t rows = 0;
    std::vector<double> expected;
  };
  std::vector<Case> cases;
  int64_t total_rows = 0;
  for (int i = 0; i < kThreads * kCallsPerThread; ++i) {
    Case c;
    c.rows = rows_dist(rng);
    total_rows += c.rows;
    const RowBatch batch = RandomRows(c.rows, 20, 100 + i);
    absl::StatusOr<v1::PredictRequest> request = MakePredictRequest(
        "mix", 0, batch, i % 2 ? Encoding::kRaw : Encoding::kValues);
    ASSERT_TRUE(request.ok()) << request.status();
    c.request = *std::move(request);
    c.expected = ReferenceOutput(model, batch);
    cases.push_back(std::move(c));
  }

  std::vector<std::string> failures(cases.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * kCallsPerThread; i < (t + 1) * kCallsPerThread; ++i) {
        const Case& c = cases[i];
        absl::StatusOr<v1::PredictResponse> response =
            server->client->Predict(c.request);
        if (!response.ok()) {
          failures[i] = response.status().ToString();
          continue;
        }
        absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
        if (!output.ok()) {
          failures[i] = output.status().ToString();
        } else if (output->rows != c.rows || output->cols != 6) {
          failures[i] =
              absl::StrCat("shape [", output->rows, ", ", output->cols,
                           "], expected [", c.rows, ", 6]");
        } else if (double e =
                       MaxRowRelativeError(output->values, c.expected, c.rows);
                   e > 1e-5) {
          failures[i] = absl::StrCat("relative error ", e);
        } else if (response->labels_size() != c.rows) {
          failures[i] = absl::StrCat(response->labels_size(), " labels");
        } else {
          for (int64_t r = 0; r < c.rows; ++r) {
            const std::string want =
                absl::StrCat("class-", ArgMaxRow(c.expected, 6, r));
            if (response->labels(static_cast<int>(r)) != want) {
              failures[i] =
                  absl::StrCat("row ", r, " label ", response->labels(r),
                               ", expected ", want);
            }
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t i = 0; i < failures.size(); ++i) {
    EXPECT_EQ(failures[i], "") << "call " << i;
  }

  absl::StatusOr<std::string> text = Scrape(*server->process);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(Sample(*text, "nnserve_batch_rows_sum{model=\"mix\"}"),
            static_cast<double>(total_rows))
      << *text;
  EXPECT_EQ(
      Sample(*text, "nnserve_queue_duration_seconds_count{model=\"mix\"}"),
      static_cast<double>(cases.size()));
  const std::optional<double> forwards =
      Sample(*text, "nnserve_batch_rows_count{model=\"mix\"}");
  ASSERT_TRUE(forwards.has_value());
  EXPECT_GE(*forwards, 1);
  EXPECT_LE(*forwards, static_cast<double>(cases.size()));
  EXPECT_EQ(Sample(*text, "nnserve_queue_size{model=\"mix\"}"), 0);
}

TEST(BatchingIntegrationTest, ModelConfigQueueSizeOverridesServerDefault) {
  ScopedTempDir repo("nnserve_batching_config_itest");
  RandomModel heavy = HeavyModel();
  heavy.config.mutable_dynamic_batching()->set_max_queue_size(1);
  heavy.config.mutable_dynamic_batching()->set_max_batch_rows(256);
  WriteModelDir(repo.path(), heavy, 1, FileFormat::kSafetensors,
                engine::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  // The server default queue (1000) would take every call.
  options.extra_args = {"--threads=1", "--batching-max-queue-size=1000"};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();

  const RowBatch batch = RandomRows(256, 8, 4);
  const std::vector<double> expected = ReferenceOutput(heavy, batch);
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("heavy", 0, batch, Encoding::kRaw);
  ASSERT_TRUE(request.ok()) << request.status();
  auto calls = CallAllAtOnce(*server->client,
                             std::vector<v1::PredictRequest>(10, *request));
  int ok = 0, refused = 0;
  for (const auto& call : calls) {
    ASSERT_TRUE(call->done);
    SCOPED_TRACE(call->status.error_message());
    if (call->status.ok()) {
      ++ok;
      absl::StatusOr<RowBatch> output = DecodeTensor(call->response.output());
      ASSERT_TRUE(output.ok()) << output.status();
      EXPECT_LE(MaxRowRelativeError(output->values, expected, 256), 1e-5);
    } else {
      ++refused;
      EXPECT_EQ(call->status.error_code(),
                grpc::StatusCode::RESOURCE_EXHAUSTED);
      EXPECT_THAT(call->status.error_message(),
                  ::testing::HasSubstr("max_queue_size"));
    }
  }
  // The queue slot's call always completes (and the one running, if the
  // runner took its call before the others arrived); ten at once against
  // one queue slot means some are refused.
  EXPECT_GE(ok, 1);
  EXPECT_GT(refused, 0);
}

TEST(BatchingIntegrationTest, SigtermWhileCallsAreQueuedAnswersEveryOne) {
  ScopedTempDir repo("nnserve_batching_shutdown_itest");
  const RandomModel heavy = HeavyModel();
  WriteModelDir(repo.path(), heavy, 1, FileFormat::kSafetensors,
                engine::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  // 256-row calls with max_batch_rows 256: one forward per call, run one
  // at a time, so the rest wait in the queue.
  options.extra_args = {"--threads=1", "--batching-max-batch-rows=256"};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();

  const RowBatch batch = RandomRows(256, 8, 9);
  const std::vector<double> expected = ReferenceOutput(heavy, batch);
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("heavy", 0, batch, Encoding::kValues);
  ASSERT_TRUE(request.ok()) << request.status();

  constexpr int kCalls = 24;
  std::vector<std::unique_ptr<AsyncCall>> calls;
  std::thread caller([&] {
    calls = CallAllAtOnce(*server->client,
                          std::vector<v1::PredictRequest>(kCalls, *request));
  });
  // Signal once every call has reached the server and some still wait in
  // the queue: queued + taken from the queue (queue_duration count) covers
  // all of them. (A call moves from one to the other by decrementing the
  // gauge first, so the sum never overcounts.)
  absl::Status queued = server->process->WaitUntil(
      [&] {
        absl::StatusOr<std::string> text = Scrape(*server->process);
        if (!text.ok()) return false;
        const double waiting =
            Sample(*text, "nnserve_queue_size{model=\"heavy\"}").value_or(0);
        const double taken =
            Sample(*text,
                   "nnserve_queue_duration_seconds_count{model=\"heavy\"}")
                .value_or(0);
        return waiting > 0 && waiting + taken == kCalls;
      },
      seconds(60), "all calls at the server, some queued");
  const bool signalled = queued.ok() && server->process->Signal(SIGTERM).ok();
  caller.join();
  ASSERT_TRUE(queued.ok()) << queued;
  ASSERT_TRUE(signalled);
  ASSERT_EQ(calls.size(), static_cast<size_t>(kCalls));
  for (const auto& call : calls) {
    ASSERT_TRUE(call->done);
    ASSERT_TRUE(call->status.ok()) << call->status.error_message();
    absl::StatusOr<RowBatch> output = DecodeTensor(call->response.output());
    ASSERT_TRUE(output.ok()) << output.status();
    EXPECT_LE(MaxRowRelativeError(output->values, expected, 256), 1e-5);
  }
  absl::StatusOr<ExitStatus> exit = server->process->WaitForExit(seconds(60));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited && exit->code == 0) << exit->ToString();
}

}  // namespace
}  // namespace nnserve::testing
