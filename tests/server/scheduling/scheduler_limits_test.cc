// Tests of the Scheduler's limits (server/scheduling/scheduler.h): the
// global max_queued_calls and max_queued_bytes bounds across versions (and
// the one call larger than the byte bound), Submit after Shutdown,
// and how per-model batching settings are resolved. Refused calls must
// never have `done` invoked. The per-version max_queue_size is tested in
// scheduler_test.cc next to the other one-worker cases.
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduling/scheduler.h"
#include "tests/server/scheduling/scheduler_test_util.h"

namespace nnserve::server {
namespace {

using ::nnserve::testing::AnswerLog;
using ::nnserve::testing::Call;
using ::nnserve::testing::Gate;
using ::nnserve::testing::HasOwnRows;
using ::nnserve::testing::NewCall;
using ::nnserve::testing::TestModel;
using ::nnserve::testing::TinyModel;
using ::nnserve::testing::ToInferenceCall;

TEST(SchedulerLimitsTest, MaxQueuedCallsBoundsAllVersionsTogether) {
  const TestModel a = TinyModel("a", 1);
  const TestModel b = TinyModel("b", 2);
  Scheduler scheduler(
      {.threads = 1, .max_queued_calls = 4, .inline_work_limit = 0});
  Gate gate(scheduler, 0);
  AnswerLog log;
  auto queue_a = scheduler.CreateQueue(a.model, {.max_queue_size = 100},
                                       nullptr, nullptr, a.description());
  auto queue_b = scheduler.CreateQueue(b.model, {.max_queue_size = 100},
                                       nullptr, nullptr, b.description());
  ASSERT_NO_FATAL_FAILURE(gate.Close());
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < 4; ++i) {
    const TestModel& model = i % 2 == 0 ? a : b;
    calls.push_back(NewCall(model, 1, i));
    ASSERT_TRUE(scheduler
                    .Submit(i % 2 == 0 ? queue_a : queue_b,
                            ToInferenceCall(calls.back().get(), &log))
                    .ok());
  }
  EXPECT_EQ(scheduler.queued_calls(), 4);
  auto refused_a = NewCall(a, 1, 10);
  auto refused_b = NewCall(b, 1, 11);
  EXPECT_EQ(
      scheduler.Submit(queue_a, ToInferenceCall(refused_a.get(), &log)).code(),
      absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(
      scheduler.Submit(queue_b, ToInferenceCall(refused_b.get(), &log)).code(),
      absl::StatusCode::kResourceExhausted);
  gate.Open();
  ASSERT_TRUE(log.WaitForAnswers(4));
  // Room again once the queued calls have run.
  auto later = NewCall(a, 1, 12);
  EXPECT_TRUE(
      scheduler.Submit(queue_a, ToInferenceCall(later.get(), &log)).ok());
  ASSERT_TRUE(log.WaitForAnswers(5));
  scheduler.Shutdown();
  for (const auto& call : calls) EXPECT_TRUE(HasOwnRows(*call));
  EXPECT_TRUE(HasOwnRows(*later));
  EXPECT_EQ(refused_a->answers.load(), 0);
  EXPECT_EQ(refused_b->answers.load(), 0);
  EXPECT_EQ(log.Order().size(), 5u);
}

// Bytes of the input and output tensors of a `rows`-row call of `model`.
int64_t CallBytes(const TestModel& model, int64_t rows) {
  return rows * (model.inputs() + model.outputs()) *
         static_cast<int64_t>(sizeof(float));
}

TEST(SchedulerLimitsTest, MaxQueuedBytesBoundsAllVersionsTogether) {
  const TestModel a = TinyModel("a", 1);
  const TestModel b = TinyModel("b", 2);
  // Room for 10 rows of either model (they have the same sizes).
  const int64_t limit = CallBytes(a, 10);
  Scheduler scheduler({.threads = 1,
                       .max_queued_calls = 100,
                       .max_queued_bytes = limit,
                       .inline_work_limit = 0});
  Gate gate(scheduler, 0);
  AnswerLog log;
  auto queue_a = scheduler.CreateQueue(a.model, {.max_queue_size = 100},
                                       nullptr, nullptr, a.description());
  auto queue_b = scheduler.CreateQueue(b.model, {.max_queue_size = 100},
                                       nullptr, nullptr, b.description());
  ASSERT_NO_FATAL_FAILURE(gate.Close());
  std::vector<std::unique_ptr<Call>> calls;
  calls.push_back(NewCall(a, 4, 1));
  calls.push_back(NewCall(b, 3, 2));
  calls.push_back(NewCall(a, 3, 3));  // 10 rows: exactly the limit.
  for (size_t i = 0; i < calls.size(); ++i) {
    ASSERT_TRUE(scheduler
                    .Submit(i == 1 ? queue_b : queue_a,
                            ToInferenceCall(calls[i].get(), &log))
                    .ok());
  }
  EXPECT_EQ(scheduler.queued_bytes(), limit);
  // One row more, on either version, is refused; by count there is room.
  auto refused_a = NewCall(a, 1, 10);
  auto refused_b = NewCall(b, 1, 11);
  const absl::Status status_a =
      scheduler.Submit(queue_a, ToInferenceCall(refused_a.get(), &log));
  EXPECT_EQ(status_a.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status_a.message(),
              ::testing::HasSubstr(absl::StrCat("limit of ", limit, " bytes")));
  EXPECT_EQ(
      scheduler.Submit(queue_b, ToInferenceCall(refused_b.get(), &log)).code(),
      absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(scheduler.queued_calls(), 3);
  gate.Open();
  ASSERT_TRUE(log.WaitForAnswers(3));
  EXPECT_EQ(scheduler.queued_bytes(), 0);
  // Room again once the queued calls have run.
  auto later = NewCall(b, 10, 12);
  EXPECT_TRUE(
      scheduler.Submit(queue_b, ToInferenceCall(later.get(), &log)).ok());
  ASSERT_TRUE(log.WaitForAnswers(4));
  scheduler.Shutdown();
  for (const auto& call : calls) EXPECT_TRUE(HasOwnRows(*call));
  EXPECT_TRUE(HasOwnRows(*later));
  EXPECT_EQ(refused_a->answers.load(), 0);
  EXPECT_EQ(refused_b->answers.load(), 0);
  EXPECT_TRUE(refused_a->OutputUntouched());
}

TEST(SchedulerLimitsTest, CallLargerThanTheByteLimitIsQueuedOnlyAlone) {
  const TestModel a = TinyModel("a", 1);
  Scheduler scheduler({.threads = 1,
                       .max_queued_bytes = CallBytes(a, 2),
                       .inline_work_limit = 0});
  Gate gate(scheduler, 0);
  AnswerLog log;
  auto queue = scheduler.CreateQueue(a.model, {.max_queue_size = 100}, nullptr,
                                     nullptr, a.description());
  ASSERT_NO_FATAL_FAILURE(gate.Close());
  // Nothing queued: the 5-row call gets in although it is over the limit...
  auto large = NewCall(a, 5, 1);
  ASSERT_TRUE(scheduler.Submit(queue, ToInferenceCall(large.get(), &log)).ok());
  EXPECT_EQ(scheduler.queued_bytes(), CallBytes(a, 5));
  // ...and nothing more, not even one row, while it waits.
  auto small = NewCall(a, 1, 2);
  EXPECT_EQ(scheduler.Submit(queue, ToInferenceCall(small.get(), &log)).code(),
            absl::StatusCode::kResourceExhausted);
  gate.Open();
  ASSERT_TRUE(log.WaitForAnswers(1));
  scheduler.Shutdown();
  EXPECT_TRUE(HasOwnRows(*large));
  EXPECT_EQ(small->answers.load(), 0);
}

TEST(SchedulerLimitsTest, SubmitAfterShutdownIsUnavailableAndNeverAnswered) {
  const TestModel tiny = TinyModel("tiny", 1);
  Scheduler scheduler({.threads = 2});
  AnswerLog log;
  auto queue = scheduler.CreateQueue(tiny.model, {}, nullptr, nullptr,
                                     tiny.description());
  scheduler.Shutdown();
  scheduler.Shutdown();  // Idempotent.
  // One call small enough to run inline, one for a worker.
  auto small = NewCall(tiny, 1, 1);
  auto large = NewCall(tiny, 262144 / tiny.parameters() + 1, 2);
  for (Call* call : {small.get(), large.get()}) {
    const absl::Status status =
        scheduler.Submit(queue, ToInferenceCall(call, &log));
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_FALSE(status.message().empty());
  }
  EXPECT_EQ(small->answers.load(), 0);
  EXPECT_EQ(large->answers.load(), 0);
  EXPECT_TRUE(small->OutputUntouched());
}

TEST(ResolveBatchingOptionsTest, ConfigFieldsAboveZeroOverrideDefaults) {
  const BatchingOptions defaults{.merge = false,
                                 .max_batch_rows = 64,
                                 .max_queue_delay_us = 0,
                                 .max_queue_size = 256};
  v1::DynamicBatching config;
  BatchingOptions o = ResolveBatchingOptions(config, defaults);
  EXPECT_FALSE(o.merge);
  EXPECT_EQ(o.max_batch_rows, 64);
  EXPECT_EQ(o.max_queue_delay_us, 0);
  EXPECT_EQ(o.max_queue_size, 256);
  config.set_max_batch_rows(8);
  config.set_max_queue_delay_us(500);
  config.set_max_queue_size(5);
  o = ResolveBatchingOptions(config, defaults);
  EXPECT_FALSE(o.merge);
  EXPECT_EQ(o.max_batch_rows, 8);
  EXPECT_EQ(o.max_queue_delay_us, 500);
  EXPECT_EQ(o.max_queue_size, 5);
}

}  // namespace
}  // namespace nnserve::server
