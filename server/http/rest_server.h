// RestServer: the Open Inference Protocol's (KServe V2) HTTP/JSON binding,
// served by cpp-httplib on its own port (--http-address). (Not civetweb,
// although prometheus-cpp brings it in: Debian 12's civetweb 1.15 cannot
// load OpenSSL 3 — it looks for SSL_get_peer_certificate, which 3.0
// removed — so it could not serve TLS; cpp-httplib links libssl3.) Its handlers
// are thin, as the gRPC ones: route (rest_routes.h), decode (oip_json.h),
// delegate to OipCore (the same validation, scheduler path, batching and
// limits as gRPC ModelInfer and Predict), encode, record (method=
// "rest_infer" in the request metrics). HTTP codes come from
// http_status.h; every error body is {"error": "<message>"}.
//
// Limits: a body over `max_body_bytes` is refused with 413 before it is
// read; bodies being read and decoded hold at most `memory_budget_bytes`
// (each charged kDecodeBytesPerBodyByte per byte, what its JSON document
// and tensors take), beyond which a request is refused with 429 — so no
// caller can exhaust the server's memory over REST either.
//
// Readiness and draining as the gRPC services: /v2/health/ready is 200
// between SetReady(true) and SetReady(false) or BeginDrain(), else 503;
// after BeginDrain() every request other than the health checks is refused
// with 503; WaitForIdle waits for the requests already accepted.
//
// Each connection is served by one of `threads` worker threads, which
// waits for the scheduler's answer; a kept-alive connection holds its
// thread between requests (up to 10 s idle). Thread-safe. The OipCore and
// ModelRegistry must outlive the server; destroying it stops listening and
// waits for the worker threads.
#ifndef NNSERVE_SERVER_HTTP_REST_SERVER_H_
#define NNSERVE_SERVER_HTTP_REST_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "server/frontend/call_tracker.h"
#include "server/frontend/oip_core.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/lifecycle/model_registry.h"
#include "server/tls/tls_credentials.h"

namespace httplib {
class Server;
struct Request;
struct Response;
class ContentReader;
}  // namespace httplib

namespace nnserve::server {

class RestTls;

// The Open Inference Protocol extensions served here (ServerMetadata over
// REST): classification, Triton's binary tensor data and model repository
// (rest_repository.h).
inline constexpr std::string_view kRestExtensions[] = {
    "classification", "binary_tensor_data", "model_repository"};

// What decoding a JSON body costs in memory per body byte: the body, its
// parsed JSON document and the decoded tensor (measured ≈ 3 for float
// arrays; rounded up).
inline constexpr int64_t kDecodeBytesPerBodyByte = 4;

class RestServer {
 public:
  struct Options {
    std::string address;  // host:port; port 0 lets the OS choose.
    int threads = 32;     // Worker threads (connections served at once).
    int64_t max_body_bytes = 64 << 20;
    int64_t memory_budget_bytes = 256 << 20;
    // The same files as the gRPC listener (tls_credentials.h); empty:
    // plaintext. See rest_tls.h.
    TlsOptions tls;
  };

  // Listens on `options.address`; UNAVAILABLE naming the address when it
  // cannot, INVALID_ARGUMENT for unusable TLS files.
  // `lifecycle` serves the model repository extension (rest_repository.h).
  static absl::StatusOr<std::unique_ptr<RestServer>> Start(
      const Options& options, OipCore* core, const ModelRegistry* registry,
      ModelLifecycle* lifecycle);
  ~RestServer();
  RestServer(const RestServer&) = delete;
  RestServer& operator=(const RestServer&) = delete;

  // The port listened on.
  int port() const { return port_; }

  void SetReady(bool ready) { ready_.store(ready, std::memory_order_relaxed); }
  void BeginDrain() { calls_.BeginDrain(); }
  bool WaitForIdle(std::chrono::system_clock::time_point deadline) {
    return calls_.WaitForIdle(deadline);
  }

 private:
  struct Reply;
  RestServer(const Options& options, OipCore* core,
             const ModelRegistry* registry, ModelLifecycle* lifecycle);

  // Every request: `reader` reads its body (null for GET and HEAD).
  void Handle(const httplib::Request& request, httplib::Response& response,
              const httplib::ContentReader* reader);
  Reply Serve(const httplib::Request& request,
              const httplib::ContentReader* reader);
  Reply Infer(const httplib::Request& request,
              const httplib::ContentReader* reader, const std::string& model,
              const std::string& version);

  const Options options_;
  OipCore* const core_;
  const ModelRegistry* const registry_;
  ModelLifecycle* const lifecycle_;
  std::unique_ptr<RestTls> tls_;  // Null: plaintext.
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;  // Runs http_'s accept loop.
  int port_ = 0;
  std::atomic<bool> ready_{false};
  std::atomic<int64_t> budget_in_use_{0};
  CallTracker calls_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_HTTP_REST_SERVER_H_
