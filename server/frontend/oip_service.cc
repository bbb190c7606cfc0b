#include "server/frontend/oip_service.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/exceptions.h"
#include "common/str_util.h"
#include "server/frontend/oip_codec.h"
#include "server/frontend/status.h"

namespace nnserve::server {

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Finishes ModelInfer: converts the status once, records the request
// metrics, hands the status to gRPC.
void FinishInfer(grpc::ServerUnaryReactor* reactor, RequestMetrics* metrics,
                 Clock::time_point start, const absl::Status& status) {
  grpc::Status grpc_status = ToGrpcStatus(status);
  metrics->Record(Method::kModelInfer, grpc_status.error_code(),
                  SecondsSince(start));
  reactor->Finish(grpc_status);
}

void AddTensorMetadata(
    std::string_view name, int64_t width,
    google::protobuf::RepeatedPtrField<
        inference::ModelMetadataResponse::TensorMetadata>* out) {
  inference::ModelMetadataResponse::TensorMetadata* tensor = out->Add();
  tensor->set_name(std::string(name));
  tensor->set_datatype("FP32");
  tensor->add_shape(-1);
  tensor->add_shape(width);
}

// What one ModelInfer call owns while the scheduler runs it: the decoded
// input, the resolved outputs and the buffers the forward pass writes. Held
// by a unique_ptr so that the spans handed to the scheduler stay put.
struct InferState {
  std::shared_ptr<const ServedVersion> served;
  OipInput input;
  std::vector<RequestedOutput> outputs;
  std::vector<float> output;  // [rows, output_size]
  // Hidden layers asked for: layer index -> [rows, units].
  std::map<size_t, std::vector<float>> hidden;
  std::vector<engine::LayerOutput> layer_outputs;

  std::span<const float> ValuesOf(size_t layer) const {
    auto it = hidden.find(layer);
    return it == hidden.end() ? std::span<const float>(output)
                              : std::span<const float>(it->second);
  }
};

void FillInferResponse(const inference::ModelInferRequest& request,
                       const InferState& state,
                       inference::ModelInferResponse* response) {
  const ServedVersion& served = *state.served;
  const engine::ModelInfo& info = served.model->info();
  const size_t last = info.layers.size() - 1;
  response->set_model_name(served.name);
  response->set_model_version(absl::StrCat(served.version));
  response->set_id(request.id());
  const int64_t rows = state.input.rows;
  for (const RequestedOutput& out : state.outputs) {
    const int64_t cols = info.layers[out.layer].output_size;
    std::span<const float> values = state.ValuesOf(out.layer);
    if (out.top_k > 0) {
      // Labels name the model output's classes, not a hidden layer's units.
      static const std::vector<std::string> kNoLabels;
      AppendClassificationOutput(out.name, rows, cols, values, out.top_k,
                                 out.layer == last ? info.labels : kNoLabels,
                                 state.input.raw, response);
    } else {
      AppendFp32Output(out.name, rows, cols, values, state.input.raw, response);
    }
  }
}

}  // namespace

OipInferenceService::OipInferenceService(const ModelRegistry* registry,
                                         Scheduler* scheduler,
                                         ServerMetrics* metrics,
                                         const ServiceOptions& options,
                                         std::string server_version)
    : registry_(registry),
      scheduler_(scheduler),
      metrics_(metrics),
      options_(options),
      server_version_(std::move(server_version)) {}

absl::Status OipInferenceService::Admit(
    const grpc::CallbackServerContext* context, std::string_view method) const {
  if (calls_.draining()) return CallTracker::DrainingError();
  if (context->deadline() <= std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the call's deadline passed before ", Sv(method), " could run"));
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* OipInferenceService::ServerLive(
    grpc::CallbackServerContext* /*context*/,
    const inference::ServerLiveRequest* /*request*/,
    inference::ServerLiveResponse* response) {
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  response->set_live(true);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* OipInferenceService::ServerReady(
    grpc::CallbackServerContext* /*context*/,
    const inference::ServerReadyRequest* /*request*/,
    inference::ServerReadyResponse* response) {
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  response->set_ready(ready_.load(std::memory_order_relaxed) &&
                      !calls_.draining());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* OipInferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  const absl::Status status = StatusOfCall("handling ModelReady", [&] {
    absl::Status admitted = Admit(context, "ModelReady");
    if (!admitted.ok()) return admitted;
    absl::StatusOr<int64_t> version = ParseOipVersion(request->version());
    if (!version.ok()) return version.status();
    auto served = registry_->Find(request->name(), *version);
    // A model that is still loading exists but is not ready.
    if (served.ok() || absl::IsUnavailable(served.status())) {
      response->set_ready(served.ok());
      return absl::OkStatus();
    }
    return served.status();
  });
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* OipInferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest* /*request*/,
    inference::ServerMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  const absl::Status status = StatusOfCall("handling ServerMetadata", [&] {
    absl::Status admitted = Admit(context, "ServerMetadata");
    if (!admitted.ok()) return admitted;
    response->set_name("nnserve");
    response->set_version(server_version_);
    response->add_extensions("classification");
    return absl::OkStatus();
  });
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* OipInferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  const absl::Status status = StatusOfCall("handling ModelMetadata", [&] {
    absl::Status admitted = Admit(context, "ModelMetadata");
    if (!admitted.ok()) return admitted;
    absl::StatusOr<int64_t> version = ParseOipVersion(request->version());
    if (!version.ok()) return version.status();
    auto served = registry_->Find(request->name(), *version);
    if (!served.ok()) return served.status();
    const engine::ModelInfo& info = (*served)->model->info();
    response->set_name(info.name);
    for (int64_t v : registry_->AvailableVersions(info.name)) {
      response->add_versions(absl::StrCat(v));
    }
    response->set_platform(std::string(kOipPlatform));
    AddTensorMetadata(info.input_name, info.input_size,
                      response->mutable_inputs());
    AddTensorMetadata(info.output_name, info.output_size,
                      response->mutable_outputs());
    for (const engine::LayerInfo& layer : info.layers) {
      AddTensorMetadata(layer.name, layer.output_size,
                        response->mutable_outputs());
    }
    return absl::OkStatus();
  });
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* OipInferenceService::ModelInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  const Clock::time_point start = Clock::now();
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  RequestMetrics* metrics = registry_->RequestMetricsFor(request->model_name());
  // OK once the call is handed to the scheduler (its `done` finishes it);
  // otherwise the call is finished here, also when something threw.
  const absl::Status refused = StatusOfCall("handling ModelInfer", [&] {
    return StartInfer(context, *request, response, reactor, metrics, start);
  });
  if (!refused.ok()) FinishInfer(reactor, metrics, start, refused);
  return reactor;
}

absl::Status OipInferenceService::StartInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest& request,
    inference::ModelInferResponse* response, grpc::ServerUnaryReactor* reactor,
    RequestMetrics* metrics, Clock::time_point start) {
  // Decode.
  absl::Status admitted = Admit(context, "ModelInfer");
  if (!admitted.ok()) return admitted;
  absl::StatusOr<int64_t> version = ParseOipVersion(request.model_version());
  if (!version.ok()) return version.status();
  auto served = registry_->Find(request.model_name(), *version);
  if (!served.ok()) return served.status();
  const engine::ModelInfo& info = (*served)->model->info();
  InputExpectation expected{.features = info.input_size,
                            .max_batch_rows = options_.max_batch_rows,
                            .description = (*served)->input_description};
  auto input = DecodeOipInput(request, expected);
  if (!input.ok()) return input.status();
  auto outputs = ResolveRequestedOutputs(request, info);
  if (!outputs.ok()) return outputs.status();
  const int64_t rows = input->rows;
  int64_t output_bytes = 0;
  for (const RequestedOutput& out : *outputs) {
    output_bytes += rows * info.layers[out.layer].output_size * 4;
  }
  if (output_bytes > options_.max_message_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the response's ", outputs->size(), " outputs for ", rows,
        " rows would be ", output_bytes,
        " bytes, over the server's message limit of ",
        options_.max_message_bytes, " bytes (--max-message-bytes)"));
  }

  // The buffers the forward pass writes: the model output, and each hidden
  // layer asked for once.
  auto state = std::make_unique<InferState>();
  state->served = *std::move(served);
  state->input = *std::move(input);
  state->outputs = *std::move(outputs);
  state->output.resize(static_cast<size_t>(rows * info.output_size));
  const size_t last = info.layers.size() - 1;
  for (const RequestedOutput& out : state->outputs) {
    if (out.layer == last || state->hidden.contains(out.layer)) continue;
    state->hidden[out.layer].resize(
        static_cast<size_t>(rows * info.layers[out.layer].output_size));
  }
  for (auto& [layer, values] : state->hidden) {
    state->layer_outputs.push_back({.layer = layer, .values = values});
  }

  // Delegate: the same scheduler path as Predict.
  InferState& s = *state;
  std::shared_ptr<ModelQueue> queue = s.served->queue;
  return scheduler_->Submit(
      queue, InferenceCall{
                 .input = s.input.values,
                 .rows = rows,
                 .output = s.output,
                 .layers = s.layer_outputs,
                 .deadline = context->deadline(),
                 .is_cancelled = [context] { return context->IsCancelled(); },
                 .done =
                     [reactor, metrics, start, response, &request,
                      state = std::move(state)](absl::Status status) {
                       if (status.ok()) {
                         status = StatusOfCall("answering ModelInfer", [&] {
                           FillInferResponse(request, *state, response);
                           return absl::OkStatus();
                         });
                       }
                       FinishInfer(reactor, metrics, start, status);
                     },
             });
}

}  // namespace nnserve::server
