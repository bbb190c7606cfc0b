#include "server/observability/metrics.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "common/code_names.h"

namespace nnserve::server {

std::string_view MethodName(Method method) {
  switch (method) {
    case Method::kPredict:
      return "Predict";
    case Method::kModelInfo:
      return "ModelInfo";
    case Method::kListModels:
      return "ListModels";
    case Method::kLoadModel:
      return "LoadModel";
    case Method::kUnloadModel:
      return "UnloadModel";
    case Method::kModelInfer:
      return "ModelInfer";
    case Method::kRestInfer:
      return "rest_infer";
  }
  return "Unknown";
}

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (int k = 0; k <= 23; ++k) buckets.push_back(std::ldexp(1e-6, k));
  return buckets;
}

prometheus::Histogram::BucketBoundaries LoadBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (int k = 0; k <= 17; ++k) buckets.push_back(std::ldexp(1e-3, k));
  return buckets;
}

prometheus::Histogram::BucketBoundaries BatchRowsBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (int k = 0; k <= 12; ++k) buckets.push_back(std::ldexp(1.0, k));
  return buckets;
}

ModelVersionMetrics::~ModelVersionMetrics() {
  owner_->ReleaseVersionSeries(*this);
}

void ModelVersionMetrics::RecordInference(
    double seconds, int64_t rows, std::span<const double> layer_seconds) {
  inference_->Observe(seconds);
  rows_->Increment(static_cast<double>(rows));
  const size_t n = std::min(layer_seconds.size(), layers_.size());
  for (size_t i = 0; i < n; ++i) layers_[i]->Observe(layer_seconds[i]);
}

void ModelVersionMetrics::SetLoaded(bool loaded) {
  loaded_->Set(loaded ? 1.0 : 0.0);
}

void RequestMetrics::Record(Method method, grpc::StatusCode code,
                            double seconds) {
  const int m = static_cast<int>(method);
  if (duration_[m] != nullptr) {
    duration_[m]->Observe(seconds);
  } else {
    duration_family_
        ->Add({{"model", model_}, {"method", std::string(MethodName(method))}},
              LatencyBuckets())
        .Observe(seconds);
  }
  if (code == grpc::StatusCode::OK && ok_[m] != nullptr) {
    ok_[m]->Increment();
    return;
  }
  // Errors take the slow path: Family::Add returns the existing series.
  requests_family_
      ->Add({{"model", model_},
             {"method", std::string(MethodName(method))},
             {"code", StatusCodeName(static_cast<int>(code))}})
      .Increment();
}

ServerMetrics::ServerMetrics(std::string_view build_version)
    : registry_(std::make_shared<prometheus::Registry>()),
      layer_duration_(
          prometheus::BuildHistogram()
              .Name("nnserve_layer_duration_seconds")
              .Help("Wall time of one layer of a forward pass (matmul, bias, "
                    "activation; softmax included)")
              .Register(*registry_)),
      inference_duration_(prometheus::BuildHistogram()
                              .Name("nnserve_inference_duration_seconds")
                              .Help("Wall time of a whole forward pass")
                              .Register(*registry_)),
      request_duration_(
          prometheus::BuildHistogram()
              .Name("nnserve_request_duration_seconds")
              .Help("Time from the start of an RPC handler to its completion")
              .Register(*registry_)),
      requests_(prometheus::BuildCounter()
                    .Name("nnserve_requests_total")
                    .Help("Completed RPCs by model, method and gRPC code")
                    .Register(*registry_)),
      inference_rows_(prometheus::BuildCounter()
                          .Name("nnserve_inference_rows_total")
                          .Help("Rows run through forward passes")
                          .Register(*registry_)),
      model_loaded_(prometheus::BuildGauge()
                        .Name("nnserve_model_loaded")
                        .Help("1 while a model version is loaded and served")
                        .Register(*registry_)),
      build_info_(prometheus::BuildGauge()
                      .Name("nnserve_build_info")
                      .Help("Always 1; labelled with the nnserve version")
                      .Register(*registry_)),
      queue_duration_(
          prometheus::BuildHistogram()
              .Name("nnserve_queue_duration_seconds")
              .Help("Time a Predict call waited in the model's dynamic "
                    "batching queue before its forward pass started")
              .Register(*registry_)),
      batch_rows_(prometheus::BuildHistogram()
                      .Name("nnserve_batch_rows")
                      .Help("Rows per forward pass run by the dynamic batcher")
                      .Register(*registry_)),
      queue_size_(prometheus::BuildGauge()
                      .Name("nnserve_queue_size")
                      .Help("Predict calls waiting in the model's dynamic "
                            "batching queue")
                      .Register(*registry_)),
      load_duration_(
          prometheus::BuildHistogram()
              .Name("nnserve_model_load_duration_seconds")
              .Help("Wall time of one load of a model version: reading, "
                    "validation, oneDNN setup and warm-up")
              .Register(*registry_)),
      loads_(prometheus::BuildCounter()
                 .Name("nnserve_model_loads_total")
                 .Help("Loads of model versions by result (success, "
                       "failure)")
                 .Register(*registry_)),
      precision_deviation_(
          prometheus::BuildGauge()
              .Name("nnserve_precision_deviation")
              .Help("Relative L2 deviation of a BF16/INT8 layer's output "
                    "from FP32 on the load-time probe batch")
              .Register(*registry_)) {
  build_info_.Add({{"version", std::string(build_version)}}).Set(1);
  unknown_ = ForModel(kUnknownModelLabel);
  all_ = CreateRequestMetrics(kAllModelsLabel, {Method::kListModels});
}

RequestMetrics* ServerMetrics::ForModel(std::string_view model) {
  return CreateRequestMetrics(model, {Method::kPredict, Method::kModelInfo,
                                      Method::kModelInfer, Method::kRestInfer});
}

RequestMetrics* ServerMetrics::CreateRequestMetrics(
    std::string_view model, std::initializer_list<Method> methods) {
  absl::MutexLock lock(&mutex_);
  auto it = request_metrics_.find(model);
  if (it != request_metrics_.end()) return it->second.get();
  auto metrics = std::unique_ptr<RequestMetrics>(new RequestMetrics());
  metrics->model_ = std::string(model);
  metrics->requests_family_ = &requests_;
  metrics->duration_family_ = &request_duration_;
  for (Method method_id : methods) {
    const int m = static_cast<int>(method_id);
    const std::string method(MethodName(method_id));
    metrics->duration_[m] = &request_duration_.Add(
        {{"model", metrics->model_}, {"method", method}}, LatencyBuckets());
    metrics->ok_[m] = &requests_.Add(
        {{"model", metrics->model_}, {"method", method}, {"code", "OK"}});
  }
  RequestMetrics* result = metrics.get();
  request_metrics_.emplace(std::string(model), std::move(metrics));
  return result;
}

template <typename T, typename... Args>
T* ServerMetrics::AcquireSeries(prometheus::Family<T>& family,
                                const prometheus::Labels& labels,
                                Args&&... args) {
  T* series = &family.Add(labels, std::forward<Args>(args)...);
  ++series_holders_[series];
  return series;
}

template <typename T>
void ServerMetrics::ReleaseSeries(prometheus::Family<T>& family, T* series) {
  auto it = series_holders_.find(series);
  if (it == series_holders_.end() || --it->second > 0) return;
  series_holders_.erase(it);
  family.Remove(series);
}

std::shared_ptr<ModelVersionMetrics> ServerMetrics::ForModelVersion(
    std::string_view model, int64_t version,
    const std::vector<std::string>& layer_names,
    std::span<const double> precision_deviations) {
  auto metrics =
      std::shared_ptr<ModelVersionMetrics>(new ModelVersionMetrics(this));
  const prometheus::Labels labels = {{"model", std::string(model)},
                                     {"version", std::to_string(version)}};
  absl::MutexLock lock(&mutex_);
  metrics->inference_ =
      AcquireSeries(inference_duration_, labels, LatencyBuckets());
  metrics->rows_ = AcquireSeries(inference_rows_, labels);
  metrics->loaded_ = AcquireSeries(model_loaded_, labels);
  for (const std::string& layer : layer_names) {
    prometheus::Labels layer_labels = labels;
    layer_labels["layer"] = layer;
    metrics->layers_.push_back(
        AcquireSeries(layer_duration_, layer_labels, LatencyBuckets()));
    const size_t i = metrics->layers_.size() - 1;
    if (i < precision_deviations.size()) {
      prometheus::Gauge* deviation =
          AcquireSeries(precision_deviation_, layer_labels);
      deviation->Set(precision_deviations[i]);
      metrics->deviations_.push_back(deviation);
    }
  }
  return metrics;
}

void ServerMetrics::ReleaseVersionSeries(const ModelVersionMetrics& handle) {
  absl::MutexLock lock(&mutex_);
  if (handle.inference_ != nullptr) {
    ReleaseSeries(inference_duration_, handle.inference_);
  }
  if (handle.rows_ != nullptr) ReleaseSeries(inference_rows_, handle.rows_);
  if (handle.loaded_ != nullptr) ReleaseSeries(model_loaded_, handle.loaded_);
  for (prometheus::Histogram* layer : handle.layers_) {
    ReleaseSeries(layer_duration_, layer);
  }
  for (prometheus::Gauge* deviation : handle.deviations_) {
    ReleaseSeries(precision_deviation_, deviation);
  }
}

BatcherMetrics* ServerMetrics::ForBatcher(std::string_view model) {
  absl::MutexLock lock(&mutex_);
  auto it = batcher_metrics_.find(model);
  if (it != batcher_metrics_.end()) return it->second.get();
  auto metrics = std::unique_ptr<BatcherMetrics>(new BatcherMetrics());
  const prometheus::Labels labels = {{"model", std::string(model)}};
  metrics->queue_duration_ = &queue_duration_.Add(labels, LatencyBuckets());
  metrics->batch_rows_ = &batch_rows_.Add(labels, BatchRowsBuckets());
  metrics->queue_size_ = &queue_size_.Add(labels);
  BatcherMetrics* result = metrics.get();
  batcher_metrics_.emplace(std::string(model), std::move(metrics));
  return result;
}

ModelLoadMetrics* ServerMetrics::ForModelLoads(std::string_view model) {
  absl::MutexLock lock(&mutex_);
  auto it = load_metrics_.find(model);
  if (it != load_metrics_.end()) return it->second.get();
  auto metrics = std::unique_ptr<ModelLoadMetrics>(new ModelLoadMetrics());
  const std::string name(model);
  metrics->duration_ = &load_duration_.Add({{"model", name}}, LoadBuckets());
  metrics->success_ = &loads_.Add({{"model", name}, {"result", "success"}});
  metrics->failure_ = &loads_.Add({{"model", name}, {"result", "failure"}});
  ModelLoadMetrics* result = metrics.get();
  load_metrics_.emplace(name, std::move(metrics));
  return result;
}

}  // namespace nnserve::server
