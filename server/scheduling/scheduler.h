// Scheduler: the one place where forward passes are scheduled, for every
// served model version and every protocol. Each served version has a
// ModelQueue; a fixed set of worker threads serves all queues.
//
// How work flows.
//   Submit(queue, call)
//     - runs the call inline on the calling thread when its work (rows x
//       the model's parameters) is at most `inline_work_limit` and the
//       version has nothing queued or running: no hand-off, lowest latency;
//     - otherwise appends it to the version's queue (bounded per version by
//       max_queue_size and across versions by max_queued_calls and by
//       max_queued_bytes, the bytes of the queued calls' input and output
//       tensors).
//   A queue is *ready* when it holds max_batch_rows rows, when its oldest
//   call has waited max_queue_delay_us (0 = at once), or at shutdown. Ready
//   queues wait in one round-robin list. A worker takes the queue at the
//   front, takes ONE batch from it (calls from the front while their rows
//   fit max_batch_rows; a larger call alone, never split), puts the queue
//   back at the tail if it is still ready, runs the batch and returns to
//   the list. So a busy model never holds a worker for more than one batch
//   while another model waits. A worker never sleeps on behalf of one
//   model: queue delays are timers that idle workers wait on together.
//   With merging off (`merge` false) every batch is one call, and so is
//   every batch of a call that asks for layer outputs (`layers`).
//
// Every batch — one call or many, inline or on a worker — goes through one
// function that skips calls cancelled or past their deadline while queued,
// runs the forward pass, writes each call's rows into its `output` and
// records the inference, per-layer, queue-wait and batch-size metrics.
//
// Guarantees. Submit returns OK only if `done` will be invoked exactly once
// (on a worker, or before Submit returns for an inline call); otherwise it
// returns RESOURCE_EXHAUSTED (a queue is full, by count or by bytes) or
// UNAVAILABLE (shut down) and never invokes `done`. Shutdown() stops
// accepting calls, runs every queued call (delays no longer wait) and joins
// the workers: no accepted call is lost.
//
// Contained failures. An exception escaping anything a batch runs — a
// call's is_cancelled or done, the forward pass, the scheduler's own
// allocations — never ends a worker or the process and never loses a call:
// the batch's calls not answered yet get RESOURCE_EXHAUSTED (std::bad_alloc:
// out of memory) or INTERNAL (any other exception), the event is logged
// (event=inference_exception) and the worker goes on serving. A call whose
// `done` throws counts as answered: it is never answered twice.
//
// Ownership and threading: thread-safe. A ModelQueue is shared: its served
// version owns it and the scheduler holds it while it has queued calls; it
// keeps its model and metrics alive. The scheduler must outlive every
// ModelQueue it created.
#ifndef NNSERVE_SERVER_SCHEDULING_SCHEDULER_H_
#define NNSERVE_SERVER_SCHEDULING_SCHEDULER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "engine/model.h"
#include "nnserve/v1/model_config.pb.h"
#include "server/observability/metrics.h"

namespace nnserve::server {

// Batching settings of one model version.
struct BatchingOptions {
  // Merge concurrent calls into one forward pass (false: one call per pass).
  bool merge = true;
  // Most rows merged into one forward pass (>= 1).
  int64_t max_batch_rows = 64;
  // How long a queue may wait for more calls to fill a batch (0 = never).
  int64_t max_queue_delay_us = 0;
  // Most calls waiting in this version's queue (>= 1).
  int64_t max_queue_size = 256;
};

// The settings for a model: each field of `config` that is > 0, else the
// corresponding field of `defaults`.
BatchingOptions ResolveBatchingOptions(const v1::DynamicBatching& config,
                                       const BatchingOptions& defaults);

// One inference call: `rows` rows in, `rows` x the model's outputs out.
struct InferenceCall {
  // [rows, input_size] finite floats, row-major. Not owned: must stay valid
  // until `done` has run.
  std::span<const float> input;
  int64_t rows = 0;
  // [rows, output_size], written before done(OkStatus()). Not owned.
  std::span<float> output;
  // Layers whose outputs the call also wants (e.g. hidden layers, see
  // engine::Model::ForwardWithLayers), written before done(OkStatus()); the
  // spans are not owned. A call with layers is never merged with others: it
  // runs as a batch of its own (its rows still count as one batch).
  std::vector<engine::LayerOutput> layers = {};
  std::chrono::system_clock::time_point deadline =
      std::chrono::system_clock::time_point::max();
  // True once the caller has given up (may be empty: never cancelled).
  absl::AnyInvocable<bool() const> is_cancelled;
  // The outcome, exactly once (see the guarantees above).
  absl::AnyInvocable<void(absl::Status) &&> done;
};

class Scheduler;

// The queue of one served model version. Created by Scheduler::CreateQueue;
// otherwise opaque.
class ModelQueue {
 public:
  ModelQueue(const ModelQueue&) = delete;
  ModelQueue& operator=(const ModelQueue&) = delete;

  const engine::Model& model() const { return *model_; }
  const BatchingOptions& options() const { return options_; }
  // Calls waiting (a snapshot).
  int64_t queued_calls() const {
    return queued_.load(std::memory_order_relaxed);
  }

 private:
  friend class Scheduler;
  struct Pending {
    InferenceCall call;
    std::chrono::steady_clock::time_point enqueued;
    int64_t bytes = 0;  // Of call.input and call.output.
  };
  ModelQueue(std::shared_ptr<const engine::Model> model,
             const BatchingOptions& options,
             std::shared_ptr<ModelVersionMetrics> metrics,
             BatcherMetrics* batcher_metrics, std::string description);

  const std::shared_ptr<const engine::Model> model_;
  const BatchingOptions options_;
  const std::shared_ptr<ModelVersionMetrics> metrics_;
  BatcherMetrics* const batcher_metrics_;  // Per model; never dangles.
  const std::string description_;          // "model 'm' version 2".

  // Which of the scheduler's lists holds this queue.
  enum class Listed { kNo, kReady, kWaiting };

  // Guarded by the scheduler's mutex (a per-object member cannot name it).
  std::deque<Pending> pending_;
  int64_t pending_rows_ = 0;
  Listed listed_ = Listed::kNo;
  // pending_.size(), readable without the lock.
  std::atomic<int64_t> queued_{0};
  // Calls queued plus batches running; read lock-free for the inline check.
  std::atomic<int64_t> busy_{0};
};

class Scheduler {
 public:
  struct Options {
    int threads = 1;           // Worker threads (>= 1).
    int intra_op_threads = 1;  // OpenMP threads per forward pass (>= 1).
    // Calls queued across all versions before RESOURCE_EXHAUSTED (>= 1).
    int64_t max_queued_calls = 1024;
    // Bytes of the input and output tensors of the calls queued across all
    // versions before RESOURCE_EXHAUSTED (>= 1). A call larger than this
    // is still queued when nothing else is (so it is never refused for
    // good); the bound is then that one call. The server derives it from
    // --max-memory-bytes (serve_command.h).
    int64_t max_queued_bytes = int64_t{256} << 20;
    // rows x parameters at or below which a call may run inline.
    int64_t inline_work_limit = 262144;
    // Measure and record per-layer latency.
    bool time_layers = true;
  };

  explicit Scheduler(const Options& options);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  ~Scheduler();  // Shutdown().

  // A queue for one served model version. `metrics` may be null (no
  // inference metrics), `batcher_metrics` too. `description` names the
  // version in error messages ("model 'digits' version 1").
  std::shared_ptr<ModelQueue> CreateQueue(
      std::shared_ptr<const engine::Model> model,
      const BatchingOptions& options,
      std::shared_ptr<ModelVersionMetrics> metrics,
      BatcherMetrics* batcher_metrics, std::string description);

  // Runs or queues `call` (see the header comment). The queue must come
  // from this scheduler.
  absl::Status Submit(const std::shared_ptr<ModelQueue>& queue,
                      InferenceCall call);

  // Stops accepting calls, runs every queued call, joins the workers.
  // Idempotent; every caller returns once the workers are joined.
  void Shutdown();

  int threads() const { return options_.threads; }
  // Calls queued across all versions (a snapshot).
  int64_t queued_calls() const;
  // Bytes of the queued calls' tensors across all versions (a snapshot).
  int64_t queued_bytes() const;

 private:
  using Batch = std::vector<ModelQueue::Pending>;
  void WorkerLoop();
  // The next batch, round-robin across ready queues; waits for work or a
  // queue's delay to pass. False once shut down with nothing queued.
  bool NextBatch(std::shared_ptr<ModelQueue>* queue, Batch* batch);
  bool IsReady(const ModelQueue& queue,
               std::chrono::steady_clock::time_point now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Moves queues whose delay has passed into the ready list; returns the
  // earliest time a waiting queue becomes ready (max() if none).
  std::chrono::steady_clock::time_point PromoteDueQueues(
      std::chrono::steady_clock::time_point now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void TakeBatch(ModelQueue* queue, Batch* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Puts `queue` on the ready or the waiting list (it has pending calls and
  // is on neither) and wakes an idle worker.
  void List(const std::shared_ptr<ModelQueue>& queue,
            std::chrono::steady_clock::time_point now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The one execution path (inline or on a worker): answers calls cancelled
  // or past their deadline without computing them, runs one forward pass
  // over the rest, writes each call's rows, records the metrics, invokes
  // every `done`. Never throws: an exception answers the calls not yet
  // answered with an error (see "Contained failures").
  void RunCalls(ModelQueue& queue, std::span<InferenceCall*> calls) const;
  // RunCalls without the containment; may throw.
  void RunCallsOrThrow(ModelQueue& queue,
                       std::span<InferenceCall*> calls) const;

  const Options options_;
  mutable absl::Mutex mutex_;
  absl::CondVar work_;  // A queue became ready, or shutdown.
  // Queues with work ready, in round-robin order.
  std::deque<std::shared_ptr<ModelQueue>> ready_ ABSL_GUARDED_BY(mutex_);
  // Queues with calls that are not ready yet (their delay runs).
  std::vector<std::shared_ptr<ModelQueue>> waiting_ ABSL_GUARDED_BY(mutex_);
  int64_t queued_calls_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t queued_bytes_ ABSL_GUARDED_BY(mutex_) = 0;
  int idle_workers_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // stopping_, readable without the lock (the inline path).
  std::atomic<bool> stopped_{false};
  std::mutex join_mutex_;  // Serialises joining the workers.
  std::vector<std::thread> workers_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_SCHEDULING_SCHEDULER_H_
