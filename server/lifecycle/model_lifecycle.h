// ModelLifecycle: decides which model versions are served and loads and
// unloads them while the server runs (TF Serving's "manager"; Triton's
// model control modes). It reads the repository (repository_scan.h), loads
// versions off the gRPC and inference threads on its own loader thread(s)
// (version_sync.h has the per-model rules), and publishes them in the
// ModelRegistry, the only place requests look versions up. Which versions
// of a model serve is its config's version_policy (latest N, default 1;
// all; specific).
//
// Control modes (--model-control-mode):
//   none      load every model at start-up; nothing changes afterwards.
//   poll      also rescan every poll interval and on Rescan() (SIGHUP):
//             new models and versions are loaded, removed ones unloaded,
//             versions whose files changed are reloaded in place.
//   explicit  at start-up load only `startup_models` ("*" = all); later
//             LoadModel/UnloadModel (the ModelRepository RPCs) decide.
//
// Swap guarantees. A version is read, validated and warmed up while the
// version it replaces keeps serving; then the registry switches to it in one
// step. Old versions are dropped only after their replacements serve
// (availability first). A load that fails changes nothing that was serving:
// the version is listed FAILED with the validation message and retried when
// its files change (size, mtime or inode of config.pbtxt or of a file in
// the version directory). A directory that disappears is unloaded. At most
// `load_threads` models load at once, each one version at a time, so memory
// holds at most `load_threads` extra model copies during reloads.
//
// Thread-safe. Start() once, then any method from any thread; Stop() (also
// run by the destructor) joins the lifecycle's threads. The registry,
// scheduler and metrics must outlive this object.
#ifndef NNSERVE_SERVER_LIFECYCLE_MODEL_LIFECYCLE_H_
#define NNSERVE_SERVER_LIFECYCLE_MODEL_LIFECYCLE_H_

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model.h"
#include "server/lifecycle/model_registry.h"
#include "server/observability/metrics.h"
#include "server/scheduling/scheduler.h"

namespace nnserve::server {

enum class ModelControlMode { kNone, kPoll, kExplicit };

// "none", "poll", "explicit"; parse errors name the accepted values.
std::string_view ModelControlModeName(ModelControlMode mode);
absl::StatusOr<ModelControlMode> ParseModelControlMode(std::string_view text);

class ModelLifecycle {
 public:
  struct Options {
    std::filesystem::path repository;
    ModelControlMode mode = ModelControlMode::kNone;
    double poll_seconds = 5;
    // kExplicit: models loaded by Start() ("*" = all).
    std::vector<std::string> startup_models;
    int load_threads = 1;  // Models loading at once (>= 1).
    // With false, Start() fails on the first version that fails to load in
    // mode none (the historical behaviour); poll and explicit never fail
    // start-up for a bad model.
    bool allow_load_failures = false;
    engine::EngineOptions engine;
    BatchingOptions batching_defaults;
  };

  ModelLifecycle(const Options& options, ModelRegistry* registry,
                 Scheduler* scheduler, ServerMetrics* metrics);
  ModelLifecycle(const ModelLifecycle&) = delete;
  ModelLifecycle& operator=(const ModelLifecycle&) = delete;
  ~ModelLifecycle();

  // Scans the repository and loads what the mode selects, blocking until
  // done (requests meanwhile get UNAVAILABLE "still loading"); then starts
  // the poll thread (kPoll). Errors: a missing or unreadable repository; in
  // kNone a repository without model directories, a failed load (unless
  // allow_load_failures) or no version served at all; in kExplicit a
  // `startup_models` name without a directory. A directory with an invalid
  // model name is listed FAILED and never fails Start().
  absl::Status Start();

  // kPoll: rescan now (SIGHUP). Returns at once; the scan runs on the
  // lifecycle's thread. A no-op in the other modes.
  void Rescan();

  // kExplicit: (re)load `model` from the repository, with its version
  // policy: versions whose files changed since they loaded are reloaded,
  // failed ones are retried (changed or not), unchanged served ones stay.
  // `done` receives OK once every selected version serves, NOT_FOUND if
  // the repository has no such model directory, the validation error
  // (INVALID_ARGUMENT, or FAILED_PRECONDITION for e.g. a missing file) if
  // a version failed to load; what served before keeps serving. In other
  // modes `done` gets FAILED_PRECONDITION naming the mode. `done` runs on
  // a lifecycle thread (or inline for immediate errors).
  void LoadModel(std::string model,
                 absl::AnyInvocable<void(absl::Status) &&> done);
  // kExplicit: stop serving and listing every version of `model`
  // (in-flight calls finish on the old versions). OK if the model is in the
  // repository but not served; NOT_FOUND if it is neither.
  void UnloadModel(std::string model,
                   absl::AnyInvocable<void(absl::Status) &&> done);

  // Joins the poll and loader threads; pending LoadModel/UnloadModel calls
  // get UNAVAILABLE. Idempotent.
  void Stop();

  ModelControlMode mode() const { return options_.mode; }

 private:
  class Impl;
  const Options options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_LIFECYCLE_MODEL_LIFECYCLE_H_
