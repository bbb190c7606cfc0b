#include "common/code_names.h"

#include <array>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace nnserve {
namespace {

constexpr std::array<std::string_view, 17> kCodeNames = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

}  // namespace

std::string StatusCodeName(int code) {
  if (code >= 0 && code < static_cast<int>(kCodeNames.size())) {
    return std::string(kCodeNames[code]);
  }
  return absl::StrCat("CODE_", code);
}

}  // namespace nnserve
