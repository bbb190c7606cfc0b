// TLS and mutual TLS on the real nnserve binary (--tls-cert-file,
// --tls-key-file, --tls-client-ca-file, --tls-reload-seconds and their
// NNSERVE_TLS_* variables), with certificates made by openssl for each run
// (tests/util/test_certs.h): two unrelated CAs, each with a server
// certificate for 127.0.0.1/localhost and a client certificate.
//
// Covered: Predict over TLS equals the reference; plaintext clients and
// clients trusting another CA are refused; mutual TLS refuses clients
// without a certificate or with one from another CA; certificate rotation
// while serving (same pid); a missing file during rotation keeps the last
// pair; start-up errors exit non-zero naming the flag; nnserve-cli and the
// Python example over TLS and mutual TLS.
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/subprocess.h"
#include "tests/server/integration/integration_fixture.h"
#include "tests/util/test_certs.h"

namespace nnserve::testing {
namespace {

namespace fs = std::filesystem;
using engine::Activation;
using engine::WeightLayout;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kMaxRelativeError = 1e-5;
constexpr char kCli[] = NNSERVE_CLI_PATH;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A client on its own TLS channel that trusts `ca` and, when given,
// presents `client_cert`. Each channel has its own connections (local
// subchannel pool), so every probe makes a new TLS handshake.
std::unique_ptr<Client> TlsClient(const std::string& target, const fs::path& ca,
                                  const CertAndKey* client_cert = nullptr) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadText(ca);
  if (client_cert != nullptr) {
    ssl.pem_cert_chain = ReadText(client_cert->cert);
    ssl.pem_private_key = ReadText(client_cert->key);
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return std::make_unique<Client>(
      grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args));
}

// Health of the inference service over `client`'s channel.
absl::Status Reach(const Client& client) {
  CallOptions call;
  call.timeout = std::chrono::seconds(5);
  absl::StatusOr<ServingStatus> status = client.Health(kInferenceService, call);
  if (!status.ok()) return status.status();
  if (*status != ServingStatus::kServing) {
    return absl::UnavailableError("reached, but not SERVING");
  }
  return absl::OkStatus();
}

class TlsIntegrationTest : public ::testing::Test {
 protected:
  // No gtest assertion here: GoogleTest skips (and CTest passes) every test
  // of a suite whose SetUpTestSuite failed; SetUp fails them instead.
  static void SetUpTestSuite() {
    try {
      dir_ = new ScopedTempDir("nnserve_tls_itest");
      absl::StatusOr<TestCertificates> certs =
          MakeTestCertificates(dir_->path());
      if (!certs.ok()) {
        setup_error_ =
            absl::StrCat("test certificates: ", certs.status().ToString());
        return;
      }
      certs_ = new TestCertificates(*certs);
      model_ = new RandomModel(BuildRandomModel(
          "tiny", 6,
          {LayerDef(12, Activation::kRelu), LayerDef(3, Activation::kSoftmax)},
          WeightLayout::kOutIn, 5));
      for (const char* label : {"red", "green", "blue"}) {
        model_->config.mutable_output()->add_labels(label);
      }
      fs::create_directory(dir_->path() / "repo");
      WriteModelDir(dir_->path() / "repo", *model_, 1, FileFormat::kSafetensors,
                    formats::DType::kF32);
    } catch (const std::exception& e) {
      setup_error_ = absl::StrCat("suite setup threw: ", e.what());
    }
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
    delete certs_;
    certs_ = nullptr;
    delete dir_;
    dir_ = nullptr;
    setup_error_.clear();
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  // Starts nnserve on the suite's repository with `extra_args`; returns
  // once it serves (the port file is written then).
  static std::unique_ptr<ServerProcess> Start(
      std::vector<std::string> extra_args,
      std::map<std::string, std::string> environment = {}) {
    ServerOptions options;
    options.model_repository = dir_->path() / "repo";
    options.extra_args = std::move(extra_args);
    options.environment = std::move(environment);
    absl::StatusOr<std::unique_ptr<ServerProcess>> process =
        ServerProcess::Start(options);
    EXPECT_TRUE(process.ok()) << process.status();
    return process.ok() ? *std::move(process) : nullptr;
  }

  static std::vector<std::string> ServerFlags(const CertAndKey& pair) {
    return {"--tls-cert-file=" + pair.cert.string(),
            "--tls-key-file=" + pair.key.string()};
  }

  // A Predict of two rows on `client`, checked against the reference.
  static void ExpectExactPredict(const Client& client) {
    const RowBatch batch = RandomRows(2, 6, 17);
    absl::StatusOr<v1::PredictRequest> request =
        MakePredictRequest("tiny", 0, batch, Encoding::kRaw);
    ASSERT_TRUE(request.ok()) << request.status();
    absl::StatusOr<v1::PredictResponse> response = client.Predict(*request);
    ASSERT_TRUE(response.ok()) << response.status();
    absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
    ASSERT_TRUE(output.ok()) << output.status();
    const std::vector<double> expected = ReferenceOutput(*model_, batch);
    ASSERT_EQ(output->values.size(), expected.size());
    EXPECT_LE(MaxRowRelativeError(output->values, expected, 2),
              kMaxRelativeError);
    ASSERT_EQ(response->classes_size(), 2);
    EXPECT_EQ(response->classes(0), ArgMaxRow(expected, 3, 0));
    EXPECT_EQ(response->classes(1), ArgMaxRow(expected, 3, 1));
  }

  // Runs nnserve-cli with `args` (and `stdin_text`) against `process`.
  static client_testing::CommandResult Cli(const ServerProcess& process,
                                           std::vector<std::string> args,
                                           const std::string& stdin_text = "") {
    args.insert(args.begin(),
                {kCli, "--address", process.grpc_target(), "--timeout", "5"});
    absl::StatusOr<client_testing::CommandResult> result =
        client_testing::RunCommand(args, stdin_text);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : client_testing::CommandResult{};
  }

  static inline ScopedTempDir* dir_ = nullptr;
  static inline TestCertificates* certs_ = nullptr;
  static inline RandomModel* model_ = nullptr;
  static inline std::string setup_error_;
};

TEST_F(TlsIntegrationTest, PredictOverTlsAndRefusals) {
  std::unique_ptr<ServerProcess> server = Start(ServerFlags(certs_->server));
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->ReadLog(), HasSubstr(" tls=tls "));

  std::unique_ptr<Client> trusted =
      TlsClient(server->grpc_target(), certs_->ca.cert);
  ASSERT_TRUE(Reach(*trusted).ok()) << Reach(*trusted);
  ExpectExactPredict(*trusted);

  // A plaintext client cannot talk to the TLS port.
  absl::StatusOr<std::unique_ptr<Client>> plaintext =
      ConnectClient(server->grpc_target());
  ASSERT_TRUE(plaintext.ok());
  EXPECT_EQ(Reach(**plaintext).code(), absl::StatusCode::kUnavailable);

  // A client that trusts another CA refuses the server's certificate.
  absl::Status other =
      Reach(*TlsClient(server->grpc_target(), certs_->other_ca.cert));
  EXPECT_FALSE(other.ok());
  EXPECT_THAT(other.message(), HasSubstr("certificate verify failed"));

  // Without --tls-client-ca-file a client certificate is not asked for, and
  // one that is offered anyway does not matter.
  EXPECT_TRUE(Reach(*TlsClient(server->grpc_target(), certs_->ca.cert,
                               &certs_->other_client))
                  .ok());
}

TEST_F(TlsIntegrationTest, MutualTlsNeedsAClientCertificateFromTheClientCa) {
  std::vector<std::string> flags = ServerFlags(certs_->server);
  flags.push_back("--tls-client-ca-file=" + certs_->ca.cert.string());
  std::unique_ptr<ServerProcess> server = Start(flags);
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->ReadLog(), HasSubstr(" tls=mtls "));
  const std::string target = server->grpc_target();

  EXPECT_EQ(Reach(*TlsClient(target, certs_->ca.cert)).code(),
            absl::StatusCode::kUnavailable)
      << "no client certificate";
  EXPECT_EQ(
      Reach(*TlsClient(target, certs_->ca.cert, &certs_->other_client)).code(),
      absl::StatusCode::kUnavailable)
      << "client certificate from another CA";

  std::unique_ptr<Client> client =
      TlsClient(target, certs_->ca.cert, &certs_->client);
  ASSERT_TRUE(Reach(*client).ok()) << Reach(*client);
  ExpectExactPredict(*client);
}

TEST_F(TlsIntegrationTest, EnvironmentVariablesTurnOnMutualTls) {
  std::unique_ptr<ServerProcess> server =
      Start({}, {{"NNSERVE_TLS_CERT_FILE", certs_->server.cert.string()},
                 {"NNSERVE_TLS_KEY_FILE", certs_->server.key.string()},
                 {"NNSERVE_TLS_CLIENT_CA_FILE", certs_->ca.cert.string()},
                 {"NNSERVE_TLS_RELOAD_SECONDS", "7"}});
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->ReadLog(), AllOf(HasSubstr(" tls=mtls "),
                                       HasSubstr("tls_reload_seconds=7")));
  const std::string target = server->grpc_target();
  EXPECT_FALSE(Reach(*TlsClient(target, certs_->ca.cert)).ok());
  EXPECT_TRUE(Reach(*TlsClient(target, certs_->ca.cert, &certs_->client)).ok());
}

TEST_F(TlsIntegrationTest, RotatedCertificateServesWithoutRestart) {
  // The server reads its pair from live/, which the test rewrites.
  const fs::path live = dir_->path() / "live";
  fs::create_directories(live);
  const CertAndKey files{live / "tls.crt", live / "tls.key"};
  ASSERT_TRUE(ReplaceFileAtomically(certs_->server.cert, files.cert).ok());
  ASSERT_TRUE(ReplaceFileAtomically(certs_->server.key, files.key).ok());
  std::vector<std::string> flags = ServerFlags(files);
  flags.push_back("--tls-reload-seconds=1");
  std::unique_ptr<ServerProcess> server = Start(flags);
  ASSERT_NE(server, nullptr);
  const pid_t pid = server->pid();
  const std::string target = server->grpc_target();
  ASSERT_TRUE(Reach(*TlsClient(target, certs_->ca.cert)).ok());
  EXPECT_FALSE(Reach(*TlsClient(target, certs_->other_ca.cert)).ok());

  // A connection made before the rotation keeps working after it.
  std::unique_ptr<Client> before = TlsClient(target, certs_->ca.cert);
  ASSERT_TRUE(Reach(*before).ok());

  // Rotate to the other CA's pair (each file replaced atomically).
  ASSERT_TRUE(ReplaceFileAtomically(certs_->other_server.key, files.key).ok());
  ASSERT_TRUE(
      ReplaceFileAtomically(certs_->other_server.cert, files.cert).ok());
  ASSERT_TRUE(
      server
          ->WaitUntil(
              [&] {
                return Reach(*TlsClient(target, certs_->other_ca.cert)).ok();
              },
              std::chrono::seconds(15),
              "a new connection trusting the other CA succeeds")
          .ok());
  EXPECT_FALSE(Reach(*TlsClient(target, certs_->ca.cert)).ok())
      << "new connections must present the rotated certificate";
  ExpectExactPredict(*TlsClient(target, certs_->other_ca.cert));
  EXPECT_TRUE(Reach(*before).ok()) << "the open connection was dropped";
  EXPECT_TRUE(server->Running());
  EXPECT_EQ(server->pid(), pid);

  // A key file that disappears mid-rotation: once gRPC has tried to re-read
  // it (and logged that it could not), the last good pair still serves.
  const size_t log_size = server->ReadLog().size();
  fs::remove(files.key);
  ASSERT_TRUE(server
                  ->WaitUntil(
                      [&] {
                        return server->ReadLog().find(
                                   "All retry attempts failed", log_size) !=
                               std::string::npos;
                      },
                      std::chrono::seconds(15), "gRPC's failed re-read")
                  .ok());
  EXPECT_TRUE(Reach(*TlsClient(target, certs_->other_ca.cert)).ok());
}

TEST_F(TlsIntegrationTest, StartupErrorsNameTheFlag) {
  struct Case {
    std::vector<std::string> flags;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"--tls-cert-file=" + certs_->server.cert.string(),
        "--tls-key-file=" + (dir_->path() / "missing.key").string()},
       "cannot read --tls-key-file '" +
           (dir_->path() / "missing.key").string() + "'"},
      {{"--tls-cert-file=" + certs_->server.cert.string()},
       "--tls-cert-file is set but --tls-key-file is not"},
      {{"--tls-client-ca-file=" + certs_->ca.cert.string()},
       "--tls-client-ca-file is set but --tls-cert-file and --tls-key-file "
       "are not"},
      {{"--tls-cert-file=" + certs_->server.cert.string(),
        "--tls-key-file=" + certs_->other_server.key.string()},
       "does not belong to the first certificate in --tls-cert-file"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrJoin(c.flags, " "));
    ServerOptions options;
    options.model_repository = dir_->path() / "repo";
    options.extra_args = c.flags;
    absl::StatusOr<std::unique_ptr<ServerProcess>> process =
        ServerProcess::Launch(options);
    ASSERT_TRUE(process.ok()) << process.status();
    absl::StatusOr<ExitStatus> exit =
        (*process)->WaitForExit(std::chrono::seconds(30));
    ASSERT_TRUE(exit.ok()) << exit.status();
    EXPECT_TRUE(exit->exited && exit->code != 0) << exit->ToString();
    const std::string log = (*process)->ReadLog();
    EXPECT_THAT(log, HasSubstr(c.expected));
    EXPECT_THAT(log, HasSubstr("event=startup_failed"));
    EXPECT_THAT(log, Not(HasSubstr("event=listening")))
        << "the files are checked before anything listens";
  }
}

TEST_F(TlsIntegrationTest, CliOverTlsAndMutualTls) {
  std::vector<std::string> flags = ServerFlags(certs_->server);
  flags.push_back("--tls-client-ca-file=" + certs_->ca.cert.string());
  std::unique_ptr<ServerProcess> server = Start(flags);
  ASSERT_NE(server, nullptr);
  const std::string rows = "0.1,0.2,0.3,0.4,0.5,0.6\n";

  // The new flag names; giving them implies TLS.
  client_testing::CommandResult result =
      Cli(*server,
          {"--tls-ca-file", certs_->ca.cert.string(), "--tls-cert-file",
           certs_->client.cert.string(), "--tls-key-file",
           certs_->client.key.string(), "predict", "--model", "tiny", "--input",
           "-"},
          rows);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const std::vector<double> expected = ReferenceOutput(
      *model_, RowBatch{1, 6, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}});
  const char* labels[] = {"red", "green", "blue"};
  EXPECT_THAT(result.out, HasSubstr(labels[ArgMaxRow(expected, 3, 0)]));

  // The old names still work; --tls-server-name checks the DNS name.
  result = Cli(*server, {"--tls", "--ca-cert", certs_->ca.cert.string(),
                         "--cert", certs_->client.cert.string(), "--key",
                         certs_->client.key.string(), "--tls-server-name",
                         "localhost", "health"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("SERVING"));

  // Without the client certificate the server refuses the handshake.
  result = Cli(*server, {"--tls-ca-file", certs_->ca.cert.string(), "health"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("UNAVAILABLE"));
  // Plaintext: refused too.
  result = Cli(*server, {"health"});
  EXPECT_EQ(result.exit_code, 1);
}

TEST_F(TlsIntegrationTest, PythonExampleOverMutualTls) {
  std::vector<std::string> flags = ServerFlags(certs_->server);
  flags.push_back("--tls-client-ca-file=" + certs_->ca.cert.string());
  std::unique_ptr<ServerProcess> server = Start(flags);
  ASSERT_NE(server, nullptr);
  const char* source = std::getenv("NNSERVE_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "CTest sets NNSERVE_SOURCE_DIR";
  const std::string example =
      (fs::path(source) / "client" / "python" / "nnserve_client.py").string();
  const std::string stubs = (dir_->path() / "pystubs").string();
  const std::vector<std::string> base = {
      "/usr/bin/python3", example,
      "--address",        server->grpc_target(),
      "--stubs-dir",      stubs,
      "--model",          "tiny",
      "--tls-ca-file",    certs_->ca.cert.string()};

  std::vector<std::string> args = base;
  args.insert(args.end(),
              {"--tls-cert-file", certs_->client.cert.string(),
               "--tls-key-file", certs_->client.key.string(),
               "--tls-server-name", "localhost", "0.1,0.2,0.3,0.4,0.5,0.6"});
  absl::StatusOr<client_testing::CommandResult> result =
      client_testing::RunCommand(args, "", std::chrono::seconds(120));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->err;
  const std::vector<double> expected = ReferenceOutput(
      *model_, RowBatch{1, 6, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}});
  EXPECT_THAT(result->out, HasSubstr(absl::StrCat(
                               "(class ", ArgMaxRow(expected, 3, 0), ")")));

  // No client certificate: refused.
  args = base;
  args.push_back("0.1,0.2,0.3,0.4,0.5,0.6");
  result = client_testing::RunCommand(args, "", std::chrono::seconds(120));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 1);
  EXPECT_THAT(result->err, HasSubstr("UNAVAILABLE"));
}

}  // namespace
}  // namespace nnserve::testing
