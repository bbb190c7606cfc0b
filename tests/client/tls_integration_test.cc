// Integration tests of the client's TLS and mutual-TLS channels against the
// transport baseline server, with a CA and certificates made by openssl in a
// temporary directory for each run.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/channel.h"
#include "client/client.h"
#include "tests/client/subprocess.h"

namespace nnserve {
namespace {

constexpr char kBaseline[] = NNSERVE_TRANSPORT_BASELINE_PATH;

class TlsTest : public ::testing::Test {
 protected:
  // No gtest assertion here: GoogleTest skips (and CTest passes) every test
  // of a suite whose SetUpTestSuite failed; SetUp fails them instead.
  static void SetUpTestSuite() {
    dir_ = new std::string(client_testing::MakeTempDir());
    const std::string ext = *dir_ + "/san.ext";
    std::ofstream(ext) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    const std::vector<std::vector<std::string>> commands = {
        {"req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", Path("ca.key"),
         "-out", Path("ca.pem"), "-days", "1", "-subj", "/CN=nnserve-test-ca"},
        {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", Path("server.key"), "-out", Path("server.csr"),
         "-subj", "/CN=localhost"},
        {"x509", "-req", "-in", Path("server.csr"), "-CA", Path("ca.pem"),
         "-CAkey", Path("ca.key"), "-CAcreateserial", "-out",
         Path("server.pem"), "-days", "1", "-extfile", ext},
        {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", Path("client.key"), "-out", Path("client.csr"),
         "-subj", "/CN=nnserve-test-client"},
        {"x509", "-req", "-in", Path("client.csr"), "-CA", Path("ca.pem"),
         "-CAkey", Path("ca.key"), "-CAcreateserial", "-out",
         Path("client.pem"), "-days", "1"},
    };
    for (std::vector<std::string> args : commands) {
      args.insert(args.begin(), "/usr/bin/openssl");
      absl::StatusOr<client_testing::CommandResult> result =
          client_testing::RunCommand(args);
      if (!result.ok()) {
        setup_error_ = "openssl " + args[1] + ": " + result.status().ToString();
        return;
      }
      if (result->exit_code != 0) {
        setup_error_ = "openssl " + args[1] + " exited with " +
                       std::to_string(result->exit_code) + ": " + result->err;
        return;
      }
    }
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
    setup_error_.clear();
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }
  static std::string Path(const std::string& name) {
    return *dir_ + "/" + name;
  }

  // Starts the baseline with TLS; `mutual` requires client certificates.
  static client_testing::Baseline StartTlsBaseline(bool mutual) {
    std::vector<std::string> args = {"--tls-cert", Path("server.pem"),
                                     "--tls-key", Path("server.key")};
    if (mutual) {
      args.insert(args.end(), {"--tls-client-ca", Path("ca.pem")});
    }
    absl::StatusOr<client_testing::Baseline> baseline =
        client_testing::StartBaseline(kBaseline, args);
    EXPECT_TRUE(baseline.ok()) << baseline.status();
    return baseline.ok() ? *std::move(baseline) : client_testing::Baseline{};
  }

  static absl::StatusOr<ServingStatus> Check(const ChannelOptions& options) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        MakeChannel(options);
    if (!channel.ok()) return channel.status();
    CallOptions call;
    call.timeout = std::chrono::seconds(5);
    return Client(*channel).Health("", call);
  }

  static std::string* dir_;
  static inline std::string setup_error_;
};

std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, ServerAuthenticatedTls) {
  client_testing::Baseline baseline = StartTlsBaseline(false);
  ASSERT_NE(baseline.process, nullptr);
  ChannelOptions options;
  options.target = baseline.address;
  options.use_tls = true;
  options.root_certs_path = Path("ca.pem");
  absl::StatusOr<ServingStatus> status = Check(options);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, ServingStatus::kServing);

  // The certificate names "localhost" too.
  options.tls_server_name = "localhost";
  EXPECT_TRUE(Check(options).ok());

  // A name the certificate does not carry fails the handshake.
  options.tls_server_name = "elsewhere.example";
  EXPECT_EQ(Check(options).status().code(), absl::StatusCode::kUnavailable);

  // Plaintext against a TLS port fails too.
  ChannelOptions plaintext;
  plaintext.target = baseline.address;
  EXPECT_EQ(Check(plaintext).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, MutualTlsNeedsTheClientCertificate) {
  client_testing::Baseline baseline = StartTlsBaseline(true);
  ASSERT_NE(baseline.process, nullptr);
  ChannelOptions options;
  options.target = baseline.address;
  options.use_tls = true;
  options.root_certs_path = Path("ca.pem");
  EXPECT_EQ(Check(options).status().code(), absl::StatusCode::kUnavailable);

  options.client_cert_path = Path("client.pem");
  options.client_key_path = Path("client.key");
  absl::StatusOr<ServingStatus> status = Check(options);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, ServingStatus::kServing);
}

}  // namespace
}  // namespace nnserve
