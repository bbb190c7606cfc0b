// Exact conversions between IEEE binary16 (F16), bfloat16 (BF16) and f32,
// operating on raw bit patterns, and the decoder of little-endian weight
// data shared by the safetensors and .npy parsers. Header-only, stateless;
// thread-safe.
//
// Widening (F16/BF16 -> f32) is exact for every input, including
// subnormals, signed zeros, infinities and NaN (the payload is kept).
// Narrowing (f32 -> F16/BF16) rounds to nearest, ties to even; values too
// large for F16 become infinity and NaN stays a (quiet) NaN.
#ifndef NNSERVE_FORMATS_HALF_H_
#define NNSERVE_FORMATS_HALF_H_

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>

#include "formats/tensor.h"

namespace nnserve::formats {

// IEEE 754 binary16 bits -> f32.
constexpr float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits = 0;
  if (exponent == 0x1f) {  // Infinity or NaN.
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // Normal: rebias 15 -> 127.
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // Signed zero.
    bits = sign;
  } else {  // Subnormal: mantissa * 2^-24, normalized for f32.
    int shifts = 0;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shifts;
    }
    mantissa &= 0x3ffu;
    bits = sign | static_cast<uint32_t>(113 - shifts) << 23 | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

// bfloat16 bits -> f32 (bfloat16 is the top half of an f32).
constexpr float Bf16ToFloat(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

// f32 -> IEEE 754 binary16 bits, round to nearest even.
constexpr uint16_t FloatToHalfBits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int exponent = static_cast<int>((x >> 23) & 0xffu);
  const uint32_t mantissa = x & 0x7fffffu;
  if (exponent == 0xff) {  // Infinity or NaN (forced quiet, payload kept).
    return static_cast<uint16_t>(
        sign | 0x7c00u | (mantissa != 0 ? 0x200u | (mantissa >> 13) : 0u));
  }
  const int half_exponent = exponent - 127 + 15;
  if (half_exponent >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (half_exponent <= 0) {  // Subnormal in F16 (or rounds to zero).
    if (half_exponent < -10) return static_cast<uint16_t>(sign);
    const uint32_t full = mantissa | 0x800000u;
    const int shift = 14 - half_exponent;
    uint32_t h = full >> shift;
    const uint32_t rest = full & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  // Normal. A mantissa carry correctly bumps the exponent (up to infinity).
  uint32_t h = (static_cast<uint32_t>(half_exponent) << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

// f32 -> bfloat16 bits, round to nearest even.
constexpr uint16_t FloatToBf16Bits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it a quiet NaN.
    return static_cast<uint16_t>((x >> 16) | 0x40u);
  }
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// Bytes per element of `dtype` on disk.
constexpr size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF64:
      return 8;
    case DType::kF16:
    case DType::kBF16:
      return 2;
  }
  return 0;
}

// Decodes `count` little-endian `dtype` values starting at `bytes` (no
// alignment needed; the caller guarantees count * DTypeSize(dtype) readable
// bytes) into out[0, count). F64 is narrowed to the nearest f32. Returns the
// index of the first finite F64 value beyond the f32 range (narrowing it is
// undefined behaviour and surely a broken weight), or nullopt on success.
inline std::optional<size_t> DecodeLittleEndian(DType dtype,
                                                const unsigned char* bytes,
                                                size_t count, float* out) {
  switch (dtype) {
    case DType::kF32:
      if (count > 0) std::memcpy(out, bytes, count * sizeof(float));
      break;
    case DType::kF64:
      for (size_t i = 0; i < count; ++i) {
        double d;
        std::memcpy(&d, bytes + 8 * i, sizeof d);
        if (std::isfinite(d) &&
            std::fabs(d) > std::numeric_limits<float>::max()) {
          return i;
        }
        out[i] = static_cast<float>(d);
      }
      break;
    case DType::kF16:
      for (size_t i = 0; i < count; ++i) {
        out[i] = HalfToFloat(
            static_cast<uint16_t>(bytes[2 * i] | bytes[2 * i + 1] << 8));
      }
      break;
    case DType::kBF16:
      for (size_t i = 0; i < count; ++i) {
        out[i] = Bf16ToFloat(
            static_cast<uint16_t>(bytes[2 * i] | bytes[2 * i + 1] << 8));
      }
      break;
  }
  return std::nullopt;
}

}  // namespace nnserve::formats

#endif  // NNSERVE_FORMATS_HALF_H_
