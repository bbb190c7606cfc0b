// Internal to engine/ (included only by engine .cc files; exposes oneDNN).
//
// LayerWeights: one layer's oneDNN-side parameters: the bias memory, the
// weights in the form the plans are built from (f32, or s8 + per-channel
// scales for INT8) and the weights reordered into each layout some matmul
// primitive asked for. Owned by the Model; mutated only while building
// plans under the Model's build mutex, read-only (shared dnnl::memory
// handles) afterwards.
//
// BatchPlan: the primitives for one batch size (rows) in one precision: per
// layer a matmul with bias and activation fused as post-ops (for INT8 also
// the dequantization) and, for SOFTMAX layers, an in-place softmax
// primitive; for BF16 a conversion of the f32 input at entry. Immutable
// after Build except for its pool of MemorySets, which is internally
// synchronized; a BatchPlan may be executed (Run) by many threads at once,
// each holding its own MemorySet and Workspace.
//
// Data types per precision (model input and output are always f32):
//   FP32: f32 everywhere.
//   BF16: input converted to bf16 once; matmuls bf16 x bf16 with f32
//         accumulation and f32 bias; hidden outputs bf16 (post-ops applied
//         in f32 before the conversion); the last layer writes f32, and its
//         softmax runs in f32.
//   INT8: each layer's f32 input is quantized per call to u8 (scale and
//         zero point from the batch's range, see quantize.h); matmul u8 x s8
//         with s32 accumulation; the output scales (per-channel weight
//         scales), a binary_mul post-op (the per-call activation scale), a
//         binary_add post-op (bias) and the activation turn it back into
//         f32, which is what every layer writes.
#ifndef NNSERVE_ENGINE_BATCH_PLAN_H_
#define NNSERVE_ENGINE_BATCH_PLAN_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "engine/model_spec.h"
#include "engine/precision.h"
#include "engine/quantize.h"
#include "engine/workspace.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace nnserve::engine {

struct LayerWeights {
  int64_t input_size = 0;
  int64_t units = 0;
  Activation activation = Activation::kIdentity;
  float alpha = 0.0f;
  // FP32 and BF16: canonical [units, input_size] row-major f32 weights;
  // released once the first reordered copy exists (later copies reorder
  // from that copy).
  std::vector<float> plain;
  // INT8: the s8 weights and their per-channel scales. Kept for the
  // model's life (1 byte per weight): every new layout is reordered from
  // them.
  QuantizedWeights quantized;
  // INT8: the layer's input is never negative (the previous layer ends in
  // RELU, SIGMOID or SOFTMAX), so it is quantized without a zero point.
  bool input_non_negative = false;
  std::vector<dnnl::memory> reordered;  // One per distinct layout.
  std::vector<float> bias_values;       // Empty when the layer has no bias.
  dnnl::memory bias;                    // {1, units} f32; null when no bias.
};

// One layer's primitives for a fixed batch size.
struct LayerStep {
  dnnl::primitive matmul;
  dnnl::memory weights;  // The reordered copy this matmul expects.
  dnnl::memory bias;     // Null when the layer has no bias.
  dnnl::memory::desc src_md, dst_md, scratch_md;
  dnnl::primitive softmax;  // Null unless the layer is SOFTMAX.
  dnnl::memory::desc softmax_scratch_md;
  bool quantize_input = false;  // INT8.
  bool zero_point = false;      // INT8 with a runtime src zero point.
  std::string kernel;           // The matmul's oneDNN implementation.
};

// Per-executing-thread memory objects for one plan: their data handles are
// re-pointed at each call to the caller's and the workspace's buffers.
struct MemorySet {
  std::vector<dnnl::memory> src, dst, scratch, softmax_scratch;
  dnnl::memory entry_src, entry_dst, entry_scratch;  // BF16 input conversion.
  // INT8, per layer: the activation scale (binary_mul operand) and the src
  // zero point, pointing at scale_values / zero_point_values.
  std::vector<dnnl::memory> activation_scale, zero_point;
  std::vector<float> scale_values;
  std::vector<int32_t> zero_point_values;
};

// Receives an f32 copy of layers' outputs (after the activation) during Run:
// the load-time deviation probe compares these across precisions, and
// Model::ForwardWithLayers hands them to callers. Not owned: the storage is
// the caller's.
struct LayerCapture {
  // [layer] -> total_rows * units floats; an empty span skips that layer.
  std::vector<std::span<float>> outputs;
  int64_t first_row = 0;  // Row of the current chunk.
};

class BatchPlan {
 public:
  // Builds the primitives for `rows` rows in `precision`, using the calling
  // thread's OpenMP thread count. Adds reordered weight copies to `layers`
  // when a primitive prefers a layout not stored yet. Throws dnnl::error on
  // oneDNN failure.
  static std::unique_ptr<BatchPlan> Build(int64_t rows, Precision precision,
                                          std::vector<LayerWeights>& layers,
                                          const dnnl::engine& engine);

  int64_t rows() const { return rows_; }
  Precision precision() const { return precision_; }
  const std::vector<LayerStep>& steps() const { return steps_; }

  // Runs rows() rows: `input` [rows, in] and `output` [rows, out], both
  // f32 row-major, with intermediates in `ws`. `layer_seconds` (empty or
  // one entry per layer) accumulates each layer's wall time (its input
  // conversion and softmax included); `capture`, if not null, receives
  // every layer's output. `layer_names` name layers in error messages.
  // Returns Internal if oneDNN fails; throws std::bad_alloc if a buffer
  // cannot grow.
  absl::Status Run(Workspace& ws, const float* input, float* output,
                   std::span<double> layer_seconds,
                   std::span<const std::string> layer_names,
                   LayerCapture* capture) const;

 private:
  BatchPlan() = default;

  // Takes a MemorySet from the pool (creating one if the pool is empty) and
  // gives it back. Thread-safe; no allocation once the pool has grown to
  // the number of concurrent callers.
  MemorySet* Acquire() const;
  void Release(MemorySet* set) const;

  int64_t rows_ = 0;
  Precision precision_ = Precision::kFp32;
  std::vector<LayerStep> steps_;
  // BF16: f32 -> bf16 conversion of the input.
  dnnl::primitive entry_;
  dnnl::memory::desc entry_src_md_, entry_dst_md_, entry_scratch_md_;
  size_t scratch_bytes_ = 0;
  size_t activation_bytes_ = 0;  // Each of the two activation buffers.
  size_t quantized_bytes_ = 0;   // INT8 u8 input buffer.
  const dnnl::engine* engine_ = nullptr;

  // A std::mutex, not absl::Mutex: taken twice per forward chunk, where
  // absl::Mutex's deadlock detection (on in Debian's Abseil) costs ~25 ns
  // per lock at batch 1.
  mutable std::mutex pool_mu_;
  // Owns every set.
  mutable std::vector<std::unique_ptr<MemorySet>> all_
      ABSL_GUARDED_BY(pool_mu_);
  mutable std::vector<MemorySet*> free_ ABSL_GUARDED_BY(pool_mu_);
};

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_BATCH_PLAN_H_
