// InferencePool: a fixed set of inference worker threads fed by one bounded
// FIFO queue. It is where forward passes too large to run inline on a gRPC
// callback thread are executed, so that a long forward never blocks the
// threads that serve other RPCs.
//
// Each worker sets its OpenMP thread count (the engine's intra-op threads)
// once at start, so OpenMP teams are per worker and never re-negotiated.
//
// A task is any callable; the pool neither knows nor cares that it runs a
// forward pass. The per-model-version dynamic batchers (batcher.h) sit in
// front of the pool: each submits batch-runner tasks (at most --threads per
// version at once), each of which runs merged forward passes.
//
// Thread-safe: TrySubmit may be called from any thread. Shutdown() (also
// run by the destructor) stops accepting tasks, runs every task already
// queued, and joins the workers.
#ifndef NNSERVE_SERVER_SCHEDULING_INFERENCE_POOL_H_
#define NNSERVE_SERVER_SCHEDULING_INFERENCE_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"

namespace nnserve::server {

class InferencePool {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  struct Options {
    int threads = 1;           // Worker threads (>= 1).
    int intra_op_threads = 1;  // OpenMP threads per worker (>= 1).
    size_t max_queue = 256;    // Queued (not yet running) tasks.
  };

  explicit InferencePool(const Options& options);
  InferencePool(const InferencePool&) = delete;
  InferencePool& operator=(const InferencePool&) = delete;
  ~InferencePool();

  // Queues `task`. Returns false when the queue already holds max_queue
  // tasks or the pool is shut down; `task` is then destroyed without running
  // and the caller must answer the request itself (RESOURCE_EXHAUSTED).
  bool TrySubmit(Task task);

  // Stops accepting tasks, runs the queued ones, joins the workers.
  // Idempotent.
  void Shutdown();

  size_t queued() const;
  int threads() const { return static_cast<int>(workers_.size()); }
  size_t max_queue() const { return max_queue_; }

 private:
  void WorkerLoop(int intra_op_threads);

  const size_t max_queue_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Task> queue_;  // Guarded by mutex_.
  bool stopping_ = false;   // Guarded by mutex_.
  std::vector<std::thread> workers_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_SCHEDULING_INFERENCE_POOL_H_
