// Tests of the Scheduler's exception containment (server/scheduling/
// scheduler.h, "Contained failures"): an exception thrown by a call's
// is_cancelled or done — on a worker or on the inline path — never ends the
// worker or the process and never loses a call. The batch's calls not yet
// answered get RESOURCE_EXHAUSTED (std::bad_alloc) or INTERNAL (any other
// exception) with a message; a throwing `done` is never invoked twice; the
// worker serves the next calls normally. Deterministic: calls are queued
// behind a Gate, never timed.
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
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
using ::nnserve::testing::MediumModel;
using ::nnserve::testing::NewCall;
using ::nnserve::testing::TestModel;
using ::nnserve::testing::ToInferenceCall;
using ::testing::HasSubstr;

enum class Throw { kBadAlloc, kRuntimeError };

// `call`'s InferenceCall, whose is_cancelled throws `what`.
InferenceCall ThrowingIsCancelled(Call* call, AnswerLog* log, Throw what) {
  InferenceCall c = ToInferenceCall(call, log);
  c.is_cancelled = [what]() -> bool {
    if (what == Throw::kBadAlloc) throw std::bad_alloc();
    throw std::runtime_error("is_cancelled broke");
  };
  return c;
}

// One worker, no inline path, a Gate to hold the worker while calls queue.
class ContainmentTest : public ::testing::Test {
 protected:
  std::shared_ptr<ModelQueue> Queue(bool merge) {
    return scheduler_.CreateQueue(
        m_.model, {.merge = merge, .max_batch_rows = 64, .max_queue_size = 100},
        nullptr, nullptr, m_.description());
  }
  Call* Add(int64_t rows) {
    calls_.push_back(NewCall(m_, rows, 700 + calls_.size(),
                             "m#" + std::to_string(calls_.size())));
    return calls_.back().get();
  }

  const TestModel m_ = MediumModel("m", 31);
  AnswerLog log_;
  std::vector<std::unique_ptr<Call>> calls_;
  Scheduler scheduler_{{.threads = 1, .inline_work_limit = 0}};
  Gate gate_{scheduler_, 0};
};

TEST_F(ContainmentTest, BadAllocInABatchAnswersItsCallsResourceExhausted) {
  auto queue = Queue(/*merge=*/true);
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  // One merged batch: a, the throwing call, c.
  Call* a = Add(2);
  Call* thrower = Add(3);
  Call* c = Add(4);
  ASSERT_TRUE(scheduler_.Submit(queue, ToInferenceCall(a, &log_)).ok());
  ASSERT_TRUE(
      scheduler_
          .Submit(queue, ThrowingIsCancelled(thrower, &log_, Throw::kBadAlloc))
          .ok());
  ASSERT_TRUE(scheduler_.Submit(queue, ToInferenceCall(c, &log_)).ok());
  gate_.Open();
  ASSERT_TRUE(log_.WaitForAnswers(3));
  for (const Call* call : {a, thrower, c}) {
    EXPECT_EQ(call->answers.load(), 1) << call->tag;
    EXPECT_EQ(call->status.code(), absl::StatusCode::kResourceExhausted)
        << call->tag << ": " << call->status;
    EXPECT_THAT(call->status.message(), HasSubstr("out of memory"));
    EXPECT_THAT(call->status.message(), HasSubstr(m_.description()));
    EXPECT_TRUE(call->OutputUntouched()) << call->tag;
  }

  // The worker lives on: the next calls are computed.
  Call* after1 = Add(5);
  Call* after2 = Add(6);
  ASSERT_TRUE(scheduler_.Submit(queue, ToInferenceCall(after1, &log_)).ok());
  ASSERT_TRUE(scheduler_.Submit(queue, ToInferenceCall(after2, &log_)).ok());
  ASSERT_TRUE(log_.WaitForAnswers(5));
  EXPECT_TRUE(HasOwnRows(*after1));
  EXPECT_TRUE(HasOwnRows(*after2));
  EXPECT_EQ(scheduler_.queued_calls(), 0);
  EXPECT_EQ(scheduler_.queued_bytes(), 0);
}

TEST_F(ContainmentTest, OtherExceptionIsInternalOnlyForItsOwnBatch) {
  // Without merging every call is its own batch: only the throwing one
  // fails.
  auto queue = Queue(/*merge=*/false);
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  Call* before = Add(2);
  Call* thrower = Add(3);
  Call* after = Add(4);
  ASSERT_TRUE(scheduler_.Submit(queue, ToInferenceCall(before, &log_)).ok());
  ASSERT_TRUE(scheduler_
                  .Submit(queue, ThrowingIsCancelled(thrower, &log_,
                                                     Throw::kRuntimeError))
                  .ok());
  ASSERT_TRUE(scheduler_.Submit(queue, ToInferenceCall(after, &log_)).ok());
  gate_.Open();
  ASSERT_TRUE(log_.WaitForAnswers(3));
  EXPECT_TRUE(HasOwnRows(*before));
  EXPECT_TRUE(HasOwnRows(*after));
  EXPECT_EQ(thrower->answers.load(), 1);
  EXPECT_EQ(thrower->status.code(), absl::StatusCode::kInternal)
      << thrower->status;
  EXPECT_THAT(thrower->status.message(), HasSubstr("is_cancelled broke"));
  EXPECT_THAT(thrower->status.message(), HasSubstr(m_.description()));
  EXPECT_TRUE(thrower->OutputUntouched());
}

TEST_F(ContainmentTest, ThrowingDoneIsInvokedOnceAndTheBatchStillSucceeds) {
  auto queue = Queue(/*merge=*/true);
  ASSERT_NO_FATAL_FAILURE(gate_.Close());
  Call* a = Add(2);
  Call* thrower = Add(3);
  Call* c = Add(4);
  InferenceCall throwing = ToInferenceCall(thrower, &log_);
  throwing.done = [thrower, this](absl::Status status) {
    thrower->status = std::move(status);
    thrower->answers.fetch_add(1);
    log_.Record(thrower);
    throw std::runtime_error("done broke");
  };
  ASSERT_TRUE(scheduler_.Submit(queue, ToInferenceCall(a, &log_)).ok());
  ASSERT_TRUE(scheduler_.Submit(queue, std::move(throwing)).ok());
  ASSERT_TRUE(scheduler_.Submit(queue, ToInferenceCall(c, &log_)).ok());
  gate_.Open();
  ASSERT_TRUE(log_.WaitForAnswers(3));
  // The calls after the throwing `done` are still answered with their rows,
  // and the throwing call got its (OK) answer once.
  EXPECT_TRUE(HasOwnRows(*a));
  EXPECT_TRUE(HasOwnRows(*c));
  EXPECT_TRUE(HasOwnRows(*thrower));

  Call* after = Add(5);
  ASSERT_TRUE(scheduler_.Submit(queue, ToInferenceCall(after, &log_)).ok());
  ASSERT_TRUE(log_.WaitForAnswers(4));
  EXPECT_TRUE(HasOwnRows(*after));
  scheduler_.Shutdown();
  EXPECT_EQ(thrower->answers.load(), 1);
  EXPECT_EQ(log_.Order().size(), 4u);
}

TEST(ContainmentInlineTest, ExceptionOnTheInlinePathAnswersTheCallOnce) {
  const TestModel m = MediumModel("m", 32);
  Scheduler scheduler({.threads = 1});
  AnswerLog log;
  auto queue =
      scheduler.CreateQueue(m.model, {}, nullptr, nullptr, m.description());
  // 1 row is far below the default inline limit: it runs inside Submit.
  auto thrower = NewCall(m, 1, 1, "inline-thrower");
  const absl::Status submitted = scheduler.Submit(
      queue, ThrowingIsCancelled(thrower.get(), &log, Throw::kRuntimeError));
  // Accepted: `done` has run (with the error) before Submit returned.
  ASSERT_TRUE(submitted.ok()) << submitted;
  EXPECT_EQ(thrower->answers.load(), 1);
  EXPECT_EQ(thrower->answered_on, std::this_thread::get_id());
  EXPECT_EQ(thrower->status.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(thrower->OutputUntouched());

  auto next = NewCall(m, 1, 2, "inline-next");
  ASSERT_TRUE(scheduler.Submit(queue, ToInferenceCall(next.get(), &log)).ok());
  EXPECT_TRUE(HasOwnRows(*next));
}

}  // namespace
}  // namespace nnserve::server
