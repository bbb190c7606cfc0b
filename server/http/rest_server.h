// RestServer: the Open Inference Protocol's (KServe V2) HTTP/JSON binding,
// served by civetweb on its own port (--http-address). Its handlers are
// thin, as the gRPC ones: route (rest_routes.h), decode (oip_json.h),
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
// Each request runs on one of civetweb's `threads` worker threads, which
// waits for the scheduler's answer; a kept-alive connection holds a thread
// between its requests. Thread-safe. The OipCore and ModelRegistry must
// outlive the server; destroying it stops civetweb (mg_stop) and waits for
// its threads.
#ifndef NNSERVE_SERVER_HTTP_REST_SERVER_H_
#define NNSERVE_SERVER_HTTP_REST_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/frontend/call_tracker.h"
#include "server/frontend/oip_core.h"
#include "server/lifecycle/model_registry.h"
#include "server/tls/tls_credentials.h"

struct mg_context;
struct mg_connection;

namespace nnserve::server {

class RestTls;

// What decoding a JSON body costs in memory per body byte: the body, its
// parsed JSON document and the decoded tensor (measured ≈ 3 for float
// arrays; rounded up).
inline constexpr int64_t kDecodeBytesPerBodyByte = 4;

class RestServer {
 public:
  struct Options {
    std::string address;  // host:port; port 0 lets the OS choose.
    int threads = 32;     // civetweb worker threads (connections served).
    int64_t max_body_bytes = 64 << 20;
    int64_t memory_budget_bytes = 256 << 20;
    // The same files as the gRPC listener (tls_credentials.h); empty:
    // plaintext. See rest_tls.h.
    TlsOptions tls;
  };

  // Listens on `options.address`; UNAVAILABLE naming the address when it
  // cannot, INVALID_ARGUMENT for unusable TLS files.
  static absl::StatusOr<std::unique_ptr<RestServer>> Start(
      const Options& options, OipCore* core, const ModelRegistry* registry);
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
             const ModelRegistry* registry);

  // civetweb's request handler (every path): answers and returns the HTTP
  // status it sent.
  static int Handle(mg_connection* connection, void* self);
  Reply Serve(mg_connection* connection);
  Reply Infer(mg_connection* connection, const std::string& model,
              const std::string& version);

  const Options options_;
  OipCore* const core_;
  const ModelRegistry* const registry_;
  std::unique_ptr<RestTls> tls_;  // Null: plaintext.
  mg_context* context_ = nullptr;
  int port_ = 0;
  std::atomic<bool> ready_{false};
  std::atomic<int64_t> budget_in_use_{0};
  CallTracker calls_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_HTTP_REST_SERVER_H_
