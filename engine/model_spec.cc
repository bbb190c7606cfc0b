// Config validation and the config + tensors join (see model_spec.h).
#include "engine/model_spec.h"

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/str_util.h"

namespace nnserve::engine {
namespace {

// Upper bound on input.size and layer units: keeps a typo from turning into
// a multi-gigabyte allocation before the tensors are even looked at.
constexpr int64_t kMaxWidth = int64_t{1} << 20;

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

bool IsAlnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9');
}

std::string AcceptedActivations() {
  std::vector<std::string> names;
  for (Activation a :
       {Activation::kIdentity, Activation::kRelu, Activation::kLeakyRelu,
        Activation::kElu, Activation::kSigmoid, Activation::kTanh,
        Activation::kGelu, Activation::kSoftmax}) {
    names.emplace_back(ActivationName(a));
  }
  return absl::StrJoin(names, ", ");
}

// Maps the config enum; false for UNSPECIFIED and unknown numeric values.
bool ToActivation(int value, Activation* out) {
  switch (value) {
    case v1::IDENTITY:
      *out = Activation::kIdentity;
      return true;
    case v1::RELU:
      *out = Activation::kRelu;
      return true;
    case v1::LEAKY_RELU:
      *out = Activation::kLeakyRelu;
      return true;
    case v1::ELU:
      *out = Activation::kElu;
      return true;
    case v1::SIGMOID:
      *out = Activation::kSigmoid;
      return true;
    case v1::TANH:
      *out = Activation::kTanh;
      return true;
    case v1::GELU:
      *out = Activation::kGelu;
      return true;
    case v1::SOFTMAX:
      *out = Activation::kSoftmax;
      return true;
    default:
      return false;
  }
}

absl::Status ConfigError(std::string_view source, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(source), ": ", Sv(what)));
}

std::string LayerRef(const v1::LayerConfig& layer, int index) {
  return absl::StrCat("layer ", index, " '", layer.name(), "'");
}

absl::Status ValidateLayer(const v1::LayerConfig& layer, int index,
                           std::string_view source) {
  const std::string ref = LayerRef(layer, index);
  if (layer.units() <= 0 || layer.units() > kMaxWidth) {
    return ConfigError(source, absl::StrCat(ref, ": units is ", layer.units(),
                                            ", expected 1..", kMaxWidth));
  }
  Activation activation;
  if (!ToActivation(layer.activation(), &activation)) {
    std::string found =
        layer.activation() == v1::ACTIVATION_UNSPECIFIED
            ? std::string("unset (ACTIVATION_UNSPECIFIED)")
            : absl::StrCat("unknown value ", layer.activation());
    return ConfigError(
        source, absl::StrCat(ref, ": activation is ", found,
                             ", expected one of ", AcceptedActivations()));
  }
  if (layer.has_alpha()) {
    if (activation != Activation::kLeakyRelu &&
        activation != Activation::kElu) {
      return ConfigError(
          source, absl::StrCat(ref, ": alpha is set but activation is ",
                               Sv(ActivationName(activation)),
                               "; alpha applies only to LEAKY_RELU and ELU"));
    }
    if (!std::isfinite(layer.alpha())) {
      return ConfigError(source, absl::StrCat(ref, ": alpha is ", layer.alpha(),
                                              ", expected a finite number"));
    }
  }
  if (layer.weight().empty()) {
    return ConfigError(source,
                       absl::StrCat(ref, ": weight tensor name is empty"));
  }
  if (!IsValidTensorName(layer.weight())) {
    return ConfigError(
        source,
        absl::StrCat(ref, ": weight tensor name '", layer.weight(),
                     "' is invalid, expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} "
                     "and not '.' or '..'"));
  }
  if (!layer.bias().empty() && !IsValidTensorName(layer.bias())) {
    return ConfigError(
        source,
        absl::StrCat(ref, ": bias tensor name '", layer.bias(),
                     "' is invalid, expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} "
                     "and not '.' or '..'"));
  }
  return absl::OkStatus();
}

// "[10, 32]" for a weight's expected shape in the stored layout.
std::vector<int64_t> ExpectedWeightShape(WeightLayout layout, int64_t units,
                                         int64_t in) {
  if (layout == WeightLayout::kOutIn) return {units, in};
  return {in, units};
}

// First non-finite value in `t`, as an error naming tensor, index and value.
absl::Status CheckFinite(const formats::Tensor& t, std::string_view tensor_name,
                         std::string_view source) {
  for (size_t i = 0; i < t.values.size(); ++i) {
    if (!std::isfinite(t.values[i])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: tensor '%s' has non-finite value %f at flat index %d, "
          "expected finite values only",
          Sv(source), Sv(tensor_name), t.values[i], i));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view ActivationName(Activation activation) {
  switch (activation) {
    case Activation::kIdentity:
      return "IDENTITY";
    case Activation::kRelu:
      return "RELU";
    case Activation::kLeakyRelu:
      return "LEAKY_RELU";
    case Activation::kElu:
      return "ELU";
    case Activation::kSigmoid:
      return "SIGMOID";
    case Activation::kTanh:
      return "TANH";
    case Activation::kGelu:
      return "GELU";
    case Activation::kSoftmax:
      return "SOFTMAX";
  }
  return "UNKNOWN";
}

v1::Activation ToConfigActivation(Activation activation) {
  switch (activation) {
    case Activation::kIdentity:
      return v1::IDENTITY;
    case Activation::kRelu:
      return v1::RELU;
    case Activation::kLeakyRelu:
      return v1::LEAKY_RELU;
    case Activation::kElu:
      return v1::ELU;
    case Activation::kSigmoid:
      return v1::SIGMOID;
    case Activation::kTanh:
      return v1::TANH;
    case Activation::kGelu:
      return v1::GELU;
    case Activation::kSoftmax:
      return v1::SOFTMAX;
  }
  return v1::ACTIVATION_UNSPECIFIED;
}

v1::WeightLayout ToConfigWeightLayout(WeightLayout layout) {
  return layout == WeightLayout::kInOut ? v1::IN_OUT : v1::OUT_IN;
}

std::string_view WeightLayoutName(WeightLayout layout) {
  return layout == WeightLayout::kOutIn ? "OUT_IN" : "IN_OUT";
}

bool IsValidModelName(std::string_view name) {
  if (name.empty() || name.size() > 64 || !IsAlnum(name[0])) return false;
  for (char c : name) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

bool IsValidTensorName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  if (name == "." || name == "..") return false;
  if (!(IsAlnum(name[0]) || name[0] == '_')) return false;
  for (char c : name) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

absl::Status ValidateModelConfig(const v1::ModelConfig& config,
                                 std::string_view source) {
  if (!IsValidModelName(config.name())) {
    return ConfigError(source, absl::StrCat("model name '", config.name(),
                                            "' is invalid, expected "
                                            "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"));
  }
  if (config.input().name().empty()) {
    return ConfigError(source, "input.name is empty, expected a name");
  }
  if (config.input().size() <= 0 || config.input().size() > kMaxWidth) {
    return ConfigError(source,
                       absl::StrCat("input.size is ", config.input().size(),
                                    ", expected 1..", kMaxWidth));
  }
  if (config.weight_layout() != v1::OUT_IN &&
      config.weight_layout() != v1::IN_OUT) {
    return ConfigError(source, absl::StrCat("weight_layout is unknown value ",
                                            config.weight_layout(),
                                            ", expected OUT_IN or IN_OUT"));
  }
  if (config.layers_size() == 0) {
    return ConfigError(source, "no layers, expected at least one");
  }
  std::set<std::string, std::less<>> names;
  for (int i = 0; i < config.layers_size(); ++i) {
    const v1::LayerConfig& layer = config.layers(i);
    if (layer.name().empty()) {
      return ConfigError(source,
                         absl::StrCat("layer ", i, " has an empty name"));
    }
    if (!names.insert(layer.name()).second) {
      return ConfigError(source,
                         absl::StrCat("layer ", i, " name '", layer.name(),
                                      "' is used by an earlier layer, "
                                      "expected unique layer names"));
    }
    if (absl::Status s = ValidateLayer(layer, i, source); !s.ok()) return s;
  }
  const int64_t last_units = config.layers().rbegin()->units();
  const v1::OutputConfig& output = config.output();
  if (output.size() != 0 && output.size() != last_units) {
    return ConfigError(source,
                       absl::StrCat("output.size is ", output.size(),
                                    ", expected 0 (unset) or ", last_units,
                                    " (units of the last layer '",
                                    config.layers().rbegin()->name(), "')"));
  }
  if (output.labels_size() != 0 && output.labels_size() != last_units) {
    return ConfigError(source,
                       absl::StrCat("output.labels has ", output.labels_size(),
                                    " entries, expected 0 or ", last_units,
                                    " (units of the last layer '",
                                    config.layers().rbegin()->name(), "')"));
  }
  if (!FromConfigPrecision(config.precision()).has_value()) {
    return ConfigError(
        source, absl::StrCat("precision is unknown value ", config.precision(),
                             ", expected FP32, BF16 or INT8"));
  }
  if (!std::isfinite(config.max_precision_deviation()) ||
      config.max_precision_deviation() < 0) {
    return ConfigError(
        source, absl::StrCat("max_precision_deviation is ",
                             config.max_precision_deviation(),
                             ", expected a finite value >= 0 (0 = no limit)"));
  }
  const v1::DynamicBatching& batching = config.dynamic_batching();
  if (batching.max_batch_rows() < 0 || batching.max_queue_delay_us() < 0 ||
      batching.max_queue_size() < 0) {
    return ConfigError(source,
                       "dynamic_batching has a negative value, expected "
                       "values >= 0 (0 = server default)");
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelSpec> BuildModelSpec(const v1::ModelConfig& config,
                                         formats::TensorMap tensors,
                                         std::string_view source) {
  if (absl::Status s = ValidateModelConfig(config, source); !s.ok()) return s;

  ModelSpec spec;
  spec.name = config.name();
  spec.input_name = config.input().name();
  spec.input_size = config.input().size();
  spec.output_name = config.output().name();
  spec.labels.assign(config.output().labels().begin(),
                     config.output().labels().end());
  spec.weight_layout = config.weight_layout() == v1::IN_OUT
                           ? WeightLayout::kInOut
                           : WeightLayout::kOutIn;
  spec.precision = *FromConfigPrecision(config.precision());
  spec.max_precision_deviation = config.max_precision_deviation();

  // Every referenced tensor must exist; nothing else may.
  std::set<std::string, std::less<>> referenced;
  std::map<std::string, int, std::less<>> uses;  // Single-use ones are moved.
  for (const v1::LayerConfig& layer : config.layers()) {
    referenced.insert(layer.weight());
    ++uses[layer.weight()];
    if (!layer.bias().empty()) {
      referenced.insert(layer.bias());
      ++uses[layer.bias()];
    }
  }
  // Takes a tensor's values: moved if no other layer references it.
  auto take = [&](const std::string& name) {
    std::vector<float>& values = tensors.find(name)->second.values;
    if (uses[name] == 1) return std::move(values);
    return std::vector<float>(values);
  };
  // Missing first: its message lists what the file does hold, which also
  // explains a misnamed tensor.
  for (const std::string& name : referenced) {
    if (!tensors.contains(name)) {
      std::vector<std::string> present;
      for (const auto& [n, t] : tensors) present.push_back(n);
      return absl::InvalidArgumentError(absl::StrCat(
          Sv(source), ": tensor '", name,
          "' referenced by the config is missing; tensors present: [",
          absl::StrJoin(present, ", "), "]"));
    }
  }
  std::vector<std::string> extra;
  for (const auto& [name, tensor] : tensors) {
    if (!referenced.contains(name)) extra.push_back(name);
  }
  if (!extra.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(source), ": tensor(s) not referenced by the config: '",
        absl::StrJoin(extra, "', '"),
        "'; expected only the weight and bias tensors the layers name"));
  }
  for (const std::string& name : referenced) {
    if (absl::Status s = CheckFinite(tensors.find(name)->second, name, source);
        !s.ok()) {
      return s;
    }
  }

  int64_t in = spec.input_size;
  std::string in_origin = absl::StrCat("input '", config.input().name(), "'");
  for (int i = 0; i < config.layers_size(); ++i) {
    const v1::LayerConfig& lc = config.layers(i);
    LayerSpec layer;
    layer.name = lc.name();
    layer.input_size = in;
    layer.units = lc.units();
    ToActivation(lc.activation(), &layer.activation);
    if (layer.activation == Activation::kLeakyRelu) {
      layer.alpha = lc.has_alpha() ? lc.alpha() : 0.01f;
    } else if (layer.activation == Activation::kElu) {
      layer.alpha = lc.has_alpha() ? lc.alpha() : 1.0f;
    }

    const formats::Tensor& w = tensors.find(lc.weight())->second;
    const std::vector<int64_t> expected =
        ExpectedWeightShape(spec.weight_layout, layer.units, in);
    if (w.shape != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          Sv(source), ": layer '", lc.name(), "' weight '", lc.weight(),
          "' has shape ", formats::ShapeString(w.shape), ", expected ",
          formats::ShapeString(expected), " (",
          Sv(WeightLayoutName(spec.weight_layout)),
          spec.weight_layout == WeightLayout::kOutIn ? ": [units, in]"
                                                     : ": [in, units]",
          "; in = ", in, " from ", in_origin, ")"));
    }
    if (spec.weight_layout == WeightLayout::kOutIn) {
      layer.weight = take(lc.weight());
    } else {
      // [in, units] -> [units, in].
      layer.weight.resize(w.values.size());
      for (int64_t r = 0; r < in; ++r) {
        for (int64_t u = 0; u < layer.units; ++u) {
          layer.weight[u * in + r] = w.values[r * layer.units + u];
        }
      }
    }
    if (!lc.bias().empty()) {
      const formats::Tensor& b = tensors.find(lc.bias())->second;
      if (b.shape != std::vector<int64_t>{layer.units}) {
        return absl::InvalidArgumentError(absl::StrCat(
            Sv(source), ": layer '", lc.name(), "' bias '", lc.bias(),
            "' has shape ", formats::ShapeString(b.shape), ", expected [",
            layer.units, "] ([units])"));
      }
      layer.bias = take(lc.bias());
    }
    in = layer.units;
    in_origin = absl::StrCat("layer '", lc.name(), "'");
    spec.layers.push_back(std::move(layer));
  }
  return spec;
}
}  // namespace nnserve::engine
