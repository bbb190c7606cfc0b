#include "server/frontend/oip_core.h"

#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/exceptions.h"
#include "server/frontend/oip_codec.h"

namespace nnserve::server {

namespace {

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

// What one inference call owns while the scheduler runs it: the decoded
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

OipCore::OipCore(const ModelRegistry* registry, Scheduler* scheduler,
                 const ServiceOptions& options, std::string server_version,
                 std::vector<std::string> extensions)
    : registry_(registry),
      scheduler_(scheduler),
      options_(options),
      server_version_(std::move(server_version)),
      extensions_(std::move(extensions)) {}

absl::StatusOr<bool> OipCore::ModelReady(std::string_view name,
                                         std::string_view version) const {
  absl::StatusOr<int64_t> number = ParseOipVersion(version);
  if (!number.ok()) return number.status();
  auto served = registry_->Find(name, *number);
  // A model that is still loading exists but is not ready.
  if (served.ok() || absl::IsUnavailable(served.status())) return served.ok();
  return served.status();
}

void OipCore::ServerMetadata(
    inference::ServerMetadataResponse* response) const {
  response->set_name("nnserve");
  response->set_version(server_version_);
  for (const std::string& extension : extensions_) {
    response->add_extensions(extension);
  }
}

absl::Status OipCore::ModelMetadata(
    std::string_view name, std::string_view version,
    inference::ModelMetadataResponse* response) const {
  absl::StatusOr<int64_t> number = ParseOipVersion(version);
  if (!number.ok()) return number.status();
  auto served = registry_->Find(name, *number);
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
}

absl::Status OipCore::StartInfer(const inference::ModelInferRequest& request,
                                 inference::ModelInferResponse* response,
                                 OipCall call) {
  absl::StatusOr<int64_t> version = ParseOipVersion(request.model_version());
  if (!version.ok()) return version.status();
  auto served = registry_->Find(request.model_name(), *version);
  if (!served.ok()) return served.status();
  const engine::ModelInfo& info = (*served)->model->info();
  InputExpectation expected{.features = info.input_size,
                            .max_batch_rows = options_.max_batch_rows,
                            .description = (*served)->input_description,
                            .name = info.input_name};
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
      queue,
      InferenceCall{
          .input = s.input.values,
          .rows = rows,
          .output = s.output,
          .layers = s.layer_outputs,
          .deadline = call.deadline,
          .is_cancelled = std::move(call.is_cancelled),
          .done =
              [response, &request, state = std::move(state),
               done = std::move(call.done)](absl::Status status) mutable {
                if (status.ok()) {
                  status = StatusOfCall("answering ModelInfer", [&] {
                    FillInferResponse(request, *state, response);
                    return absl::OkStatus();
                  });
                }
                std::move(done)(std::move(status));
              },
      });
}

}  // namespace nnserve::server
