#include "server/http/rest_server.h"

#include <charconv>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "civetweb.h"
#include "common/exceptions.h"
#include "common/str_util.h"
#include "server/frontend/status.h"
#include "server/http/http_status.h"
#include "server/http/oip_json.h"
#include "server/http/rest_routes.h"
#include "server/http/rest_tls.h"
#include "server/observability/logging.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kBinaryHeader = "Inference-Header-Content-Length";

// civetweb's own messages (a failed TLS handshake, a malformed request
// line) go to the log, not stderr.
int LogCivetwebMessage(const mg_connection* /*connection*/,
                       const char* message) {
  spdlog::warn("event=http_error message={}", LogQuote(message));
  return 1;
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
                       const ModelRegistry* registry)
    : options_(options), core_(core), registry_(registry) {}

absl::StatusOr<std::unique_ptr<RestServer>> RestServer::Start(
    const Options& options, OipCore* core, const ModelRegistry* registry) {
  auto server =
      std::unique_ptr<RestServer>(new RestServer(options, core, registry));
  absl::StatusOr<std::unique_ptr<RestTls>> tls = RestTls::Create(options.tls);
  if (!tls.ok()) return tls.status();
  server->tls_ = *std::move(tls);

  const std::string ports =
      absl::StrCat(options.address, server->tls_ != nullptr ? "s" : "");
  const std::string threads = absl::StrCat(std::max(options.threads, 1));
  const char* civetweb_options[] = {
      "listening_ports", ports.c_str(),  //
      "num_threads", threads.c_str(),    //
      "enable_keep_alive", "yes",        //
      // A request (headers and body) must arrive within 30 s, and an idle
      // kept-alive connection gives its thread back after 10 s.
      "request_timeout_ms", "30000",     //
      "keep_alive_timeout_ms", "10000",  //
      nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = &LogCivetwebMessage;
  if (server->tls_ != nullptr) callbacks.init_ssl = &RestTls::InitSsl;
  mg_init_data init{.callbacks = &callbacks,
                    .user_data = server->tls_.get(),
                    .configuration_options = civetweb_options};
  unsigned error_code = 0;
  char error_text[256] = "";
  mg_error_data error{.code = &error_code,
                      .text = error_text,
                      .text_buffer_size = sizeof error_text};
  server->context_ = mg_start2(&init, &error);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve REST on --http-address '", options.address,
        "': ", error_text[0] != '\0' ? error_text : "unknown error",
        " (address in use or invalid?)"));
  }
  mg_server_port port{};
  if (mg_get_server_ports(server->context_, 1, &port) < 1) {
    return absl::UnavailableError(absl::StrCat("REST on --http-address '",
                                               options.address,
                                               "' has no listening port"));
  }
  server->port_ = port.port;
  mg_set_request_handler(server->context_, "/", &RestServer::Handle,
                         server.get());
  return server;
}

RestServer::~RestServer() {
  if (context_ != nullptr) mg_stop(context_);
}

int RestServer::Handle(mg_connection* connection, void* self) {
  RestServer* server = static_cast<RestServer*>(self);
  Reply reply;
  const absl::Status failed = StatusOfCall("handling a REST request", [&] {
    reply = server->Serve(connection);
    return absl::OkStatus();
  });
  if (!failed.ok()) reply = Reply::Error(failed);

  const mg_request_info* request = mg_get_request_info(connection);
  const bool head = std::string_view(request->request_method) == "HEAD";
  const bool binary = reply.json_size < reply.body.size();
  mg_response_header_start(connection, reply.status);
  mg_response_header_add(connection, "Content-Type",
                         binary ? "application/octet-stream" : kJson.data(),
                         -1);
  if (binary) {
    mg_response_header_add(connection, kBinaryHeader.data(),
                           absl::StrCat(reply.json_size).c_str(), -1);
  }
  if (!reply.allow.empty()) {
    mg_response_header_add(connection, "Allow", reply.allow.data(),
                           static_cast<int>(reply.allow.size()));
  }
  mg_response_header_add(connection, "Content-Length",
                         absl::StrCat(reply.body.size()).c_str(), -1);
  mg_response_header_send(connection);
  if (!head) mg_write(connection, reply.body.data(), reply.body.size());
  return reply.status;
}

RestServer::Reply RestServer::Serve(mg_connection* connection) {
  const mg_request_info* request = mg_get_request_info(connection);
  const std::string_view method = request->request_method;
  absl::StatusOr<RestRoute> route = MatchRestRoute(
      method, request->local_uri != nullptr ? request->local_uri : "");
  if (!route.ok()) return Reply::Error(route.status());
  if (!route->method_allowed) {
    Reply reply = Reply::Error(absl::InvalidArgumentError(absl::StrCat(
        "method ", Clip(method), " is not allowed on '",
        Clip(request->local_uri), "'; expected ", Sv(route->allowed_method))));
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
    case RestOperation::kInfer: {
      const Clock::time_point start = Clock::now();
      Reply reply = Infer(connection, route->model, route->version);
      registry_->RequestMetricsFor(route->model)
          ->Record(Method::kRestInfer,
                   ToGrpcStatus(absl::Status(reply.code, "")).error_code(),
                   std::chrono::duration<double>(Clock::now() - start).count());
      return reply;
    }
    default:
      return Reply::Error(absl::InternalError("unrouted REST operation"));
  }
}

RestServer::Reply RestServer::Infer(mg_connection* connection,
                                    const std::string& model,
                                    const std::string& version) {
  const mg_request_info* request = mg_get_request_info(connection);
  const int64_t length = request->content_length;  // -1: not given.
  if (length > options_.max_body_bytes) {
    Reply reply = Reply::Error(absl::ResourceExhaustedError(absl::StrCat(
        "the request body is ", length, " bytes, over the server's limit of ",
        options_.max_body_bytes,
        " bytes for REST bodies (4 x --max-message-bytes)")));
    reply.status = 413;
    return reply;
  }
  // Without a Content-Length (chunked), the body may be up to the limit.
  const int64_t expected = length >= 0 ? length : options_.max_body_bytes;
  BudgetReservation reservation(&budget_in_use_,
                                expected * kDecodeBytesPerBodyByte);
  if (reservation.previous() > 0 &&
      reservation.previous() + expected * kDecodeBytesPerBodyByte >
          options_.memory_budget_bytes) {
    return Reply::Error(absl::ResourceExhaustedError(absl::StrCat(
        "the server is decoding ", reservation.previous(),
        " bytes' worth of other REST requests and this one would take it "
        "over its budget of ",
        options_.memory_budget_bytes,
        " bytes (--max-memory-bytes / 8); retry later")));
  }

  // Read the body.
  std::string body;
  body.resize(static_cast<size_t>(length >= 0 ? length : 0));
  size_t filled = 0;
  while (true) {
    if (filled == body.size()) {
      if (length >= 0) break;
      if (static_cast<int64_t>(body.size()) >= options_.max_body_bytes) {
        Reply reply = Reply::Error(absl::ResourceExhaustedError(
            absl::StrCat("the request body is over the server's limit of ",
                         options_.max_body_bytes, " bytes for REST bodies")));
        reply.status = 413;
        return reply;
      }
      body.resize(std::min<size_t>(std::max<size_t>(body.size() * 2, 65536),
                                   options_.max_body_bytes + 1));
    }
    const int read =
        mg_read(connection, body.data() + filled, body.size() - filled);
    if (read < 0) {
      return Reply::Error(absl::InvalidArgumentError(
          absl::StrCat("the request body ended after ", filled, " of ", length,
                       " bytes (connection closed or timed out)")));
    }
    if (read == 0) {
      if (length >= 0) {
        return Reply::Error(absl::InvalidArgumentError(
            absl::StrCat("the request body ended after ", filled, " of ",
                         length, " bytes")));
      }
      body.resize(filled);
      break;
    }
    filled += static_cast<size_t>(read);
  }

  // Decode.
  size_t json_size = body.size();
  if (const char* header = mg_get_header(connection, kBinaryHeader.data())) {
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
