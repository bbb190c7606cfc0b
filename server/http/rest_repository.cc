#include "server/http/rest_repository.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/str_util.h"
#include "nlohmann/json.hpp"

namespace nnserve::server {

absl::StatusOr<bool> ParseRepositoryIndexRequest(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return false;
  }
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the index request body is not valid JSON: ", Clip(e.what(), 240),
        "; expected nothing or {\"ready\": true|false}"));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        "the index request body is not an object; expected nothing or "
        "{\"ready\": true|false}");
  }
  auto ready = root.find("ready");
  if (ready == root.end()) return false;
  if (!ready->is_boolean()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"ready\" is ",
        // Not dumped: that recurses once per nesting level.
        ready->is_structured() ? absl::StrCat("an ", ready->type_name())
                               : Clip(ready->dump()),
        "; expected a boolean"));
  }
  return ready->get<bool>();
}

std::string RepositoryIndexJson(const v1::ListModelsResponse& models,
                                bool ready_only) {
  nlohmann::ordered_json index = nlohmann::ordered_json::array();
  for (const v1::ModelStatus& model : models.models()) {
    for (const v1::ModelVersionStatus& version : model.versions()) {
      const char* state = "UNAVAILABLE";
      if (version.state() == v1::ModelVersionStatus::AVAILABLE) {
        state = "READY";
      } else if (version.state() == v1::ModelVersionStatus::LOADING) {
        state = "LOADING";
      }
      if (ready_only && std::string_view(state) != "READY") continue;
      index.push_back(
          {{"name", model.name()},
           // Version 0 stands for a model-wide problem (e.g. its config).
           {"version",
            version.version() > 0 ? absl::StrCat(version.version()) : ""},
           {"state", state},
           {"reason", version.error()}});
    }
  }
  return index.dump(-1, ' ', false,
                    nlohmann::ordered_json::error_handler_t::replace);
}

absl::Status LoadOrUnload(ModelLifecycle* lifecycle, bool load,
                          std::string model) {
  absl::Notification finished;
  absl::Status outcome;
  auto done = [&](absl::Status status) {
    outcome = std::move(status);
    finished.Notify();
  };
  if (load) {
    lifecycle->LoadModel(std::move(model), std::move(done));
  } else {
    lifecycle->UnloadModel(std::move(model), std::move(done));
  }
  finished.WaitForNotification();
  return outcome;
}

}  // namespace nnserve::server
