#include "server/tls/tls_credentials.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace nnserve::server {
namespace {

constexpr char kCertFlag[] = "--tls-cert-file";
constexpr char kKeyFlag[] = "--tls-key-file";
constexpr char kClientCaFlag[] = "--tls-client-ca-file";

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

// "--flag 'path'", the way every message names a file.
std::string Named(const char* flag, const std::string& path) {
  return absl::StrCat(flag, " '", path, "'");
}

absl::StatusOr<std::string> ReadFile(const char* flag,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", Named(flag, path), ": ",
                     std::strerror(errno), "; expected a readable PEM file"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read ", Named(flag, path), "; expected a readable PEM file"));
  }
  return text.str();
}

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Never asks for a pass phrase (OpenSSL's default would prompt on the
// terminal); an encrypted key therefore fails to load.
int NoPassphrase(char*, int, int, void*) { return 0; }

// The certificates of a PEM bundle, in order; an error naming `flag` when
// there is none.
absl::StatusOr<std::vector<X509Ptr>> ReadCertificates(const char* flag,
                                                      const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(flag, path);
  if (!text.ok()) return text.status();
  std::vector<X509Ptr> certs;
  BioPtr bio = MemoryBio(*text);
  while (X509* cert =
             PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)) {
    certs.emplace_back(cert);
  }
  // Reading stops with "no start line" at the end of the bundle; a damaged
  // block stops it too, which the count below reports.
  ERR_clear_error();
  if (certs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Named(flag, path),
                     " holds no PEM certificate; expected one or more "
                     "'-----BEGIN CERTIFICATE-----' blocks"));
  }
  return certs;
}

absl::StatusOr<KeyPtr> ReadPrivateKey(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(kKeyFlag, path);
  if (!text.ok()) return text.status();
  BioPtr bio = MemoryBio(*text);
  KeyPtr key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (key != nullptr) return key;
  if (absl::StrContains(*text, "ENCRYPTED")) {
    return absl::InvalidArgumentError(absl::StrCat(
        Named(kKeyFlag, path),
        " holds an encrypted private key; expected an "
        "unencrypted PEM key (gRPC cannot ask for a pass phrase)"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      Named(kKeyFlag, path),
      " holds no PEM private key; expected a "
      "'-----BEGIN PRIVATE KEY-----' (or RSA/EC PRIVATE KEY) block"));
}

}  // namespace

absl::string_view TlsModeName(TlsMode mode) {
  switch (mode) {
    case TlsMode::kOff:
      return "off";
    case TlsMode::kTls:
      return "tls";
    case TlsMode::kMutual:
      return "mtls";
  }
  return "off";
}

absl::StatusOr<TlsMode> TlsModeOf(const TlsOptions& options) {
  const bool cert = !options.cert_file.empty();
  const bool key = !options.key_file.empty();
  const bool client_ca = !options.client_ca_file.empty();
  if (cert != key) {
    return absl::InvalidArgumentError(absl::StrCat(
        cert ? kCertFlag : kKeyFlag, " is set but ",
        cert ? kKeyFlag : kCertFlag,
        " is not; expected both (the server certificate and its private key) "
        "or neither"));
  }
  if (!cert) {
    if (client_ca) {
      return absl::InvalidArgumentError(absl::StrCat(
          kClientCaFlag, " is set but ", kCertFlag, " and ", kKeyFlag,
          " are not; mutual TLS needs the server's own certificate and key "
          "as well"));
    }
    return TlsMode::kOff;
  }
  if (options.reload_seconds < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-reload-seconds is ",
                                                   options.reload_seconds,
                                                   "; expected at least 1"));
  }
  return client_ca ? TlsMode::kMutual : TlsMode::kTls;
}

absl::StatusOr<TlsMode> ValidateTlsFiles(const TlsOptions& options) {
  absl::StatusOr<TlsMode> mode = TlsModeOf(options);
  if (!mode.ok() || *mode == TlsMode::kOff) return mode;
  absl::StatusOr<std::vector<X509Ptr>> chain =
      ReadCertificates(kCertFlag, options.cert_file);
  if (!chain.ok()) return chain.status();
  absl::StatusOr<KeyPtr> key = ReadPrivateKey(options.key_file);
  if (!key.ok()) return key.status();
  const int match = X509_check_private_key(chain->front().get(), key->get());
  ERR_clear_error();
  if (match != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the private key in ", Named(kKeyFlag, options.key_file),
                     " does not belong to the first certificate in ",
                     Named(kCertFlag, options.cert_file),
                     "; expected the key the certificate was issued for"));
  }
  if (*mode == TlsMode::kMutual) {
    absl::StatusOr<std::vector<X509Ptr>> roots =
        ReadCertificates(kClientCaFlag, options.client_ca_file);
    if (!roots.ok()) return roots.status();
  }
  return mode;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options) {
  absl::StatusOr<TlsMode> mode = ValidateTlsFiles(options);
  if (!mode.ok()) return mode.status();
  if (*mode == TlsMode::kOff) return grpc::InsecureServerCredentials();
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          options.key_file, options.cert_file, options.client_ca_file,
          static_cast<unsigned int>(options.reload_seconds));
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (*mode == TlsMode::kMutual) {
    tls.watch_root_certs();
    tls.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::experimental::TlsServerCredentials(tls);
  if (credentials == nullptr) {
    return absl::InternalError(
        absl::StrCat("gRPC refused the TLS settings for ",
                     Named(kCertFlag, options.cert_file), " and ",
                     Named(kKeyFlag, options.key_file)));
  }
  return credentials;
}

}  // namespace nnserve::server
