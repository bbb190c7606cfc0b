// Tensor: a named-less dense f32 array read from a weight file, with the
// shape and the element type it had on disk. Plain value type; not
// synchronized (treat as immutable once built and share freely).
#ifndef NNSERVE_FORMATS_TENSOR_H_
#define NNSERVE_FORMATS_TENSOR_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace nnserve::formats {

// Element types accepted in weight files; all are converted to f32 at load.
enum class DType { kF32, kF64, kF16, kBF16 };

// "F32", "F64", "F16", "BF16" (the safetensors spelling).
std::string_view DTypeName(DType dtype);

struct Tensor {
  std::vector<int64_t> shape;  // Row-major (C order) dimensions.
  std::vector<float> values;   // Product of shape elements, converted to f32.
  DType file_dtype = DType::kF32;
};

// Tensors by name, as found in one safetensors file or a set of .npy files.
using TensorMap = std::map<std::string, Tensor, std::less<>>;

// "[3, 4]" — for error messages.
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace nnserve::formats

#endif  // NNSERVE_FORMATS_TENSOR_H_
