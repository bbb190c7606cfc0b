// Quantization helpers of reduced-precision execution (see quantize.h).
//
// ValueRange and QuantizeU8 run on every INT8 forward pass (once per layer),
// so they have an AVX-512 version chosen at run time by CPUID; INT8 only
// runs on CPUs with VNNI, which all have AVX-512F. The scalar versions give
// bit-identical results (same rounding: half to even) on other CPUs. Large
// batches are split over the calling thread's OpenMP team.
#include "engine/quantize.h"

// GCC 12's AVX-512 intrinsics build "undefined" vectors from themselves
// (`__m512 __Y = __Y;`), which -Wuninitialized reports wherever they are
// inlined (GCC bug 105593). Diagnostics are location-based, so ignoring
// them for the header's text silences only that.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace nnserve::engine {
namespace {

bool HasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

__attribute__((target("avx512f"))) Range ValueRangeAvx512(const float* x,
                                                          size_t n) {
  __m512 lo = _mm512_setzero_ps();
  __m512 hi = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
  }
  if (i < n) {
    // Masked-off lanes read as 0, which is in range anyway.
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
  }
  return {_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi)};
}

__attribute__((target("avx512f"))) void QuantizeU8Avx512(const float* x,
                                                         size_t n, float inv,
                                                         float zero_point,
                                                         uint8_t* out) {
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512 vzp = _mm512_set1_ps(zero_point);
  const __m512 vmin = _mm512_setzero_ps();
  const __m512 vmax = _mm512_set1_ps(255.0f);
  size_t i = 0;
  while (i < n) {
    const size_t left = n - i;
    const __mmask16 mask = left >= 16
                               ? __mmask16{0xFFFF}
                               : static_cast<__mmask16>((1u << left) - 1);
    __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
    v = _mm512_fmadd_ps(v, vinv, vzp);
    v = _mm512_min_ps(_mm512_max_ps(v, vmin), vmax);
    // Round to nearest even (the default MXCSR mode), as std::nearbyint.
    _mm512_mask_cvtusepi32_storeu_epi8(out + i, mask, _mm512_cvtps_epi32(v));
    i += 16;
  }
}

}  // namespace

QuantizedWeights QuantizePerChannel(std::span<const float> weights,
                                    int64_t units, int64_t in) {
  QuantizedWeights q;
  q.values.resize(weights.size());
  q.scales.resize(static_cast<size_t>(units));
  for (int64_t u = 0; u < units; ++u) {
    const std::span<const float> row = weights.subspan(u * in, in);
    float max_abs = 0;
    for (float w : row) max_abs = std::max(max_abs, std::abs(w));
    // Never subnormal: oneDNN multiplies every output by it.
    const float scale =
        max_abs > 0
            ? std::max(max_abs / 127.0f, std::numeric_limits<float>::min())
            : 1.0f;
    q.scales[u] = scale;
    for (int64_t k = 0; k < in; ++k) {
      const float level = std::nearbyint(row[k] / scale);
      q.values[u * in + k] =
          static_cast<int8_t>(std::clamp(level, -127.0f, 127.0f));
    }
  }
  return q;
}

namespace {

// Below this many values one thread does the pass (an OpenMP region costs a
// few µs to wake); above it, the calling thread's OpenMP team (the model's
// intra_op_threads) splits it, as oneDNN splits the matmul.
constexpr size_t kParallelValues = size_t{1} << 16;
constexpr size_t kChunk = size_t{1} << 14;  // Multiple of 16.

Range ValueRangeSerial(const float* x, size_t n) {
  if (HasAvx512()) return ValueRangeAvx512(x, n);
  Range range;
  for (size_t i = 0; i < n; ++i) {
    range.lo = std::min(range.lo, x[i]);
    range.hi = std::max(range.hi, x[i]);
  }
  return range;
}

void QuantizeU8Serial(const float* x, size_t n, float inv, float zp,
                      uint8_t* out) {
  if (HasAvx512()) {
    QuantizeU8Avx512(x, n, inv, zp, out);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    // fma as in the AVX-512 path, so both round identically.
    const float v = std::clamp(std::fma(x[i], inv, zp), 0.0f, 255.0f);
    out[i] = static_cast<uint8_t>(std::nearbyint(v));
  }
}

}  // namespace

Range ValueRange(std::span<const float> values) {
  const size_t n = values.size();
  if (n < kParallelValues || omp_get_max_threads() == 1) {
    return ValueRangeSerial(values.data(), n);
  }
  const int64_t chunks = static_cast<int64_t>((n + kChunk - 1) / kChunk);
  float lo = 0, hi = 0;
#pragma omp parallel for reduction(min : lo) reduction(max : hi)
  for (int64_t c = 0; c < chunks; ++c) {
    const size_t first = static_cast<size_t>(c) * kChunk;
    const Range r =
        ValueRangeSerial(values.data() + first, std::min(kChunk, n - first));
    lo = std::min(lo, r.lo);
    hi = std::max(hi, r.hi);
  }
  return {lo, hi};
}

U8Quantization ChooseU8Quantization(Range range, bool use_zero_point) {
  U8Quantization q;
  const float lo = use_zero_point ? std::min(range.lo, 0.0f) : 0.0f;
  const float hi = std::max(range.hi, 0.0f);
  if (!(hi > lo)) return q;  // All zeros (or NaN): scale 1, zero point 0.
  q.scale = std::max((hi - lo) / 255.0f, std::numeric_limits<float>::min());
  if (use_zero_point) {
    q.zero_point = static_cast<int32_t>(
        std::clamp(std::nearbyint(-lo / q.scale), 0.0f, 255.0f));
  }
  return q;
}

void QuantizeU8(std::span<const float> values, U8Quantization q, uint8_t* out) {
  const float inv = 1.0f / q.scale;
  const float zp = static_cast<float>(q.zero_point);
  const size_t n = values.size();
  if (n < kParallelValues || omp_get_max_threads() == 1) {
    QuantizeU8Serial(values.data(), n, inv, zp, out);
    return;
  }
  const int64_t chunks = static_cast<int64_t>((n + kChunk - 1) / kChunk);
#pragma omp parallel for
  for (int64_t c = 0; c < chunks; ++c) {
    const size_t first = static_cast<size_t>(c) * kChunk;
    QuantizeU8Serial(values.data() + first, std::min(kChunk, n - first), inv,
                     zp, out + first);
  }
}

void Bf16ToFloat(std::span<const uint16_t> values, float* out) {
  for (size_t i = 0; i < values.size(); ++i) {
    const uint32_t bits = static_cast<uint32_t>(values[i]) << 16;
    std::memcpy(out + i, &bits, sizeof(bits));
  }
}

}  // namespace nnserve::engine
