// The CSV reader. See csv.h for the dialect.
#include "formats/csv.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/str_util.h"

namespace nnserve::formats {
namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
constexpr size_t kMaxShownField = 40;

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

class CsvParser {
 public:
  explicit CsvParser(std::string_view source) : source_(Sv(source)) {}

  absl::StatusOr<FloatMatrix> Parse(std::string_view text);

 private:
  absl::Status Error(int64_t line, absl::string_view message) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": csv: line ", line, message));
  }
  absl::Status FieldError(int64_t line, int64_t column, std::string_view field,
                          absl::string_view what) const {
    return Error(line, absl::StrCat(" column ", column, ": '",
                                    Clip(field, kMaxShownField), "' ", what));
  }
  // Appends the value of `field` (already trimmed) to matrix_.
  absl::Status ParseValue(std::string_view field, int64_t line, int64_t column);
  absl::Status ParseLine(std::string_view line, int64_t line_number);

  absl::string_view source_;
  FloatMatrix matrix_;
  int64_t first_row_line_ = 0;
};

absl::Status CsvParser::ParseValue(std::string_view field, int64_t line,
                                   int64_t column) {
  constexpr absl::string_view kExpected =
      "; expected a decimal number such as 3, -0.5 or 1e-3";
  if (field.empty()) {
    return Error(line,
                 absl::StrCat(" column ", column, ": empty value", kExpected));
  }
  const auto not_a_number = [&] {
    return FieldError(line, column, field,
                      absl::StrCat("is not a number", kExpected));
  };
  std::string_view digits = field;
  if (digits.front() == '+') {
    digits.remove_prefix(1);
    // "+", "+-1" and "++1" are not numbers.
    if (digits.empty() || digits.front() == '-' || digits.front() == '+') {
      return not_a_number();
    }
  }
  const char* begin = digits.data();
  const char* end = digits.data() + digits.size();
  float value = 0.0f;
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ptr != end) return not_a_number();
  if (ec == std::errc::result_out_of_range) {
    // Beyond float32: refuse an overflow, round an underflow (to a
    // subnormal or zero, as strtof would).
    long double wide = 0.0L;
    const auto [wide_ptr, wide_ec] = std::from_chars(begin, end, wide);
    if (wide_ec != std::errc() || wide_ptr != end ||
        std::fabs(wide) > std::numeric_limits<float>::max()) {
      return FieldError(line, column, field,
                        absl::StrCat("is outside the float32 range (max ",
                                     std::numeric_limits<float>::max(), ")"));
    }
    value = static_cast<float>(wide);
  } else if (ec != std::errc()) {
    return not_a_number();
  }
  if (!std::isfinite(value)) {
    return FieldError(line, column, field,
                      "is not finite; expected finite numbers (NaN and "
                      "infinite inputs are refused)");
  }
  matrix_.values.push_back(value);
  return absl::OkStatus();
}

absl::Status CsvParser::ParseLine(std::string_view line, int64_t line_number) {
  int64_t columns = 0;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    const std::string_view field = Trim(line.substr(
        start, comma == std::string_view::npos ? std::string_view::npos
                                               : comma - start));
    ++columns;
    if (matrix_.rows > 0 && columns > matrix_.cols) {
      return Error(line_number, absl::StrCat(" has more than ", matrix_.cols,
                                             " values; expected ", matrix_.cols,
                                             " like line ", first_row_line_));
    }
    if (absl::Status s = ParseValue(field, line_number, columns); !s.ok()) {
      return s;
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (matrix_.rows == 0) {
    matrix_.cols = columns;
    first_row_line_ = line_number;
  } else if (columns != matrix_.cols) {
    return Error(line_number,
                 absl::StrCat(" has ", columns, " values; expected ",
                              matrix_.cols, " like line ", first_row_line_));
  }
  ++matrix_.rows;
  return absl::OkStatus();
}

absl::StatusOr<FloatMatrix> CsvParser::Parse(std::string_view text) {
  if (text.substr(0, kByteOrderMark.size()) == kByteOrderMark) {
    text.remove_prefix(kByteOrderMark.size());
  }
  int64_t line_number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t newline = text.find('\n', start);
    if (newline == std::string_view::npos) newline = text.size();
    const std::string_view line = Trim(text.substr(start, newline - start));
    start = newline + 1;
    ++line_number;
    if (line.empty() || line.front() == '#') continue;
    if (absl::Status s = ParseLine(line, line_number); !s.ok()) return s;
  }
  if (matrix_.rows == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source_,
        ": csv: no rows found (empty, or only blank and '#' comment lines); "
        "expected one comma-separated row of numbers per line"));
  }
  return std::move(matrix_);
}

}  // namespace

absl::StatusOr<FloatMatrix> ParseCsvMatrix(std::string_view text,
                                           std::string_view source) {
  return CsvParser(source).Parse(text);
}

}  // namespace nnserve::formats
