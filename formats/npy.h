// Reader and writer for NumPy .npy files (format versions 1.0, 2.0 and 3.0
// are read; 1.0 is written). Stateless; thread-safe. Works on in-memory
// buffers so fuzzers can drive the parser.
//
// Accepts little-endian '<f4', '<f8' and '<f2' (NumPy has no bf16 dtype;
// use safetensors for BF16). fortran_order True arrays are transposed into
// C order. Every header field is checked against the buffer
// before anything is read or allocated.
#ifndef NNSERVE_FORMATS_NPY_H_
#define NNSERVE_FORMATS_NPY_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/tensor.h"

namespace nnserve::formats {

// Parses one array. `source` names the file in error messages.
// Errors are InvalidArgument and say what was found and what was expected.
absl::StatusOr<Tensor> ParseNpy(std::string_view bytes,
                                std::string_view source);

// Serializes a C-order f32 array as a version-1.0 '<f4' .npy file, with the
// header padded so the data starts at a multiple of 64 bytes (as NumPy does).
// Precondition: values.size() equals the product of `shape` (1 for shape {});
// the caller owns that invariant (e.g. a Forward() result and its shape).
std::string SerializeNpy(const std::vector<int64_t>& shape,
                         std::span<const float> values);

}  // namespace nnserve::formats

#endif  // NNSERVE_FORMATS_NPY_H_
