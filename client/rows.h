// Row batches and their wire form: building a PredictRequest from rows (in
// either tensor encoding, repeated `values` or little-endian `raw` bytes) and
// reading rows back from a response tensor. Value types and pure functions;
// thread-safe.
#ifndef NNSERVE_CLIENT_ROWS_H_
#define NNSERVE_CLIENT_ROWS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nnserve/v1/inference.pb.h"

namespace nnserve {

// A dense row-major float32 matrix: `rows` rows of `cols` features each.
struct RowBatch {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> values;  // rows * cols elements, row-major.

  // Pointer to the first element of row `r` (no bounds check).
  const float* row(int64_t r) const { return values.data() + r * cols; }
};

// Packs rows given as vectors (all the same non-zero length) into a batch;
// a ragged or empty input names the offending row and the lengths.
absl::StatusOr<RowBatch> MakeRowBatch(
    const std::vector<std::vector<float>>& rows);

// The rows of `batch` as vectors (the inverse of MakeRowBatch).
std::vector<std::vector<float>> ToRowVectors(const RowBatch& batch);

// How a Tensor carries its data (see inference.proto).
enum class Encoding { kValues, kRaw };

// Checks that values.size() == rows * cols and both dimensions are positive.
absl::Status ValidateRowBatch(const RowBatch& batch);

// Fills `tensor` with shape [rows, cols] and the data in `encoding`.
absl::Status EncodeTensor(const RowBatch& batch, Encoding encoding,
                          v1::Tensor* tensor);

// A PredictRequest for `model` (version 0 = newest) carrying `batch`.
absl::StatusOr<v1::PredictRequest> MakePredictRequest(std::string_view model,
                                                      int64_t version,
                                                      const RowBatch& batch,
                                                      Encoding encoding);

// Decodes a tensor (values or raw; shape [rows, cols] or [cols] = one row).
// Errors name the shape and the element/byte counts found vs expected.
absl::StatusOr<RowBatch> DecodeTensor(const v1::Tensor& tensor);

// The encoding a tensor uses: kRaw when `raw` is non-empty, else kValues.
Encoding TensorEncoding(const v1::Tensor& tensor);

// `rows` x `cols` uniform values in [0, 1) from a fixed-seed generator, so
// that two runs with the same seed send identical requests.
RowBatch RandomRows(int64_t rows, int64_t cols, uint64_t seed);

// Indices of the `k` largest values of `row` (size `n`), largest first.
std::vector<int64_t> TopK(const float* row, int64_t n, int64_t k);

}  // namespace nnserve

#endif  // NNSERVE_CLIENT_ROWS_H_
