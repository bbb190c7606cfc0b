#include "client/cli_output.h"

#include <algorithm>
#include <charconv>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace nnserve::cli {
namespace {

std::string Stats(const v1::TensorStats& s) {
  return absl::StrFormat("%.4g/%.4g/%.4g/%.4g", s.mean(), s.std(), s.min(),
                         s.max());
}

// Left-aligned columns separated by two spaces.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

// The double nearest to the shortest decimal that round-trips `value` as a
// float, so JSON shows 0.1 rather than 0.10000000149011612.
double ShortestDouble(float value) {
  char buffer[32];
  const auto [end, error] =
      std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (error != std::errc()) return value;
  double result = value;
  std::from_chars(buffer, end, result);
  return result;
}

// "0.5, -1, 2.25": a row's values, 6 significant digits each.
std::string RowText(const float* row, int64_t cols) {
  return absl::StrJoin(row, row + cols, ", ", [](std::string* s, float v) {
    absl::StrAppendFormat(s, "%.6g", v);
  });
}

}  // namespace

std::string PredictText(const v1::PredictResponse& response,
                        const RowBatch& output, int top_k) {
  std::string out = absl::StrFormat(
      "model %s version %d: %d rows x %d outputs\n", response.model(),
      response.version(), output.rows, output.cols);
  const bool labelled = response.classes_size() == output.rows;
  for (int64_t r = 0; r < output.rows; ++r) {
    const float* row = output.row(r);
    if (labelled) {
      const std::string label =
          r < response.labels_size() ? response.labels(r) : "";
      std::vector<std::string> top;
      for (int64_t c : TopK(row, output.cols, top_k)) {
        top.push_back(absl::StrFormat("%d:%.4f", c, row[c]));
      }
      absl::StrAppendFormat(&out, "row %d: label %s (class %d)  top: %s\n", r,
                            label, response.classes(r),
                            absl::StrJoin(top, "  "));
    } else {
      absl::StrAppendFormat(&out, "row %d: [%s]\n", r,
                            RowText(row, output.cols));
    }
  }
  for (const v1::LayerTensor& layer : response.layers()) {
    absl::StatusOr<RowBatch> values = DecodeTensor(layer.tensor());
    if (!values.ok()) {
      absl::StrAppendFormat(&out, "layer %s: %s\n", layer.name(),
                            values.status().message());
      continue;
    }
    absl::StrAppendFormat(&out, "layer %s: %d rows x %d units\n", layer.name(),
                          values->rows, values->cols);
    for (int64_t r = 0; r < values->rows; ++r) {
      absl::StrAppendFormat(&out, "  row %d: [%s]\n", r,
                            RowText(values->row(r), values->cols));
    }
  }
  return out;
}

nlohmann::json PredictJson(const v1::PredictResponse& response,
                           const RowBatch& output) {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t r = 0; r < output.rows; ++r) {
    nlohmann::json row;
    nlohmann::json values = nlohmann::json::array();
    for (int64_t c = 0; c < output.cols; ++c) {
      values.push_back(ShortestDouble(output.row(r)[c]));
    }
    row["output"] = std::move(values);
    if (r < response.classes_size()) row["class"] = response.classes(r);
    if (r < response.labels_size()) row["label"] = response.labels(r);
    rows.push_back(std::move(row));
  }
  nlohmann::json result = {
      {"model", response.model()},
      {"version", response.version()},
      {"encoding",
       TensorEncoding(response.output()) == Encoding::kRaw ? "raw" : "values"},
      {"rows", std::move(rows)}};
  if (response.layers_size() > 0) {
    nlohmann::json layers = nlohmann::json::object();
    for (const v1::LayerTensor& layer : response.layers()) {
      absl::StatusOr<RowBatch> values = DecodeTensor(layer.tensor());
      if (!values.ok()) continue;
      nlohmann::json layer_rows = nlohmann::json::array();
      for (int64_t r = 0; r < values->rows; ++r) {
        nlohmann::json row = nlohmann::json::array();
        for (int64_t c = 0; c < values->cols; ++c) {
          row.push_back(ShortestDouble(values->row(r)[c]));
        }
        layer_rows.push_back(std::move(row));
      }
      layers[layer.name()] = std::move(layer_rows);
    }
    result["layers"] = std::move(layers);
  }
  return result;
}

namespace {

// "INT8", or "FP32 (requested BF16: <reason>)" after a fallback.
std::string PrecisionText(const v1::ModelInfoResponse& info) {
  std::string text = v1::Precision_Name(info.effective_precision());
  if (info.requested_precision() != info.effective_precision()) {
    absl::StrAppend(&text, " (requested ",
                    v1::Precision_Name(info.requested_precision()), ": ",
                    info.precision_fallback_reason(), ")");
  }
  return text;
}

}  // namespace

std::string ModelInfoText(const v1::ModelInfoResponse& info) {
  std::string out = Table({
      {"model", info.name()},
      {"version",
       absl::StrCat(info.version(), "  (available: ",
                    absl::StrJoin(info.available_versions(), ", "), ")")},
      {"input",
       absl::StrFormat("%s [%d]", info.input_name(), info.input_size())},
      {"output",
       absl::StrFormat("%s [%d]", info.output_name(), info.output_size())},
      {"labels",
       info.labels().empty() ? "-" : absl::StrJoin(info.labels(), ", ")},
      {"weight layout", v1::WeightLayout_Name(info.weight_layout())},
      {"parameters", absl::StrCat(info.total_parameters())},
      {"weight bytes", absl::StrCat(info.weight_bytes())},
      {"load time", absl::StrFormat("%.3f s", info.load_duration_seconds())},
      {"precision", PrecisionText(info)},
  });
  // Reduced-precision models also show each layer's deviation from FP32.
  const bool reduced = info.effective_precision() != v1::FP32;
  std::vector<std::vector<std::string>> layers = {
      {"layer", "in", "out", "activation", "params", "bias",
       "weight mean/std/min/max", "bias mean/std/min/max"}};
  if (reduced) layers.front().push_back("rel. L2 vs FP32");
  for (const v1::LayerInfo& layer : info.layers()) {
    std::string activation = v1::Activation_Name(layer.activation());
    if (layer.activation() == v1::LEAKY_RELU || layer.activation() == v1::ELU) {
      absl::StrAppendFormat(&activation, "(%g)", layer.alpha());
    }
    layers.push_back({layer.name(), absl::StrCat(layer.input_size()),
                      absl::StrCat(layer.output_size()), activation,
                      absl::StrCat(layer.parameters()),
                      layer.has_bias() ? "yes" : "no",
                      Stats(layer.weight_stats()),
                      layer.has_bias() ? Stats(layer.bias_stats()) : "-"});
    if (reduced) {
      layers.back().push_back(
          absl::StrFormat("%.3g", layer.precision_relative_l2_deviation()));
    }
  }
  return absl::StrCat(out, "\n", Table(layers));
}

std::string ModelListText(const v1::ListModelsResponse& list) {
  std::vector<std::vector<std::string>> rows = {
      {"model", "version", "state", "error"}};
  for (const v1::ModelStatus& model : list.models()) {
    if (model.versions().empty()) rows.push_back({model.name(), "-", "-", ""});
    for (const v1::ModelVersionStatus& version : model.versions()) {
      rows.push_back({model.name(), absl::StrCat(version.version()),
                      v1::ModelVersionStatus::State_Name(version.state()),
                      version.error()});
    }
  }
  return Table(rows);
}

std::string LoadModelText(const v1::LoadModelResponse& response) {
  return absl::StrCat("loaded model '", response.model(), "'\n");
}

std::string UnloadModelText(const v1::UnloadModelResponse& response) {
  return absl::StrCat("unloaded model '", response.model(), "'\n");
}

nlohmann::json ProtoJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) {
    return {{"error", std::string(status.message())}};
  }
  return nlohmann::json::parse(text);
}

nlohmann::json HealthJson(std::string_view service, ServingStatus status) {
  return {{"service", std::string(service)},
          {"status", std::string(ServingStatusName(status))}};
}

std::string LoadReportText(const LoadReport& report, std::string_view model,
                           std::string_view encoding, double warmup_seconds) {
  std::vector<std::string> errors;
  for (const auto& [code, count] : report.errors) {
    errors.push_back(absl::StrCat(code, "=", count));
  }
  return absl::StrFormat(
      "bench %s: batch %d (%s), concurrency %d, %.1f s (+%.1f s warm-up)\n"
      "calls       %d ok, %d failed\n"
      "throughput  %.1f calls/s, %.1f rows/s\n"
      "latency us  mean %.1f  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n"
      "client cpu  %.2f s, %.1f us per call\n"
      "errors      %s\n",
      model, report.batch_rows, encoding, report.concurrency, report.seconds,
      warmup_seconds, report.calls, report.failed_calls,
      report.calls_per_second, report.rows_per_second, report.mean_us,
      report.p50_us, report.p90_us, report.p99_us, report.max_us,
      report.client_cpu_seconds, report.client_cpu_us_per_call,
      errors.empty() ? "none" : absl::StrJoin(errors, ", "));
}

nlohmann::json LoadReportJson(const LoadReport& report, std::string_view model,
                              std::string_view encoding,
                              double warmup_seconds) {
  return {{"model", std::string(model)},
          {"encoding", std::string(encoding)},
          {"batch", report.batch_rows},
          {"concurrency", report.concurrency},
          {"duration_seconds", report.seconds},
          {"warmup_seconds", warmup_seconds},
          {"calls", report.calls},
          {"rows", report.rows},
          {"failed_calls", report.failed_calls},
          {"calls_per_second", report.calls_per_second},
          {"rows_per_second", report.rows_per_second},
          {"latency_us",
           {{"mean", report.mean_us},
            {"p50", report.p50_us},
            {"p90", report.p90_us},
            {"p99", report.p99_us},
            {"max", report.max_us}}},
          {"client_cpu_seconds", report.client_cpu_seconds},
          {"client_cpu_us_per_call", report.client_cpu_us_per_call},
          {"errors", report.errors}};
}

}  // namespace nnserve::cli
