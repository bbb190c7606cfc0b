// gRPC status-code names as they appear in metric labels
// (nnserve_requests_total{code="..."}). Stateless; thread-safe.
#ifndef NNSERVE_SERVER_OBSERVABILITY_CODE_NAMES_H_
#define NNSERVE_SERVER_OBSERVABILITY_CODE_NAMES_H_

#include <string_view>

#include "grpcpp/support/status.h"

namespace nnserve::server {

// The canonical upper-case name of a gRPC code, e.g. "OK",
// "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"; "UNKNOWN" for values outside the
// canonical range. Returns a static string.
std::string_view GrpcCodeName(grpc::StatusCode code);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_OBSERVABILITY_CODE_NAMES_H_
