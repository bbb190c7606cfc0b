// ModelSpec: a validated, engine-ready description of a dense model — the
// config joined with its tensors, weights canonicalised to [units, in]
// row-major f32. Built once at load; a plain immutable value afterwards.
//
// BuildModelSpec is where the config and the tensors are checked against
// each other: names, shapes, consecutive layer sizes, missing and extra
// tensors, NaN/Inf values. It is stateless and thread-safe.
#ifndef NNSERVE_ENGINE_MODEL_SPEC_H_
#define NNSERVE_ENGINE_MODEL_SPEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/precision.h"
#include "formats/tensor.h"
#include "nnserve/v1/model_config.pb.h"

namespace nnserve::engine {

enum class Activation {
  kIdentity,
  kRelu,
  kLeakyRelu,
  kElu,
  kSigmoid,
  kTanh,
  kGelu,  // erf form
  kSoftmax,
};

// "IDENTITY", "RELU", ... (the config spelling).
std::string_view ActivationName(Activation activation);

enum class WeightLayout { kOutIn, kInOut };
std::string_view WeightLayoutName(WeightLayout layout);  // "OUT_IN" / "IN_OUT"

// The config-schema spelling of an activation / layout (for describing a
// loaded model in protobuf form).
v1::Activation ToConfigActivation(Activation activation);
v1::WeightLayout ToConfigWeightLayout(WeightLayout layout);

struct LayerSpec {
  std::string name;
  int64_t input_size = 0;
  int64_t units = 0;
  Activation activation = Activation::kIdentity;
  float alpha = 0.0f;         // LEAKY_RELU / ELU parameter (defaults applied).
  std::vector<float> weight;  // [units, input_size] row-major.
  std::vector<float> bias;    // [units], or empty when the layer has no bias.
};

struct ModelSpec {
  std::string name;
  std::string input_name;
  int64_t input_size = 0;
  std::string output_name;
  std::vector<std::string> labels;  // Empty, or one per output unit.
  WeightLayout weight_layout = WeightLayout::kOutIn;  // As stored on disk.
  std::vector<LayerSpec> layers;                      // At least one.
  Precision precision = Precision::kFp32;             // As configured.
  float max_precision_deviation = 0;                  // 0 = no limit.
  // The batch the deviation report is measured on (see probe.h); empty =
  // a fixed-seed batch is generated at load.
  ProbeBatch probe;

  int64_t output_size() const {
    return layers.empty() ? 0 : layers.back().units;
  }
};

// True if `name` is a valid model name: [A-Za-z0-9][A-Za-z0-9_.-]{0,63}.
bool IsValidModelName(std::string_view name);
// True if `name` is a safe tensor name (also used as a .npy file stem):
// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, never "." / ".." and no path separators.
bool IsValidTensorName(std::string_view name);

// Checks the config on its own (names, sizes, activations, labels, alpha).
// `source` names the config file in messages.
absl::Status ValidateModelConfig(const v1::ModelConfig& config,
                                 std::string_view source);

// Validates `config` (as ValidateModelConfig) and joins it with `tensors`.
// Every tensor the config names must be present with the exact shape; no
// other tensor may be present; all values must be finite. `source` names
// the weight file(s) in messages, e.g. "models/digits/1/model.safetensors".
absl::StatusOr<ModelSpec> BuildModelSpec(const v1::ModelConfig& config,
                                         formats::TensorMap tensors,
                                         std::string_view source);

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_MODEL_SPEC_H_
