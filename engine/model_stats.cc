// ModelInfo statistics (see model_stats.h).
#include "engine/model_stats.h"

#include <algorithm>
#include <cmath>

namespace nnserve::engine {

TensorStats ComputeTensorStats(std::span<const float> values) {
  TensorStats stats;
  if (values.empty()) return stats;
  double sum = 0;
  double min = values[0];
  double max = values[0];
  for (float v : values) {
    sum += v;
    min = std::min<double>(min, v);
    max = std::max<double>(max, v);
  }
  const double mean = sum / static_cast<double>(values.size());
  // Two-pass variance: no cancellation for large means.
  double squares = 0;
  for (float v : values) {
    const double d = v - mean;
    squares += d * d;
  }
  stats.mean = mean;
  stats.std = std::sqrt(squares / static_cast<double>(values.size()));
  stats.min = min;
  stats.max = max;
  return stats;
}

ModelInfo DescribeModel(const ModelSpec& spec, int64_t version) {
  ModelInfo info;
  info.name = spec.name;
  info.version = version;
  info.input_name = spec.input_name;
  info.input_size = spec.input_size;
  info.output_name = spec.output_name;
  info.output_size = spec.output_size();
  info.labels = spec.labels;
  info.weight_layout = spec.weight_layout;
  for (const LayerSpec& ls : spec.layers) {
    LayerInfo layer;
    layer.name = ls.name;
    layer.input_size = ls.input_size;
    layer.output_size = ls.units;
    layer.activation = ls.activation;
    layer.alpha = ls.alpha;
    layer.has_bias = !ls.bias.empty();
    layer.parameters = static_cast<int64_t>(ls.weight.size() + ls.bias.size());
    layer.weight = ComputeTensorStats(ls.weight);
    layer.bias = ComputeTensorStats(ls.bias);
    info.total_parameters += layer.parameters;
    info.layers.push_back(std::move(layer));
  }
  info.weight_bytes =
      info.total_parameters * static_cast<int64_t>(sizeof(float));
  return info;
}

}  // namespace nnserve::engine
