// Integration tests of the Open Inference Protocol's REST binding against
// the real nnserve binary on loopback: the same answers as gRPC (bit for
// bit), the body limit (413), the decode budget (429) under a slow client,
// and TLS / mutual TLS / rotation on the REST port with curl. The protocol
// surface (every endpoint, datatype and error) is covered by
// server_rest_python (rest_python_test.py).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/subprocess.h"
#include "tests/server/integration/integration_fixture.h"
#include "tests/util/loopback_http.h"
#include "tests/util/test_certs.h"

namespace nnserve::testing {
namespace {

namespace fs = std::filesystem;
using engine::Activation;
using engine::WeightLayout;
using ::testing::HasSubstr;

constexpr int kFeatures = 6;

// The JSON body of an infer call on `batch`.
std::string InferBody(const RowBatch& batch) {
  nlohmann::json body = {{"id", "it-1"},
                         {"inputs",
                          {{{"name", "x"},
                            {"shape", {batch.rows, kFeatures}},
                            {"datatype", "FP32"},
                            {"data", batch.values}}}}};
  return body.dump();
}

// A connection that sends the headers of a POST promising `length` bytes
// and then stalls: a slow client holding its request open.
class StalledPost {
 public:
  StalledPost(int port, const std::string& path, size_t length) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address),
                         sizeof address) == 0;
    const std::string head =
        absl::StrCat("POST ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                     "Content-Length: ", length, "\r\n\r\n{\"inputs\": [");
    connected_ =
        connected_ && send(fd_, head.data(), head.size(), MSG_NOSIGNAL) ==
                          static_cast<ssize_t>(head.size());
  }
  ~StalledPost() { Close(); }
  bool connected() const { return connected_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class RestIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScopedTempDir("nnserve_rest_itest");
    model_ = new RandomModel(BuildRandomModel(
        "tiny", kFeatures,
        {LayerDef(12, Activation::kTanh), LayerDef(3, Activation::kSoftmax)},
        WeightLayout::kOutIn, 11));
    fs::create_directory(dir_->path() / "repo");
    WriteModelDir(dir_->path() / "repo", *model_, 1, FileFormat::kSafetensors,
                  formats::DType::kF32);
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  static absl::StatusOr<RunningServer> Start(
      std::vector<std::string> extra_args) {
    ServerOptions options;
    options.model_repository = dir_->path() / "repo";
    options.extra_args = std::move(extra_args);
    return StartServer(options);
  }

  static inline ScopedTempDir* dir_ = nullptr;
  static inline RandomModel* model_ = nullptr;
};

TEST_F(RestIntegrationTest, AnswersAreTheGrpcAnswersBitForBit) {
  absl::StatusOr<RunningServer> server = Start({});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = server->process->http_port();
  ASSERT_GT(port, 0);
  const RowBatch batch = RandomRows(3, kFeatures, 21);

  absl::StatusOr<HttpResponse> rest =
      HttpRequest(port, "POST", "/v2/models/tiny/infer", InferBody(batch),
                  {{"Content-Type", "application/json"}});
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_EQ(rest->status_code, 200) << rest->body;
  const nlohmann::json answer = nlohmann::json::parse(rest->body);
  EXPECT_EQ(answer["id"], "it-1");
  EXPECT_EQ(answer["model_version"], "1");
  const nlohmann::json& output = answer["outputs"][0];
  EXPECT_EQ(output["shape"], nlohmann::json({3, 3}));

  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("tiny", 0, batch, Encoding::kRaw);
  ASSERT_TRUE(request.ok());
  absl::StatusOr<v1::PredictResponse> grpc = server->client->Predict(*request);
  ASSERT_TRUE(grpc.ok()) << grpc.status();
  absl::StatusOr<RowBatch> expected = DecodeTensor(grpc->output());
  ASSERT_TRUE(expected.ok());
  ASSERT_EQ(output["data"].size(), expected->values.size());
  for (size_t i = 0; i < expected->values.size(); ++i) {
    // The JSON number reads back as exactly the float gRPC returned.
    EXPECT_EQ(static_cast<float>(output["data"][i].get<double>()),
              static_cast<float>(expected->values[i]))
        << "element " << i;
  }
  EXPECT_LE(
      MaxRowRelativeError(expected->values, ReferenceOutput(*model_, batch), 3),
      1e-5);
}

TEST_F(RestIntegrationTest, BodiesOverFourTimesTheMessageLimitAre413) {
  absl::StatusOr<RunningServer> server = Start({"--max-message-bytes=2048"});
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<HttpResponse> response =
      HttpRequest(server->process->http_port(), "POST", "/v2/models/tiny/infer",
                  std::string(8193, ' '));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 413);
  EXPECT_THAT(response->body, HasSubstr("8193 bytes, over the server's limit "
                                        "of 8192 bytes for REST bodies"));
  // At the limit the body is read (and refused for what it holds).
  response = HttpRequest(server->process->http_port(), "POST",
                         "/v2/models/tiny/infer", std::string(8192, ' '));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 400);
}

TEST_F(RestIntegrationTest, SlowClientsCannotTakeMoreThanTheDecodeBudget) {
  // --max-memory-bytes 16 MiB: the REST decode budget is 2 MiB, and each
  // body byte is charged 4 (kDecodeBytesPerBodyByte).
  absl::StatusOr<RunningServer> server =
      Start({"--max-memory-bytes=16777216", "--max-message-bytes=1048576"});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = server->process->http_port();
  const RowBatch batch = RandomRows(1, kFeatures, 5);
  // A valid call padded to 300 kB (1.2 MB charged) with trailing spaces.
  std::string padded = InferBody(batch);
  padded.resize(300'000, ' ');

  // A client that promised 400 kB (1.6 MB charged) and stalls.
  StalledPost stalled(port, "/v2/models/tiny/infer", 400'000);
  ASSERT_TRUE(stalled.connected());
  int last_status = 0;
  std::string last_body;
  ASSERT_TRUE(server->process
                  ->WaitUntil(
                      [&] {
                        absl::StatusOr<HttpResponse> response = HttpRequest(
                            port, "POST", "/v2/models/tiny/infer", padded);
                        if (!response.ok()) return false;
                        last_status = response->status_code;
                        last_body = response->body;
                        return last_status == 429;
                      },
                      std::chrono::seconds(20),
                      "a request refused while the stalled one is held")
                  .ok())
      << last_status << " " << last_body;
  EXPECT_THAT(last_body, HasSubstr("over its budget of 2097152 bytes"));

  // Once the slow client goes away its share is free again.
  stalled.Close();
  ASSERT_TRUE(server->process
                  ->WaitUntil(
                      [&] {
                        absl::StatusOr<HttpResponse> response = HttpRequest(
                            port, "POST", "/v2/models/tiny/infer", padded);
                        return response.ok() && response->status_code == 200;
                      },
                      std::chrono::seconds(20), "the padded call served")
                  .ok());
  absl::StatusOr<HttpResponse> metrics =
      HttpGet(server->process->metrics_port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(metrics->body,
              HasSubstr("nnserve_requests_total{code=\"RESOURCE_EXHAUSTED\","
                        "method=\"rest_infer\",model=\"tiny\"}"));
}

TEST_F(RestIntegrationTest, ModelRepositoryExtensionLoadsAndUnloads) {
  // Explicit model control, nothing loaded at start.
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = [] {
    ServerOptions options;
    options.model_repository = dir_->path() / "repo";
    options.extra_args = {"--model-control-mode=explicit"};
    return ServerProcess::Start(options);
  }();
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->http_port();
  const auto post = [port](const std::string& path,
                           const std::string& body = "") {
    absl::StatusOr<HttpResponse> response =
        HttpRequest(port, "POST", path, body);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : HttpResponse{};
  };
  absl::StatusOr<HttpResponse> metadata = HttpGet(port, "/v2");
  ASSERT_TRUE(metadata.ok());
  EXPECT_THAT(metadata->body, HasSubstr("\"model_repository\""));
  EXPECT_EQ(post("/v2/repository/index").body, "[]");

  HttpResponse load = post("/v2/repository/models/tiny/load");
  EXPECT_EQ(load.status_code, 200) << load.body;
  EXPECT_EQ(post("/v2/repository/index").body,
            R"([{"name":"tiny","version":"1","state":"READY","reason":""}])");
  EXPECT_EQ(post("/v2/repository/index", R"({"ready": true})").status_code,
            200);
  absl::StatusOr<HttpResponse> ready = HttpGet(port, "/v2/models/tiny/ready");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status_code, 200);

  HttpResponse missing = post("/v2/repository/models/nope/load");
  EXPECT_EQ(missing.status_code, 404) << missing.body;
  EXPECT_THAT(missing.body, HasSubstr("nope"));
  EXPECT_EQ(post("/v2/repository/index", "{\"ready\": 1}").status_code, 400);

  HttpResponse unload = post("/v2/repository/models/tiny/unload");
  EXPECT_EQ(unload.status_code, 200) << unload.body;
  ready = HttpGet(port, "/v2/models/tiny/ready");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status_code, 404) << ready->body;
}

TEST_F(RestIntegrationTest, RepositoryControlOutsideExplicitModeIs400) {
  absl::StatusOr<RunningServer> server = Start({});
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<HttpResponse> load =
      HttpRequest(server->process->http_port(), "POST",
                  "/v2/repository/models/tiny/load", "");
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(load->status_code, 400);
  EXPECT_THAT(load->body, HasSubstr("explicit"));
}

class RestTlsIntegrationTest : public RestIntegrationTest {
 protected:
  // No gtest assertion here: GoogleTest skips (and CTest passes) every test
  // of a suite whose SetUpTestSuite failed; SetUp fails them instead.
  static void SetUpTestSuite() {
    RestIntegrationTest::SetUpTestSuite();
    fs::create_directories(dir_->path() / "certs");
    absl::StatusOr<TestCertificates> certs =
        MakeTestCertificates(dir_->path() / "certs");
    if (!certs.ok()) {
      setup_error_ = std::string(certs.status().message());
      return;
    }
    certs_ = new TestCertificates(*certs);
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
    RestIntegrationTest::TearDownTestSuite();
  }
  void SetUp() override {
    ASSERT_NE(certs_, nullptr) << "test certificates: " << setup_error_;
  }

  // curl's exit code and output for https://127.0.0.1:<port><path>.
  static client_testing::CommandResult Curl(int port, const std::string& path,
                                            std::vector<std::string> flags) {
    std::vector<std::string> argv = {"/usr/bin/curl", "-sS", "--max-time",
                                     "10"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(absl::StrCat("https://127.0.0.1:", port, path));
    absl::StatusOr<client_testing::CommandResult> result =
        client_testing::RunCommand(argv);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : client_testing::CommandResult{};
  }

  static inline TestCertificates* certs_ = nullptr;
  static inline std::string setup_error_;
};

TEST_F(RestTlsIntegrationTest, TlsAndMutualTlsUseTheGrpcListenersFiles) {
  absl::StatusOr<RunningServer> tls = [] {
    ServerOptions options;
    options.model_repository = dir_->path() / "repo";
    options.extra_args = {"--tls-cert-file=" + certs_->server.cert.string(),
                          "--tls-key-file=" + certs_->server.key.string()};
    absl::StatusOr<std::unique_ptr<ServerProcess>> process =
        ServerProcess::Start(options);
    if (!process.ok()) return absl::StatusOr<RunningServer>(process.status());
    RunningServer server;
    server.process = *std::move(process);
    return absl::StatusOr<RunningServer>(std::move(server));
  }();
  ASSERT_TRUE(tls.ok()) << tls.status();
  const int port = tls->process->http_port();
  client_testing::CommandResult ok =
      Curl(port, "/v2/health/ready", {"--cacert", certs_->ca.cert.string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, R"({"ready":true})");
  client_testing::CommandResult untrusted = Curl(
      port, "/v2/health/ready", {"--cacert", certs_->other_ca.cert.string()});
  EXPECT_NE(untrusted.exit_code, 0) << "a server the CA did not sign";

  // Mutual TLS: a client certificate from the client CA is required.
  ServerOptions options;
  options.model_repository = dir_->path() / "repo";
  options.extra_args = {"--tls-cert-file=" + certs_->server.cert.string(),
                        "--tls-key-file=" + certs_->server.key.string(),
                        "--tls-client-ca-file=" + certs_->ca.cert.string()};
  absl::StatusOr<std::unique_ptr<ServerProcess>> mtls =
      ServerProcess::Start(options);
  ASSERT_TRUE(mtls.ok()) << mtls.status();
  const int mtls_port = (*mtls)->http_port();
  const std::string ca = certs_->ca.cert.string();
  EXPECT_NE(Curl(mtls_port, "/v2/health/live", {"--cacert", ca}).exit_code, 0)
      << "no client certificate";
  EXPECT_NE(Curl(mtls_port, "/v2/health/live",
                 {"--cacert", ca, "--cert", certs_->other_client.cert.string(),
                  "--key", certs_->other_client.key.string()})
                .exit_code,
            0)
      << "a client certificate from another CA";
  const RowBatch batch = RandomRows(1, kFeatures, 8);
  client_testing::CommandResult infer =
      Curl(mtls_port, "/v2/models/tiny/infer",
           {"--cacert", ca, "--cert", certs_->client.cert.string(), "--key",
            certs_->client.key.string(), "-H", "Content-Type: application/json",
            "--data-binary", InferBody(batch)});
  ASSERT_EQ(infer.exit_code, 0) << infer.err;
  EXPECT_THAT(infer.out, HasSubstr("\"shape\":[1,3]"));
}

TEST_F(RestTlsIntegrationTest, RotatedCertificateServesWithoutRestart) {
  const fs::path live = dir_->path() / "live";
  fs::create_directories(live);
  const fs::path cert = live / "tls.crt";
  const fs::path key = live / "tls.key";
  ASSERT_TRUE(ReplaceFileAtomically(certs_->server.cert, cert).ok());
  ASSERT_TRUE(ReplaceFileAtomically(certs_->server.key, key).ok());
  ServerOptions options;
  options.model_repository = dir_->path() / "repo";
  options.extra_args = {"--tls-cert-file=" + cert.string(),
                        "--tls-key-file=" + key.string(),
                        "--tls-reload-seconds=1"};
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->http_port();
  const std::string ca = certs_->ca.cert.string();
  const std::string other_ca = certs_->other_ca.cert.string();
  EXPECT_EQ(Curl(port, "/v2/health/live", {"--cacert", ca}).exit_code, 0);

  ASSERT_TRUE(ReplaceFileAtomically(certs_->other_server.key, key).ok());
  ASSERT_TRUE(ReplaceFileAtomically(certs_->other_server.cert, cert).ok());
  ASSERT_TRUE((*server)
                  ->WaitUntil(
                      [&] {
                        return Curl(port, "/v2/health/live",
                                    {"--cacert", other_ca})
                                   .exit_code == 0;
                      },
                      std::chrono::seconds(15),
                      "a new connection trusting the other CA succeeds")
                  .ok());
  EXPECT_NE(Curl(port, "/v2/health/live", {"--cacert", ca}).exit_code, 0)
      << "new connections must present the rotated certificate";

  // A rotation that leaves a key of another certificate keeps the last
  // good pair serving, and says why in the log. (The files are re-read
  // when a handshake finds them older than --tls-reload-seconds.)
  ASSERT_TRUE(ReplaceFileAtomically(certs_->server.key, key).ok());
  ASSERT_TRUE(
      (*server)
          ->WaitUntil(
              [&] {
                EXPECT_EQ(Curl(port, "/v2/health/live", {"--cacert", other_ca})
                              .exit_code,
                          0);
                return (*server)->ReadLog().find(
                           "event=tls_reload_failed listener=rest") !=
                       std::string::npos;
              },
              std::chrono::seconds(15), "the failed re-read logged")
          .ok());
  EXPECT_EQ(Curl(port, "/v2/health/live", {"--cacert", other_ca}).exit_code, 0);
}

}  // namespace
}  // namespace nnserve::testing
