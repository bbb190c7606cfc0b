// The file/stdin dispatcher over the shared parsers (see input_readers.h).
#include "client/input_readers.h"

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/str_util.h"
#include "formats/csv.h"
#include "formats/matrix.h"

namespace nnserve {
namespace {

absl::StatusOr<RowBatch> ToRowBatch(
    absl::StatusOr<formats::FloatMatrix> matrix) {
  if (!matrix.ok()) return matrix.status();
  RowBatch batch;
  batch.rows = matrix->rows;
  batch.cols = matrix->cols;
  batch.values = std::move(matrix->values);
  return batch;
}

}  // namespace

absl::StatusOr<RowBatch> ParseInputRows(std::string_view bytes,
                                        std::string_view source) {
  if (formats::LooksLikeNpy(bytes)) {
    return ToRowBatch(formats::ParseNpyMatrix(bytes, source));
  }
  return ToRowBatch(formats::ParseCsvMatrix(bytes, source));
}

absl::StatusOr<RowBatch> ReadInputRowsFromStream(std::istream& in,
                                                 std::string_view source) {
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat(Sv(source), ": read failed"));
  }
  return ParseInputRows(bytes, source);
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
  if (file.bad()) {
    return absl::DataLossError(absl::StrCat(path, ": read failed"));
  }
  const std::string bytes = std::move(contents).str();
  if (absl::EndsWithIgnoreCase(path, ".npy")) {
    return ToRowBatch(formats::ParseNpyMatrix(bytes, path));
  }
  return ToRowBatch(formats::ParseCsvMatrix(bytes, path));
}

}  // namespace nnserve
