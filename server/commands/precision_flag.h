// The `--precision` flag of `nnserve run` and `nnserve inspect`: parsing its
// text into an engine precision override. Stateless; thread-safe.
#ifndef NNSERVE_SERVER_COMMANDS_PRECISION_FLAG_H_
#define NNSERVE_SERVER_COMMANDS_PRECISION_FLAG_H_

#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/precision.h"

namespace nnserve::server {

// "" -> nullopt (use the model's config); "fp32" / "bf16" / "int8" in any
// case -> that precision; anything else is InvalidArgument naming the
// accepted values.
absl::StatusOr<std::optional<engine::Precision>> ParsePrecisionFlag(
    std::string_view text);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_COMMANDS_PRECISION_FLAG_H_
