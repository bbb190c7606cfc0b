// Tests for the channel factory's option checks (client/channel.h).
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/channel.h"
#include "tests/client/subprocess.h"

namespace nnserve {
namespace {

using ::testing::HasSubstr;

TEST(ChannelTest, InsecureChannelForAnyTarget) {
  ChannelOptions options;
  options.target = "127.0.0.1:1";
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options);
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_NE(*channel, nullptr);
}

TEST(ChannelTest, RejectsInconsistentOptions) {
  ChannelOptions empty;
  empty.target = "";
  EXPECT_THAT(MakeChannel(empty).status().message(),
              HasSubstr("target is empty"));

  ChannelOptions size;
  size.max_message_bytes = 0;
  EXPECT_THAT(MakeChannel(size).status().message(),
              HasSubstr("max message size must be positive; found 0"));

  ChannelOptions plaintext_with_certs;
  plaintext_with_certs.root_certs_path = "/etc/ssl/certs/ca.pem";
  EXPECT_THAT(MakeChannel(plaintext_with_certs).status().message(),
              HasSubstr("plaintext channel"));

  ChannelOptions half_mtls;
  half_mtls.use_tls = true;
  half_mtls.client_cert_path = "client.pem";
  EXPECT_THAT(MakeChannel(half_mtls).status().message(),
              HasSubstr("both a client certificate and a client key"));
}

TEST(ChannelTest, TlsFilesMustExistAndHoldPem) {
  ChannelOptions missing;
  missing.use_tls = true;
  missing.root_certs_path = "/nonexistent/ca.pem";
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(missing);
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(channel.status().message(),
              HasSubstr("root certificates file '/nonexistent/ca.pem'"));

  const std::string dir = client_testing::MakeTempDir();
  const std::string not_pem = dir + "/ca.pem";
  std::ofstream(not_pem) << "hello\n";
  ChannelOptions bad;
  bad.use_tls = true;
  bad.root_certs_path = not_pem;
  EXPECT_THAT(MakeChannel(bad).status().message(), HasSubstr("no PEM block"));

  // Syntactically PEM: the channel is built (certificates are verified when
  // connecting, not here).
  const std::string pem = dir + "/roots.pem";
  std::ofstream(pem) << "-----BEGIN CERTIFICATE-----\nAAAA\n"
                        "-----END CERTIFICATE-----\n";
  ChannelOptions tls;
  tls.use_tls = true;
  tls.root_certs_path = pem;
  tls.tls_server_name = "nnserve.internal";
  EXPECT_TRUE(MakeChannel(tls).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nnserve
