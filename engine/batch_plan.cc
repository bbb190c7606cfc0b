// oneDNN primitive construction for one batch size and precision (see
// batch_plan.h). Execution is in batch_plan_run.cc.
#include "engine/batch_plan.h"

#include <algorithm>
#include <utility>

namespace nnserve::engine {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

// Adds the layer's activation as an eltwise post-op (none for IDENTITY and
// SOFTMAX; softmax runs as its own primitive).
void AppendActivation(const LayerWeights& layer, dnnl::post_ops& ops) {
  switch (layer.activation) {
    case Activation::kIdentity:
    case Activation::kSoftmax:
      return;
    case Activation::kRelu:
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      return;
    case Activation::kLeakyRelu:
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, layer.alpha,
                         0.0f);
      return;
    case Activation::kElu:
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_elu, layer.alpha, 0.0f);
      return;
    case Activation::kSigmoid:
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_logistic, 0.0f, 0.0f);
      return;
    case Activation::kTanh:
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_tanh, 0.0f, 0.0f);
      return;
    case Activation::kGelu:
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
      return;
  }
}

// The weights every new layout is reordered from: the s8 weights for INT8,
// else the plain f32 weights while they exist, else the first stored copy.
memory SourceWeights(LayerWeights& layer, const dnnl::engine& engine) {
  // [units, in] row-major is the {in, units} weights matrix in "ba".
  const memory::dims dims = {layer.input_size, layer.units};
  if (!layer.quantized.values.empty()) {
    return memory({dims, dt::s8, tag::ba}, engine,
                  layer.quantized.values.data());
  }
  if (!layer.plain.empty()) {
    return memory({dims, dt::f32, tag::ba}, engine, layer.plain.data());
  }
  return layer.reordered.front();
}

// Returns the stored copy of `layer`'s weights in layout `want`, creating it
// by a reorder (which also computes any compensation `want` carries).
memory WeightsInLayout(LayerWeights& layer, const memory::desc& want,
                       const dnnl::engine& engine) {
  for (const memory& m : layer.reordered) {
    if (m.get_desc() == want) return m;
  }
  memory src = SourceWeights(layer, engine);
  memory dst(want, engine);
  dnnl::stream stream(engine);
  dnnl::reorder(src, dst).execute(stream, src, dst);
  stream.wait();
  layer.reordered.push_back(dst);
  return dst;
}

// The matmul of one layer in `precision` for `rows` rows.
dnnl::matmul::primitive_desc MatmulDesc(const LayerWeights& layer,
                                        Precision precision, int64_t rows,
                                        bool last, LayerStep& step,
                                        const dnnl::engine& engine) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops ops;
  dt src = dt::f32, weights = dt::f32, dst = dt::f32;
  bool bias_in_matmul = static_cast<bool>(layer.bias);
  switch (precision) {
    case Precision::kFp32:
      break;
    case Precision::kBf16:
      src = weights = dt::bf16;
      if (!last) dst = dt::bf16;
      break;
    case Precision::kInt8:
      src = dt::u8;
      weights = dt::s8;
      step.quantize_input = true;
      step.zero_point = !layer.input_non_negative;
      // s32 accumulators * weight scale (per output channel, fixed) *
      // activation scale (runtime scalar) + bias, then the activation.
      // The bias is a post-op because oneDNN 2.6 adds a matmul bias before
      // the output scales.
      attr.set_output_scales(1 << 1, layer.quantized.scales);
      ops.append_binary(dnnl::algorithm::binary_mul,
                        memory::desc({1, 1}, dt::f32, tag::ab));
      if (layer.bias) {
        ops.append_binary(dnnl::algorithm::binary_add,
                          memory::desc({1, layer.units}, dt::f32, tag::ab));
      }
      bias_in_matmul = false;
      if (step.zero_point) {
        attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
      }
      break;
  }
  AppendActivation(layer, ops);
  attr.set_post_ops(ops);

  step.src_md = memory::desc({rows, layer.input_size}, src, tag::ab);
  step.dst_md = memory::desc({rows, layer.units}, dst, tag::ab);
  const memory::desc weights_any({layer.input_size, layer.units}, weights,
                                 tag::any);
  const memory::desc bias_md =
      bias_in_matmul ? memory::desc({1, layer.units}, dt::f32, tag::ab)
                     : memory::desc();
  return dnnl::matmul::primitive_desc(
      dnnl::matmul::desc(step.src_md, weights_any, bias_md, step.dst_md), attr,
      engine);
}

}  // namespace

std::unique_ptr<BatchPlan> BatchPlan::Build(int64_t rows, Precision precision,
                                            std::vector<LayerWeights>& layers,
                                            const dnnl::engine& engine) {
  std::unique_ptr<BatchPlan> plan(new BatchPlan());
  plan->rows_ = rows;
  plan->precision_ = precision;
  plan->engine_ = &engine;
  plan->steps_.reserve(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerWeights& layer = layers[i];
    const bool last = i + 1 == layers.size();
    LayerStep step;
    const dnnl::matmul::primitive_desc pd =
        MatmulDesc(layer, precision, rows, last, step, engine);
    step.matmul = dnnl::matmul(pd);
    step.kernel = pd.impl_info_str();
    step.weights = WeightsInLayout(layer, pd.weights_desc(), engine);
    step.bias = layer.bias;
    step.scratch_md = pd.scratchpad_desc();
    plan->scratch_bytes_ =
        std::max(plan->scratch_bytes_, step.scratch_md.get_size());
    if (!last) {
      plan->activation_bytes_ =
          std::max(plan->activation_bytes_, step.dst_md.get_size());
    }
    if (step.quantize_input) {
      plan->quantized_bytes_ = std::max(
          plan->quantized_bytes_, static_cast<size_t>(rows * layer.input_size));
    }

    if (layer.activation == Activation::kSoftmax) {
      // In place on the layer's output: f32 for the last layer, bf16 for a
      // hidden BF16 layer (computed in f32 inside oneDNN).
      dnnl::primitive_attr softmax_attr;
      softmax_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const dnnl::softmax_forward::primitive_desc softmax_pd(
          dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference,
                                      step.dst_md, 1),
          softmax_attr, engine);
      step.softmax = dnnl::softmax_forward(softmax_pd);
      step.softmax_scratch_md = softmax_pd.scratchpad_desc();
      plan->scratch_bytes_ =
          std::max(plan->scratch_bytes_, step.softmax_scratch_md.get_size());
    }
    plan->steps_.push_back(std::move(step));
  }

  if (precision == Precision::kBf16) {
    const int64_t in = layers.front().input_size;
    plan->entry_src_md_ = memory::desc({rows, in}, dt::f32, tag::ab);
    plan->entry_dst_md_ = memory::desc({rows, in}, dt::bf16, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::reorder::primitive_desc pd(engine, plan->entry_src_md_, engine,
                                           plan->entry_dst_md_, attr);
    plan->entry_ = dnnl::reorder(pd);
    plan->entry_scratch_md_ = pd.scratchpad_desc();
    plan->scratch_bytes_ =
        std::max(plan->scratch_bytes_, plan->entry_scratch_md_.get_size());
    plan->activation_bytes_ =
        std::max(plan->activation_bytes_, plan->entry_dst_md_.get_size());
  }
  return plan;
}

MemorySet* BatchPlan::Acquire() const {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!free_.empty()) {
      MemorySet* set = free_.back();
      free_.pop_back();
      return set;
    }
  }
  // Slow path: a new concurrent caller. Handles start null and are set per
  // call; scratch memories exist only for primitives that need scratch.
  auto set = std::make_unique<MemorySet>();
  auto optional_memory = [&](const memory::desc& md) {
    return md.get_size() > 0 ? memory(md, *engine_, nullptr) : memory();
  };
  set->scale_values.assign(steps_.size(), 1.0f);
  set->zero_point_values.assign(steps_.size(), 0);
  for (size_t i = 0; i < steps_.size(); ++i) {
    const LayerStep& step = steps_[i];
    set->src.emplace_back(step.src_md, *engine_, nullptr);
    set->dst.emplace_back(step.dst_md, *engine_, nullptr);
    set->scratch.push_back(optional_memory(step.scratch_md));
    set->softmax_scratch.push_back(
        step.softmax ? optional_memory(step.softmax_scratch_md) : memory());
    set->activation_scale.push_back(
        step.quantize_input ? memory({{1, 1}, dt::f32, tag::ab}, *engine_,
                                     &set->scale_values[i])
                            : memory());
    set->zero_point.push_back(step.zero_point
                                  ? memory({{1}, dt::s32, tag::a}, *engine_,
                                           &set->zero_point_values[i])
                                  : memory());
  }
  if (entry_) {
    set->entry_src = memory(entry_src_md_, *engine_, nullptr);
    set->entry_dst = memory(entry_dst_md_, *engine_, nullptr);
    set->entry_scratch = optional_memory(entry_scratch_md_);
  }
  MemorySet* raw = set.get();
  std::lock_guard<std::mutex> lock(pool_mu_);
  all_.push_back(std::move(set));
  free_.reserve(all_.size());
  return raw;
}

void BatchPlan::Release(MemorySet* set) const {
  std::lock_guard<std::mutex> lock(pool_mu_);
  free_.push_back(set);  // Capacity reserved in Acquire: no allocation.
}

}  // namespace nnserve::engine
