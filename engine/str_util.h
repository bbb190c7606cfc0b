// Used by engine/ and server/: bridges std::string_view to absl::string_view.
// The Debian Abseil build has its own absl::string_view (not an alias of
// std::string_view), so std::string_view arguments to absl::StrCat and
// friends must be converted. Stateless; thread-safe.
#ifndef NNSERVE_ENGINE_STR_UTIL_H_
#define NNSERVE_ENGINE_STR_UTIL_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace nnserve::engine {

inline absl::string_view Sv(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_STR_UTIL_H_
