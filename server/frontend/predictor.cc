#include "server/frontend/predictor.h"

#include <chrono>

#include "engine/rows.h"

namespace nnserve::server {
namespace {

// Per-thread scratch reused across calls: raw-encoded outputs and per-layer
// times.
struct Scratch {
  std::vector<float> output;
  std::vector<double> layer_seconds;
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

}  // namespace

namespace {

// Model, version and (for models with labels) argmax labels and classes.
void FillMetadata(const ServedVersion& served, std::span<const float> output,
                  int64_t rows, v1::PredictResponse* response) {
  response->set_model(served.name);
  response->set_version(served.version);
  const std::vector<std::string>& labels = served.model->info().labels;
  if (!labels.empty()) {
    for (int32_t c : engine::ArgmaxPerRow(output, rows, served.model->output_size())) {
      response->add_classes(c);
      response->add_labels(labels[static_cast<size_t>(c)]);
    }
  }
}

}  // namespace

void FillPredictResponse(const ServedVersion& served,
                         std::span<const float> output, int64_t rows,
                         TensorEncoding encoding,
                         v1::PredictResponse* response) {
  EncodeOutput(output, rows, served.model->output_size(), encoding,
               response->mutable_output());
  FillMetadata(served, output, rows, response);
}

absl::Status RunPredict(const ServedVersion& served, const DecodedInput& input,
                        bool time_layers, v1::PredictResponse* response) {
  const engine::Model& model = *served.model;
  const int64_t rows = input.rows();
  const int64_t cols = model.output_size();
  Scratch& scratch = ThreadScratch();

  std::span<float> output;
  if (input.encoding() == TensorEncoding::kValues) {
    output = PrepareValuesOutput(rows, cols, response->mutable_output());
  } else {
    scratch.output.resize(static_cast<size_t>(rows * cols));
    output = scratch.output;
  }
  std::span<double> layer_seconds;
  if (time_layers) {
    scratch.layer_seconds.assign(model.num_layers(), 0.0);
    layer_seconds = scratch.layer_seconds;
  }

  const auto start = std::chrono::steady_clock::now();
  absl::Status status =
      model.Forward(input.values(), rows, output, layer_seconds);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (!status.ok()) return status;
  served.metrics->RecordInference(seconds, rows, layer_seconds);

  if (input.encoding() == TensorEncoding::kRaw) {
    EncodeOutput(output, rows, cols, TensorEncoding::kRaw,
                 response->mutable_output());
  }
  FillMetadata(served, output, rows, response);
  return absl::OkStatus();
}

}  // namespace nnserve::server
