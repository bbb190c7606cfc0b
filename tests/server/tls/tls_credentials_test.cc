// server/tls/tls_credentials: which mode the --tls-* settings ask for, the
// start-up checks of the PEM files (each error names the flag and the file),
// and credentials for every mode. Certificates come from openssl
// (tests/util/test_certs.h).
#include "server/tls/tls_credentials.h"

#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"
#include "tests/util/test_certs.h"

namespace nnserve::server {
namespace {

using ::nnserve::testing::CertAndKey;
using ::nnserve::testing::ScopedTempDir;
using ::nnserve::testing::TestCertificates;
using ::testing::AllOf;
using ::testing::HasSubstr;

class TlsCredentialsTest : public ::testing::Test {
 protected:
  // No gtest assertion here: GoogleTest skips (and CTest passes) every test
  // of a suite whose SetUpTestSuite failed; SetUp fails them instead.
  static void SetUpTestSuite() {
    try {
      dir_ = new ScopedTempDir("nnserve_tls_unit");
    } catch (const std::exception& e) {
      setup_error_ = e.what();
      return;
    }
    absl::StatusOr<TestCertificates> certs =
        nnserve::testing::MakeTestCertificates(dir_->path());
    if (!certs.ok()) {
      setup_error_ = "test certificates: " + certs.status().ToString();
      return;
    }
    certs_ = new TestCertificates(*certs);
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
    delete dir_;
    dir_ = nullptr;
    setup_error_.clear();
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  static TlsOptions Server(const CertAndKey& pair) {
    TlsOptions options;
    options.cert_file = pair.cert.string();
    options.key_file = pair.key.string();
    return options;
  }

  // A file in the suite's directory with `text` in it.
  static std::string WriteFile(const std::string& name,
                               const std::string& text) {
    const std::filesystem::path path = dir_->path() / name;
    std::ofstream(path) << text;
    return path.string();
  }

  static inline ScopedTempDir* dir_ = nullptr;
  static inline TestCertificates* certs_ = nullptr;
  static inline std::string setup_error_;
};

TEST_F(TlsCredentialsTest, ModeFollowsWhichFilesAreSet) {
  EXPECT_EQ(*TlsModeOf(TlsOptions{}), TlsMode::kOff);
  TlsOptions tls = Server(certs_->server);
  EXPECT_EQ(*TlsModeOf(tls), TlsMode::kTls);
  tls.client_ca_file = certs_->ca.cert.string();
  EXPECT_EQ(*TlsModeOf(tls), TlsMode::kMutual);
  EXPECT_EQ(TlsModeName(TlsMode::kOff), "off");
  EXPECT_EQ(TlsModeName(TlsMode::kTls), "tls");
  EXPECT_EQ(TlsModeName(TlsMode::kMutual), "mtls");
}

TEST_F(TlsCredentialsTest, IncompleteSettingsNameTheMissingFlag) {
  TlsOptions cert_only;
  cert_only.cert_file = certs_->server.cert.string();
  absl::StatusOr<TlsMode> mode = TlsModeOf(cert_only);
  ASSERT_EQ(mode.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mode.status().message(),
              AllOf(HasSubstr("--tls-cert-file is set but --tls-key-file is "
                              "not"),
                    HasSubstr("expected both")));

  TlsOptions key_only;
  key_only.key_file = certs_->server.key.string();
  EXPECT_THAT(TlsModeOf(key_only).status().message(),
              HasSubstr("--tls-key-file is set but --tls-cert-file is not"));

  TlsOptions ca_only;
  ca_only.client_ca_file = certs_->ca.cert.string();
  mode = TlsModeOf(ca_only);
  ASSERT_EQ(mode.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mode.status().message(),
              HasSubstr("--tls-client-ca-file is set but --tls-cert-file and "
                        "--tls-key-file are not"));

  TlsOptions no_reload = Server(certs_->server);
  no_reload.reload_seconds = 0;
  EXPECT_THAT(TlsModeOf(no_reload).status().message(),
              HasSubstr("--tls-reload-seconds is 0; expected at least 1"));
}

TEST_F(TlsCredentialsTest, GoodFilesValidate) {
  TlsOptions tls = Server(certs_->server);
  absl::StatusOr<TlsMode> mode = ValidateTlsFiles(tls);
  ASSERT_TRUE(mode.ok()) << mode.status();
  EXPECT_EQ(*mode, TlsMode::kTls);
  tls.client_ca_file = certs_->ca.cert.string();
  mode = ValidateTlsFiles(tls);
  ASSERT_TRUE(mode.ok()) << mode.status();
  EXPECT_EQ(*mode, TlsMode::kMutual);
}

TEST_F(TlsCredentialsTest, UnreadableFileNamesFlagAndPath) {
  TlsOptions tls = Server(certs_->server);
  tls.key_file = (dir_->path() / "missing.key").string();
  absl::StatusOr<TlsMode> mode = ValidateTlsFiles(tls);
  ASSERT_EQ(mode.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      mode.status().message(),
      AllOf(HasSubstr("cannot read --tls-key-file '" + tls.key_file + "'"),
            HasSubstr("No such file")));

  tls = Server(certs_->server);
  tls.client_ca_file = (dir_->path() / "missing-ca.pem").string();
  EXPECT_THAT(ValidateTlsFiles(tls).status().message(),
              HasSubstr("cannot read --tls-client-ca-file '" +
                        tls.client_ca_file + "'"));
}

TEST_F(TlsCredentialsTest, FilesOfTheWrongKindAreRefused) {
  // Not PEM at all.
  TlsOptions tls = Server(certs_->server);
  tls.cert_file = WriteFile("not-pem.txt", "hello, I am not a certificate\n");
  EXPECT_THAT(ValidateTlsFiles(tls).status().message(),
              AllOf(HasSubstr("--tls-cert-file '" + tls.cert_file +
                              "' holds no PEM certificate"),
                    HasSubstr("-----BEGIN CERTIFICATE-----")));

  // The key given as the certificate and the certificate as the key.
  tls = Server(certs_->server);
  tls.cert_file = certs_->server.key.string();
  EXPECT_THAT(ValidateTlsFiles(tls).status().message(),
              HasSubstr("--tls-cert-file '" + tls.cert_file +
                        "' holds no PEM certificate"));
  tls = Server(certs_->server);
  tls.key_file = certs_->server.cert.string();
  EXPECT_THAT(ValidateTlsFiles(tls).status().message(),
              AllOf(HasSubstr("--tls-key-file '" + tls.key_file +
                              "' holds no PEM private key"),
                    HasSubstr("-----BEGIN PRIVATE KEY-----")));

  // A client CA file without a certificate in it.
  tls = Server(certs_->server);
  tls.client_ca_file = WriteFile("empty-ca.pem", "");
  EXPECT_THAT(ValidateTlsFiles(tls).status().message(),
              HasSubstr("--tls-client-ca-file '" + tls.client_ca_file +
                        "' holds no PEM certificate"));
}

TEST_F(TlsCredentialsTest, KeyOfAnotherCertificateIsRefused) {
  TlsOptions tls = Server(certs_->server);
  tls.key_file = certs_->other_server.key.string();
  absl::StatusOr<TlsMode> mode = ValidateTlsFiles(tls);
  ASSERT_EQ(mode.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mode.status().message(),
              AllOf(HasSubstr("the private key in --tls-key-file '" +
                              tls.key_file + "' does not belong"),
                    HasSubstr("--tls-cert-file '" + tls.cert_file + "'")));
}

TEST_F(TlsCredentialsTest, EncryptedKeyIsRefusedWithoutPrompting) {
  const std::string encrypted = (dir_->path() / "encrypted.key").string();
  ASSERT_TRUE(
      nnserve::testing::RunOpenssl(
          dir_->path(), {"pkey", "-in", certs_->server.key.string(), "-aes256",
                         "-passout", "pass:secret", "-out", encrypted})
          .ok());
  TlsOptions tls = Server(certs_->server);
  tls.key_file = encrypted;
  EXPECT_THAT(ValidateTlsFiles(tls).status().message(),
              HasSubstr("--tls-key-file '" + encrypted +
                        "' holds an encrypted private key"));
}

TEST_F(TlsCredentialsTest, CredentialsForEveryMode) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(TlsOptions{});
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_NE(*credentials, nullptr);

  TlsOptions tls = Server(certs_->server);
  credentials = MakeServerCredentials(tls);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_NE(*credentials, nullptr);

  tls.client_ca_file = certs_->ca.cert.string();
  credentials = MakeServerCredentials(tls);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_NE(*credentials, nullptr);

  // The checks run first: no credentials for a bad pair.
  tls.key_file = certs_->other_server.key.string();
  EXPECT_EQ(MakeServerCredentials(tls).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nnserve::server
