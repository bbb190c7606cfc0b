// Internal to engine/ (exposes oneDNN): the process-wide oneDNN CPU engine
// and the per-thread scratch every forward pass on a thread reuses.
//
// CpuEngine() is created on first use and never destroyed (thread_local
// streams and late model destructions must not outlive it); thread-safe.
// ThreadWorkspace() returns the calling thread's own Workspace: not shared,
// so no synchronization; buffers only grow.
#ifndef NNSERVE_ENGINE_WORKSPACE_H_
#define NNSERVE_ENGINE_WORKSPACE_H_

#include <cstddef>

#include "oneapi/dnnl/dnnl.hpp"

namespace nnserve::engine {

const dnnl::engine& CpuEngine();

// A 64-byte aligned buffer that only grows.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer();

  // Ensures room for `bytes` bytes; contents are not preserved. Throws
  // std::bad_alloc.
  void* Reserve(size_t bytes);

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// Per-thread scratch shared by every model this thread runs.
struct Workspace {
  // Hidden-layer outputs, alternating (f32, or bf16 for BF16 models; the
  // BF16 input conversion also lands in one of them).
  AlignedBuffer activations[2];
  AlignedBuffer quantized;  // INT8: the u8 input of the current layer.
  AlignedBuffer scratch;    // oneDNN scratchpads (user scratchpad mode).
  dnnl::stream stream;
};

Workspace& ThreadWorkspace();

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_WORKSPACE_H_
