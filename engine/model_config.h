// Reads config.pbtxt (nnserve.v1.ModelConfig in protobuf text format) from an
// in-memory buffer. Stateless; thread-safe.
#ifndef NNSERVE_ENGINE_MODEL_CONFIG_H_
#define NNSERVE_ENGINE_MODEL_CONFIG_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "nnserve/v1/model_config.pb.h"

namespace nnserve::engine {

// Parses the text. Syntax errors, unknown fields and unknown enum values
// (e.g. `activation: SWISH`) are InvalidArgument naming `source`, the line
// and column, and for activations the accepted names. Does not validate
// semantics; see ValidateModelConfig in model_spec.h.
absl::StatusOr<v1::ModelConfig> ParseModelConfig(std::string_view text,
                                                 std::string_view source);

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_MODEL_CONFIG_H_
