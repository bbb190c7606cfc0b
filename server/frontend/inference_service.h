// InferenceService: the nnserve.v1.Inference gRPC service (callback API).
// Handlers are thin: decode the request, delegate to ModelManager /
// RunPredict, encode, record metrics, finish. gRPC codes come only from
// ToGrpcStatus (server/status.h).
//
// Where forward passes run. A Predict whose work — rows × the model's total
// parameters, i.e. multiply-adds — is at most `inline_work_limit` runs
// inline on the gRPC callback thread: no hand-off, lowest latency (the
// default 262144 MACs is a few µs of oneDNN time; it covers e.g. the digits
// model up to ~100 rows). Larger forwards are queued on the InferencePool's
// fixed --threads workers (bounded queue; full → RESOURCE_EXHAUSTED); the
// worker finishes the reactor. So a long forward occupies a worker, never a
// callback thread, and cannot starve ModelInfo/ListModels/health or small
// predictions. A queued call whose deadline passes or that is cancelled
// before a worker picks it up is answered without running the forward.
//
// Draining. grpc::Server::Shutdown(deadline) waits for every open call,
// including grpc.health.v1 Watch streams that clients keep open forever, so
// a plain Shutdown would always run to its deadline. Instead the service
// counts its own calls (from handler entry to the reactor's OnDone):
// BeginDrain() makes new calls fail fast with UNAVAILABLE, WaitForIdle()
// returns once the calls in flight have completed, and only then is the
// server shut down with an immediate deadline (ending the Watch streams).
//
// Thread-safe; handlers run concurrently on gRPC's callback threads. The
// referenced ModelManager, InferencePool and ServerMetrics must outlive the
// grpc::Server this service is registered with. The service owns the
// batchers; shut the pool down (which runs every queued batch) before
// destroying the service.
#ifndef NNSERVE_SERVER_FRONTEND_INFERENCE_SERVICE_H_
#define NNSERVE_SERVER_FRONTEND_INFERENCE_SERVICE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "nnserve/v1/inference.grpc.pb.h"
#include "server/scheduling/batcher.h"
#include "server/scheduling/inference_pool.h"
#include "server/observability/metrics.h"
#include "server/lifecycle/model_manager.h"

namespace nnserve::server {

struct ServiceOptions {
  int64_t max_batch_rows = 1024;
  // The server's message size limit; responses that would exceed it are
  // refused up front with RESOURCE_EXHAUSTED.
  int64_t max_message_bytes = 64 << 20;
  // rows × total parameters at or below which a forward runs inline.
  int64_t inline_work_limit = 262144;
  // Measure and export per-layer latency.
  bool layer_timing = true;
  // Merge concurrent calls per model version (see above).
  bool dynamic_batching = true;
  // Server-wide batcher settings; a model's config.pbtxt dynamic_batching
  // overrides each field it sets > 0. time_layers is taken from
  // layer_timing.
  BatchingOptions batching = {};
};

class InferenceService final : public v1::Inference::CallbackService {
 public:
  InferenceService(const ModelManager* models, InferencePool* pool,
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
  void BeginDrain();
  // Blocks until no call of this service is in flight or `deadline` passes;
  // returns true if idle.
  bool WaitForIdle(std::chrono::system_clock::time_point deadline);

 private:
  class CallReactor;
  // Starts tracking a call; the returned reactor ends tracking in OnDone.
  grpc::ServerUnaryReactor* NewReactor();
  void CallDone();
  // The batcher of `served`, created on first use.
  ModelBatcher* BatcherFor(const std::shared_ptr<const ServedVersion>& served);
  const ModelManager* const models_;
  InferencePool* const pool_;
  ServerMetrics* const metrics_;
  const ServiceOptions options_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> draining_{false};
  absl::Mutex idle_mutex_;  // Wakes WaitForIdle; guards no data.
  absl::Mutex batchers_mutex_;
  absl::flat_hash_map<const ServedVersion*, std::unique_ptr<ModelBatcher>>
      batchers_ ABSL_GUARDED_BY(batchers_mutex_);
};

// Fills a ModelInfoResponse from the engine's description of a model.
void FillModelInfo(const engine::ModelInfo& info,
                   const std::vector<int64_t>& available_versions,
                   v1::ModelInfoResponse* response);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_FRONTEND_INFERENCE_SERVICE_H_
