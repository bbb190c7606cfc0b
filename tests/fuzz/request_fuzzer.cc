// libFuzzer harness for request decoding: any bytes as a serialized
// nnserve.v1.PredictRequest (protobuf ParseFromArray, as gRPC does), then
// server/frontend/tensor_codec.h DecodeInput against a fixed small model
// (4 features, at most 64 rows), then PrepareOutput for a 3-wide output.
// Checks that errors are InvalidArgument and short, and that a decoded
// input is rows x 4 finite values with 1 <= rows <= 64.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "nnserve/v1/inference.pb.h"
#include "server/frontend/tensor_codec.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nnserve::server::DecodedInput;
  nnserve::v1::PredictRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  nnserve::server::InputExpectation expected;
  expected.features = 4;
  expected.max_batch_rows = 64;
  expected.description = "model 'fuzz' version 1 input 'x'";
  absl::StatusOr<DecodedInput> input =
      nnserve::server::DecodeInput(request.input(), expected);
  if (!input.ok()) {
    FUZZ_CHECK(input.status().code() == absl::StatusCode::kInvalidArgument,
               "errors are InvalidArgument");
    FUZZ_CHECK(input.status().message().size() < 1024,
               "errors do not echo long input");
    return 0;
  }
  FUZZ_CHECK(input->rows() >= 1 && input->rows() <= 64, "rows in [1, 64]");
  FUZZ_CHECK(input->features() == 4, "features match the model");
  FUZZ_CHECK(input->values().size() ==
                 static_cast<size_t>(input->rows() * input->features()),
             "rows * features values");
  for (float v : input->values()) {
    FUZZ_CHECK(std::isfinite(v), "decoded values are finite");
  }
  nnserve::v1::Tensor output;
  std::span<float> rows = nnserve::server::PrepareOutput(
      input->rows(), 3, input->encoding(), &output);
  FUZZ_CHECK(rows.size() == static_cast<size_t>(input->rows() * 3),
             "output holds rows * 3 values");
  for (float& v : rows) v = 1.0f;
  return 0;
}
