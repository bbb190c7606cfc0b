// safetensors parser. See safetensors.h for the contract.
//
// Validation happens in two passes: first every header entry is checked on
// its own (fields, dtype, shape, offsets inside the data section, byte length
// matching the shape), then the ranges are checked together (no overlaps, no
// holes, no trailing bytes: the same rule as the reference Rust reader, so a
// damaged header is caught rather than silently skipping data). Only then is
// any tensor memory allocated, so every allocation is bounded by the size of
// the buffer. F64 values are narrowed to f32; a finite value beyond the f32
// range is an error rather than a silent infinity.
#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/str_util.h"
#include "formats/half.h"
#include "nlohmann/json.hpp"

namespace nnserve::formats {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MiB.
constexpr char kAcceptedDTypes[] = "F32, F64, F16, BF16";

// One validated header entry.
struct Entry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // Relative to the start of the data section.
  uint64_t end = 0;
};

bool ParseDType(std::string_view name, DType* dtype) {
  for (DType d : {DType::kF32, DType::kF64, DType::kF16, DType::kBF16}) {
    if (name == DTypeName(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

// The JSON type name, for "found ..." in error messages.
std::string JsonKind(const json& value) {
  if (value.is_number_integer()) return "integer " + value.dump();
  if (value.is_number_float()) return "number " + value.dump();
  if (value.is_string()) return "string " + Clip(value.dump());
  return value.type_name();
}

class Parser {
 public:
  // Abseil here is built without std::string_view aliasing, so the source
  // is kept as an absl::string_view for absl::StrCat.
  Parser(std::string_view bytes, std::string_view source)
      : bytes_(bytes), source_(source.data(), source.size()) {}

  absl::StatusOr<TensorMap> Parse();

 private:
  absl::Status Error(absl::string_view message) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": safetensors: ", message));
  }
  absl::Status TensorError(absl::string_view name,
                           absl::string_view message) const {
    return Error(absl::StrCat("tensor '",
                              Clip(std::string_view(name.data(), name.size())),
                              "': ", message));
  }

  absl::Status ParseEntry(const std::string& name, const json& value,
                          Entry* entry) const;
  absl::Status ParseShape(const std::string& name, const json& value,
                          std::vector<int64_t>* shape) const;
  absl::Status ParseOffsets(const std::string& name, const json& value,
                            uint64_t* begin, uint64_t* end) const;
  absl::Status CheckMetadata(const json& value) const;
  absl::Status CheckCoverage(std::vector<Entry>& entries) const;
  absl::StatusOr<Tensor> Convert(const Entry& entry) const;

  std::string_view bytes_;
  absl::string_view source_;
  std::string_view data_;  // The data section, set once the header is read.
};

absl::StatusOr<TensorMap> Parser::Parse() {
  if (bytes_.size() < 8) {
    return Error(absl::StrCat("file is ", bytes_.size(),
                              " bytes, shorter than the 8-byte header length "
                              "prefix"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) {
    header_len = (header_len << 8) | static_cast<unsigned char>(bytes_[i]);
  }
  if (header_len > kMaxHeaderBytes) {
    return Error(absl::StrCat("header length ", header_len,
                              " exceeds the limit of ", kMaxHeaderBytes,
                              " bytes (corrupt length prefix?)"));
  }
  if (header_len > bytes_.size() - 8) {
    return Error(absl::StrCat(
        "header length ", header_len, " runs past the end of the file (only ",
        bytes_.size() - 8, " bytes follow the 8-byte prefix)"));
  }
  const std::string_view header_text = bytes_.substr(8, header_len);
  data_ = bytes_.substr(8 + header_len);

  json header;
  try {
    header = json::parse(header_text.begin(), header_text.end());
  } catch (const json::exception& e) {
    return Error(absl::StrCat("header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) {
    return Error(absl::StrCat("header is a JSON ", JsonKind(header),
                              ", expected an object of tensors"));
  }

  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (absl::Status s = CheckMetadata(value); !s.ok()) return s;
      continue;
    }
    Entry entry;
    if (absl::Status s = ParseEntry(name, value, &entry); !s.ok()) return s;
    entries.push_back(std::move(entry));
  }
  if (absl::Status s = CheckCoverage(entries); !s.ok()) return s;

  TensorMap tensors;
  for (const Entry& entry : entries) {
    absl::StatusOr<Tensor> tensor = Convert(entry);
    if (!tensor.ok()) return tensor.status();
    tensors.emplace(entry.name, *std::move(tensor));
  }
  return tensors;
}

absl::Status Parser::CheckMetadata(const json& value) const {
  if (!value.is_object()) {
    return Error(absl::StrCat("__metadata__ is a JSON ", JsonKind(value),
                              ", expected an object of strings"));
  }
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return Error(absl::StrCat("__metadata__ entry '", Clip(key),
                                "' is a JSON ", JsonKind(item),
                                ", expected a string"));
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseEntry(const std::string& name, const json& value,
                                Entry* entry) const {
  if (!value.is_object()) {
    return TensorError(name, absl::StrCat("entry is a JSON ", JsonKind(value),
                                          ", expected an object with dtype, "
                                          "shape and data_offsets"));
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(field)) {
      return TensorError(name, absl::StrCat("missing field '", field, "'"));
    }
  }
  const json& dtype = value["dtype"];
  if (!dtype.is_string()) {
    return TensorError(name, absl::StrCat("dtype is a JSON ", JsonKind(dtype),
                                          ", expected a string (one of ",
                                          kAcceptedDTypes, ")"));
  }
  const std::string& dtype_name = dtype.get_ref<const std::string&>();
  if (!ParseDType(dtype_name, &entry->dtype)) {
    return TensorError(name,
                       absl::StrCat("unsupported dtype '", dtype_name,
                                    "', expected one of ", kAcceptedDTypes));
  }
  if (absl::Status s = ParseShape(name, value["shape"], &entry->shape);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          ParseOffsets(name, value["data_offsets"], &entry->begin, &entry->end);
      !s.ok()) {
    return s;
  }

  // Element count and byte size, with overflow checks. A zero dimension
  // makes the count zero whatever the others are.
  const bool empty = std::find(entry->shape.begin(), entry->shape.end(), 0) !=
                     entry->shape.end();
  uint64_t elements = 1;
  if (!empty) {
    for (int64_t dim : entry->shape) {
      if (elements >
          std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(dim)) {
        return TensorError(name, absl::StrCat("element count of shape ",
                                              ShapeString(entry->shape),
                                              " overflows 64 bits"));
      }
      elements *= static_cast<uint64_t>(dim);
    }
  } else {
    elements = 0;
  }
  const uint64_t size = DTypeSize(entry->dtype);
  if (elements > std::numeric_limits<uint64_t>::max() / size) {
    return TensorError(
        name, absl::StrCat("byte size of shape ", ShapeString(entry->shape),
                           " x ", size, " bytes overflows 64 bits"));
  }
  const uint64_t expected_bytes = elements * size;
  const uint64_t found_bytes = entry->end - entry->begin;
  if (found_bytes != expected_bytes) {
    return TensorError(name, absl::StrCat("data_offsets [", entry->begin, ", ",
                                          entry->end, "] span ", found_bytes,
                                          " bytes, expected ", expected_bytes,
                                          " (shape ", ShapeString(entry->shape),
                                          " = ", elements, " elements x ", size,
                                          " bytes of ", dtype_name, ")"));
  }
  entry->name = name;
  return absl::OkStatus();
}

absl::Status Parser::ParseShape(const std::string& name, const json& value,
                                std::vector<int64_t>* shape) const {
  if (!value.is_array()) {
    return TensorError(name, absl::StrCat("shape is a JSON ", JsonKind(value),
                                          ", expected an array of integers"));
  }
  shape->reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const json& dim = value[i];
    if (!dim.is_number_integer()) {
      return TensorError(
          name, absl::StrCat("shape[", i, "] is a JSON ", JsonKind(dim),
                             ", expected a non-negative "
                             "integer"));
    }
    if (dim.is_number_unsigned()) {
      const uint64_t u = dim.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return TensorError(
            name, absl::StrCat("shape[", i, "] = ", u, " is too large"));
      }
      shape->push_back(static_cast<int64_t>(u));
    } else {
      const int64_t d = dim.get<int64_t>();
      if (d < 0) {
        return TensorError(name, absl::StrCat("shape[", i, "] = ", d,
                                              " is negative, expected a "
                                              "non-negative dimension"));
      }
      shape->push_back(d);
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::ParseOffsets(const std::string& name, const json& value,
                                  uint64_t* begin, uint64_t* end) const {
  if (!value.is_array() || value.size() != 2) {
    // Described, not dumped: dump() recurses once per nesting level, and a
    // crafted header nests arrays deeply enough to overflow the stack.
    const std::string found =
        value.is_array()
            ? absl::StrCat("an array of ", value.size(), " elements")
            : absl::StrCat("a JSON ", JsonKind(value));
    return TensorError(name, absl::StrCat("data_offsets is ", found,
                                          ", expected [begin, end]"));
  }
  for (size_t i = 0; i < 2; ++i) {
    if (!value[i].is_number_integer() ||
        (!value[i].is_number_unsigned() && value[i].get<int64_t>() < 0)) {
      return TensorError(name, absl::StrCat("data_offsets[", i, "] is a JSON ",
                                            JsonKind(value[i]),
                                            ", expected a non-negative "
                                            "integer"));
    }
  }
  *begin = value[0].get<uint64_t>();
  *end = value[1].get<uint64_t>();
  if (*begin > *end) {
    return TensorError(name, absl::StrCat("data_offsets begin ", *begin,
                                          " is greater than end ", *end));
  }
  if (*end > data_.size()) {
    return TensorError(name,
                       absl::StrCat("file truncated: data_offsets end ", *end,
                                    " is past the end of the data section (",
                                    data_.size(), " bytes)"));
  }
  return absl::OkStatus();
}

absl::Status Parser::CheckCoverage(std::vector<Entry>& entries) const {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  uint64_t covered = 0;  // Everything before this offset belongs to a tensor.
  const Entry* previous = nullptr;
  for (const Entry& entry : entries) {
    if (entry.begin < covered) {
      return Error(absl::StrCat("tensors '", previous->name, "' [",
                                previous->begin, ", ", previous->end, ") and '",
                                entry.name, "' [", entry.begin, ", ", entry.end,
                                ") overlap in the data section"));
    }
    if (entry.begin > covered) {
      return Error(absl::StrCat("data section bytes [", covered, ", ",
                                entry.begin,
                                ") are not covered by any tensor (a hole "
                                "before tensor '",
                                entry.name, "'), expected contiguous tensors"));
    }
    covered = entry.end;
    previous = &entry;
  }
  if (covered != data_.size()) {
    return Error(absl::StrCat("data section is ", data_.size(),
                              " bytes but the tensors cover only ", covered,
                              " (trailing bytes not covered by any tensor)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> Parser::Convert(const Entry& entry) const {
  const std::string_view raw =
      data_.substr(entry.begin, entry.end - entry.begin);
  Tensor tensor;
  tensor.shape = entry.shape;
  tensor.file_dtype = entry.dtype;
  const size_t count = raw.size() / DTypeSize(entry.dtype);
  tensor.values.resize(count);
  const std::optional<size_t> out_of_range = DecodeLittleEndian(
      entry.dtype, reinterpret_cast<const unsigned char*>(raw.data()), count,
      tensor.values.data());
  if (out_of_range.has_value()) {
    double d;
    std::memcpy(&d, raw.data() + 8 * *out_of_range, sizeof d);
    return TensorError(
        entry.name, absl::StrCat("F64 value ", d, " at element ", *out_of_range,
                                 " is outside the f32 range (max ",
                                 std::numeric_limits<float>::max(), ")"));
  }
  return tensor;
}

}  // namespace

absl::StatusOr<TensorMap> ParseSafetensors(std::string_view bytes,
                                           std::string_view source) {
  return Parser(bytes, source).Parse();
}

}  // namespace nnserve::formats
