// `nnserve-cli explain`: what each layer of a model does to one input. The
// CLI asks the server for every layer's activations (Predict with
// output_layers = all layers) and summarises each layer: mean and max
// activation, the fraction of activations that are exactly zero, the units
// that are zero for every row (dead ReLU units for this input), and the
// units with the largest mean activation. Pure functions over the
// responses; thread-safe.
#ifndef NNSERVE_CLIENT_EXPLAIN_H_
#define NNSERVE_CLIENT_EXPLAIN_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "nnserve/v1/inference.pb.h"

namespace nnserve::cli {

struct LayerSummary {
  std::string name;
  std::string activation;  // "RELU", "SOFTMAX", ... (from ModelInfo).
  int64_t rows = 0;
  int64_t units = 0;
  double mean = 0;
  double max = 0;
  double zero_fraction = 0;  // Of all rows x units activations.
  int64_t dead_units = 0;    // Zero in every row.
  // (unit, mean activation over the rows), largest first.
  std::vector<std::pair<int64_t, double>> top_units;
};

// One summary per layer of `response.layers()`, in order; `info` supplies
// the activations. `top_k` units are listed per layer. DataLoss if a layer
// tensor is malformed.
absl::StatusOr<std::vector<LayerSummary>> SummarizeLayers(
    const v1::ModelInfoResponse& info, const v1::PredictResponse& response,
    int top_k);

// A table: one line per layer.
std::string ExplainText(const v1::PredictResponse& response,
                        const std::vector<LayerSummary>& layers);
// {"model", "version", "layers": [{"name", "activation", "rows", "units",
// "mean", "max", "zero_fraction", "dead_units", "top_units": [{"unit",
// "mean"}]}]}.
nlohmann::json ExplainJson(const v1::PredictResponse& response,
                           const std::vector<LayerSummary>& layers);

}  // namespace nnserve::cli

#endif  // NNSERVE_CLIENT_EXPLAIN_H_
