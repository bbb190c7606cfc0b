#include "server/commands/run_command.h"

#include <fstream>
#include <iterator>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/repository.h"
#include "engine/rows.h"
#include "formats/npy.h"
#include "server/commands/input_reader.h"
#include "server/commands/precision_flag.h"

namespace nnserve::server {
namespace {

absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 const std::string& bytes) {
  const std::filesystem::path temp = path.string() + ".tmp";
  {
    std::ofstream file(temp, std::ios::binary | std::ios::trunc);
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!file) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot write output file '", temp.string(), "'"));
    }
  }
  std::error_code error;
  std::filesystem::rename(temp, path, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot rename '", temp.string(), "' to '", path.string(),
                     "': ", error.message()));
  }
  return absl::OkStatus();
}

// "# precision INT8 (requested INT8); largest deviation from FP32 on the
// probe batch: relative L2 1.2e-02 at layer 'fc2' (max abs 3.4e-03)", for
// models that asked for BF16/INT8; nothing for FP32 ones.
void PrintPrecisionLine(const engine::PrecisionReport& p, std::ostream& out) {
  if (p.requested == engine::Precision::kFp32) return;
  out << "# precision " << engine::PrecisionName(p.effective) << " (requested "
      << engine::PrecisionName(p.requested) << ")";
  if (!p.fallback_reason.empty()) out << "; warning: " << p.fallback_reason;
  const engine::LayerPrecision* worst = nullptr;
  for (const engine::LayerPrecision& layer : p.layers) {
    if (worst == nullptr ||
        layer.relative_l2_deviation > worst->relative_l2_deviation) {
      worst = &layer;
    }
  }
  if (p.probed() && worst != nullptr) {
    out << absl::StrFormat(
        "; largest deviation from FP32 on the probe batch: relative L2 %.3e "
        "at layer '%s' (max abs %.3e)",
        worst->relative_l2_deviation, worst->name, worst->max_abs_deviation);
  }
  out << "\n";
}

}  // namespace

absl::Status RunOffline(const RunOptions& options, std::istream& in,
                        std::ostream& out) {
  absl::StatusOr<std::optional<engine::Precision>> precision =
      ParsePrecisionFlag(options.precision);
  if (!precision.ok()) return precision.status();
  engine::EngineOptions engine_options;
  engine_options.intra_op_threads = options.intra_op_threads;
  engine_options.precision_override = *precision;
  auto model =
      engine::LoadModel(options.model_dir, options.version, engine_options);
  if (!model.ok()) return model.status();
  const engine::ModelInfo& info = (*model)->info();

  absl::StatusOr<formats::FloatMatrix> matrix;
  if (options.input.empty() || options.input == "-") {
    std::string text{std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>()};
    matrix = ParseMatrix(text, "stdin");
  } else {
    matrix = ReadMatrixFile(options.input);
  }
  if (!matrix.ok()) return matrix.status();

  // Validate as the server does: feature count, at least one row, finite.
  const std::string description =
      absl::StrCat("model '", info.name, "' version ", info.version, " input '",
                   info.input_name, "'");
  if (matrix->cols != info.input_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        description, ": input has ", matrix->cols, " features per row (shape [",
        matrix->rows, ", ", matrix->cols, "]); expected ", info.input_size));
  }
  if (matrix->rows == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        description, ": input has no rows; expected at least 1 row"));
  }
  absl::Status finite =
      engine::CheckFiniteRows(matrix->values, matrix->cols, description);
  if (!finite.ok()) return finite;

  const int64_t rows = matrix->rows;
  const int64_t cols = info.output_size;
  std::vector<float> output(static_cast<size_t>(rows * cols));
  absl::Status status = (*model)->Forward(matrix->values, rows, output);
  if (!status.ok()) return status;

  PrintPrecisionLine(info.precision, out);
  std::vector<int32_t> classes;
  if (!info.labels.empty()) classes = engine::ArgmaxPerRow(output, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    out << "row " << r << ": [";
    for (int64_t c = 0; c < cols; ++c) {
      out << (c ? ", " : "")
          << absl::StrFormat("%.6g", output[static_cast<size_t>(r * cols + c)]);
    }
    out << "]";
    if (!classes.empty()) {
      const int32_t k = classes[static_cast<size_t>(r)];
      if (k == engine::kNoClass) {
        out << " label=none class=-1 (non-finite output)";
      } else {
        out << absl::StrFormat(" label=%s class=%d score=%.6g",
                               info.labels[static_cast<size_t>(k)], k,
                               output[static_cast<size_t>(r * cols + k)]);
      }
    }
    out << "\n";
  }
  if (!options.output.empty()) {
    return WriteFileAtomically(options.output,
                               formats::SerializeNpy({rows, cols}, output));
  }
  return absl::OkStatus();
}

}  // namespace nnserve::server
