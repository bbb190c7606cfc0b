// NumPy .npy reader and writer. See npy.h for the contract.
//
// The header is a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// parsed here by a small strict recursive-descent parser (strings, True /
// False and tuples of integers only; exactly the three keys NumPy writes).
#include "engine/npy.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/half.h"

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

// A value in the header dict: a string, a bool or a tuple of integers.
using HeaderValue = std::variant<std::string, bool, std::vector<int64_t>>;

// "'x'" for printable ASCII, "byte 0x93" otherwise, "end of header" at end.
std::string Describe(std::string_view text, size_t pos) {
  if (pos >= text.size()) return "end of header";
  const unsigned char c = static_cast<unsigned char>(text[pos]);
  if (c >= 0x20 && c < 0x7f) return absl::StrCat("'", std::string(1, c), "'");
  return absl::StrFormat("byte 0x%02x", c);
}

// Strict parser for the header dict literal. Produces (key, value) pairs in
// file order; the caller checks which keys are present.
class DictParser {
 public:
  explicit DictParser(std::string_view text) : text_(text) {}

  // On failure returns a message naming the offset and what was expected.
  absl::StatusOr<std::vector<std::pair<std::string, HeaderValue>>> Parse() {
    std::vector<std::pair<std::string, HeaderValue>> items;
    SkipSpace();
    if (!Consume('{')) return Expected("'{' opening the header dict");
    SkipSpace();
    while (!Consume('}')) {
      std::string key;
      if (absl::Status s = ParseString(&key); !s.ok()) return s;
      SkipSpace();
      if (!Consume(':')) return Expected("':' after a dict key");
      SkipSpace();
      HeaderValue value;
      if (absl::Status s = ParseValue(&value); !s.ok()) return s;
      items.emplace_back(std::move(key), std::move(value));
      SkipSpace();
      if (Consume(',')) {
        SkipSpace();
      } else if (Peek() != '}') {
        return Expected("',' or '}' after a dict value");
      }
    }
    SkipSpace();
    if (pos_ != text_.size()) return Expected("only padding after the dict");
    return items;
  }

 private:
  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool Consume(char c) {
    if (Peek() != c || pos_ >= text_.size()) return false;
    ++pos_;
    return true;
  }
  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t' ||
            text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  absl::Status Expected(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed header dict at offset ", pos_, ": expected ",
                     what, ", found ", Describe(text_, pos_)));
  }

  // A quoted string without escapes: 'abc' or "abc".
  absl::Status ParseString(std::string* out) {
    const char quote = Peek();
    if (quote != '\'' && quote != '"') return Expected("a quoted string");
    ++pos_;
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote && text_[pos_] != '\n') {
      if (text_[pos_] == '\\') return Expected("a string without escapes");
      ++pos_;
    }
    if (Peek() != quote) return Expected("a closing quote");
    out->assign(text_.substr(start, pos_ - start));
    ++pos_;
    return absl::OkStatus();
  }

  bool ConsumeWord(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::Status ParseValue(HeaderValue* out) {
    const char c = Peek();
    if (c == '\'' || c == '"') {
      std::string s;
      if (absl::Status status = ParseString(&s); !status.ok()) return status;
      *out = std::move(s);
      return absl::OkStatus();
    }
    if (ConsumeWord("True")) {
      *out = true;
      return absl::OkStatus();
    }
    if (ConsumeWord("False")) {
      *out = false;
      return absl::OkStatus();
    }
    if (c == '(') {
      std::vector<int64_t> tuple;
      if (absl::Status status = ParseTuple(&tuple); !status.ok()) {
        return status;
      }
      *out = std::move(tuple);
      return absl::OkStatus();
    }
    return Expected("a string, True, False or a tuple");
  }

  // "()", "(5,)", "(3, 4)", "(3, 4,)". "(5)" is an int in Python: refused.
  absl::Status ParseTuple(std::vector<int64_t>* out) {
    Consume('(');
    SkipSpace();
    bool saw_comma = false;
    while (!Consume(')')) {
      int64_t value = 0;
      if (absl::Status s = ParseInt(&value); !s.ok()) return s;
      out->push_back(value);
      SkipSpace();
      if (Consume(',')) {
        saw_comma = true;
        SkipSpace();
      } else if (Peek() != ')') {
        return Expected("',' or ')' in a tuple");
      }
    }
    if (out->size() == 1 && !saw_comma) {
      return absl::InvalidArgumentError(absl::StrCat(
          "malformed header dict at offset ", pos_, ": '(", (*out)[0],
          ")' is not a tuple, expected '(", (*out)[0], ",)'"));
    }
    return absl::OkStatus();
  }

  // A decimal integer with an optional '-' and an optional Python 2 'L'.
  absl::Status ParseInt(int64_t* out) {
    const bool negative = Consume('-');
    if (Peek() < '0' || Peek() > '9') return Expected("an integer");
    uint64_t magnitude = 0;
    while (Peek() >= '0' && Peek() <= '9') {
      const uint64_t digit = static_cast<uint64_t>(Peek() - '0');
      if (magnitude > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
        return Expected("an integer that fits in 64 bits");
      }
      magnitude = magnitude * 10 + digit;
      ++pos_;
    }
    Consume('L');
    if (magnitude >
        static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Expected("an integer that fits in 64 bits");
    }
    *out = negative ? -static_cast<int64_t>(magnitude)
                    : static_cast<int64_t>(magnitude);
    return absl::OkStatus();
  }

  std::string_view text_;
  size_t pos_ = 0;
};

struct NpyDType {
  DType dtype;
  size_t size;
};

std::optional<NpyDType> ParseDescr(std::string_view descr) {
  if (descr == "<f4") return NpyDType{DType::kF32, 4};
  if (descr == "<f8") return NpyDType{DType::kF64, 8};
  if (descr == "<f2") return NpyDType{DType::kF16, 2};
  return std::nullopt;
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

// Abseil here is built without std::string_view aliasing: absl::StrCat
// takes absl::string_view.
absl::Status NpyError(absl::string_view source, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": npy: ", message));
}

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

// The three header fields, checked for type.
struct Header {
  std::string descr;
  NpyDType dtype;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

absl::StatusOr<Header> ParseHeader(std::string_view text,
                                   absl::string_view source) {
  auto items = DictParser(text).Parse();
  if (!items.ok()) return NpyError(source, items.status().message());
  constexpr char kKeys[] = "'descr', 'fortran_order' and 'shape'";
  std::map<std::string, const HeaderValue*, std::less<>> fields;
  for (const auto& [key, value] : *items) {
    if (key != "descr" && key != "fortran_order" && key != "shape") {
      return NpyError(source, absl::StrCat("unexpected header key '", key,
                                           "', expected only ", kKeys));
    }
    if (!fields.emplace(key, &value).second) {
      return NpyError(source, absl::StrCat("duplicate header key '", key, "'"));
    }
  }
  for (const char* key : {"descr", "fortran_order", "shape"}) {
    if (!fields.contains(key)) {
      return NpyError(source, absl::StrCat("header is missing key '", key,
                                           "', expected ", kKeys));
    }
  }
  Header header;
  const auto* descr = std::get_if<std::string>(fields.find("descr")->second);
  if (descr == nullptr) {
    return NpyError(source,
                    "header 'descr' is not a string, expected a "
                    "dtype string such as '<f4'");
  }
  header.descr = *descr;
  const auto* fortran_order =
      std::get_if<bool>(fields.find("fortran_order")->second);
  if (fortran_order == nullptr) {
    return NpyError(source, "header 'fortran_order' is not True or False");
  }
  header.fortran_order = *fortran_order;
  const auto* shape =
      std::get_if<std::vector<int64_t>>(fields.find("shape")->second);
  if (shape == nullptr) {
    return NpyError(source,
                    "header 'shape' is not a tuple of integers, "
                    "expected e.g. (3, 4), (5,) or ()");
  }
  header.shape = *shape;

  const std::optional<NpyDType> dtype = ParseDescr(header.descr);
  if (!dtype.has_value()) {
    if (!descr->empty() && descr->front() == '>' &&
        ParseDescr("<" + descr->substr(1)).has_value()) {
      return NpyError(source,
                      absl::StrCat("dtype '", *descr,
                                   "': big-endian not supported, expected "
                                   "little-endian '<f4', '<f8' or '<f2'"));
    }
    return NpyError(source, absl::StrCat("unsupported dtype '", *descr,
                                         "', expected '<f4', '<f8' or "
                                         "'<f2'"));
  }
  header.dtype = *dtype;
  return header;
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

}  // namespace nnserve::engine
