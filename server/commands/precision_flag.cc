#include "server/commands/precision_flag.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace nnserve::server {

absl::StatusOr<std::optional<engine::Precision>> ParsePrecisionFlag(
    std::string_view text) {
  if (text.empty()) return std::optional<engine::Precision>();
  std::optional<engine::Precision> precision = engine::ParsePrecision(text);
  if (!precision.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--precision is '", std::string(text),
                     "', expected fp32, bf16 or int8 (or none: the model's "
                     "config.pbtxt decides)"));
  }
  return precision;
}

}  // namespace nnserve::server
