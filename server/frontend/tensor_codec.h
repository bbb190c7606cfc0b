// Decoding of request tensors (nnserve.v1.Tensor) into validated float rows,
// and encoding of output rows back into a Tensor in the request's encoding.
//
// Wire contract: shape is [batch, features], or 1-D [features] meaning a
// batch of one; exactly one of `values` (packed floats) or `raw`
// (little-endian float32, row-major) carries the data. Outputs are always
// shaped [batch, outputs] and use the request's encoding.
//
// Every error is an absl::Status whose message says what was received and
// what was expected: INVALID_ARGUMENT for malformed tensors (rank, feature
// count, batch 0, both/neither data field, data length, NaN/Inf naming row
// and column, and batches over the row limit — a permanent error: retrying
// the same request can never succeed).
//
// Stateless free functions; thread-safe. A DecodedInput views the request
// it was decoded from (no copy of the input), so it must not outlive it.
#ifndef NNSERVE_SERVER_FRONTEND_TENSOR_CODEC_H_
#define NNSERVE_SERVER_FRONTEND_TENSOR_CODEC_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nnserve/v1/inference.pb.h"

namespace nnserve::server {

enum class TensorEncoding { kValues, kRaw };

// What the model expects of an input tensor.
struct InputExpectation {
  int64_t features = 0;        // Model input width.
  int64_t max_batch_rows = 0;  // --max-batch-rows; larger batches are refused.
  // Names the target in messages, e.g. "model 'digits' version 1 input
  // 'pixels'". Not owned: must outlive the DecodeInput call.
  std::string_view description;
  // The input's name, for protocols whose requests name their tensors (the
  // Open Inference Protocol); empty: not checked. Not owned.
  std::string_view name;
};

// A validated [rows, features] float matrix.
class DecodedInput {
 public:
  int64_t rows() const { return rows_; }
  int64_t features() const { return features_; }
  TensorEncoding encoding() const { return encoding_; }
  // rows() * features() finite floats, row-major.
  std::span<const float> values() const { return view_; }

 private:
  friend absl::StatusOr<DecodedInput> DecodeInput(
      const v1::Tensor& tensor, const InputExpectation& expected);

  int64_t rows_ = 0;
  int64_t features_ = 0;
  TensorEncoding encoding_ = TensorEncoding::kValues;
  // Into the request's values or raw bytes, or into owned_. Stays valid
  // when the DecodedInput is moved (a vector's buffer moves with it).
  std::span<const float> view_;
  std::vector<float> owned_;  // Only for raw bytes that are not aligned.
};

// Validates `tensor` against `expected` and returns its rows, viewing
// `tensor`'s storage (no copy).
absl::StatusOr<DecodedInput> DecodeInput(const v1::Tensor& tensor,
                                         const InputExpectation& expected);

// Sets `out` to shape [rows, cols] in `encoding` and returns its rows*cols
// floats to fill in place (the forward pass writes straight into the
// response; no extra copy). Clears the other encoding's field.
std::span<float> PrepareOutput(int64_t rows, int64_t cols,
                               TensorEncoding encoding, v1::Tensor* out);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_FRONTEND_TENSOR_CODEC_H_
