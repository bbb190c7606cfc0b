#include "client/rows.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nnserve {
namespace {

static_assert(std::endian::native == std::endian::little,
              "raw tensors are little-endian float32; this client copies "
              "bytes directly and needs a little-endian host");

std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::Status ValidateRowBatch(const RowBatch& batch) {
  if (batch.rows <= 0 || batch.cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("row batch must have at least one row and one column; "
                     "found ",
                     batch.rows, " rows x ", batch.cols, " columns"));
  }
  if (static_cast<int64_t>(batch.values.size()) != batch.rows * batch.cols) {
    return absl::InvalidArgumentError(absl::StrCat(
        "row batch holds ", batch.values.size(),
        " values; expected rows x "
        "cols = ",
        batch.rows, " x ", batch.cols, " = ", batch.rows * batch.cols));
  }
  return absl::OkStatus();
}

absl::StatusOr<RowBatch> MakeRowBatch(
    const std::vector<std::vector<float>>& rows) {
  if (rows.empty() || rows.front().empty()) {
    return absl::InvalidArgumentError(
        "rows must hold at least one row with at least one value");
  }
  RowBatch batch;
  batch.rows = static_cast<int64_t>(rows.size());
  batch.cols = static_cast<int64_t>(rows.front().size());
  batch.values.reserve(batch.rows * batch.cols);
  for (size_t r = 0; r < rows.size(); ++r) {
    if (static_cast<int64_t>(rows[r].size()) != batch.cols) {
      return absl::InvalidArgumentError(
          absl::StrCat("row ", r, " has ", rows[r].size(), " values; expected ",
                       batch.cols, " like row 0"));
    }
    batch.values.insert(batch.values.end(), rows[r].begin(), rows[r].end());
  }
  return batch;
}

std::vector<std::vector<float>> ToRowVectors(const RowBatch& batch) {
  std::vector<std::vector<float>> rows;
  rows.reserve(batch.rows);
  for (int64_t r = 0; r < batch.rows; ++r) {
    rows.emplace_back(batch.row(r), batch.row(r) + batch.cols);
  }
  return rows;
}

absl::Status EncodeTensor(const RowBatch& batch, Encoding encoding,
                          v1::Tensor* tensor) {
  if (absl::Status s = ValidateRowBatch(batch); !s.ok()) return s;
  tensor->Clear();
  tensor->add_shape(batch.rows);
  tensor->add_shape(batch.cols);
  if (encoding == Encoding::kRaw) {
    tensor->set_raw(reinterpret_cast<const char*>(batch.values.data()),
                    batch.values.size() * sizeof(float));
  } else {
    tensor->mutable_values()->Assign(batch.values.begin(), batch.values.end());
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::PredictRequest> MakePredictRequest(std::string_view model,
                                                      int64_t version,
                                                      const RowBatch& batch,
                                                      Encoding encoding) {
  if (model.empty()) {
    return absl::InvalidArgumentError("model name must not be empty");
  }
  if (version < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model version must be >= 0 (0 = newest); found ", version));
  }
  v1::PredictRequest request;
  request.set_model(std::string(model));
  request.set_version(version);
  if (absl::Status s = EncodeTensor(batch, encoding, request.mutable_input());
      !s.ok()) {
    return s;
  }
  return request;
}

Encoding TensorEncoding(const v1::Tensor& tensor) {
  return tensor.raw().empty() ? Encoding::kValues : Encoding::kRaw;
}

absl::StatusOr<RowBatch> DecodeTensor(const v1::Tensor& tensor) {
  RowBatch batch;
  if (tensor.shape_size() == 1) {
    batch.rows = 1;
    batch.cols = tensor.shape(0);
  } else if (tensor.shape_size() == 2) {
    batch.rows = tensor.shape(0);
    batch.cols = tensor.shape(1);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor shape ", ShapeText(tensor.shape()), " has rank ",
        tensor.shape_size(), "; expected [rows, features] or [features]"));
  }
  if (batch.rows <= 0 || batch.cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor shape ", ShapeText(tensor.shape()),
                     " has a non-positive dimension"));
  }
  const int64_t count = batch.rows * batch.cols;
  if (!tensor.raw().empty() && tensor.values_size() > 0) {
    return absl::InvalidArgumentError(
        "tensor sets both `values` and `raw`; expected exactly one");
  }
  if (!tensor.raw().empty()) {
    const int64_t bytes = static_cast<int64_t>(tensor.raw().size());
    if (bytes != count * static_cast<int64_t>(sizeof(float))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor `raw` holds ", bytes, " bytes; shape ",
          ShapeText(tensor.shape()), " needs ", count, " float32 = ",
          count * static_cast<int64_t>(sizeof(float)), " bytes"));
    }
    batch.values.resize(count);
    std::memcpy(batch.values.data(), tensor.raw().data(), bytes);
    return batch;
  }
  if (tensor.values_size() != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor `values` holds ", tensor.values_size(), " elements; shape ",
        ShapeText(tensor.shape()), " needs ", count));
  }
  batch.values.assign(tensor.values().begin(), tensor.values().end());
  return batch;
}

RowBatch RandomRows(int64_t rows, int64_t cols, uint64_t seed) {
  RowBatch batch;
  batch.rows = rows;
  batch.cols = cols;
  batch.values.resize(rows > 0 && cols > 0 ? rows * cols : 0);
  std::mt19937_64 generator(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  for (float& v : batch.values) v = uniform(generator);
  return batch;
}

std::vector<int64_t> TopK(const float* row, int64_t n, int64_t k) {
  std::vector<int64_t> index(n);
  std::iota(index.begin(), index.end(), 0);
  k = std::clamp<int64_t>(k, 0, n);
  std::partial_sort(index.begin(), index.begin() + k, index.end(),
                    [row](int64_t a, int64_t b) {
                      return row[a] > row[b] || (row[a] == row[b] && a < b);
                    });
  index.resize(k);
  return index;
}

}  // namespace nnserve
