// oneDNN primitive construction for one batch size (see batch_plan.h).
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

// Returns the stored copy of `layer`'s weights in layout `want`, creating it
// by a reorder from the plain weights (or the first stored copy) if needed.
memory WeightsInLayout(LayerWeights& layer, const memory::desc& want,
                       const dnnl::engine& engine) {
  for (const memory& m : layer.reordered) {
    if (m.get_desc() == want) return m;
  }
  memory src;
  if (!layer.plain.empty()) {
    // [units, in] row-major is the {in, units} weights matrix in "ba".
    src = memory({{layer.input_size, layer.units}, dt::f32, tag::ba}, engine,
                 layer.plain.data());
  } else {
    src = layer.reordered.front();
  }
  memory dst(want, engine);
  dnnl::stream stream(engine);
  dnnl::reorder(src, dst).execute(stream, src, dst);
  stream.wait();
  layer.reordered.push_back(dst);
  return dst;
}

}  // namespace

std::unique_ptr<BatchPlan> BatchPlan::Build(int64_t rows,
                                            std::vector<LayerWeights>& layers,
                                            const dnnl::engine& engine) {
  std::unique_ptr<BatchPlan> plan(new BatchPlan());
  plan->rows_ = rows;
  plan->engine_ = &engine;
  plan->steps_.reserve(layers.size());
  for (LayerWeights& layer : layers) {
    LayerStep step;
    step.src_md = memory::desc({rows, layer.input_size}, dt::f32, tag::ab);
    step.dst_md = memory::desc({rows, layer.units}, dt::f32, tag::ab);
    const memory::desc weights_any({layer.input_size, layer.units}, dt::f32,
                                   tag::any);
    const memory::desc bias_md =
        layer.bias ? memory::desc({1, layer.units}, dt::f32, tag::ab)
                   : memory::desc();

    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::post_ops ops;
    AppendActivation(layer, ops);
    attr.set_post_ops(ops);

    const dnnl::matmul::primitive_desc pd(
        dnnl::matmul::desc(step.src_md, weights_any, bias_md, step.dst_md),
        attr, engine);
    step.matmul = dnnl::matmul(pd);
    step.weights = WeightsInLayout(layer, pd.weights_desc(), engine);
    step.bias = layer.bias;
    step.scratch_md = pd.scratchpad_desc();
    plan->scratch_bytes_ =
        std::max(plan->scratch_bytes_, step.scratch_md.get_size());

    if (layer.activation == Activation::kSoftmax) {
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
  for (const LayerStep& step : steps_) {
    set->src.emplace_back(step.src_md, *engine_, nullptr);
    set->dst.emplace_back(step.dst_md, *engine_, nullptr);
    set->scratch.push_back(step.scratch_md.get_size() > 0
                               ? memory(step.scratch_md, *engine_, nullptr)
                               : memory());
    set->softmax_scratch.push_back(
        step.softmax && step.softmax_scratch_md.get_size() > 0
            ? memory(step.softmax_scratch_md, *engine_, nullptr)
            : memory());
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
