// The CSV reader and the file/stdin dispatcher (see input_readers.h).
#include <charconv>
#include <cmath>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/input_readers.h"

namespace nnserve {
namespace {

absl::StatusOr<float> ParseFloat(absl::string_view field,
                                 absl::string_view source, int64_t line,
                                 int64_t column) {
  field = absl::StripAsciiWhitespace(field);
  if (!field.empty() && field.front() == '+') field.remove_prefix(1);
  float value = 0.0f;
  const auto [end, error] =
      std::from_chars(field.data(), field.data() + field.size(), value);
  if (field.empty() || error != std::errc() ||
      end != field.data() + field.size() || !std::isfinite(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", line, ": column ", column, " is '", field,
                     "'; expected a finite number"));
  }
  return value;
}

}  // namespace

absl::StatusOr<RowBatch> ParseCsvRows(absl::string_view text,
                                      absl::string_view source) {
  RowBatch batch;
  int64_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    if (trimmed.empty() || trimmed.front() == '#') continue;
    int64_t column = 0;
    for (absl::string_view field : absl::StrSplit(trimmed, ',')) {
      ++column;
      absl::StatusOr<float> value =
          ParseFloat(field, source, line_number, column);
      if (!value.ok()) return value.status();
      batch.values.push_back(*value);
    }
    if (batch.rows == 0) {
      batch.cols = column;
    } else if (column != batch.cols) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", line_number, ": row has ", column, " values; expected ",
          batch.cols, " like the first row"));
    }
    ++batch.rows;
  }
  if (batch.rows == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": no rows found; expected one comma-separated row per line"));
  }
  return batch;
}

absl::StatusOr<RowBatch> ReadInputRowsFromStream(std::istream& in,
                                                 absl::string_view source) {
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat(source, ": read failed"));
  }
  if (LooksLikeNpy(bytes)) return ParseNpyRows(bytes, source);
  return ParseCsvRows(bytes, source);
}

absl::StatusOr<RowBatch> ReadInputRows(const std::string& path) {
  if (path == "-") return ReadInputRowsFromStream(std::cin, "<stdin>");
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(
        absl::StrCat(path,
                     ": cannot open input file (expected a readable "
                     ".npy or .csv file, or - for stdin)"));
  }
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad())
    return absl::DataLossError(absl::StrCat(path, ": read failed"));
  const std::string bytes = std::move(contents).str();
  if (absl::EndsWithIgnoreCase(path, ".npy")) return ParseNpyRows(bytes, path);
  return ParseCsvRows(bytes, path);
}

}  // namespace nnserve
