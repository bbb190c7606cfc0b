// NumPy .npy reader and writer. See npy.h for the contract. The header
// dict parser lives in npy_header.cc.
#include "formats/npy.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "formats/half.h"
#include "formats/npy_header.h"

namespace nnserve::formats {
namespace {

using internal::Header;
using internal::NpyError;
using internal::ParseHeader;

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr size_t kAlignment = 64;

// Python tuple literal for a shape: "()", "(5,)", "(3, 4)".
std::string ShapeTuple(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return absl::StrCat("(", shape[0], ",)");
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

void AppendLittleEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

// Reorders a Fortran-order (column-major) array into C order.
std::vector<float> FortranToC(const std::vector<int64_t>& shape,
                              const std::vector<float>& column_major) {
  const size_t rank = shape.size();
  std::vector<float> row_major(column_major.size());
  if (column_major.empty()) return row_major;
  std::vector<size_t> stride(rank);  // Column-major strides, in elements.
  size_t s = 1;
  for (size_t k = 0; k < rank; ++k) {
    stride[k] = s;
    s *= static_cast<size_t>(shape[k]);
  }
  std::vector<int64_t> index(rank, 0);
  size_t offset = 0;  // Column-major offset of `index`.
  for (float& out : row_major) {
    out = column_major[offset];
    // Advance `index` in C order (last dimension fastest).
    for (size_t k = rank; k-- > 0;) {
      if (++index[k] < shape[k]) {
        offset += stride[k];
        break;
      }
      offset -= stride[k] * static_cast<size_t>(shape[k] - 1);
      index[k] = 0;
    }
  }
  return row_major;
}

}  // namespace

std::string SerializeNpy(const std::vector<int64_t>& shape,
                         std::span<const float> values) {
  std::string dict = absl::StrCat("{'descr': '<f4', 'fortran_order': False, ",
                                  "'shape': ", ShapeTuple(shape), ", }");
  // Version 1.0 stores the header length in a u16; NumPy falls back to 2.0
  // (u32) only for headers that do not fit, and so do we.
  int length_bytes = 2;
  size_t prefix = kMagic.size() + 2 + length_bytes;
  size_t unpadded = prefix + dict.size() + 1;  // +1 for the final '\n'.
  size_t header_len =
      dict.size() + 1 + (kAlignment - unpadded % kAlignment) % kAlignment;
  if (header_len > 0xffff) {
    length_bytes = 4;
    prefix = kMagic.size() + 2 + length_bytes;
    unpadded = prefix + dict.size() + 1;
    header_len =
        dict.size() + 1 + (kAlignment - unpadded % kAlignment) % kAlignment;
  }

  std::string out;
  out.reserve(prefix + header_len + values.size_bytes());
  out.append(kMagic);
  out.push_back(static_cast<char>(length_bytes == 2 ? 1 : 2));  // Major.
  out.push_back('\0');                                          // Minor.
  AppendLittleEndian(out, header_len, length_bytes);
  out.append(dict);
  out.append(header_len - dict.size() - 1, ' ');
  out.push_back('\n');
  const size_t data_start = out.size();
  out.resize(data_start + values.size_bytes());
  if (!values.empty()) {
    std::memcpy(out.data() + data_start, values.data(), values.size_bytes());
  }
  return out;
}

namespace {

// The header dict text and the data bytes of a file.
struct Sections {
  std::string_view header;
  std::string_view data;
};

// Checks magic, version and header length against the buffer.
absl::StatusOr<Sections> SplitFile(std::string_view bytes,
                                   absl::string_view source) {
  if (bytes.substr(0, kMagic.size()) != kMagic) {
    std::string found;
    for (size_t i = 0; i < std::min(bytes.size(), kMagic.size()); ++i) {
      absl::StrAppendFormat(&found, "\\x%02x",
                            static_cast<unsigned char>(bytes[i]));
    }
    return NpyError(
        source, absl::StrCat("bad magic: expected \\x93NUMPY, found '", found,
                             "' (", bytes.size(), "-byte file)"));
  }
  if (bytes.size() < kMagic.size() + 2) {
    return NpyError(source, absl::StrCat("file truncated: ", bytes.size(),
                                         " bytes, expected at least 8 (magic "
                                         "and version)"));
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  const int minor = static_cast<unsigned char>(bytes[7]);
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    return NpyError(
        source, absl::StrCat("unsupported format version ", major, ".", minor,
                             ", expected 1.0, 2.0 or 3.0"));
  }
  // 1.0 has a u16 header length; 2.0 a u32; 3.0 a u32 and a UTF-8 header
  // (which this parser treats as bytes: every accepted token is ASCII).
  const size_t length_bytes = major == 1 ? 2 : 4;
  const size_t prefix = kMagic.size() + 2 + length_bytes;
  if (bytes.size() < prefix) {
    return NpyError(source, absl::StrCat("file truncated: ", bytes.size(),
                                         " bytes, expected at least ", prefix,
                                         " (magic, version, header length)"));
  }
  uint64_t header_len = 0;
  for (size_t i = length_bytes; i-- > 0;) {
    header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + i]);
  }
  if (header_len > bytes.size() - prefix) {
    return NpyError(source,
                    absl::StrCat("header length ", header_len,
                                 " runs past the end of the file (only ",
                                 bytes.size() - prefix, " bytes follow the ",
                                 prefix, "-byte preamble)"));
  }
  return Sections{bytes.substr(prefix, header_len),
                  bytes.substr(prefix + header_len)};
}

// Element count of `shape` such that count * item_size fits in 64 bits.
absl::StatusOr<uint64_t> ElementCount(const std::vector<int64_t>& shape,
                                      size_t item_size,
                                      absl::string_view source) {
  bool empty = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return NpyError(source, absl::StrCat("shape ", ShapeString(shape),
                                           " has negative dimension ", shape[i],
                                           " at index ", i));
    }
    if (shape[i] == 0) empty = true;
  }
  if (empty) return 0;
  uint64_t elements = 1;
  for (int64_t dim : shape) {
    if (elements > std::numeric_limits<uint64_t>::max() /
                       static_cast<uint64_t>(dim) / item_size) {
      return NpyError(
          source, absl::StrCat("element count of shape ", ShapeString(shape),
                               " overflows 64 bits"));
    }
    elements *= static_cast<uint64_t>(dim);
  }
  return elements;
}

}  // namespace

absl::StatusOr<Tensor> ParseNpy(std::string_view bytes,
                                std::string_view source_name) {
  const absl::string_view source(source_name.data(), source_name.size());
  absl::StatusOr<Sections> sections = SplitFile(bytes, source);
  if (!sections.ok()) return sections.status();
  absl::StatusOr<Header> header = ParseHeader(sections->header, source);
  if (!header.ok()) return header.status();
  const size_t item_size = header->dtype.size;
  absl::StatusOr<uint64_t> elements =
      ElementCount(header->shape, item_size, source);
  if (!elements.ok()) return elements.status();

  const std::string_view data = sections->data;
  const uint64_t expected_bytes = *elements * item_size;
  if (data.size() != expected_bytes) {
    return NpyError(
        source,
        absl::StrCat(data.size() < expected_bytes ? "file truncated: " : "",
                     "data is ", data.size(), " bytes, expected ",
                     expected_bytes, " (shape ", ShapeString(header->shape),
                     " = ", *elements, " elements x ", item_size, " bytes of '",
                     header->descr, "')",
                     data.size() > expected_bytes ? "; trailing bytes" : ""));
  }

  Tensor tensor;
  tensor.shape = header->shape;
  tensor.file_dtype = header->dtype.dtype;
  tensor.values.resize(*elements);
  const auto* raw = reinterpret_cast<const unsigned char*>(data.data());
  const std::optional<size_t> out_of_range = DecodeLittleEndian(
      tensor.file_dtype, raw, *elements, tensor.values.data());
  if (out_of_range.has_value()) {
    double d;
    std::memcpy(&d, raw + 8 * *out_of_range, sizeof d);
    return NpyError(
        source, absl::StrCat("'<f8' value ", d, " at element ", *out_of_range,
                             " is outside the f32 range (max ",
                             std::numeric_limits<float>::max(), ")"));
  }
  if (header->fortran_order && tensor.shape.size() > 1) {
    tensor.values = FortranToC(tensor.shape, tensor.values);
  }
  return tensor;
}

}  // namespace nnserve::formats