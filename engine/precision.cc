// Precision names and CPU support detection (see precision.h).
#include "engine/precision.h"

#include <cctype>

#include "oneapi/dnnl/dnnl.hpp"

namespace nnserve::engine {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

std::string IsaName(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::all:
      return "all";
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx512_mic:
      return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
  }
  return "unknown (" + std::to_string(static_cast<int>(isa)) + ")";
}

// The ISA values are bit sets: an ISA includes `want` when it has all of
// want's bits (avx512_core_amx includes avx512_core_bf16, and so on).
bool Includes(dnnl::cpu_isa isa, dnnl::cpu_isa want) {
  const unsigned have = static_cast<unsigned>(isa);
  const unsigned need = static_cast<unsigned>(want);
  return (have & need) == need;
}

// The implementation oneDNN picks for a small matmul in the layout and
// attributes the engine uses for `precision` (see batch_plan.cc); empty if
// it cannot create one.
std::string MatmulImplementation(Precision precision) {
  try {
    const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    const int64_t m = 16, k = 64, n = 64;
    const bool int8 = precision == Precision::kInt8;
    const dt src = int8 ? dt::u8 : dt::bf16;
    const dt wei = int8 ? dt::s8 : dt::bf16;
    dnnl::primitive_attr attr;
    if (int8) {
      attr.set_output_scales(1 << 1, std::vector<float>(n, 1.0f));
      attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
      dnnl::post_ops ops;
      ops.append_binary(dnnl::algorithm::binary_mul,
                        dnnl::memory::desc({1, 1}, dt::f32, tag::ab));
      attr.set_post_ops(ops);
    }
    const dnnl::matmul::primitive_desc pd(
        dnnl::matmul::desc(dnnl::memory::desc({m, k}, src, tag::ab),
                           dnnl::memory::desc({k, n}, wei, tag::any),
                           dnnl::memory::desc({m, n}, dt::f32, tag::ab)),
        attr, engine);
    return pd.impl_info_str();
  } catch (const dnnl::error&) {
    return "";
  }
}

PrecisionSupport Detect() {
  PrecisionSupport support;
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  support.isa = IsaName(isa);
  // brgemm ("brg:") kernels are oneDNN 2.6's native reduced-precision
  // matmuls; anything else (gemm:jit, ref) emulates the precision.
  support.bf16 = Includes(isa, dnnl::cpu_isa::avx512_core_bf16) &&
                 MatmulImplementation(Precision::kBf16).starts_with("brg:");
  support.int8 = Includes(isa, dnnl::cpu_isa::avx512_core_vnni) &&
                 MatmulImplementation(Precision::kInt8).starts_with("brg:");
  return support;
}

}  // namespace

std::string_view PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return "FP32";
    case Precision::kBf16:
      return "BF16";
    case Precision::kInt8:
      return "INT8";
  }
  return "UNKNOWN";
}

v1::Precision ToConfigPrecision(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return v1::FP32;
    case Precision::kBf16:
      return v1::BF16;
    case Precision::kInt8:
      return v1::INT8;
  }
  return v1::FP32;
}

std::optional<Precision> FromConfigPrecision(int value) {
  switch (value) {
    case v1::FP32:
      return Precision::kFp32;
    case v1::BF16:
      return Precision::kBf16;
    case v1::INT8:
      return Precision::kInt8;
    default:
      return std::nullopt;
  }
}

std::optional<Precision> ParsePrecision(std::string_view text) {
  std::string upper(text);
  for (char& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  for (Precision p : {Precision::kFp32, Precision::kBf16, Precision::kInt8}) {
    if (upper == PrecisionName(p)) return p;
  }
  return std::nullopt;
}

bool PrecisionSupport::Supports(Precision precision) const {
  switch (precision) {
    case Precision::kFp32:
      return true;
    case Precision::kBf16:
      return bf16;
    case Precision::kInt8:
      return int8;
  }
  return false;
}

const PrecisionSupport& DetectedPrecisionSupport() {
  static const PrecisionSupport* support = new PrecisionSupport(Detect());
  return *support;
}

}  // namespace nnserve::engine
