// ModelManager: the set of models a `nnserve serve` process serves, read
// from a model repository at start-up, and the single place that resolves a
// (model name, version) request to a loaded model.
//
// Lifecycle: Create() scans the repository (model names and version
// directories) and registers every version in state LOADING; LoadAll() then
// loads each version with the engine, runs one warm-up forward pass, and
// marks it AVAILABLE (nnserve_model_loaded = 1) or FAILED with its error.
// The set of models and versions is fixed after Create(); only version
// states change. Versions are never unloaded while the process runs.
//
// Thread-safety: all const methods may be called from any thread at any
// time, including while LoadAll() runs on another thread. A ServedVersion
// is immutable and shared (std::shared_ptr), so a request keeps its model
// alive for as long as it needs it.
#ifndef NNSERVE_SERVER_LIFECYCLE_MODEL_MANAGER_H_
#define NNSERVE_SERVER_LIFECYCLE_MODEL_MANAGER_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/model.h"
#include "nnserve/v1/inference.pb.h"
#include "nnserve/v1/model_config.pb.h"
#include "server/observability/metrics.h"

namespace nnserve::server {

// One loaded model version with its metrics handle.
struct ServedVersion {
  std::string name;
  int64_t version = 0;
  std::shared_ptr<const engine::Model> model;
  ModelVersionMetrics* metrics = nullptr;  // Owned by ServerMetrics.
  // The model's dynamic_batching settings from config.pbtxt (0 = server
  // default) and its batcher metrics (per model, owned by ServerMetrics).
  v1::DynamicBatching batching;
  BatcherMetrics* batcher_metrics = nullptr;
  // "model 'digits' version 1 input 'pixels'", for request error messages.
  std::string input_description;
};

class ModelManager {
 public:
  // Scans `repository`. Fails if the repository cannot be listed, holds no
  // model, or (unless `allow_load_failures`) a model has no version
  // directory. With `allow_load_failures` such a model is kept and reported
  // by ListModels as a FAILED version 0 carrying the error.
  static absl::StatusOr<std::unique_ptr<ModelManager>> Create(
      const std::filesystem::path& repository, ServerMetrics* metrics,
      bool allow_load_failures);

  ModelManager(const ModelManager&) = delete;
  ModelManager& operator=(const ModelManager&) = delete;

  // Loads every LOADING version (ascending by name, then version), each
  // followed by a one-row warm-up forward pass. Logs each load (duration,
  // parameters) or failure (the full validation message). Without
  // `allow_load_failures` the first failure is returned at once and the
  // remaining versions stay LOADING; with it, failures are recorded
  // (FAILED + error) and OK is returned as long as one version loaded.
  absl::Status LoadAll(const engine::EngineOptions& options);

  // The version to serve: `version` 0 means the newest AVAILABLE version.
  // NotFound for an unknown model (listing the models), an unknown or
  // FAILED version (listing the loaded versions); Unavailable while the
  // version is still LOADING.
  absl::StatusOr<std::shared_ptr<const ServedVersion>> Find(
      std::string_view model, int64_t version) const;

  // Request metrics for a model name: the model's own handle, or the shared
  // "_unknown" handle for names not in the repository.
  RequestMetrics* RequestMetricsFor(std::string_view model) const;

  // AVAILABLE versions of `model`, ascending (empty if unknown).
  std::vector<int64_t> AvailableVersions(std::string_view model) const;

  // Every model and version with its state (and error when FAILED).
  v1::ListModelsResponse ListModels() const;

  // Sets nnserve_model_loaded to 0 for every version (at shutdown).
  void MarkAllUnloaded();

  const std::filesystem::path& repository() const { return repository_; }

 private:
  struct VersionSlot {
    int64_t version = 0;
    v1::ModelVersionStatus::State state = v1::ModelVersionStatus::LOADING;
    std::string error;
    std::shared_ptr<const ServedVersion> served;
  };
  struct ModelEntry {
    std::string name;
    RequestMetrics* request_metrics = nullptr;
    std::vector<VersionSlot> versions;  // Ascending; guarded by mutex_.
  };

  ModelManager(std::filesystem::path repository, ServerMetrics* metrics,
               bool allow_load_failures);
  absl::StatusOr<std::shared_ptr<const ServedVersion>> LoadOne(
      const std::string& name, int64_t version,
      const engine::EngineOptions& options) const;
  std::string ModelNamesText() const;

  const std::filesystem::path repository_;
  ServerMetrics* const metrics_;
  const bool allow_load_failures_;
  // Keys and entries are fixed after Create(); the version slots inside
  // change state under mutex_.
  std::map<std::string, ModelEntry, std::less<>> models_;
  mutable absl::Mutex mutex_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_LIFECYCLE_MODEL_MANAGER_H_
