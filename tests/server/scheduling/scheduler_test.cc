// Tests of the Scheduler (server/scheduling/scheduler.h): what every call
// gets. Exact outputs for many concurrent callers with merging on and off,
// the inline path, batch composition (merging up to max_batch_rows, a
// larger call alone), calls cancelled or expired while queued, queue
// limits and Submit after Shutdown. Real engine models built in memory; the
// reference forward pass (tests/util/reference.h) gives the expected rows.
// Where a test needs calls to wait in a queue it holds the only worker with
// a Gate (a call whose `done` blocks), never with sleeps.
// Scheduling order, timers, shutdown and the stress test are in
// scheduler_order_test.cc.
#include "server/scheduling/scheduler.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/scheduling/scheduler_test_util.h"

namespace nnserve::server {
namespace {

using ::nnserve::testing::AnswerLog;
using ::nnserve::testing::BatchRows;
using ::nnserve::testing::Call;
using ::nnserve::testing::Gate;
using ::nnserve::testing::HasOwnRows;
using ::nnserve::testing::MediumModel;
using ::nnserve::testing::NewCall;
using ::nnserve::testing::ReadBatchRows;
using ::nnserve::testing::ReadValue;
using ::nnserve::testing::TestModel;
using ::nnserve::testing::TinyModel;
using ::nnserve::testing::ToInferenceCall;
using ::nnserve::testing::VersionMetrics;
using ::testing::HasSubstr;

struct ConcurrencyCase {
  bool merge;
  int64_t inline_work_limit;
};
void PrintTo(const ConcurrencyCase& c, std::ostream* os) {
  *os << "merge=" << c.merge << " inline_work_limit=" << c.inline_work_limit;
}

class ConcurrentCallersTest : public ::testing::TestWithParam<ConcurrencyCase> {
};

TEST_P(ConcurrentCallersTest, EveryCallGetsExactlyItsOwnRows) {
  const ConcurrencyCase param = GetParam();
  const TestModel m = MediumModel("m", 11);
  const TestModel n = MediumModel("n", 12);
  ServerMetrics metrics("test");
  std::vector<std::unique_ptr<Call>> calls;
  AnswerLog log;
  constexpr int kThreads = 4;
  constexpr int kCallsPerThread = 40;
  std::mt19937 rng(2024);
  std::uniform_int_distribution<int64_t> rows_dist(1, 100);
  int64_t rows_over_64 = 0;
  double rows_of[2] = {0, 0};
  for (int i = 0; i < kThreads * kCallsPerThread; ++i) {
    const TestModel& model = i % 3 == 0 ? n : m;
    const int64_t rows = rows_dist(rng);
    rows_over_64 += rows > 64 ? 1 : 0;
    rows_of[&model == &n] += static_cast<double>(rows);
    calls.push_back(NewCall(model, rows, 100 + i));
  }
  {
    Scheduler scheduler(
        {.threads = 2, .inline_work_limit = param.inline_work_limit});
    const BatchingOptions options{
        .merge = param.merge, .max_batch_rows = 64, .max_queue_size = 1000};
    auto queue_m =
        scheduler.CreateQueue(m.model, options, VersionMetrics(metrics, m),
                              metrics.ForBatcher("m"), m.description());
    auto queue_n = scheduler.CreateQueue(
        n.model, options, nullptr, metrics.ForBatcher("n"), n.description());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = t; i < kThreads * kCallsPerThread; i += kThreads) {
          Call* call = calls[i].get();
          const auto& queue = call->model == &n ? queue_n : queue_m;
          EXPECT_TRUE(
              scheduler.Submit(queue, ToInferenceCall(call, &log)).ok());
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    ASSERT_TRUE(log.WaitForAnswers(calls.size()));
    EXPECT_EQ(scheduler.queued_calls(), 0);
    EXPECT_EQ(queue_m->queued_calls(), 0);
    EXPECT_EQ(queue_n->queued_calls(), 0);
    // Read while the queue holds the version's series (they go with it).
    EXPECT_EQ(ReadValue(metrics, "nnserve_inference_rows_total", "m"),
              rows_of[0]);
  }
  for (const auto& call : calls) EXPECT_TRUE(HasOwnRows(*call));
  // Every row was computed once, inline or on a worker.
  const BatchRows batches_m = ReadBatchRows(metrics, "m");
  const BatchRows batches_n = ReadBatchRows(metrics, "n");
  EXPECT_EQ(batches_m.rows, rows_of[0]);
  EXPECT_EQ(batches_n.rows, rows_of[1]);
  EXPECT_EQ(ReadValue(metrics, "nnserve_queue_size", "m"), 0);
  EXPECT_EQ(ReadValue(metrics, "nnserve_queue_size", "n"), 0);
  const uint64_t batches = batches_m.batches + batches_n.batches;
  if (param.merge) {
    EXPECT_LE(batches, calls.size());
    // Only calls of more than 64 rows make batches above 64 rows: merged
    // batches stay within max_batch_rows, larger calls run alone.
    EXPECT_EQ(batches_m.Above(64) + batches_n.Above(64), rows_over_64);
  } else {
    EXPECT_EQ(batches, calls.size());
  }
}

INSTANTIATE_TEST_SUITE_P(
    MergeAndInline, ConcurrentCallersTest,
    ::testing::Values(ConcurrencyCase{true, 262144}, ConcurrencyCase{true, 0},
                      ConcurrencyCase{false, 262144},
                      ConcurrencyCase{false, 0}),
    [](const ::testing::TestParamInfo<ConcurrencyCase>& info) {
      return std::string(info.param.merge ? "Merge" : "NoMerge") +
             (info.param.inline_work_limit > 0 ? "Inline" : "NoInline");
    });

TEST(SchedulerInlineTest, TinyCallOnIdleQueueRunsOnTheCallingThread) {
  const TestModel tiny = TinyModel("tiny", 3);
  const TestModel medium = MediumModel("medium", 4);
  AnswerLog log;
  absl::Notification entered, release;
  Scheduler scheduler({.threads = 1});  // Default inline_work_limit.
  // Never leaves the worker blocked, even when an assertion fails.
  struct Releaser {
    absl::Notification& release;
    ~Releaser() {
      if (!release.HasBeenNotified()) release.Notify();
    }
  } releaser{release};
  auto queue = scheduler.CreateQueue(tiny.model, {}, nullptr, nullptr,
                                     tiny.description());
  auto busy_queue = scheduler.CreateQueue(medium.model, {}, nullptr, nullptr,
                                          medium.description());

  auto inline_call = NewCall(tiny, 3, 1, "inline");
  ASSERT_TRUE(
      scheduler.Submit(queue, ToInferenceCall(inline_call.get(), &log)).ok());
  EXPECT_EQ(inline_call->answers.load(), 1) << "not answered before Submit "
                                               "returned";
  EXPECT_EQ(inline_call->answered_on, std::this_thread::get_id());
  EXPECT_TRUE(HasOwnRows(*inline_call));

  // rows x parameters above the limit: handed to a worker.
  const int64_t big_rows = 262144 / tiny.parameters() + 1;
  auto big_call = NewCall(tiny, big_rows, 2, "big");
  ASSERT_TRUE(
      scheduler.Submit(queue, ToInferenceCall(big_call.get(), &log)).ok());
  ASSERT_TRUE(log.WaitForAnswers(2));
  EXPECT_NE(big_call->answered_on, std::this_thread::get_id());
  EXPECT_TRUE(HasOwnRows(*big_call));

  // While the worker runs a batch of `busy_queue`, a tiny call of that
  // version is queued behind it, but another idle version still runs
  // inline (no hand-off, even with every worker busy).
  auto blocker = NewCall(medium, 262144 / medium.parameters() + 1, 5, "blk");
  InferenceCall blocking = ToInferenceCall(blocker.get(), &log);
  blocking.done =
      [&, inner = std::move(blocking.done)](absl::Status status) mutable {
        entered.Notify();
        release.WaitForNotification();
        std::move(inner)(std::move(status));
      };
  ASSERT_TRUE(scheduler.Submit(busy_queue, std::move(blocking)).ok());
  ASSERT_TRUE(
      entered.WaitForNotificationWithTimeout(nnserve::testing::kGenerousWait));
  auto queued_call = NewCall(medium, 1, 6, "queued");
  ASSERT_TRUE(
      scheduler.Submit(busy_queue, ToInferenceCall(queued_call.get(), &log))
          .ok());
  EXPECT_EQ(queued_call->answers.load(), 0)
      << "ran inline although its version had a batch running";
  EXPECT_EQ(busy_queue->queued_calls(), 1);
  auto other_inline = NewCall(tiny, 1, 7, "other");
  ASSERT_TRUE(
      scheduler.Submit(queue, ToInferenceCall(other_inline.get(), &log)).ok());
  EXPECT_EQ(other_inline->answers.load(), 1);
  EXPECT_EQ(other_inline->answered_on, std::this_thread::get_id());
  release.Notify();
  ASSERT_TRUE(log.WaitForAnswers(5));
  EXPECT_TRUE(HasOwnRows(*blocker));
  EXPECT_TRUE(HasOwnRows(*queued_call));
  EXPECT_TRUE(HasOwnRows(*other_inline));
  EXPECT_EQ(queued_call->answered_on, blocker->answered_on);
}

TEST(SchedulerInlineTest, InlineCallPastItsDeadlineOrCancelledIsNotComputed) {
  const TestModel tiny = TinyModel("tiny", 3);
  ServerMetrics metrics("test");
  Scheduler scheduler({.threads = 1});
  AnswerLog log;
  auto queue =
      scheduler.CreateQueue(tiny.model, {}, VersionMetrics(metrics, tiny),
                            metrics.ForBatcher("tiny"), tiny.description());
  auto expired = NewCall(tiny, 2, 1, "expired");
  ASSERT_TRUE(
      scheduler
          .Submit(queue, ToInferenceCall(expired.get(), &log,
                                         std::chrono::system_clock::now() -
                                             std::chrono::seconds(1)))
          .ok());
  auto cancelled = NewCall(tiny, 2, 2, "cancelled");
  cancelled->cancelled = true;
  ASSERT_TRUE(
      scheduler.Submit(queue, ToInferenceCall(cancelled.get(), &log)).ok());
  ASSERT_TRUE(log.WaitForAnswers(2));
  EXPECT_EQ(expired->answers.load(), 1);
  EXPECT_EQ(expired->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(cancelled->answers.load(), 1);
  EXPECT_EQ(cancelled->status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(expired->OutputUntouched());
  EXPECT_TRUE(cancelled->OutputUntouched());
  EXPECT_EQ(ReadBatchRows(metrics, "tiny").rows, 0);
  EXPECT_EQ(ReadValue(metrics, "nnserve_inference_rows_total", "tiny"), 0);
}

// A scheduler with one worker and no inline path, a Gate to hold the worker,
// and model "m" (BatcherMetrics "m") to queue calls on.
class OneWorkerTest : public ::testing::Test {
 protected:
  std::shared_ptr<ModelQueue> Queue(const BatchingOptions& options) {
    return scheduler_.CreateQueue(m_.model, options,
                                  VersionMetrics(metrics_, m_),
                                  metrics_.ForBatcher("m"), m_.description());
  }
  Call* Add(int64_t rows) {
    calls_.push_back(NewCall(m_, rows, 500 + calls_.size(),
                             "m#" + std::to_string(calls_.size())));
    return calls_.back().get();
  }
  absl::Status Submit(const std::shared_ptr<ModelQueue>& queue, Call* call,
                      std::chrono::system_clock::time_point deadline =
                          std::chrono::system_clock::time_point::max()) {
    return scheduler_.Submit(queue, ToInferenceCall(call, &log_, deadline));
  }

  const TestModel m_ = MediumModel("m", 21);
  ServerMetrics metrics_{"test"};
  AnswerLog log_;
  std::vector<std::unique_ptr<Call>> calls_;
  Scheduler scheduler_{{.threads = 1, .inline_work_limit = 0}};
  Gate gate_{scheduler_, 0};
};

TEST_F(OneWorkerTest, MergesInOrderUpToMaxBatchRowsAndRunsALargerCallAlone) {
  auto queue = Queue({.merge = true, .max_batch_rows = 8});
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  for (int64_t rows : {2, 20, 3, 5, 4, 1, 9, 8}) {
    ASSERT_TRUE(Submit(queue, Add(rows)).ok());
  }
  EXPECT_EQ(queue->queued_calls(), 8);
  EXPECT_EQ(scheduler_.queued_calls(), 8);
  gate_.Open();
  ASSERT_TRUE(log_.WaitForAnswers(calls_.size()));
  for (const auto& call : calls_) EXPECT_TRUE(HasOwnRows(*call));
  // Calls from the front while they fit: [2] [20] [3 5] [4 1] [9] [8].
  const BatchRows batches = ReadBatchRows(metrics_, "m");
  EXPECT_EQ(batches.batches, 6u);
  EXPECT_EQ(batches.rows, 52);
  EXPECT_EQ(batches.Above(8), 2);   // The 20- and the 9-row calls, alone...
  EXPECT_EQ(batches.Above(16), 1);  // ...and never split.
  // One worker: answers in queue order.
  EXPECT_THAT(log_.Tags(), ::testing::ElementsAre("m#0", "m#1", "m#2", "m#3",
                                                  "m#4", "m#5", "m#6", "m#7"));
}

TEST_F(OneWorkerTest, WithoutMergingEveryCallIsItsOwnForwardPass) {
  auto queue = Queue({.merge = false, .max_batch_rows = 8});
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  for (int64_t rows : {2, 20, 3, 5, 4, 1}) {
    ASSERT_TRUE(Submit(queue, Add(rows)).ok());
  }
  gate_.Open();
  ASSERT_TRUE(log_.WaitForAnswers(calls_.size()));
  for (const auto& call : calls_) EXPECT_TRUE(HasOwnRows(*call));
  const BatchRows batches = ReadBatchRows(metrics_, "m");
  EXPECT_EQ(batches.batches, 6u);
  EXPECT_EQ(batches.rows, 35);
  EXPECT_EQ(batches.Above(4), 2);  // 20 and 5.
}

TEST_F(OneWorkerTest, ExpiredAndCancelledQueuedCallsAreAnsweredNotComputed) {
  auto queue = Queue({.merge = true, .max_batch_rows = 64});
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  Call* live = Add(2);
  Call* expiring = Add(3);
  Call* expired = Add(4);
  Call* cancelled = Add(5);
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::milliseconds(20);
  ASSERT_TRUE(Submit(queue, live).ok());
  ASSERT_TRUE(Submit(queue, expiring, deadline).ok());
  ASSERT_TRUE(Submit(queue, expired,
                     std::chrono::system_clock::now() - std::chrono::hours(1))
                  .ok());
  ASSERT_TRUE(Submit(queue, cancelled).ok());
  cancelled->cancelled = true;
  // The deadline passes while the call is queued (an ordering, not a
  // timing: the checks hold however long this takes).
  while (std::chrono::system_clock::now() <= deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  gate_.Open();
  ASSERT_TRUE(log_.WaitForAnswers(4));
  EXPECT_TRUE(HasOwnRows(*live));
  for (Call* call : {expiring, expired}) {
    EXPECT_EQ(call->answers.load(), 1) << call->tag;
    EXPECT_EQ(call->status.code(), absl::StatusCode::kDeadlineExceeded)
        << call->tag << ": " << call->status;
    EXPECT_TRUE(call->OutputUntouched()) << call->tag;
  }
  EXPECT_EQ(cancelled->answers.load(), 1);
  EXPECT_EQ(cancelled->status.code(), absl::StatusCode::kCancelled)
      << cancelled->status;
  EXPECT_TRUE(cancelled->OutputUntouched());
  // Only the live call's 2 rows were computed, in one forward pass.
  const BatchRows batches = ReadBatchRows(metrics_, "m");
  EXPECT_EQ(batches.batches, 1u);
  EXPECT_EQ(batches.rows, 2);
  EXPECT_EQ(ReadValue(metrics_, "nnserve_inference_rows_total", "m"), 2);
}

TEST_F(OneWorkerTest, FullVersionQueueIsRefusedWithoutInvokingDone) {
  auto queue =
      Queue({.merge = true, .max_batch_rows = 64, .max_queue_size = 3});
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Submit(queue, Add(1)).ok());
  Call* refused = Add(1);
  const absl::Status status = Submit(queue, refused);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr(m_.description()));
  EXPECT_EQ(queue->queued_calls(), 3);
  gate_.Open();
  ASSERT_TRUE(log_.WaitForAnswers(3));
  scheduler_.Shutdown();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(HasOwnRows(*calls_[i]));
  EXPECT_EQ(refused->answers.load(), 0);
  EXPECT_EQ(log_.Order().size(), 3u);
}

}  // namespace
}  // namespace nnserve::server
