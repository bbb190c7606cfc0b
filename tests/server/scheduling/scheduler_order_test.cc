// Tests of the Scheduler (server/scheduling/scheduler.h): which work runs
// when. Round-robin across models, one batch per turn, max_queue_delay_us
// as a timer that never holds a worker, shutdown with queued (and delayed)
// calls, and a randomized stress test of "done exactly once". Order is
// observed through the sequence of answers with one worker held by a Gate
// while the queues fill, never through timing; the only waits are generous
// bounds that turn a hang into a failure.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduling/scheduler.h"
#include "tests/server/scheduling/scheduler_test_util.h"

namespace nnserve::server {
namespace {

using ::nnserve::testing::AnswerLog;
using ::nnserve::testing::BatchRows;
using ::nnserve::testing::Call;
using ::nnserve::testing::Gate;
using ::nnserve::testing::HasOwnRows;
using ::nnserve::testing::NewCall;
using ::nnserve::testing::ReadBatchRows;
using ::nnserve::testing::TestModel;
using ::nnserve::testing::TinyModel;
using ::nnserve::testing::ToInferenceCall;
using ::testing::ElementsAreArray;

constexpr int64_t kHourUs = int64_t{3600} * 1000 * 1000;

// One worker, no inline path, three tiny models "a", "b", "c" (batch
// metrics under their names) and a Gate.
class OrderTest : public ::testing::Test {
 protected:
  std::shared_ptr<ModelQueue> Queue(const TestModel& model,
                                    const BatchingOptions& options) {
    return scheduler_.CreateQueue(model.model, options, nullptr,
                                  metrics_.ForBatcher(model.name),
                                  model.description());
  }
  // Submits a call of `rows` rows tagged "<model><index>" (e.g. "a3").
  Call* Submit(const std::shared_ptr<ModelQueue>& queue, const TestModel& model,
               int64_t rows) {
    const int index = counts_[model.name]++;
    calls_.push_back(NewCall(model, rows, 1000 + calls_.size(),
                             model.name + std::to_string(index)));
    Call* call = calls_.back().get();
    const absl::Status status =
        scheduler_.Submit(queue, ToInferenceCall(call, &log_));
    EXPECT_TRUE(status.ok()) << call->tag << ": " << status;
    return call;
  }
  void ExpectAllOwnRows() {
    for (const auto& call : calls_) EXPECT_TRUE(HasOwnRows(*call));
  }

  const TestModel a_ = TinyModel("a", 1);
  const TestModel b_ = TinyModel("b", 2);
  const TestModel c_ = TinyModel("c", 3);
  ServerMetrics metrics_{"test"};
  AnswerLog log_;
  std::map<std::string, int> counts_;
  std::vector<std::unique_ptr<Call>> calls_;
  Scheduler scheduler_{{.threads = 1, .inline_work_limit = 0}};
  Gate gate_{scheduler_, 0};
};

class RoundRobinTest : public OrderTest,
                       public ::testing::WithParamInterface<bool> {};

TEST_P(RoundRobinTest, FloodedModelsTakeTurnsOneBatchEach) {
  // Calls of max_batch_rows rows: with or without merging, a batch is one
  // call, so the answer order is the batch order.
  const BatchingOptions options{.merge = GetParam(), .max_batch_rows = 4};
  auto queue_a = Queue(a_, options);
  auto queue_b = Queue(b_, options);
  auto queue_c = Queue(c_, options);
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  for (int i = 0; i < 10; ++i) Submit(queue_a, a_, 4);
  for (int i = 0; i < 10; ++i) Submit(queue_b, b_, 4);
  Submit(queue_c, c_, 1);
  gate_.Open();
  ASSERT_TRUE(log_.WaitForAnswers(calls_.size()));
  ExpectAllOwnRows();
  // Ready in the order they got work (a, b, c); each turn runs one batch
  // and sends the queue to the back while it still has calls.
  std::vector<std::string> expected = {"a0", "b0", "c0"};
  for (int i = 1; i < 10; ++i) {
    expected.push_back("a" + std::to_string(i));
    expected.push_back("b" + std::to_string(i));
  }
  EXPECT_THAT(log_.Tags(), ElementsAreArray(expected));
}

INSTANTIATE_TEST_SUITE_P(MergeOnAndOff, RoundRobinTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Merge" : "NoMerge";
                         });

TEST_F(OrderTest, AQueuedCallOfAnotherModelRunsAfterOneBatchOfAFloodedOne) {
  auto queue_a = Queue(a_, {.merge = true, .max_batch_rows = 8});
  auto queue_b = Queue(b_, {.merge = true, .max_batch_rows = 8});
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  for (int i = 0; i < 40; ++i) Submit(queue_a, a_, 2);
  Submit(queue_b, b_, 1);
  gate_.Open();
  ASSERT_TRUE(log_.WaitForAnswers(calls_.size()));
  ExpectAllOwnRows();
  // a's first batch merges 4 calls of 2 rows; then it is b's turn, long
  // before a's queue (10 batches) is drained.
  const std::vector<std::string> tags = log_.Tags();
  const auto b0 = std::find(tags.begin(), tags.end(), "b0");
  ASSERT_NE(b0, tags.end());
  EXPECT_EQ(b0 - tags.begin(), 4) << ::testing::PrintToString(tags);
  const BatchRows batches = ReadBatchRows(metrics_, "a");
  EXPECT_EQ(batches.batches, 10u);
  EXPECT_EQ(batches.Above(4), 10);
  EXPECT_EQ(batches.Above(8), 0);
}

TEST_F(OrderTest, DelayedCallsCompleteOnceTheirDelayPasses) {
  auto queue_a = Queue(a_, {.max_batch_rows = 64, .max_queue_delay_us = 20000});
  // With the worker idle: only the timer makes the queue ready.
  for (int i = 0; i < 3; ++i) Submit(queue_a, a_, 1 + i);
  ASSERT_TRUE(log_.WaitForAnswers(3)) << "delayed calls never ran";
  ExpectAllOwnRows();
  EXPECT_EQ(queue_a->queued_calls(), 0);
  EXPECT_EQ(ReadBatchRows(metrics_, "a").rows, 6);
}

TEST_F(OrderTest, AQueueHoldingMaxBatchRowsRunsWithoutWaitingForItsDelay) {
  auto queue_a =
      Queue(a_, {.max_batch_rows = 8, .max_queue_delay_us = kHourUs});
  // The pauses give a worker that wrongly took calls before the queue is
  // ready the chance to do so; a correct scheduler passes without them.
  Submit(queue_a, a_, 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Submit(queue_a, a_, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Submit(queue_a, a_, 3);  // 8 rows: ready now, not in an hour.
  ASSERT_TRUE(log_.WaitForAnswers(3));
  ExpectAllOwnRows();
  // The idle worker did not take the first calls as they came: the three
  // arrivals were merged into one forward pass.
  const BatchRows batches = ReadBatchRows(metrics_, "a");
  EXPECT_EQ(batches.batches, 1u);
  EXPECT_EQ(batches.rows, 8);
}

TEST_F(OrderTest, IdleWorkerServesAnotherModelWhileADelayedQueueWaits) {
  auto queue_a =
      Queue(a_, {.max_batch_rows = 64, .max_queue_delay_us = kHourUs});
  auto queue_b = Queue(b_, {.max_batch_rows = 64});
  Call* a0 = Submit(queue_a, a_, 2);
  Call* a1 = Submit(queue_a, a_, 3);
  Call* b0 = Submit(queue_b, b_, 1);
  ASSERT_TRUE(log_.WaitForAnswers(1));
  EXPECT_EQ(log_.Order().front(), b0);
  EXPECT_TRUE(HasOwnRows(*b0));
  EXPECT_EQ(a0->answers.load(), 0);
  EXPECT_EQ(queue_a->queued_calls(), 2);
  // Shutdown does not wait out the delay: a's calls run now, together.
  scheduler_.Shutdown();
  EXPECT_TRUE(HasOwnRows(*a0));
  EXPECT_TRUE(HasOwnRows(*a1));
  const BatchRows batches = ReadBatchRows(metrics_, "a");
  EXPECT_EQ(batches.batches, 1u);
  EXPECT_EQ(batches.rows, 5);
}

TEST_F(OrderTest, ADelayedQueueWhoseDelayPassedTakesItsTurnDuringAFlood) {
  auto queue_a = Queue(a_, {.max_batch_rows = 64, .max_queue_delay_us = 1000});
  auto queue_b = Queue(b_, {.max_batch_rows = 4});
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  for (int i = 0; i < 10; ++i) Submit(queue_b, b_, 4);
  Submit(queue_a, a_, 1);
  // a's delay runs out while the worker is held (an ordering: whatever
  // the machine's speed, a is ready before the worker looks again).
  const auto due =
      std::chrono::steady_clock::now() + std::chrono::microseconds(1000);
  while (std::chrono::steady_clock::now() <= due) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  gate_.Open();
  ASSERT_TRUE(log_.WaitForAnswers(calls_.size()));
  ExpectAllOwnRows();
  // a is ready, so it is in the round-robin list: one of b's batches may
  // go first, not all ten.
  const std::vector<std::string> tags = log_.Tags();
  const auto a0 = std::find(tags.begin(), tags.end(), "a0");
  ASSERT_NE(a0, tags.end());
  EXPECT_LE(a0 - tags.begin(), 1) << ::testing::PrintToString(tags);
}

TEST_F(OrderTest, ShutdownAnswersEveryQueuedCallIncludingDelayedOnes) {
  // Room for the probes below (max_queued_calls is 1024).
  auto queue_a = Queue(a_, {.max_batch_rows = 4, .max_queue_size = 4096});
  auto queue_b = Queue(b_, {.merge = false, .max_batch_rows = 4});
  auto queue_c =
      Queue(c_, {.max_batch_rows = 64, .max_queue_delay_us = kHourUs});
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  for (int i = 0; i < 10; ++i) Submit(queue_a, a_, 1 + i % 3);
  for (int i = 0; i < 5; ++i) Submit(queue_b, b_, 2);
  for (int i = 0; i < 5; ++i) Submit(queue_c, c_, 1);
  std::thread shutdown([this] { scheduler_.Shutdown(); });
  // Probe until Shutdown has begun (an accepted probe is one more call that
  // must be answered); the worker is still held, so everything is queued.
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::minutes(2);
  absl::Status probe_status;
  while (std::chrono::steady_clock::now() < give_up) {
    calls_.push_back(NewCall(a_, 1, 9000 + calls_.size(), "probe"));
    probe_status =
        scheduler_.Submit(queue_a, ToInferenceCall(calls_.back().get(), &log_));
    if (!probe_status.ok()) {
      EXPECT_EQ(calls_.back()->answers.load(), 0);
      calls_.pop_back();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(probe_status.code(), absl::StatusCode::kUnavailable)
      << probe_status;
  EXPECT_GE(scheduler_.queued_calls(), 20);
  gate_.Open();
  shutdown.join();
  // Shutdown has returned: every accepted call has been answered, OK.
  EXPECT_EQ(log_.Order().size(), calls_.size());
  ExpectAllOwnRows();
  EXPECT_EQ(scheduler_.queued_calls(), 0);
  EXPECT_EQ(queue_c->queued_calls(), 0);
}

TEST(SchedulerShutdownTest, DestructorAnswersQueuedCalls) {
  const TestModel a = TinyModel("a", 1);
  AnswerLog log;
  std::vector<std::unique_ptr<Call>> calls;
  {
    Scheduler scheduler({.threads = 2, .inline_work_limit = 0});
    auto queue = scheduler.CreateQueue(
        a.model, {.max_batch_rows = 64, .max_queue_delay_us = kHourUs}, nullptr,
        nullptr, a.description());
    for (int i = 0; i < 6; ++i) {
      calls.push_back(NewCall(a, 1 + i, i));
      ASSERT_TRUE(
          scheduler.Submit(queue, ToInferenceCall(calls.back().get(), &log))
              .ok());
    }
    queue.reset();  // The scheduler keeps a queue with calls alive.
  }
  for (const auto& call : calls) EXPECT_TRUE(HasOwnRows(*call));
}

// Many threads submit to several differently configured queues with
// random rows, deadlines and cancellations while the scheduler is shut
// down under them. Every accepted call is answered exactly once; a refused
// one never.
TEST(SchedulerStressTest, DoneRunsExactlyOncePerAcceptedCall) {
  const TestModel models[] = {TinyModel("s0", 1), TinyModel("s1", 2),
                              nnserve::testing::MediumModel("s2", 3)};
  const BatchingOptions options[] = {
      {.merge = true, .max_batch_rows = 16, .max_queue_size = 8},
      {.merge = false, .max_batch_rows = 16, .max_queue_size = 64},
      {.merge = true, .max_batch_rows = 32, .max_queue_delay_us = 300}};
  constexpr int kThreads = 4;
  constexpr int kCallsPerThread = 150;
  AnswerLog log;
  std::vector<std::unique_ptr<Call>> calls(kThreads * kCallsPerThread);
  std::vector<absl::Status> submitted(calls.size());
  std::vector<std::thread> threads;
  {
    Scheduler scheduler(
        {.threads = 2, .max_queued_calls = 24, .inline_work_limit = 2000});
    std::vector<std::shared_ptr<ModelQueue>> queues;
    for (int q = 0; q < 3; ++q) {
      queues.push_back(scheduler.CreateQueue(models[q].model, options[q],
                                             nullptr, nullptr,
                                             models[q].description()));
    }
    std::atomic<int> started{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(77 + t);
        for (int i = 0; i < kCallsPerThread; ++i) {
          const size_t index = t * kCallsPerThread + i;
          const int q = static_cast<int>(rng() % 3);
          calls[index] = NewCall(models[q], 1 + rng() % 40, index);
          auto deadline = std::chrono::system_clock::time_point::max();
          const unsigned kind = rng() % 8;
          if (kind == 0) deadline = std::chrono::system_clock::now();
          if (kind == 1) {
            deadline = std::chrono::system_clock::now() +
                       std::chrono::microseconds(rng() % 2000);
          }
          Call* call = calls[index].get();
          submitted[index] = scheduler.Submit(
              queues[q], ToInferenceCall(call, &log, deadline));
          if (kind == 2) call->cancelled = true;
          started.fetch_add(1);
        }
      });
    }
    // Shut down once about half of the calls have been submitted.
    while (started.load() < kThreads * kCallsPerThread / 2) {
      std::this_thread::yield();
    }
    scheduler.Shutdown();
    for (std::thread& thread : threads) thread.join();
  }
  size_t accepted = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    const Call& call = *calls[i];
    const absl::StatusCode code = submitted[i].code();
    if (code != absl::StatusCode::kOk) {
      EXPECT_TRUE(code == absl::StatusCode::kResourceExhausted ||
                  code == absl::StatusCode::kUnavailable)
          << submitted[i];
      EXPECT_EQ(call.answers.load(), 0) << call.tag << " refused but answered";
      continue;
    }
    ++accepted;
    ASSERT_EQ(call.answers.load(), 1) << call.tag;
    if (call.status.ok()) {
      EXPECT_TRUE(HasOwnRows(call));
    } else {
      EXPECT_TRUE(call.status.code() == absl::StatusCode::kDeadlineExceeded ||
                  call.status.code() == absl::StatusCode::kCancelled)
          << call.tag << ": " << call.status;
      EXPECT_TRUE(call.OutputUntouched()) << call.tag;
    }
  }
  EXPECT_EQ(log.Order().size(), accepted);
  EXPECT_GT(accepted, 0u);
}

}  // namespace
}  // namespace nnserve::server
