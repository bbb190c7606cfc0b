// ModelLifecycle (see model_lifecycle.h): start-up, the task queue, the
// loader and poll threads. What one model's task does is VersionSync's
// job (version_sync.h).
//
// Work is done in tasks, one model each. Loader threads take the first
// queued task whose model no other task is working on, so each model's
// tasks run one at a time and in order, and different models load in
// parallel up to `load_threads`. A poll queues one sync per model; a sync
// still waiting in the queue is given the newer scan instead of queueing a
// second one. A model's ModelSyncState is checked out of `states_` while
// its task runs.
#include "server/lifecycle/model_lifecycle.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/str_util.h"
#include "server/lifecycle/repository_scan.h"
#include "server/lifecycle/version_sync.h"
#include "server/observability/logging.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {

std::string_view ModelControlModeName(ModelControlMode mode) {
  switch (mode) {
    case ModelControlMode::kNone:
      return "none";
    case ModelControlMode::kPoll:
      return "poll";
    case ModelControlMode::kExplicit:
      return "explicit";
  }
  return "unknown";
}

absl::StatusOr<ModelControlMode> ParseModelControlMode(std::string_view text) {
  for (ModelControlMode mode :
       {ModelControlMode::kNone, ModelControlMode::kPoll,
        ModelControlMode::kExplicit}) {
    if (text == ModelControlModeName(mode)) return mode;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("model control mode '", Sv(text),
                   "' is unknown, expected none, poll or explicit"));
}

namespace {

using Done = absl::AnyInvocable<void(absl::Status) &&>;

struct Task {
  enum class Kind { kSync, kLoad, kUnload };
  Kind kind = Kind::kSync;
  std::string model;
  // kSync: the model as scanned; nullopt = its directory is gone.
  std::optional<ScannedModel> scan;
  Done done;  // May be empty.
};

// The status LoadModel reports for a failed load: validation errors as
// they are, anything else (a missing file, no version directory) as
// FAILED_PRECONDITION, so NOT_FOUND keeps meaning "no such model".
absl::Status ForCaller(const absl::Status& status) {
  if (status.ok() || status.code() == absl::StatusCode::kInvalidArgument ||
      status.code() == absl::StatusCode::kUnavailable) {
    return status;
  }
  return absl::FailedPreconditionError(status.message());
}

}  // namespace

class ModelLifecycle::Impl {
 public:
  Impl(const Options& options, ModelRegistry* registry, Scheduler* scheduler,
       ServerMetrics* metrics)
      : options_(options),
        registry_(registry),
        scheduler_(scheduler),
        metrics_(metrics),
        scanner_(options.repository),
        sync_(VersionSync::Options{.engine = options.engine,
                                   .batching_defaults =
                                       options.batching_defaults},
              registry, scheduler, metrics) {}

  ~Impl() { Stop(); }

  absl::Status Start();
  void Rescan();
  void Enqueue(Task task);
  void Stop();

 private:
  // Runs `task` with its model's state; returns the outcome for `done`.
  absl::Status Run(Task& task, ModelSyncState& state);
  void LoaderLoop();
  void PollLoop();
  // Index in queue_ of the first task whose model is not busy, or -1.
  int RunnableTask() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void EnqueueLocked(Task task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Queues a sync of every scanned model and of every model the
  // lifecycle knows that the scan no longer has.
  void EnqueueScan(std::vector<ScannedModel> scan);

  const Options& options_;
  ModelRegistry* const registry_;
  Scheduler* const scheduler_;
  ServerMetrics* const metrics_;
  RepositoryScanner scanner_;
  VersionSync sync_;

  absl::Mutex mutex_;
  absl::CondVar work_;  // A task was queued or finished, or stopping.
  std::deque<Task> queue_ ABSL_GUARDED_BY(mutex_);
  // Models a task is running for; their state is checked out of states_.
  std::set<std::string, std::less<>> busy_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, ModelSyncState, std::less<>> states_
      ABSL_GUARDED_BY(mutex_);
  bool rescan_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::string last_scan_error_ ABSL_GUARDED_BY(mutex_);
  // Set by Start() in strict mode after the first failure: loads still
  // queued are skipped.
  std::atomic<bool> abort_loads_{false};
  // Creating (Start) and joining (Stop) the threads.
  absl::Mutex threads_mutex_;
  std::vector<std::thread> loaders_ ABSL_GUARDED_BY(threads_mutex_);
  std::thread poller_ ABSL_GUARDED_BY(threads_mutex_);
  bool stopped_ ABSL_GUARDED_BY(threads_mutex_) = false;
};

absl::Status ModelLifecycle::Impl::Start() {
  absl::StatusOr<std::vector<ScannedModel>> scan = scanner_.ScanAll();
  if (!scan.ok()) return scan.status();
  const ModelControlMode mode = options_.mode;
  if (mode == ModelControlMode::kNone && scan->empty()) {
    return absl::NotFoundError(
        absl::StrCat("model repository '", options_.repository.string(),
                     "' contains no model directories; expected "
                     "<repository>/<model>/config.pbtxt and "
                     "<repository>/<model>/<version>/"));
  }
  // Explicit mode: only the models asked for ("*" = all).
  std::vector<ScannedModel> models;
  if (mode == ModelControlMode::kExplicit &&
      std::find(options_.startup_models.begin(), options_.startup_models.end(),
                "*") == options_.startup_models.end()) {
    for (const std::string& name : options_.startup_models) {
      auto it =
          std::find_if(scan->begin(), scan->end(),
                       [&](const ScannedModel& m) { return m.name == name; });
      if (it == scan->end()) {
        return absl::NotFoundError(absl::StrCat(
            "--load-model '", name, "': the model repository '",
            options_.repository.string(), "' has no directory of that name"));
      }
      models.push_back(std::move(*it));
      scan->erase(it);
    }
  } else {
    models = *std::move(scan);
  }

  // Every version about to load is LOADING before the first load starts,
  // so requests get "still loading" rather than "not found".
  for (const ScannedModel& model : models) {
    for (const ScannedVersion& version : model.selected) {
      registry_->SetLoading(model.name, version.version);
    }
  }
  const bool strict =
      mode == ModelControlMode::kNone && !options_.allow_load_failures;
  struct Outcome {
    absl::Status status;
    bool invalid_name = false;
  };
  std::vector<Outcome> outcomes(models.size());
  absl::BlockingCounter pending(static_cast<int>(models.size()));
  {
    absl::MutexLock lock(&threads_mutex_);
    if (stopped_) return absl::UnavailableError("the lifecycle was stopped");
    for (int i = 0; i < std::max(1, options_.load_threads); ++i) {
      loaders_.emplace_back([this] { LoaderLoop(); });
    }
  }
  for (size_t i = 0; i < models.size(); ++i) {
    outcomes[i].invalid_name = models[i].invalid_name;
    Task task;
    task.kind = Task::Kind::kSync;
    task.model = models[i].name;
    task.scan = std::move(models[i]);
    task.done = [this, strict, &outcomes, &pending, i](absl::Status status) {
      if (strict && !status.ok() && !outcomes[i].invalid_name) {
        abort_loads_.store(true);
      }
      outcomes[i].status = std::move(status);
      pending.DecrementCount();
    };
    Enqueue(std::move(task));
  }
  pending.Wait();
  abort_loads_.store(false);

  // The first real failure (loads skipped after it report ABORTED).
  absl::Status first_error;
  for (const Outcome& outcome : outcomes) {
    if (outcome.status.ok() || outcome.invalid_name) continue;
    if (first_error.ok() ||
        (first_error.code() == absl::StatusCode::kAborted &&
         outcome.status.code() != absl::StatusCode::kAborted)) {
      first_error = outcome.status;
    }
  }
  if (strict && !first_error.ok()) return first_error;
  if (mode == ModelControlMode::kNone) {
    bool served = false;
    for (const std::string& name : registry_->ModelNames()) {
      served = served || !registry_->AvailableVersions(name).empty();
    }
    if (!served) {
      const absl::Status cause = first_error.ok() && !outcomes.empty()
                                     ? outcomes.front().status
                                     : first_error;
      return absl::Status(
          cause.ok() ? absl::StatusCode::kNotFound : cause.code(),
          absl::StrCat("no model version could be loaded from '",
                       options_.repository.string(),
                       "'; first error: ", cause.message()));
    }
  }
  if (mode == ModelControlMode::kPoll) {
    absl::MutexLock lock(&threads_mutex_);
    if (!stopped_) poller_ = std::thread([this] { PollLoop(); });
  }
  return absl::OkStatus();
}

void ModelLifecycle::Impl::Rescan() {
  if (options_.mode != ModelControlMode::kPoll) return;
  absl::MutexLock lock(&mutex_);
  rescan_ = true;
  work_.SignalAll();
}

void ModelLifecycle::Impl::Enqueue(Task task) {
  Done refused;
  {
    absl::MutexLock lock(&mutex_);
    if (!stopping_) {
      EnqueueLocked(std::move(task));
      return;
    }
    refused = std::move(task.done);
  }
  if (refused) {
    std::move(refused)(absl::UnavailableError(
        "the server is shutting down; the model lifecycle takes no more "
        "requests"));
  }
}

void ModelLifecycle::Impl::EnqueueLocked(Task task) {
  if (task.kind == Task::Kind::kSync && !task.done) {
    // A sync still waiting takes the newer scan instead.
    for (Task& queued : queue_) {
      if (queued.kind == Task::Kind::kSync && !queued.done &&
          queued.model == task.model) {
        queued.scan = std::move(task.scan);
        return;
      }
    }
  }
  queue_.push_back(std::move(task));
  work_.SignalAll();
}

int ModelLifecycle::Impl::RunnableTask() const {
  std::set<std::string_view> blocked;  // Models with an earlier task queued.
  for (size_t i = 0; i < queue_.size(); ++i) {
    const std::string& model = queue_[i].model;
    if (!busy_.contains(model) && !blocked.contains(model)) {
      return static_cast<int>(i);
    }
    blocked.insert(model);
  }
  return -1;
}

void ModelLifecycle::Impl::LoaderLoop() {
  while (true) {
    Task task;
    ModelSyncState state;
    {
      absl::MutexLock lock(&mutex_);
      int index = -1;
      while (!stopping_ && (index = RunnableTask()) < 0) work_.Wait(&mutex_);
      if (stopping_) return;
      task = std::move(queue_[index]);
      queue_.erase(queue_.begin() + index);
      busy_.insert(task.model);
      auto it = states_.find(task.model);
      if (it != states_.end()) {
        state = std::move(it->second);
        states_.erase(it);
      }
    }
    absl::Status status = Run(task, state);
    {
      absl::MutexLock lock(&mutex_);
      // A model that serves nothing and lists nothing is forgotten.
      if (!state.empty()) states_[task.model] = std::move(state);
      busy_.erase(task.model);
      work_.SignalAll();
    }
    // Answered to an RPC caller: repository-relative paths only.
    if (task.done) {
      std::move(task.done)(absl::Status(
          status.code(),
          RelativeToRepository(status.message(), options_.repository)));
    }
  }
}

absl::Status ModelLifecycle::Impl::Run(Task& task, ModelSyncState& state) {
  switch (task.kind) {
    case Task::Kind::kSync:
      if (!task.scan.has_value()) {
        sync_.Unload(task.model, state, "directory_removed");
        return absl::OkStatus();
      }
      return sync_.Sync(*task.scan, state, /*retry_failed=*/false,
                        abort_loads_);
    case Task::Kind::kLoad: {
      absl::StatusOr<ScannedModel> scan = scanner_.ScanModel(task.model);
      if (!scan.ok()) return scan.status();
      return ForCaller(
          sync_.Sync(*scan, state, /*retry_failed=*/true, abort_loads_));
    }
    case Task::Kind::kUnload: {
      const std::vector<std::string> listed = registry_->ModelNames();
      const bool known =
          std::find(listed.begin(), listed.end(), task.model) != listed.end();
      if (!known) {
        absl::StatusOr<ScannedModel> scan = scanner_.ScanModel(task.model);
        if (!scan.ok()) return scan.status();
        return absl::OkStatus();  // In the repository, not served: done.
      }
      sync_.Unload(task.model, state, "unload_request");
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

void ModelLifecycle::Impl::EnqueueScan(std::vector<ScannedModel> scan) {
  absl::MutexLock lock(&mutex_);
  std::set<std::string, std::less<>> scanned;
  for (ScannedModel& model : scan) {
    scanned.insert(model.name);
    Task task;
    task.model = model.name;
    task.scan = std::move(model);
    EnqueueLocked(std::move(task));
  }
  std::set<std::string, std::less<>> known(busy_.begin(), busy_.end());
  for (const auto& [name, state] : states_) known.insert(name);
  for (const std::string& name : known) {
    if (scanned.contains(name)) continue;
    Task task;
    task.model = name;  // scan = nullopt: the directory is gone.
    EnqueueLocked(std::move(task));
  }
}

void ModelLifecycle::Impl::PollLoop() {
  const absl::Duration interval = absl::Seconds(options_.poll_seconds);
  absl::Time next = absl::Now() + interval;
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      while (!stopping_ && !rescan_ && absl::Now() < next) {
        work_.WaitWithDeadline(&mutex_, next);
      }
      if (stopping_) return;
      rescan_ = false;
    }
    absl::StatusOr<std::vector<ScannedModel>> scan = scanner_.ScanAll();
    next = absl::Now() + interval;
    if (!scan.ok()) {
      absl::MutexLock lock(&mutex_);
      if (last_scan_error_ != scan.status().message()) {
        last_scan_error_ = std::string(scan.status().message());
        spdlog::error("event=repository_scan_failed error={}",
                      LogQuote(last_scan_error_));
      }
      continue;
    }
    {
      absl::MutexLock lock(&mutex_);
      last_scan_error_.clear();
    }
    EnqueueScan(*std::move(scan));
  }
}

void ModelLifecycle::Impl::Stop() {
  absl::MutexLock threads_lock(&threads_mutex_);
  if (stopped_) return;
  stopped_ = true;
  std::deque<Task> abandoned;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    work_.SignalAll();
  }
  if (poller_.joinable()) poller_.join();
  for (std::thread& loader : loaders_) loader.join();
  {
    absl::MutexLock lock(&mutex_);
    abandoned.swap(queue_);
  }
  for (Task& task : abandoned) {
    if (!task.done) continue;
    std::move(task.done)(absl::UnavailableError(
        absl::StrCat("the server is shutting down; the request for model '",
                     task.model, "' was not run")));
  }
}

ModelLifecycle::ModelLifecycle(const Options& options, ModelRegistry* registry,
                               Scheduler* scheduler, ServerMetrics* metrics)
    : options_(options),
      impl_(std::make_unique<Impl>(options_, registry, scheduler, metrics)) {}

ModelLifecycle::~ModelLifecycle() { Stop(); }

absl::Status ModelLifecycle::Start() { return impl_->Start(); }

void ModelLifecycle::Rescan() { impl_->Rescan(); }

void ModelLifecycle::LoadModel(std::string model, Done done) {
  if (options_.mode != ModelControlMode::kExplicit) {
    std::move(done)(absl::FailedPreconditionError(absl::StrCat(
        "LoadModel is only accepted with --model-control-mode=explicit; this "
        "server runs in mode '",
        Sv(ModelControlModeName(options_.mode)), "'")));
    return;
  }
  Task task;
  task.kind = Task::Kind::kLoad;
  task.model = std::move(model);
  task.done = std::move(done);
  impl_->Enqueue(std::move(task));
}

void ModelLifecycle::UnloadModel(std::string model, Done done) {
  if (options_.mode != ModelControlMode::kExplicit) {
    std::move(done)(absl::FailedPreconditionError(absl::StrCat(
        "UnloadModel is only accepted with --model-control-mode=explicit; "
        "this server runs in mode '",
        Sv(ModelControlModeName(options_.mode)), "'")));
    return;
  }
  Task task;
  task.kind = Task::Kind::kUnload;
  task.model = std::move(model);
  task.done = std::move(done);
  impl_->Enqueue(std::move(task));
}

void ModelLifecycle::Stop() { impl_->Stop(); }

}  // namespace nnserve::server
