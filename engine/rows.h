// Helpers over row-major [rows, cols] float matrices that both the server
// and the offline commands apply to a model's inputs and outputs: the
// finite-value check every input passes before a forward pass, and the
// per-row argmax used for class labels. Stateless; thread-safe.
#ifndef NNSERVE_ENGINE_ROWS_H_
#define NNSERVE_ENGINE_ROWS_H_

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace nnserve::engine {

// OK when every value is finite; otherwise InvalidArgument naming the first
// offending row and column, e.g. "<description>: input row 3 column 7 is
// NaN; expected finite values". `cols` must be > 0.
absl::Status CheckFiniteRows(std::span<const float> values, int64_t cols,
                             std::string_view description);

// What ArgmaxPerRow reports for a row that holds a NaN or an infinity (a
// forward pass that overflowed): such a row has no meaningful largest
// value, and naming class 0 (or whichever index a comparison with NaN
// happens to leave) would be a confident wrong answer.
inline constexpr int32_t kNoClass = -1;

// Index of the largest value in each of the `rows` rows of `values`
// ([rows, cols], row-major); ties go to the lowest index; kNoClass for a
// row with any non-finite value.
std::vector<int32_t> ArgmaxPerRow(std::span<const float> values, int64_t rows,
                                  int64_t cols);

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_ROWS_H_
