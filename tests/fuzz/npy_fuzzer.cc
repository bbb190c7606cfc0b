// libFuzzer harness for formats/npy.h ParseNpy and formats/matrix.h
// ParseNpyMatrix: any bytes as a .npy file. Checks that errors are
// InvalidArgument naming the source, that a parsed array holds exactly
// product(shape) values fitting in the input, that the matrix view agrees
// with the array, and that SerializeNpy -> ParseNpy round-trips the values
// bit for bit.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/str_util.h"
#include "formats/matrix.h"
#include "formats/npy.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr std::string_view kSource = "fuzz/input.npy";

// Same length and the same bits (NaN payloads included).
bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() ||
          std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void CheckError(const absl::Status& status) {
  FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument,
             "errors are InvalidArgument");
  FUZZ_CHECK(absl::StartsWith(status.message(), nnserve::Sv(kSource)),
             "errors name the source");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nnserve::formats::Tensor;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Tensor> tensor = nnserve::formats::ParseNpy(bytes, kSource);
  absl::StatusOr<nnserve::formats::FloatMatrix> matrix =
      nnserve::formats::ParseNpyMatrix(bytes, kSource);
  if (!tensor.ok()) {
    CheckError(tensor.status());
    FUZZ_CHECK(!matrix.ok(), "a matrix is read only from a valid array");
    return 0;
  }
  uint64_t elements = 1;
  for (int64_t dim : tensor->shape) {
    FUZZ_CHECK(dim >= 0, "dimensions are non-negative");
    elements *= static_cast<uint64_t>(dim);  // Cannot wrap: checked.
  }
  FUZZ_CHECK(elements == tensor->values.size(),
             "an array holds product(shape) values");
  FUZZ_CHECK(tensor->values.size() * 2 <= size, "array data fits in the file");

  if (matrix.ok()) {
    FUZZ_CHECK(matrix->rows > 0 && matrix->cols > 0, "a matrix is not empty");
    FUZZ_CHECK(static_cast<uint64_t>(matrix->rows) *
                       static_cast<uint64_t>(matrix->cols) ==
                   matrix->values.size(),
               "rows * cols == values");
    FUZZ_CHECK(SameBits(matrix->values, tensor->values),
               "the matrix holds the array's values");
  } else {
    CheckError(matrix.status());
  }

  const std::string written =
      nnserve::formats::SerializeNpy(tensor->shape, tensor->values);
  absl::StatusOr<Tensor> again = nnserve::formats::ParseNpy(written, kSource);
  FUZZ_CHECK(again.ok(), "SerializeNpy output parses");
  FUZZ_CHECK(again->shape == tensor->shape, "round trip keeps the shape");
  FUZZ_CHECK(SameBits(again->values, tensor->values),
             "round trip keeps every value bit for bit");
  return 0;
}
