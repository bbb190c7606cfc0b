// The minimal .npy reader behind ParseNpyRows (see input_readers.h).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/input_readers.h"

namespace nnserve {
namespace {

constexpr absl::string_view kMagic = "\x93NUMPY";

uint32_t ReadLittleEndian(const char* data, int bytes) {
  uint32_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) {
    value = (value << 8) | static_cast<unsigned char>(data[i]);
  }
  return value;
}

// Returns the text right after `'key':` in the header dict, or an error.
absl::StatusOr<absl::string_view> FindValue(absl::string_view header,
                                            absl::string_view key,
                                            absl::string_view source) {
  for (const char* quote : {"'", "\""}) {
    const std::string needle = absl::StrCat(quote, key, quote);
    const size_t at = header.find(needle);
    if (at == absl::string_view::npos) continue;
    absl::string_view rest = header.substr(at + needle.size());
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (rest.empty() || rest.front() != ':') break;
    return absl::StripLeadingAsciiWhitespace(rest.substr(1));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": .npy header has no '", key,
                   "' entry; expected a dict with 'descr', 'fortran_order' "
                   "and 'shape', found: ",
                   header));
}

absl::StatusOr<std::vector<int64_t>> ParseShape(absl::string_view value,
                                                absl::string_view source) {
  if (value.empty() || value.front() != '(') {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": .npy 'shape' must be a tuple; found: ", value));
  }
  const size_t close = value.find(')');
  if (close == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": .npy 'shape' tuple is not closed"));
  }
  std::vector<int64_t> shape;
  for (absl::string_view part : absl::StrSplit(value.substr(1, close - 1), ',',
                                               absl::SkipWhitespace())) {
    int64_t dim = 0;
    if (!absl::SimpleAtoi(part, &dim) || dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": .npy 'shape' has a bad dimension '",
                       absl::StripAsciiWhitespace(part),
                       "'; expected non-negative integers"));
    }
    shape.push_back(dim);
  }
  return shape;
}

}  // namespace

bool LooksLikeNpy(absl::string_view bytes) {
  return bytes.substr(0, kMagic.size()) == kMagic;
}

absl::StatusOr<RowBatch> ParseNpyRows(absl::string_view bytes,
                                      absl::string_view source) {
  if (!LooksLikeNpy(bytes) || bytes.size() < 10) {
    return absl::InvalidArgumentError(absl::StrCat(
        source,
        ": not a .npy file (expected the magic \"\\x93NUMPY\" and a "
        "10-byte preamble; found ",
        bytes.size(), " bytes)"));
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  const int minor = static_cast<unsigned char>(bytes[7]);
  if (major < 1 || major > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": .npy format version ", major, ".", minor,
                     " is not supported; expected 1.x, 2.x or 3.x"));
  }
  const int length_bytes = major == 1 ? 2 : 4;
  const size_t preamble = 8 + length_bytes;
  if (bytes.size() < preamble) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": .npy file is truncated in its preamble"));
  }
  const uint32_t header_length =
      ReadLittleEndian(bytes.data() + 8, length_bytes);
  if (bytes.size() < preamble + header_length) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": .npy header declares ", header_length, " bytes but only ",
        bytes.size() - preamble, " follow the preamble"));
  }
  const absl::string_view header = bytes.substr(preamble, header_length);
  const absl::string_view data = bytes.substr(preamble + header_length);

  absl::StatusOr<absl::string_view> descr = FindValue(header, "descr", source);
  if (!descr.ok()) return descr.status();
  size_t item_size = 0;
  if (absl::StartsWith(*descr, "'<f4'") ||
      absl::StartsWith(*descr, "\"<f4\"")) {
    item_size = 4;
  } else if (absl::StartsWith(*descr, "'<f8'") ||
             absl::StartsWith(*descr, "\"<f8\"")) {
    item_size = 8;
  } else {
    const absl::string_view shown = descr->substr(0, descr->find(','));
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": .npy dtype ", shown,
                     " is not supported; expected '<f4' (float32) or '<f8' "
                     "(float64), little-endian"));
  }

  absl::StatusOr<absl::string_view> fortran =
      FindValue(header, "fortran_order", source);
  if (!fortran.ok()) return fortran.status();
  if (absl::StartsWith(*fortran, "True")) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     ": .npy array is in Fortran order; expected C "
                     "order (numpy.ascontiguousarray before saving)"));
  }
  if (!absl::StartsWith(*fortran, "False")) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": .npy 'fortran_order' must be True or False; found: ",
        fortran->substr(0, fortran->find(','))));
  }

  absl::StatusOr<absl::string_view> shape_text =
      FindValue(header, "shape", source);
  if (!shape_text.ok()) return shape_text.status();
  absl::StatusOr<std::vector<int64_t>> shape = ParseShape(*shape_text, source);
  if (!shape.ok()) return shape.status();

  RowBatch batch;
  if (shape->size() == 1) {
    batch.rows = 1;
    batch.cols = (*shape)[0];
  } else if (shape->size() == 2) {
    batch.rows = (*shape)[0];
    batch.cols = (*shape)[1];
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": .npy shape (", absl::StrJoin(*shape, ", "), ") has rank ",
        shape->size(), "; expected [rows, features] or [features]"));
  }
  if (batch.rows == 0 || batch.cols == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": .npy shape (", absl::StrJoin(*shape, ", "),
                     ") is empty; expected at least one row and one feature"));
  }
  const size_t count = static_cast<size_t>(batch.rows * batch.cols);
  if (data.size() != count * item_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": .npy data holds ", data.size(),
                     " bytes; shape (", absl::StrJoin(*shape, ", "), ") of ",
                     item_size, "-byte floats needs ", count * item_size));
  }
  batch.values.resize(count);
  if (item_size == 4) {
    std::memcpy(batch.values.data(), data.data(), data.size());
  } else {
    for (size_t i = 0; i < count; ++i) {
      double value;
      std::memcpy(&value, data.data() + i * 8, 8);
      batch.values[i] = static_cast<float>(value);
    }
  }
  return batch;
}

}  // namespace nnserve
