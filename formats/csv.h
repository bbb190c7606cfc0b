// The one CSV reader of nnserve (client `nnserve-cli predict`, offline
// `nnserve run`): CSV text in memory -> a [rows, cols] float32 matrix.
// Stateless; thread-safe.
//
// Dialect (numbers only; deliberately small):
// - One row per line. Lines end with "\n" or "\r\n"; the last line needs no
//   line ending. A UTF-8 byte-order mark at the very start is skipped.
// - Values are separated by commas; spaces and tabs around a value are
//   ignored. No quoting, no other separators, no header line (a header is
//   reported as a non-number on line 1; comment it out with '#').
// - Blank lines (only spaces/tabs) and lines whose first non-blank
//   character is '#' are skipped.
// - A value is a decimal number as C++ std::from_chars reads it, with an
//   optional leading '+': "1", "-2.5", ".5", "3e-2". Hexadecimal floats are
//   not accepted. NaN and infinities are refused here (the server and the
//   engine refuse non-finite inputs anyway, and here the line and column can
//   be named). A finite number beyond the float32 range is refused; one too
//   small for float32 becomes the nearest float32 (a subnormal or zero).
// - Every row has the same number of values as the first; at least one row.
//
// Errors are InvalidArgument: "<source>: csv: line L column C: ..." naming
// what was found (clipped) and what was expected.
#ifndef NNSERVE_FORMATS_CSV_H_
#define NNSERVE_FORMATS_CSV_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "formats/matrix.h"

namespace nnserve::formats {

// Parses `text` (see the dialect above). `source` names the input in
// messages, e.g. "rows.csv" or "<stdin>".
absl::StatusOr<FloatMatrix> ParseCsvMatrix(std::string_view text,
                                           std::string_view source);

}  // namespace nnserve::formats

#endif  // NNSERVE_FORMATS_CSV_H_
