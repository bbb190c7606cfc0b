// Integration tests: the Client library and nnserve-cli against
// bench/transport_baseline_server on a loopback port chosen by the OS.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/channel.h"
#include "client/client.h"
#include "client/load_generator.h"
#include "client/rows.h"
#include "tests/client/subprocess.h"

namespace nnserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kCli[] = NNSERVE_CLI_PATH;
constexpr char kBaseline[] = NNSERVE_TRANSPORT_BASELINE_PATH;

class BaselineTest : public ::testing::Test {
 protected:
  // No gtest assertion here: GoogleTest skips (and CTest passes) every test
  // of a suite whose SetUpTestSuite failed; SetUp fails them instead.
  static void SetUpTestSuite() {
    absl::StatusOr<client_testing::Baseline> started =
        client_testing::StartBaseline(kBaseline, {"--output-size", "10"});
    if (!started.ok()) {
      setup_error_ = "baseline server: " + started.status().ToString();
      return;
    }
    baseline_ = new client_testing::Baseline(*std::move(started));
  }
  static void TearDownTestSuite() {
    if (baseline_ != nullptr) {
      absl::StatusOr<int> code = baseline_->process->Terminate();
      EXPECT_TRUE(code.ok()) << code.status();
      if (code.ok()) {
        EXPECT_EQ(*code, 0);
      }
    }
    delete baseline_;
    baseline_ = nullptr;
    setup_error_.clear();
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ChannelOptions options;
    options.target = baseline_->address;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        MakeChannel(options);
    ASSERT_TRUE(channel.ok()) << channel.status();
    client_ = std::make_unique<Client>(*channel);
  }

  client_testing::CommandResult Cli(std::vector<std::string> args,
                                    const std::string& stdin_text = "") {
    args.insert(args.begin(), {kCli, "--address", baseline_->address});
    absl::StatusOr<client_testing::CommandResult> result =
        client_testing::RunCommand(args, stdin_text);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : client_testing::CommandResult{};
  }

  static CallOptions Ready() {
    CallOptions options;
    options.wait_for_ready = true;
    return options;
  }

  static client_testing::Baseline* baseline_;
  static inline std::string setup_error_;
  std::unique_ptr<Client> client_;
};

client_testing::Baseline* BaselineTest::baseline_ = nullptr;

TEST_F(BaselineTest, HealthIsServingForServerAndInferenceService) {
  absl::StatusOr<ServingStatus> server = client_->Health("", Ready());
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(*server, ServingStatus::kServing);
  absl::StatusOr<ServingStatus> inference =
      client_->Health("nnserve.v1.Inference", Ready());
  ASSERT_TRUE(inference.ok()) << inference.status();
  EXPECT_EQ(*inference, ServingStatus::kServing);
  absl::StatusOr<ServingStatus> unknown = client_->Health("no.Such", Ready());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BaselineTest, PredictInBothEncodingsMirrorsTheRequestEncoding) {
  for (Encoding encoding : {Encoding::kValues, Encoding::kRaw}) {
    absl::StatusOr<v1::PredictRequest> request =
        MakePredictRequest("digits", 0, RandomRows(3, 64, 7), encoding);
    ASSERT_TRUE(request.ok()) << request.status();
    absl::StatusOr<v1::PredictResponse> response =
        client_->Predict(*request, Ready());
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(TensorEncoding(response->output()), encoding);
    absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
    ASSERT_TRUE(output.ok()) << output.status();
    EXPECT_EQ(output->rows, 3);
    EXPECT_EQ(output->cols, 10);
    EXPECT_EQ(response->classes_size(), 3);
  }
}

TEST_F(BaselineTest, ErrorsCarryTheServerCodeAndMessage) {
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("nope", 0, RandomRows(1, 64, 1), Encoding::kRaw);
  ASSERT_TRUE(request.ok());
  absl::StatusOr<v1::PredictResponse> response =
      client_->Predict(*request, Ready());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(response.status().message(),
              HasSubstr("model 'nope' not found; available: digits"));

  absl::StatusOr<v1::ModelInfoResponse> info =
      client_->ModelInfo("digits", 0, Ready());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->input_size(), 64);
  absl::StatusOr<v1::ListModelsResponse> list = client_->ListModels(Ready());
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->models_size(), 1);
  EXPECT_EQ(list->models(0).name(), "digits");
}

TEST_F(BaselineTest, DeadlineAndUnreachableServerAreReported) {
  ChannelOptions options;
  options.target = "127.0.0.1:1";  // Nothing listens on port 1.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options);
  ASSERT_TRUE(channel.ok());
  Client unreachable(*channel);
  CallOptions short_deadline;
  short_deadline.timeout = std::chrono::milliseconds(500);
  absl::StatusOr<ServingStatus> health = unreachable.Health("", short_deadline);
  EXPECT_EQ(health.status().code(), absl::StatusCode::kUnavailable)
      << health.status();
}

TEST_F(BaselineTest, ConcurrentCallsOnOneClient) {
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("digits", 0, RandomRows(2, 64, 3), Encoding::kRaw);
  ASSERT_TRUE(request.ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (client_->Predict(*request, Ready()).ok()) ++ok;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
}

TEST_F(BaselineTest, LoadGeneratorProducesASaneReport) {
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("digits", 0, RandomRows(4, 64, 42), Encoding::kRaw);
  ASSERT_TRUE(request.ok());
  LoadOptions options;
  options.concurrency = 4;
  options.duration = std::chrono::seconds(1);
  options.warmup = std::chrono::milliseconds(100);
  absl::StatusOr<LoadReport> report =
      RunLoad(client_->stub(), *request, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GT(report->calls, 0);
  EXPECT_EQ(report->failed_calls, 0);
  EXPECT_TRUE(report->errors.empty());
  EXPECT_EQ(report->rows, report->calls * 4);
  EXPECT_GT(report->p50_us, 0);
  EXPECT_LE(report->p50_us, report->p90_us);
  EXPECT_LE(report->p90_us, report->p99_us);
  EXPECT_LE(report->p99_us, report->max_us);
  EXPECT_NEAR(report->calls_per_second, report->calls / 1.0, 1e-6);
  EXPECT_GT(report->client_cpu_seconds, 0);
  EXPECT_GT(report->client_cpu_us_per_call, 0);

  LoadOptions bad = options;
  bad.concurrency = 0;
  EXPECT_EQ(RunLoad(client_->stub(), *request, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BaselineTest, LoadGeneratorCountsErrorsByCode) {
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("digits", 0, RandomRows(1, 63, 42), Encoding::kRaw);
  ASSERT_TRUE(request.ok());
  LoadOptions options;
  options.duration = std::chrono::milliseconds(200);
  options.warmup = std::chrono::seconds(0);
  absl::StatusOr<LoadReport> report =
      RunLoad(client_->stub(), *request, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->calls, 0);
  EXPECT_GT(report->failed_calls, 0);
  EXPECT_EQ(report->errors.at("INVALID_ARGUMENT"), report->failed_calls);
}

TEST_F(BaselineTest, CliPredictCsvFromStdinAsJson) {
  std::string csv;
  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 64; ++c) csv += (c ? ",0.5" : "0.5");
    csv += "\n";
  }
  client_testing::CommandResult result =
      Cli({"predict", "--model", "digits", "--json"}, csv);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["model"], "digits");
  EXPECT_EQ(json["encoding"], "values");
  ASSERT_EQ(json["rows"].size(), 2u);
  EXPECT_EQ(json["rows"][0]["output"].size(), 10u);
}

TEST_F(BaselineTest, CliPredictNpyFileRawAsTable) {
  const std::string dir = client_testing::MakeTempDir();
  const std::string path = dir + "/rows.npy";
  {
    std::string header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 64), }";
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::ofstream out(path, std::ios::binary);
    out << std::string("\x93NUMPY\x01\x00", 8)
        << static_cast<char>(header.size()) << '\0' << header
        << std::string(64 * 4, '\0');
  }
  client_testing::CommandResult result =
      Cli({"predict", "--model", "digits", "--input", path, "--raw"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("row 0: label 0 (class 0)"));
  std::filesystem::remove_all(dir);
}

TEST_F(BaselineTest, CliErrorsExitNonZeroWithCodeName) {
  client_testing::CommandResult result = Cli({"info", "--model", "nope"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("error: NOT_FOUND: model 'nope' not "
                                    "found; available: digits"));
  client_testing::CommandResult bad_input =
      Cli({"predict", "--model", "digits"}, "1,2\n3\n");
  EXPECT_EQ(bad_input.exit_code, 1);
  EXPECT_THAT(bad_input.err,
              HasSubstr("error: INVALID_ARGUMENT: <stdin>: csv: line 2 has 1 "
                        "values; expected 2 like line 1"));
}

TEST_F(BaselineTest, CliHealthExitCodeFollowsServingStatus) {
  client_testing::CommandResult serving = Cli({"health"});
  EXPECT_EQ(serving.exit_code, 0) << serving.err;
  EXPECT_EQ(serving.out, "SERVING\n");
  client_testing::CommandResult json =
      Cli({"health", "--service", "nnserve.v1.Inference", "--json"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["status"], "SERVING");
  client_testing::CommandResult unknown =
      Cli({"health", "--service", "no.Such"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.err, HasSubstr("NOT_FOUND"));
}

TEST_F(BaselineTest, CliInfoAndListJson) {
  client_testing::CommandResult info =
      Cli({"info", "--model", "digits", "--json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out)["name"], "digits");
  client_testing::CommandResult list = Cli({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("digits  1        AVAILABLE"));
}

// The baseline serves only nnserve.v1.Inference, so the ModelRepository
// calls reach a server that answers UNIMPLEMENTED: the library reports the
// code, and the CLI prints it and exits 1.
TEST_F(BaselineTest, LoadAndUnloadReportTheServerError) {
  absl::StatusOr<v1::LoadModelResponse> loaded =
      client_->LoadModel("digits", Ready());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kUnimplemented)
      << loaded.status();
  absl::StatusOr<v1::UnloadModelResponse> unloaded =
      client_->UnloadModel("digits", Ready());
  EXPECT_EQ(unloaded.status().code(), absl::StatusCode::kUnimplemented)
      << unloaded.status();

  for (const char* command : {"load", "unload"}) {
    SCOPED_TRACE(command);
    client_testing::CommandResult result = Cli({command, "--model", "digits"});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_EQ(result.out, "");
    EXPECT_THAT(result.err, ::testing::StartsWith("error: UNIMPLEMENTED"));
  }
}

TEST_F(BaselineTest, CliLoadAndUnloadRequireAModel) {
  for (const char* command : {"load", "unload"}) {
    SCOPED_TRACE(command);
    client_testing::CommandResult result = Cli({command});
    EXPECT_NE(result.exit_code, 0);
    EXPECT_THAT(result.err, HasSubstr("--model is required"));
  }
}

TEST_F(BaselineTest, CliBenchJsonReportHasNoErrors) {
  client_testing::CommandResult result =
      Cli({"bench", "--model", "digits", "--concurrency", "4", "--duration",
           "1", "--warmup", "0.1", "--batch", "2", "--raw", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["concurrency"], 4);
  EXPECT_EQ(json["batch"], 2);
  EXPECT_EQ(json["encoding"], "raw");
  EXPECT_GT(json["calls"].get<int64_t>(), 0);
  EXPECT_EQ(json["failed_calls"], 0);
  EXPECT_TRUE(json["errors"].empty());
  EXPECT_GT(json["client_cpu_us_per_call"].get<double>(), 0);
  EXPECT_GT(json["calls_per_second"].get<double>(), 0);
  EXPECT_LE(json["latency_us"]["p50"].get<double>(),
            json["latency_us"]["max"].get<double>());
}

}  // namespace
}  // namespace nnserve
