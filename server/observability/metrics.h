// Prometheus metrics of the nnserve server, behind a small API so the hot
// path never does label lookups: handles with pre-resolved series pointers
// are created when a model (version) is registered at start-up and are used
// lock-free by request handlers (prometheus-cpp series are themselves
// thread-safe).
//
// Series (names and labels are a contract with dashboards and alerts):
//   nnserve_layer_duration_seconds      histogram {model, version, layer}
//   nnserve_inference_duration_seconds  histogram {model, version}
//   nnserve_request_duration_seconds    histogram {model, method}
//   nnserve_requests_total              counter   {model, method, code}
//   nnserve_inference_rows_total        counter   {model, version}
//   nnserve_model_loaded                gauge     {model, version}
//   nnserve_build_info                  gauge     {version}
//   nnserve_queue_duration_seconds      histogram {model}  (dynamic batcher)
//   nnserve_batch_rows                  histogram {model}  (rows per forward)
//   nnserve_queue_size                  gauge     {model}  (queued requests)
// Requests naming a model that is not in the repository are counted under
// model="_unknown" (bounded cardinality); ListModels, which names no model,
// under model="_all".
//
// Ownership: ServerMetrics owns the registry and every handle; handles stay
// valid for the lifetime of the ServerMetrics. All methods are thread-safe.
#ifndef NNSERVE_SERVER_OBSERVABILITY_METRICS_H_
#define NNSERVE_SERVER_OBSERVABILITY_METRICS_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace nnserve::server {

inline constexpr std::string_view kUnknownModelLabel = "_unknown";
inline constexpr std::string_view kAllModelsLabel = "_all";

enum class Method {
  kPredict = 0,
  kModelInfo = 1,
  kListModels = 2,
  kLoadModel = 3,
  kUnloadModel = 4,
};
inline constexpr int kNumMethods = 5;
// "Predict", "ModelInfo", "ListModels", "LoadModel", "UnloadModel".
std::string_view MethodName(Method method);

// Latency buckets: 1 µs × 2^k for k = 0..23 (1 µs … ≈ 8.4 s).
prometheus::Histogram::BucketBoundaries LatencyBuckets();

// Per model version: inference latency, per-layer latency, rows, loaded.
class ModelVersionMetrics {
 public:
  // `layer_seconds` is empty (layer timing off) or has one entry per layer.
  void RecordInference(double seconds, int64_t rows,
                       std::span<const double> layer_seconds);
  void SetLoaded(bool loaded);

 private:
  friend class ServerMetrics;
  ModelVersionMetrics() = default;

  prometheus::Histogram* inference_ = nullptr;
  prometheus::Counter* rows_ = nullptr;
  prometheus::Gauge* loaded_ = nullptr;
  std::vector<prometheus::Histogram*> layers_;
};

// Per model (all versions): the dynamic batcher's queue wait, rows per
// merged forward pass and queue length.
class BatcherMetrics {
 public:
  void RecordQueueWait(double seconds) { queue_duration_->Observe(seconds); }
  void RecordBatch(int64_t rows) {
    batch_rows_->Observe(static_cast<double>(rows));
  }
  // Queue length changes by `delta` requests.
  void AddQueued(int64_t delta) {
    queue_size_->Increment(static_cast<double>(delta));
  }

 private:
  friend class ServerMetrics;
  BatcherMetrics() = default;

  prometheus::Histogram* queue_duration_ = nullptr;
  prometheus::Histogram* batch_rows_ = nullptr;
  prometheus::Gauge* queue_size_ = nullptr;
};

// Rows-per-batch buckets: 1, 2, 4, ... 4096.
prometheus::Histogram::BucketBoundaries BatchRowsBuckets();

// Per model label: request latency and outcome by method. The methods the
// label is used with are pre-resolved (Predict and ModelInfo for models,
// ListModels for "_all"); others take a slower label lookup.
class RequestMetrics {
 public:
  void Record(Method method, grpc::StatusCode code, double seconds);

 private:
  friend class ServerMetrics;
  RequestMetrics() = default;

  std::string model_;
  prometheus::Family<prometheus::Counter>* requests_family_ = nullptr;
  prometheus::Family<prometheus::Histogram>* duration_family_ = nullptr;
  // Pre-resolved series; nullptr for methods not pre-resolved.
  std::array<prometheus::Histogram*, kNumMethods> duration_{};
  std::array<prometheus::Counter*, kNumMethods> ok_{};  // code="OK"
};

class ServerMetrics {
 public:
  // `build_version` labels nnserve_build_info.
  explicit ServerMetrics(std::string_view build_version);
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // The registry to expose (and to collect in tests).
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Handle for a model name from the repository (Predict and ModelInfo
  // pre-resolved); created on first call.
  RequestMetrics* ForModel(std::string_view model);
  // Handle for requests naming no known model (model="_unknown").
  RequestMetrics* ForUnknownModel() { return unknown_; }
  // Handle for ListModels (model="_all").
  RequestMetrics* ForAllModels() { return all_; }

  // Handle for one model version whose layers are `layer_names` (in order);
  // created on first call. Its model_loaded gauge starts at 0.
  ModelVersionMetrics* ForModelVersion(
      std::string_view model, int64_t version,
      const std::vector<std::string>& layer_names);

  // Handle for the dynamic batcher(s) of `model`; created on first call.
  BatcherMetrics* ForBatcher(std::string_view model);

 private:
  RequestMetrics* CreateRequestMetrics(std::string_view model,
                                       std::initializer_list<Method> methods);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>& layer_duration_;
  prometheus::Family<prometheus::Histogram>& inference_duration_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& inference_rows_;
  prometheus::Family<prometheus::Gauge>& model_loaded_;
  prometheus::Family<prometheus::Gauge>& build_info_;
  prometheus::Family<prometheus::Histogram>& queue_duration_;
  prometheus::Family<prometheus::Histogram>& batch_rows_;
  prometheus::Family<prometheus::Gauge>& queue_size_;

  std::mutex mutex_;  // Guards the two maps below (not the hot path).
  std::map<std::string, std::unique_ptr<RequestMetrics>, std::less<>>
      request_metrics_;
  std::map<std::pair<std::string, int64_t>,
           std::unique_ptr<ModelVersionMetrics>>
      version_metrics_;
  std::map<std::string, std::unique_ptr<BatcherMetrics>, std::less<>>
      batcher_metrics_;
  RequestMetrics* unknown_ = nullptr;
  RequestMetrics* all_ = nullptr;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_OBSERVABILITY_METRICS_H_
