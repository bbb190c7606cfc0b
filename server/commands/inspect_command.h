// `nnserve inspect MODEL_DIR [--version N]`: loads one version of a model
// (default: the newest) through the engine — with full validation — and
// prints a human-readable description: model header, a layer table (name,
// in→out, activation, parameter count, weight and bias mean/std/min/max)
// and totals (parameters, bytes, load time). Stateless; thread-safe.
#ifndef NNSERVE_SERVER_COMMANDS_INSPECT_COMMAND_H_
#define NNSERVE_SERVER_COMMANDS_INSPECT_COMMAND_H_

#include <cstdint>
#include <filesystem>
#include <ostream>

#include "absl/status/status.h"
#include "engine/model.h"

namespace nnserve::server {

// Loads `model_dir` version `version` (0 = newest) and prints the report to
// `out`. Returns the engine's validation error for a bad model.
absl::Status RunInspect(const std::filesystem::path& model_dir, int64_t version,
                        std::ostream& out);

// The report for an already loaded model (used by RunInspect).
void PrintModelReport(const engine::ModelInfo& info, std::ostream& out);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_COMMANDS_INSPECT_COMMAND_H_
