// Weight-file writers for tests. See tensor_files.h.
#include "tests/util/tensor_files.h"

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "formats/half.h"
#include "formats/npy.h"
#include "nlohmann/json.hpp"

namespace nnserve::testing {
namespace {

using formats::DType;

size_t ElementCount(const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) {
      throw std::invalid_argument("negative dimension in shape " +
                                  formats::ShapeString(shape));
    }
    count *= static_cast<size_t>(dim);
  }
  return count;
}

void CheckConsistent(const std::string& name, const formats::Tensor& t) {
  if (ElementCount(t.shape) != t.values.size()) {
    throw std::invalid_argument(absl::StrCat(
        "tensor '", name, "' has ", t.values.size(), " values but shape ",
        formats::ShapeString(t.shape), " needs ", ElementCount(t.shape)));
  }
}

void AppendLittleEndian(std::string& out, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

template <typename T>
void AppendRaw(std::string& out, T value) {
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.append(raw, sizeof(T));
}

// Appends `values` encoded as `dtype`, little-endian.
void AppendValues(std::string& out, const std::vector<float>& values,
                  DType dtype) {
  for (float v : values) {
    switch (dtype) {
      case DType::kF32:
        AppendRaw(out, v);
        break;
      case DType::kF64:
        AppendRaw(out, static_cast<double>(v));
        break;
      case DType::kF16:
        AppendLittleEndian(out, FloatToHalf(v), 2);
        break;
      case DType::kBF16:
        AppendLittleEndian(out, FloatToBf16(v), 2);
        break;
    }
  }
}

// C-order values reordered column-major (Fortran order).
std::vector<float> ToFortranOrder(const std::vector<int64_t>& shape,
                                  const std::vector<float>& row_major) {
  std::vector<float> column_major(row_major.size());
  if (row_major.empty()) return column_major;
  std::vector<size_t> stride(shape.size());
  size_t s = 1;
  for (size_t k = 0; k < shape.size(); ++k) {
    stride[k] = s;
    s *= static_cast<size_t>(shape[k]);
  }
  std::vector<int64_t> index(shape.size(), 0);
  for (float value : row_major) {
    size_t offset = 0;
    for (size_t k = 0; k < shape.size(); ++k) {
      offset += static_cast<size_t>(index[k]) * stride[k];
    }
    column_major[offset] = value;
    for (size_t k = shape.size(); k-- > 0;) {
      if (++index[k] < shape[k]) break;
      index[k] = 0;
    }
  }
  return column_major;
}

}  // namespace

uint16_t FloatToHalf(float value) { return formats::FloatToHalfBits(value); }

uint16_t FloatToBf16(float value) { return formats::FloatToBf16Bits(value); }

std::string SafetensorsBytes(
    const formats::TensorMap& tensors, DType dtype,
    const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, tensor] : tensors) {
    CheckConsistent(name, tensor);
    const size_t begin = data.size();
    AppendValues(data, tensor.values, dtype);
    header[name] = {{"dtype", std::string(formats::DTypeName(dtype))},
                    {"shape", tensor.shape},
                    {"data_offsets", {begin, data.size()}}};
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string header_text = header.dump();
  // Like the reference writer, pad the header with spaces to 8 bytes so the
  // data section is aligned.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string out;
  AppendLittleEndian(out, header_text.size(), 8);
  out += header_text;
  out += data;
  return out;
}

std::string NpyBytes(const formats::Tensor& t, DType dtype, int major_version,
                     bool fortran_order) {
  CheckConsistent("npy", t);
  if (major_version < 1 || major_version > 3) {
    throw std::invalid_argument(
        absl::StrCat("npy major version ", major_version, ", expected 1-3"));
  }
  const char* descr = dtype == DType::kF32   ? "<f4"
                      : dtype == DType::kF64 ? "<f8"
                      : dtype == DType::kF16 ? "<f2"
                                             : nullptr;
  if (descr == nullptr) {
    throw std::invalid_argument("npy has no dtype for " +
                                std::string(formats::DTypeName(dtype)));
  }
  if (dtype == DType::kF32 && major_version == 1 && !fortran_order) {
    return formats::SerializeNpy(t.shape, t.values);  // The production writer.
  }
  const std::string shape =
      t.shape.size() == 1
          ? absl::StrCat("(", t.shape[0], ",)")
          : absl::StrCat("(", absl::StrJoin(t.shape, ", "), ")");
  const std::string dict =
      absl::StrCat("{'descr': '", descr,
                   "', 'fortran_order': ", fortran_order ? "True" : "False",
                   ", 'shape': ", shape, ", }");
  const size_t length_bytes = major_version == 1 ? 2 : 4;
  const size_t prefix = 8 + length_bytes;
  const size_t header_len =
      dict.size() + 1 + (64 - (prefix + dict.size() + 1) % 64) % 64;

  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major_version));
  out.push_back('\0');
  AppendLittleEndian(out, header_len, length_bytes);
  out += dict;
  out.append(header_len - dict.size() - 1, ' ');
  out.push_back('\n');
  AppendValues(
      out, fortran_order ? ToFortranOrder(t.shape, t.values) : t.values, dtype);
  return out;
}

void WriteFile(const std::filesystem::path& path, std::string_view bytes) {
  std::error_code error;
  if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), error);
    if (error) {
      throw std::runtime_error(absl::StrCat("cannot create directory ",
                                            path.parent_path().string(), ": ",
                                            error.message()));
    }
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  if (!file) {
    throw std::runtime_error("cannot write " + path.string());
  }
}

}  // namespace nnserve::testing
