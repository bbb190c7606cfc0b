// Test helpers that write weight files (safetensors and .npy) from f32
// tensors, converting to the requested on-disk dtype. Used by tests of the
// parsers, the model loader, the repository and the server. Stateless
// functions; thread-safe (WriteFile is as safe as the filesystem path).
#ifndef NNSERVE_TESTS_UTIL_TENSOR_FILES_H_
#define NNSERVE_TESTS_UTIL_TENSOR_FILES_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "formats/tensor.h"

namespace nnserve::testing {

// A complete safetensors file holding every tensor in `tensors` (in name
// order, contiguous data) stored as `dtype` (F32, F64, F16 or BF16; f32
// values are rounded to nearest-even for F16/BF16). `metadata` becomes the
// optional "__metadata__" object.
std::string SafetensorsBytes(
    const formats::TensorMap& tensors, formats::DType dtype,
    const std::map<std::string, std::string>& metadata = {});

// A complete .npy file for `t` stored as `dtype` (F32, F64 or F16 only;
// throws std::invalid_argument for BF16), format version `major_version`
// (1, 2 or 3). With `fortran_order` the data is written column-major and the
// header says so, as NumPy does for Fortran-contiguous arrays.
std::string NpyBytes(const formats::Tensor& t, formats::DType dtype,
                     int major_version = 1, bool fortran_order = false);

// Writes `bytes` to `path`, creating parent directories. Throws
// std::runtime_error naming the path on failure.
void WriteFile(const std::filesystem::path& path, std::string_view bytes);

// f32 -> IEEE binary16 / bfloat16 bits, round to nearest, ties to even.
uint16_t FloatToHalf(float value);
uint16_t FloatToBf16(float value);

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_UTIL_TENSOR_FILES_H_
