// FillModelInfo (server/frontend/inference_service.h) carries a model's
// precision report into ModelInfoResponse: requested/effective precision,
// fallback reason, oneDNN ISA, probe batch and each layer's kernel and
// deviation from FP32.
#include <vector>

#include "engine/model.h"
#include "gtest/gtest.h"
#include "server/frontend/inference_service.h"

namespace nnserve::server {
namespace {

engine::ModelInfo TwoLayerInfo() {
  engine::ModelInfo info;
  info.name = "m";
  info.version = 3;
  for (const char* name : {"hidden", "out"}) {
    engine::LayerInfo layer;
    layer.name = name;
    info.layers.push_back(layer);
  }
  return info;
}

TEST(ModelInfoPrecisionTest, ReducedPrecisionReportIsFilled) {
  engine::ModelInfo info = TwoLayerInfo();
  engine::PrecisionReport& p = info.precision;
  p.requested = p.effective = engine::Precision::kInt8;
  p.isa = "avx512_core_amx";
  p.probe_source = "models/m/sample_input.npy";
  p.probe_rows = 8;
  p.max_precision_deviation = 0.05f;
  p.layers = {{"hidden", "brg:avx512_core_amx_int8", 0.25, 0.004},
              {"out", "brg:avx512_core_vnni", 0.125, 0.002}};
  v1::ModelInfoResponse response;
  FillModelInfo(info, {3}, &response);
  EXPECT_EQ(response.requested_precision(), v1::INT8);
  EXPECT_EQ(response.effective_precision(), v1::INT8);
  EXPECT_EQ(response.precision_fallback_reason(), "");
  EXPECT_EQ(response.cpu_isa(), "avx512_core_amx");
  EXPECT_EQ(response.precision_probe_source(), "models/m/sample_input.npy");
  EXPECT_EQ(response.precision_probe_rows(), 8);
  EXPECT_FLOAT_EQ(response.max_precision_deviation(), 0.05f);
  ASSERT_EQ(response.layers_size(), 2);
  EXPECT_EQ(response.layers(0).kernel(), "brg:avx512_core_amx_int8");
  EXPECT_EQ(response.layers(0).precision_max_abs_deviation(), 0.25);
  EXPECT_EQ(response.layers(0).precision_relative_l2_deviation(), 0.004);
  EXPECT_EQ(response.layers(1).kernel(), "brg:avx512_core_vnni");
  EXPECT_EQ(response.layers(1).precision_relative_l2_deviation(), 0.002);
}

TEST(ModelInfoPrecisionTest, FallbackSaysWhy) {
  engine::ModelInfo info = TwoLayerInfo();
  engine::PrecisionReport& p = info.precision;
  p.requested = engine::Precision::kBf16;
  p.effective = engine::Precision::kFp32;
  p.fallback_reason = "BF16 requested, but ...; running FP32";
  p.layers = {{"hidden", "brg:avx512_core", 0, 0},
              {"out", "brg:avx512_core", 0, 0}};
  v1::ModelInfoResponse response;
  FillModelInfo(info, {3}, &response);
  EXPECT_EQ(response.requested_precision(), v1::BF16);
  EXPECT_EQ(response.effective_precision(), v1::FP32);
  EXPECT_EQ(response.precision_fallback_reason(),
            "BF16 requested, but ...; running FP32");
  EXPECT_EQ(response.precision_probe_rows(), 0);
  EXPECT_EQ(response.layers(1).kernel(), "brg:avx512_core");
}

}  // namespace
}  // namespace nnserve::server
