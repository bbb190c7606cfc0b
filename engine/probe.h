// The load-time accuracy probe of reduced-precision models: where the probe
// batch comes from (a model's sample_input.npy, else a fixed-seed batch
// scaled to the first layer's weights) and how a layer's deviation from
// FP32 is measured. Stateless functions; thread-safe.
#ifndef NNSERVE_ENGINE_PROBE_H_
#define NNSERVE_ENGINE_PROBE_H_

#include <cstdint>
#include <filesystem>
#include <span>

#include "absl/status/statusor.h"
#include "engine/model_spec.h"
#include "engine/precision.h"

namespace nnserve::engine {

// Probe batches are cut to this many rows (the probe runs at every load).
inline constexpr int64_t kMaxProbeRows = 256;
// Rows of a generated probe batch.
inline constexpr int64_t kGeneratedProbeRows = 64;

// Reads <version_dir>/sample_input.npy, else <model_dir>/sample_input.npy
// (shape [rows, input_size] or [input_size]; the first kMaxProbeRows rows
// are used). Returns an empty batch when neither file exists, and
// InvalidArgument naming the file when it is unreadable, has the wrong
// shape or holds non-finite values.
absl::StatusOr<ProbeBatch> ReadProbeBatch(
    const std::filesystem::path& model_dir,
    const std::filesystem::path& version_dir, int64_t input_size);

// kGeneratedProbeRows rows uniform in [-a, a] from a fixed seed, with `a`
// chosen so that the first layer's pre-activations (without bias) have
// standard deviation ~1 given its weights: a = sqrt(3) / rms of the
// weight rows' L2 norms.
ProbeBatch GenerateProbeBatch(const ModelSpec& spec);

// Max |reduced - fp32| and ||reduced - fp32||_2 / ||fp32||_2 (0 if both
// are 0, +inf if only fp32 is 0) into `layer`. Spans of equal size.
void MeasureDeviation(std::span<const float> reduced,
                      std::span<const float> fp32, LayerPrecision& layer);

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_PROBE_H_
