// Dynamic batching in the real nnserve binary: many concurrent callers with
// distinct inputs and random batch sizes each get exactly their own rows
// (checked against the reference forward pass) while the batcher merges
// them (nnserve_batch_rows accounts for every row); a model's config.pbtxt
// dynamic_batching overrides the server defaults (queue size 1 → calls
// refused with RESOURCE_EXHAUSTED naming max_queue_size); SIGTERM while
// calls are queued answers every one of them.
#include <chrono>
#include <csignal>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using std::chrono::seconds;

// Starts `requests` at once on `calls`; returns once all have completed.
void CallAllAtOnce(AsyncPredicts& calls,
                   const std::vector<v1::PredictRequest>& requests) {
  for (const v1::PredictRequest& request : requests) calls.Start(request);
  calls.WaitFor(calls.size(), seconds(180));
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
                formats::DType::kF32);
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

  absl::StatusOr<std::string> text = ScrapeMetrics(*server->process);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(MetricSample(*text, "nnserve_batch_rows_sum{model=\"mix\"}"),
            static_cast<double>(total_rows))
      << *text;
  EXPECT_EQ(MetricSample(*text,
                         "nnserve_queue_duration_seconds_count{model=\"mix\"}"),
            static_cast<double>(cases.size()));
  const std::optional<double> forwards =
      MetricSample(*text, "nnserve_batch_rows_count{model=\"mix\"}");
  ASSERT_TRUE(forwards.has_value());
  EXPECT_GE(*forwards, 1);
  EXPECT_LE(*forwards, static_cast<double>(cases.size()));
  EXPECT_EQ(MetricSample(*text, "nnserve_queue_size{model=\"mix\"}"), 0);
}

TEST(BatchingIntegrationTest, ModelConfigQueueSizeOverridesServerDefault) {
  ScopedTempDir repo("nnserve_batching_config_itest");
  RandomModel heavy = HeavyModel();
  heavy.config.mutable_dynamic_batching()->set_max_queue_size(1);
  heavy.config.mutable_dynamic_batching()->set_max_batch_rows(256);
  WriteModelDir(repo.path(), heavy, 1, FileFormat::kSafetensors,
                formats::DType::kF32);
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
  AsyncPredicts calls(*server->client);
  CallAllAtOnce(calls, std::vector<v1::PredictRequest>(10, *request));
  int ok = 0, refused = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    const AsyncPredicts::Call& call = calls[i];
    ASSERT_TRUE(call.done);
    SCOPED_TRACE(call.status.error_message());
    if (call.status.ok()) {
      ++ok;
      absl::StatusOr<RowBatch> output = DecodeTensor(call.response.output());
      ASSERT_TRUE(output.ok()) << output.status();
      EXPECT_LE(MaxRowRelativeError(output->values, expected, 256), 1e-5);
    } else {
      ++refused;
      EXPECT_EQ(call.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      EXPECT_THAT(call.status.error_message(),
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
                formats::DType::kF32);
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
  AsyncPredicts calls(*server->client);
  std::thread caller([&] {
    CallAllAtOnce(calls, std::vector<v1::PredictRequest>(kCalls, *request));
  });
  // Signal once every call has reached the server and some still wait in
  // the queue: queued + taken from the queue (queue_duration count) covers
  // all of them. (A call moves from one to the other by decrementing the
  // gauge first, so the sum never overcounts.)
  absl::Status queued = server->process->WaitUntil(
      [&] {
        absl::StatusOr<std::string> text = ScrapeMetrics(*server->process);
        if (!text.ok()) return false;
        const double waiting =
            MetricSample(*text, "nnserve_queue_size{model=\"heavy\"}")
                .value_or(0);
        const double taken =
            MetricSample(
                *text, "nnserve_queue_duration_seconds_count{model=\"heavy\"}")
                .value_or(0);
        return waiting > 0 && waiting + taken == kCalls;
      },
      seconds(60), "all calls at the server, some queued");
  const bool signalled = queued.ok() && server->process->Signal(SIGTERM).ok();
  caller.join();
  ASSERT_TRUE(queued.ok()) << queued;
  ASSERT_TRUE(signalled);
  ASSERT_EQ(calls.size(), static_cast<size_t>(kCalls));
  for (size_t i = 0; i < calls.size(); ++i) {
    const AsyncPredicts::Call& call = calls[i];
    ASSERT_TRUE(call.done);
    ASSERT_TRUE(call.status.ok()) << call.status.error_message();
    absl::StatusOr<RowBatch> output = DecodeTensor(call.response.output());
    ASSERT_TRUE(output.ok()) << output.status();
    EXPECT_LE(MaxRowRelativeError(output->values, expected, 256), 1e-5);
  }
  absl::StatusOr<ExitStatus> exit = server->process->WaitForExit(seconds(60));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited && exit->code == 0) << exit->ToString();
}

}  // namespace
}  // namespace nnserve::testing
