#include "client/status.h"

#include <array>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace nnserve::client {
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

std::string GrpcCodeName(grpc::StatusCode code) {
  const int number = static_cast<int>(code);
  if (number >= 0 && number < static_cast<int>(kCodeNames.size())) {
    return std::string(kCodeNames[number]);
  }
  return absl::StrCat("CODE_", number);
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const int number = static_cast<int>(status.error_code());
  if (number <= 0 || number >= static_cast<int>(kCodeNames.size())) {
    return absl::UnknownError(absl::StrCat("gRPC status code ", number, ": ",
                                           status.error_message()));
  }
  // absl::StatusCode and grpc::StatusCode share numbers and meanings.
  return absl::Status(static_cast<absl::StatusCode>(number),
                      status.error_message());
}

}  // namespace nnserve::client
