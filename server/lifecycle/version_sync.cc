#include "server/lifecycle/version_sync.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/precision.h"
#include "engine/repository.h"
#include "server/observability/logging.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {

VersionSync::VersionSync(const Options& options, ModelRegistry* registry,
                         Scheduler* scheduler, ServerMetrics* metrics)
    : options_(options),
      registry_(registry),
      scheduler_(scheduler),
      metrics_(metrics) {}

void VersionSync::Unload(const std::string& model, ModelSyncState& state,
                         std::string_view reason) {
  for (const auto& [version, fingerprint] : state.served) {
    spdlog::info("event=model_unloaded model={} version={} reason={}", model,
                 version, reason);
  }
  registry_->RemoveModel(model);
  state = ModelSyncState{};
}

absl::Status VersionSync::Sync(const ScannedModel& scan, ModelSyncState& state,
                               bool retry_failed,
                               const std::atomic<bool>& abort) {
  const std::string& name = scan.name;
  if (!scan.status.ok()) {
    // Nothing of this model can load; what serves keeps serving.
    // Listed to callers (ListModels): repository-relative paths only.
    const std::string error =
        RelativeToRepository(scan.status.message(), scan.dir.parent_path());
    if (state.model_error != error) {
      // Quoted: an invalid directory name may hold anything.
      spdlog::error("event=model_load_failed model={} version=0 error={}",
                    LogQuote(name), LogQuote(scan.status.message()));
      registry_->SetModelError(name, error);
      state.model_error = error;
    }
    // Versions whose directories are gone go even so.
    if (scan.present_known) DropUnselected(scan, state, /*gone_only=*/true);
    return scan.status;
  }
  if (!state.model_error.empty()) {
    registry_->SetModelError(name, "");
    state.model_error.clear();
  }

  // Versions to load, newest first.
  std::vector<const ScannedVersion*> to_load;
  for (auto it = scan.selected.rbegin(); it != scan.selected.rend(); ++it) {
    auto served = state.served.find(it->version);
    if (served != state.served.end() && served->second == it->fingerprint) {
      continue;
    }
    auto failed = state.failed.find(it->version);
    if (!retry_failed && failed != state.failed.end() &&
        failed->second == it->fingerprint) {
      continue;  // Unchanged since it failed: not retried.
    }
    to_load.push_back(&*it);
  }
  for (const ScannedVersion* version : to_load) {
    registry_->SetLoading(name, version->version);
  }
  absl::Status first_error;
  for (const ScannedVersion* version : to_load) {
    if (abort.load()) {
      first_error.Update(absl::AbortedError(
          absl::StrCat("load of model '", name, "' version ", version->version,
                       " skipped: start-up failed")));
      break;
    }
    absl::StatusOr<std::shared_ptr<const ServedVersion>> served =
        LoadOne(scan, version->version);
    if (!served.ok()) {
      registry_->SetFailed(name, version->version,
                           RelativeToRepository(served.status().message(),
                                                scan.dir.parent_path()));
      state.failed[version->version] = version->fingerprint;
      first_error.Update(served.status());
      continue;
    }
    // The replaced instance (a reload) is freed when its last call ends.
    registry_->Publish(*std::move(served));
    state.served[version->version] = version->fingerprint;
    state.failed.erase(version->version);
  }

  DropUnselected(scan, state, /*gone_only=*/false);
  return first_error;
}

void VersionSync::DropUnselected(const ScannedModel& scan,
                                 ModelSyncState& state, bool gone_only) {
  const std::string& name = scan.name;
  // A directory that is gone: at once; a version the policy no longer
  // selects: once every selected version serves (never with `gone_only`).
  bool all_selected_serve = !gone_only;
  std::set<int64_t> selected;
  for (const ScannedVersion& version : scan.selected) {
    selected.insert(version.version);
    all_selected_serve =
        all_selected_serve && state.served.contains(version.version);
  }
  const auto present = [&scan](int64_t version) {
    return std::binary_search(scan.present.begin(), scan.present.end(),
                              version);
  };
  for (auto it = state.served.begin(); it != state.served.end();) {
    const int64_t version = it->first;
    const bool gone = !present(version);
    if (!gone && (selected.contains(version) || !all_selected_serve)) {
      ++it;
      continue;
    }
    spdlog::info("event=model_unloaded model={} version={} reason={}", name,
                 version, gone ? "directory_removed" : "version_policy");
    registry_->RemoveVersion(name, version);
    it = state.served.erase(it);
  }
  for (auto it = state.failed.begin(); it != state.failed.end();) {
    if (present(it->first) && (gone_only || selected.contains(it->first))) {
      ++it;
      continue;
    }
    if (!state.served.contains(it->first)) {
      registry_->RemoveVersion(name, it->first);
    }
    it = state.failed.erase(it);
  }
}

absl::StatusOr<std::shared_ptr<const ServedVersion>> VersionSync::LoadOne(
    const ScannedModel& scan, int64_t version) {
  const std::string& name = scan.name;
  const bool reload = registry_->Served(name, version) != nullptr;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<engine::LoadedVersion> loaded =
      engine::LoadVersion(scan.dir, scan.config, version, options_.engine);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  metrics_->ForModelLoads(name)->RecordLoad(seconds, loaded.ok());
  if (!loaded.ok()) {
    spdlog::error(
        "event=model_load_failed model={} version={} reload={} "
        "duration_seconds={:.6f} error={}",
        name, version, reload, seconds, LogQuote(loaded.status().message()));
    return loaded.status();
  }
  const engine::ModelInfo& info = loaded->model->info();
  std::vector<std::string> layer_names;
  for (const engine::LayerInfo& layer : info.layers) {
    layer_names.push_back(layer.name);
  }
  auto served = std::make_shared<ServedVersion>();
  served->name = name;
  served->version = version;
  served->model = loaded->model;
  const engine::PrecisionReport& precision = info.precision;
  std::vector<double> deviations;
  if (precision.effective != engine::Precision::kFp32) {
    for (const engine::LayerPrecision& layer : precision.layers) {
      deviations.push_back(layer.relative_l2_deviation);
    }
  }
  served->metrics =
      metrics_->ForModelVersion(name, version, layer_names, deviations);
  served->queue = scheduler_->CreateQueue(
      loaded->model,
      ResolveBatchingOptions(loaded->config.dynamic_batching(),
                             options_.batching_defaults),
      served->metrics, metrics_->ForBatcher(name),
      absl::StrCat("model '", name, "' version ", version));
  served->input_description = absl::StrCat(
      "model '", name, "' version ", version, " input '", info.input_name, "'");
  if (!precision.fallback_reason.empty()) {
    spdlog::warn(
        "event=precision_fallback model={} version={} requested={} "
        "effective={} reason={}",
        name, version, engine::PrecisionName(precision.requested),
        engine::PrecisionName(precision.effective),
        LogQuote(precision.fallback_reason));
  }
  spdlog::info(
      "event=model_loaded model={} version={} reload={} layers={} "
      "parameters={} weight_bytes={} precision={} duration_seconds={:.6f}",
      name, version, reload, info.layers.size(), info.total_parameters,
      info.weight_bytes, engine::PrecisionName(precision.effective), seconds);
  return std::shared_ptr<const ServedVersion>(std::move(served));
}

}  // namespace nnserve::server
