// Shared pieces of the scheduler unit tests (scheduler_test.cc,
// scheduler_order_test.cc): real engine models built in memory, calls that
// own their input and output and record how they were answered, a log of
// answers in the order they happened, a gate that holds a worker busy
// until the test opens it, and readers of the scheduler's Prometheus series.
//
// Header-only; everything belongs to the test that creates it. Thread
// safety: a Call is written by the one thread that runs its `done` and read
// by the test only after AnswerLog has seen the answer (the log's mutex
// orders the two); AnswerLog and Gate are thread-safe.
#ifndef NNSERVE_TESTS_SERVER_SCHEDULING_SCHEDULER_TEST_UTIL_H_
#define NNSERVE_TESTS_SERVER_SCHEDULING_SCHEDULER_TEST_UTIL_H_

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "engine/model.h"
#include "engine/model_spec.h"
#include "gtest/gtest.h"
#include "server/observability/metrics.h"
#include "server/scheduling/scheduler.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"

namespace nnserve::testing {

// How long a test waits for calls that must complete. Generous on purpose:
// it only turns a hang into a failure, it never measures speed.
inline constexpr absl::Duration kGenerousWait = absl::Seconds(120);

// A model built in memory and loaded by the engine, with its config and
// tensors for the reference forward pass.
struct TestModel {
  std::string name;
  RandomModel random;
  std::shared_ptr<const engine::Model> model;

  int64_t inputs() const { return model->input_size(); }
  int64_t outputs() const { return model->output_size(); }
  int64_t parameters() const { return model->info().total_parameters; }
  std::string description() const {
    return absl::StrCat("model '", name, "' version 1");
  }
};

inline TestModel MakeTestModel(std::string_view name, int64_t inputs,
                               const std::vector<LayerDef>& layers,
                               uint32_t seed) {
  TestModel m;
  m.name = std::string(name);
  m.random = BuildRandomModel(name, inputs, layers,
                              engine::WeightLayout::kOutIn, seed);
  absl::StatusOr<engine::ModelSpec> spec =
      engine::BuildModelSpec(m.random.config, m.random.tensors, "memory");
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return m;
  absl::StatusOr<std::shared_ptr<const engine::Model>> model =
      engine::Model::Create(*std::move(spec), 1, engine::EngineOptions{});
  EXPECT_TRUE(model.ok()) << model.status();
  if (model.ok()) m.model = *std::move(model);
  return m;
}

// 8 -> 8 RELU -> 4 SOFTMAX: 108 parameters.
inline TestModel TinyModel(std::string_view name, uint32_t seed) {
  return MakeTestModel(
      name, 8,
      {{8, engine::Activation::kRelu}, {4, engine::Activation::kSoftmax}},
      seed);
}

// 32 -> 64 RELU -> 32 TANH -> 10: 4 522 parameters, so with the default
// inline_work_limit (262 144) calls of up to 57 rows may run inline.
inline TestModel MediumModel(std::string_view name, uint32_t seed) {
  return MakeTestModel(name, 32,
                       {{64, engine::Activation::kRelu},
                        {32, engine::Activation::kTanh},
                        {10, engine::Activation::kIdentity}},
                       seed);
}

// One call: owns its input and output (NaN until written) and records
// every answer it gets.
struct Call {
  std::string tag;  // For messages and order checks: "A#3".
  const TestModel* model = nullptr;
  int64_t rows = 0;
  std::vector<float> input;
  std::vector<float> output;
  std::atomic<bool> cancelled{false};
  std::atomic<int> answers{0};
  // Written by `done` before it records the answer in the AnswerLog.
  absl::Status status = absl::UnknownError("not answered");
  std::thread::id answered_on;

  bool OutputUntouched() const {
    for (float v : output) {
      if (!std::isnan(v)) return false;
    }
    return true;
  }
};

inline std::unique_ptr<Call> NewCall(const TestModel& model, int64_t rows,
                                     uint32_t seed, std::string tag = "") {
  auto call = std::make_unique<Call>();
  call->tag = tag.empty() ? absl::StrCat(model.name, "/", seed) : tag;
  call->model = &model;
  call->rows = rows;
  call->input =
      RandomValues(static_cast<size_t>(rows * model.inputs()), 2.0f, seed);
  call->output.assign(static_cast<size_t>(rows * model.outputs()),
                      std::nanf(""));
  return call;
}

// Every answer, in the order the `done`s ran.
class AnswerLog {
 public:
  void Record(const Call* call) {
    absl::MutexLock lock(&mutex_);
    order_.push_back(call);
  }
  // True once `count` answers have been recorded; false after kGenerousWait.
  bool WaitForAnswers(size_t count) {
    absl::MutexLock lock(&mutex_);
    auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return order_.size() >= count;
    };
    return mutex_.AwaitWithTimeout(absl::Condition(&enough), kGenerousWait);
  }
  std::vector<const Call*> Order() const {
    absl::MutexLock lock(&mutex_);
    return order_;
  }
  // The tags in answer order, for readable failure messages.
  std::vector<std::string> Tags() const {
    std::vector<std::string> tags;
    for (const Call* call : Order()) tags.push_back(call->tag);
    return tags;
  }

 private:
  mutable absl::Mutex mutex_;
  std::vector<const Call*> order_ ABSL_GUARDED_BY(mutex_);
};

// The InferenceCall for `call`: its `done` records the outcome in `call`
// and then in `log`.
inline server::InferenceCall ToInferenceCall(
    Call* call, AnswerLog* log,
    std::chrono::system_clock::time_point deadline =
        std::chrono::system_clock::time_point::max()) {
  server::InferenceCall c;
  c.input = call->input;
  c.rows = call->rows;
  c.output = call->output;
  c.deadline = deadline;
  c.is_cancelled = [call] { return call->cancelled.load(); };
  c.done = [call, log](absl::Status status) {
    call->status = std::move(status);
    call->answered_on = std::this_thread::get_id();
    call->answers.fetch_add(1);
    log->Record(call);
  };
  return c;
}

// Success when `call` was answered exactly once, OK, with its own rows as
// the reference forward pass computes them.
inline ::testing::AssertionResult HasOwnRows(const Call& call) {
  if (call.answers.load() != 1) {
    return ::testing::AssertionFailure()
           << call.tag << " answered " << call.answers.load() << " times";
  }
  if (!call.status.ok()) {
    return ::testing::AssertionFailure() << call.tag << ": " << call.status;
  }
  const std::vector<double> expected =
      ReferenceForward(call.model->random.config, call.model->random.tensors,
                       call.input, call.rows);
  const double error = MaxRowRelativeError(call.output, expected, call.rows);
  if (!(error <= 1e-5)) {
    return ::testing::AssertionFailure()
           << call.tag << " (" << call.rows
           << " rows): output differs from its own rows' reference, error "
           << error;
  }
  return ::testing::AssertionSuccess();
}

// Holds one worker busy: a call on the gate's own queue whose `done`
// blocks until Open(). Opens itself on destruction so a failing test never
// leaves a worker blocked. Declare it after the Scheduler.
class Gate {
 public:
  // `inline_work_limit` is the scheduler's: the gate's call is made larger
  // so that it always goes to a worker.
  Gate(server::Scheduler& scheduler, int64_t inline_work_limit)
      : scheduler_(scheduler),
        model_(TinyModel("gate", 1)),
        queue_(scheduler.CreateQueue(
            model_.model, {.merge = false, .max_batch_rows = 1 << 20}, nullptr,
            nullptr, model_.description())),
        call_(NewCall(model_, inline_work_limit / model_.parameters() + 1, 1,
                      "gate")) {}
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  ~Gate() {
    Open();
    // The worker may still be inside `done`, touching this object.
    if (entered_.HasBeenNotified()) left_.WaitForNotification();
  }

  // Returns once a worker is blocked in the gate call's `done`.
  void Close() {
    server::InferenceCall c = ToInferenceCall(call_.get(), &log_);
    c.done = [this](absl::Status status) {
      call_->status = std::move(status);
      call_->answered_on = std::this_thread::get_id();
      entered_.Notify();
      release_.WaitForNotification();
      left_.Notify();
    };
    ASSERT_TRUE(scheduler_.Submit(queue_, std::move(c)).ok());
    ASSERT_TRUE(entered_.WaitForNotificationWithTimeout(kGenerousWait))
        << "no worker ran the gate call";
    ASSERT_NE(call_->answered_on, std::this_thread::get_id());
  }
  void Open() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }
  // The worker the gate holds.
  std::thread::id worker() const { return call_->answered_on; }

 private:
  server::Scheduler& scheduler_;
  TestModel model_;
  std::shared_ptr<server::ModelQueue> queue_;
  std::unique_ptr<Call> call_;
  AnswerLog log_;
  absl::Notification entered_;
  absl::Notification release_;
  absl::Notification left_;
};

// The per-version metrics handle as the scheduler takes it.
inline std::shared_ptr<server::ModelVersionMetrics> Shared(
    std::shared_ptr<server::ModelVersionMetrics> metrics) {
  return metrics;
}
inline std::shared_ptr<server::ModelVersionMetrics> Shared(
    server::ModelVersionMetrics* metrics) {
  // Owned by ServerMetrics, which outlives the test's scheduler.
  return std::shared_ptr<server::ModelVersionMetrics>(std::shared_ptr<void>(),
                                                      metrics);
}
inline std::shared_ptr<server::ModelVersionMetrics> VersionMetrics(
    server::ServerMetrics& metrics, const TestModel& model) {
  std::vector<std::string> layers;
  for (const auto& layer : model.model->info().layers) {
    layers.push_back(layer.name);
  }
  return Shared(metrics.ForModelVersion(model.name, 1, layers));
}

// The series of `family` whose "model" label is `model` (empty if none).
inline std::vector<prometheus::ClientMetric> Series(
    const server::ServerMetrics& metrics, std::string_view family,
    std::string_view model) {
  std::vector<prometheus::ClientMetric> found;
  for (const auto& f : metrics.registry()->Collect()) {
    if (f.name != family) continue;
    for (const auto& metric : f.metric) {
      for (const auto& label : metric.label) {
        if (label.name == "model" && label.value == model) {
          found.push_back(metric);
        }
      }
    }
  }
  return found;
}

// nnserve_batch_rows{model}: the forward passes the scheduler ran.
struct BatchRows {
  uint64_t batches = 0;
  double rows = 0;
  std::vector<prometheus::ClientMetric::Bucket> buckets;

  // Batches of more than `bound` rows; `bound` must be a bucket boundary
  // (1, 2, 4, ..., 4096).
  int64_t Above(double bound) const {
    for (const auto& bucket : buckets) {
      if (bucket.upper_bound == bound) {
        return static_cast<int64_t>(batches - bucket.cumulative_count);
      }
    }
    ADD_FAILURE() << bound << " is not a bucket boundary of batch_rows";
    return -1;
  }
};

inline BatchRows ReadBatchRows(const server::ServerMetrics& metrics,
                               std::string_view model) {
  BatchRows result;
  for (const auto& metric : Series(metrics, "nnserve_batch_rows", model)) {
    result.batches = metric.histogram.sample_count;
    result.rows = metric.histogram.sample_sum;
    result.buckets = metric.histogram.bucket;
  }
  return result;
}

// A counter or gauge of `model` (the sum over its series; 0 if none).
inline double ReadValue(const server::ServerMetrics& metrics,
                        std::string_view family, std::string_view model) {
  double sum = 0;
  for (const auto& metric : Series(metrics, family, model)) {
    sum += metric.counter.value + metric.gauge.value;
  }
  return sum;
}

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_SCHEDULING_SCHEDULER_TEST_UTIL_H_
