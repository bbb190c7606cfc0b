#include "client/status.h"

#include "absl/strings/str_cat.h"
#include "common/code_names.h"

namespace nnserve::client {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const int number = static_cast<int>(status.error_code());
  if (number <= 0 || number > 16) {
    return absl::UnknownError(absl::StrCat("gRPC status code ", number, ": ",
                                           status.error_message()));
  }
  // absl::StatusCode and grpc::StatusCode share numbers and meanings.
  return absl::Status(static_cast<absl::StatusCode>(number),
                      status.error_message());
}

}  // namespace nnserve::client
