// .npy header dict parser. See npy_header.h for the contract.
#include "formats/npy_header.h"

#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nnserve::formats::internal {
namespace {

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

std::optional<NpyDType> ParseDescr(std::string_view descr) {
  if (descr == "<f4") return NpyDType{DType::kF32, 4};
  if (descr == "<f8") return NpyDType{DType::kF64, 8};
  if (descr == "<f2") return NpyDType{DType::kF16, 2};
  return std::nullopt;
}

}  // namespace

absl::Status NpyError(absl::string_view source, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": npy: ", message));
}

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

}  // namespace nnserve::formats::internal
