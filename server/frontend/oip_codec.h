// The Open Inference Protocol (KServe V2) tensor codec: decoding of a
// ModelInferRequest's one input tensor into validated float rows, resolution
// of its requested outputs against a model's layers, and encoding of output
// tensors (FP32, or the classification extension's BYTES) into a
// ModelInferResponse in the request's encoding.
//
// Input contract: exactly one input tensor, named as the model's input
// (when the expectation names it), shape [batch, features] or
// [features] (a batch of one); datatype FP32 (fp32_contents or raw), FP64
// (fp64_contents or raw) or FP16/BF16 (raw only, as the standard says), all
// converted to float32; raw data is little-endian, row-major, and then
// raw_input_contents holds exactly one entry and `contents` is empty. Values
// must be finite. Outputs use the request's encoding: raw in -> every output
// in raw_output_contents; contents in -> typed contents.
//
// Every error is an INVALID_ARGUMENT absl::Status naming what was received
// and what was expected.
//
// Stateless free functions; thread-safe. Results own their data.
#ifndef NNSERVE_SERVER_FRONTEND_OIP_CODEC_H_
#define NNSERVE_SERVER_FRONTEND_OIP_CODEC_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model.h"
#include "inference/open_inference_grpc.pb.h"
#include "server/frontend/tensor_codec.h"

namespace nnserve::server {

// A validated [rows, features] float32 matrix decoded from a V2 request.
struct OipInput {
  int64_t rows = 0;
  int64_t features = 0;
  bool raw = false;           // The request used raw_input_contents.
  std::vector<float> values;  // rows * features finite floats, row-major.
};

// Validates the request's input tensor against `expected` and converts it.
absl::StatusOr<OipInput> DecodeOipInput(
    const inference::ModelInferRequest& request,
    const InputExpectation& expected);

// One output the caller asked for.
struct RequestedOutput {
  std::string name;   // As requested (the model output's or a layer's).
  size_t layer = 0;   // Index into ModelInfo::layers whose output it is.
  int64_t top_k = 0;  // > 0: the classification extension's top K.
};

// The outputs of `request` resolved against `info`: `outputs` empty -> the
// model's output; otherwise each name must be the model's output name or a
// layer name (the model output is the last layer's output). A parameter
// "classification" must be an int64 in [1, the output's units]. Unknown
// names are INVALID_ARGUMENT listing the valid names.
absl::StatusOr<std::vector<RequestedOutput>> ResolveRequestedOutputs(
    const inference::ModelInferRequest& request, const engine::ModelInfo& info);

// The version a V2 request names: "" -> 0 (the newest served version), else
// a positive decimal integer.
absl::StatusOr<int64_t> ParseOipVersion(std::string_view version);

// Appends output `name`: datatype FP32, shape [rows, cols], `values`
// (rows * cols) in fp32_contents or as one raw_output_contents entry.
void AppendFp32Output(std::string_view name, int64_t rows, int64_t cols,
                      std::span<const float> values, bool raw,
                      inference::ModelInferResponse* response);

// Appends output `name` as the classification extension: datatype BYTES,
// shape [rows, k], per row the k largest of `values` ([rows, cols]) in
// descending order (ties: lower index first; NaN last), each
// "value:index" or, when `labels` is non-empty, "value:index:label". Raw:
// each element is a 4-byte little-endian length then its bytes.
void AppendClassificationOutput(std::string_view name, int64_t rows,
                                int64_t cols, std::span<const float> values,
                                int64_t k,
                                const std::vector<std::string>& labels,
                                bool raw,
                                inference::ModelInferResponse* response);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_FRONTEND_OIP_CODEC_H_
