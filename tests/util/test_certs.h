// Test certificates made with the `openssl` command-line tool (Debian
// package openssl) in a directory the caller owns: certificate authorities,
// server certificates for 127.0.0.1 / localhost and client certificates,
// all PEM with unencrypted P-256 keys, valid for two days.
//
// Every function writes only into `dir` and returns the paths it wrote;
// errors carry the openssl command and its output. No shared state: safe to
// call from several threads with different directories or names.
#ifndef NNSERVE_TESTS_UTIL_TEST_CERTS_H_
#define NNSERVE_TESTS_UTIL_TEST_CERTS_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nnserve::testing {

// A PEM certificate and its private key.
struct CertAndKey {
  std::filesystem::path cert;
  std::filesystem::path key;
};

// A self-signed CA "<name>.pem" + "<name>.key" with CN=<name>.
absl::StatusOr<CertAndKey> MakeTestCa(const std::filesystem::path& dir,
                                      const std::string& name);

// A server certificate "<name>.pem" + "<name>.key" issued by `ca`, with
// subjectAltName IP:127.0.0.1 and DNS:localhost.
absl::StatusOr<CertAndKey> MakeServerCert(const std::filesystem::path& dir,
                                          const std::string& name,
                                          const CertAndKey& ca);

// A client certificate "<name>.pem" + "<name>.key" issued by `ca`
// (extendedKeyUsage clientAuth, CN=<name>).
absl::StatusOr<CertAndKey> MakeClientCert(const std::filesystem::path& dir,
                                          const std::string& name,
                                          const CertAndKey& ca);

// Two unrelated CAs, each with a server and a client certificate:
// ca/server/client and other_ca/other_server/other_client.
struct TestCertificates {
  CertAndKey ca;
  CertAndKey server;
  CertAndKey client;
  CertAndKey other_ca;
  CertAndKey other_server;
  CertAndKey other_client;
};
absl::StatusOr<TestCertificates> MakeTestCertificates(
    const std::filesystem::path& dir);

// Runs `/usr/bin/openssl args...` with its output in dir/openssl.log; an
// error with the command and that output unless it exits 0.
absl::Status RunOpenssl(const std::filesystem::path& dir,
                        std::vector<std::string> args);

// Replaces `to` with a copy of `from` atomically (copy to a temporary name
// in `to`'s directory, then rename), as certificate rotation should.
absl::Status ReplaceFileAtomically(const std::filesystem::path& from,
                                   const std::filesystem::path& to);

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_UTIL_TEST_CERTS_H_
