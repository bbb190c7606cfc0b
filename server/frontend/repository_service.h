// ModelRepositoryService: the nnserve.v1.ModelRepository gRPC service
// (callback API) — LoadModel and UnloadModel, Triton's "explicit" model
// control. Handlers are thin: decode the request, delegate to
// ModelLifecycle::LoadModel / UnloadModel, and finish the call from the
// lifecycle's `done` callback. A load runs on the lifecycle's loader thread,
// never on a gRPC thread: the handler returns at once and the reactor is
// finished when the load has succeeded or failed. gRPC codes come only from
// ToGrpcStatus (status.h); the lifecycle decides them (NOT_FOUND, the
// validation error, FAILED_PRECONDITION naming the mode outside explicit
// mode). A call cancelled or past its deadline while its load runs still
// completes the load (the repository's state is not rolled back); only its
// answer is lost.
//
// Request metrics (Method::kLoadModel / kUnloadModel): under the model's
// name when the outcome shows the model is in the repository (OK, or a
// validation error in explicit mode), else under "_unknown", so names that
// callers invent never create series.
//
// Draining: see CallTracker (call_tracker.h); WaitForIdle() returns once the
// calls in flight, loads included, have completed.
//
// Thread-safe; handlers run concurrently on gRPC's callback threads and
// completions on the lifecycle's threads. The ModelLifecycle and
// ServerMetrics must outlive the grpc::Server this service is registered
// with; stop the lifecycle (which completes pending loads) before shutting
// that server down.
#ifndef NNSERVE_SERVER_FRONTEND_REPOSITORY_SERVICE_H_
#define NNSERVE_SERVER_FRONTEND_REPOSITORY_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "nnserve/v1/model_repository.grpc.pb.h"
#include "server/frontend/call_tracker.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/observability/metrics.h"

namespace nnserve::server {

class ModelRepositoryService final
    : public v1::ModelRepository::CallbackService {
 public:
  ModelRepositoryService(ModelLifecycle* lifecycle, ServerMetrics* metrics);

  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context,
                                      const v1::LoadModelRequest* request,
                                      v1::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* UnloadModel(
      grpc::CallbackServerContext* context,
      const v1::UnloadModelRequest* request,
      v1::UnloadModelResponse* response) override;

  // From now on, new calls are answered UNAVAILABLE without any work.
  void BeginDrain() { calls_.BeginDrain(); }
  // Blocks until no call of this service is in flight or `deadline` passes;
  // returns true if idle.
  bool WaitForIdle(std::chrono::system_clock::time_point deadline) {
    return calls_.WaitForIdle(deadline);
  }

 private:
  class CallReactor;
  // Both handlers: admits the call, runs `operation` (LoadModel or
  // UnloadModel) on `model`, and on success writes the model's name to
  // `response_model` before finishing.
  grpc::ServerUnaryReactor* Start(
      Method method, grpc::CallbackServerContext* context, std::string model,
      std::string* response_model,
      void (ModelLifecycle::*operation)(
          std::string, absl::AnyInvocable<void(absl::Status) &&>));

  ModelLifecycle* const lifecycle_;
  ServerMetrics* const metrics_;
  CallTracker calls_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_FRONTEND_REPOSITORY_SERVICE_H_
