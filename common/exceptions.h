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
#include <utility>

#include "absl/status/status.h"

namespace nnserve {

// The status for `error`, caught while doing `what` (e.g. "running model
// 'm' with 64 rows"): "out of memory while <what>" (RESOURCE_EXHAUSTED) for
// std::bad_alloc, "<what> failed: <error.what()>" (INTERNAL) otherwise.
absl::Status StatusFromException(const std::exception& error,
                                 std::string_view what);

// The same for an exception that is not a std::exception (`catch (...)`).
absl::Status StatusFromUnknownException(std::string_view what);

// Runs `fn` (which returns an absl::Status) and returns its status, or the
// status of whatever it throws (see above) — for the bodies of entry points
// such as gRPC handlers, where an escaping exception would end the process
// or leave the call unanswered.
template <typename Fn>
absl::Status StatusOfCall(std::string_view what, Fn&& fn) {
  try {
    return std::forward<Fn>(fn)();
  } catch (const std::exception& e) {
    return StatusFromException(e, what);
  } catch (...) {
    return StatusFromUnknownException(what);
  }
}

}  // namespace nnserve

#endif  // NNSERVE_COMMON_EXCEPTIONS_H_
