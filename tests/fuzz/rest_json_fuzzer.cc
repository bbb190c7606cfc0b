// libFuzzer harness for the REST/JSON binding's parsers (server/http/):
// the input's first two bytes (little-endian) are the split point
// json_size, clamped to the rest (0xFFFF: all JSON), and the rest is an
// infer body for ParseInferRequestJson (Triton's binary tensor data
// extension: the JSON, then the tensors' bytes). A parsed request must hold
// one raw content per input, of product(shape) x type size bytes for JSON
// FP32/FP64/FP16/BF16 data (FP32/FP64 equal to the JSON numbers), of the
// claimed binary_data_size for binary inputs (which share out the binary
// section exactly, in order), and none otherwise; JSON numbers beyond the
// datatype's range are refused, not stored as infinity. Then
// FormatInferResponse answers with the parsed raw inputs as outputs (FP32 when
// the size is a multiple of 4, else BYTES), model name and id carrying
// arbitrary bytes: its JSON part must parse back, FP32 values read back as the
// same floats (non-finite ones as null), binary outputs in order after the
// JSON. The whole input also goes to MatchRestRoute (as a path) and
// ParseRepositoryIndexRequest; errors of all three are the expected code,
// and ErrorJson of them is valid JSON. Shapes deeper than the parser's rank
// limit are refused (tests/server/http/oip_json_test.cc has the deep-nesting
// regressions, which need bodies larger than the fuzzer's inputs).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "formats/half.h"
#include "inference/open_inference_grpc.pb.h"
#include "nlohmann/json.hpp"
#include "server/http/oip_json.h"
#include "server/http/rest_repository.h"
#include "server/http/rest_routes.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nlohmann::json;
using nnserve::server::HttpInferRequest;

// Parses `text`, which must be valid JSON.
json MustParse(std::string_view text, const char* what) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!parsed.is_discarded(), what);
  return parsed;
}

void CheckError(const absl::Status& status, absl::StatusCode code) {
  FUZZ_CHECK(status.code() == code, "errors have the documented code");
  FUZZ_CHECK(!status.message().empty(), "errors say what was wrong");
  json error = MustParse(nnserve::server::ErrorJson(std::string_view(
                             status.message().data(), status.message().size())),
                         "ErrorJson is valid JSON for any message");
  FUZZ_CHECK(error.is_object() && error["error"].is_string(),
             "ErrorJson is {\"error\": string}");
}

void CheckRoute(std::string_view path) {
  using nnserve::server::RestOperation;
  absl::StatusOr<nnserve::server::RestRoute> post =
      nnserve::server::MatchRestRoute("POST", path);
  absl::StatusOr<nnserve::server::RestRoute> get =
      nnserve::server::MatchRestRoute("GET", path);
  FUZZ_CHECK(post.ok() == get.ok(), "the method never decides the path");
  if (!post.ok()) {
    CheckError(post.status(), absl::StatusCode::kNotFound);
    FUZZ_CHECK(post.status().message().size() < 1024,
               "route errors do not echo a long path");
    return;
  }
  FUZZ_CHECK(post->operation == get->operation && post->model == get->model &&
                 post->version == get->version,
             "GET and POST name the same route");
  FUZZ_CHECK(path.substr(0, 3) == "/v2", "routes are under /v2");
  const bool is_post = post->operation == RestOperation::kInfer ||
                       post->operation == RestOperation::kRepositoryIndex ||
                       post->operation == RestOperation::kRepositoryLoad ||
                       post->operation == RestOperation::kRepositoryUnload;
  FUZZ_CHECK(post->method_allowed == is_post && get->method_allowed != is_post,
             "exactly one of GET and POST is allowed");
  const bool has_model = post->operation == RestOperation::kModelMetadata ||
                         post->operation == RestOperation::kModelReady ||
                         post->operation == RestOperation::kInfer ||
                         post->operation == RestOperation::kRepositoryLoad ||
                         post->operation == RestOperation::kRepositoryUnload;
  FUZZ_CHECK(has_model == !post->model.empty(),
             "model operations, and only they, name a model");
  FUZZ_CHECK(post->model.find('/') == std::string::npos &&
                 post->version.find('/') == std::string::npos,
             "model and version are single path segments");
}

void CheckRepositoryIndex(std::string_view body) {
  absl::StatusOr<bool> ready =
      nnserve::server::ParseRepositoryIndexRequest(body);
  if (!ready.ok())
    CheckError(ready.status(), absl::StatusCode::kInvalidArgument);
}

size_t TypeSize(const std::string& datatype) {
  if (datatype == "FP32") return 4;
  if (datatype == "FP64") return 8;
  if (datatype == "FP16" || datatype == "BF16") return 2;
  return 0;
}

// The parsed request against the JSON it came from.
void CheckParsed(const HttpInferRequest& parsed, const json& root,
                 std::string_view binary) {
  const inference::ModelInferRequest& request = parsed.request;
  FUZZ_CHECK(request.model_name() == "fuzz" && request.model_version() == "1",
             "model and version are the caller's");
  FUZZ_CHECK(request.raw_input_contents_size() == request.inputs_size(),
             "one raw content per input");
  const json& inputs = root.at("inputs");
  FUZZ_CHECK(inputs.is_array() &&
                 inputs.size() == static_cast<size_t>(request.inputs_size()),
             "one input per JSON input");
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& tensor = request.inputs(i);
    const std::string& raw = request.raw_input_contents(i);
    const json& input = inputs[i];
    FUZZ_CHECK(tensor.name() == input.at("name").get<std::string>() &&
                   tensor.datatype() == input.at("datatype").get<std::string>(),
               "name and datatype as given");
    FUZZ_CHECK(
        static_cast<size_t>(tensor.shape_size()) == input.at("shape").size(),
        "shape as given");
    FUZZ_CHECK(tensor.shape_size() <= 32, "at most 32 dimensions (kMaxRank)");
    const json* parameters =
        input.contains("parameters") ? &input["parameters"] : nullptr;
    if (parameters != nullptr && parameters->contains("binary_data_size")) {
      const uint64_t claimed =
          (*parameters)["binary_data_size"].get<uint64_t>();
      FUZZ_CHECK(raw.size() == claimed && raw.size() <= binary.size() &&
                     std::string_view(raw) == binary.substr(0, raw.size()),
                 "a binary input holds the next binary_data_size bytes");
      binary.remove_prefix(raw.size());
      continue;
    }
    const size_t type_size = TypeSize(tensor.datatype());
    if (type_size == 0) {
      FUZZ_CHECK(raw.empty(), "other datatypes go on without data");
      continue;
    }
    uint64_t elements = 1;
    for (int64_t dim : tensor.shape()) {
      FUZZ_CHECK(dim >= 0, "dimensions are non-negative");
      elements *= static_cast<uint64_t>(dim);  // Fits: JSON held them.
    }
    FUZZ_CHECK(raw.size() == elements * type_size,
               "JSON data is product(shape) x type size bytes");
    for (size_t e = 0; e < elements; ++e) {
      float value;
      if (type_size == 4) {
        std::memcpy(&value, raw.data() + 4 * e, 4);
      } else if (type_size == 2) {
        uint16_t bits;
        std::memcpy(&bits, raw.data() + 2 * e, 2);
        value = tensor.datatype() == "FP16"
                    ? nnserve::formats::HalfToFloat(bits)
                    : nnserve::formats::Bf16ToFloat(bits);
      } else {
        continue;
      }
      FUZZ_CHECK(std::isfinite(value),
                 "JSON numbers beyond the datatype's range are refused");
    }
    const json& data = input.at("data");
    const bool flat = data.empty() || !data.front().is_array();
    if (!flat || (type_size != 4 && type_size != 8)) continue;
    for (size_t e = 0; e < data.size(); ++e) {
      const double value = data[e].get<double>();
      bool same;
      if (type_size == 4) {
        float got;
        std::memcpy(&got, raw.data() + 4 * e, 4);
        same = got == static_cast<float>(value) ||
               (std::isnan(got) && std::isnan(value));
      } else {
        double got;
        std::memcpy(&got, raw.data() + 8 * e, 8);
        same = got == value || (std::isnan(got) && std::isnan(value));
      }
      FUZZ_CHECK(same, "FP32/FP64 data holds the JSON numbers");
    }
  }
  FUZZ_CHECK(binary.empty(), "the binary inputs claim the binary section");
}

// FormatInferResponse answering `parsed` with its own raw inputs.
void CheckRoundTrip(const HttpInferRequest& parsed, std::string_view prefix) {
  const inference::ModelInferRequest& request = parsed.request;
  inference::ModelInferResponse response;
  // Arbitrary bytes (the split point, usually invalid UTF-8) in the strings.
  response.set_model_name(std::string(prefix));
  response.set_model_version(request.model_version());
  response.set_id(request.id() + std::string(prefix));
  for (int i = 0; i < request.inputs_size(); ++i) {
    const std::string& raw = request.raw_input_contents(i);
    auto* output = response.add_outputs();
    output->set_name(i < request.outputs_size() ? request.outputs(i).name()
                                                : request.inputs(i).name());
    output->set_datatype(raw.size() % 4 == 0 ? "FP32" : "BYTES");
    output->add_shape(raw.size() % 4 == 0 ? static_cast<int64_t>(raw.size() / 4)
                                          : 1);
    response.add_raw_output_contents(raw);
  }
  const nnserve::server::HttpInferResponse formatted =
      nnserve::server::FormatInferResponse(response, parsed);
  FUZZ_CHECK(formatted.json_size <= formatted.body.size(),
             "json_size within the body");
  json body =
      MustParse(std::string_view(formatted.body).substr(0, formatted.json_size),
                "the response's JSON part is valid JSON");
  FUZZ_CHECK(body.is_object() && body["id"].is_string() &&
                 body["model_name"].is_string() &&
                 body["model_version"] == request.model_version(),
             "model_name, model_version and id are strings");
  json& outputs = body["outputs"];
  FUZZ_CHECK(outputs.is_array() &&
                 outputs.size() == static_cast<size_t>(response.outputs_size()),
             "one JSON output per output");
  std::string_view binary =
      std::string_view(formatted.body).substr(formatted.json_size);
  for (int i = 0; i < response.outputs_size(); ++i) {
    json& output = outputs[i];
    const std::string& raw = response.raw_output_contents(i);
    FUZZ_CHECK(output.is_object() && output["name"].is_string() &&
                   output["datatype"] == response.outputs(i).datatype(),
               "outputs keep their datatype");
    if (output.contains("parameters")) {
      FUZZ_CHECK(!output.contains("data") &&
                     output["parameters"]["binary_data_size"] == raw.size() &&
                     binary.substr(0, raw.size()) == raw,
                 "a binary output's bytes follow the JSON in order");
      binary.remove_prefix(raw.size());
      continue;
    }
    const json& data = output["data"];
    FUZZ_CHECK(data.is_array(), "data is an array");
    if (response.outputs(i).datatype() == "BYTES") {
      for (const json& element : data) {
        FUZZ_CHECK(element.is_string(), "BYTES elements are strings");
      }
      continue;
    }
    FUZZ_CHECK(data.size() == raw.size() / 4, "one number per FP32 value");
    for (size_t e = 0; e < data.size(); ++e) {
      float value;
      std::memcpy(&value, raw.data() + 4 * e, 4);
      if (!std::isfinite(value)) {
        FUZZ_CHECK(data[e].is_null(), "non-finite values are null");
        continue;
      }
      FUZZ_CHECK(data[e].is_number() &&
                     static_cast<float>(data[e].get<double>()) == value,
                 "FP32 values read back (as a double) as the same float");
    }
  }
  FUZZ_CHECK(binary.empty(), "no bytes after the binary outputs");

  // The metadata writer, with the same arbitrary bytes in its strings.
  inference::ModelMetadataResponse metadata;
  metadata.set_name(response.model_name());
  metadata.add_versions(response.id());
  for (int i = 0; i < request.inputs_size(); ++i) {
    auto* tensor = metadata.add_inputs();
    tensor->set_name(request.inputs(i).name() + std::string(prefix));
    tensor->set_datatype(request.inputs(i).datatype());
    *tensor->mutable_shape() = request.inputs(i).shape();
  }
  MustParse(nnserve::server::ModelMetadataJson(metadata),
            "ModelMetadataJson is valid JSON");
  MustParse(nnserve::server::ModelReadyJson(response.id(), true),
            "ModelReadyJson is valid JSON");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckRoute(bytes);
  CheckRepositoryIndex(bytes);
  if (size < 2) return 0;
  const std::string_view prefix = bytes.substr(0, 2);
  const std::string_view body = bytes.substr(2);
  const size_t json_size =
      std::min<size_t>(data[0] | data[1] << 8, body.size());
  absl::StatusOr<HttpInferRequest> parsed =
      nnserve::server::ParseInferRequestJson(body, json_size, "fuzz", "1");
  if (!parsed.ok()) {
    CheckError(parsed.status(), absl::StatusCode::kInvalidArgument);
    return 0;
  }
  const json root = MustParse(body.substr(0, json_size),
                              "a parsed request's JSON part is valid JSON");
  CheckParsed(*parsed, root, body.substr(json_size));
  CheckRoundTrip(*parsed, prefix);
  return 0;
}
