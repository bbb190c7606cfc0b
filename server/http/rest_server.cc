#include "server/http/rest_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/exceptions.h"
#include "common/str_util.h"
#include "httplib.h"
#include "server/frontend/status.h"
#include "server/http/http_status.h"
#include "server/http/oip_json.h"
#include "server/http/rest_repository.h"
#include "server/http/rest_routes.h"
#include "server/http/rest_tls.h"
#include "server/observability/logging.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kJson[] = "application/json";
constexpr std::string_view kBinaryHeader = "Inference-Header-Content-Length";
// What is kept of a body other than an infer request's.
constexpr size_t kMaxSmallBody = 64 << 10;

// "host:port" split; IPv6 hosts may be bracketed ("[::]:8000").
absl::StatusOr<std::pair<std::string, int>> SplitAddress(
    const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    const char* begin = address.data() + colon + 1;
    const char* end = address.data() + address.size();
    auto [last, error] = std::from_chars(begin, end, port);
    if (error != std::errc() || last != end || begin == end) port = -1;
  }
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-address '", address,
                     "' is not host:port; expected e.g. 0.0.0.0:8000 (empty "
                     "disables REST)"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, port);
}

// Reserves bytes of the decoding budget for one request; releases them
// when destroyed.
class BudgetReservation {
 public:
  BudgetReservation(std::atomic<int64_t>* in_use, int64_t bytes)
      : in_use_(in_use), bytes_(bytes) {
    previous_ = in_use_->fetch_add(bytes_, std::memory_order_relaxed);
  }
  ~BudgetReservation() {
    in_use_->fetch_sub(bytes_, std::memory_order_relaxed);
  }
  BudgetReservation(const BudgetReservation&) = delete;
  BudgetReservation& operator=(const BudgetReservation&) = delete;
  // In use by other requests when this one arrived.
  int64_t previous() const { return previous_; }

 private:
  std::atomic<int64_t>* const in_use_;
  const int64_t bytes_;
  int64_t previous_ = 0;
};

// cpp-httplib 0.11 listens with a compile-time backlog of 5: on a busy
// machine a burst of new connections then overflows the accept queue and
// the extra clients wait a full second for their SYN to be retried
// (measured: 32 callers connecting at once saw 1 s p99). Linux lets
// listen() be called again on a listening socket to change its backlog, so
// this finds the socket listening on `port` among the process's descriptors
// and widens it to SOMAXCONN. Best effort: a socket it cannot find keeps 5.
void WidenListenBacklog(int port) {
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/self/fd", error)) {
    int fd = -1;
    const std::string name = entry.path().filename().string();
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec !=
        std::errc()) {
      continue;
    }
    int listening = 0;
    socklen_t length = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 ||
        listening == 0) {
      continue;
    }
    sockaddr_storage address{};
    socklen_t address_length = sizeof address;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&address),
                    &address_length) != 0) {
      continue;
    }
    int bound_port = -1;
    if (address.ss_family == AF_INET) {
      bound_port = ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
    } else if (address.ss_family == AF_INET6) {
      bound_port = ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
    }
    if (bound_port == port) listen(fd, SOMAXCONN);
  }
}

}  // namespace

// An answer: HTTP status and body (JSON, possibly followed by binary
// tensor data after `json_size` bytes).
struct RestServer::Reply {
  int status = 200;
  std::string body;
  size_t json_size = std::string::npos;           // npos: all JSON.
  std::string_view allow;                         // The Allow header of a 405.
  absl::StatusCode code = absl::StatusCode::kOk;  // For the metrics.

  static Reply Json(int status, std::string body) {
    Reply reply;
    reply.status = status;
    reply.body = std::move(body);
    return reply;
  }
  static Reply Error(const absl::Status& status) {
    Reply reply;
    reply.status = HttpStatusCode(status.code());
    reply.body = ErrorJson(std::string(status.message()));
    reply.code = status.code();
    return reply;
  }
};

RestServer::RestServer(const Options& options, OipCore* core,
                       const ModelRegistry* registry, ModelLifecycle* lifecycle)
    : options_(options),
      core_(core),
      registry_(registry),
      lifecycle_(lifecycle) {}

absl::StatusOr<std::unique_ptr<RestServer>> RestServer::Start(
    const Options& options, OipCore* core, const ModelRegistry* registry,
    ModelLifecycle* lifecycle) {
  absl::StatusOr<std::pair<std::string, int>> address =
      SplitAddress(options.address);
  if (!address.ok()) return address.status();
  auto server = std::unique_ptr<RestServer>(
      new RestServer(options, core, registry, lifecycle));
  absl::StatusOr<std::unique_ptr<RestTls>> tls = RestTls::Create(options.tls);
  if (!tls.ok()) return tls.status();
  server->tls_ = *std::move(tls);
  if (server->tls_ != nullptr) {
    RestTls* rest_tls = server->tls_.get();
    auto https = std::make_unique<httplib::SSLServer>(
        [rest_tls](SSL_CTX& context) { return rest_tls->Configure(&context); });
    if (!https->is_valid()) {
      return absl::InternalError(
          "cannot set up the REST listener's TLS context (OpenSSL)");
    }
    server->http_ = std::move(https);
  } else {
    server->http_ = std::make_unique<httplib::Server>();
  }

  httplib::Server& http = *server->http_;
  const size_t threads = static_cast<size_t>(std::max(options.threads, 1));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // A request must arrive within 30 s; an idle kept-alive connection gives
  // its thread back after 10 s.
  http.set_read_timeout(std::chrono::seconds(30));
  http.set_write_timeout(std::chrono::seconds(30));
  http.set_keep_alive_timeout(10);
  // httplib closes a connection after 5 requests by default; callers that
  // keep one open would pay a reconnect every few calls.
  http.set_keep_alive_max_count(100000);
  http.set_tcp_nodelay(true);
  // Bodies over the limit are drained, not kept, and answered 413.
  http.set_payload_max_length(static_cast<size_t>(options.max_body_bytes));
  RestServer* self = server.get();
  const auto plain = [self](const httplib::Request& request,
                            httplib::Response& response) {
    self->Handle(request, response, nullptr);
  };
  const auto with_body = [self](const httplib::Request& request,
                                httplib::Response& response,
                                const httplib::ContentReader& reader) {
    self->Handle(request, response, &reader);
  };
  http.Get(".*", plain);
  http.Options(".*", plain);
  http.Post(".*", with_body);
  http.Put(".*", with_body);
  http.Patch(".*", with_body);
  http.Delete(".*", with_body);

  const auto& [host, port] = *address;
  const bool bound = port == 0
                         ? (server->port_ = http.bind_to_any_port(host)) > 0
                         : http.bind_to_port(host, port);
  if (!bound) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for REST on --http-address '",
                     options.address, "' (address in use or invalid)"));
  }
  if (port != 0) server->port_ = port;
  WidenListenBacklog(server->port_);
  server->listener_ = std::thread([&http] { http.listen_after_bind(); });
  return server;
}

RestServer::~RestServer() {
  if (http_ != nullptr) http_->stop();
  if (listener_.joinable()) listener_.join();
}

void RestServer::Handle(const httplib::Request& request,
                        httplib::Response& response,
                        const httplib::ContentReader* reader) {
  Reply reply;
  const absl::Status failed = StatusOfCall("handling a REST request", [&] {
    reply = Serve(request, reader);
    return absl::OkStatus();
  });
  if (!failed.ok()) reply = Reply::Error(failed);
  response.status = reply.status;
  if (!reply.allow.empty()) {
    response.set_header("Allow", std::string(reply.allow));
  }
  if (reply.json_size < reply.body.size()) {
    response.set_header(std::string(kBinaryHeader),
                        absl::StrCat(reply.json_size));
    response.set_content(std::move(reply.body), "application/octet-stream");
  } else {
    response.set_content(std::move(reply.body), kJson);
  }
}

RestServer::Reply RestServer::Serve(const httplib::Request& request,
                                    const httplib::ContentReader* reader) {
  absl::StatusOr<RestRoute> route =
      MatchRestRoute(request.method, request.path);
  if (route.ok() && route->method_allowed &&
      route->operation == RestOperation::kInfer) {
    // Counted before the drain check, so WaitForIdle cannot miss it.
    TrackedCall tracked(&calls_);
    const Clock::time_point start = Clock::now();
    Reply reply = calls_.draining()
                      ? Reply::Error(CallTracker::DrainingError())
                      : Infer(request, reader, route->model, route->version);
    registry_->RequestMetricsFor(route->model)
        ->Record(Method::kRestInfer,
                 ToGrpcStatus(absl::Status(reply.code, "")).error_code(),
                 std::chrono::duration<double>(Clock::now() - start).count());
    return reply;
  }
  // Any other request's body is read (so that a kept-alive connection
  // stays in step) and its first kMaxSmallBody bytes kept: the repository
  // index request's.
  std::string body;
  if (reader != nullptr) {
    (*reader)([&body](const char* data, size_t size) {
      body.append(data, std::min(size, kMaxSmallBody - body.size()));
      return true;
    });
  }
  if (!route.ok()) return Reply::Error(route.status());
  if (!route->method_allowed) {
    Reply reply = Reply::Error(absl::InvalidArgumentError(absl::StrCat(
        "method ", Clip(request.method), " is not allowed on '",
        Clip(request.path), "'; expected ", Sv(route->allowed_method))));
    reply.status = 405;
    reply.allow = route->allowed_method;
    return reply;
  }
  // Health checks answer even while draining: that is how callers see it.
  if (route->operation == RestOperation::kServerLive) {
    return Reply::Json(200, BoolJson("live", true));
  }
  if (route->operation == RestOperation::kServerReady) {
    const bool ready =
        ready_.load(std::memory_order_relaxed) && !calls_.draining();
    return Reply::Json(ready ? 200 : 503, BoolJson("ready", ready));
  }
  // Counted before the drain check, so WaitForIdle cannot miss it.
  TrackedCall tracked(&calls_);
  if (calls_.draining()) return Reply::Error(CallTracker::DrainingError());
  switch (route->operation) {
    case RestOperation::kServerMetadata: {
      inference::ServerMetadataResponse response;
      core_->ServerMetadata(&response);
      return Reply::Json(200, ServerMetadataJson(response));
    }
    case RestOperation::kModelMetadata: {
      inference::ModelMetadataResponse response;
      absl::Status status =
          core_->ModelMetadata(route->model, route->version, &response);
      if (!status.ok()) return Reply::Error(status);
      return Reply::Json(200, ModelMetadataJson(response));
    }
    case RestOperation::kModelReady: {
      absl::StatusOr<bool> ready =
          core_->ModelReady(route->model, route->version);
      if (!ready.ok()) return Reply::Error(ready.status());
      return Reply::Json(*ready ? 200 : 503,
                         ModelReadyJson(route->model, *ready));
    }
    case RestOperation::kRepositoryIndex: {
      absl::StatusOr<bool> ready_only = ParseRepositoryIndexRequest(body);
      if (!ready_only.ok()) return Reply::Error(ready_only.status());
      return Reply::Json(
          200, RepositoryIndexJson(registry_->ListModels(), *ready_only));
    }
    case RestOperation::kRepositoryLoad:
    case RestOperation::kRepositoryUnload: {
      absl::Status status = LoadOrUnload(
          lifecycle_, route->operation == RestOperation::kRepositoryLoad,
          route->model);
      if (!status.ok()) return Reply::Error(status);
      return Reply::Json(200, "{}");
    }
    default:
      return Reply::Error(absl::InternalError("unrouted REST operation"));
  }
}

RestServer::Reply RestServer::Infer(const httplib::Request& request,
                                    const httplib::ContentReader* reader,
                                    const std::string& model,
                                    const std::string& version) {
  // Without a Content-Length (chunked), the body may be up to the limit.
  const int64_t length =
      request.has_header("Content-Length")
          ? static_cast<int64_t>(
                request.get_header_value<uint64_t>("Content-Length"))
          : -1;
  const auto too_large = [&] {
    Reply reply = Reply::Error(absl::ResourceExhaustedError(absl::StrCat(
        "the request body is ",
        length >= 0 ? absl::StrCat(length, " bytes, over") : "over",
        " the server's limit of ", options_.max_body_bytes,
        " bytes for REST bodies (4 x --max-message-bytes)")));
    reply.status = 413;
    return reply;
  };
  const int64_t expected = std::min(
      length >= 0 ? length : options_.max_body_bytes, options_.max_body_bytes);
  BudgetReservation reservation(&budget_in_use_,
                                expected * kDecodeBytesPerBodyByte);
  if (length <= options_.max_body_bytes && reservation.previous() > 0 &&
      reservation.previous() + expected * kDecodeBytesPerBodyByte >
          options_.memory_budget_bytes) {
    // Its body is drained (not kept), so the connection stays in step.
    if (reader != nullptr) (*reader)([](const char*, size_t) { return true; });
    return Reply::Error(absl::ResourceExhaustedError(absl::StrCat(
        "the server is decoding ", reservation.previous(),
        " bytes' worth of other REST requests and this one would take it "
        "over its budget of ",
        options_.memory_budget_bytes,
        " bytes (--max-memory-bytes / 8); retry later")));
  }

  // Read the body (over the limit, httplib drains it and says so).
  std::string body;
  if (length > 0) body.reserve(static_cast<size_t>(expected));
  const bool complete =
      reader != nullptr && (*reader)([&](const char* data, size_t size) {
        body.append(data, size);
        return true;
      });
  if (length > options_.max_body_bytes ||
      static_cast<int64_t>(body.size()) > options_.max_body_bytes) {
    return too_large();
  }
  if (!complete) {
    return Reply::Error(absl::InvalidArgumentError(
        absl::StrCat("the request body ended after ", body.size(),
                     length >= 0 ? absl::StrCat(" of ", length) : "",
                     " bytes (connection closed or timed out)")));
  }

  // Decode.
  size_t json_size = body.size();
  if (request.has_header(std::string(kBinaryHeader))) {
    const std::string header =
        request.get_header_value(std::string(kBinaryHeader));
    const std::string_view text = header;
    auto [end, error] =
        std::from_chars(text.data(), text.data() + text.size(), json_size);
    if (error != std::errc() || end != text.data() + text.size() ||
        json_size > body.size()) {
      return Reply::Error(absl::InvalidArgumentError(absl::StrCat(
          "header ", Sv(kBinaryHeader), " is '", Clip(text),
          "'; expected the size of the JSON part, at most the body's ",
          body.size(), " bytes")));
    }
  }
  absl::StatusOr<HttpInferRequest> parsed =
      ParseInferRequestJson(body, json_size, model, version);
  std::string().swap(body);
  if (!parsed.ok()) return Reply::Error(parsed.status());

  // Delegate, and wait for the answer on this civetweb thread.
  inference::ModelInferResponse response;
  absl::Notification finished;
  absl::Status outcome;
  absl::Status status = core_->StartInfer(
      parsed->request, &response,
      OipCall{.deadline = std::chrono::system_clock::time_point::max(),
              .is_cancelled = {},
              .done = [&](absl::Status result) {
                outcome = std::move(result);
                finished.Notify();
              }});
  if (status.ok()) {
    finished.WaitForNotification();
    status = outcome;
  }
  if (!status.ok()) return Reply::Error(status);

  // Encode.
  HttpInferResponse encoded = FormatInferResponse(response, *parsed);
  Reply reply = Reply::Json(200, std::move(encoded.body));
  reply.json_size = encoded.json_size;
  return reply;
}

}  // namespace nnserve::server
