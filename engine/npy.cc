// NumPy .npy reader and writer. See npy.h for the contract.
#include "engine/npy.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nnserve::engine {
namespace {

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

}  // namespace nnserve::engine
