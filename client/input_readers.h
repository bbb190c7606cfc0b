// Reading user input for Predict: a .npy file or CSV text, from a file or
// standard input, into a RowBatch. The formats are parsed by the shared
// parsers of formats/ (formats/matrix.h ParseNpyMatrix: any dtype, version
// and order the engine reads, 1-D = one row, 2-D = rows; formats/csv.h
// ParseCsvMatrix: its dialect is documented there). Pure functions;
// thread-safe. Errors name the source (file name or "<stdin>"), the line
// and column or header field, and what was expected.
#ifndef NNSERVE_CLIENT_INPUT_READERS_H_
#define NNSERVE_CLIENT_INPUT_READERS_H_

#include <istream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "client/rows.h"

namespace nnserve {

// Parses `bytes` as .npy when they start with the .npy magic "\x93NUMPY",
// as CSV otherwise. `source` names the input in messages.
absl::StatusOr<RowBatch> ParseInputRows(std::string_view bytes,
                                        std::string_view source);

// Reads rows from `path`: "-" reads standard input (as ParseInputRows);
// "*.npy" is parsed as .npy (a file without the magic is an error, not
// CSV); anything else as CSV.
absl::StatusOr<RowBatch> ReadInputRows(const std::string& path);

// Like ReadInputRows("-") but from an arbitrary stream (for tests and tools).
absl::StatusOr<RowBatch> ReadInputRowsFromStream(std::istream& in,
                                                 std::string_view source);

}  // namespace nnserve

#endif  // NNSERVE_CLIENT_INPUT_READERS_H_
