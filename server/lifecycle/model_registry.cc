#include "server/lifecycle/model_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/str_util.h"

namespace nnserve::server {

namespace {

std::string VersionsText(const std::vector<int64_t>& versions) {
  return versions.empty() ? std::string("none") : absl::StrJoin(versions, ", ");
}

}  // namespace

ModelRegistry::ModelRegistry(ServerMetrics* metrics) : metrics_(metrics) {}

std::string ModelRegistry::ModelNamesText() const {
  std::vector<std::string> names;
  for (const auto& [name, entry] : models_) names.push_back(name);
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<std::shared_ptr<const ServedVersion>> ModelRegistry::Find(
    std::string_view model, int64_t version) const {
  absl::ReaderMutexLock lock(&mutex_);
  auto it = models_.find(model);
  if (it == models_.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", Clip(model),
                     "' not found; available models: ", ModelNamesText()));
  }
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("version ", version, " of model '", Sv(model),
                     "' is negative; expected 0 (newest) or a version number"));
  }
  const std::map<int64_t, Slot>& versions = it->second.versions;
  // Only error paths build the list of served versions (no allocation on
  // the success path).
  const auto available = [&versions] {
    std::vector<int64_t> served;
    for (const auto& [number, slot] : versions) {
      if (slot.served) served.push_back(number);
    }
    return VersionsText(served);
  };
  if (version == 0) {
    // The newest version that serves: a newer one that is loading or
    // failed does not hide it.
    bool loading = false;
    for (auto slot = versions.rbegin(); slot != versions.rend(); ++slot) {
      if (slot->second.served) return slot->second.served;
      if (slot->second.state == v1::ModelVersionStatus::LOADING) {
        loading = true;
      }
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
  auto slot = versions.find(version);
  if (slot == versions.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", Sv(model), "' has no version ", version,
                     "; loaded versions: ", available()));
  }
  if (slot->second.served) return slot->second.served;
  if (slot->second.state == v1::ModelVersionStatus::LOADING) {
    return absl::UnavailableError(absl::StrCat("model '", Sv(model),
                                               "' version ", version,
                                               " is still loading; retry "
                                               "shortly"));
  }
  return absl::NotFoundError(
      absl::StrCat("model '", Sv(model), "' version ", version,
                   " is not served: it failed to load (", slot->second.error,
                   "); loaded versions: ", available()));
}

RequestMetrics* ModelRegistry::RequestMetricsFor(std::string_view model) const {
  absl::ReaderMutexLock lock(&mutex_);
  auto it = request_metrics_.find(model);
  return it == request_metrics_.end() ? metrics_->ForUnknownModel()
                                      : it->second;
}

std::vector<int64_t> ModelRegistry::AvailableVersions(
    std::string_view model) const {
  std::vector<int64_t> versions;
  absl::ReaderMutexLock lock(&mutex_);
  auto it = models_.find(model);
  if (it == models_.end()) return versions;
  for (const auto& [number, slot] : it->second.versions) {
    if (slot.served) versions.push_back(number);
  }
  return versions;
}

v1::ListModelsResponse ModelRegistry::ListModels() const {
  v1::ListModelsResponse response;
  absl::ReaderMutexLock lock(&mutex_);
  for (const auto& [name, entry] : models_) {
    v1::ModelStatus* status = response.add_models();
    status->set_name(name);
    for (const auto& [number, slot] : entry.versions) {
      v1::ModelVersionStatus* version = status->add_versions();
      version->set_version(number);
      version->set_state(slot.state);
      if (!slot.error.empty()) version->set_error(slot.error);
    }
  }
  return response;
}

ModelRegistry::ModelEntry& ModelRegistry::EntryFor(std::string_view model) {
  auto it = models_.find(model);
  if (it != models_.end()) return it->second;
  if (!request_metrics_.contains(model)) {
    request_metrics_.emplace(std::string(model), metrics_->ForModel(model));
  }
  return models_.emplace(std::string(model), ModelEntry{}).first->second;
}

void ModelRegistry::SetLoading(std::string_view model, int64_t version) {
  absl::MutexLock lock(&mutex_);
  Slot& slot = EntryFor(model).versions[version];
  if (slot.served) return;  // Keeps serving (AVAILABLE) while it reloads.
  slot.state = v1::ModelVersionStatus::LOADING;
  slot.error.clear();
}

std::shared_ptr<const ServedVersion> ModelRegistry::Publish(
    std::shared_ptr<const ServedVersion> served) {
  served->metrics->SetLoaded(true);
  std::shared_ptr<ModelVersionMetrics> failed_metrics;
  absl::MutexLock lock(&mutex_);
  Slot& slot = EntryFor(served->name).versions[served->version];
  slot.state = v1::ModelVersionStatus::AVAILABLE;
  slot.error.clear();
  // Released after the lock (its destructor takes the metrics' lock).
  failed_metrics = std::move(slot.failed_metrics);
  std::swap(slot.served, served);
  return served;  // The replaced version, if any.
}

void ModelRegistry::SetFailed(std::string_view model, int64_t version,
                              std::string error) {
  // A handle for the version's loaded gauge, created outside the lock.
  std::shared_ptr<ModelVersionMetrics> metrics =
      metrics_->ForModelVersion(model, version, {});
  absl::MutexLock lock(&mutex_);
  Slot& slot = EntryFor(model).versions[version];
  slot.error = std::move(error);
  if (slot.served) return;  // The version loaded before keeps serving.
  slot.state = v1::ModelVersionStatus::FAILED;
  if (!slot.failed_metrics) {
    metrics->SetLoaded(false);
    std::swap(slot.failed_metrics, metrics);
  }
}

void ModelRegistry::SetModelError(std::string_view model, std::string error) {
  absl::MutexLock lock(&mutex_);
  if (error.empty()) {
    auto it = models_.find(model);
    if (it != models_.end()) it->second.versions.erase(0);
    return;
  }
  Slot& slot = EntryFor(model).versions[0];
  slot.state = v1::ModelVersionStatus::FAILED;
  slot.error = std::move(error);
}

std::shared_ptr<const ServedVersion> ModelRegistry::RemoveVersion(
    std::string_view model, int64_t version) {
  Slot removed;
  {
    absl::MutexLock lock(&mutex_);
    auto it = models_.find(model);
    if (it == models_.end()) return nullptr;
    auto slot = it->second.versions.find(version);
    if (slot == it->second.versions.end()) return nullptr;
    removed = std::move(slot->second);
    it->second.versions.erase(slot);
  }
  // Outside the lock: handles' destructors take the metrics' lock.
  if (removed.served) removed.served->metrics->SetLoaded(false);
  return std::move(removed.served);
}

void ModelRegistry::RemoveModel(std::string_view model) {
  ModelEntry removed;
  {
    absl::MutexLock lock(&mutex_);
    auto it = models_.find(model);
    if (it == models_.end()) return;
    removed = std::move(it->second);
    models_.erase(it);
  }
  for (auto& [number, slot] : removed.versions) {
    if (slot.served) slot.served->metrics->SetLoaded(false);
  }
}

std::vector<std::string> ModelRegistry::ModelNames() const {
  std::vector<std::string> names;
  absl::ReaderMutexLock lock(&mutex_);
  for (const auto& [name, entry] : models_) names.push_back(name);
  return names;
}

std::shared_ptr<const ServedVersion> ModelRegistry::Served(
    std::string_view model, int64_t version) const {
  absl::ReaderMutexLock lock(&mutex_);
  auto it = models_.find(model);
  if (it == models_.end()) return nullptr;
  auto slot = it->second.versions.find(version);
  return slot == it->second.versions.end() ? nullptr : slot->second.served;
}

}  // namespace nnserve::server
