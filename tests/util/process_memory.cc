// VmRSS from /proc/<pid>/status.
#include "tests/util/process_memory.h"

#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace nnserve::testing {

namespace {

// The "<field>: <n> kB" line of /proc/<pid>/status, in bytes.
absl::StatusOr<int64_t> StatusBytes(pid_t pid, absl::string_view field) {
  const std::string path = absl::StrCat("/proc/", pid, "/status");
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  const std::string prefix = absl::StrCat(field, ":");
  std::string line;
  while (std::getline(in, line)) {
    // "VmRSS:\t   12345 kB"
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, prefix)) continue;
    rest = absl::StripAsciiWhitespace(rest);
    int64_t kib = 0;
    if (!absl::ConsumeSuffix(&rest, " kB") ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kib)) {
      return absl::InternalError(absl::StrCat(path, ": expected '", field,
                                              ": <n> kB', found '", line, "'"));
    }
    return kib * 1024;
  }
  return absl::InternalError(absl::StrCat(path, " has no ", field, " line"));
}

}  // namespace

absl::StatusOr<int64_t> ResidentBytes(pid_t pid) {
  return StatusBytes(pid, "VmRSS");
}

absl::StatusOr<int64_t> PeakResidentBytes(pid_t pid) {
  return StatusBytes(pid, "VmHWM");
}

}  // namespace nnserve::testing
