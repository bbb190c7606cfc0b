// Input matrices for the offline `nnserve run` command: a float32/float64/
// float16 .npy file (via the engine's parser) or CSV text (one row per line,
// comma-separated numbers; blank lines and lines starting with '#' are
// skipped). Both yield a row-major [rows, columns] float matrix; a 1-D .npy
// array is one row. Stateless; thread-safe.
#ifndef NNSERVE_SERVER_COMMANDS_INPUT_READER_H_
#define NNSERVE_SERVER_COMMANDS_INPUT_READER_H_

#include <cstdint>
#include <filesystem>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace nnserve::server {

struct Matrix {
  int64_t rows = 0;
  int64_t columns = 0;
  std::vector<float> values;  // rows * columns, row-major.
};

// Parses CSV `text`. `source` names the input in messages ("stdin",
// "x.csv"). Errors name the line (1-based) and column: a value that is not
// a number, or a row whose length differs from the first row's.
absl::StatusOr<Matrix> ParseCsvMatrix(absl::string_view text,
                                      absl::string_view source);

// Reads `path`: .npy files by content (magic "\x93NUMPY"), anything else as
// CSV. A .npy array must be 1-D or 2-D.
absl::StatusOr<Matrix> ReadMatrixFile(const std::filesystem::path& path);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_COMMANDS_INPUT_READER_H_
