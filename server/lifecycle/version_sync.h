// VersionSync: brings one model's served versions in line with what its
// directory holds (a ScannedModel) — TF Serving's loader plus its
// availability-preserving policy. It loads versions with the engine, gives
// each its scheduler queue and metrics, and publishes and removes versions
// in the ModelRegistry.
//
// Rules (per model, with the ModelSyncState the caller keeps for it):
//   - A selected version is loaded when its fingerprint differs from the
//     one that serves, and (unless `retry_failed`) from the one whose load
//     last failed: a version that failed is retried once its files change.
//   - Loads run newest first, each published as soon as it is ready; the
//     instance it replaces is freed when its last in-flight call ends.
//   - A failed load changes nothing that serves: the version is FAILED (or,
//     if it was serving, stays AVAILABLE with the error).
//   - Afterwards, a served version whose directory is gone is dropped; one
//     the policy no longer selects is dropped only once every selected
//     version serves.
//   - A model-wide error (bad config, ...) is listed as the model's FAILED
//     version 0, logged once, and leaves the served versions alone (except
//     those whose directory is gone).
//
// Thread-compatible per model: the caller runs at most one call for a
// given model at a time (different models may sync concurrently). The
// registry, scheduler and metrics must outlive it.
#ifndef NNSERVE_SERVER_LIFECYCLE_VERSION_SYNC_H_
#define NNSERVE_SERVER_LIFECYCLE_VERSION_SYNC_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model.h"
#include "server/lifecycle/model_registry.h"
#include "server/lifecycle/repository_scan.h"
#include "server/lifecycle/served_version.h"
#include "server/observability/metrics.h"
#include "server/scheduling/scheduler.h"

namespace nnserve::server {

// What the lifecycle remembers about one model between syncs.
struct ModelSyncState {
  std::map<int64_t, Fingerprint> served;  // Versions published by us.
  std::map<int64_t, Fingerprint> failed;  // Last failed load per version.
  std::string model_error;                // Model-wide error listed, if any.

  bool empty() const {
    return served.empty() && failed.empty() && model_error.empty();
  }
};

class VersionSync {
 public:
  struct Options {
    engine::EngineOptions engine;
    BatchingOptions batching_defaults;
  };

  VersionSync(const Options& options, ModelRegistry* registry,
              Scheduler* scheduler, ServerMetrics* metrics);
  VersionSync(const VersionSync&) = delete;
  VersionSync& operator=(const VersionSync&) = delete;

  // Syncs the model to `scan` (see the rules above). Returns the model-wide
  // error or the first failed load (OK when every selected version serves).
  // While `abort` reads true, loads not yet started are skipped (ABORTED).
  absl::Status Sync(const ScannedModel& scan, ModelSyncState& state,
                    bool retry_failed, const std::atomic<bool>& abort);

  // Stops serving and listing `model` (every version); `reason` is logged.
  void Unload(const std::string& model, ModelSyncState& state,
              std::string_view reason);

 private:
  // Loads one version and prepares it to serve (queue, metrics).
  absl::StatusOr<std::shared_ptr<const ServedVersion>> LoadOne(
      const ScannedModel& scan, int64_t version);
  // Drops versions (see the rules above) after the loads of a sync; with
  // `gone_only`, only those whose directory is gone.
  void DropUnselected(const ScannedModel& scan, ModelSyncState& state,
                      bool gone_only);

  const Options options_;
  ModelRegistry* const registry_;
  Scheduler* const scheduler_;
  ServerMetrics* const metrics_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_LIFECYCLE_VERSION_SYNC_H_
