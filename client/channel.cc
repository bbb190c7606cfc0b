#include "client/channel.h"

#include <fstream>
#include <sstream>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/strings/str_cat.h"

namespace nnserve {
namespace {

absl::StatusOr<std::string> ReadPemFile(const std::string& path,
                                        absl::string_view what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot open ", what, " file '",
                                            path,
                                            "'; expected a readable PEM "
                                            "file"));
  }
  std::ostringstream contents;
  contents << file.rdbuf();
  std::string pem = std::move(contents).str();
  if (pem.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " file '", path,
                     "' holds no PEM block (expected a line "
                     "starting with -----BEGIN)"));
  }
  return pem;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const ChannelOptions& options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError(
        "channel target is empty; expected host:port");
  }
  if (options.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max message size must be positive; found ",
                     options.max_message_bytes));
  }
  const bool has_tls_files =
      !options.root_certs_path.empty() || !options.client_cert_path.empty() ||
      !options.client_key_path.empty() || !options.tls_server_name.empty();
  if (has_tls_files && !options.use_tls) {
    return absl::InvalidArgumentError(
        "TLS certificate options were given for a plaintext channel; enable "
        "TLS or drop them");
  }
  if (options.client_cert_path.empty() != options.client_key_path.empty()) {
    return absl::InvalidArgumentError(
        "mutual TLS needs both a client certificate and a client key file; "
        "only one was given");
  }

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);

  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.use_tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.root_certs_path.empty()) {
      absl::StatusOr<std::string> roots =
          ReadPemFile(options.root_certs_path, "root certificates");
      if (!roots.ok()) return roots.status();
      ssl.pem_root_certs = *std::move(roots);
    }
    if (!options.client_cert_path.empty()) {
      absl::StatusOr<std::string> cert =
          ReadPemFile(options.client_cert_path, "client certificate");
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key =
          ReadPemFile(options.client_key_path, "client key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(cert);
      ssl.pem_private_key = *std::move(key);
    }
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  return grpc::CreateCustomChannel(options.target, credentials, args);
}

}  // namespace nnserve
