#include "server/lifecycle/model_manager.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/repository.h"
#include "server/observability/logging.h"
#include "engine/str_util.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {

using engine::Sv;
namespace {

std::string VersionsText(const std::vector<int64_t>& versions) {
  return versions.empty() ? std::string("none") : absl::StrJoin(versions, ", ");
}

}  // namespace

ModelManager::ModelManager(std::filesystem::path repository,
                           ServerMetrics* metrics, bool allow_load_failures)
    : repository_(std::move(repository)),
      metrics_(metrics),
      allow_load_failures_(allow_load_failures) {}

absl::StatusOr<std::unique_ptr<ModelManager>> ModelManager::Create(
    const std::filesystem::path& repository, ServerMetrics* metrics,
    bool allow_load_failures) {
  auto names = engine::ListModelNames(repository);
  if (!names.ok()) return names.status();
  if (names->empty()) {
    return absl::NotFoundError(
        absl::StrCat("model repository '", repository.string(),
                     "' contains no model directories; expected "
                     "<repository>/<model>/config.pbtxt and "
                     "<repository>/<model>/<version>/"));
  }
  auto manager = std::unique_ptr<ModelManager>(
      new ModelManager(repository, metrics, allow_load_failures));
  for (const std::string& name : *names) {
    ModelEntry entry;
    entry.name = name;
    entry.request_metrics = metrics->ForModel(name);
    auto versions = engine::ListVersions(repository / name);
    if (!versions.ok()) {
      if (!allow_load_failures) return versions.status();
      spdlog::error("event=model_load_failed model={} version=0 error={}", name,
                    LogQuote(versions.status().message()));
      VersionSlot slot;
      slot.version = 0;
      slot.state = v1::ModelVersionStatus::FAILED;
      slot.error = std::string(versions.status().message());
      entry.versions.push_back(std::move(slot));
    } else {
      for (int64_t version : *versions) {
        VersionSlot slot;
        slot.version = version;
        entry.versions.push_back(std::move(slot));
      }
    }
    manager->models_.emplace(name, std::move(entry));
  }
  return manager;
}

absl::StatusOr<std::shared_ptr<const ServedVersion>> ModelManager::LoadOne(
    const std::string& name, int64_t version,
    const engine::EngineOptions& options) const {
  auto model = engine::LoadModel(repository_ / name, version, options);
  if (!model.ok()) return model.status();
  // LoadModel validated this config already; re-read for the batching
  // settings, which the engine does not keep.
  auto config = engine::ReadModelConfig(repository_ / name);
  if (!config.ok()) return config.status();
  const engine::ModelInfo& info = (*model)->info();
  // Warm-up: one row through every layer, so the first request does not pay
  // for lazily initialised state.
  std::vector<float> input(static_cast<size_t>(info.input_size), 0.0f);
  std::vector<float> output(static_cast<size_t>(info.output_size));
  absl::Status warm = (*model)->Forward(input, 1, output);
  if (!warm.ok()) {
    return absl::Status(
        warm.code(),
        absl::StrCat("warm-up forward pass of model '", name, "' version ",
                     version, " failed: ", warm.message()));
  }
  std::vector<std::string> layer_names;
  for (const engine::LayerInfo& layer : info.layers) {
    layer_names.push_back(layer.name);
  }
  auto served = std::make_shared<ServedVersion>();
  served->name = name;
  served->version = version;
  served->model = *std::move(model);
  served->metrics = metrics_->ForModelVersion(name, version, layer_names);
  served->batching = config->dynamic_batching();
  served->batcher_metrics = metrics_->ForBatcher(name);
  served->input_description = absl::StrCat(
      "model '", name, "' version ", version, " input '", info.input_name, "'");
  return served;
}

absl::Status ModelManager::LoadAll(const engine::EngineOptions& options) {
  int loaded = 0;
  absl::Status first_error;
  for (auto& [name, entry] : models_) {
    std::vector<int64_t> to_load;
    {
      absl::MutexLock lock(&mutex_);
      for (const VersionSlot& slot : entry.versions) {
        if (slot.state == v1::ModelVersionStatus::LOADING) {
          to_load.push_back(slot.version);
        }
      }
    }
    for (int64_t version : to_load) {
      const auto start = std::chrono::steady_clock::now();
      auto served = LoadOne(name, version, options);
      const double seconds = std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - start)
                                 .count();
      absl::MutexLock lock(&mutex_);
      VersionSlot* slot = nullptr;
      for (VersionSlot& s : entry.versions) {
        if (s.version == version) slot = &s;
      }
      if (served.ok()) {
        const engine::ModelInfo& info = (*served)->model->info();
        spdlog::info(
            "event=model_loaded model={} version={} layers={} parameters={} "
            "weight_bytes={} duration_seconds={:.6f}",
            name, version, info.layers.size(), info.total_parameters,
            info.weight_bytes, seconds);
        (*served)->metrics->SetLoaded(true);
        slot->state = v1::ModelVersionStatus::AVAILABLE;
        slot->served = *std::move(served);
        ++loaded;
        continue;
      }
      spdlog::error(
          "event=model_load_failed model={} version={} duration_seconds={:.6f} "
          "error={}",
          name, version, seconds, LogQuote(served.status().message()));
      metrics_->ForModelVersion(name, version, {})->SetLoaded(false);
      slot->state = v1::ModelVersionStatus::FAILED;
      slot->error = std::string(served.status().message());
      if (!allow_load_failures_) return served.status();
      if (first_error.ok()) first_error = served.status();
    }
  }
  if (loaded == 0 && !first_error.ok()) {
    return absl::Status(first_error.code(),
                        absl::StrCat("no model version could be loaded from '",
                                     repository_.string(), "'; first error: ",
                                     first_error.message()));
  }
  return absl::OkStatus();
}

std::string ModelManager::ModelNamesText() const {
  std::vector<std::string> names;
  for (const auto& [name, entry] : models_) names.push_back(name);
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<std::shared_ptr<const ServedVersion>> ModelManager::Find(
    std::string_view model, int64_t version) const {
  auto it = models_.find(model);
  if (it == models_.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", Sv(model),
                     "' not found; available models: ", ModelNamesText()));
  }
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("version ", version, " of model '", Sv(model),
                     "' is negative; expected 0 (newest) or a version number"));
  }
  const ModelEntry& entry = it->second;
  absl::ReaderMutexLock lock(&mutex_);
  // Only error paths build the list of loaded versions (no allocation on
  // the success path).
  const auto available = [&entry] {
    std::vector<int64_t> versions;
    for (const VersionSlot& slot : entry.versions) {
      if (slot.state == v1::ModelVersionStatus::AVAILABLE) {
        versions.push_back(slot.version);
      }
    }
    return VersionsText(versions);
  };
  if (version == 0) {
    bool loading = false;
    for (auto slot = entry.versions.rbegin(); slot != entry.versions.rend();
         ++slot) {
      if (slot->state == v1::ModelVersionStatus::AVAILABLE) return slot->served;
      if (slot->state == v1::ModelVersionStatus::LOADING) loading = true;
    }
    if (loading) {
      return absl::UnavailableError(absl::StrCat(
          "model '", Sv(model), "' is still loading; retry shortly"));
    }
    return absl::NotFoundError(
        absl::StrCat("model '", Sv(model),
                     "' has no loaded version (every version failed to "
                     "load; see ListModels for the errors)"));
  }
  for (const VersionSlot& slot : entry.versions) {
    if (slot.version != version) continue;
    switch (slot.state) {
      case v1::ModelVersionStatus::AVAILABLE:
        return slot.served;
      case v1::ModelVersionStatus::LOADING:
        return absl::UnavailableError(
            absl::StrCat("model '", Sv(model), "' version ", version,
                         " is still loading; retry shortly"));
      default:
        return absl::NotFoundError(
            absl::StrCat("model '", Sv(model), "' version ", version,
                         " is not served: it failed to load (", slot.error,
                         "); loaded versions: ", available()));
    }
  }
  return absl::NotFoundError(absl::StrCat("model '", Sv(model),
                                          "' has no version ", version,
                                          "; loaded versions: ", available()));
}

RequestMetrics* ModelManager::RequestMetricsFor(std::string_view model) const {
  auto it = models_.find(model);
  return it == models_.end() ? metrics_->ForUnknownModel()
                             : it->second.request_metrics;
}

std::vector<int64_t> ModelManager::AvailableVersions(
    std::string_view model) const {
  std::vector<int64_t> versions;
  auto it = models_.find(model);
  if (it == models_.end()) return versions;
  absl::ReaderMutexLock lock(&mutex_);
  for (const VersionSlot& slot : it->second.versions) {
    if (slot.state == v1::ModelVersionStatus::AVAILABLE) {
      versions.push_back(slot.version);
    }
  }
  return versions;
}

v1::ListModelsResponse ModelManager::ListModels() const {
  v1::ListModelsResponse response;
  absl::ReaderMutexLock lock(&mutex_);
  for (const auto& [name, entry] : models_) {
    v1::ModelStatus* status = response.add_models();
    status->set_name(name);
    for (const VersionSlot& slot : entry.versions) {
      v1::ModelVersionStatus* version = status->add_versions();
      version->set_version(slot.version);
      version->set_state(slot.state);
      if (slot.state == v1::ModelVersionStatus::FAILED) {
        version->set_error(slot.error);
      }
    }
  }
  return response;
}

void ModelManager::MarkAllUnloaded() {
  absl::ReaderMutexLock lock(&mutex_);
  for (const auto& [name, entry] : models_) {
    for (const VersionSlot& slot : entry.versions) {
      if (slot.served) slot.served->metrics->SetLoaded(false);
    }
  }
}

}  // namespace nnserve::server
