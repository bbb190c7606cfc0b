// Plain-loop reference forward pass (see reference.h).
#include "tests/util/reference.h"

#include <algorithm>
#include <cmath>

namespace nnserve::testing {

void ReferenceActivation(v1::Activation activation, double alpha,
                         std::span<double> row) {
  switch (activation) {
    case v1::IDENTITY:
      return;
    case v1::RELU:
      for (double& v : row) v = v > 0 ? v : 0;
      return;
    case v1::LEAKY_RELU:
      for (double& v : row) v = v > 0 ? v : alpha * v;
      return;
    case v1::ELU:
      for (double& v : row) v = v > 0 ? v : alpha * (std::exp(v) - 1);
      return;
    case v1::SIGMOID:
      for (double& v : row) v = 1 / (1 + std::exp(-v));
      return;
    case v1::TANH:
      for (double& v : row) v = std::tanh(v);
      return;
    case v1::GELU:
      for (double& v : row) v = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
      return;
    case v1::SOFTMAX: {
      const double max = *std::max_element(row.begin(), row.end());
      double sum = 0;
      for (double& v : row) {
        v = std::exp(v - max);
        sum += v;
      }
      for (double& v : row) v /= sum;
      return;
    }
    default:
      return;
  }
}

std::vector<double> ReferenceForward(const v1::ModelConfig& config,
                                     const formats::TensorMap& tensors,
                                     std::span<const float> input,
                                     int64_t rows) {
  int64_t in = config.input().size();
  std::vector<double> current(input.begin(), input.end());
  for (const v1::LayerConfig& layer : config.layers()) {
    const int64_t units = layer.units();
    const std::vector<float>& w = tensors.find(layer.weight())->second.values;
    const std::vector<float>* b =
        layer.bias().empty() ? nullptr
                             : &tensors.find(layer.bias())->second.values;
    double alpha = 0;
    if (layer.activation() == v1::LEAKY_RELU) {
      alpha = layer.has_alpha() ? layer.alpha() : 0.01f;
    } else if (layer.activation() == v1::ELU) {
      alpha = layer.has_alpha() ? layer.alpha() : 1.0f;
    }
    std::vector<double> next(static_cast<size_t>(rows * units));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t u = 0; u < units; ++u) {
        double acc = b != nullptr ? (*b)[u] : 0.0;
        for (int64_t k = 0; k < in; ++k) {
          const float wk = config.weight_layout() == v1::IN_OUT
                               ? w[k * units + u]
                               : w[u * in + k];
          acc += static_cast<double>(wk) * current[r * in + k];
        }
        next[r * units + u] = acc;
      }
      ReferenceActivation(layer.activation(), alpha,
                          std::span<double>(next).subspan(r * units, units));
    }
    current = std::move(next);
    in = units;
  }
  return current;
}

double MaxRowRelativeError(std::span<const float> actual,
                           std::span<const double> expected, int64_t rows) {
  const size_t cols = expected.size() / static_cast<size_t>(rows);
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double scale = 1e-6;
    double diff = 0;
    for (size_t c = 0; c < cols; ++c) {
      const size_t i = r * cols + c;
      scale = std::max(scale, std::abs(expected[i]));
      if (!std::isfinite(actual[i]))
        return INFINITY;  // NaN would compare false.
      diff = std::max(diff, std::abs(actual[i] - expected[i]));
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

}  // namespace nnserve::testing
