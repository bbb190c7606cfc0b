#include "common/exceptions.h"

#include <new>

#include "absl/strings/str_cat.h"
#include "common/str_util.h"

namespace nnserve {

absl::Status StatusFromException(const std::exception& error,
                                 std::string_view what) {
  if (dynamic_cast<const std::bad_alloc*>(&error) != nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory while ", Sv(what)));
  }
  return absl::InternalError(
      absl::StrCat(Sv(what), " failed: ", Clip(error.what(), 200)));
}

absl::Status StatusFromUnknownException(std::string_view what) {
  return absl::InternalError(
      absl::StrCat(Sv(what), " failed: an unknown exception was thrown"));
}

}  // namespace nnserve
