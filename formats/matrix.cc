// .npy bytes -> FloatMatrix. See matrix.h.
#include "formats/matrix.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/str_util.h"
#include "formats/npy.h"
#include "formats/tensor.h"

namespace nnserve::formats {

namespace {
constexpr std::string_view kNpyMagic = "\x93NUMPY";
}  // namespace

bool LooksLikeNpy(std::string_view bytes) {
  return bytes.substr(0, kNpyMagic.size()) == kNpyMagic;
}

absl::StatusOr<FloatMatrix> ParseNpyMatrix(std::string_view bytes,
                                           std::string_view source) {
  absl::StatusOr<Tensor> tensor = ParseNpy(bytes, source);
  if (!tensor.ok()) return tensor.status();
  FloatMatrix matrix;
  if (tensor->shape.size() == 1) {
    matrix.rows = 1;
    matrix.cols = tensor->shape[0];
  } else if (tensor->shape.size() == 2) {
    matrix.rows = tensor->shape[0];
    matrix.cols = tensor->shape[1];
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(source), ": npy: array has shape ", ShapeString(tensor->shape),
        " (rank ", tensor->shape.size(),
        "); expected [rows, features] or [features]"));
  }
  if (matrix.rows == 0 || matrix.cols == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(source), ": npy: array has shape ", ShapeString(tensor->shape),
        ", which holds no values; expected at least one row and one "
        "feature"));
  }
  // ParseNpy checked that the element count matches the data, so rows *
  // cols == values.size() and cannot overflow.
  matrix.values = std::move(tensor->values);
  return matrix;
}

}  // namespace nnserve::formats
