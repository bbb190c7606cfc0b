// OipCore: the Open Inference Protocol's (KServe V2) operations, free of
// any transport. Both bindings delegate to it: the gRPC service
// (oip_service.h, inference.GRPCInferenceService) and the REST/JSON
// endpoint (server/http/rest_server.h), which converts its JSON to and
// from the same inference.* messages. So the two answer every request the
// same way, with the same validation, errors, scheduler path and limits.
//
// Infer takes the one Predict path: ModelRegistry::Find, then
// Scheduler::Submit (inline, merged or alone on a worker; a call that asks
// for hidden layers runs as its own batch). Tensor decoding and encoding
// live in oip_codec.h.
//
// Thread-safe (const after construction). The referenced ModelRegistry and
// Scheduler must outlive the core and every call it started.
#ifndef NNSERVE_SERVER_FRONTEND_OIP_CORE_H_
#define NNSERVE_SERVER_FRONTEND_OIP_CORE_H_

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "inference/open_inference_grpc.pb.h"
#include "server/frontend/inference_service.h"
#include "server/lifecycle/model_registry.h"
#include "server/scheduling/scheduler.h"

namespace nnserve::server {

// ModelMetadata's platform for every nnserve model.
inline constexpr std::string_view kOipPlatform = "nnserve_dense";

// How a transport hands one inference call to OipCore::StartInfer.
struct OipCall {
  std::chrono::system_clock::time_point deadline =
      std::chrono::system_clock::time_point::max();
  // True once the caller has given up (may be empty: never cancelled).
  absl::AnyInvocable<bool() const> is_cancelled;
  // The outcome, exactly once; on OK the response has been filled.
  absl::AnyInvocable<void(absl::Status) &&> done;
};

class OipCore {
 public:
  // `server_version` is ServerMetadata's version (the build version);
  // `extensions` the protocol extensions the binding serves.
  OipCore(const ModelRegistry* registry, Scheduler* scheduler,
          const ServiceOptions& options, std::string server_version,
          std::vector<std::string> extensions);

  const ServiceOptions& options() const { return options_; }

  // Whether model `name` at `version` ("" = newest) can serve: true when
  // loaded, false while it loads; NOT_FOUND for an unknown model or
  // version, INVALID_ARGUMENT for a malformed version.
  absl::StatusOr<bool> ModelReady(std::string_view name,
                                  std::string_view version) const;

  // name "nnserve", the build version, the binding's extensions.
  void ServerMetadata(inference::ServerMetadataResponse* response) const;

  // Name, versions, platform, the input [-1, in], the output [-1, out] and
  // then every layer [-1, units]; errors as ModelReady (UNAVAILABLE while
  // the model loads).
  absl::Status ModelMetadata(std::string_view name, std::string_view version,
                             inference::ModelMetadataResponse* response) const;

  // Validates `request` and hands it to the scheduler. OK: `call.done` will
  // run exactly once (maybe before StartInfer returns), after `response`
  // has been filled on success. Otherwise `call.done` is never run and the
  // status says why the call was refused. `request` and `response` must
  // stay valid until `done` has run.
  absl::Status StartInfer(const inference::ModelInferRequest& request,
                          inference::ModelInferResponse* response,
                          OipCall call);

 private:
  const ModelRegistry* const registry_;
  Scheduler* const scheduler_;
  const ServiceOptions options_;
  const std::string server_version_;
  const std::vector<std::string> extensions_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_FRONTEND_OIP_CORE_H_
