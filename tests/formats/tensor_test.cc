// Tests for formats/tensor.h helpers and the F16/BF16 conversions in
// formats/half.h, against bit patterns fixed by IEEE 754 and bfloat16.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "formats/half.h"
#include "formats/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/tensor_files.h"

namespace {

using nnserve::formats::Bf16ToFloat;
using nnserve::formats::DType;
using nnserve::formats::DTypeName;
using nnserve::formats::HalfToFloat;
using nnserve::formats::ShapeString;
using nnserve::testing::FloatToBf16;
using nnserve::testing::FloatToHalf;

TEST(TensorTest, DTypeNamesUseSafetensorsSpelling) {
  EXPECT_EQ(DTypeName(DType::kF32), "F32");
  EXPECT_EQ(DTypeName(DType::kF64), "F64");
  EXPECT_EQ(DTypeName(DType::kF16), "F16");
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
}

TEST(TensorTest, ShapeString) {
  EXPECT_EQ(ShapeString({}), "[]");
  EXPECT_EQ(ShapeString({5}), "[5]");
  EXPECT_EQ(ShapeString({3, 4}), "[3, 4]");
  EXPECT_EQ(ShapeString({2, 0, 7}), "[2, 0, 7]");
}

TEST(HalfTest, KnownHalfBitPatterns) {
  EXPECT_EQ(HalfToFloat(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(HalfToFloat(0x8000)));
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xc000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x3555), 0x1.554p-2f);
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);     // Largest finite.
  EXPECT_EQ(HalfToFloat(0x0400), 0x1p-14f);     // Smallest normal.
  EXPECT_EQ(HalfToFloat(0x0001), 0x1p-24f);     // Smallest subnormal.
  EXPECT_EQ(HalfToFloat(0x03ff), 0x3ffp-24f);   // Largest subnormal.
  EXPECT_EQ(HalfToFloat(0x8200), -0x200p-24f);  // Negative subnormal.
  EXPECT_EQ(HalfToFloat(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfToFloat(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7c01)));  // Signalling NaN stays NaN.
}

TEST(HalfTest, KnownBf16BitPatterns) {
  EXPECT_EQ(Bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(Bf16ToFloat(0xc040), -3.0f);
  EXPECT_EQ(Bf16ToFloat(0x0001), 0x1p-133f);  // Smallest subnormal.
  EXPECT_EQ(Bf16ToFloat(0x7f7f), 0x1.fep127f);
  EXPECT_EQ(Bf16ToFloat(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Bf16ToFloat(0x7fc0)));
  EXPECT_TRUE(std::isnan(Bf16ToFloat(0xff81)));
}

TEST(HalfTest, FloatToHalfRoundsToNearestEven) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(1.0f + 0x1p-11f), 0x3c00);    // Tie -> even (down).
  EXPECT_EQ(FloatToHalf(1.0f + 0x3p-11f), 0x3c02);    // Tie -> even (up).
  EXPECT_EQ(FloatToHalf(1.0f + 0x1.2p-11f), 0x3c01);  // Above the tie.
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);  // Below the rounding boundary.
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // Rounds to infinity.
  EXPECT_EQ(FloatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-1e10f), 0xfc00);
  EXPECT_EQ(FloatToHalf(0x1p-24f), 0x0001);
  EXPECT_EQ(FloatToHalf(0x1p-25f), 0x0000);      // Tie -> even (zero).
  EXPECT_EQ(FloatToHalf(0x1.8p-24f), 0x0002);    // Tie -> even (up).
  EXPECT_EQ(FloatToHalf(0x1.ffcp-15f), 0x0400);  // Subnormal rounds to normal.
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(1e-30f), 0x0000);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_TRUE(std::isnan(
      HalfToFloat(FloatToHalf(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(HalfTest, FloatToBf16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBf16(1.0f + 0x1p-8f), 0x3f80);    // Tie -> even (down).
  EXPECT_EQ(FloatToBf16(1.0f + 0x3p-8f), 0x3f82);    // Tie -> even (up).
  EXPECT_EQ(FloatToBf16(1.0f + 0x1.2p-8f), 0x3f81);  // Above the tie.
  EXPECT_EQ(FloatToBf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(FloatToBf16(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(
      Bf16ToFloat(FloatToBf16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload lives only in the low 16 bits must stay NaN.
  EXPECT_TRUE(std::isnan(
      Bf16ToFloat(FloatToBf16(std::bit_cast<float>(uint32_t{0x7f800001})))));
}

TEST(HalfTest, EveryHalfSurvivesWideningAndNarrowing) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const auto h = static_cast<uint16_t>(bits);
    const float f = HalfToFloat(h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f)))) << bits;
    } else {
      EXPECT_EQ(FloatToHalf(f), h) << std::hex << bits;
    }
  }
}

TEST(HalfTest, EveryBf16SurvivesWideningAndNarrowing) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const auto b = static_cast<uint16_t>(bits);
    const float f = Bf16ToFloat(b);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(f)))) << bits;
    } else {
      EXPECT_EQ(FloatToBf16(f), b) << std::hex << bits;
    }
  }
}

}  // namespace
