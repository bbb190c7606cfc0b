// RestTls: TLS for the REST listener from the same files, with the same
// meaning, as the gRPC listener (server/tls/tls_credentials.h): cert + key
// -> TLS; + client CA -> mutual TLS, every client must present a
// certificate that chains to it.
//
// The HTTP server creates the OpenSSL context and hands it to Configure,
// which requires TLS 1.2 or newer and installs a certificate callback. That
// callback gives each new handshake the current certificate, key and client
// roots, which are re-read from the files at most every `reload_seconds` — so
// rotating the files needs no restart, as on the gRPC port. A re-read that
// fails (a file missing, not PEM, a key of another certificate) keeps the last
// good material and logs why.
//
// Thread-safe: handshakes run concurrently on the server's threads. Must
// outlive the SSL_CTX it configured.
#ifndef NNSERVE_SERVER_HTTP_REST_TLS_H_
#define NNSERVE_SERVER_HTTP_REST_TLS_H_

#include <chrono>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/tls/tls_credentials.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace nnserve::server {

class RestTls {
 public:
  // Null when `options` ask for no TLS; errors as ValidateTlsFiles (naming
  // the flag and the file).
  static absl::StatusOr<std::unique_ptr<RestTls>> Create(
      const TlsOptions& options);
  ~RestTls();

  // Sets `context` up for this listener; false if OpenSSL refused.
  bool Configure(SSL_CTX* context);

 private:
  struct Material;  // OpenSSL objects loaded from the files.
  using Clock = std::chrono::steady_clock;

  RestTls(const TlsOptions& options, TlsMode mode,
          std::shared_ptr<const Material> material);
  static absl::StatusOr<std::shared_ptr<const Material>> Load(
      const TlsOptions& options, TlsMode mode);
  // OpenSSL's certificate callback; `self` is this.
  static int OnCertificate(SSL* ssl, void* self);
  std::shared_ptr<const Material> Current();

  const TlsOptions options_;
  const TlsMode mode_;
  absl::Mutex mutex_;
  std::shared_ptr<const Material> material_ ABSL_GUARDED_BY(mutex_);
  Clock::time_point loaded_at_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_HTTP_REST_TLS_H_
