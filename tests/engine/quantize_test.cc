// Tests for the engine's own quantization helpers (engine/quantize.h) and
// the deviation measures of the accuracy probe (engine/probe.h).
#include "engine/quantize.h"

#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "engine/probe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"

namespace nnserve::engine {
namespace {

using ::nnserve::testing::RandomValues;

TEST(QuantizePerChannelTest, SymmetricPerRowScalesAndRoundTrip) {
  // Row 0 spans +-2, row 1 +-0.01, row 2 is all zeros.
  std::vector<float> w = RandomValues(3 * 50, 1.0f, 4);
  for (int k = 0; k < 50; ++k) {
    w[k] *= 2.0f;
    w[50 + k] *= 0.01f;
    w[100 + k] = 0.0f;
  }
  w[7] = -2.0f;  // The row's largest magnitude, negative.
  const QuantizedWeights q = QuantizePerChannel(w, 3, 50);
  ASSERT_EQ(q.values.size(), w.size());
  ASSERT_EQ(q.scales.size(), 3u);
  EXPECT_FLOAT_EQ(q.scales[0], 2.0f / 127);
  EXPECT_EQ(q.values[7], -127);
  EXPECT_EQ(q.scales[2], 1.0f);
  for (int u = 0; u < 3; ++u) {
    for (int k = 0; k < 50; ++k) {
      const float restored = q.scales[u] * q.values[u * 50 + k];
      // Round to nearest: within half a step.
      EXPECT_LE(std::abs(restored - w[u * 50 + k]), q.scales[u] * 0.5001f)
          << u << "," << k;
      EXPECT_GE(q.values[u * 50 + k], -127);
      EXPECT_LE(q.values[u * 50 + k], 127);
    }
  }
}

TEST(ValueRangeTest, IncludesZeroAndHandlesTails) {
  for (size_t n : {0, 1, 15, 16, 17, 33, 1000}) {
    std::vector<float> v = RandomValues(n, 3.0f, static_cast<uint32_t>(n));
    for (float& x : v) x = std::abs(x) + 1.0f;  // All positive: lo is 0.
    if (n > 0) v[n - 1] = 7.5f;                 // The maximum in the tail.
    const Range r = ValueRange(v);
    EXPECT_EQ(r.lo, 0.0f) << n;
    EXPECT_EQ(r.hi, n > 0 ? 7.5f : 0.0f) << n;
    if (n > 0) {
      v[n / 2] = -4.25f;
      EXPECT_EQ(ValueRange(v).lo, -4.25f) << n;
    }
  }
}

TEST(ChooseU8QuantizationTest, ScaleAndZeroPoint) {
  U8Quantization q = ChooseU8Quantization({-1.0f, 3.0f}, true);
  EXPECT_FLOAT_EQ(q.scale, 4.0f / 255);
  EXPECT_EQ(q.zero_point, 64);  // round(1 / (4/255)) = round(63.75)
  // Without a zero point the range starts at 0.
  q = ChooseU8Quantization({-1.0f, 3.0f}, false);
  EXPECT_FLOAT_EQ(q.scale, 3.0f / 255);
  EXPECT_EQ(q.zero_point, 0);
  q = ChooseU8Quantization({0.0f, 0.0f}, true);
  EXPECT_EQ(q.scale, 1.0f);
  EXPECT_EQ(q.zero_point, 0);
  q = ChooseU8Quantization({-2.0f, 0.0f}, true);
  EXPECT_EQ(q.zero_point, 255);
}

// Every length (vector body and masked tail), values on exact .5 steps
// (ties go to even, as the scalar path's std::nearbyint) and out of range
// (saturated).
TEST(QuantizeU8Test, RoundsHalfToEvenAndSaturates) {
  const U8Quantization q{0.5f, 10};
  for (size_t n = 0; n < 40; ++n) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) {
      v[i] = -10.0f + 0.25f * static_cast<float>(i * 7 % 160);
    }
    if (n > 3) v[3] = 1000.0f;
    if (n > 5) v[5] = -1000.0f;
    std::vector<uint8_t> out(n + 1, 0xAB);  // One guard byte.
    QuantizeU8(v, q, out.data());
    for (size_t i = 0; i < n; ++i) {
      const float level = std::clamp(
          std::nearbyint(v[i] / q.scale) + q.zero_point, 0.0f, 255.0f);
      EXPECT_EQ(out[i], static_cast<uint8_t>(level)) << n << " " << v[i];
    }
    EXPECT_EQ(out[n], 0xAB) << "wrote past the end at n=" << n;
  }
  // 0.25 / 0.5 = 0.5 -> 0 (even) + 10; 0.75 / 0.5 = 1.5 -> 2 + 10.
  std::vector<float> ties = {0.25f, 0.75f};
  uint8_t out[2];
  QuantizeU8(ties, q, out);
  EXPECT_EQ(out[0], 10);
  EXPECT_EQ(out[1], 12);
}

// Passes over >= 64 Ki values are split over the OpenMP team: the same
// answer as one thread, whatever the split.
TEST(QuantizeU8Test, ParallelPassesEqualSerialOnes) {
  std::vector<float> v = RandomValues((size_t{1} << 18) + 37, 3.0f, 12);
  v[123457] = -9.5f;
  v.back() = 11.25f;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Range serial_range = ValueRange(v);
  const U8Quantization q = ChooseU8Quantization(serial_range, true);
  std::vector<uint8_t> serial(v.size()), parallel(v.size());
  QuantizeU8(v, q, serial.data());
  omp_set_num_threads(2);
  const Range parallel_range = ValueRange(v);
  QuantizeU8(v, q, parallel.data());
  omp_set_num_threads(threads);
  EXPECT_EQ(serial_range.lo, -9.5f);
  EXPECT_EQ(serial_range.hi, 11.25f);
  EXPECT_EQ(parallel_range.lo, serial_range.lo);
  EXPECT_EQ(parallel_range.hi, serial_range.hi);
  EXPECT_EQ(parallel, serial);
}

TEST(Bf16ToFloatTest, WidensUpperHalves) {
  const std::vector<uint16_t> bits = {0x3F80, 0xC000, 0x0000, 0x7F80};
  float out[4];
  Bf16ToFloat(bits, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_EQ(out[3], std::numeric_limits<float>::infinity());
}

TEST(MeasureDeviationTest, MaxAbsAndRelativeL2) {
  const std::vector<float> fp32 = {3.0f, 4.0f, 0.0f};
  const std::vector<float> reduced = {3.0f, 4.5f, -0.2f};
  LayerPrecision layer;
  MeasureDeviation(reduced, fp32, layer);
  EXPECT_FLOAT_EQ(layer.max_abs_deviation, 0.5);
  EXPECT_NEAR(layer.relative_l2_deviation, std::sqrt(0.25 + 0.04) / 5, 1e-7);
  MeasureDeviation(fp32, fp32, layer);
  EXPECT_EQ(layer.relative_l2_deviation, 0);
  const std::vector<float> zeros(3, 0.0f);
  MeasureDeviation(reduced, zeros, layer);
  EXPECT_EQ(layer.relative_l2_deviation,
            std::numeric_limits<double>::infinity());
  std::vector<float> nan = reduced;
  nan[0] = std::nanf("");
  MeasureDeviation(nan, fp32, layer);
  EXPECT_EQ(layer.relative_l2_deviation,
            std::numeric_limits<double>::infinity());
}

}  // namespace
}  // namespace nnserve::engine
