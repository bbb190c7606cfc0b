// `nnserve inspect MODEL_DIR [--version N] [--precision P]`: loads one
// version of a model (default: the newest) through the engine — with full
// validation — and prints a human-readable description: model header, a
// layer table (name, in→out, activation, parameter count, weight and bias
// mean/std/min/max), the precision section (requested and effective
// precision, any fallback warning, each layer's oneDNN kernel and, for
// BF16/INT8, its deviation from FP32 on the load-time probe batch) and
// totals (parameters, bytes, load time). Stateless; thread-safe.
#ifndef NNSERVE_SERVER_COMMANDS_INSPECT_COMMAND_H_
#define NNSERVE_SERVER_COMMANDS_INSPECT_COMMAND_H_

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string_view>

#include "absl/status/status.h"
#include "engine/model.h"

namespace nnserve::server {

// Loads `model_dir` version `version` (0 = newest) in the configured
// precision, or `precision` when not empty ("fp32", "bf16", "int8"), and
// prints the report to `out`. Returns the engine's validation error for a
// bad model (including a max_precision_deviation refusal).
absl::Status RunInspect(const std::filesystem::path& model_dir, int64_t version,
                        std::ostream& out, std::string_view precision = "");

// The report for an already loaded model (used by RunInspect).
void PrintModelReport(const engine::ModelInfo& info, std::ostream& out);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_COMMANDS_INSPECT_COMMAND_H_
