#include "tests/util/loopback_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace nnserve::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Closes the descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Waits until `fd` is ready for `events` or the deadline passes.
bool WaitReady(int fd, short events, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, events, 0};
    int n = poll(&pfd, 1, static_cast<int>(left.count()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

absl::StatusOr<std::string> Dechunk(absl::string_view body,
                                    absl::string_view url) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t eol = body.find("\r\n", pos);
    if (eol == absl::string_view::npos) {
      return absl::DataLossError(
          absl::StrCat(url, ": chunked body ends without a chunk-size line"));
    }
    absl::string_view size_text = body.substr(pos, eol - pos);
    size_text = size_text.substr(0, size_text.find(';'));
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(size_text), &size)) {
      return absl::DataLossError(absl::StrCat(
          url, ": bad chunk size '", size_text, "', expected hex digits"));
    }
    pos = eol + 2;
    if (size == 0) return out;
    if (pos + size > body.size()) {
      return absl::DataLossError(
          absl::StrCat(url, ": chunk of ", size, " bytes truncated"));
    }
    out.append(body.data() + pos, size);
    pos += size + 2;  // Data and its CRLF.
  }
}

}  // namespace

absl::StatusOr<HttpResponse> HttpGet(int port, absl::string_view path,
                                     std::chrono::milliseconds timeout) {
  return HttpRequest(port, "GET", path, "", {{"Accept", "text/plain"}},
                     timeout);
}

absl::StatusOr<HttpResponse> HttpRequest(int port, absl::string_view method,
                                         absl::string_view path,
                                         absl::string_view body,
                                         const HttpHeaders& headers,
                                         std::chrono::milliseconds timeout) {
  const std::string url = absl::StrCat("http://127.0.0.1:", port, path);
  const Clock::time_point deadline = Clock::now() + timeout;
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) {
    return absl::InternalError(
        absl::StrCat("socket() for ", url, ": ", strerror(errno)));
  }
  sockaddr_in addr = Loopback(port);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    if (errno != EINPROGRESS) {
      return absl::UnavailableError(
          absl::StrCat("connect to ", url, ": ", strerror(errno)));
    }
    if (!WaitReady(fd.get(), POLLOUT, deadline)) {
      return absl::DeadlineExceededError(
          absl::StrCat("connect to ", url, " timed out"));
    }
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      return absl::UnavailableError(
          absl::StrCat("connect to ", url, ": ", strerror(error)));
    }
  }

  std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n");
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&request, name, ": ", value, "\r\n");
  }
  if (!body.empty() || method == "POST") {
    absl::StrAppend(&request, "Content-Length: ", body.size(), "\r\n");
  }
  absl::StrAppend(&request, "Connection: close\r\n\r\n", body);
  size_t sent = 0;
  while (sent < request.size()) {
    if (!WaitReady(fd.get(), POLLOUT, deadline)) {
      return absl::DeadlineExceededError(
          absl::StrCat("sending the request to ", url, " timed out"));
    }
    ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent,
                     MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return absl::UnavailableError(
          absl::StrCat("send to ", url, ": ", strerror(errno)));
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }

  std::string raw;
  char buffer[16384];
  while (true) {
    if (!WaitReady(fd.get(), POLLIN, deadline)) {
      return absl::DeadlineExceededError(
          absl::StrCat("reading the response from ", url, " timed out after ",
                       raw.size(), " bytes"));
    }
    ssize_t n = recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return absl::UnavailableError(
          absl::StrCat("recv from ", url, ": ", strerror(errno)));
    }
    raw.append(buffer, static_cast<size_t>(n));
  }

  size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    return absl::DataLossError(absl::StrCat(
        url, ": response has no end of headers (", raw.size(), " bytes)"));
  }
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(raw).substr(0, header_end), "\r\n");
  HttpResponse response;
  // Status line: HTTP/1.x <code> <reason>
  std::vector<absl::string_view> status_fields =
      absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  if (status_fields.size() < 2 ||
      !absl::SimpleAtoi(status_fields[1], &response.status_code)) {
    return absl::DataLossError(absl::StrCat(
        url, ": bad status line '", lines[0], "', expected 'HTTP/1.x <code>'"));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) continue;
    response.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  absl::string_view payload = absl::string_view(raw).substr(header_end + 4);
  auto te = response.headers.find("transfer-encoding");
  if (te != response.headers.end() &&
      absl::AsciiStrToLower(te->second) == "chunked") {
    absl::StatusOr<std::string> dechunked = Dechunk(payload, url);
    if (!dechunked.ok()) return dechunked.status();
    response.body = *std::move(dechunked);
  } else {
    response.body = std::string(payload);
  }
  return response;
}

absl::StatusOr<int> PickFreeLoopbackPort() {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return absl::InternalError(absl::StrCat("socket(): ", strerror(errno)));
  }
  sockaddr_in addr = Loopback(0);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::InternalError(
        absl::StrCat("bind(127.0.0.1:0): ", strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::InternalError(
        absl::StrCat("getsockname(): ", strerror(errno)));
  }
  return static_cast<int>(ntohs(addr.sin_port));
}

}  // namespace nnserve::testing
