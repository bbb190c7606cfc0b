// ModelBatcher: the dynamic batcher of one served model version. Concurrent
// Predict calls for the version are queued here and merged into one forward
// pass of up to `max_batch_rows` rows; each caller then gets exactly its own
// rows of the merged output, in its own encoding.
//
// How it runs. Submit() appends a call to a FIFO queue and, if fewer than
// `max_concurrent_batches` batch runners of this version are active, starts
// one on the InferencePool. A runner loops: take calls from the front of the
// queue while their rows fit in max_batch_rows (a call larger than
// max_batch_rows is taken alone, as its own forward pass — never split, never
// refused here; the request limit is --max-batch-rows), answer the taken calls
// whose deadline passed (DEADLINE_EXCEEDED) or that were cancelled
// (CANCELLED) without computing them, run one forward pass over the rest, hand
// out the rows, and repeat until the queue is empty. With max_queue_delay_us =
// 0 a runner takes only what is already queued and never waits idle, so a
// lone call goes straight through; with a positive delay a runner holding
// fewer than max_batch_rows rows waits until the oldest taken call has been
// queued that long or the batch fills. A full queue (max_queue_size calls)
// makes Submit fail at once with RESOURCE_EXHAUSTED.
//
// Metrics (per model, BatcherMetrics in metrics.h): queue wait per call,
// rows per forward pass, queue length.
//
// Ownership and threading: thread-safe; Submit may be called from any thread.
// The batcher keeps its ServedVersion alive. The InferencePool must outlive
// the batcher; the destructor waits until no runner of this batcher is active
// (runners only exit with an empty queue, so no queued call is ever lost,
// including at shutdown: the pool runs the tasks it has queued).
#ifndef NNSERVE_SERVER_SCHEDULING_BATCHER_H_
#define NNSERVE_SERVER_SCHEDULING_BATCHER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "nnserve/v1/inference.pb.h"
#include "nnserve/v1/model_config.pb.h"
#include "server/scheduling/inference_pool.h"
#include "server/lifecycle/model_manager.h"
#include "server/frontend/tensor_codec.h"

namespace nnserve::server {

struct BatchingOptions {
  // Most rows merged into one forward pass (>= 1).
  int64_t max_batch_rows = 64;
  // How long a runner may wait for more calls to fill a batch (0 = never).
  int64_t max_queue_delay_us = 0;
  // Most calls waiting in the queue; more are RESOURCE_EXHAUSTED (>= 1).
  int64_t max_queue_size = 256;
  // Forward passes of this version that may run at once (>= 1); the server
  // uses its worker count.
  int max_concurrent_batches = 1;
  // Measure and export per-layer latency.
  bool time_layers = true;
};

// The settings for a model: each field of `config` that is > 0, else the
// corresponding field of `defaults` (0 = use the server-wide default).
BatchingOptions ResolveBatchingOptions(const v1::DynamicBatching& config,
                                       const BatchingOptions& defaults);

class ModelBatcher {
 public:
  // One queued Predict call.
  struct Call {
    // The validated input. For the values encoding it views the request,
    // which must stay alive until `done` has run.
    DecodedInput input;
    // Filled with the call's rows before `done(OkStatus())`.
    v1::PredictResponse* response = nullptr;
    std::chrono::system_clock::time_point deadline =
        std::chrono::system_clock::time_point::max();
    // True once the caller has given up (may be empty: never cancelled).
    absl::AnyInvocable<bool() const> is_cancelled;
    // Receives the call's outcome, exactly once: on a pool worker, or inside
    // Submit when no worker accepts the batch.
    absl::AnyInvocable<void(absl::Status) &&> done;
  };

  // `served` must have `batcher_metrics` set.
  ModelBatcher(std::shared_ptr<const ServedVersion> served, InferencePool* pool,
               const BatchingOptions& options);
  ModelBatcher(const ModelBatcher&) = delete;
  ModelBatcher& operator=(const ModelBatcher&) = delete;
  ~ModelBatcher();

  // Queues `call`. OK: `call.done` will be invoked exactly once (if the pool
  // refuses to start a runner and none is active, at once: with
  // RESOURCE_EXHAUSTED when the pool's queue is full, UNAVAILABLE after its
  // shutdown).
  // RESOURCE_EXHAUSTED when the queue already holds max_queue_size calls;
  // `call.done` is then not invoked and the caller answers.
  absl::Status Submit(Call call);

  // True when nothing is queued and no forward pass of this batcher runs
  // (a racy snapshot, used to run small lone calls inline).
  bool idle() const;
  size_t queued() const;
  const BatchingOptions& options() const { return options_; }
  const ServedVersion& served() const { return *served_; }

 private:
  struct Pending {
    Call call;
    std::chrono::steady_clock::time_point enqueued;
  };

  void RunBatches();
  // Takes the next batch off the queue (waiting up to max_queue_delay_us to
  // fill it); false once the queue is empty, and the runner then ends.
  bool TakeBatch(std::vector<Pending>* batch);
  void RunBatch(std::vector<Pending>* batch);
  // Counts a runner out; called with mutex_ held.
  void RunnerExited(std::unique_lock<std::mutex>* held);

  const std::shared_ptr<const ServedVersion> served_;
  InferencePool* const pool_;
  const BatchingOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable arrived_;     // A call was queued (delay > 0).
  std::condition_variable all_exited_;  // active_ dropped to 0.
  std::deque<Pending> queue_;           // Guarded by mutex_.
  int64_t queued_rows_ = 0;             // Guarded by mutex_.
  // Runners started; changed under mutex_, read lock-free by idle().
  std::atomic<int> active_{0};
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_SCHEDULING_BATCHER_H_
