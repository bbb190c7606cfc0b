// Probe batches and deviation measures (see probe.h).
#include "engine/probe.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "formats/npy.h"

namespace nnserve::engine {
namespace {

namespace fs = std::filesystem;

constexpr char kSampleInputFile[] = "sample_input.npy";
constexpr uintmax_t kMaxSampleBytes = uintmax_t{256} << 20;  // 256 MiB
constexpr uint32_t kProbeSeed = 20261;

absl::StatusOr<ProbeBatch> ReadSampleFile(const fs::path& path,
                                          int64_t input_size) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": cannot stat: ", ec.message()));
  }
  if (size > kMaxSampleBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": file is ", size,
                     " bytes, expected at most ", kMaxSampleBytes));
  }
  std::ifstream file(path, std::ios::binary);
  std::string bytes{std::istreambuf_iterator<char>(file),
                    std::istreambuf_iterator<char>()};
  if (!file.good() && !file.eof()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": cannot read"));
  }
  absl::StatusOr<formats::Tensor> tensor =
      formats::ParseNpy(bytes, path.string());
  if (!tensor.ok()) return tensor.status();
  const std::vector<int64_t>& shape = tensor->shape;
  const bool one_row = shape.size() == 1 && shape[0] == input_size;
  const bool matrix =
      shape.size() == 2 && shape[0] >= 1 && shape[1] == input_size;
  if (!one_row && !matrix) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": shape is ", formats::ShapeString(shape),
                     ", expected [rows, ", input_size, "] or [", input_size,
                     "] (the model's input size)"));
  }
  ProbeBatch batch;
  batch.rows = std::min(one_row ? 1 : shape[0], kMaxProbeRows);
  const size_t count = static_cast<size_t>(batch.rows * input_size);
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(tensor->values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          path.string(), ": row ", i / input_size, " column ", i % input_size,
          " is not finite; expected finite values"));
    }
  }
  tensor->values.resize(count);
  batch.values = std::move(tensor->values);
  batch.source = path.string();
  return batch;
}

}  // namespace

absl::StatusOr<ProbeBatch> ReadProbeBatch(const fs::path& model_dir,
                                          const fs::path& version_dir,
                                          int64_t input_size) {
  for (const fs::path& dir : {version_dir, model_dir}) {
    const fs::path path = dir / kSampleInputFile;
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) return ReadSampleFile(path, input_size);
  }
  return ProbeBatch{};
}

ProbeBatch GenerateProbeBatch(const ModelSpec& spec) {
  const LayerSpec& first = spec.layers.front();
  double squares = 0;
  for (float w : first.weight) squares += double{w} * w;
  // Mean squared L2 norm of a weight row (one per unit).
  const double row_norm_sq = squares / static_cast<double>(first.units);
  const double a = row_norm_sq > 0 ? std::sqrt(3.0 / row_norm_sq) : 1.0;
  ProbeBatch batch;
  batch.rows = kGeneratedProbeRows;
  batch.values.resize(static_cast<size_t>(batch.rows * spec.input_size));
  std::mt19937 rng(kProbeSeed);
  std::uniform_real_distribution<double> uniform(-a, a);
  for (float& x : batch.values) x = static_cast<float>(uniform(rng));
  batch.source = absl::StrCat("generated (seed ", kProbeSeed, ", uniform +-",
                              static_cast<float>(a), ")");
  return batch;
}

void MeasureDeviation(std::span<const float> reduced,
                      std::span<const float> fp32, LayerPrecision& layer) {
  double max_abs = 0, diff_sq = 0, ref_sq = 0;
  bool finite = true;
  for (size_t i = 0; i < fp32.size(); ++i) {
    const double d = double{reduced[i]} - fp32[i];
    finite = finite && std::isfinite(d);
    max_abs = std::max(max_abs, std::abs(d));
    diff_sq += d * d;
    ref_sq += double{fp32[i]} * fp32[i];
  }
  if (!finite) {
    layer.max_abs_deviation = layer.relative_l2_deviation =
        std::numeric_limits<double>::infinity();
    return;
  }
  layer.max_abs_deviation = max_abs;
  if (diff_sq == 0) {
    layer.relative_l2_deviation = 0;
  } else if (ref_sq == 0) {
    layer.relative_l2_deviation = std::numeric_limits<double>::infinity();
  } else {
    layer.relative_l2_deviation = std::sqrt(diff_sq / ref_sq);
  }
}

}  // namespace nnserve::engine
