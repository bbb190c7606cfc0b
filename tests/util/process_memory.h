// Memory of a running process as Linux reports it in /proc/<pid>/status,
// for tests that check a server does not grow (e.g. across model reloads)
// or stays within a bound under load (current and peak resident size).
// Stateless functions; thread-safe.
#ifndef NNSERVE_TESTS_UTIL_PROCESS_MEMORY_H_
#define NNSERVE_TESTS_UTIL_PROCESS_MEMORY_H_

#include <sys/types.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace nnserve::testing {

// The resident set size (VmRSS) of process `pid` in bytes. NotFound if the
// process does not exist; Internal if the file has no parsable VmRSS line.
absl::StatusOr<int64_t> ResidentBytes(pid_t pid);

// The peak resident set size (VmHWM) of process `pid` since it started, in
// bytes. Errors as ResidentBytes.
absl::StatusOr<int64_t> PeakResidentBytes(pid_t pid);

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_UTIL_PROCESS_MEMORY_H_
