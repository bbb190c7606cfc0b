// Prometheus metrics of the nnserve server, behind a small API so the hot
// path never does label lookups: handles with pre-resolved series pointers
// are created when a model (version) is loaded and are used lock-free by
// request handlers and the scheduler (prometheus-cpp series are themselves
// thread-safe).
//
// Series (names and labels are a contract with dashboards and alerts):
//   nnserve_layer_duration_seconds      histogram {model, version, layer}
//   nnserve_inference_duration_seconds  histogram {model, version}
//   nnserve_request_duration_seconds    histogram {model, method}
//   nnserve_requests_total              counter   {model, method, code}
//   nnserve_inference_rows_total        counter   {model, version}
//   nnserve_model_loaded                gauge     {model, version}
//   nnserve_model_load_duration_seconds histogram {model}  (each load)
//   nnserve_model_loads_total           counter   {model, result}
//   nnserve_build_info                  gauge     {version}
//   nnserve_queue_duration_seconds      histogram {model}  (dynamic batcher)
//   nnserve_batch_rows                  histogram {model}  (rows per forward)
//   nnserve_queue_size                  gauge     {model}  (queued requests)
//   nnserve_precision_deviation         gauge     {model, version, layer}
//     (BF16/INT8 versions: relative L2 deviation from FP32 at load)
// Requests naming a model that is not in the repository are counted under
// model="_unknown" (bounded cardinality); ListModels, which names no model,
// under model="_all".
//
// Ownership: ServerMetrics owns the registry. Per-version handles
// (ForModelVersion) are shared: their series (inference, per-layer, rows,
// model_loaded) are counted per label set and removed from the registry
// when the last handle using them is destroyed, so series of unloaded
// versions disappear, and a version reloaded while its old instance still
// serves keeps one set of series. Every other handle stays valid for the
// lifetime of the ServerMetrics, which must outlive every handle. All
// methods are thread-safe.
#ifndef NNSERVE_SERVER_OBSERVABILITY_METRICS_H_
#define NNSERVE_SERVER_OBSERVABILITY_METRICS_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
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
  kModelInfer = 5,  // inference.GRPCInferenceService (Open Inference Protocol)
  kRestInfer = 6,   // The Open Inference Protocol's REST infer endpoint.
};
inline constexpr int kNumMethods = 7;
// "Predict", "ModelInfo", "ListModels", "LoadModel", "UnloadModel",
// "ModelInfer", "rest_infer".
std::string_view MethodName(Method method);

// Latency buckets: 1 µs × 2^k for k = 0..23 (1 µs … ≈ 8.4 s).
prometheus::Histogram::BucketBoundaries LatencyBuckets();

class ServerMetrics;

// Per model version: inference latency, per-layer latency, rows, loaded.
// Destroying the handle releases its series (see the header comment).
class ModelVersionMetrics {
 public:
  ModelVersionMetrics(const ModelVersionMetrics&) = delete;
  ModelVersionMetrics& operator=(const ModelVersionMetrics&) = delete;
  ~ModelVersionMetrics();

  // `layer_seconds` is empty (layer timing off) or has one entry per layer.
  void RecordInference(double seconds, int64_t rows,
                       std::span<const double> layer_seconds);
  void SetLoaded(bool loaded);

 private:
  friend class ServerMetrics;
  explicit ModelVersionMetrics(ServerMetrics* owner) : owner_(owner) {}

  ServerMetrics* const owner_;
  prometheus::Histogram* inference_ = nullptr;
  prometheus::Counter* rows_ = nullptr;
  prometheus::Gauge* loaded_ = nullptr;
  std::vector<prometheus::Histogram*> layers_;
  std::vector<prometheus::Gauge*> deviations_;  // Reduced precision only.
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

// Per model: how long each load of one of its versions took, and how many
// loads succeeded and failed.
class ModelLoadMetrics {
 public:
  void RecordLoad(double seconds, bool success) {
    duration_->Observe(seconds);
    (success ? success_ : failure_)->Increment();
  }

 private:
  friend class ServerMetrics;
  ModelLoadMetrics() = default;

  prometheus::Histogram* duration_ = nullptr;
  prometheus::Counter* success_ = nullptr;  // result="success"
  prometheus::Counter* failure_ = nullptr;  // result="failure"
};

// Model-load buckets: 1 ms × 2^k for k = 0..17 (1 ms … ≈ 131 s).
prometheus::Histogram::BucketBoundaries LoadBuckets();

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

  // A handle for one model version whose layers are `layer_names` (in
  // order). Handles for the same (model, version) share series; a new
  // series' model_loaded gauge starts at 0. The series are removed when
  // the last handle holding them is destroyed. `precision_deviations`
  // (empty, or one per layer) sets nnserve_precision_deviation for a
  // version that runs in reduced precision.
  std::shared_ptr<ModelVersionMetrics> ForModelVersion(
      std::string_view model, int64_t version,
      const std::vector<std::string>& layer_names,
      std::span<const double> precision_deviations = {});

  // Handle for the scheduler queues of `model`; created on first call.
  BatcherMetrics* ForBatcher(std::string_view model);

  // Handle for the loads of `model`'s versions; created on first call.
  ModelLoadMetrics* ForModelLoads(std::string_view model);

 private:
  friend class ModelVersionMetrics;
  RequestMetrics* CreateRequestMetrics(std::string_view model,
                                       std::initializer_list<Method> methods);
  // The series of `labels` in `family`, one more holder counted.
  template <typename T, typename... Args>
  T* AcquireSeries(prometheus::Family<T>& family,
                   const prometheus::Labels& labels, Args&&... args)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // One holder fewer; the last one removes the series from `family`.
  template <typename T>
  void ReleaseSeries(prometheus::Family<T>& family, T* series)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Releases every series of `handle` (its destructor).
  void ReleaseVersionSeries(const ModelVersionMetrics& handle);

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
  prometheus::Family<prometheus::Histogram>& load_duration_;
  prometheus::Family<prometheus::Counter>& loads_;
  prometheus::Family<prometheus::Gauge>& precision_deviation_;

  // Handle creation and release only (never the request path).
  absl::Mutex mutex_;
  std::map<std::string, std::unique_ptr<RequestMetrics>, std::less<>>
      request_metrics_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::unique_ptr<BatcherMetrics>, std::less<>>
      batcher_metrics_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::unique_ptr<ModelLoadMetrics>, std::less<>>
      load_metrics_ ABSL_GUARDED_BY(mutex_);
  // Holders of each per-version series (keyed by the series' address).
  std::map<const void*, int> series_holders_ ABSL_GUARDED_BY(mutex_);
  RequestMetrics* unknown_ = nullptr;
  RequestMetrics* all_ = nullptr;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_OBSERVABILITY_METRICS_H_
