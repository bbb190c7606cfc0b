// Helpers for the integration tests of the model lifecycle and of the
// scheduler against the real binary (model_reload_*, model_policy_*,
// fairness_* tests):
//   - CallLoop: Predict calls sent back to back from N threads for as long
//     as the loop lives, every answer checked against the reference output
//     of whichever version (and weights) it says answered it;
//   - ListModels polling (WaitForList) and small readers of its answer;
//   - label-aware readers of a /metrics scrape (SampleValues, SeriesWith).
// Repositories changed while the server runs come from
// tests/util/live_repository.h, RSS from tests/util/process_memory.h.
//
// Header-only (the test utility library stays free of gRPC). A CallLoop is
// owned by the test body; its own threads record under its mutex and every
// public method may be called from the test thread while they run. The
// other helpers are stateless.
#ifndef NNSERVE_TESTS_SERVER_INTEGRATION_LIFECYCLE_FIXTURE_H_
#define NNSERVE_TESTS_SERVER_INTEGRATION_LIFECYCLE_FIXTURE_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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

// --- ListModels ---

// The entry of `model` in `list`, or nullptr.
inline const v1::ModelStatus* FindModel(const v1::ListModelsResponse& list,
                                        absl::string_view model) {
  for (const v1::ModelStatus& m : list.models()) {
    if (m.name() == model) return &m;
  }
  return nullptr;
}

// Every listed version of `model` with its state (empty if not listed).
inline std::map<int64_t, v1::ModelVersionStatus> Versions(
    const v1::ListModelsResponse& list, absl::string_view model) {
  std::map<int64_t, v1::ModelVersionStatus> versions;
  if (const v1::ModelStatus* m = FindModel(list, model)) {
    for (const v1::ModelVersionStatus& v : m->versions()) {
      versions[v.version()] = v;
    }
  }
  return versions;
}

// The listed versions of `model` in `state`, ascending.
inline std::vector<int64_t> VersionsIn(const v1::ListModelsResponse& list,
                                       absl::string_view model,
                                       v1::ModelVersionStatus::State state) {
  std::vector<int64_t> out;
  for (const auto& [version, status] : Versions(list, model)) {
    if (status.state() == state) out.push_back(version);
  }
  return out;
}

// The listed versions of `model`, ascending, whatever their state.
inline std::vector<int64_t> ListedVersions(const v1::ListModelsResponse& list,
                                           absl::string_view model) {
  std::vector<int64_t> out;
  for (const auto& entry : Versions(list, model)) out.push_back(entry.first);
  return out;
}

// "m: 1 AVAILABLE, 2 FAILED (error); n: ..." for failure messages.
inline std::string ListText(const v1::ListModelsResponse& list) {
  std::vector<std::string> models;
  for (const v1::ModelStatus& m : list.models()) {
    std::vector<std::string> versions;
    for (const v1::ModelVersionStatus& v : m.versions()) {
      std::string text = absl::StrCat(
          v.version(), " ", v1::ModelVersionStatus::State_Name(v.state()));
      if (!v.error().empty()) absl::StrAppend(&text, " (", v.error(), ")");
      versions.push_back(std::move(text));
    }
    models.push_back(
        absl::StrCat(m.name(), ": ", absl::StrJoin(versions, ", ")));
  }
  return absl::StrCat("[", absl::StrJoin(models, "; "), "]");
}

// Polls ListModels (every 20 ms) until `done` holds for its answer and
// returns that answer; on timeout or server exit, an error naming `what`
// with the last answer seen. Never asserts on how long it took.
inline absl::StatusOr<v1::ListModelsResponse> WaitForList(
    const RunningServer& server,
    const std::function<bool(const v1::ListModelsResponse&)>& done,
    const std::string& what,
    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  v1::ListModelsResponse last;
  std::string last_error = "no answer yet";
  absl::Status waited = server.process->WaitUntil(
      [&] {
        absl::StatusOr<v1::ListModelsResponse> list =
            server.client->ListModels();
        if (!list.ok()) {
          last_error = list.status().ToString();
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          return false;
        }
        last = *std::move(list);
        last_error.clear();
        if (done(last)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return false;
      },
      timeout, what);
  if (waited.ok()) return last;
  return absl::Status(waited.code(),
                      absl::StrCat(waited.message(), "\nlast ListModels: ",
                                   ListText(last), " ", last_error));
}

// --- /metrics ---

// The values of the samples named exactly `name` whose labels include every
// `labels` pair (in any order, among others), in scrape order.
inline std::vector<double> SampleValues(
    const std::string& text, absl::string_view name,
    const std::map<std::string, std::string>& labels = {}) {
  std::vector<double> values;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t name_end = line.find_first_of("{ ");
    if (name_end == absl::string_view::npos) continue;
    if (line.substr(0, name_end) != name) continue;
    absl::string_view label_text;
    absl::string_view rest = line.substr(name_end);
    if (rest[0] == '{') {
      const size_t close = rest.find('}');
      if (close == absl::string_view::npos) continue;
      label_text = rest.substr(0, close + 1);
      rest = rest.substr(close + 1);
    }
    bool all = true;
    for (const auto& [key, value] : labels) {
      all = all && absl::StrContains(label_text,
                                     absl::StrCat(key, "=\"", value, "\""));
    }
    if (!all) continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(rest, ' ', absl::SkipEmpty());
    if (!fields.empty()) values.push_back(std::stod(std::string(fields[0])));
  }
  return values;
}

// Every sample line (any metric) whose labels include all of `labels`.
inline std::vector<std::string> SeriesWith(
    const std::string& text, const std::map<std::string, std::string>& labels) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t open = line.find('{');
    const size_t close = line.find('}');
    if (open == absl::string_view::npos || close == absl::string_view::npos) {
      continue;
    }
    const absl::string_view label_text = line.substr(open, close - open + 1);
    bool all = true;
    for (const auto& [key, value] : labels) {
      all = all && absl::StrContains(label_text,
                                     absl::StrCat(key, "=\"", value, "\""));
    }
    if (all) lines.emplace_back(line);
  }
  return lines;
}

// --- Servers ---

// Options for nnserve in poll mode on `repository`, rescanning every
// `poll_seconds`, with two inference workers and `extra_args` appended.
inline ServerOptions PollingServerOptions(
    const std::filesystem::path& repository, double poll_seconds,
    std::vector<std::string> extra_args = {}) {
  ServerOptions options;
  options.model_repository = repository;
  options.extra_args = {
      "--model-control-mode=poll",
      absl::StrCat("--repository-poll-seconds=", poll_seconds), "--threads=2"};
  for (std::string& arg : extra_args) {
    options.extra_args.push_back(std::move(arg));
  }
  return options;
}

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_INTEGRATION_LIFECYCLE_FIXTURE_H_
