// In-process tests of OipInferenceService (inference.GRPCInferenceService):
// a real grpc::Server on loopback with the service, a Scheduler and a
// ModelRegistry filled by a ModelLifecycle from a temporary repository; the
// stub generated from the standard proto is the client. Results are checked
// against the plain-loop reference forward pass (tests/util/reference.h).
#include "server/frontend/oip_service.h"

#include <cstring>
#include <memory>
#include <string>
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
using nnserve::testing::MaxRowRelativeError;
using nnserve::testing::RandomModel;
using nnserve::testing::RandomValues;
using nnserve::testing::ReferenceForward;
using nnserve::testing::ScopedTempDir;
using nnserve::testing::WriteModelDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kInputs = 6;

class OipServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = BuildRandomModel("clf", kInputs,
                              {{8, engine::Activation::kRelu},
                               {5, engine::Activation::kTanh},
                               {3, engine::Activation::kSoftmax}},
                              engine::WeightLayout::kOutIn, 7);
    for (const char* label : {"cat", "dog", "eel"}) {
      model_.config.mutable_output()->add_labels(label);
    }
    WriteModelDir(repo_.path(), model_, 1,
                  nnserve::testing::FileFormat::kSafetensors,
                  formats::DType::kF32);
  }

  void TearDown() override { stack_.Stop(); }

  // Starts the serving core (loads the repository) and the service.
  void StartServer(ServiceOptions options,
                   Scheduler::Options scheduling = {.threads = 2}) {
    ASSERT_NO_FATAL_FAILURE(stack_.Start(scheduling));
    auto service = std::make_unique<OipInferenceService>(
        stack_.registry(), stack_.scheduler(), options, "9.9.9");
    service_ = service.get();
    stub_ = inference::GRPCInferenceService::NewStub(
        stack_.Serve(std::move(service)));
  }

  inference::ModelInferRequest Request(int64_t rows, bool raw, uint32_t seed) {
    inference::ModelInferRequest request;
    request.set_model_name("clf");
    request.set_id("call-" + std::to_string(seed));
    auto* input = request.add_inputs();
    input->set_name("x");
    input->set_datatype("FP32");
    input->add_shape(rows);
    input->add_shape(kInputs);
    input_ = RandomValues(static_cast<size_t>(rows * kInputs), 2.0f, seed);
    if (raw) {
      request.add_raw_input_contents()->assign(
          reinterpret_cast<const char*>(input_.data()),
          input_.size() * sizeof(float));
    } else {
      input->mutable_contents()->mutable_fp32_contents()->Add(input_.begin(),
                                                              input_.end());
    }
    return request;
  }

  // The reference output of the model cut after layer `layer`, for input_.
  std::vector<double> Reference(int layer, int64_t rows) {
    v1::ModelConfig cut = model_.config;
    cut.mutable_layers()->DeleteSubrange(layer + 1,
                                         cut.layers_size() - layer - 1);
    return ReferenceForward(cut, model_.tensors, input_, rows);
  }

  static std::vector<float> OutputFloats(
      const inference::ModelInferResponse& response, int i) {
    if (response.raw_output_contents_size() > 0) {
      const std::string& raw = response.raw_output_contents(i);
      std::vector<float> v(raw.size() / sizeof(float));
      std::memcpy(v.data(), raw.data(), raw.size());
      return v;
    }
    const auto& c = response.outputs(i).contents().fp32_contents();
    return {c.begin(), c.end()};
  }

  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) {
    grpc::ClientContext context;
    return stub_->ModelInfer(&context, request, response);
  }

  double RequestCount(const std::string& model, const std::string& method,
                      const std::string& code) {
    return nnserve::testing::RequestCount(metrics_, model, method, code);
  }

  ScopedTempDir repo_{"oip_service_test"};
  RandomModel model_;
  std::vector<float> input_;
  ServerMetrics metrics_{"test"};
  nnserve::testing::ServingStack stack_{repo_.path(), &metrics_};
  OipInferenceService* service_ = nullptr;  // Owned by stack_.
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(OipServiceTest, ModelInferMatchesTheReferenceInBothEncodings) {
  for (int64_t inline_limit : {int64_t{1} << 40, int64_t{0}}) {
    SCOPED_TRACE(inline_limit == 0 ? "queued" : "inline");
    StartServer({}, {.threads = 2, .inline_work_limit = inline_limit});
    for (bool raw : {false, true}) {
      for (int64_t rows : {1, 5}) {
        const auto request = Request(rows, raw, static_cast<uint32_t>(rows));
        inference::ModelInferResponse response;
        grpc::Status status = Infer(request, &response);
        ASSERT_TRUE(status.ok()) << status.error_message();
        EXPECT_EQ(response.model_name(), "clf");
        EXPECT_EQ(response.model_version(), "1");
        EXPECT_EQ(response.id(), request.id());
        ASSERT_EQ(response.outputs_size(), 1);
        EXPECT_EQ(response.outputs(0).name(), "y");
        EXPECT_EQ(response.outputs(0).datatype(), "FP32");
        EXPECT_THAT(response.outputs(0).shape(), ElementsAre(rows, 3));
        EXPECT_EQ(response.raw_output_contents_size(), raw ? 1 : 0);
        EXPECT_LE(MaxRowRelativeError(OutputFloats(response, 0),
                                      Reference(2, rows), rows),
                  1e-5);
      }
    }
  }
  EXPECT_EQ(RequestCount("clf", "ModelInfer", "OK"), 8);
}

TEST_F(OipServiceTest, HiddenLayersAreTheForwardPassActivations) {
  for (int64_t inline_limit : {int64_t{1} << 40, int64_t{0}}) {
    SCOPED_TRACE(inline_limit == 0 ? "queued" : "inline");
    StartServer({}, {.threads = 2, .inline_work_limit = inline_limit});
    for (bool raw : {false, true}) {
      auto request = Request(4, raw, 21);
      for (const char* name : {"fc1", "y", "fc0", "fc2"}) {
        request.add_outputs()->set_name(name);
      }
      inference::ModelInferResponse response;
      grpc::Status status = Infer(request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ASSERT_EQ(response.outputs_size(), 4);
      const int layers[] = {1, 2, 0, 2};
      const int64_t units[] = {5, 3, 8, 3};
      for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(response.outputs(i).name(), request.outputs(i).name());
        EXPECT_THAT(response.outputs(i).shape(), ElementsAre(4, units[i]));
        EXPECT_LE(MaxRowRelativeError(OutputFloats(response, i),
                                      Reference(layers[i], 4), 4),
                  1e-5)
            << response.outputs(i).name();
      }
      // The model output and its last layer are the same values.
      EXPECT_EQ(OutputFloats(response, 1), OutputFloats(response, 3));
    }
  }
}

TEST_F(OipServiceTest, ClassificationReturnsTopKWithLabels) {
  StartServer({});
  auto request = Request(3, false, 5);
  auto* out = request.add_outputs();
  out->set_name("y");
  (*out->mutable_parameters())["classification"].set_int64_param(2);
  auto* hidden = request.add_outputs();
  hidden->set_name("fc1");
  (*hidden->mutable_parameters())["classification"].set_int64_param(1);
  inference::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).datatype(), "BYTES");
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(3, 2));
  EXPECT_THAT(response.outputs(1).shape(), ElementsAre(3, 1));
  const std::vector<double> expected = Reference(2, 3);
  const std::vector<double> expected_hidden = Reference(1, 3);
  const char* labels[] = {"cat", "dog", "eel"};
  for (int r = 0; r < 3; ++r) {
    std::vector<int> order = {0, 1, 2};
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      return expected[r * 3 + a] > expected[r * 3 + b];
    });
    for (int k = 0; k < 2; ++k) {
      const std::string& element =
          response.outputs(0).contents().bytes_contents(r * 2 + k);
      EXPECT_THAT(element, ::testing::EndsWith(absl::StrCat(":", order[k], ":",
                                                            labels[order[k]])));
    }
    int best = 0;
    for (int u = 1; u < 5; ++u) {
      if (expected_hidden[r * 5 + u] > expected_hidden[r * 5 + best]) best = u;
    }
    // Hidden units have no labels.
    EXPECT_THAT(response.outputs(1).contents().bytes_contents(r),
                ::testing::EndsWith(absl::StrCat(":", best)));
  }
}

TEST_F(OipServiceTest, ErrorsHavePredictsCodesAndAreCounted) {
  StartServer({.max_batch_rows = 8, .max_message_bytes = 64});
  struct Case {
    inference::ModelInferRequest request;
    grpc::StatusCode code;
    std::string substring;
  };
  std::vector<Case> cases;
  auto unknown = Request(1, false, 1);
  unknown.set_model_name("nope");
  cases.push_back({unknown, grpc::StatusCode::NOT_FOUND, "nope"});
  auto missing_version = Request(1, false, 1);
  missing_version.set_model_version("7");
  cases.push_back({missing_version, grpc::StatusCode::NOT_FOUND, "version 7"});
  auto bad_version = Request(1, false, 1);
  bad_version.set_model_version("latest");
  cases.push_back({bad_version, grpc::StatusCode::INVALID_ARGUMENT,
                   "model version 'latest' is not a positive integer"});
  auto int_input = Request(1, false, 1);
  int_input.mutable_inputs(0)->set_datatype("INT64");
  cases.push_back({int_input, grpc::StatusCode::INVALID_ARGUMENT,
                   "datatype 'INT64' is not accepted"});
  auto bad_output = Request(1, false, 1);
  bad_output.add_outputs()->set_name("fc7");
  cases.push_back({bad_output, grpc::StatusCode::INVALID_ARGUMENT,
                   "expected one of: y, fc0, fc1, fc2"});
  cases.push_back({Request(8, true, 1), grpc::StatusCode::RESOURCE_EXHAUSTED,
                   "over the server's message limit of 64 bytes"});
  for (const Case& c : cases) {
    inference::ModelInferResponse response;
    grpc::Status status = Infer(c.request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.substring;
    EXPECT_THAT(status.error_message(), HasSubstr(c.substring));
  }
  EXPECT_EQ(RequestCount("_unknown", "ModelInfer", "NOT_FOUND"), 1);
  EXPECT_EQ(RequestCount("clf", "ModelInfer", "NOT_FOUND"), 1);
  EXPECT_EQ(RequestCount("clf", "ModelInfer", "INVALID_ARGUMENT"), 3);
  EXPECT_EQ(RequestCount("clf", "ModelInfer", "RESOURCE_EXHAUSTED"), 1);
}

TEST_F(OipServiceTest, MetadataAndReadiness) {
  StartServer({});
  grpc::ClientContext c1, c2, c3, c4;
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(&c1, {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(&c2, {}, &ready).ok());
  EXPECT_FALSE(ready.ready());  // Not until SetReady(true).
  service_->SetReady(true);
  ASSERT_TRUE(stub_->ServerReady(&c3, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());

  inference::ServerMetadataResponse server;
  ASSERT_TRUE(stub_->ServerMetadata(&c4, {}, &server).ok());
  EXPECT_EQ(server.name(), "nnserve");
  EXPECT_EQ(server.version(), "9.9.9");
  EXPECT_THAT(server.extensions(), ElementsAre("classification"));

  inference::ModelMetadataRequest meta_request;
  meta_request.set_name("clf");
  inference::ModelMetadataResponse meta;
  {
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->ModelMetadata(&c, meta_request, &meta).ok());
  }
  EXPECT_EQ(meta.name(), "clf");
  EXPECT_THAT(meta.versions(), ElementsAre("1"));
  EXPECT_EQ(meta.platform(), "nnserve_dense");
  ASSERT_EQ(meta.inputs_size(), 1);
  EXPECT_EQ(meta.inputs(0).name(), "x");
  EXPECT_EQ(meta.inputs(0).datatype(), "FP32");
  EXPECT_THAT(meta.inputs(0).shape(), ElementsAre(-1, kInputs));
  std::vector<std::string> names;
  std::vector<int64_t> widths;
  for (const auto& out : meta.outputs()) {
    names.push_back(out.name());
    widths.push_back(out.shape(1));
    EXPECT_EQ(out.shape(0), -1);
  }
  EXPECT_THAT(names, ElementsAre("y", "fc0", "fc1", "fc2"));
  EXPECT_THAT(widths, ElementsAre(3, 8, 5, 3));

  struct ReadyCase {
    std::string name, version;
    grpc::StatusCode code;
  };
  for (const ReadyCase& c :
       {ReadyCase{"clf", "", grpc::StatusCode::OK},
        ReadyCase{"clf", "1", grpc::StatusCode::OK},
        ReadyCase{"clf", "2", grpc::StatusCode::NOT_FOUND},
        ReadyCase{"nope", "", grpc::StatusCode::NOT_FOUND},
        ReadyCase{"clf", "x", grpc::StatusCode::INVALID_ARGUMENT}}) {
    inference::ModelReadyRequest request;
    request.set_name(c.name);
    request.set_version(c.version);
    inference::ModelReadyResponse response;
    grpc::ClientContext context;
    EXPECT_EQ(stub_->ModelReady(&context, request, &response).error_code(),
              c.code)
        << c.name << " " << c.version;
    EXPECT_EQ(response.ready(), c.code == grpc::StatusCode::OK);
  }
  meta_request.set_name("nope");
  {
    grpc::ClientContext c;
    EXPECT_EQ(stub_->ModelMetadata(&c, meta_request, &meta).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }

  // Draining: not ready, and calls are refused UNAVAILABLE.
  service_->BeginDrain();
  {
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->ServerReady(&c, {}, &ready).ok());
    EXPECT_FALSE(ready.ready());
  }
  inference::ModelInferResponse response;
  EXPECT_EQ(Infer(Request(1, false, 1), &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(RequestCount("clf", "ModelInfer", "UNAVAILABLE"), 1);
}

}  // namespace
}  // namespace nnserve::server
