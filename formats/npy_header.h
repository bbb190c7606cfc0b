// Internal to formats/: the parser for the .npy header dict, used only by
// formats/npy.cc. The header is a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// parsed by a small strict recursive-descent parser (strings, True / False
// and tuples of integers only; exactly the three keys NumPy writes).
// Ownership: ParseHeader reads the caller's text only during the call and
// returns a Header that owns copies of everything it holds. Stateless;
// thread-safe.
#ifndef NNSERVE_FORMATS_NPY_HEADER_H_
#define NNSERVE_FORMATS_NPY_HEADER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "formats/tensor.h"

namespace nnserve::formats::internal {

// "<source>: npy: <message>" as InvalidArgument: the prefix of every .npy
// error, shared by npy.cc and ParseHeader. Abseil here is built without
// std::string_view aliasing: absl::StrCat takes absl::string_view.
absl::Status NpyError(absl::string_view source, absl::string_view message);

// A supported on-disk dtype and its item size in bytes.
struct NpyDType {
  DType dtype;
  size_t size;
};

// The three header fields, checked for type.
struct Header {
  std::string descr;
  NpyDType dtype;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// Parses the header dict `text` (the bytes between the preamble and the
// data, padding included). Errors are InvalidArgument, prefixed by NpyError
// with `source`, and say what was found and what was expected. The shape is
// not checked for negative dimensions or overflow; the caller does that.
absl::StatusOr<Header> ParseHeader(std::string_view text,
                                   absl::string_view source);

}  // namespace nnserve::formats::internal

#endif  // NNSERVE_FORMATS_NPY_HEADER_H_
