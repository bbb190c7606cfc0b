// The model repository extension over REST (Triton's "model_repository",
// which Triton's and KServe's HTTP clients speak):
//
//   POST /v2/repository/index   body "" or {"ready": bool}
//        -> [{"name", "version", "state", "reason"}], state READY, LOADING
//           or UNAVAILABLE (a failed load; "reason" says why); with
//           "ready": true only READY versions
//   POST /v2/repository/models/{m}/load | /unload  -> 200 {}
//
// Load and unload are the lifecycle's (ModelLifecycle::LoadModel /
// UnloadModel, as nnserve.v1.ModelRepository): explicit model-control mode
// only, otherwise FAILED_PRECONDITION naming the mode; errors as the
// lifecycle gives them (NOT_FOUND, the validation error).
//
// Stateless free functions; thread-safe as the lifecycle and registry are.
#ifndef NNSERVE_SERVER_HTTP_REST_REPOSITORY_H_
#define NNSERVE_SERVER_HTTP_REST_REPOSITORY_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nnserve/v1/inference.pb.h"
#include "server/lifecycle/model_lifecycle.h"

namespace nnserve::server {

// Whether an index request asks for ready versions only ("" is false).
absl::StatusOr<bool> ParseRepositoryIndexRequest(std::string_view body);

// The index body for `models` (ModelRegistry::ListModels).
std::string RepositoryIndexJson(const v1::ListModelsResponse& models,
                                bool ready_only);

// Runs LoadModel (`load`) or UnloadModel on `model` and waits for the
// outcome on the calling thread.
absl::Status LoadOrUnload(ModelLifecycle* lifecycle, bool load,
                          std::string model);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_HTTP_REST_REPOSITORY_H_
