// Internal to engine/ (included only by engine .cc files; exposes oneDNN).
//
// LayerWeights: one layer's oneDNN-side parameters: the bias memory and the
// weights reordered into each layout some matmul primitive asked for. Owned
// by the Model; mutated only while building plans under the Model's build
// mutex, read-only (shared dnnl::memory handles) afterwards.
//
// BatchPlan: the primitives for one batch size (rows): per layer a matmul
// with bias and activation fused as post-ops and, for SOFTMAX layers, an
// in-place softmax primitive. Immutable after Build except for its pool of
// MemorySets, which is internally synchronized; a BatchPlan may be executed
// by many threads at once, each holding its own MemorySet.
#ifndef NNSERVE_ENGINE_BATCH_PLAN_H_
#define NNSERVE_ENGINE_BATCH_PLAN_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_spec.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace nnserve::engine {

struct LayerWeights {
  int64_t input_size = 0;
  int64_t units = 0;
  Activation activation = Activation::kIdentity;
  float alpha = 0.0f;
  // Canonical [units, input_size] row-major weights; released once the
  // first reordered copy exists (later copies reorder from that copy).
  std::vector<float> plain;
  std::vector<dnnl::memory> reordered;  // One per distinct layout.
  std::vector<float> bias_values;       // Empty when the layer has no bias.
  dnnl::memory bias;                    // {1, units}; null when no bias.
};

// One layer's primitives for a fixed batch size.
struct LayerStep {
  dnnl::primitive matmul;
  dnnl::memory weights;  // The reordered copy this matmul expects.
  dnnl::memory bias;     // Null when the layer has no bias.
  dnnl::memory::desc src_md, dst_md, scratch_md;
  dnnl::primitive softmax;  // Null unless the layer is SOFTMAX.
  dnnl::memory::desc softmax_scratch_md;
};

// Per-executing-thread memory objects for one plan: their data handles are
// re-pointed at each call to the caller's and the workspace's buffers.
struct MemorySet {
  std::vector<dnnl::memory> src, dst, scratch, softmax_scratch;
};

class BatchPlan {
 public:
  // Builds the primitives for `rows` rows, using the calling thread's OpenMP
  // thread count. Adds reordered weight copies to `layers` when a primitive
  // prefers a layout not stored yet. Throws dnnl::error on oneDNN failure.
  static std::unique_ptr<BatchPlan> Build(int64_t rows,
                                          std::vector<LayerWeights>& layers,
                                          const dnnl::engine& engine);

  int64_t rows() const { return rows_; }
  const std::vector<LayerStep>& steps() const { return steps_; }
  size_t scratch_bytes() const { return scratch_bytes_; }

  // Takes a MemorySet from the pool (creating one if the pool is empty) and
  // gives it back. Thread-safe; no allocation once the pool has grown to
  // the number of concurrent callers.
  MemorySet* Acquire() const;
  void Release(MemorySet* set) const;

 private:
  BatchPlan() = default;

  int64_t rows_ = 0;
  std::vector<LayerStep> steps_;
  size_t scratch_bytes_ = 0;
  const dnnl::engine* engine_ = nullptr;

  mutable std::mutex pool_mu_;
  mutable std::vector<std::unique_ptr<MemorySet>> all_;  // Owns every set.
  mutable std::vector<MemorySet*> free_;
};

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_BATCH_PLAN_H_
