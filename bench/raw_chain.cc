#include "bench/raw_chain.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
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
  };

  dnnl::engine cpu;
  dnnl::stream stream;
  std::vector<Layer> layers;
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
    const engine::ModelSpec& spec, int64_t rows, int threads) {
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
  try {
    state->cpu = dnnl::engine(dnnl::engine::kind::cpu, 0);
    state->stream = dnnl::stream(state->cpu);
    memory previous_dst;
    for (size_t i = 0; i < spec.layers.size(); ++i) {
      const engine::LayerSpec& layer = spec.layers[i];
      const int64_t in = layer.input_size;
      const int64_t out = layer.units;
      if (static_cast<int64_t>(layer.weight.size()) != in * out ||
          (!layer.bias.empty() &&
           static_cast<int64_t>(layer.bias.size()) != out)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer '", layer.name, "': weight has ", layer.weight.size(),
            " values, bias ", layer.bias.size(), "; expected ", in * out,
            " and ", out, " (or 0)"));
      }
      const memory::desc src_md({rows, in}, dt::f32, tag::ab);
      const memory::desc any_weights_md({in, out}, dt::f32, tag::any);
      const memory::desc bias_md({1, out}, dt::f32, tag::ab);
      const memory::desc dst_md({rows, out}, dt::f32, tag::ab);

      dnnl::primitive_attr attr;
      if (auto eltwise = EltwiseFor(layer.activation, layer.alpha)) {
        dnnl::post_ops ops;
        ops.append_eltwise(1.0f, eltwise->algorithm, eltwise->alpha, 0.0f);
        attr.set_post_ops(ops);
      }
      const bool has_bias = !layer.bias.empty();
      const dnnl::matmul::desc desc =
          has_bias ? dnnl::matmul::desc(src_md, any_weights_md, bias_md, dst_md)
                   : dnnl::matmul::desc(src_md, any_weights_md, dst_md);
      const dnnl::matmul::primitive_desc pd(desc, attr, state->cpu);

      State::Layer built;
      built.matmul = dnnl::matmul(pd);
      // Spec weights are [out, in] row-major, i.e. the {in, out} matrix in
      // format "ba". Reorder once into whatever the primitive prefers.
      std::vector<float> weights = FlushedSubnormals(layer.weight);
      memory user_weights(memory::desc({in, out}, dt::f32, tag::ba), state->cpu,
                          weights.data());
      built.weights = memory(pd.weights_desc(), state->cpu);
      dnnl::reorder(user_weights, built.weights)
          .execute(state->stream, user_weights, built.weights);
      state->stream.wait();  // user_weights only lives in this iteration.
      if (has_bias) {
        built.bias = memory(bias_md, state->cpu);
        const std::vector<float> bias = FlushedSubnormals(layer.bias);
        std::copy(bias.begin(), bias.end(),
                  static_cast<float*>(built.bias.get_data_handle()));
      }
      built.src =
          i == 0 ? memory(src_md, state->cpu, DNNL_MEMORY_NONE) : previous_dst;
      const bool last = i + 1 == spec.layers.size();
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
      if (has_bias) built.matmul_args.emplace(DNNL_ARG_BIAS, built.bias);
      built.softmax_args = {{DNNL_ARG_SRC, built.dst},
                            {DNNL_ARG_DST, built.dst}};
      previous_dst = built.dst;
      state->layers.push_back(std::move(built));
    }
    state->stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat(
        "oneDNN failed building the raw chain for '", spec.name, "' at ", rows,
        " rows: ", e.what(), " (status ", static_cast<int>(e.status), ")"));
  }
  return std::unique_ptr<RawChain>(new RawChain(
      std::move(state), rows, threads, spec.input_size, spec.output_size()));
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
    state_->layers.front().src.set_data_handle(
        const_cast<float*>(input.data()));
    state_->layers.back().dst.set_data_handle(output.data());
    for (const State::Layer& layer : state_->layers) {
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
