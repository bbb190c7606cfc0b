// Tests of the Open Inference Protocol's JSON binding (server/http/
// oip_json.h): request bodies into inference.ModelInferRequest (flat and
// nested data, every datatype, the binary tensor data extension, errors
// naming the JSON path) and responses into JSON (round-tripping floats,
// BYTES, binary outputs).
#include "server/http/oip_json.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace nnserve::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename T>
std::vector<T> Decode(const std::string& raw) {
  std::vector<T> values(raw.size() / sizeof(T));
  std::memcpy(values.data(), raw.data(), values.size() * sizeof(T));
  return values;
}

absl::StatusOr<HttpInferRequest> Parse(const std::string& body) {
  return ParseInferRequestJson(body, body.size(), "m", "");
}

TEST(OipJsonRequestTest, FlatAndNestedDataGiveTheSameRawFloats) {
  auto flat = Parse(R"({"id": "r1", "inputs": [{"name": "x", "shape": [2, 3],
      "datatype": "FP32", "data": [1, 2.5, -3, 4, 0.1, 6]}]})");
  auto nested = Parse(R"({"inputs": [{"name": "x", "shape": [2, 3],
      "datatype": "FP32", "data": [[1, 2.5, -3], [4, 0.1, 6]]}]})");
  ASSERT_TRUE(flat.ok()) << flat.status();
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_EQ(flat->request.id(), "r1");
  EXPECT_EQ(flat->request.model_name(), "m");
  ASSERT_EQ(flat->request.inputs_size(), 1);
  EXPECT_THAT(flat->request.inputs(0).shape(), ElementsAre(2, 3));
  EXPECT_EQ(flat->request.inputs(0).datatype(), "FP32");
  ASSERT_EQ(flat->request.raw_input_contents_size(), 1);
  EXPECT_THAT(Decode<float>(flat->request.raw_input_contents(0)),
              ElementsAre(1.0f, 2.5f, -3.0f, 4.0f, 0.1f, 6.0f));
  EXPECT_EQ(nested->request.raw_input_contents(0),
            flat->request.raw_input_contents(0));
}

TEST(OipJsonRequestTest, EveryFloatDatatypeIsEncodedAsItsOwnBytes) {
  const auto parse = [](const char* datatype) {
    return Parse(
        absl::StrCat(R"({"inputs": [{"name": "x", "shape": [2], "datatype": ")",
                     datatype, R"(", "data": [0.1, -2]}]})"));
  };
  auto fp64 = parse("FP64");
  ASSERT_TRUE(fp64.ok()) << fp64.status();
  EXPECT_THAT(Decode<double>(fp64->request.raw_input_contents(0)),
              ElementsAre(0.1, -2.0));
  auto fp16 = parse("FP16");
  ASSERT_TRUE(fp16.ok()) << fp16.status();
  // 0.1 rounds to the half 0x2E66; -2 is 0xC000.
  EXPECT_THAT(Decode<uint16_t>(fp16->request.raw_input_contents(0)),
              ElementsAre(0x2E66, 0xC000));
  auto bf16 = parse("BF16");
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  // 0.1f is 0x3DCCCCCD, rounded to the nearest bf16 0x3DCD.
  EXPECT_THAT(Decode<uint16_t>(bf16->request.raw_input_contents(0)),
              ElementsAre(0x3DCD, 0xC000));
}

TEST(OipJsonRequestTest, OtherDatatypesPassWithoutDataForTheCoreToRefuse) {
  auto parsed = Parse(R"({"inputs": [{"name": "x", "shape": [2],
      "datatype": "INT8", "data": ["not", "read"]}]})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->request.inputs(0).datatype(), "INT8");
  EXPECT_TRUE(parsed->request.raw_input_contents(0).empty());
}

TEST(OipJsonRequestTest, RequestedOutputsAndTheirParameters) {
  auto parsed = Parse(R"({"inputs": [{"name": "x", "shape": [1],
      "datatype": "FP32", "data": [1]}],
      "outputs": [{"name": "probs", "parameters": {"classification": 3}},
                  {"name": "hidden", "parameters": {"binary_data": true}},
                  {"name": "other", "parameters": {"unknown": "ignored"}}]})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->request.outputs_size(), 3);
  EXPECT_EQ(parsed->request.outputs(0).name(), "probs");
  EXPECT_EQ(parsed->request.outputs(0)
                .parameters()
                .at("classification")
                .int64_param(),
            3);
  EXPECT_THAT(parsed->binary_outputs, ElementsAre("hidden"));
  EXPECT_FALSE(parsed->all_outputs_binary);
}

TEST(OipJsonRequestTest, BinaryTensorDataFollowsTheJson) {
  const std::string json =
      R"({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32",
          "parameters": {"binary_data_size": 8}}],
          "parameters": {"binary_data_output": true}})";
  const float values[2] = {1.5f, -0.25f};
  std::string body = json;
  body.append(reinterpret_cast<const char*>(values), sizeof values);
  auto parsed = ParseInferRequestJson(body, json.size(), "m", "2");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->request.model_version(), "2");
  EXPECT_TRUE(parsed->all_outputs_binary);
  EXPECT_THAT(Decode<float>(parsed->request.raw_input_contents(0)),
              ElementsAre(1.5f, -0.25f));

  auto short_body = ParseInferRequestJson(body.substr(0, body.size() - 1),
                                          json.size(), "m", "");
  EXPECT_EQ(short_body.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(short_body.status().message(),
              HasSubstr("inputs[0].parameters.binary_data_size is 8 bytes "
                        "but only 7 bytes"));
  auto extra = ParseInferRequestJson(body + "xx", json.size(), "m", "");
  EXPECT_THAT(extra.status().message(),
              HasSubstr("2 bytes of binary data follow the JSON but no input "
                        "claims them"));
}

TEST(OipJsonRequestTest, ErrorsNameThePathAndWhatWasExpected) {
  const auto message = [](const std::string& body) {
    auto parsed = Parse(body);
    EXPECT_FALSE(parsed.ok()) << body;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(parsed.status().message());
  };
  EXPECT_THAT(message("{\"inputs\": ["), HasSubstr("not valid JSON"));
  // The parser's message quotes the token it choked on: clipped.
  EXPECT_LT(message("{\"id\": \"" + std::string(100000, 'a')).size(), 600u);
  EXPECT_THAT(message("[1, 2]"), HasSubstr("is an array; expected an object"));
  EXPECT_THAT(message("{}"), HasSubstr("\"inputs\" is missing"));
  EXPECT_THAT(message(R"({"inputs": {}})"),
              HasSubstr("\"inputs\" is an object; expected an array"));
  EXPECT_THAT(message(R"({"inputs": [{"shape": [1], "datatype": "FP32",
                          "data": [1]}]})"),
              HasSubstr("inputs[0].name is missing"));
  EXPECT_THAT(message(R"({"inputs": [{"name": "x", "shape": [1, -2],
                          "datatype": "FP32", "data": [1]}]})"),
              HasSubstr("inputs[0].shape[1] is -2; expected a non-negative"));
  EXPECT_THAT(message(R"({"inputs": [{"name": "x", "shape": [2, 2],
                          "datatype": "FP32", "data": [1, 2, 3]}]})"),
              HasSubstr("inputs[0].data has 3 values; shape [2, 2] needs 4"));
  EXPECT_THAT(message(R"({"inputs": [{"name": "x", "shape": [2],
                          "datatype": "FP32", "data": [1, "2"]}]})"),
              HasSubstr("inputs[0].data[1] is a string; expected a number"));
  EXPECT_THAT(message(R"({"inputs": [{"name": "x", "shape": [2, 2],
                          "datatype": "FP32", "data": [[1, 2], [3]]}]})"),
              HasSubstr("inputs[0].data[1] has 1 elements; shape [2, 2] "
                        "needs 2 at depth 1"));
  EXPECT_THAT(message(R"({"inputs": [{"name": "x", "shape": [2],
                          "datatype": "FP32", "data": [[1], [2]]}]})"),
              HasSubstr("inputs[0].data[0] is an array; expected a number"));
  EXPECT_THAT(message(R"({"inputs": [{"name": "x", "shape": [2],
                          "datatype": "FP32", "data": "1,2"}]})"),
              HasSubstr("inputs[0].data is a string; expected an array"));
  EXPECT_THAT(message(R"({"inputs": [{"name": "x", "shape": [1],
                          "datatype": "FP32", "data": [1]}],
                          "outputs": [{"name": "y", "parameters":
                          {"classification": "3"}}]})"),
              HasSubstr("outputs[0].parameters.classification is \"3\"; "
                        "expected an integer"));
  EXPECT_THAT(message(R"({"inputs": [{"name": "x", "shape": [2],
                          "datatype": "FP16", "data": [1, 70000]}]})"),
              HasSubstr("inputs[0].data element 1 is 70000, beyond the FP16 "
                        "range (largest finite 65504)"));
  EXPECT_THAT(message(R"({"inputs": [{"name": "x", "shape": [1],
                          "datatype": "FP32", "data": [1e39]}]})"),
              HasSubstr("element 0 is 1e+39, beyond the FP32 range"));
  EXPECT_THAT(message(R"({"id": 7, "inputs": []})"),
              HasSubstr("the request.id is a number; expected a string"));
}

// Found by reading tests/fuzz/rest_json_fuzzer.cc's error paths: data
// nested to match a shape of thousands of dimensions recursed once per
// dimension (a 28 KB body crashed the server at 6 626 levels), and a shape
// element nested a million deep was dumped into the message recursively.
TEST(OipJsonRequestTest, DeepNestingIsRefusedWithoutRecursing) {
  constexpr int kDepth = 1'000'000;
  std::string ones;
  for (int i = 0; i < kDepth; ++i) ones += i == 0 ? "1" : ",1";
  auto deep_data = Parse(absl::StrCat(
      R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [)", ones,
      R"(], "data": )", std::string(kDepth, '['), "1", std::string(kDepth, ']'),
      "}]}"));
  ASSERT_FALSE(deep_data.ok());
  EXPECT_THAT(deep_data.status().message(),
              HasSubstr("inputs[0].shape has 1000000 dimensions; expected at "
                        "most 32"));
  auto deep_dim = Parse(absl::StrCat(
      R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, )",
      std::string(kDepth, '['), std::string(kDepth, ']'), "]}]}"));
  ASSERT_FALSE(deep_dim.ok());
  EXPECT_THAT(deep_dim.status().message(),
              HasSubstr("inputs[0].shape[1] is an array; expected a "
                        "non-negative integer"));
  EXPECT_LT(deep_dim.status().message().size(), 200u);
}

inference::ModelInferResponse ResponseWithRawOutputs() {
  inference::ModelInferResponse response;
  response.set_model_name("digits");
  response.set_model_version("1");
  response.set_id("r\"1");
  auto* out = response.add_outputs();
  out->set_name("probs");
  out->set_datatype("FP32");
  out->add_shape(1);
  out->add_shape(4);
  const float values[4] = {0.1f, 1e-30f, std::numeric_limits<float>::infinity(),
                           -3.0f};
  response.add_raw_output_contents()->assign(
      reinterpret_cast<const char*>(values), sizeof values);
  auto* top = response.add_outputs();
  top->set_name("probs");
  top->set_datatype("BYTES");
  top->add_shape(1);
  top->add_shape(1);
  std::string element = "0.1:0:zero";
  uint32_t length = element.size();
  std::string raw(reinterpret_cast<const char*>(&length), 4);
  response.add_raw_output_contents()->assign(raw + element);
  return response;
}

TEST(OipJsonResponseTest, FloatsRoundTripAndNonFiniteIsNull) {
  HttpInferRequest request;
  HttpInferResponse encoded =
      FormatInferResponse(ResponseWithRawOutputs(), request);
  EXPECT_EQ(encoded.json_size, encoded.body.size());
  const nlohmann::json body = nlohmann::json::parse(encoded.body);
  EXPECT_EQ(body["model_name"], "digits");
  EXPECT_EQ(body["model_version"], "1");
  EXPECT_EQ(body["id"], "r\"1");
  ASSERT_EQ(body["outputs"].size(), 2u);
  const nlohmann::json& probs = body["outputs"][0];
  EXPECT_EQ(probs["datatype"], "FP32");
  EXPECT_EQ(probs["shape"], nlohmann::json({1, 4}));
  EXPECT_EQ(static_cast<float>(probs["data"][0].get<double>()), 0.1f);
  EXPECT_EQ(static_cast<float>(probs["data"][1].get<double>()), 1e-30f);
  EXPECT_TRUE(probs["data"][2].is_null());
  EXPECT_EQ(probs["data"][3].get<double>(), -3.0);
  // Shortest round-trip form, not a double's 17 digits.
  EXPECT_THAT(encoded.body, HasSubstr("[0.1,1e-30,null,-3]"));
  EXPECT_EQ(body["outputs"][1]["data"], nlohmann::json({"0.1:0:zero"}));
}

TEST(OipJsonResponseTest, BinaryOutputsFollowTheJson) {
  HttpInferRequest request;
  request.binary_outputs = {"probs"};
  HttpInferResponse encoded =
      FormatInferResponse(ResponseWithRawOutputs(), request);
  ASSERT_LT(encoded.json_size, encoded.body.size());
  const nlohmann::json body =
      nlohmann::json::parse(encoded.body.substr(0, encoded.json_size));
  EXPECT_EQ(body["outputs"][0]["parameters"]["binary_data_size"], 16);
  EXPECT_EQ(body["outputs"][1]["parameters"]["binary_data_size"], 14);
  EXPECT_FALSE(body["outputs"][0].contains("data"));
  EXPECT_EQ(encoded.body.size() - encoded.json_size, 16u + 14u);
  EXPECT_EQ(Decode<float>(encoded.body.substr(encoded.json_size, 16))[0], 0.1f);
}

TEST(OipJsonMetadataTest, MetadataAndHealthBodies) {
  inference::ModelMetadataResponse model;
  model.set_name("digits");
  model.add_versions("1");
  model.set_platform("nnserve_dense");
  auto* input = model.add_inputs();
  input->set_name("pixels");
  input->set_datatype("FP32");
  input->add_shape(-1);
  input->add_shape(64);
  EXPECT_EQ(ModelMetadataJson(model),
            R"({"name":"digits","versions":["1"],"platform":"nnserve_dense",)"
            R"("inputs":[{"name":"pixels","datatype":"FP32","shape":[-1,64]}],)"
            R"("outputs":[]})");
  inference::ServerMetadataResponse server;
  server.set_name("nnserve");
  server.set_version("1.2.3");
  server.add_extensions("classification");
  EXPECT_EQ(ServerMetadataJson(server),
            R"({"name":"nnserve","version":"1.2.3",)"
            R"("extensions":["classification"]})");
  EXPECT_EQ(ModelReadyJson("a\"b", false), R"({"name":"a\"b","ready":false})");
  EXPECT_EQ(BoolJson("live", true), R"({"live":true})");
  EXPECT_EQ(ErrorJson("bad \"x\"\n"), R"({"error":"bad \"x\"\n"})");
}

}  // namespace
}  // namespace nnserve::server
