// Channel factory for nnserve clients: target address, insecure or TLS
// credentials (root certificates and an optional client certificate/key, read
// from PEM files), and message size limits. The returned grpc::Channel is
// thread-safe and meant to be shared (one Client, many threads).
#ifndef NNSERVE_CLIENT_CHANNEL_H_
#define NNSERVE_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include <grpcpp/channel.h>

#include "absl/status/statusor.h"

namespace nnserve {

struct ChannelOptions {
  // "host:port" or any gRPC target URI ("dns:///...", "unix:/path").
  std::string target = "localhost:50051";
  // Plaintext when false; TLS (grpc::SslCredentials) when true.
  bool use_tls = false;
  // PEM file with the CA roots; empty = gRPC's default roots. TLS only.
  std::string root_certs_path;
  // PEM client certificate chain and private key for mutual TLS: both or
  // neither. TLS only.
  std::string client_cert_path;
  std::string client_key_path;
  // Overrides the name checked against the server certificate (e.g. when
  // connecting by IP to a certificate issued for a host name). TLS only.
  std::string tls_server_name;
  // Largest message accepted and sent, in bytes (gRPC's default receive
  // limit is 4 MiB, too small for big batches).
  int max_message_bytes = 64 << 20;
};

// Builds the channel (connects lazily). Fails when a certificate/key file
// cannot be read, when only one of cert/key is given, when TLS paths are set
// without use_tls, or when the target or size limit is invalid.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const ChannelOptions& options);

}  // namespace nnserve

#endif  // NNSERVE_CLIENT_CHANNEL_H_
