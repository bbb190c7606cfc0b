#include "server/commands/input_reader.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/npy.h"
#include "engine/tensor.h"

namespace nnserve::server {
namespace {

absl::StatusOr<float> ParseNumber(absl::string_view field,
                                  absl::string_view source, int line,
                                  int column) {
  const std::string text(absl::StripAsciiWhitespace(field));
  char* end = nullptr;
  errno = 0;
  const float value = std::strtof(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, " line ", line, " column ", column, ": '", text,
        "' is not a number; expected comma-separated decimal numbers"));
  }
  if (errno == ERANGE && (value > 1.0f || value < -1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " line ", line, " column ", column, ": '", text,
                     "' is out of the float32 range"));
  }
  return value;
}

}  // namespace

absl::StatusOr<Matrix> ParseCsvMatrix(absl::string_view text,
                                      absl::string_view source) {
  Matrix matrix;
  int first_row_line = 0;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    int64_t columns = 0;
    for (absl::string_view field : absl::StrSplit(line, ',')) {
      ++columns;
      auto value =
          ParseNumber(field, source, line_number, static_cast<int>(columns));
      if (!value.ok()) return value.status();
      matrix.values.push_back(*value);
    }
    if (matrix.rows == 0) {
      matrix.columns = columns;
      first_row_line = line_number;
    } else if (columns != matrix.columns) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, " line ", line_number, " has ", columns, " values; expected ",
          matrix.columns, " like line ", first_row_line));
    }
    ++matrix.rows;
  }
  if (matrix.rows == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source,
        " contains no rows; expected one comma-separated row per line"));
  }
  return matrix;
}

absl::StatusOr<Matrix> ReadMatrixFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot open input file '", path.string(), "'"));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string bytes = buffer.str();
  if (!bytes.starts_with("\x93NUMPY"))
    return ParseCsvMatrix(bytes, path.string());

  auto tensor = engine::ParseNpy(bytes, path.string());
  if (!tensor.ok()) return tensor.status();
  Matrix matrix;
  if (tensor->shape.size() == 1) {
    matrix.rows = 1;
    matrix.columns = tensor->shape[0];
  } else if (tensor->shape.size() == 2) {
    matrix.rows = tensor->shape[0];
    matrix.columns = tensor->shape[1];
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        path.string(), ": array has shape ", engine::ShapeString(tensor->shape),
        "; expected [rows, features] or [features]"));
  }
  matrix.values = std::move(tensor->values);
  return matrix;
}

}  // namespace nnserve::server
