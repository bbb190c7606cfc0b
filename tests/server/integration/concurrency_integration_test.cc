// Concurrency against the real nnserve binary: 16 clients (each its own
// channel, i.e. its own connection) × 500 Predicts with every answer checked
// against the reference, and bad requests interleaved with good ones from
// other clients without affecting them.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;

constexpr double kMaxRelativeError = 1e-5;
constexpr int64_t kMaxBatchRows = 64;

// A request with its precomputed expected answer.
struct Case {
  v1::PredictRequest request;
  int64_t version = 0;  // The version that must answer.
  int64_t rows = 0;
  std::vector<double> expected;
  std::vector<std::string> labels;  // Expected argmax labels, if any.
};

// Repository: digits (64 → 32 RELU → 10 SOFTMAX, labels) and mix
// (IN_OUT 20 → 40 TANH → 30 GELU → 5 IDENTITY) in versions 1 and 2.
class ConcurrencyIntegrationTest
    : public SharedServerTest<ConcurrencyIntegrationTest> {
 public:
  // Run by SharedServerTest::SetUpTestSuite.
  static void SetUpSharedSuite() {
    CreateRepository("nnserve_concurrency_itest");
    models_ = new std::vector<std::pair<RandomModel, int64_t>>();
    RandomModel digits = BuildRandomModel(
        "digits", 64,
        {LayerDef(32, Activation::kRelu), LayerDef(10, Activation::kSoftmax)},
        WeightLayout::kOutIn, 5);
    for (int i = 0; i < 10; ++i) {
      digits.config.mutable_output()->add_labels(absl::StrCat("digit-", i));
    }
    models_->push_back({digits, 1});
    for (int64_t version : {1, 2}) {
      models_->push_back({BuildRandomModel("mix", 20,
                                           {LayerDef(40, Activation::kTanh),
                                            LayerDef(30, Activation::kGelu),
                                            LayerDef(5, Activation::kIdentity)},
                                           WeightLayout::kInOut, 10 + version),
                          version});
    }
    for (auto& [model, version] : *models_) {
      // Every version directory serves (the default policy: the newest).
      model.config.mutable_version_policy()->mutable_all();
      WriteModelDir(repo_->path(), model, version, FileFormat::kSafetensors,
                    formats::DType::kF32);
    }
    StartSharedServer(
        {"--threads=2", absl::StrCat("--max-batch-rows=", kMaxBatchRows)});
  }

 protected:
  static void TearDownTestSuite() {
    SharedServerTest::TearDownTestSuite();
    delete models_;
  }

  // `count` distinct cases: models, versions (0 and explicit), encodings
  // and batch sizes vary with the seed.
  static std::vector<Case> MakeCases(int count, uint32_t seed) {
    std::vector<Case> cases;
    for (int i = 0; i < count; ++i) {
      const uint32_t s = seed * 1000 + i;
      const auto& [model, version] = (*models_)[s % models_->size()];
      const bool newest = version == 2 && s % 2 == 0;
      const int64_t rows = 1 + s % 9;
      RowBatch batch;
      batch.rows = rows;
      batch.cols = model.config.input().size();
      batch.values = RandomValues(rows * batch.cols, 1.5f, s);
      Case c;
      absl::StatusOr<v1::PredictRequest> request =
          MakePredictRequest(model.config.name(), newest ? 0 : version, batch,
                             s % 3 == 0 ? Encoding::kRaw : Encoding::kValues);
      EXPECT_TRUE(request.ok()) << request.status();
      c.request = *request;
      c.version = version;
      c.rows = rows;
      c.expected = ReferenceOutput(model, batch);
      const auto& labels = model.config.output().labels();
      for (int64_t r = 0; r < rows && !labels.empty(); ++r) {
        c.labels.push_back(labels[ArgMaxRow(c.expected, labels.size(), r)]);
      }
      cases.push_back(std::move(c));
    }
    return cases;
  }

  // An empty string if `response` is the right answer for `c`, else why not.
  static std::string CheckAnswer(
      const Case& c, const absl::StatusOr<v1::PredictResponse>& response) {
    if (!response.ok()) return response.status().ToString();
    if (response->version() != c.version) {
      return absl::StrCat("version ", response->version(), ", expected ",
                          c.version);
    }
    absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
    if (!output.ok()) return output.status().ToString();
    if (output->values.size() != c.expected.size()) {
      return absl::StrCat(output->values.size(), " outputs, expected ",
                          c.expected.size());
    }
    const double error =
        MaxRowRelativeError(output->values, c.expected, c.rows);
    if (!(error <= kMaxRelativeError)) {
      return absl::StrCat("relative error ", error);
    }
    if (std::vector<std::string>(response->labels().begin(),
                                 response->labels().end()) != c.labels) {
      return "wrong labels";
    }
    return "";
  }

  static absl::StatusOr<std::unique_ptr<Client>> NewClient() {
    return ConnectClient(server_->process->grpc_target());
  }

  static std::vector<std::pair<RandomModel, int64_t>>* models_;
};

std::vector<std::pair<RandomModel, int64_t>>*
    ConcurrencyIntegrationTest::models_ = nullptr;

TEST_F(ConcurrencyIntegrationTest, SixteenClientsTimesFiveHundredCalls) {
  constexpr int kClients = 16;
  constexpr int kCallsPerClient = 500;
  std::vector<std::vector<Case>> cases;
  for (int t = 0; t < kClients; ++t) cases.push_back(MakeCases(25, t + 1));

  std::atomic<int> answered{0};
  std::vector<std::string> first_error(kClients);
  std::vector<int> wrong(kClients, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      absl::StatusOr<std::unique_ptr<Client>> client = NewClient();
      if (!client.ok()) {
        first_error[t] = client.status().ToString();
        wrong[t] = kCallsPerClient;
        return;
      }
      for (int i = 0; i < kCallsPerClient; ++i) {
        const Case& c = cases[t][i % cases[t].size()];
        const std::string error = CheckAnswer(c, (*client)->Predict(c.request));
        if (!error.empty()) {
          if (wrong[t]++ == 0) first_error[t] = error;
        }
        answered.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(answered.load(), kClients * kCallsPerClient);
  for (int t = 0; t < kClients; ++t) {
    EXPECT_EQ(wrong[t], 0) << "client " << t << ": " << first_error[t];
  }
}

TEST_F(ConcurrencyIntegrationTest, BadRequestsDoNotAffectConcurrentGoodOnes) {
  constexpr int kGoodClients = 6;
  constexpr int kBadClients = 4;
  constexpr int kCalls = 150;

  // Each bad request with the code it must get.
  std::vector<std::pair<v1::PredictRequest, absl::StatusCode>> bad;
  {
    v1::PredictRequest nan = MakeCases(1, 77)[0].request;
    nan.mutable_input()->set_raw("");
    nan.mutable_input()->clear_values();
    const int64_t count = nan.input().shape(0) * nan.input().shape(1);
    for (int64_t i = 0; i < count; ++i) {
      nan.mutable_input()->add_values(
          i == count - 1 ? std::numeric_limits<float>::quiet_NaN() : 0.5f);
    }
    bad.push_back({nan, absl::StatusCode::kInvalidArgument});
    v1::PredictRequest short_data = nan;
    short_data.mutable_input()->mutable_values()->RemoveLast();
    bad.push_back({short_data, absl::StatusCode::kInvalidArgument});
    v1::PredictRequest unknown = MakeCases(1, 78)[0].request;
    unknown.set_model("no-such-model");
    bad.push_back({unknown, absl::StatusCode::kNotFound});
    v1::PredictRequest old = MakeCases(1, 79)[0].request;
    old.set_version(42);
    bad.push_back({old, absl::StatusCode::kNotFound});
    absl::StatusOr<v1::PredictRequest> too_big = MakePredictRequest(
        "digits", 0, RandomRows(kMaxBatchRows + 1, 64, 3), Encoding::kRaw);
    ASSERT_TRUE(too_big.ok());
    bad.push_back({*too_big, absl::StatusCode::kInvalidArgument});
  }

  std::vector<std::vector<Case>> cases;
  for (int t = 0; t < kGoodClients; ++t) {
    cases.push_back(MakeCases(20, 100 + t));
  }
  std::vector<int> wrong(kGoodClients + kBadClients, 0);
  std::vector<std::string> first_error(kGoodClients + kBadClients);
  std::vector<std::thread> threads;
  for (int t = 0; t < kGoodClients + kBadClients; ++t) {
    threads.emplace_back([&, t] {
      absl::StatusOr<std::unique_ptr<Client>> client = NewClient();
      if (!client.ok()) {
        first_error[t] = client.status().ToString();
        wrong[t] = kCalls;
        return;
      }
      for (int i = 0; i < kCalls; ++i) {
        std::string error;
        if (t < kGoodClients) {
          const Case& c = cases[t][i % cases[t].size()];
          error = CheckAnswer(c, (*client)->Predict(c.request));
        } else {
          const auto& [request, code] = bad[(t + i) % bad.size()];
          const absl::Status status = (*client)->Predict(request).status();
          if (status.code() != code) {
            error = absl::StrCat("got ", status.ToString(), ", expected ",
                                 absl::StatusCodeToString(code));
          }
        }
        if (!error.empty() && wrong[t]++ == 0) first_error[t] = error;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kGoodClients + kBadClients; ++t) {
    EXPECT_EQ(wrong[t], 0) << (t < kGoodClients ? "good" : "bad") << " client "
                           << t << ": " << first_error[t];
  }
}

}  // namespace
}  // namespace nnserve::testing
