// A minimal blocking HTTP/1.0 client for 127.0.0.1, used by integration
// tests to scrape the server's Prometheus /metrics endpoint and to call its
// REST endpoint without curl.
// Also: picking a free loopback TCP port. Stateless; thread-safe (each call
// uses its own socket).
#ifndef NNSERVE_TESTS_UTIL_LOOPBACK_HTTP_H_
#define NNSERVE_TESTS_UTIL_LOOPBACK_HTTP_H_

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nnserve::testing {

struct HttpResponse {
  int status_code = 0;  // e.g. 200
  // Header names lower-cased; the last occurrence wins.
  std::map<std::string, std::string> headers;
  std::string body;  // De-chunked when Transfer-Encoding is chunked.
};

// GET http://127.0.0.1:<port><path> (path starts with '/'). Errors name the
// URL and what went wrong (connect refused, timeout, malformed response).
absl::StatusOr<HttpResponse> HttpGet(
    int port, absl::string_view path,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// `method` http://127.0.0.1:<port><path> with `body` (a Content-Length is
// sent for a body and for every POST) and extra `headers`.
absl::StatusOr<HttpResponse> HttpRequest(
    int port, absl::string_view method, absl::string_view path,
    absl::string_view body, const HttpHeaders& headers = {},
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
// released). Another process may take it before you do; prefer port 0 +
// --port-file where the server supports it.
absl::StatusOr<int> PickFreeLoopbackPort();

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_UTIL_LOOPBACK_HTTP_H_
