#include "engine/rows.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/str_util.h"

namespace nnserve::engine {

absl::Status CheckFiniteRows(std::span<const float> values, int64_t cols,
                             std::string_view description) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      const int64_t row = static_cast<int64_t>(i) / cols;
      const int64_t column = static_cast<int64_t>(i) % cols;
      return absl::InvalidArgumentError(absl::StrCat(
          Sv(description), ": input row ", row, " column ", column, " is ",
          std::isnan(values[i]) ? "NaN" : "Inf", "; expected finite values"));
    }
  }
  return absl::OkStatus();
}

std::vector<int32_t> ArgmaxPerRow(std::span<const float> values, int64_t rows,
                                  int64_t cols) {
  std::vector<int32_t> classes(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = values.data() + r * cols;
    int32_t best = 0;
    for (int64_t c = 0; c < cols; ++c) {
      if (!std::isfinite(row[c])) {
        best = kNoClass;
        break;
      }
      if (row[c] > row[best]) best = static_cast<int32_t>(c);
    }
    classes[static_cast<size_t>(r)] = best;
  }
  return classes;
}

}  // namespace nnserve::engine
