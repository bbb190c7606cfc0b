// grpc::Status -> absl::Status conversion for the client: the ONE place where
// gRPC status codes become absl status codes (their names are in
// common/code_names.h). Pure functions; thread-safe.
#ifndef NNSERVE_CLIENT_STATUS_H_
#define NNSERVE_CLIENT_STATUS_H_

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace nnserve::client {

// Maps the gRPC code to the absl code with the same number and name (the two
// enumerations are defined identically) and keeps the message. Codes outside
// the known range become UNKNOWN with the original number in the message.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace nnserve::client

#endif  // NNSERVE_CLIENT_STATUS_H_
