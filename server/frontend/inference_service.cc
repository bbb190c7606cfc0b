#include "server/frontend/inference_service.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/exceptions.h"
#include "common/str_util.h"
#include "engine/rows.h"
#include "server/frontend/status.h"
#include "server/frontend/tensor_codec.h"

namespace nnserve::server {

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool DeadlinePassed(const grpc::CallbackServerContext* context) {
  return context->deadline() <= std::chrono::system_clock::now();
}

absl::Status DeadlineError(std::string_view method) {
  return absl::DeadlineExceededError(absl::StrCat(
      "the call's deadline passed before ", Sv(method), " could run"));
}

void FillStats(const engine::TensorStats& stats, v1::TensorStats* out) {
  out->set_mean(stats.mean);
  out->set_std(stats.std);
  out->set_min(stats.min);
  out->set_max(stats.max);
}

// Finishes a unary call: converts the status once, records the request
// metrics, hands the status to gRPC.
void Finish(grpc::ServerUnaryReactor* reactor, RequestMetrics* metrics,
            Method method, Clock::time_point start,
            const absl::Status& status) {
  grpc::Status grpc_status = ToGrpcStatus(status);
  metrics->Record(method, grpc_status.error_code(), SecondsSince(start));
  reactor->Finish(grpc_status);
}

// Model, version and (for models with labels) the argmax label and class of
// each output row; a row with a non-finite value (the forward pass
// overflowed) gets class -1 and label "" rather than a made-up class.
void FillPredictMetadata(const ServedVersion& served,
                         std::span<const float> output, int64_t rows,
                         v1::PredictResponse* response) {
  response->set_model(served.name);
  response->set_version(served.version);
  const std::vector<std::string>& labels = served.model->info().labels;
  if (labels.empty()) return;
  for (int32_t c :
       engine::ArgmaxPerRow(output, rows, served.model->output_size())) {
    response->add_classes(c);
    response->add_labels(
        c == engine::kNoClass ? std::string() : labels[static_cast<size_t>(c)]);
  }
}

// The indices of the layers `names` asks for, in that order: each must name
// a layer of the model, at most once (INVALID_ARGUMENT listing the valid
// names otherwise).
absl::StatusOr<std::vector<size_t>> ResolveLayers(
    const engine::ModelInfo& info,
    const google::protobuf::RepeatedPtrField<std::string>& names) {
  std::vector<size_t> layers;
  for (const std::string& name : names) {
    size_t index = 0;
    while (index < info.layers.size() && info.layers[index].name != name) {
      ++index;
    }
    if (index == info.layers.size()) {
      std::vector<std::string> valid;
      for (const engine::LayerInfo& layer : info.layers) {
        valid.push_back(layer.name);
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "output_layers: model '", info.name, "' has no layer '", Clip(name),
          "'; expected one of: ", absl::StrJoin(valid, ", ")));
    }
    if (std::find(layers.begin(), layers.end(), index) != layers.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output_layers: layer '", name,
                       "' is asked for twice; expected "
                       "each layer at most once"));
    }
    layers.push_back(index);
  }
  return layers;
}

}  // namespace

void FillModelInfo(const engine::ModelInfo& info,
                   const std::vector<int64_t>& available_versions,
                   v1::ModelInfoResponse* response) {
  response->set_name(info.name);
  response->set_version(info.version);
  for (int64_t v : available_versions) response->add_available_versions(v);
  response->set_input_name(info.input_name);
  response->set_input_size(info.input_size);
  response->set_output_name(info.output_name);
  response->set_output_size(info.output_size);
  for (const std::string& label : info.labels) response->add_labels(label);
  response->set_weight_layout(engine::ToConfigWeightLayout(info.weight_layout));
  const engine::PrecisionReport& precision = info.precision;
  for (size_t i = 0; i < info.layers.size(); ++i) {
    const engine::LayerInfo& layer = info.layers[i];
    v1::LayerInfo* out = response->add_layers();
    if (i < precision.layers.size()) {
      out->set_kernel(precision.layers[i].kernel);
      out->set_precision_max_abs_deviation(
          precision.layers[i].max_abs_deviation);
      out->set_precision_relative_l2_deviation(
          precision.layers[i].relative_l2_deviation);
    }
    out->set_name(layer.name);
    out->set_input_size(layer.input_size);
    out->set_output_size(layer.output_size);
    out->set_activation(engine::ToConfigActivation(layer.activation));
    out->set_alpha(layer.alpha);
    out->set_parameters(layer.parameters);
    out->set_has_bias(layer.has_bias);
    FillStats(layer.weight, out->mutable_weight_stats());
    FillStats(layer.bias, out->mutable_bias_stats());
  }
  response->set_total_parameters(info.total_parameters);
  response->set_weight_bytes(info.weight_bytes);
  response->set_load_duration_seconds(info.load_seconds);
  response->set_requested_precision(
      engine::ToConfigPrecision(precision.requested));
  response->set_effective_precision(
      engine::ToConfigPrecision(precision.effective));
  response->set_precision_fallback_reason(precision.fallback_reason);
  response->set_cpu_isa(precision.isa);
  response->set_precision_probe_source(precision.probe_source);
  response->set_precision_probe_rows(precision.probe_rows);
  response->set_max_precision_deviation(precision.max_precision_deviation);
}

InferenceService::InferenceService(const ModelRegistry* registry,
                                   Scheduler* scheduler, ServerMetrics* metrics,
                                   const ServiceOptions& options)
    : registry_(registry),
      scheduler_(scheduler),
      metrics_(metrics),
      options_(options) {}

grpc::ServerUnaryReactor* InferenceService::Predict(
    grpc::CallbackServerContext* context, const v1::PredictRequest* request,
    v1::PredictResponse* response) {
  const Clock::time_point start = Clock::now();
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  RequestMetrics* metrics = registry_->RequestMetricsFor(request->model());
  // OK once the call is handed to the scheduler (its `done` finishes it);
  // otherwise the call is finished here, also when something threw.
  const absl::Status refused = StatusOfCall("handling Predict", [&] {
    return StartPredict(context, *request, response, reactor, metrics, start);
  });
  if (!refused.ok()) {
    Finish(reactor, metrics, Method::kPredict, start, refused);
  }
  return reactor;
}

absl::Status InferenceService::StartPredict(
    grpc::CallbackServerContext* context, const v1::PredictRequest& request,
    v1::PredictResponse* response, grpc::ServerUnaryReactor* reactor,
    RequestMetrics* metrics, Clock::time_point start) {
  // Decode.
  if (calls_.draining()) return CallTracker::DrainingError();
  if (DeadlinePassed(context)) return DeadlineError("Predict");
  auto served = registry_->Find(request.model(), request.version());
  if (!served.ok()) return served.status();
  const engine::ModelInfo& info = (*served)->model->info();
  InputExpectation expected{.features = info.input_size,
                            .max_batch_rows = options_.max_batch_rows,
                            .description = (*served)->input_description,
                            .name = {}};  // nnserve.v1 does not name it.
  auto input = DecodeInput(request.input(), expected);
  if (!input.ok()) return input.status();
  const int64_t rows = input->rows();
  auto layers = ResolveLayers(info, request.output_layers());
  if (!layers.ok()) return layers.status();
  int64_t output_columns = info.output_size;
  for (size_t layer : *layers) {
    output_columns += info.layers[layer].output_size;
  }
  const int64_t output_bytes = rows * output_columns * 4;
  if (output_bytes > options_.max_message_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the response for ", rows, " rows of ", output_columns,
        " outputs (layers included) would be ", output_bytes,
        " bytes, over the server's message limit of ",
        options_.max_message_bytes, " bytes (--max-message-bytes)"));
  }

  // Delegate: the scheduler runs the forward pass straight into the
  // response's output tensor; `done` fills the rest and finishes the call.
  const std::span<float> output = PrepareOutput(
      rows, info.output_size, input->encoding(), response->mutable_output());
  // Requested layers are written straight into their response tensors too.
  std::vector<engine::LayerOutput> layer_outputs;
  for (size_t layer : *layers) {
    v1::LayerTensor* tensor = response->add_layers();
    tensor->set_name(info.layers[layer].name);
    layer_outputs.push_back(engine::LayerOutput{
        .layer = layer,
        .values = PrepareOutput(rows, info.layers[layer].output_size,
                                input->encoding(), tensor->mutable_tensor())});
  }
  const std::span<const float> values = input->values();
  // The input's storage moves with it (a vector's buffer stays put), so
  // `values` stays valid while `done` owns the DecodedInput.
  std::shared_ptr<ModelQueue> queue = (*served)->queue;
  return scheduler_->Submit(
      queue, InferenceCall{
                 .input = values,
                 .rows = rows,
                 .output = output,
                 .layers = std::move(layer_outputs),
                 .deadline = context->deadline(),
                 .is_cancelled = [context] { return context->IsCancelled(); },
                 .done =
                     [reactor, metrics, start, response, output, rows,
                      served = *std::move(served),
                      input = *std::move(input)](absl::Status status) {
                       if (status.ok()) {
                         status = StatusOfCall("answering Predict", [&] {
                           FillPredictMetadata(*served, output, rows, response);
                           return absl::OkStatus();
                         });
                       }
                       Finish(reactor, metrics, Method::kPredict, start,
                              status);
                     },
             });
}

grpc::ServerUnaryReactor* InferenceService::ModelInfo(
    grpc::CallbackServerContext* context, const v1::ModelInfoRequest* request,
    v1::ModelInfoResponse* response) {
  const Clock::time_point start = Clock::now();
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  RequestMetrics* metrics = registry_->RequestMetricsFor(request->model());
  absl::Status status;
  if (calls_.draining()) {
    status = CallTracker::DrainingError();
  } else if (DeadlinePassed(context)) {
    status = DeadlineError("ModelInfo");
  } else if (auto served =
                 registry_->Find(request->model(), request->version());
             !served.ok()) {
    status = served.status();
  } else {
    status = StatusOfCall("answering ModelInfo", [&] {
      FillModelInfo((*served)->model->info(),
                    registry_->AvailableVersions(request->model()), response);
      return absl::OkStatus();
    });
  }
  Finish(reactor, metrics, Method::kModelInfo, start, status);
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::ListModels(
    grpc::CallbackServerContext* context,
    const v1::ListModelsRequest* /*request*/,
    v1::ListModelsResponse* response) {
  const Clock::time_point start = Clock::now();
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  absl::Status status;
  if (calls_.draining()) {
    status = CallTracker::DrainingError();
  } else if (DeadlinePassed(context)) {
    status = DeadlineError("ListModels");
  } else {
    status = StatusOfCall("answering ListModels", [&] {
      *response = registry_->ListModels();
      return absl::OkStatus();
    });
  }
  Finish(reactor, metrics_->ForAllModels(), Method::kListModels, start, status);
  return reactor;
}

}  // namespace nnserve::server
