// Input matrices for the offline `nnserve run` command, read with the shared
// parsers of formats/: a .npy file (formats/matrix.h ParseNpyMatrix: any
// dtype, version and order the engine reads; 1-D = one row, 2-D = rows) or
// CSV text (formats/csv.h ParseCsvMatrix, whose dialect is documented
// there). Stateless; thread-safe.
#ifndef NNSERVE_SERVER_COMMANDS_INPUT_READER_H_
#define NNSERVE_SERVER_COMMANDS_INPUT_READER_H_

#include <filesystem>
#include <string_view>

#include "absl/status/statusor.h"
#include "formats/matrix.h"

namespace nnserve::server {

// Parses `bytes` as .npy when they start with the .npy magic "\x93NUMPY",
// as CSV otherwise. `source` names the input in messages ("stdin", ...).
absl::StatusOr<formats::FloatMatrix> ParseMatrix(std::string_view bytes,
                                                 std::string_view source);

// Reads `path` and parses it as ParseMatrix does (by content, whatever its
// extension). A file that cannot be opened is NotFound naming it.
absl::StatusOr<formats::FloatMatrix> ReadMatrixFile(
    const std::filesystem::path& path);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_COMMANDS_INPUT_READER_H_
