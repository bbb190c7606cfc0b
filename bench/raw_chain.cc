#include "bench/raw_chain.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace nnserve::bench {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct Eltwise {
  dnnl::algorithm algorithm;
  float alpha = 0.0f;
};

// The eltwise post-op for an activation; nullopt for IDENTITY and SOFTMAX
// (softmax runs as its own primitive).
std::optional<Eltwise> EltwiseFor(engine::Activation activation, float alpha) {
  switch (activation) {
    case engine::Activation::kIdentity:
    case engine::Activation::kSoftmax:
      return std::nullopt;
    case engine::Activation::kRelu:
      return Eltwise{dnnl::algorithm::eltwise_relu, 0.0f};
    case engine::Activation::kLeakyRelu:
      return Eltwise{dnnl::algorithm::eltwise_relu, alpha};
    case engine::Activation::kElu:
      return Eltwise{dnnl::algorithm::eltwise_elu, alpha};
    case engine::Activation::kSigmoid:
      return Eltwise{dnnl::algorithm::eltwise_logistic, 0.0f};
    case engine::Activation::kTanh:
      return Eltwise{dnnl::algorithm::eltwise_tanh, 0.0f};
    case engine::Activation::kGelu:
      return Eltwise{dnnl::algorithm::eltwise_gelu_erf, 0.0f};
  }
  return std::nullopt;
}

// A copy of `values` with subnormals (0 < |x| < 2^-126) replaced by zero of
// the same sign, as the engine does at load: on x86 every FMA touching a
// subnormal takes a microcode assist (models/digits has 27 such weights and
// ran 4x slower with them). Both sides then compute the same thing.
std::vector<float> FlushedSubnormals(const std::vector<float>& values) {
  std::vector<float> flushed = values;
  for (float& v : flushed) {
    if (std::fpclassify(v) == FP_SUBNORMAL) v = std::copysign(0.0f, v);
  }
  return flushed;
}

// Symmetric per-output-channel s8 weights as the engine makes them
// (engine/quantize.h): scale = max|w| / 127 per unit, round to nearest.
// `weights` is [out, in] row-major; returns the scales.
std::vector<float> QuantizeWeights(const std::vector<float>& weights,
                                   int64_t out, int64_t in,
                                   std::vector<int8_t>& quantized) {
  std::vector<float> scales(static_cast<size_t>(out));
  quantized.resize(weights.size());
  for (int64_t u = 0; u < out; ++u) {
    float max_abs = 0;
    for (int64_t k = 0; k < in; ++k) {
      max_abs = std::max(max_abs, std::abs(weights[u * in + k]));
    }
    scales[u] = max_abs > 0 ? std::max(max_abs / 127.0f,
                                       std::numeric_limits<float>::min())
                            : 1.0f;
    for (int64_t k = 0; k < in; ++k) {
      quantized[u * in + k] = static_cast<int8_t>(std::clamp(
          std::nearbyint(weights[u * in + k] / scales[u]), -127.0f, 127.0f));
    }
  }
  return scales;
}

bool NonNegative(engine::Activation activation) {
  return activation == engine::Activation::kRelu ||
         activation == engine::Activation::kSigmoid ||
         activation == engine::Activation::kSoftmax;
}

}  // namespace

struct RawChain::State {
  struct Layer {
    dnnl::matmul matmul;
    memory src;      // Previous layer's dst, or the caller's input.
    memory weights;  // Reordered into the primitive's preferred layout.
    memory bias;     // Empty when the layer has no bias.
    memory dst;      // Owned intermediate, or the caller's output.
    std::optional<dnnl::softmax_forward> softmax;
    // Built once; memory objects are handles, so data handle changes on
    // src/dst are seen through these maps.
    std::unordered_map<int, memory> matmul_args;
    std::unordered_map<int, memory> softmax_args;

    // INT8: the layer's f32 input (`src` is then its u8 copy), its range
    // (two reductions), the quantizing reorder and the per-call values.
    bool quantize = false;
    bool zero_point = false;
    memory f32_src, range_min, range_max;
    std::optional<dnnl::reduction> reduce_min, reduce_max;
    std::optional<dnnl::reorder> quantizer;
    memory reorder_scale, reorder_zero_point;  // {1} f32 / s32
    memory activation_scale, matmul_zero_point;
    std::unordered_map<int, memory> quantize_args;
  };

  dnnl::engine cpu;
  dnnl::stream stream;
  std::optional<dnnl::reorder> entry;  // BF16: f32 input -> bf16.
  memory entry_src, entry_dst;
  std::vector<Layer> layers;

  void Quantize(const Layer& layer);
};

RawChain::RawChain(std::unique_ptr<State> state, int64_t rows, int threads,
                   int64_t input_size, int64_t output_size)
    : state_(std::move(state)),
      rows_(rows),
      threads_(threads),
      input_size_(input_size),
      output_size_(output_size) {}

RawChain::~RawChain() = default;

absl::StatusOr<std::unique_ptr<RawChain>> RawChain::Create(
    const engine::ModelSpec& spec, int64_t rows, int threads,
    engine::Precision precision) {
  using engine::Precision;
  if (spec.layers.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", spec.name, "' has no layers; expected >= 1"));
  }
  if (rows < 1 || threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("rows and threads must be >= 1; got rows=", rows,
                     " threads=", threads));
  }
  omp_set_num_threads(threads);
  auto state = std::make_unique<State>();
  const bool bf16 = precision == Precision::kBf16;
  const bool int8 = precision == Precision::kInt8;
  try {
    state->cpu = dnnl::engine(dnnl::engine::kind::cpu, 0);
    state->stream = dnnl::stream(state->cpu);
    memory previous_dst;
    if (bf16) {
      const int64_t in = spec.input_size;
      state->entry_src =
          memory({{rows, in}, dt::f32, tag::ab}, state->cpu, DNNL_MEMORY_NONE);
      state->entry_dst = memory({{rows, in}, dt::bf16, tag::ab}, state->cpu);
      state->entry = dnnl::reorder(state->entry_src, state->entry_dst);
      previous_dst = state->entry_dst;
    }
    for (size_t i = 0; i < spec.layers.size(); ++i) {
      const engine::LayerSpec& layer = spec.layers[i];
      const int64_t in = layer.input_size;
      const int64_t out = layer.units;
      const bool last = i + 1 == spec.layers.size();
      if (static_cast<int64_t>(layer.weight.size()) != in * out ||
          (!layer.bias.empty() &&
           static_cast<int64_t>(layer.bias.size()) != out)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer '", layer.name, "': weight has ", layer.weight.size(),
            " values, bias ", layer.bias.size(), "; expected ", in * out,
            " and ", out, " (or 0)"));
      }
      const dt src_type = bf16 ? dt::bf16 : int8 ? dt::u8 : dt::f32;
      const dt weight_type = bf16 ? dt::bf16 : int8 ? dt::s8 : dt::f32;
      const dt dst_type = bf16 && !last ? dt::bf16 : dt::f32;
      const memory::desc src_md({rows, in}, src_type, tag::ab);
      const memory::desc any_weights_md({in, out}, weight_type, tag::any);
      const memory::desc bias_md({1, out}, dt::f32, tag::ab);
      const memory::desc dst_md({rows, out}, dst_type, tag::ab);
      const bool has_bias = !layer.bias.empty();

      State::Layer built;
      std::vector<float> weights = FlushedSubnormals(layer.weight);
      std::vector<int8_t> quantized;
      dnnl::primitive_attr attr;
      dnnl::post_ops ops;
      if (int8) {
        built.quantize = true;
        built.zero_point =
            i == 0 || !NonNegative(spec.layers[i - 1].activation);
        attr.set_output_scales(1 << 1,
                               QuantizeWeights(weights, out, in, quantized));
        ops.append_binary(dnnl::algorithm::binary_mul,
                          memory::desc({1, 1}, dt::f32, tag::ab));
        if (has_bias) ops.append_binary(dnnl::algorithm::binary_add, bias_md);
        if (built.zero_point) {
          attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
        }
      }
      if (auto eltwise = EltwiseFor(layer.activation, layer.alpha)) {
        ops.append_eltwise(1.0f, eltwise->algorithm, eltwise->alpha, 0.0f);
      }
      attr.set_post_ops(ops);
      const dnnl::matmul::desc desc =
          has_bias && !int8
              ? dnnl::matmul::desc(src_md, any_weights_md, bias_md, dst_md)
              : dnnl::matmul::desc(src_md, any_weights_md, dst_md);
      const dnnl::matmul::primitive_desc pd(desc, attr, state->cpu);
      built.matmul = dnnl::matmul(pd);
      // Spec weights are [out, in] row-major, i.e. the {in, out} matrix in
      // format "ba". Reorder once into whatever the primitive prefers.
      memory user_weights =
          int8 ? memory(memory::desc({in, out}, dt::s8, tag::ba), state->cpu,
                        quantized.data())
               : memory(memory::desc({in, out}, dt::f32, tag::ba), state->cpu,
                        weights.data());
      built.weights = memory(pd.weights_desc(), state->cpu);
      dnnl::reorder(user_weights, built.weights)
          .execute(state->stream, user_weights, built.weights);
      state->stream.wait();  // The user weights only live in this iteration.
      if (has_bias) {
        built.bias = memory(bias_md, state->cpu);
        const std::vector<float> bias = FlushedSubnormals(layer.bias);
        std::copy(bias.begin(), bias.end(),
                  static_cast<float*>(built.bias.get_data_handle()));
      }
      // The layer's input as the previous layer (or the caller) gives it.
      const memory::desc given_md({rows, in}, int8 ? dt::f32 : src_type,
                                  tag::ab);
      memory given = previous_dst
                         ? previous_dst
                         : memory(given_md, state->cpu, DNNL_MEMORY_NONE);
      if (int8) {
        built.f32_src = given;
        built.src = memory(src_md, state->cpu);
        const memory::desc one({1, 1}, dt::f32, tag::ab);
        built.range_min = memory(one, state->cpu);
        built.range_max = memory(one, state->cpu);
        built.reduce_min = dnnl::reduction(dnnl::reduction::primitive_desc(
            dnnl::reduction::desc(dnnl::algorithm::reduction_min, given_md, one,
                                  0.0f, 0.0f),
            state->cpu));
        built.reduce_max = dnnl::reduction(dnnl::reduction::primitive_desc(
            dnnl::reduction::desc(dnnl::algorithm::reduction_max, given_md, one,
                                  0.0f, 0.0f),
            state->cpu));
        dnnl::primitive_attr quantize_attr;
        quantize_attr.set_output_scales(0, {DNNL_RUNTIME_F32_VAL});
        if (built.zero_point) {
          quantize_attr.set_zero_points(DNNL_ARG_DST, 0,
                                        {DNNL_RUNTIME_S32_VAL});
        }
        built.quantizer = dnnl::reorder(dnnl::reorder::primitive_desc(
            state->cpu, given_md, state->cpu, src_md, quantize_attr));
        built.reorder_scale = memory({{1}, dt::f32, tag::a}, state->cpu);
        built.reorder_zero_point = memory({{1}, dt::s32, tag::a}, state->cpu);
        built.activation_scale = memory(one, state->cpu);
        built.matmul_zero_point = memory({{1}, dt::s32, tag::a}, state->cpu);
        built.quantize_args = {
            {DNNL_ARG_FROM, built.f32_src},
            {DNNL_ARG_TO, built.src},
            {DNNL_ARG_ATTR_OUTPUT_SCALES, built.reorder_scale}};
        if (built.zero_point) {
          built.quantize_args.emplace(DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST,
                                      built.reorder_zero_point);
        }
      } else {
        built.src = given;
      }
      built.dst = last ? memory(dst_md, state->cpu, DNNL_MEMORY_NONE)
                       : memory(dst_md, state->cpu);
      if (layer.activation == engine::Activation::kSoftmax) {
        const dnnl::softmax_forward::desc softmax_desc(
            dnnl::prop_kind::forward_inference, dst_md, 1);
        built.softmax = dnnl::softmax_forward(
            dnnl::softmax_forward::primitive_desc(softmax_desc, state->cpu));
      }
      built.matmul_args = {{DNNL_ARG_SRC, built.src},
                           {DNNL_ARG_WEIGHTS, built.weights},
                           {DNNL_ARG_DST, built.dst}};
      if (int8) {
        built.matmul_args.emplace(
            DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
            built.activation_scale);
        if (has_bias) {
          built.matmul_args.emplace(
              DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, built.bias);
        }
        if (built.zero_point) {
          built.matmul_args.emplace(DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC,
                                    built.matmul_zero_point);
        }
      } else if (has_bias) {
        built.matmul_args.emplace(DNNL_ARG_BIAS, built.bias);
      }
      built.softmax_args = {{DNNL_ARG_SRC, built.dst},
                            {DNNL_ARG_DST, built.dst}};
      previous_dst = built.dst;
      state->layers.push_back(std::move(built));
    }
    state->stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat(
        "oneDNN failed building the raw ",
        std::string(engine::PrecisionName(precision)), " chain for '",
        spec.name, "' at ", rows, " rows: ", e.what(), " (status ",
        static_cast<int>(e.status), ")"));
  }
  return std::unique_ptr<RawChain>(new RawChain(
      std::move(state), rows, threads, spec.input_size, spec.output_size()));
}

// Dynamic quantization of one layer's input: its range by two reductions,
// then scale and zero point as the engine chooses them (quantize.h), then
// the quantizing reorder. The matmul gets the same scale and zero point.
void RawChain::State::Quantize(const Layer& layer) {
  layer.reduce_min->execute(
      stream, {{DNNL_ARG_SRC, layer.f32_src}, {DNNL_ARG_DST, layer.range_min}});
  layer.reduce_max->execute(
      stream, {{DNNL_ARG_SRC, layer.f32_src}, {DNNL_ARG_DST, layer.range_max}});
  stream.wait();
  const float lo =
      layer.zero_point
          ? std::min(*static_cast<float*>(layer.range_min.get_data_handle()),
                     0.0f)
          : 0.0f;
  const float hi =
      std::max(*static_cast<float*>(layer.range_max.get_data_handle()), 0.0f);
  float scale = 1.0f;
  int32_t zero_point = 0;
  if (hi > lo) {
    scale = std::max((hi - lo) / 255.0f, std::numeric_limits<float>::min());
    if (layer.zero_point) {
      zero_point = static_cast<int32_t>(
          std::clamp(std::nearbyint(-lo / scale), 0.0f, 255.0f));
    }
  }
  *static_cast<float*>(layer.reorder_scale.get_data_handle()) = 1.0f / scale;
  *static_cast<int32_t*>(layer.reorder_zero_point.get_data_handle()) =
      zero_point;
  *static_cast<float*>(layer.activation_scale.get_data_handle()) = scale;
  *static_cast<int32_t*>(layer.matmul_zero_point.get_data_handle()) =
      zero_point;
  layer.quantizer->execute(stream, layer.quantize_args);
}

absl::Status RawChain::Run(std::span<const float> input,
                           std::span<float> output) {
  if (static_cast<int64_t>(input.size()) != rows_ * input_size_ ||
      static_cast<int64_t>(output.size()) != rows_ * output_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw chain run: input has ", input.size(),
                     " values and output ", output.size(), "; expected ",
                     rows_ * input_size_, " and ", rows_ * output_size_));
  }
  omp_set_num_threads(threads_);
  try {
    void* in = const_cast<float*>(input.data());
    if (state_->entry) {
      state_->entry_src.set_data_handle(in);
      state_->entry->execute(state_->stream, state_->entry_src,
                             state_->entry_dst);
    } else if (state_->layers.front().quantize) {
      state_->layers.front().f32_src.set_data_handle(in);
    } else {
      state_->layers.front().src.set_data_handle(in);
    }
    state_->layers.back().dst.set_data_handle(output.data());
    for (const State::Layer& layer : state_->layers) {
      if (layer.quantize) state_->Quantize(layer);
      layer.matmul.execute(state_->stream, layer.matmul_args);
      if (layer.softmax) {
        layer.softmax->execute(state_->stream, layer.softmax_args);
      }
    }
    state_->stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(
        absl::StrCat("oneDNN failed running the raw chain: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace nnserve::bench
