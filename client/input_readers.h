// Readers that turn user input into a RowBatch for Predict: a minimal .npy
// reader ('<f4' / '<f8', C order, format versions 1.0-3.0, 1-D = one row or
// 2-D = rows), a CSV reader (one row per line, comma separated) and a file /
// stdin dispatcher. Pure functions; thread-safe. Errors name the source
// (file name or "<stdin>"), the field or line, and what was expected.
#ifndef NNSERVE_CLIENT_INPUT_READERS_H_
#define NNSERVE_CLIENT_INPUT_READERS_H_

#include <istream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/rows.h"

namespace nnserve {

// Parses the bytes of a .npy file. `source` is used in error messages.
absl::StatusOr<RowBatch> ParseNpyRows(absl::string_view bytes,
                                      absl::string_view source);

// Parses CSV text: one row per non-blank line, values separated by commas
// (spaces around values are ignored; lines starting with '#' are comments).
// Every row must have the same number of values.
absl::StatusOr<RowBatch> ParseCsvRows(absl::string_view text,
                                      absl::string_view source);

// True when `bytes` starts with the .npy magic string "\x93NUMPY".
bool LooksLikeNpy(absl::string_view bytes);

// Reads rows from `path`: "-" reads standard input (npy when it starts with
// the npy magic, CSV otherwise); "*.npy" is parsed as npy; anything else as
// CSV.
absl::StatusOr<RowBatch> ReadInputRows(const std::string& path);

// Like ReadInputRows("-") but from an arbitrary stream (for tests and tools).
absl::StatusOr<RowBatch> ReadInputRowsFromStream(std::istream& in,
                                                 absl::string_view source);

}  // namespace nnserve

#endif  // NNSERVE_CLIENT_INPUT_READERS_H_
