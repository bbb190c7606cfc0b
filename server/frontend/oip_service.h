// OipInferenceService: the Open Inference Protocol's (KServe V2)
// inference.GRPCInferenceService, served on the same port as
// nnserve.v1.Inference (callback API).
//
// A thin binding of OipCore (oip_core.h), which does the work for this
// service and for the REST endpoint alike: ModelInfer takes the one Predict
// path with the same request metrics (method="ModelInfer") and the same
// error codes as Predict (NOT_FOUND, INVALID_ARGUMENT, RESOURCE_EXHAUSTED,
// DEADLINE_EXCEEDED, UNAVAILABLE). The metadata calls (ServerLive,
// ServerReady, ModelReady, ServerMetadata, ModelMetadata) read the registry
// and record no request metrics.
//
// Readiness: ServerReady is true between SetReady(true) (the server has
// loaded its models) and SetReady(false) or BeginDrain(). ServerLive is
// always true while the server answers.
//
// Draining and containment as InferenceService: CallTracker counts every
// call; after BeginDrain() ModelInfer, ModelReady and the metadata calls are
// UNAVAILABLE; no exception escapes a handler (StatusOfCall).
//
// Thread-safe; handlers run concurrently on gRPC's callback threads. The
// referenced ModelRegistry and Scheduler must outlive the grpc::Server
// this service is registered with.
#ifndef NNSERVE_SERVER_FRONTEND_OIP_SERVICE_H_
#define NNSERVE_SERVER_FRONTEND_OIP_SERVICE_H_

#include <atomic>
#include <chrono>
#include <string>

#include "grpcpp/grpcpp.h"
#include "inference/open_inference_grpc.grpc.pb.h"
#include "server/frontend/call_tracker.h"
#include "server/frontend/inference_service.h"
#include "server/frontend/oip_core.h"
#include "server/lifecycle/model_registry.h"
#include "server/observability/metrics.h"
#include "server/scheduling/scheduler.h"

namespace nnserve::server {

class OipInferenceService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  // `server_version` is ServerMetadata's version (the build version).
  OipInferenceService(const ModelRegistry* registry, Scheduler* scheduler,
                      const ServiceOptions& options,
                      std::string server_version);

  grpc::ServerUnaryReactor* ServerLive(
      grpc::CallbackServerContext* context,
      const inference::ServerLiveRequest* request,
      inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* context,
      const inference::ServerReadyRequest* request,
      inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(
      grpc::CallbackServerContext* context,
      const inference::ModelReadyRequest* request,
      inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* context,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override;

  // What ServerReady answers (until BeginDrain, which makes it false).
  void SetReady(bool ready) { ready_.store(ready, std::memory_order_relaxed); }
  // From now on new calls (other than ServerLive and ServerReady) are
  // answered UNAVAILABLE without any work, and ServerReady is false.
  void BeginDrain() { calls_.BeginDrain(); }
  // Blocks until no call of this service is in flight or `deadline` passes;
  // returns true if idle.
  bool WaitForIdle(std::chrono::system_clock::time_point deadline) {
    return calls_.WaitForIdle(deadline);
  }

 private:
  using Clock = std::chrono::steady_clock;
  // The status of a metadata call before its body runs: draining, deadline.
  absl::Status Admit(const grpc::CallbackServerContext* context,
                     std::string_view method) const;

  const ModelRegistry* const registry_;
  OipCore core_;
  std::atomic<bool> ready_{false};
  CallTracker calls_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_FRONTEND_OIP_SERVICE_H_
