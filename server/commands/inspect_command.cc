#include "server/commands/inspect_command.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/model_spec.h"
#include "engine/repository.h"
#include "server/commands/precision_flag.h"

namespace nnserve::server {
namespace {

std::string Stats(const engine::TensorStats& s) {
  return absl::StrFormat("%+.4f/%.4f/%+.4f/%+.4f", s.mean, s.std, s.min, s.max);
}

std::string ActivationText(const engine::LayerInfo& layer) {
  std::string text(engine::ActivationName(layer.activation));
  if (layer.activation == engine::Activation::kLeakyRelu ||
      layer.activation == engine::Activation::kElu) {
    absl::StrAppendFormat(&text, "(%g)", layer.alpha);
  }
  return text;
}

// "1.234e-02", or "inf" / "nan".
std::string Deviation(double value) { return absl::StrFormat("%.3e", value); }

void PrintPrecision(const engine::ModelInfo& info, std::ostream& out) {
  const engine::PrecisionReport& p = info.precision;
  out << "\nprecision: " << engine::PrecisionName(p.effective);
  if (p.requested != p.effective) {
    out << " (requested " << engine::PrecisionName(p.requested) << ")";
  }
  out << " on oneDNN ISA " << p.isa << "\n";
  if (!p.fallback_reason.empty()) {
    out << "warning: " << p.fallback_reason << "\n";
  }
  size_t name_width = 5, kernel_width = 6;
  for (const engine::LayerPrecision& layer : p.layers) {
    name_width = std::max(name_width, layer.name.size());
    kernel_width = std::max(kernel_width, layer.kernel.size());
  }
  const int w = static_cast<int>(name_width);
  const int k = static_cast<int>(kernel_width);
  if (!p.probed()) {
    out << absl::StrFormat("%-*s  %s\n", w, "layer", "kernel");
    for (const engine::LayerPrecision& layer : p.layers) {
      out << absl::StrFormat("%-*s  %s\n", w, layer.name, layer.kernel);
    }
    return;
  }
  out << absl::StrFormat(
      "deviation from FP32 of each layer's output on the probe batch (%s, %d "
      "rows); max_precision_deviation: %s\n",
      p.probe_source, p.probe_rows,
      p.max_precision_deviation > 0
          ? absl::StrFormat("%g (relative L2)", p.max_precision_deviation)
          : std::string("none"));
  out << absl::StrFormat("%-*s  %-*s  %10s  %10s\n", w, "layer", k, "kernel",
                         "max_abs", "rel_l2");
  for (const engine::LayerPrecision& layer : p.layers) {
    out << absl::StrFormat("%-*s  %-*s  %10s  %10s\n", w, layer.name, k,
                           layer.kernel, Deviation(layer.max_abs_deviation),
                           Deviation(layer.relative_l2_deviation));
  }
}

}  // namespace

void PrintModelReport(const engine::ModelInfo& info, std::ostream& out) {
  out << absl::StrFormat(
      "model %s version %d\n"
      "input  '%s' [%d]\n"
      "output '%s' [%d]%s\n"
      "weight layout on disk: %s\n\n",
      info.name, info.version, info.input_name, info.input_size,
      info.output_name, info.output_size,
      info.labels.empty()
          ? std::string()
          : absl::StrCat(" labels: ", absl::StrJoin(info.labels, ",")),
      engine::WeightLayoutName(info.weight_layout));

  size_t name_width = 5;
  for (const engine::LayerInfo& layer : info.layers) {
    name_width = std::max(name_width, layer.name.size());
  }
  const int w = static_cast<int>(name_width);
  out << absl::StrFormat("%-*s  %-12s  %-16s  %12s  %-39s  %s\n", w, "layer",
                         "in->out", "activation", "parameters",
                         "weight mean/std/min/max", "bias mean/std/min/max");
  for (const engine::LayerInfo& layer : info.layers) {
    out << absl::StrFormat(
        "%-*s  %-12s  %-16s  %12d  %-39s  %s\n", w, layer.name,
        absl::StrCat(layer.input_size, "->", layer.output_size),
        ActivationText(layer), layer.parameters, Stats(layer.weight),
        layer.has_bias ? Stats(layer.bias) : std::string("(no bias)"));
  }
  PrintPrecision(info, out);
  out << absl::StrFormat(
      "\ntotal parameters: %d\nweight bytes (f32): %d\nload time: %.3f ms\n",
      info.total_parameters, info.weight_bytes, info.load_seconds * 1e3);
}

absl::Status RunInspect(const std::filesystem::path& model_dir, int64_t version,
                        std::ostream& out, std::string_view precision) {
  absl::StatusOr<std::optional<engine::Precision>> override =
      ParsePrecisionFlag(precision);
  if (!override.ok()) return override.status();
  engine::EngineOptions options;
  options.precision_override = *override;
  auto model = engine::LoadModel(model_dir, version, options);
  if (!model.ok()) return model.status();
  PrintModelReport((*model)->info(), out);
  return absl::OkStatus();
}

}  // namespace nnserve::server
