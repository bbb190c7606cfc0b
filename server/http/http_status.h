// The HTTP status for an absl::Status: the ONE place where the REST
// endpoint chooses HTTP codes for errors. It follows the mapping that
// grpc-gateway and Google's HTTP APIs use for the canonical codes (the
// Open Inference Protocol names 400 for bad requests; 404, 429 and 503
// follow from it), so a gRPC code and its REST twin always agree.
// Stateless; thread-safe.
#ifndef NNSERVE_SERVER_HTTP_HTTP_STATUS_H_
#define NNSERVE_SERVER_HTTP_HTTP_STATUS_H_

#include "absl/status/status.h"

namespace nnserve::server {

// OK 200; INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE 400;
// UNAUTHENTICATED 401; PERMISSION_DENIED 403; NOT_FOUND 404;
// ALREADY_EXISTS, ABORTED 409; RESOURCE_EXHAUSTED 429; CANCELLED 499;
// UNIMPLEMENTED 501; UNAVAILABLE 503; DEADLINE_EXCEEDED 504; others 500.
int HttpStatusCode(absl::StatusCode code);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_HTTP_HTTP_STATUS_H_
