// Internal to engine/: the numeric conversions of reduced-precision
// execution that the engine does itself rather than through oneDNN.
//
// - Weights (INT8, at load): symmetric per-output-channel s8 quantization.
// - Activations (INT8, per call): the range of a batch, the u8 scale and zero
//   point chosen from it, and the quantization itself (AVX-512 when the CPU
//   has it, a scalar loop with identical results otherwise; passes over
//   64 Ki values or more use the calling thread's OpenMP threads).
// - bf16 -> f32 widening (for the load-time deviation probe).
//
// Stateless functions over caller-owned buffers; thread-safe.
#ifndef NNSERVE_ENGINE_QUANTIZE_H_
#define NNSERVE_ENGINE_QUANTIZE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace nnserve::engine {

// s8 weights of one layer: w[u][k] ~= scales[u] * values[u][k], with
// scales[u] = max_k |w[u][k]| / 127 (1 for an all-zero row, never below
// FLT_MIN), values rounded to nearest and within [-127, 127].
struct QuantizedWeights {
  std::vector<int8_t> values;  // [units, in] row-major.
  std::vector<float> scales;   // [units].
};

// `weights` is [units, in] row-major.
QuantizedWeights QuantizePerChannel(std::span<const float> weights,
                                    int64_t units, int64_t in);

// u8 quantization of one batch: x ~= scale * (q - zero_point).
struct U8Quantization {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// min(0, min x) and max(0, max x) over `values` (0 is always in range, so
// that zeros, e.g. ReLU outputs, stay exact).
struct Range {
  float lo = 0.0f;
  float hi = 0.0f;
};
Range ValueRange(std::span<const float> values);

// The scale and zero point spanning `range` with 256 levels. With
// `use_zero_point` false (inputs known to be >= 0), the zero point is 0
// and the scale hi / 255. A range of only 0 gets scale 1; a scale is never
// below FLT_MIN (subnormal factors are slow in every kernel).
U8Quantization ChooseU8Quantization(Range range, bool use_zero_point);

// out[i] = clamp(round_half_even(values[i] / scale) + zero_point, 0, 255).
// `out` has values.size() bytes.
void QuantizeU8(std::span<const float> values, U8Quantization q, uint8_t* out);

// bf16 bit patterns (upper halves of f32) -> f32.
void Bf16ToFloat(std::span<const uint16_t> values, float* out);

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_QUANTIZE_H_
