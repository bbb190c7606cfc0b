// BatchPlan::Run: one chunk of a forward pass (see batch_plan.h).
//
// Hot path (steady state, no heap allocation in this file; oneDNN 2.6's
// dnnl_primitive_execute still builds its own argument map inside, ~7 small
// allocations per primitive run): a mutex-guarded pop of a MemorySet, then
// per layer set_data_handle + dnnl_primitive_execute (C API,
// stack-allocated argument array) on the thread's stream, with activations
// in the workspace's buffers. INT8 adds, per layer, one pass over the
// layer's input for its range and one to quantize it (quantize.h); BF16 one
// conversion of the model input.
#include <array>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/str_util.h"
#include "engine/batch_plan.h"
#include "oneapi/dnnl/dnnl_debug.h"

namespace nnserve::engine {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status ExecuteError(dnnl_status_t status, std::string_view what,
                          std::string_view layer) {
  return absl::InternalError(
      absl::StrCat("oneDNN ", Sv(what), " of layer '", Sv(layer),
                   "' failed: ", dnnl_status2str(status)));
}

// Copies a layer's output into the capture as f32 (nothing when `into` is
// empty: that layer was not asked for).
void CaptureOutput(const void* data, const dnnl::memory::desc& md,
                   int64_t first_row, std::span<float> into) {
  if (into.empty()) return;
  const dnnl::memory::dims dims = md.dims();
  const size_t count = static_cast<size_t>(dims[0] * dims[1]);
  float* to = into.data() + first_row * dims[1];
  if (md.data_type() == dnnl::memory::data_type::bf16) {
    Bf16ToFloat({static_cast<const uint16_t*>(data), count}, to);
  } else {
    std::memcpy(to, data, count * sizeof(float));
  }
}

}  // namespace

absl::Status BatchPlan::Run(Workspace& ws, const float* input, float* output,
                            std::span<double> layer_seconds,
                            std::span<const std::string> layer_names,
                            LayerCapture* capture) const {
  void* buffers[2] = {ws.activations[0].Reserve(activation_bytes_),
                      ws.activations[1].Reserve(activation_bytes_)};
  uint8_t* quantized =
      static_cast<uint8_t*>(ws.quantized.Reserve(quantized_bytes_));
  void* scratch = ws.scratch.Reserve(scratch_bytes_);

  MemorySet* set = Acquire();
  struct Releaser {
    const BatchPlan* plan;
    MemorySet* set;
    ~Releaser() { plan->Release(set); }
  } releaser{this, set};

  const bool timed = !layer_seconds.empty();
  const void* src = input;
  std::array<dnnl_exec_arg_t, 8> args;
  int n = 0;
  Clock::time_point start = timed ? Clock::now() : Clock::time_point();

  if (entry_) {
    // BF16: the f32 input becomes bf16 in buffers[1]; layer 0 writes
    // buffers[0].
    set->entry_src.set_data_handle(const_cast<float*>(input));
    set->entry_dst.set_data_handle(buffers[1]);
    args[n++] = {DNNL_ARG_FROM, set->entry_src.get()};
    args[n++] = {DNNL_ARG_TO, set->entry_dst.get()};
    if (set->entry_scratch) {
      set->entry_scratch.set_data_handle(scratch);
      args[n++] = {DNNL_ARG_SCRATCHPAD, set->entry_scratch.get()};
    }
    const dnnl_status_t status =
        dnnl_primitive_execute(entry_.get(), ws.stream.get(), n, args.data());
    if (status != dnnl_success) {
      return ExecuteError(status, "input conversion", layer_names.front());
    }
    src = buffers[1];
  }

  for (size_t i = 0; i < steps_.size(); ++i) {
    const LayerStep& step = steps_[i];
    if (timed && i > 0) start = Clock::now();
    void* dst = i + 1 == steps_.size() ? output : buffers[i % 2];
    n = 0;
    if (step.quantize_input) {
      // The previous primitive wrote `src`: wait before reading it here.
      if (i > 0) dnnl_stream_wait(ws.stream.get());
      const std::span<const float> values(
          static_cast<const float*>(src),
          static_cast<size_t>(step.src_md.dims()[0] * step.src_md.dims()[1]));
      const U8Quantization q =
          ChooseU8Quantization(ValueRange(values), step.zero_point);
      QuantizeU8(values, q, quantized);
      set->scale_values[i] = q.scale;
      set->zero_point_values[i] = q.zero_point;
      src = quantized;
      args[n++] = {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                   set->activation_scale[i].get()};
      if (step.bias) {
        args[n++] = {DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1,
                     step.bias.get()};
      }
      if (step.zero_point) {
        args[n++] = {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC,
                     set->zero_point[i].get()};
      }
    } else if (step.bias) {
      args[n++] = {DNNL_ARG_BIAS, step.bias.get()};
    }
    set->src[i].set_data_handle(const_cast<void*>(src));
    set->dst[i].set_data_handle(dst);
    args[n++] = {DNNL_ARG_SRC, set->src[i].get()};
    args[n++] = {DNNL_ARG_WEIGHTS, step.weights.get()};
    args[n++] = {DNNL_ARG_DST, set->dst[i].get()};
    if (set->scratch[i]) {
      set->scratch[i].set_data_handle(scratch);
      args[n++] = {DNNL_ARG_SCRATCHPAD, set->scratch[i].get()};
    }
    dnnl_status_t status = dnnl_primitive_execute(
        step.matmul.get(), ws.stream.get(), n, args.data());
    if (status != dnnl_success) {
      return ExecuteError(status, "matmul", layer_names[i]);
    }
    if (step.softmax) {
      n = 0;
      args[n++] = {DNNL_ARG_SRC, set->dst[i].get()};
      args[n++] = {DNNL_ARG_DST, set->dst[i].get()};
      if (set->softmax_scratch[i]) {
        set->softmax_scratch[i].set_data_handle(scratch);
        args[n++] = {DNNL_ARG_SCRATCHPAD, set->softmax_scratch[i].get()};
      }
      status = dnnl_primitive_execute(step.softmax.get(), ws.stream.get(), n,
                                      args.data());
      if (status != dnnl_success) {
        return ExecuteError(status, "softmax", layer_names[i]);
      }
    }
    if (timed || capture != nullptr) dnnl_stream_wait(ws.stream.get());
    if (timed) {
      layer_seconds[i] +=
          std::chrono::duration<double>(Clock::now() - start).count();
    }
    if (capture != nullptr) {
      CaptureOutput(dst, step.dst_md, capture->first_row, capture->outputs[i]);
    }
    src = dst;
  }
  const dnnl_status_t status = dnnl_stream_wait(ws.stream.get());
  if (status != dnnl_success) {
    return ExecuteError(status, "stream wait", layer_names.back());
  }
  return absl::OkStatus();
}

}  // namespace nnserve::engine
