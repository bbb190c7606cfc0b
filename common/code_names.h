// Canonical names of status codes, shared by server (metric labels, logs)
// and client (CLI and load reports). gRPC and absl number their codes
// identically (OK = 0 ... UNAUTHENTICATED = 16), so one table serves both;
// callers pass the number. Stateless; thread-safe.
#ifndef NNSERVE_COMMON_CODE_NAMES_H_
#define NNSERVE_COMMON_CODE_NAMES_H_

#include <string>

namespace nnserve {

// "OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", ... for 0..16;
// "CODE_<n>" for numbers outside the canonical range.
std::string StatusCodeName(int code);

}  // namespace nnserve

#endif  // NNSERVE_COMMON_CODE_NAMES_H_
