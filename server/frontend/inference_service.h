// InferenceService: the nnserve.v1.Inference gRPC service (callback API).
// Handlers are thin: decode the request, look the version up in the
// ModelRegistry, hand the call to the Scheduler, fill the response when it
// is done, record the request metrics, finish. gRPC codes come only from
// ToGrpcStatus (server/frontend/status.h).
//
// Every Predict takes the same path: the scheduler decides whether a call
// runs inline (tiny forwards of an idle version), merged with other calls
// of its version, or alone on a worker (see server/scheduling/scheduler.h).
// The forward pass writes straight into the response's output tensor.
//
// Draining: see CallTracker (call_tracker.h); BeginDrain/WaitForIdle below.
//
// No exception escapes a handler: each body runs under StatusOfCall
// (common/exceptions.h), so an allocation failure while decoding or
// answering is RESOURCE_EXHAUSTED (anything else INTERNAL) for that call
// alone, and the call is still finished and counted out of the tracker.
//
// Thread-safe; handlers run concurrently on gRPC's callback threads. The
// referenced ModelRegistry, Scheduler and ServerMetrics must outlive the
// grpc::Server this service is registered with.
#ifndef NNSERVE_SERVER_FRONTEND_INFERENCE_SERVICE_H_
#define NNSERVE_SERVER_FRONTEND_INFERENCE_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <memory>

#include "engine/model.h"
#include "grpcpp/grpcpp.h"
#include "nnserve/v1/inference.grpc.pb.h"
#include "server/frontend/call_tracker.h"
#include "server/lifecycle/model_registry.h"
#include "server/observability/metrics.h"
#include "server/scheduling/scheduler.h"

namespace nnserve::server {

struct ServiceOptions {
  // --max-batch-rows: larger requests are refused.
  int64_t max_batch_rows = 1024;
  // The server's message size limit; responses that would exceed it are
  // refused up front with RESOURCE_EXHAUSTED.
  int64_t max_message_bytes = 64 << 20;
};

class InferenceService final : public v1::Inference::CallbackService {
 public:
  InferenceService(const ModelRegistry* registry, Scheduler* scheduler,
                   ServerMetrics* metrics, const ServiceOptions& options);

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const v1::PredictRequest* request,
                                    v1::PredictResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfo(grpc::CallbackServerContext* context,
                                      const v1::ModelInfoRequest* request,
                                      v1::ModelInfoResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const v1::ListModelsRequest* request,
      v1::ListModelsResponse* response) override;

  // From now on, new calls are answered UNAVAILABLE without any work.
  void BeginDrain() { calls_.BeginDrain(); }
  // Blocks until no call of this service is in flight or `deadline` passes;
  // returns true if idle.
  bool WaitForIdle(std::chrono::system_clock::time_point deadline) {
    return calls_.WaitForIdle(deadline);
  }

 private:
  using Clock = std::chrono::steady_clock;
  // Predict's body: decodes and validates the request and hands it to the
  // scheduler (OK: its `done` finishes the call), or returns why not.
  absl::Status StartPredict(grpc::CallbackServerContext* context,
                            const v1::PredictRequest& request,
                            v1::PredictResponse* response,
                            grpc::ServerUnaryReactor* reactor,
                            RequestMetrics* metrics, Clock::time_point start);

  const ModelRegistry* const registry_;
  Scheduler* const scheduler_;
  ServerMetrics* const metrics_;
  const ServiceOptions options_;
  CallTracker calls_;
};

// Fills a ModelInfoResponse from the engine's description of a model.
void FillModelInfo(const engine::ModelInfo& info,
                   const std::vector<int64_t>& available_versions,
                   v1::ModelInfoResponse* response);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_FRONTEND_INFERENCE_SERVICE_H_
