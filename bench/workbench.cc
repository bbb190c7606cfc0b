#include "bench/workbench.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace nnserve::bench {

absl::StatusOr<const engine::Model*> Workbench::EngineModel(
    const BenchModel& model, int threads, engine::Precision precision,
    const std::vector<int64_t>& batches) {
  auto key = std::make_tuple(model.name, threads, precision);
  auto it = engine_models_.find(key);
  if (it == engine_models_.end()) {
    engine::EngineOptions options;
    options.intra_op_threads = threads;
    options.prewarm_batch_sizes = batches;
    options.precision_override = precision;
    absl::StatusOr<std::shared_ptr<const engine::Model>> created =
        model.CreateEngineModel(options);
    if (!created.ok()) return created.status();
    const engine::PrecisionReport& report = (*created)->info().precision;
    if (report.effective != precision) {
      return absl::FailedPreconditionError(
          absl::StrCat(model.name, ": ", report.fallback_reason,
                       "; expected a CPU that runs it natively"));
    }
    it = engine_models_.emplace(key, *std::move(created)).first;
  }
  return it->second.get();
}

absl::StatusOr<RawChain*> Workbench::Chain(const BenchModel& model, int threads,
                                           int64_t rows,
                                           engine::Precision precision,
                                           const engine::Model& engine) {
  const ChainKey key = std::make_tuple(model.name, threads, rows, precision);
  if (chain_ == nullptr || chain_key_ != key) {
    chain_.reset();
    absl::StatusOr<std::unique_ptr<RawChain>> chain =
        RawChain::Create(*model.spec, rows, threads, precision);
    if (!chain.ok()) return chain.status();
    chain_ = *std::move(chain);
    chain_key_ = key;
  }
  auto verified = verified_.find(key);
  if (verified == verified_.end()) {
    verified =
        verified_.emplace(key, CompareOutputs(model, rows, precision, engine))
            .first;
  }
  if (!verified->second.ok()) return verified->second;
  return chain_.get();
}

const std::vector<float>& Workbench::Input(const BenchModel& model,
                                           int64_t rows) {
  std::vector<float>& input = inputs_[{model.name, rows}];
  if (input.empty()) {
    input.resize(static_cast<size_t>(rows * model.spec->input_size));
    uint32_t state = 12345;
    for (float& x : input) {
      state = state * 1664525u + 1013904223u;
      x = static_cast<float>(state >> 8) * 0x1.0p-24f;
    }
  }
  return input;
}

std::vector<float>& Workbench::Output(const BenchModel& model, int64_t rows) {
  std::vector<float>& output = outputs_[{model.name, rows}];
  output.resize(static_cast<size_t>(rows * model.spec->output_size()));
  return output;
}

// Runs the engine and the current chain on the same input; they must agree
// to within float rounding (both are oneDNN underneath; INT8 inputs may
// also land one quantization level apart where the engine's and oneDNN's
// quantizing arithmetic round differently).
absl::Status Workbench::CompareOutputs(const BenchModel& model, int64_t rows,
                                       engine::Precision precision,
                                       const engine::Model& engine) {
  const std::vector<float>& input = Input(model, rows);
  std::vector<float> from_engine(Output(model, rows).size());
  std::vector<float> from_raw(from_engine.size());
  if (absl::Status s = engine.Forward(input, rows, from_engine); !s.ok()) {
    return s;
  }
  if (absl::Status s = chain_->Run(input, from_raw); !s.ok()) return s;
  // Same primitives on the same weights: only summation-order rounding
  // may differ. A NaN counts as the worst possible mismatch.
  const double kTolerance = precision == engine::Precision::kFp32   ? 1e-4
                            : precision == engine::Precision::kBf16 ? 1e-3
                                                                    : 1e-2;
  size_t worst = 0;
  double worst_excess = 0;
  bool mismatch = false;
  for (size_t i = 0; i < from_raw.size(); ++i) {
    const double diff = std::abs(double{from_engine[i]} - from_raw[i]);
    const double allowed =
        kTolerance * std::max(1.0, std::abs(double{from_raw[i]}));
    const double excess = std::isnan(diff)
                              ? std::numeric_limits<double>::infinity()
                              : diff - allowed;
    if (excess > 0 && (!mismatch || excess > worst_excess)) {
      mismatch = true;
      worst = i;
      worst_excess = excess;
    }
  }
  if (mismatch) {
    return absl::InternalError(absl::StrCat(
        model.name, " ", std::string(engine::PrecisionName(precision)), " at ",
        rows, " rows: engine output[", worst, "] = ", from_engine[worst],
        " but the raw oneDNN chain gives ", from_raw[worst],
        "; expected agreement within ", kTolerance,
        " (relative to max(1, |raw|))"));
  }
  return absl::OkStatus();
}

}  // namespace nnserve::bench
