// Tests of the Open Inference Protocol codec (server/frontend/oip_codec.h):
// every accepted datatype and encoding decodes to the exact float32 values,
// every malformed input is INVALID_ARGUMENT naming what was wrong, requested
// outputs resolve to layers (unknown names list the valid ones), and outputs
// encode as FP32 or classification BYTES in either encoding.
#include "server/frontend/oip_codec.h"

#include <cstring>
#include <string>
#include <vector>

#include "formats/half.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnserve::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr InputExpectation kExpect{.features = 3,
                                   .max_batch_rows = 4,
                                   .description = "model 'm' version 1",
                                   .name = "x"};

// Values exactly representable in every accepted datatype.
const std::vector<float> kValues = {0.5f, -2.0f, 1.25f, 3.0f, 0.0f, -0.75f};

inference::ModelInferRequest Request(std::string datatype,
                                     std::vector<int64_t> shape) {
  inference::ModelInferRequest request;
  auto* input = request.add_inputs();
  input->set_name("x");
  input->set_datatype(std::move(datatype));
  for (int64_t d : shape) input->add_shape(d);
  return request;
}

template <typename T>
void SetRaw(inference::ModelInferRequest* request, const std::vector<T>& v) {
  request->add_raw_input_contents()->assign(
      reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

void ExpectInvalid(const inference::ModelInferRequest& request,
                   const std::string& substring) {
  absl::StatusOr<OipInput> input = DecodeOipInput(request, kExpect);
  ASSERT_FALSE(input.ok()) << substring;
  EXPECT_EQ(input.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(input.status().message(), HasSubstr(substring));
}

TEST(OipDecodeTest, EveryDatatypeAndEncodingDecodesExactly) {
  std::vector<inference::ModelInferRequest> requests;
  auto fp32 = Request("FP32", {2, 3});
  fp32.mutable_inputs(0)->mutable_contents()->mutable_fp32_contents()->Add(
      kValues.begin(), kValues.end());
  requests.push_back(fp32);
  auto fp32_raw = Request("FP32", {2, 3});
  SetRaw(&fp32_raw, kValues);
  requests.push_back(fp32_raw);
  auto fp64 = Request("FP64", {2, 3});
  for (float v : kValues) {
    fp64.mutable_inputs(0)->mutable_contents()->add_fp64_contents(v);
  }
  requests.push_back(fp64);
  auto fp64_raw = Request("FP64", {2, 3});
  SetRaw(&fp64_raw, std::vector<double>(kValues.begin(), kValues.end()));
  requests.push_back(fp64_raw);
  auto fp16 = Request("FP16", {2, 3});
  auto bf16 = Request("BF16", {2, 3});
  std::vector<uint16_t> half, brain;
  for (float v : kValues) {
    half.push_back(formats::FloatToHalfBits(v));
    brain.push_back(formats::FloatToBf16Bits(v));
  }
  SetRaw(&fp16, half);
  SetRaw(&bf16, brain);
  requests.push_back(fp16);
  requests.push_back(bf16);

  for (const auto& request : requests) {
    SCOPED_TRACE(request.inputs(0).datatype() +
                 (request.raw_input_contents_size() > 0 ? " raw" : ""));
    absl::StatusOr<OipInput> input = DecodeOipInput(request, kExpect);
    ASSERT_TRUE(input.ok()) << input.status();
    EXPECT_EQ(input->rows, 2);
    EXPECT_EQ(input->features, 3);
    EXPECT_EQ(input->raw, request.raw_input_contents_size() > 0);
    EXPECT_EQ(input->values, kValues);
  }
}

TEST(OipDecodeTest, OneDimensionalShapeIsABatchOfOne) {
  auto request = Request("FP32", {3});
  SetRaw(&request, std::vector<float>{1, 2, 3});
  absl::StatusOr<OipInput> input = DecodeOipInput(request, kExpect);
  ASSERT_TRUE(input.ok()) << input.status();
  EXPECT_EQ(input->rows, 1);
  EXPECT_THAT(input->values, ElementsAre(1, 2, 3));
}

TEST(OipDecodeTest, MalformedInputsAreInvalidArgument) {
  ExpectInvalid(Request("INT32", {1, 3}),
                "datatype 'INT32' is not accepted for model 'm' version 1; "
                "expected FP32");
  auto half_contents = Request("FP16", {1, 3});
  half_contents.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  ExpectInvalid(half_contents,
                "FP16 input data must be sent in "
                "raw_input_contents");
  ExpectInvalid(Request("FP32", {1, 4}), "has 4 features; expected 3");
  auto misnamed = Request("FP32", {1, 3});
  misnamed.mutable_inputs(0)->set_name("pixels");
  ExpectInvalid(misnamed,
                "the request's input tensor is named 'pixels'; expected 'x' "
                "for model 'm' version 1");
  ExpectInvalid(Request("FP32", {1, 1, 3}), "has rank 3");
  ExpectInvalid(Request("FP32", {0, 3}), "has batch 0");
  ExpectInvalid(Request("FP32", {5, 3}), "over the server's limit of 4 rows");

  auto short_raw = Request("FP32", {2, 3});
  SetRaw(&short_raw, std::vector<float>{1, 2, 3});
  ExpectInvalid(short_raw,
                "raw_input_contents holds 12 bytes; expected 6 "
                "FP32 values of 4 bytes = 24 bytes");
  auto both = Request("FP32", {1, 3});
  SetRaw(&both, std::vector<float>{1, 2, 3});
  both.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  ExpectInvalid(both, "both contents and raw_input_contents");
  auto two_raw = Request("FP32", {1, 3});
  SetRaw(&two_raw, std::vector<float>{1, 2, 3});
  SetRaw(&two_raw, std::vector<float>{1, 2, 3});
  ExpectInvalid(two_raw, "raw_input_contents has 2 entries");
  auto wrong_field = Request("FP32", {1, 3});
  for (int i = 0; i < 3; ++i) {
    wrong_field.mutable_inputs(0)->mutable_contents()->add_fp64_contents(i);
  }
  ExpectInvalid(wrong_field,
                "contents.fp32_contents has 0 values; "
                "expected 3");
  auto two_inputs = Request("FP32", {1, 3});
  *two_inputs.add_inputs() = two_inputs.inputs(0);
  ExpectInvalid(two_inputs, "has 2 input tensors; expected exactly one");
  ExpectInvalid(inference::ModelInferRequest(),
                "has 0 input tensors; expected exactly one");

  auto nan = Request("FP32", {2, 3});
  SetRaw(&nan, std::vector<float>{1, 2, 3, 4, std::nanf(""), 6});
  ExpectInvalid(nan, "row 1, column 1");
  auto huge = Request("FP64", {1, 3});
  for (double v : {1.0, 1e300, 2.0}) {
    huge.mutable_inputs(0)->mutable_contents()->add_fp64_contents(v);
  }
  ExpectInvalid(huge, "row 0, column 1 is 1e+300, beyond the float32 range");
  auto huge_raw = Request("FP64", {1, 3});
  SetRaw(&huge_raw, std::vector<double>{1.0, 2.0, -1e300});
  ExpectInvalid(huge_raw, "row 0, column 2 is beyond the float32 range");
}

engine::ModelInfo Info() {
  engine::ModelInfo info;
  info.name = "m";
  info.output_name = "y";
  info.output_size = 3;
  for (auto [name, units] : {std::pair{"fc0", 5}, std::pair{"fc1", 3}}) {
    engine::LayerInfo layer;
    layer.name = name;
    layer.output_size = units;
    info.layers.push_back(layer);
  }
  return info;
}

void AddOutput(inference::ModelInferRequest* request, std::string name,
               std::optional<inference::InferParameter> classification = {}) {
  auto* out = request->add_outputs();
  out->set_name(std::move(name));
  if (classification) {
    (*out->mutable_parameters())["classification"] = *classification;
  }
}

inference::InferParameter Int64Param(int64_t v) {
  inference::InferParameter p;
  p.set_int64_param(v);
  return p;
}

TEST(OipOutputsTest, ResolveNamesToLayers) {
  inference::ModelInferRequest request;
  auto none = ResolveRequestedOutputs(request, Info());
  ASSERT_TRUE(none.ok());
  ASSERT_EQ(none->size(), 1u);
  EXPECT_EQ((*none)[0].name, "y");
  EXPECT_EQ((*none)[0].layer, 1u);
  EXPECT_EQ((*none)[0].top_k, 0);

  AddOutput(&request, "fc0");
  AddOutput(&request, "y", Int64Param(2));
  AddOutput(&request, "fc1");
  auto resolved = ResolveRequestedOutputs(request, Info());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  ASSERT_EQ(resolved->size(), 3u);
  EXPECT_EQ((*resolved)[0].layer, 0u);
  EXPECT_EQ((*resolved)[1].layer, 1u);
  EXPECT_EQ((*resolved)[1].top_k, 2);
  EXPECT_EQ((*resolved)[2].name, "fc1");
  EXPECT_EQ((*resolved)[2].layer, 1u);
}

TEST(OipOutputsTest, BadRequestedOutputsAreInvalidArgument) {
  struct Case {
    std::string name;
    std::optional<inference::InferParameter> parameter;
    std::string substring;
  };
  inference::InferParameter text;
  text.set_string_param("2");
  const Case cases[] = {
      {"fc9",
       {},
       "requested output 'fc9' is not an output of model 'm'; "
       "expected one of: y, fc0, fc1"},
      {"y", Int64Param(0), "is 0; expected 1 to 3"},
      {"fc0", Int64Param(6), "is 6; expected 1 to 5"},
      {"y", text, "is not an int64_param"},
  };
  for (const Case& c : cases) {
    inference::ModelInferRequest request;
    AddOutput(&request, c.name, c.parameter);
    auto resolved = ResolveRequestedOutputs(request, Info());
    ASSERT_FALSE(resolved.ok()) << c.substring;
    EXPECT_EQ(resolved.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(resolved.status().message(), HasSubstr(c.substring));
  }
  inference::ModelInferRequest request;
  auto* out = request.add_outputs();
  out->set_name("y");
  (*out->mutable_parameters())["binary_data"].set_bool_param(true);
  auto resolved = ResolveRequestedOutputs(request, Info());
  ASSERT_FALSE(resolved.ok());
  EXPECT_THAT(resolved.status().message(),
              HasSubstr("has parameter 'binary_data'; expected only "
                        "'classification'"));
}

TEST(OipVersionTest, EmptyIsNewestElseAPositiveInteger) {
  EXPECT_EQ(ParseOipVersion("").value(), 0);
  EXPECT_EQ(ParseOipVersion("12").value(), 12);
  for (std::string bad : {"0", "-1", "v1", "1.5"}) {
    absl::StatusOr<int64_t> v = ParseOipVersion(bad);
    ASSERT_FALSE(v.ok()) << bad;
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(v.status().message(), HasSubstr("is not a positive integer"));
  }
}

TEST(OipEncodeTest, Fp32OutputsInEitherEncoding) {
  inference::ModelInferResponse contents, raw;
  AppendFp32Output("y", 2, 3, kValues, false, &contents);
  AppendFp32Output("y", 2, 3, kValues, true, &raw);
  for (const auto* r : {&contents, &raw}) {
    ASSERT_EQ(r->outputs_size(), 1);
    EXPECT_EQ(r->outputs(0).name(), "y");
    EXPECT_EQ(r->outputs(0).datatype(), "FP32");
    EXPECT_THAT(r->outputs(0).shape(), ElementsAre(2, 3));
  }
  EXPECT_THAT(contents.outputs(0).contents().fp32_contents(),
              ElementsAre(0.5f, -2.0f, 1.25f, 3.0f, 0.0f, -0.75f));
  EXPECT_EQ(contents.raw_output_contents_size(), 0);
  ASSERT_EQ(raw.raw_output_contents_size(), 1);
  ASSERT_EQ(raw.raw_output_contents(0).size(), 24u);
  std::vector<float> back(6);
  std::memcpy(back.data(), raw.raw_output_contents(0).data(), 24);
  EXPECT_EQ(back, kValues);
  EXPECT_EQ(raw.outputs(0).contents().fp32_contents_size(), 0);
}

TEST(OipEncodeTest, ClassificationIsTopKDescendingWithLabels) {
  // Row 0: ties (3 and 3) keep the lower index first; row 1 has a NaN,
  // which sorts after every number.
  const std::vector<float> values = {1, 3, 3, 0.5f, std::nanf(""), 2};
  inference::ModelInferResponse plain, labelled, raw;
  AppendClassificationOutput("y", 2, 3, values, 2, {}, false, &plain);
  AppendClassificationOutput("y", 2, 3, values, 2, {"a", "b", "c"}, false,
                             &labelled);
  AppendClassificationOutput("y", 2, 3, values, 1, {}, true, &raw);
  EXPECT_EQ(plain.outputs(0).datatype(), "BYTES");
  EXPECT_THAT(plain.outputs(0).shape(), ElementsAre(2, 2));
  EXPECT_THAT(plain.outputs(0).contents().bytes_contents(),
              ElementsAre("3:1", "3:2", "2:2", "0.5:0"));
  EXPECT_THAT(labelled.outputs(0).contents().bytes_contents(),
              ElementsAre("3:1:b", "3:2:c", "2:2:c", "0.5:0:a"));
  EXPECT_THAT(raw.outputs(0).shape(), ElementsAre(2, 1));
  ASSERT_EQ(raw.raw_output_contents_size(), 1);
  EXPECT_EQ(raw.raw_output_contents(0), std::string("\x03\x00\x00\x00"
                                                    "3:1"
                                                    "\x03\x00\x00\x00"
                                                    "2:2",
                                                    14));
}

}  // namespace
}  // namespace nnserve::server
