// The Open Inference Protocol's (KServe V2) HTTP/JSON binding, as
// conversions between its JSON bodies and the inference.* messages that
// OipCore (server/frontend/oip_core.h) works on, so REST and gRPC share one
// implementation.
//
// Requests: `{"id"?, "parameters"?, "inputs": [{"name", "shape",
// "datatype", "parameters"?, "data"}], "outputs"?: [{"name", "parameters"?:
// {"classification": K}}]}`. `data` is flat (row-major) or nested to match
// `shape`. FP32, FP64, FP16 and BF16 data are JSON numbers, rounded to the
// datatype exactly as a binary client would send them and passed on as that
// datatype's little-endian bytes (raw_input_contents); any other datatype is
// passed on without data, and OipCore refuses it naming what is accepted.
//
// Responses: FP32 data as numbers in the shortest form that reads back as
// the same float32 (non-finite values, which JSON cannot hold, as null);
// the classification extension's BYTES as strings.
//
// The binary tensor data extension (Triton's, which its HTTP clients use by
// default) is supported both ways: the body is the JSON object, of the
// size the Inference-Header-Content-Length header gives, followed by the
// tensors' bytes. An input with parameter "binary_data_size" takes its data
// from there (little-endian, row-major; BYTES elements 4-byte-length
// prefixed); an output requested with parameter "binary_data": true, or
// every output when the request has parameter "binary_data_output": true,
// is answered the same way, with its "binary_data_size" parameter.
//
// Every parse error is an INVALID_ARGUMENT absl::Status naming the JSON
// path of what was wrong and what was expected.
//
// Stateless free functions; thread-safe.
#ifndef NNSERVE_SERVER_HTTP_OIP_JSON_H_
#define NNSERVE_SERVER_HTTP_OIP_JSON_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/open_inference_grpc.pb.h"

namespace nnserve::server {

// An infer request as OipCore takes it, and how its outputs are wanted.
struct HttpInferRequest {
  inference::ModelInferRequest request;
  bool all_outputs_binary = false;          // "binary_data_output": true
  std::vector<std::string> binary_outputs;  // outputs with "binary_data"
};

// The request for model `model` at `version` ("" = newest) from an infer
// body whose first `json_size` bytes are the JSON object (the rest, binary
// tensor data).
absl::StatusOr<HttpInferRequest> ParseInferRequestJson(
    std::string_view body, size_t json_size, std::string_view model,
    std::string_view version);

// An infer response body: the JSON object, then any binary tensor data.
struct HttpInferResponse {
  std::string body;
  size_t json_size = 0;  // < body.size() iff binary data follows.
};

// The body answering `request`; `response` holds its outputs in
// raw_output_contents or in typed contents.
HttpInferResponse FormatInferResponse(
    const inference::ModelInferResponse& response,
    const HttpInferRequest& request);
std::string ModelMetadataJson(const inference::ModelMetadataResponse& response);
std::string ServerMetadataJson(
    const inference::ServerMetadataResponse& response);
// {"name": name, "ready": ready}
std::string ModelReadyJson(std::string_view name, bool ready);
// {"<key>": value}, e.g. {"live": true}
std::string BoolJson(std::string_view key, bool value);
// {"error": message}
std::string ErrorJson(std::string_view message);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_HTTP_OIP_JSON_H_
