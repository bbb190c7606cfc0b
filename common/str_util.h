// Shared by every module: bridges std::string_view to absl::string_view
// (the Debian Abseil build has its own absl::string_view, not an alias of
// std::string_view, so std::string_view arguments to absl::StrCat and
// friends must be converted), and clips caller-supplied text for error
// messages. Stateless; thread-safe.
#ifndef NNSERVE_COMMON_STR_UTIL_H_
#define NNSERVE_COMMON_STR_UTIL_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace nnserve {

inline absl::string_view Sv(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// `text` as it may appear in an error message: text a caller sent (a model
// name, ...) longer than `max_chars` is cut there and marked with its full
// length, so an error never echoes a huge string back (an over-long
// message would exceed HTTP/2 header limits and turn into INTERNAL).
inline std::string Clip(std::string_view text, size_t max_chars = 80) {
  if (text.size() <= max_chars) return std::string(text);
  return absl::StrCat(Sv(text.substr(0, max_chars)), "... (", text.size(),
                      " bytes)");
}

}  // namespace nnserve

#endif  // NNSERVE_COMMON_STR_UTIL_H_
