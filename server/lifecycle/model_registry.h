// ModelRegistry: the only map from (model name, version) to the version
// being served, and the record of every version's state (LOADING,
// AVAILABLE, FAILED with its validation message) for ListModels. Requests
// look versions up here; the lifecycle (model_lifecycle.h) is its only
// writer.
//
// A lookup takes a short reader lock and returns a
// std::shared_ptr<const ServedVersion>: the call keeps the version alive
// however long it runs, and a swap or unload never waits for calls. A swap
// replaces the served pointer in one step, so a request for version 0 sees
// the old or the new version, never neither.
//
// The registry also keeps nnserve_model_loaded in step with what it serves:
// 1 from Publish until the version is removed (the series then disappears
// with the last holder of the version), 0 for a FAILED version that serves
// nothing.
//
// A version's entry: `served` (the version calls get, or none) and the
// state of its latest load. While a version serves, a reload of changed
// files neither hides it (state AVAILABLE throughout) nor, if the reload
// fails, removes it: the entry then stays AVAILABLE and carries the error.
// A model-wide problem (unreadable config, no version directory, invalid
// directory name) is recorded as a FAILED "version 0" entry of the model;
// versions already serving keep serving.
//
// Thread-safe: every method may be called from any thread.
#ifndef NNSERVE_SERVER_LIFECYCLE_MODEL_REGISTRY_H_
#define NNSERVE_SERVER_LIFECYCLE_MODEL_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nnserve/v1/inference.pb.h"
#include "server/lifecycle/served_version.h"
#include "server/observability/metrics.h"

namespace nnserve::server {

class ModelRegistry {
 public:
  // `metrics` must outlive the registry.
  explicit ModelRegistry(ServerMetrics* metrics);
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // --- Queries (request path) ---

  // The version to serve: `version` 0 means the newest AVAILABLE version.
  // NotFound for an unknown model (listing the models), an unknown or FAILED
  // version (listing the served versions); Unavailable while the model has
  // no served version but one is LOADING; InvalidArgument for a negative
  // version.
  absl::StatusOr<std::shared_ptr<const ServedVersion>> Find(
      std::string_view model, int64_t version) const;

  // Request metrics for a model name: the model's own handle for names the
  // registry knows (or has known), else the shared "_unknown" handle.
  RequestMetrics* RequestMetricsFor(std::string_view model) const;

  // AVAILABLE versions of `model`, ascending (empty if unknown).
  std::vector<int64_t> AvailableVersions(std::string_view model) const;

  // Every model and version with its state (and error when FAILED).
  v1::ListModelsResponse ListModels() const;

  // --- Updates (lifecycle only) ---

  // `version` (> 0) of `model` is being loaded; creates the model's and the
  // version's entries as needed. A version that serves keeps serving and
  // stays AVAILABLE.
  void SetLoading(std::string_view model, int64_t version);

  // Makes `served` the version served as (served->name, served->version),
  // in one step, and marks it AVAILABLE (nnserve_model_loaded = 1). Returns
  // the version it replaced (null if none) so the caller decides when to
  // let it go; in-flight calls keep it alive anyway.
  std::shared_ptr<const ServedVersion> Publish(
      std::shared_ptr<const ServedVersion> served);

  // A load of `version` (> 0) failed with `error`. A version that serves
  // keeps serving (AVAILABLE, with the error); otherwise it is FAILED and
  // nnserve_model_loaded for it reads 0.
  void SetFailed(std::string_view model, int64_t version, std::string error);

  // Records a model-wide problem as the model's FAILED version-0 entry
  // (creating the model's entry as needed); an empty `error` clears it.
  void SetModelError(std::string_view model, std::string error);

  // Stops serving and listing `version` of `model`; returns the version it
  // served (null if none). Its nnserve_model_loaded reads 0 until its last
  // holder lets go, then the series disappears.
  std::shared_ptr<const ServedVersion> RemoveVersion(std::string_view model,
                                                     int64_t version);

  // Removes `model` and every version of it (as RemoveVersion). Request
  // metrics stay keyed by the name.
  void RemoveModel(std::string_view model);

  // The models listed now, sorted.
  std::vector<std::string> ModelNames() const;

  // The served version (served->name, served->version) of `model`, if any.
  std::shared_ptr<const ServedVersion> Served(std::string_view model,
                                              int64_t version) const;

 private:
  struct Slot {
    // LOADING, AVAILABLE or FAILED; AVAILABLE exactly when `served` is set.
    v1::ModelVersionStatus::State state = v1::ModelVersionStatus::LOADING;
    std::string error;  // Latest load failure (FAILED, or a failed reload).
    std::shared_ptr<const ServedVersion> served;
    // The series of a FAILED version that serves nothing (loaded = 0).
    std::shared_ptr<ModelVersionMetrics> failed_metrics;
  };
  struct ModelEntry {
    std::map<int64_t, Slot> versions;  // Version 0: model-wide error.
  };

  // The entry of `model`, created (with its request metrics) if needed.
  ModelEntry& EntryFor(std::string_view model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  std::string ModelNamesText() const ABSL_SHARED_LOCKS_REQUIRED(mutex_);

  ServerMetrics* const metrics_;
  mutable absl::Mutex mutex_;
  std::map<std::string, ModelEntry, std::less<>> models_
      ABSL_GUARDED_BY(mutex_);
  // Every name ever listed (kept after removal, so a model's request
  // metrics do not move to "_unknown" while callers still use its name).
  std::map<std::string, RequestMetrics*, std::less<>> request_metrics_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_LIFECYCLE_MODEL_REGISTRY_H_
