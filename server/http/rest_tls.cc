#include "server/http/rest_tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/str_util.h"
#include "server/observability/logging.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {

// Owns one generation of the files' contents.
struct RestTls::Material {
  X509* leaf = nullptr;
  STACK_OF(X509) * chain = nullptr;  // The certificates after the leaf.
  EVP_PKEY* key = nullptr;
  X509_STORE* client_roots = nullptr;            // Mutual TLS only.
  STACK_OF(X509_NAME) * client_names = nullptr;  // Mutual TLS only.

  Material() = default;
  Material(const Material&) = delete;
  Material& operator=(const Material&) = delete;
  ~Material() {
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    X509_STORE_free(client_roots);
    sk_X509_NAME_pop_free(client_names, X509_NAME_free);
  }
};

namespace {

// OpenSSL's queued errors as one string (and the queue cleared).
std::string OpenSslErrors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    absl::StrAppend(&text, text.empty() ? "" : "; ", buffer);
  }
  return text.empty() ? "no detail from OpenSSL" : text;
}

absl::Status LoadError(const char* flag, const std::string& path,
                       std::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot load ", flag, " '", path, "' for REST: ", OpenSslErrors(),
      "; expected ", Sv(expected)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RestTls>> RestTls::Create(
    const TlsOptions& options) {
  absl::StatusOr<TlsMode> mode = ValidateTlsFiles(options);
  if (!mode.ok()) return mode.status();
  if (*mode == TlsMode::kOff) return nullptr;
  absl::StatusOr<std::shared_ptr<const Material>> material =
      Load(options, *mode);
  if (!material.ok()) return material.status();
  return std::unique_ptr<RestTls>(
      new RestTls(options, *mode, *std::move(material)));
}

RestTls::RestTls(const TlsOptions& options, TlsMode mode,
                 std::shared_ptr<const Material> material)
    : options_(options),
      mode_(mode),
      material_(std::move(material)),
      loaded_at_(Clock::now()) {}

RestTls::~RestTls() = default;

absl::StatusOr<std::shared_ptr<const RestTls::Material>> RestTls::Load(
    const TlsOptions& options, TlsMode mode) {
  auto material = std::make_shared<Material>();
  ERR_clear_error();
  BIO* certs = BIO_new_file(options.cert_file.c_str(), "r");
  if (certs == nullptr) {
    return LoadError("--tls-cert-file", options.cert_file, "a readable file");
  }
  material->leaf = PEM_read_bio_X509(certs, nullptr, nullptr, nullptr);
  material->chain = sk_X509_new_null();
  while (X509* next = PEM_read_bio_X509(certs, nullptr, nullptr, nullptr)) {
    sk_X509_push(material->chain, next);
  }
  BIO_free(certs);
  ERR_clear_error();  // The read past the last certificate.
  if (material->leaf == nullptr) {
    return LoadError("--tls-cert-file", options.cert_file,
                     "PEM certificates (the server's first)");
  }
  BIO* key = BIO_new_file(options.key_file.c_str(), "r");
  if (key == nullptr) {
    return LoadError("--tls-key-file", options.key_file, "a readable file");
  }
  material->key = PEM_read_bio_PrivateKey(key, nullptr, nullptr, nullptr);
  BIO_free(key);
  if (material->key == nullptr) {
    return LoadError("--tls-key-file", options.key_file,
                     "an unencrypted PEM private key");
  }
  if (X509_check_private_key(material->leaf, material->key) != 1) {
    return LoadError("--tls-key-file", options.key_file,
                     "the private key of --tls-cert-file's certificate");
  }
  if (mode == TlsMode::kMutual) {
    material->client_roots = X509_STORE_new();
    material->client_names =
        SSL_load_client_CA_file(options.client_ca_file.c_str());
    if (X509_STORE_load_file(material->client_roots,
                             options.client_ca_file.c_str()) != 1 ||
        material->client_names == nullptr) {
      return LoadError("--tls-client-ca-file", options.client_ca_file,
                       "PEM CA certificates");
    }
  }
  return std::shared_ptr<const Material>(std::move(material));
}

std::shared_ptr<const RestTls::Material> RestTls::Current() {
  absl::MutexLock lock(&mutex_);
  const Clock::time_point now = Clock::now();
  if (now - loaded_at_ >= std::chrono::seconds(options_.reload_seconds)) {
    loaded_at_ = now;
    absl::StatusOr<std::shared_ptr<const Material>> fresh =
        Load(options_, mode_);
    if (fresh.ok()) {
      material_ = *std::move(fresh);
    } else {
      spdlog::warn("event=tls_reload_failed listener=rest error={}",
                   LogQuote(fresh.status().message()));
    }
  }
  return material_;
}

int RestTls::OnCertificate(SSL* ssl, void* self) {
  std::shared_ptr<const Material> material =
      static_cast<RestTls*>(self)->Current();
  if (SSL_use_cert_and_key(ssl, material->leaf, material->key, material->chain,
                           /*override=*/1) != 1) {
    return 0;
  }
  if (material->client_roots != nullptr) {
    // Both are taken per handshake: a new client CA applies to the next.
    if (SSL_set1_verify_cert_store(ssl, material->client_roots) != 1) {
      return 0;
    }
    SSL_set_client_CA_list(ssl, SSL_dup_CA_list(material->client_names));
  }
  return 1;
}

bool RestTls::Configure(SSL_CTX* context) {
  if (SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1) {
    return false;
  }
  SSL_CTX_set_cert_cb(context, &RestTls::OnCertificate, this);
  if (mode_ == TlsMode::kMutual) {
    SSL_CTX_set_verify(
        context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return true;
}

}  // namespace nnserve::server
