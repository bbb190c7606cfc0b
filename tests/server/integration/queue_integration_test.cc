// The inference queue of the real nnserve binary (large forwards wait for
// one of --threads workers): a Predict whose deadline passes while it waits
// is answered without running its forward pass (DEADLINE_EXCEEDED to the
// caller; the rows counter shows the work was skipped) and the calls ahead
// of it are unaffected; a full queue refuses calls with RESOURCE_EXHAUSTED
// while the accepted ones complete correctly — the dynamic batching queue
// (--batching-max-queue-size) by default, the worker queue
// (--max-queued-requests) with --dynamic-batching=false.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

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

TEST(QueueIntegrationTest, CallExpiredInTheQueueIsNotRun) {
  ScopedTempDir repo("nnserve_queue_itest");
  // One inference worker runs the heavy calls one at a time.
  WriteModelDir(repo.path(), HeavyModel(), 1, FileFormat::kSafetensors,
                formats::DType::kF32);
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

  AsyncPredicts calls(client);
  // Eight long calls; once the first is done the worker is busy with the
  // second and six more wait (>= 120 ms of work), so the short-deadline
  // calls sent now expire in the queue.
  constexpr int kLong = 8;
  constexpr int kShort = 4;
  for (int i = 0; i < kLong; ++i) calls.Start(*request);
  ASSERT_TRUE(calls.WaitFor(1, seconds(120)));
  for (int i = 0; i < kShort; ++i) calls.Start(*request, milliseconds(20));
  ASSERT_TRUE(calls.WaitFor(kLong + kShort, seconds(120)));
  for (int i = 0; i < kLong + kShort; ++i) {
    const grpc::StatusCode want =
        i < kLong ? grpc::StatusCode::OK : grpc::StatusCode::DEADLINE_EXCEEDED;
    EXPECT_EQ(calls[i].status.error_code(), want)
        << "call " << i << ": " << calls[i].status.error_message();
  }

  // The server answers the expired calls when the worker reaches them;
  // wait for that, then check that their forward passes never ran.
  std::string text;
  absl::Status settled = server->process->WaitUntil(
      [&] {
        absl::StatusOr<std::string> scrape = ScrapeMetrics(*server->process);
        if (!scrape.ok()) return false;
        text = *scrape;
        return PredictRequests(text, "OK") +
                   PredictRequests(text, "DEADLINE_EXCEEDED") +
                   PredictRequests(text, "CANCELLED") ==
               kLong + kShort;
      },
      seconds(120), "all Predicts recorded in nnserve_requests_total");
  ASSERT_TRUE(settled.ok()) << settled;
  EXPECT_EQ(PredictRequests(text, "OK"), kLong);
  EXPECT_EQ(MetricSample(text,
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
                formats::DType::kF32);
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
  AsyncPredicts calls(client);
  for (int i = 0; i < kCalls; ++i) calls.Start(*request);
  ASSERT_TRUE(calls.WaitFor(kCalls, seconds(120)));
  int ok = 0, refused = 0;
  for (int i = 0; i < kCalls; ++i) {
    const grpc::Status& status = calls[i].status;
    SCOPED_TRACE(absl::StrCat("call ", i, ": ", status.error_message()));
    if (status.ok()) {
      ++ok;
      absl::StatusOr<RowBatch> output =
          DecodeTensor(calls[i].response.output());
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
