// Internal to server/: the std::string_view → absl::string_view bridge (see
// engine/str_util.h; Debian's Abseil has its own absl::string_view type).
// Stateless; thread-safe.
#ifndef NNSERVE_SERVER_STR_UTIL_H_
#define NNSERVE_SERVER_STR_UTIL_H_

#include "engine/str_util.h"

namespace nnserve::server {

using engine::Sv;

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_STR_UTIL_H_
