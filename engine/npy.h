// Parser for NumPy .npy files (format versions 1.0, 2.0 and 3.0).
// Stateless; thread-safe. Works on an in-memory buffer so fuzzers can drive it.
//
// Accepts little-endian '<f4', '<f8' and '<f2' (NumPy has no bf16 dtype;
// use safetensors for BF16). fortran_order True arrays are transposed into
// C order. Every header field is checked against the buffer
// before anything is read or allocated.
#ifndef NNSERVE_ENGINE_NPY_H_
#define NNSERVE_ENGINE_NPY_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "engine/tensor.h"

namespace nnserve::engine {

// Parses one array. `source` names the file in error messages.
// Errors are InvalidArgument and say what was found and what was expected.
absl::StatusOr<Tensor> ParseNpy(std::string_view bytes,
                                std::string_view source);

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_NPY_H_
