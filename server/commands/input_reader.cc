// The offline command's input reader. See input_reader.h.
#include "server/commands/input_reader.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "formats/csv.h"

namespace nnserve::server {

absl::StatusOr<formats::FloatMatrix> ParseMatrix(std::string_view bytes,
                                                 std::string_view source) {
  if (formats::LooksLikeNpy(bytes)) {
    return formats::ParseNpyMatrix(bytes, source);
  }
  return formats::ParseCsvMatrix(bytes, source);
}

absl::StatusOr<formats::FloatMatrix> ReadMatrixFile(
    const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot open input file '", path.string(), "'"));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(
        absl::StrCat("cannot read input file '", path.string(), "'"));
  }
  return ParseMatrix(buffer.str(), path.string());
}

}  // namespace nnserve::server
