#include "client/explain.h"

#include <algorithm>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/rows.h"

namespace nnserve::cli {
namespace {

LayerSummary Summarize(const std::string& name, const std::string& activation,
                       const RowBatch& values, int top_k) {
  LayerSummary s;
  s.name = name;
  s.activation = activation;
  s.rows = values.rows;
  s.units = values.cols;
  std::vector<double> unit_mean(static_cast<size_t>(values.cols), 0.0);
  std::vector<bool> unit_alive(static_cast<size_t>(values.cols), false);
  double sum = 0;
  int64_t zeros = 0;
  s.max = -std::numeric_limits<double>::infinity();
  for (int64_t r = 0; r < values.rows; ++r) {
    const float* row = values.row(r);
    for (int64_t u = 0; u < values.cols; ++u) {
      const double v = row[u];
      sum += v;
      s.max = std::max(s.max, v);
      unit_mean[static_cast<size_t>(u)] += v / static_cast<double>(values.rows);
      if (v == 0) {
        ++zeros;
      } else {
        unit_alive[static_cast<size_t>(u)] = true;
      }
    }
  }
  const double count = static_cast<double>(values.rows * values.cols);
  s.mean = count > 0 ? sum / count : 0;
  s.zero_fraction = count > 0 ? static_cast<double>(zeros) / count : 0;
  s.dead_units = std::count(unit_alive.begin(), unit_alive.end(), false);
  std::vector<int64_t> order(static_cast<size_t>(values.cols));
  for (int64_t u = 0; u < values.cols; ++u) order[static_cast<size_t>(u)] = u;
  const size_t k = std::min(order.size(), static_cast<size_t>(top_k));
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) {
                      return unit_mean[static_cast<size_t>(a)] >
                             unit_mean[static_cast<size_t>(b)];
                    });
  for (size_t i = 0; i < k; ++i) {
    s.top_units.emplace_back(order[i],
                             unit_mean[static_cast<size_t>(order[i])]);
  }
  return s;
}

}  // namespace

absl::StatusOr<std::vector<LayerSummary>> SummarizeLayers(
    const v1::ModelInfoResponse& info, const v1::PredictResponse& response,
    int top_k) {
  std::vector<LayerSummary> summaries;
  for (const v1::LayerTensor& layer : response.layers()) {
    absl::StatusOr<RowBatch> values = DecodeTensor(layer.tensor());
    if (!values.ok()) {
      return absl::DataLossError(
          absl::StrCat("server response: layer '", layer.name(),
                       "': ", values.status().message()));
    }
    std::string activation = "?";
    for (const v1::LayerInfo& described : info.layers()) {
      if (described.name() == layer.name()) {
        activation = v1::Activation_Name(described.activation());
      }
    }
    summaries.push_back(Summarize(layer.name(), activation, *values, top_k));
  }
  return summaries;
}

std::string ExplainText(const v1::PredictResponse& response,
                        const std::vector<LayerSummary>& layers) {
  std::string out =
      absl::StrFormat("model %s version %d: %d rows through %d layers\n",
                      response.model(), response.version(),
                      layers.empty() ? 0 : layers.front().rows, layers.size());
  absl::StrAppendFormat(&out, "%-16s %6s %-11s %10s %10s %7s %6s  %s\n",
                        "layer", "units", "activation", "mean", "max", "zeros",
                        "dead", "top units (mean)");
  for (const LayerSummary& s : layers) {
    const std::string top =
        absl::StrJoin(s.top_units, "  ", [](std::string* o, const auto& unit) {
          absl::StrAppendFormat(o, "%d:%.4g", unit.first, unit.second);
        });
    absl::StrAppendFormat(&out,
                          "%-16s %6d %-11s %10.4g %10.4g %6.1f%% %6d  %s\n",
                          s.name, s.units, s.activation, s.mean, s.max,
                          100.0 * s.zero_fraction, s.dead_units, top);
  }
  return out;
}

nlohmann::json ExplainJson(const v1::PredictResponse& response,
                           const std::vector<LayerSummary>& layers) {
  nlohmann::json out_layers = nlohmann::json::array();
  for (const LayerSummary& s : layers) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& [unit, mean] : s.top_units) {
      top.push_back({{"unit", unit}, {"mean", mean}});
    }
    out_layers.push_back({{"name", s.name},
                          {"activation", s.activation},
                          {"rows", s.rows},
                          {"units", s.units},
                          {"mean", s.mean},
                          {"max", s.max},
                          {"zero_fraction", s.zero_fraction},
                          {"dead_units", s.dead_units},
                          {"top_units", std::move(top)}});
  }
  return {{"model", response.model()},
          {"version", response.version()},
          {"layers", std::move(out_layers)}};
}

}  // namespace nnserve::cli
