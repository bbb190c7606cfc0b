// Process-wide oneDNN engine and per-thread workspaces (see workspace.h).
#include "engine/workspace.h"

#include <cstdlib>
#include <new>

namespace nnserve::engine {

const dnnl::engine& CpuEngine() {
  static const dnnl::engine* engine =
      new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

void* AlignedBuffer::Reserve(size_t bytes) {
  if (bytes > capacity_) {
    std::free(data_);
    data_ = nullptr;
    capacity_ = 0;
    const size_t rounded = (bytes + 63) / 64 * 64;
    data_ = std::aligned_alloc(64, rounded);
    if (data_ == nullptr) throw std::bad_alloc();
    capacity_ = rounded;
  }
  return data_;
}

Workspace& ThreadWorkspace() {
  thread_local Workspace workspace;
  if (!workspace.stream) workspace.stream = dnnl::stream(CpuEngine());
  return workspace;
}

}  // namespace nnserve::engine
