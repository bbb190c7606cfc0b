// In-process tests of InferenceService: a real grpc::Server on loopback
// (port chosen by the OS) with the service, a Scheduler, and a ModelRegistry
// filled by a ModelLifecycle from a temporary repository; the generated stub
// is the client.
#include "server/frontend/inference_service.h"

#include <cmath>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/lifecycle/model_registry.h"
#include "server/scheduling/scheduler.h"
#include "tests/server/frontend/service_test_util.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"

namespace nnserve::server {
namespace {

using nnserve::testing::BuildRandomModel;
using nnserve::testing::FillRandomInput;
using nnserve::testing::RandomModel;
using nnserve::testing::ScopedTempDir;
using nnserve::testing::TensorFloats;
using nnserve::testing::WriteModelDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kInputs = 6;

class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = BuildRandomModel(
        "clf", kInputs,
        {{8, engine::Activation::kTanh}, {3, engine::Activation::kSoftmax}},
        engine::WeightLayout::kOutIn, 7);
    model_.config.mutable_output()->add_labels("cat");
    model_.config.mutable_output()->add_labels("dog");
    model_.config.mutable_output()->add_labels("eel");
    WriteModelDir(repo_.path(), model_, 1,
                  nnserve::testing::FileFormat::kSafetensors,
                  formats::DType::kF32);
  }

  void TearDown() override { stack_.Stop(); }

  // Starts the serving core (loads the repository) and the service.
  void StartServer(ServiceOptions options,
                   Scheduler::Options scheduling = {.threads = 2}) {
    ASSERT_NO_FATAL_FAILURE(stack_.Start(scheduling));
    auto service = std::make_unique<InferenceService>(
        stack_.registry(), stack_.scheduler(), &metrics_, options);
    service_ = service.get();
    stub_ = v1::Inference::NewStub(stack_.Serve(std::move(service)));
  }

  // Occupies the scheduler's worker (run with threads = 1): a call on a
  // queue of its own whose completion waits for `release`. Returns once the
  // worker holds it.
  void HoldWorker(std::latch* release) {
    auto served = stack_.registry()->Find("clf", 0);
    ASSERT_TRUE(served.ok());
    blocker_queue_ = stack_.scheduler()->CreateQueue(
        (*served)->model, {}, nullptr, nullptr, "blocker");
    blocker_input_.assign(kInputs, 0.5f);
    blocker_output_.assign(3, 0.0f);
    std::latch started(1);
    ASSERT_TRUE(stack_.scheduler()
                    ->Submit(blocker_queue_,
                             InferenceCall{
                                 .input = blocker_input_,
                                 .rows = 1,
                                 .output = blocker_output_,
                                 .is_cancelled = {},
                                 .done =
                                     [&started, release](absl::Status status) {
                                       EXPECT_TRUE(status.ok());
                                       started.count_down();
                                       release->wait();
                                     }})
                    .ok());
    started.wait();
  }

  v1::PredictRequest Request(int64_t rows, bool raw, uint32_t seed = 1) {
    v1::PredictRequest request;
    request.set_model("clf");
    FillRandomInput(request.mutable_input(), rows, kInputs, raw, seed);
    return request;
  }

  // Checks `response` against the reference forward pass of `request`.
  void ExpectMatchesReference(const v1::PredictRequest& request,
                              const v1::PredictResponse& response) {
    const int64_t rows = request.input().shape(0);
    const std::vector<float> x = TensorFloats(request.input());
    const std::vector<double> expected = nnserve::testing::ReferenceForward(
        model_.config, model_.tensors, x, rows);
    const std::vector<float> actual = TensorFloats(response.output());
    ASSERT_EQ(actual.size(), expected.size());
    EXPECT_LE(nnserve::testing::MaxRowRelativeError(actual, expected, rows),
              1e-5);
    EXPECT_THAT(response.output().shape(), ElementsAre(rows, 3));
    ASSERT_EQ(response.classes_size(), rows);
    ASSERT_EQ(response.labels_size(), rows);
    const char* names[] = {"cat", "dog", "eel"};
    for (int64_t r = 0; r < rows; ++r) {
      int best = 0;
      for (int c = 1; c < 3; ++c) {
        if (expected[r * 3 + c] > expected[r * 3 + best]) best = c;
      }
      EXPECT_EQ(response.classes(static_cast<int>(r)), best);
      EXPECT_EQ(response.labels(static_cast<int>(r)), names[best]);
    }
  }

  double RequestCount(const std::string& model, const std::string& method,
                      const std::string& code) {
    return nnserve::testing::RequestCount(metrics_, model, method, code);
  }

  ScopedTempDir repo_{"inference_service_test"};
  RandomModel model_;
  ServerMetrics metrics_{"test"};
  nnserve::testing::ServingStack stack_{repo_.path(), &metrics_};
  InferenceService* service_ = nullptr;  // Owned by stack_.
  std::shared_ptr<ModelQueue> blocker_queue_;
  std::vector<float> blocker_input_;
  std::vector<float> blocker_output_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

TEST_F(InferenceServiceTest, InlineAndQueuedForwardsGiveTheReferenceResult) {
  for (int64_t inline_limit : {int64_t{1} << 40, int64_t{0}}) {
    SCOPED_TRACE(inline_limit == 0 ? "queued" : "inline");
    StartServer({}, {.threads = 2, .inline_work_limit = inline_limit});
    for (bool raw : {false, true}) {
      for (int64_t rows : {1, 5}) {
        const v1::PredictRequest request = Request(rows, raw, 10 + rows);
        v1::PredictResponse response;
        grpc::ClientContext context;
        grpc::Status status = stub_->Predict(&context, request, &response);
        ASSERT_TRUE(status.ok()) << status.error_message();
        EXPECT_EQ(response.model(), "clf");
        EXPECT_EQ(response.version(), 1);
        EXPECT_EQ(response.output().raw().empty(), !raw);
        ExpectMatchesReference(request, response);
      }
    }
  }
  EXPECT_EQ(RequestCount("clf", "Predict", "OK"), 8);
}

TEST_F(InferenceServiceTest, OneDimensionalInputIsABatchOfOne) {
  StartServer({});
  v1::PredictRequest request = Request(1, false);
  request.mutable_input()->clear_shape();
  request.mutable_input()->add_shape(kInputs);
  v1::PredictResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Predict(&context, request, &response).ok());
  EXPECT_THAT(response.output().shape(), ElementsAre(1, 3));
}

TEST_F(InferenceServiceTest, ErrorsCarryCodesAndAreCounted) {
  StartServer({.max_batch_rows = 4});
  struct Case {
    v1::PredictRequest request;
    grpc::StatusCode code;
    std::string substring;
  };
  std::vector<Case> cases;
  {
    v1::PredictRequest r = Request(1, false);
    r.set_model("nope");
    cases.push_back({r, grpc::StatusCode::NOT_FOUND,
                     "model 'nope' not found; available models: clf"});
  }
  {
    v1::PredictRequest r = Request(1, false);
    r.set_version(3);
    cases.push_back({r, grpc::StatusCode::NOT_FOUND,
                     "has no version 3; loaded versions: 1"});
  }
  cases.push_back({Request(5, true), grpc::StatusCode::INVALID_ARGUMENT,
                   "batch of 5 rows exceeds the server limit of 4"});
  {
    v1::PredictRequest r = Request(1, false);
    r.mutable_input()->set_shape(1, kInputs + 1);
    cases.push_back(
        {r, grpc::StatusCode::INVALID_ARGUMENT, "7 features per row"});
  }
  for (const Case& c : cases) {
    v1::PredictResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub_->Predict(&context, c.request, &response);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.substring));
  }
  EXPECT_EQ(RequestCount("_unknown", "Predict", "NOT_FOUND"), 1);
  EXPECT_EQ(RequestCount("clf", "Predict", "NOT_FOUND"), 1);
  EXPECT_EQ(RequestCount("clf", "Predict", "INVALID_ARGUMENT"), 2);
  EXPECT_EQ(RequestCount("clf", "Predict", "OK"), 0);
}

TEST_F(InferenceServiceTest, OutputLayersAreTheForwardPassActivations) {
  // Inline (tiny forwards run on the gRPC thread) and queued on a worker.
  for (int64_t inline_limit : {int64_t{1} << 40, int64_t{0}}) {
    SCOPED_TRACE(inline_limit == 0 ? "queued" : "inline");
    StartServer({}, {.threads = 2, .inline_work_limit = inline_limit});
    for (bool raw : {false, true}) {
      SCOPED_TRACE(raw ? "raw" : "values");
      const int64_t rows = 5;
      v1::PredictRequest request = Request(rows, raw, 17);
      request.add_output_layers("fc1");  // The model output, asked by name.
      request.add_output_layers("fc0");  // The hidden tanh layer.
      v1::PredictResponse response;
      grpc::ClientContext context;
      grpc::Status status = stub_->Predict(&context, request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ExpectMatchesReference(request, response);
      ASSERT_EQ(response.layers_size(), 2);
      EXPECT_EQ(response.layers(0).name(), "fc1");
      EXPECT_EQ(response.layers(1).name(), "fc0");
      const std::vector<float> x = TensorFloats(request.input());
      v1::ModelConfig hidden = model_.config;
      hidden.mutable_layers()->DeleteSubrange(1, 1);  // Cut after fc0.
      const std::vector<double> expected_hidden =
          nnserve::testing::ReferenceForward(hidden, model_.tensors, x, rows);
      const v1::Tensor& fc0 = response.layers(1).tensor();
      EXPECT_THAT(fc0.shape(), ElementsAre(rows, 8));
      EXPECT_EQ(fc0.raw().empty(), !raw);  // The request's encoding.
      EXPECT_LE(nnserve::testing::MaxRowRelativeError(TensorFloats(fc0),
                                                      expected_hidden, rows),
                1e-5);
      // The model output asked by name is the output itself.
      EXPECT_EQ(TensorFloats(response.layers(0).tensor()),
                TensorFloats(response.output()));
    }
  }
}

TEST_F(InferenceServiceTest, UnknownOrRepeatedOutputLayersAreRefused) {
  StartServer({});
  const auto predict = [&](std::vector<std::string> layers) {
    v1::PredictRequest request = Request(1, false);
    for (const std::string& layer : layers) request.add_output_layers(layer);
    v1::PredictResponse response;
    grpc::ClientContext context;
    return stub_->Predict(&context, request, &response);
  };
  grpc::Status unknown = predict({"fc0", "fc9"});
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(unknown.error_message(),
              HasSubstr("model 'clf' has no layer 'fc9'; expected one of: "
                        "fc0, fc1"));
  grpc::Status twice = predict({"fc0", "fc0"});
  EXPECT_EQ(twice.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(twice.error_message(), HasSubstr("'fc0' is asked for twice"));
}

TEST_F(InferenceServiceTest, OverflowedRowsHaveNoClassInsteadOfClassZero) {
  // One identity layer whose weights are all 1e30: a row of 1e10 inputs
  // overflows to +Inf (finite inputs, finite weights), a row of 1e-30
  // inputs does not.
  RandomModel overflow = BuildRandomModel(
      "overflow", 2, {{2, engine::Activation::kIdentity, /*bias=*/false}},
      engine::WeightLayout::kOutIn, 3);
  for (float& w : overflow.tensors.at("fc0.weight").values) w = 1e30f;
  overflow.config.mutable_output()->add_labels("low");
  overflow.config.mutable_output()->add_labels("high");
  WriteModelDir(repo_.path(), overflow, 1,
                nnserve::testing::FileFormat::kSafetensors,
                formats::DType::kF32);
  StartServer({});
  v1::PredictRequest request;
  request.set_model("overflow");
  request.mutable_input()->add_shape(2);
  request.mutable_input()->add_shape(2);
  for (float v : {1e10f, 1e10f, 1e-30f, 2e-30f}) {
    request.mutable_input()->add_values(v);
  }
  v1::PredictResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub_->Predict(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::vector<float> output = TensorFloats(response.output());
  ASSERT_EQ(output.size(), 4u);
  EXPECT_TRUE(std::isinf(output[0]));  // The caller sees the overflow.
  EXPECT_THAT(response.classes(), ElementsAre(-1, 0));
  EXPECT_THAT(response.labels(), ElementsAre("", "low"));
}

TEST_F(InferenceServiceTest, ResponseOverTheMessageLimitIsRefusedUpFront) {
  StartServer({.max_batch_rows = 1000, .max_message_bytes = 1024});
  v1::PredictResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub_->Predict(&context, Request(100, true), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(),
              HasSubstr("would be 1200 bytes, over the server's message "
                        "limit of 1024"));
}

TEST_F(InferenceServiceTest, FullInferenceQueueIsResourceExhausted) {
  StartServer({},
              {.threads = 1, .max_queued_calls = 1, .inline_work_limit = 0});
  std::latch release(1);
  ASSERT_NO_FATAL_FAILURE(HoldWorker(&release));
  // One call waits behind the held worker: the queue is now full.
  const v1::PredictRequest first = Request(1, false, 3);
  v1::PredictResponse first_response;
  grpc::ClientContext first_context;
  std::latch first_done(1);
  grpc::Status first_status;
  stub_->async()->Predict(&first_context, &first, &first_response,
                          [&](grpc::Status status) {
                            first_status = std::move(status);
                            first_done.count_down();
                          });
  while (stack_.scheduler()->queued_calls() != 1) std::this_thread::yield();

  v1::PredictResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub_->Predict(&context, Request(1, false), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("inference queue is full"));
  release.count_down();
  // The queued call is answered, and requests succeed again.
  first_done.wait();
  ASSERT_TRUE(first_status.ok()) << first_status.error_message();
  ExpectMatchesReference(first, first_response);
  v1::PredictResponse ok_response;
  grpc::ClientContext ok_context;
  EXPECT_TRUE(
      stub_->Predict(&ok_context, Request(1, false), &ok_response).ok());
}

TEST_F(InferenceServiceTest, BadRequestsDoNotAffectConcurrentGoodOnes) {
  StartServer({}, {.threads = 2, .inline_work_limit = 0});
  std::vector<std::thread> threads;
  std::atomic<int> good_ok{0};
  std::atomic<int> bad_invalid{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        v1::PredictRequest request = Request(1 + (i % 3), t % 2 == 0, t + i);
        const bool bad = (t + i) % 2 == 1;
        if (bad) {
          request.mutable_input()->mutable_values()->Add(
              std::numeric_limits<float>::quiet_NaN());
          request.mutable_input()->clear_raw();
        }
        v1::PredictResponse response;
        grpc::ClientContext context;
        grpc::Status status = stub_->Predict(&context, request, &response);
        if (bad) {
          if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
            ++bad_invalid;
          }
        } else if (status.ok()) {
          ExpectMatchesReference(request, response);
          ++good_ok;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(good_ok.load(), 50);
  EXPECT_EQ(bad_invalid.load(), 50);
}

TEST_F(InferenceServiceTest, DrainRefusesNewCallsAndWaitsForInFlightOnes) {
  StartServer({}, {.threads = 1, .inline_work_limit = 0});
  std::latch release(1);
  ASSERT_NO_FATAL_FAILURE(HoldWorker(&release));
  // A call that is in flight (queued behind the blocked worker).
  const v1::PredictRequest request = Request(2, false);
  v1::PredictResponse response;
  grpc::ClientContext context;
  std::latch finished(1);
  grpc::Status in_flight_status;
  stub_->async()->Predict(&context, &request, &response,
                          [&](grpc::Status status) {
                            in_flight_status = std::move(status);
                            finished.count_down();
                          });
  while (stack_.scheduler()->queued_calls() != 1) std::this_thread::yield();

  service_->BeginDrain();
  v1::PredictResponse refused;
  grpc::ClientContext refused_context;
  grpc::Status status =
      stub_->Predict(&refused_context, Request(1, false), &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("shutting down"));
  // The queued call keeps the service busy until the worker is released.
  EXPECT_FALSE(service_->WaitForIdle(std::chrono::system_clock::now() +
                                     std::chrono::milliseconds(20)));
  release.count_down();
  EXPECT_TRUE(service_->WaitForIdle(std::chrono::system_clock::now() +
                                    std::chrono::seconds(60)));
  finished.wait();
  ASSERT_TRUE(in_flight_status.ok()) << in_flight_status.error_message();
  ExpectMatchesReference(request, response);
}

TEST_F(InferenceServiceTest, ModelInfoDescribesTheModel) {
  StartServer({});
  v1::ModelInfoRequest request;
  request.set_model("clf");
  v1::ModelInfoResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ModelInfo(&context, request, &response).ok());
  EXPECT_EQ(response.name(), "clf");
  EXPECT_EQ(response.version(), 1);
  EXPECT_THAT(response.available_versions(), ElementsAre(1));
  EXPECT_EQ(response.input_size(), kInputs);
  EXPECT_EQ(response.output_size(), 3);
  EXPECT_THAT(response.labels(), ElementsAre("cat", "dog", "eel"));
  ASSERT_EQ(response.layers_size(), 2);
  EXPECT_EQ(response.layers(0).activation(), v1::TANH);
  EXPECT_EQ(response.layers(1).activation(), v1::SOFTMAX);
  EXPECT_EQ(response.layers(0).parameters(), kInputs * 8 + 8);
  EXPECT_EQ(response.total_parameters(), kInputs * 8 + 8 + 8 * 3 + 3);
  EXPECT_EQ(response.weight_bytes(), response.total_parameters() * 4);
  EXPECT_GT(response.layers(0).weight_stats().max(),
            response.layers(0).weight_stats().min());

  request.set_model("zzz");
  grpc::ClientContext missing_context;
  grpc::Status missing = stub_->ModelInfo(&missing_context, request, &response);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(RequestCount("_unknown", "ModelInfo", "NOT_FOUND"), 1);
}

TEST_F(InferenceServiceTest, ListModelsReportsAvailableVersions) {
  StartServer({});
  v1::ListModelsResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(
      stub_->ListModels(&context, v1::ListModelsRequest(), &response).ok());
  ASSERT_EQ(response.models_size(), 1);
  EXPECT_EQ(response.models(0).name(), "clf");
  ASSERT_EQ(response.models(0).versions_size(), 1);
  EXPECT_EQ(response.models(0).versions(0).state(),
            v1::ModelVersionStatus::AVAILABLE);
  EXPECT_EQ(RequestCount("_all", "ListModels", "OK"), 1);
}

}  // namespace
}  // namespace nnserve::server
