// CallLoop: Predict calls sent back to back from N threads for as long as
// the loop lives (or until Stop), every answer checked against the
// reference output of whichever version (and weights) it says answered it:
// counts per expected answer, errors (any non-OK status), mismatches (OK
// but matching no expected output of that version) and order violations
// (a thread answered by weights listed before ones it already got, e.g. an
// old version after a new one). Used by the lifecycle and fairness
// integration tests against the real binary.
//
// Header-only (the test utility library stays free of gRPC). The loop owns
// its threads and joins them in Stop() and the destructor; they record
// under its mutex, and every public method may be called from the test
// thread while they run. The Client must outlive the loop.
#ifndef NNSERVE_TESTS_SERVER_INTEGRATION_CALL_LOOP_H_
#define NNSERVE_TESTS_SERVER_INTEGRATION_CALL_LOOP_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {

// One answer a CallLoop accepts: a response carrying `version` whose output
// matches `output` (the reference output for the loop's rows).
struct ExpectedAnswer {
  std::string label;  // Names these weights in counts and messages.
  int64_t version = 0;
  std::vector<double> output;
};

class CallLoop {
 public:
  struct Options {
    int threads = 4;
    std::chrono::milliseconds deadline = std::chrono::seconds(10);
    double max_relative_error = 1e-5;
  };

  // Starts `options.threads` threads, each calling Predict(request) on
  // `client` back to back until Stop(). `rows` is the request's row count.
  CallLoop(const Client& client, v1::PredictRequest request, int64_t rows,
           std::vector<ExpectedAnswer> expected, Options options)
      : client_(client),
        request_(std::move(request)),
        rows_(rows),
        expected_(std::move(expected)),
        options_(options),
        answers_(expected_.size(), 0),
        last_index_(options.threads, -1) {
    for (int t = 0; t < options_.threads; ++t) {
      threads_.emplace_back([this, t] { Run(t); });
    }
  }
  CallLoop(const CallLoop&) = delete;
  CallLoop& operator=(const CallLoop&) = delete;
  ~CallLoop() { Stop(); }

  // Stops the threads after their current call and joins them.
  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  // Waits until at least `count` more answers labelled `label` than now
  // have arrived; whether they did within `timeout`.
  bool WaitForMoreAnswers(absl::string_view label, int64_t count,
                          std::chrono::milliseconds timeout) {
    const size_t index = LabelIndex(label);
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t target = answers_[index] + count;
    return changed_.wait_for(lock, timeout,
                             [&] { return answers_[index] >= target; });
  }

  int64_t calls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_;
  }
  int64_t answers(absl::string_view label) const {
    const size_t index = LabelIndex(label);
    std::lock_guard<std::mutex> lock(mutex_);
    return answers_[index];
  }
  int64_t errors() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return errors_;
  }
  int64_t mismatches() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return mismatches_;
  }
  // Calls after which a thread got an answer listed earlier in `expected`
  // than one it had already got (an old version answering after a new one).
  int64_t order_violations() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return order_violations_;
  }

  // Counts per label, errors, mismatches, and the first few problems.
  std::string Summary() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string text = absl::StrCat(calls_, " calls:");
    for (size_t i = 0; i < expected_.size(); ++i) {
      absl::StrAppend(&text, " ", expected_[i].label, "=", answers_[i]);
    }
    absl::StrAppend(&text, ", errors=", errors_, ", mismatches=", mismatches_,
                    ", order violations=", order_violations_);
    for (const std::string& problem : problems_) {
      absl::StrAppend(&text, "\n  ", problem);
    }
    return text;
  }

 private:
  static constexpr size_t kMaxProblems = 10;

  size_t LabelIndex(absl::string_view label) const {
    for (size_t i = 0; i < expected_.size(); ++i) {
      if (expected_[i].label == label) return i;
    }
    ADD_FAILURE() << "CallLoop: no expected answer is labelled " << label;
    return 0;
  }

  void Run(int thread) {
    CallOptions call;
    call.timeout = options_.deadline;
    while (!stop_) {
      absl::StatusOr<v1::PredictResponse> response =
          client_.Predict(request_, call);
      Record(thread, response);
    }
  }

  // The index of the expected answer `response` matches, or a description
  // of why it matches none.
  std::pair<int, std::string> Classify(
      const absl::StatusOr<v1::PredictResponse>& response) const {
    if (!response.ok()) return {-1, response.status().ToString()};
    if (response->model() != request_.model()) {
      return {-1, absl::StrCat("answer names model '", response->model(),
                               "', expected '", request_.model(), "'")};
    }
    absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
    if (!output.ok()) return {-1, output.status().ToString()};
    double closest = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < expected_.size(); ++i) {
      const ExpectedAnswer& e = expected_[i];
      if (e.version != response->version() ||
          output->values.size() != e.output.size()) {
        continue;
      }
      const double error = MaxRowRelativeError(output->values, e.output, rows_);
      if (error <= options_.max_relative_error)
        return {static_cast<int>(i), ""};
      closest = std::min(closest, error);
    }
    return {-1, absl::StrCat("version ", response->version(), " answered ",
                             output->rows, "x", output->cols,
                             " values matching no expected weights of that "
                             "version (closest relative error ",
                             closest, ")")};
  }

  void Record(int thread, const absl::StatusOr<v1::PredictResponse>& response) {
    auto [index, problem] = Classify(response);
    std::lock_guard<std::mutex> lock(mutex_);
    ++calls_;
    if (index < 0) {
      ++(response.ok() ? mismatches_ : errors_);
      if (problems_.size() < kMaxProblems) {
        problems_.push_back(
            absl::StrCat(response.ok() ? "mismatch: " : "error: ", problem));
      }
    } else {
      ++answers_[index];
      if (index < last_index_[thread]) {
        ++order_violations_;
        if (problems_.size() < kMaxProblems) {
          problems_.push_back(
              absl::StrCat("thread ", thread, " got ", expected_[index].label,
                           " after ", expected_[last_index_[thread]].label));
        }
      }
      last_index_[thread] = std::max(last_index_[thread], index);
    }
    changed_.notify_all();
  }

  const Client& client_;
  const v1::PredictRequest request_;
  const int64_t rows_;
  const std::vector<ExpectedAnswer> expected_;
  const Options options_;
  std::atomic<bool> stop_{false};

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int64_t calls_ = 0;                  // Guarded by mutex_.
  std::vector<int64_t> answers_;       // Per expected answer; mutex_.
  int64_t errors_ = 0;                 // mutex_.
  int64_t mismatches_ = 0;             // mutex_.
  int64_t order_violations_ = 0;       // mutex_.
  std::vector<int> last_index_;        // Per thread; mutex_.
  std::vector<std::string> problems_;  // The first kMaxProblems; mutex_.

  std::vector<std::thread> threads_;  // Last: started after the rest.
};

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_INTEGRATION_CALL_LOOP_H_
