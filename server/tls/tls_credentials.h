// TLS for the gRPC listener: turns the --tls-* settings into
// grpc::ServerCredentials.
//
//   no files                  → plaintext (grpc::InsecureServerCredentials)
//   cert + key                → TLS; clients are not asked for a certificate
//   cert + key + client CA    → mutual TLS; every client must present a
//                               certificate that chains to the client CA
//
// The files are PEM. They are validated once, before the server listens
// (ValidateTlsFiles: readable, a certificate / private key of the right
// kind, the key belongs to the certificate), with errors that name the flag
// and the file. While serving, gRPC's FileWatcherCertificateProvider re-reads
// all of them every `reload_seconds`, so rotating a certificate (or the
// client CA) needs no restart: new connections use the new files, open
// connections keep the keys they were made with. A rotated file that cannot
// be read keeps the last pair that could; one that is readable but wrong
// (not PEM, key of another certificate) fails new handshakes until it is
// fixed — gRPC 1.51's behaviour, see server/README.md, "TLS".
//
// Pure functions over their arguments; thread-safe. The returned credentials
// own the file watcher (gRPC reference-counts it) for as long as a server
// built with them exists.
#ifndef NNSERVE_SERVER_TLS_TLS_CREDENTIALS_H_
#define NNSERVE_SERVER_TLS_TLS_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/server_credentials.h"

namespace nnserve::server {

struct TlsOptions {
  std::string cert_file;       // --tls-cert-file: server certificate chain.
  std::string key_file;        // --tls-key-file: its private key.
  std::string client_ca_file;  // --tls-client-ca-file: roots for clients.
  // --tls-reload-seconds: how often the files are checked for changes.
  int reload_seconds = 60;
};

enum class TlsMode { kOff, kTls, kMutual };

// "off", "tls" or "mtls" (the event=starting log field `tls=`).
absl::string_view TlsModeName(TlsMode mode);

// Which mode the options ask for; InvalidArgument naming the flags when
// they do not make one (only one of cert/key, a client CA without them, a
// reload interval under 1 s). Reads no files.
absl::StatusOr<TlsMode> TlsModeOf(const TlsOptions& options);

// TlsModeOf, then for TLS: each file readable and holding PEM of the right
// kind (certificates in the cert and client CA files, an unencrypted private
// key in the key file) and the key matching the first certificate. Errors
// name the flag, the file and what was expected.
absl::StatusOr<TlsMode> ValidateTlsFiles(const TlsOptions& options);

// ValidateTlsFiles, then the credentials for the mode: insecure, or
// grpc::experimental::TlsServerCredentials over a
// FileWatcherCertificateProvider on the files.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_TLS_TLS_CREDENTIALS_H_
