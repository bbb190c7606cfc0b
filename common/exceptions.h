// Exceptions → status values, for the boundaries where nnserve catches
// what a library or the allocator throws (the engine's create and forward
// entry points, the scheduler's workers, every gRPC handler body): an
// allocation failure is RESOURCE_EXHAUSTED (the caller may retry later or
// with less), anything else INTERNAL. One call that throws never takes the
// process down. Stateless; thread-safe.
#ifndef NNSERVE_COMMON_EXCEPTIONS_H_
#define NNSERVE_COMMON_EXCEPTIONS_H_

#include <exception>
#include <string_view>

#include "absl/status/status.h"

namespace nnserve {

// The status for `error`, caught while doing `what` (e.g. "running model
// 'm' with 64 rows"): "out of memory while <what>" (RESOURCE_EXHAUSTED) for
// std::bad_alloc, "<what> failed: <error.what()>" (INTERNAL) otherwise.
absl::Status StatusFromException(const std::exception& error,
                                 std::string_view what);

// The same for an exception that is not a std::exception (`catch (...)`).
absl::Status StatusFromUnknownException(std::string_view what);

}  // namespace nnserve

#endif  // NNSERVE_COMMON_EXCEPTIONS_H_
