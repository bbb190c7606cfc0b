// FloatMatrix: a dense row-major [rows, cols] float32 matrix, the shape in
// which the client and the offline commands read user input (one row per
// example). ParseNpyMatrix reads it from .npy bytes with the shared .npy
// parser (formats/npy.h); ParseCsvMatrix (formats/csv.h) from CSV text.
// Value type and pure functions; thread-safe.
#ifndef NNSERVE_FORMATS_MATRIX_H_
#define NNSERVE_FORMATS_MATRIX_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nnserve::formats {

struct FloatMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> values;  // rows * cols elements, row-major.
};

// True when `bytes` starts with the .npy magic string "\x93NUMPY".
bool LooksLikeNpy(std::string_view bytes);

// Parses a .npy file (any dtype, version and order ParseNpy accepts; a
// Fortran-order array is transposed) as a matrix: a 1-D array [n] is one
// row of n values, a 2-D array [r, c] is r rows. Other ranks and arrays
// without rows or columns are InvalidArgument naming `source` and the
// shape. Values are passed through as stored (NaN and Inf included: the
// engine's input check refuses them with their row and column).
absl::StatusOr<FloatMatrix> ParseNpyMatrix(std::string_view bytes,
                                           std::string_view source);

}  // namespace nnserve::formats

#endif  // NNSERVE_FORMATS_MATRIX_H_
