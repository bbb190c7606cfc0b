// Tensor helpers. See tensor.h.
#include "formats/tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nnserve::formats {

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF64:
      return "F64";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "UNKNOWN";
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace nnserve::formats
