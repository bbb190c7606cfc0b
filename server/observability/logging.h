// Logging set-up for the nnserve binary: spdlog's default logger writes
// one-line structured records to stderr,
//   ts=2026-01-01T12:00:00.123456Z level=info event=model_loaded model=digits
// and callers format their own key=value pairs (use LogQuote for values that
// may contain spaces or quotes). Call InitLogging once from main before
// starting threads; spdlog loggers are thread-safe afterwards.
#ifndef NNSERVE_SERVER_OBSERVABILITY_LOGGING_H_
#define NNSERVE_SERVER_OBSERVABILITY_LOGGING_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace nnserve::server {

// `level`: trace, debug, info, warn, error, critical or off. InvalidArgument
// naming the accepted levels otherwise.
absl::Status InitLogging(std::string_view level);

// `text` as a double-quoted logfmt value with `"` and `\` escaped and line
// breaks written as \n, e.g. error="file 'x' not found".
std::string LogQuote(absl::string_view text);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_OBSERVABILITY_LOGGING_H_
