// Precision: the arithmetic a Model's forward passes run in (FP32, BF16,
// INT8), what this CPU runs natively according to oneDNN, and the per-layer
// accuracy report that ModelInfo carries for a reduced-precision model.
//
// Plain value types and stateless functions. DetectedPrecisionSupport()
// computes its answer once per process (a thread-safe static) and returns
// the same immutable value afterwards; everything here is thread-safe.
#ifndef NNSERVE_ENGINE_PRECISION_H_
#define NNSERVE_ENGINE_PRECISION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nnserve/v1/model_config.pb.h"

namespace nnserve::engine {

enum class Precision {
  kFp32,  // float32 throughout.
  kBf16,  // bf16 weights/activations, f32 accumulation, f32 output.
  kInt8,  // s8 weights, u8 activations quantized per call, s32 accumulation.
};

// "FP32", "BF16", "INT8" (the config spelling).
std::string_view PrecisionName(Precision precision);
v1::Precision ToConfigPrecision(Precision precision);
// The config enum value as a Precision; nullopt for unknown numeric values.
std::optional<Precision> FromConfigPrecision(int value);
// "fp32"/"FP32", "bf16"/"BF16", "int8"/"INT8"; nullopt otherwise.
std::optional<Precision> ParsePrecision(std::string_view text);

// Which reduced precisions the CPU executes natively, as oneDNN sees it.
// "Natively" means oneDNN's JIT matmul kernels for the precision exist on
// the effective ISA: avx512_core_bf16 (or AMX) for BF16, avx512_core_vnni
// (or AMX) for INT8. Without them oneDNN would emulate the precision more
// slowly than FP32, so the engine runs FP32 instead.
struct PrecisionSupport {
  std::string isa;  // oneDNN's effective CPU ISA, e.g. "avx512_core_amx".
  bool bf16 = false;
  bool int8 = false;

  bool Supports(Precision precision) const;
};

// The batch a model's reduced-precision plan is compared with FP32 on at
// load (see LayerPrecision): rows x input_size f32 values, and where they
// came from for the report.
struct ProbeBatch {
  std::vector<float> values;
  int64_t rows = 0;
  std::string source;  // e.g. "models/digits/sample_input.npy"

  bool empty() const { return rows == 0; }
};

// This process's support, from dnnl::get_effective_cpu_isa() (which
// honours ONEDNN_MAX_CPU_ISA). Computed on first call.
const PrecisionSupport& DetectedPrecisionSupport();

// Deviation of one layer's output (after its activation) in the effective
// precision from the same layer's output in FP32, both plans fed the same
// probe batch from the model input (errors of earlier layers included).
struct LayerPrecision {
  std::string name;
  // oneDNN's implementation of the layer's matmul in the first plan built,
  // e.g. "brg:avx512_core_amx_int8".
  std::string kernel;
  double max_abs_deviation = 0;      // max |reduced - fp32|
  double relative_l2_deviation = 0;  // ||reduced - fp32||_2 / ||fp32||_2
};

// How a model executes and what that costs in accuracy.
struct PrecisionReport {
  Precision requested = Precision::kFp32;  // Config, or the override.
  Precision effective = Precision::kFp32;  // What the plans run.
  // Non-empty when effective != requested: why (the load-time warning).
  std::string fallback_reason;
  std::string isa;  // oneDNN's effective ISA (PrecisionSupport::isa).
  // Where the probe batch came from and its rows; empty/0 when no probe ran
  // (effective FP32).
  std::string probe_source;
  int64_t probe_rows = 0;
  float max_precision_deviation = 0;   // The configured limit; 0 = none.
  std::vector<LayerPrecision> layers;  // One per layer, in order.

  bool probed() const { return probe_rows > 0; }
};

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_PRECISION_H_
