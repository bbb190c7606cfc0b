#include "server/frontend/tensor_codec.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/str_util.h"
#include "engine/rows.h"

namespace nnserve::server {

namespace {

// "[2, 64]"; a shape of more than 8 dimensions (a caller's mistake or an
// attack) shows its first 8 and how many there are.
std::string ShapeText(const v1::Tensor& tensor) {
  constexpr int kShown = 8;
  if (tensor.shape_size() <= kShown) {
    return absl::StrCat("[", absl::StrJoin(tensor.shape(), ", "), "]");
  }
  return absl::StrCat("[",
                      absl::StrJoin(tensor.shape().begin(),
                                    tensor.shape().begin() + kShown, ", "),
                      ", ... (", tensor.shape_size(), " dimensions)]");
}

// Rank, dimensions, and limits. Returns {rows, features}.
absl::StatusOr<std::pair<int64_t, int64_t>> CheckShape(
    const v1::Tensor& tensor, const InputExpectation& expected) {
  const int rank = tensor.shape_size();
  if (rank != 1 && rank != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(expected.description), ": input shape ", ShapeText(tensor),
        " has rank ", rank, "; expected [batch, ", expected.features, "] or [",
        expected.features, "]"));
  }
  for (int64_t dim : tensor.shape()) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(Sv(expected.description), ": input shape ",
                       ShapeText(tensor), " has a negative dimension"));
    }
  }
  const int64_t rows = rank == 2 ? tensor.shape(0) : 1;
  const int64_t features = tensor.shape(rank - 1);
  if (features != expected.features) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(expected.description), ": input has ", features,
                     " features per row (shape ", ShapeText(tensor),
                     "); expected ", expected.features));
  }
  if (rows == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(expected.description), ": input shape ", ShapeText(tensor),
        " has batch size 0; expected at least 1 row"));
  }
  if (rows > expected.max_batch_rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(expected.description), ": batch of ", rows,
        " rows exceeds the server limit of ", expected.max_batch_rows,
        " rows per request (--max-batch-rows); split the batch"));
  }
  return std::make_pair(rows, features);
}

}  // namespace

absl::StatusOr<DecodedInput> DecodeInput(const v1::Tensor& tensor,
                                         const InputExpectation& expected) {
  const bool has_values = tensor.values_size() > 0;
  const bool has_raw = !tensor.raw().empty();
  if (has_values && has_raw) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(expected.description), ": input sets both values (",
                     tensor.values_size(), " floats) and raw (",
                     tensor.raw().size(), " bytes); expected exactly one"));
  }
  auto shape = CheckShape(tensor, expected);
  if (!shape.ok()) return shape.status();
  const auto [rows, features] = *shape;
  const int64_t count = rows * features;
  if (!has_values && !has_raw) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(expected.description),
        ": input sets neither values nor raw; expected ", count,
        " floats for shape ", ShapeText(tensor), " in exactly one"));
  }

  DecodedInput decoded;
  decoded.rows_ = rows;
  decoded.features_ = features;
  if (has_values) {
    if (tensor.values_size() != count) {
      return absl::InvalidArgumentError(absl::StrCat(
          Sv(expected.description), ": input values has ", tensor.values_size(),
          " floats; shape ", ShapeText(tensor), " needs ", count));
    }
    decoded.encoding_ = TensorEncoding::kValues;
    decoded.view_ = std::span<const float>(tensor.values().data(),
                                           static_cast<size_t>(count));
  } else {
    const size_t expected_bytes = static_cast<size_t>(count) * sizeof(float);
    if (tensor.raw().size() != expected_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          Sv(expected.description), ": input raw has ", tensor.raw().size(),
          " bytes; shape ", ShapeText(tensor), " needs ", count,
          " little-endian float32 = ", expected_bytes, " bytes"));
    }
    decoded.encoding_ = TensorEncoding::kRaw;
    // The bytes are little-endian float32 (as on every platform nnserve
    // builds for) and std::string storage is malloc-aligned: read them in
    // place, so a raw call holds its input once, not twice. Only a
    // misaligned buffer (never seen in practice) is copied.
    const char* bytes = tensor.raw().data();
    if (reinterpret_cast<std::uintptr_t>(bytes) % alignof(float) == 0) {
      decoded.view_ = std::span<const float>(
          reinterpret_cast<const float*>(bytes), static_cast<size_t>(count));
    } else {
      decoded.owned_.resize(static_cast<size_t>(count));
      std::memcpy(decoded.owned_.data(), bytes, expected_bytes);
      decoded.view_ = decoded.owned_;
    }
  }
  absl::Status finite =
      engine::CheckFiniteRows(decoded.values(), features, expected.description);
  if (!finite.ok()) return finite;
  return decoded;
}

std::span<float> PrepareOutput(int64_t rows, int64_t cols,
                               TensorEncoding encoding, v1::Tensor* out) {
  out->clear_shape();
  out->add_shape(rows);
  out->add_shape(cols);
  const auto count = static_cast<size_t>(rows * cols);
  if (encoding == TensorEncoding::kValues) {
    out->clear_raw();
    auto* values = out->mutable_values();
    values->Resize(static_cast<int>(count), 0.0f);
    return std::span<float>(values->mutable_data(), count);
  }
  out->clear_values();
  // The bytes of `raw` are the little-endian float32 values themselves
  // (x86 and every platform nnserve builds for are little-endian);
  // std::string storage is malloc-aligned, so it holds floats directly.
  std::string* raw = out->mutable_raw();
  raw->resize(count * sizeof(float));
  return std::span<float>(reinterpret_cast<float*>(raw->data()), count);
}

}  // namespace nnserve::server
