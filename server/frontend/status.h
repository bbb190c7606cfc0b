// Conversion of absl::Status (the error type every nnserve module returns)
// into grpc::Status. This is the ONE place where gRPC codes are chosen for
// errors. Stateless functions;
// thread-safe.
#ifndef NNSERVE_SERVER_FRONTEND_STATUS_H_
#define NNSERVE_SERVER_FRONTEND_STATUS_H_

#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace nnserve::server {

// Maps the absl code to the gRPC code with the same meaning (the numeric
// values coincide by design) and keeps the message. OK maps to OK with an
// empty message; codes outside the canonical range map to UNKNOWN.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_FRONTEND_STATUS_H_
