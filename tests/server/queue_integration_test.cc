// The inference queue of the real nnserve binary (large forwards wait for
// one of --threads workers): a Predict whose deadline passes while it waits
// is answered without running its forward pass (DEADLINE_EXCEEDED to the
// caller; the rows counter shows the work was skipped) and the calls ahead
// of it are unaffected; a full queue refuses calls with RESOURCE_EXHAUSTED
// while the accepted ones complete correctly — the dynamic batching queue
// (--batching-max-queue-size) by default, the worker queue
// (--max-queued-requests) with --dynamic-batching=false.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
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
using std::chrono::milliseconds;
using std::chrono::seconds;

// The value of the sample `series` (exact text before the value, e.g.
// `nnserve_inference_rows_total{model="heavy",version="1"}`) in a scrape.
std::optional<double> Sample(const std::string& text,
                             const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
  }
  return std::nullopt;
}

// The sum of nnserve_requests_total for model "heavy", Predict, and `code`
// (whatever the label order), 0 if absent.
double PredictRequests(const std::string& text, const std::string& code) {
  double total = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, "nnserve_requests_total{")) continue;
    if (!absl::StrContains(line, "model=\"heavy\"") ||
        !absl::StrContains(line, "method=\"Predict\"") ||
        !absl::StrContains(line, absl::StrCat("code=\"", code, "\""))) {
      continue;
    }
    total += std::stod(std::string(line.substr(line.rfind(' ') + 1)));
  }
  return total;
}

// ~2.1 M parameters: a 1024-row call is ~4.3 GFLOP, at least ~20 ms even at
// this CPU's peak, so it always runs on an inference worker.
RandomModel HeavyModel() {
  return BuildRandomModel(
      "heavy", 8,
      {LayerDef(1024, Activation::kRelu), LayerDef(1024, Activation::kRelu),
       LayerDef(1024, Activation::kRelu), LayerDef(10, Activation::kSoftmax)},
      WeightLayout::kOutIn, 3);
}

struct AsyncCall {
  grpc::ClientContext context;
  v1::PredictResponse response;
  grpc::Status status;
};

TEST(QueueIntegrationTest, CallExpiredInTheQueueIsNotRun) {
  ScopedTempDir repo("nnserve_queue_itest");
  // One inference worker runs the heavy calls one at a time.
  WriteModelDir(repo.path(), HeavyModel(), 1, FileFormat::kSafetensors,
                engine::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  options.extra_args = {"--threads=1"};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;

  constexpr int64_t kRows = 1024;
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("heavy", 0, RandomRows(kRows, 8, 5), Encoding::kRaw);
  ASSERT_TRUE(request.ok()) << request.status();

  std::mutex mutex;
  std::condition_variable changed;
  int completed = 0;
  std::vector<std::unique_ptr<AsyncCall>> calls;
  auto start = [&](std::optional<milliseconds> timeout) {
    calls.push_back(std::make_unique<AsyncCall>());
    AsyncCall* call = calls.back().get();
    call->context.set_deadline(std::chrono::system_clock::now() +
                               timeout.value_or(seconds(120)));
    client.stub().async()->Predict(&call->context, &*request, &call->response,
                                   [&, call](grpc::Status status) {
                                     std::lock_guard<std::mutex> lock(mutex);
                                     call->status = std::move(status);
                                     ++completed;
                                     changed.notify_all();
                                   });
  };
  // Eight long calls; once the first is done the worker is busy with the
  // second and six more wait (>= 120 ms of work), so the short-deadline
  // calls sent now expire in the queue.
  constexpr int kLong = 8;
  constexpr int kShort = 4;
  for (int i = 0; i < kLong; ++i) start(std::nullopt);
  {
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(
        changed.wait_for(lock, seconds(120), [&] { return completed > 0; }));
  }
  for (int i = 0; i < kShort; ++i) start(milliseconds(20));
  {
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, seconds(120),
                                 [&] { return completed == kLong + kShort; }));
  }
  for (int i = 0; i < kLong + kShort; ++i) {
    const grpc::StatusCode want =
        i < kLong ? grpc::StatusCode::OK : grpc::StatusCode::DEADLINE_EXCEEDED;
    EXPECT_EQ(calls[i]->status.error_code(), want)
        << "call " << i << ": " << calls[i]->status.error_message();
  }

  // The server answers the expired calls when the worker reaches them;
  // wait for that, then check that their forward passes never ran.
  std::string text;
  absl::Status settled = server->process->WaitUntil(
      [&] {
        absl::StatusOr<HttpResponse> scrape =
            HttpGet(server->process->metrics_port(), "/metrics");
        if (!scrape.ok()) return false;
        text = scrape->body;
        return PredictRequests(text, "OK") +
                   PredictRequests(text, "DEADLINE_EXCEEDED") +
                   PredictRequests(text, "CANCELLED") ==
               kLong + kShort;
      },
      seconds(120), "all Predicts recorded in nnserve_requests_total");
  ASSERT_TRUE(settled.ok()) << settled;
  EXPECT_EQ(PredictRequests(text, "OK"), kLong);
  EXPECT_EQ(Sample(text,
                   "nnserve_inference_rows_total{model=\"heavy\","
                   "version=\"1\"}"),
            kLong * kRows)
      << text;
}

// Flags that give a two-slot queue in front of one worker.
class FullQueueTest
    : public ::testing::TestWithParam<std::vector<std::string>> {};

INSTANTIATE_TEST_SUITE_P(
    QueueIntegrationTest, FullQueueTest,
    ::testing::Values(
        std::vector<std::string>{"--threads=1", "--batching-max-queue-size=2"},
        std::vector<std::string>{"--threads=1", "--dynamic-batching=false",
                                 "--max-queued-requests=2"}));

TEST_P(FullQueueTest, FullQueueIsResourceExhaustedOthersComplete) {
  ScopedTempDir repo("nnserve_queue_full_itest");
  const RandomModel heavy = HeavyModel();
  WriteModelDir(repo.path(), heavy, 1, FileFormat::kSafetensors,
                engine::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  options.extra_args = GetParam();
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;

  constexpr int64_t kRows = 1024;
  const RowBatch batch = RandomRows(kRows, 8, 6);
  const std::vector<double> expected = ReferenceOutput(heavy, batch);
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("heavy", 0, batch, Encoding::kValues);
  ASSERT_TRUE(request.ok()) << request.status();

  // Twelve calls at once against one worker and two queue slots: the
  // worker takes one, two wait, and calls arriving while both slots are
  // taken are refused at once.
  constexpr int kCalls = 12;
  std::mutex mutex;
  std::condition_variable changed;
  int completed = 0;
  std::vector<std::unique_ptr<AsyncCall>> calls;
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(std::make_unique<AsyncCall>());
    AsyncCall* call = calls.back().get();
    call->context.set_deadline(std::chrono::system_clock::now() + seconds(120));
    client.stub().async()->Predict(&call->context, &*request, &call->response,
                                   [&, call](grpc::Status status) {
                                     std::lock_guard<std::mutex> lock(mutex);
                                     call->status = std::move(status);
                                     ++completed;
                                     changed.notify_all();
                                   });
  }
  {
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, seconds(120),
                                 [&] { return completed == kCalls; }));
  }
  int ok = 0, refused = 0;
  for (int i = 0; i < kCalls; ++i) {
    const grpc::Status& status = calls[i]->status;
    SCOPED_TRACE(absl::StrCat("call ", i, ": ", status.error_message()));
    if (status.ok()) {
      ++ok;
      absl::StatusOr<RowBatch> output =
          DecodeTensor(calls[i]->response.output());
      ASSERT_TRUE(output.ok()) << output.status();
      EXPECT_LE(MaxRowRelativeError(output->values, expected, kRows), 1e-5);
    } else {
      ++refused;
      EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      EXPECT_THAT(status.error_message(), ::testing::HasSubstr("queue"));
    }
  }
  // At least the two queued calls complete (plus the running one when the
  // worker took its call before the others arrived); with twelve calls
  // arriving together, some are refused.
  EXPECT_GE(ok, 2);
  EXPECT_GT(refused, 0);
  // The server keeps serving once the queue has room again.
  EXPECT_TRUE(client.Predict(*request).ok());
}

}  // namespace
}  // namespace nnserve::testing
