// The Open Inference Protocol (inference.GRPCInferenceService) against the
// real nnserve binary, on the same port as nnserve.v1.Inference: readiness,
// metadata, ModelInfer in both encodings and for FP64/FP16 inputs equal to
// the reference forward pass, hidden layers, classification, an unknown
// model's NOT_FOUND, and the request metrics (method="ModelInfer").
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "formats/half.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "inference/open_inference_grpc.grpc.pb.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using ::testing::ElementsAre;

constexpr int64_t kInputs = 7;

class OipIntegrationTest : public SharedServerTest<OipIntegrationTest> {
 public:
  // Run by SharedServerTest::SetUpTestSuite.
  static void SetUpSharedSuite() {
    CreateRepository("nnserve_oip_itest");
    model_ = new RandomModel(BuildRandomModel(
        "oip", kInputs,
        {LayerDef(12, Activation::kRelu), LayerDef(9, Activation::kGelu),
         LayerDef(4, Activation::kSoftmax)},
        engine::WeightLayout::kInOut, 17));
    for (const char* label : {"n", "e", "s", "w"}) {
      model_->config.mutable_output()->add_labels(label);
    }
    WriteModelDir(repo_->path(), *model_, 3, FileFormat::kSafetensors,
                  formats::DType::kF32);
    StartSharedServer({});
  }

 protected:
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
    SharedServerTest::TearDownTestSuite();
  }

  void SetUp() override {
    SharedServerTest::SetUp();
    if (HasFatalFailure()) return;
    stub_ = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
        server_->process->grpc_target(), grpc::InsecureChannelCredentials()));
  }

  static std::vector<double> Reference(int layer, std::span<const float> x,
                                       int64_t rows) {
    v1::ModelConfig cut = model_->config;
    cut.mutable_layers()->DeleteSubrange(layer + 1,
                                         cut.layers_size() - layer - 1);
    return ReferenceForward(cut, model_->tensors, x, rows);
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

  static inline RandomModel* model_ = nullptr;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(OipIntegrationTest, ReadyAndDescribesTheModel) {
  grpc::ClientContext c1, c2, c3, c4;
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(&c1, {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(&c2, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
  inference::ServerMetadataResponse server;
  ASSERT_TRUE(stub_->ServerMetadata(&c3, {}, &server).ok());
  EXPECT_EQ(server.name(), "nnserve");
  EXPECT_FALSE(server.version().empty());
  inference::ModelMetadataRequest request;
  request.set_name("oip");
  inference::ModelMetadataResponse meta;
  ASSERT_TRUE(stub_->ModelMetadata(&c4, request, &meta).ok());
  EXPECT_THAT(meta.versions(), ElementsAre("3"));
  EXPECT_EQ(meta.platform(), "nnserve_dense");
  ASSERT_EQ(meta.outputs_size(), 4);
  EXPECT_EQ(meta.outputs(0).name(), model_->config.output().name());
  EXPECT_EQ(meta.outputs(2).name(), "fc1");
  EXPECT_THAT(meta.outputs(2).shape(), ElementsAre(-1, 9));
}

TEST_F(OipIntegrationTest, EveryDatatypeAndEncodingMatchesTheReference) {
  const int64_t rows = 6;
  // Values exactly representable in FP16, so every datatype carries the
  // same float32 input.
  std::vector<float> x = RandomValues(rows * kInputs, 2.0f, 4);
  for (float& v : x) v = formats::HalfToFloat(formats::FloatToHalfBits(v));
  const std::vector<double> expected = Reference(2, x, rows);
  for (const char* datatype : {"FP32", "FP64", "FP16"}) {
    for (bool raw : {false, true}) {
      if (std::string(datatype) == "FP16" && !raw) continue;
      SCOPED_TRACE(absl::StrCat(datatype, raw ? " raw" : " contents"));
      inference::ModelInferRequest request;
      request.set_model_name("oip");
      request.set_id("abc");
      auto* input = request.add_inputs();
      input->set_name(model_->config.input().name());
      input->set_datatype(datatype);
      input->add_shape(rows);
      input->add_shape(kInputs);
      const std::string type = datatype;
      if (type == "FP32" && raw) {
        request.add_raw_input_contents()->assign(
            reinterpret_cast<const char*>(x.data()), x.size() * 4);
      } else if (type == "FP32") {
        input->mutable_contents()->mutable_fp32_contents()->Add(x.begin(),
                                                                x.end());
      } else if (type == "FP64") {
        std::vector<double> d(x.begin(), x.end());
        if (raw) {
          request.add_raw_input_contents()->assign(
              reinterpret_cast<const char*>(d.data()), d.size() * 8);
        } else {
          input->mutable_contents()->mutable_fp64_contents()->Add(d.begin(),
                                                                  d.end());
        }
      } else {
        std::vector<uint16_t> h;
        for (float v : x) h.push_back(formats::FloatToHalfBits(v));
        request.add_raw_input_contents()->assign(
            reinterpret_cast<const char*>(h.data()), h.size() * 2);
      }
      inference::ModelInferResponse response;
      grpc::ClientContext context;
      grpc::Status status = stub_->ModelInfer(&context, request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(response.id(), "abc");
      EXPECT_EQ(response.model_version(), "3");
      EXPECT_EQ(response.raw_output_contents_size(), raw ? 1 : 0);
      EXPECT_LE(MaxRowRelativeError(OutputFloats(response, 0), expected, rows),
                1e-5);
    }
  }
}

TEST_F(OipIntegrationTest, HiddenLayersClassificationAndErrors) {
  const int64_t rows = 3;
  const std::vector<float> x = RandomValues(rows * kInputs, 2.0f, 9);
  inference::ModelInferRequest request;
  request.set_model_name("oip");
  auto* input = request.add_inputs();
  input->set_name(model_->config.input().name());
  input->set_datatype("FP32");
  input->add_shape(rows);
  input->add_shape(kInputs);
  request.add_raw_input_contents()->assign(
      reinterpret_cast<const char*>(x.data()), x.size() * 4);
  request.add_outputs()->set_name("fc0");
  request.add_outputs()->set_name("fc1");
  auto* top = request.add_outputs();
  top->set_name(model_->config.output().name());
  (*top->mutable_parameters())["classification"].set_int64_param(1);
  inference::ModelInferResponse response;
  {
    grpc::ClientContext context;
    grpc::Status status = stub_->ModelInfer(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_EQ(response.outputs_size(), 3);
  EXPECT_LE(MaxRowRelativeError(OutputFloats(response, 0),
                                Reference(0, x, rows), rows),
            1e-5);
  EXPECT_LE(MaxRowRelativeError(OutputFloats(response, 1),
                                Reference(1, x, rows), rows),
            1e-5);
  // Raw BYTES: per element a 4-byte length, then "value:index:label".
  const std::vector<double> out = Reference(2, x, rows);
  const std::string& raw = response.raw_output_contents(2);
  size_t at = 0;
  const char* labels[] = {"n", "e", "s", "w"};
  for (int64_t r = 0; r < rows; ++r) {
    ASSERT_LE(at + 4, raw.size());
    uint32_t size = 0;
    std::memcpy(&size, raw.data() + at, 4);
    const std::string element = raw.substr(at + 4, size);
    at += 4 + size;
    const int best = ArgMaxRow(out, 4, r);
    EXPECT_THAT(element, ::testing::EndsWith(
                             absl::StrCat(":", best, ":", labels[best])));
  }
  EXPECT_EQ(at, raw.size());

  // The input tensor must carry the model's input name.
  request.mutable_inputs(0)->set_name("wrong");
  {
    grpc::ClientContext context;
    grpc::Status status = stub_->ModelInfer(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(),
                ::testing::HasSubstr("named 'wrong'; expected '" +
                                     model_->config.input().name() + "'"));
  }

  request.set_model_name("missing");
  grpc::ClientContext context;
  EXPECT_EQ(stub_->ModelInfer(&context, request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);

  absl::StatusOr<std::string> metrics = ScrapeMetrics(*server_->process);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics, ::testing::HasSubstr(
                            "nnserve_requests_total{code=\"NOT_FOUND\",method="
                            "\"ModelInfer\",model=\"_unknown\"} 1"));
  EXPECT_THAT(*metrics, ::testing::ContainsRegex(
                            "nnserve_requests_total\\{code=\"OK\",method="
                            "\"ModelInfer\",model=\"oip\"\\} [1-9]"));
}

}  // namespace
}  // namespace nnserve::testing
