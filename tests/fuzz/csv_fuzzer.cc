// libFuzzer harness for formats/csv.h ParseCsvMatrix: any bytes as CSV
// text. Checks that errors are InvalidArgument naming the source and stay
// short (caller text is clipped), that a parsed matrix is non-empty with
// rows * cols finite values, and that printing it back (%.9g, enough for
// every float32) and parsing that again gives the same bits.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/str_util.h"
#include "formats/csv.h"
#include "tests/fuzz/fuzz_check.h"

namespace {
constexpr std::string_view kSource = "fuzz/rows.csv";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nnserve::formats::FloatMatrix;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<FloatMatrix> matrix =
      nnserve::formats::ParseCsvMatrix(text, kSource);
  if (!matrix.ok()) {
    FUZZ_CHECK(matrix.status().code() == absl::StatusCode::kInvalidArgument,
               "errors are InvalidArgument");
    FUZZ_CHECK(
        absl::StartsWith(matrix.status().message(), nnserve::Sv(kSource)),
        "errors name the source");
    FUZZ_CHECK(matrix.status().message().size() < 512,
               "errors do not echo long input");
    return 0;
  }
  FUZZ_CHECK(matrix->rows > 0 && matrix->cols > 0, "a matrix is not empty");
  FUZZ_CHECK(static_cast<uint64_t>(matrix->rows) *
                     static_cast<uint64_t>(matrix->cols) ==
                 matrix->values.size(),
             "rows * cols == values");
  std::string printed;
  for (int64_t r = 0; r < matrix->rows; ++r) {
    for (int64_t c = 0; c < matrix->cols; ++c) {
      const float v = matrix->values[static_cast<size_t>(r * matrix->cols + c)];
      FUZZ_CHECK(std::isfinite(v), "values are finite");
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%s%.9g", c == 0 ? "" : ",",
                    static_cast<double>(v));
      printed += buffer;
    }
    printed += '\n';
  }
  absl::StatusOr<FloatMatrix> again =
      nnserve::formats::ParseCsvMatrix(printed, kSource);
  FUZZ_CHECK(again.ok(), "printed values parse");
  FUZZ_CHECK(again->rows == matrix->rows && again->cols == matrix->cols,
             "round trip keeps the shape");
  FUZZ_CHECK(std::memcmp(again->values.data(), matrix->values.data(),
                         again->values.size() * sizeof(float)) == 0,
             "round trip keeps every value bit for bit");
  return 0;
}
