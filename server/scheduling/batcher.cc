#include "server/scheduling/batcher.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/frontend/predictor.h"

namespace nnserve::server {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Per-worker scratch for merged inputs and outputs, reused across batches.
struct BatchScratch {
  std::vector<float> input;
  std::vector<float> output;
  std::vector<double> layer_seconds;
};

BatchScratch& ThreadBatchScratch() {
  thread_local BatchScratch scratch;
  return scratch;
}

}  // namespace

BatchingOptions ResolveBatchingOptions(const v1::DynamicBatching& config,
                                       const BatchingOptions& defaults) {
  BatchingOptions options = defaults;
  if (config.max_batch_rows() > 0) {
    options.max_batch_rows = config.max_batch_rows();
  }
  if (config.max_queue_delay_us() > 0) {
    options.max_queue_delay_us = config.max_queue_delay_us();
  }
  if (config.max_queue_size() > 0) {
    options.max_queue_size = config.max_queue_size();
  }
  return options;
}

ModelBatcher::ModelBatcher(std::shared_ptr<const ServedVersion> served,
                           InferencePool* pool, const BatchingOptions& options)
    : served_(std::move(served)), pool_(pool), options_([&] {
        BatchingOptions o = options;
        o.max_batch_rows = std::max<int64_t>(o.max_batch_rows, 1);
        o.max_queue_delay_us = std::max<int64_t>(o.max_queue_delay_us, 0);
        o.max_queue_size = std::max<int64_t>(o.max_queue_size, 1);
        o.max_concurrent_batches = std::max(o.max_concurrent_batches, 1);
        return o;
      }()) {}

ModelBatcher::~ModelBatcher() {
  std::unique_lock<std::mutex> lock(mutex_);
  all_exited_.wait(lock, [this] { return active_.load() == 0; });
}

bool ModelBatcher::idle() const {
  // A runner is active whenever a call is queued (runners exit only with an
  // empty queue), so no runner means nothing queued either. Lock-free: this
  // is asked by every small call, and a contended mutex here costs futex
  // syscalls on the callback threads.
  return active_.load(std::memory_order_relaxed) == 0;
}

size_t ModelBatcher::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

absl::Status ModelBatcher::Submit(Call call) {
  const int64_t rows = call.input.rows();
  bool start_runner = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (static_cast<int64_t>(queue_.size()) >= options_.max_queue_size) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the dynamic batching queue of model '", served_->name, "' version ",
          served_->version, " is full (", options_.max_queue_size,
          " calls waiting, dynamic_batching.max_queue_size); retry with "
          "backoff"));
    }
    queue_.push_back(Pending{std::move(call), SteadyClock::now()});
    queued_rows_ += rows;
    // Counted under the lock, before any runner can take the call, so the
    // gauge never dips below zero.
    served_->batcher_metrics->AddQueued(1);
    if (active_.load() < options_.max_concurrent_batches) {
      active_.fetch_add(1);
      start_runner = true;
    }
  }
  if (options_.max_queue_delay_us > 0) arrived_.notify_one();
  if (start_runner && !pool_->TrySubmit([this] { RunBatches(); })) {
    // No runner will start. If no other runner is active, nobody would
    // serve the queue: answer every queued call here.
    std::deque<Pending> orphans;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (active_.load() == 1) {
        orphans.swap(queue_);
        queued_rows_ = 0;
      }
      RunnerExited(&lock);
    }
    served_->batcher_metrics->AddQueued(-static_cast<int64_t>(orphans.size()));
    // The pool refuses when its queue is full (overload) or after shutdown.
    const absl::Status refused =
        pool_->queued() >= pool_->max_queue()
            ? absl::ResourceExhaustedError(absl::StrCat(
                  "the inference queue is full (", pool_->max_queue(),
                  " tasks waiting for ", pool_->threads(),
                  " workers); retry with backoff"))
            : absl::UnavailableError(absl::StrCat(
                  "no inference worker accepts work for model '", served_->name,
                  "': the server is shutting down"));
    for (Pending& pending : orphans) std::move(pending.call.done)(refused);
  }
  return absl::OkStatus();
}

void ModelBatcher::RunnerExited(std::unique_lock<std::mutex>* /*held*/) {
  // Notified under the lock: the destructor may run as soon as it can take
  // the mutex, so nothing of this object is touched after the unlock.
  if (active_.fetch_sub(1) == 1) all_exited_.notify_all();
}

bool ModelBatcher::TakeBatch(std::vector<Pending>* batch) {
  batch->clear();
  std::unique_lock<std::mutex> lock(mutex_);
  if (queue_.empty()) {
    RunnerExited(&lock);
    return false;
  }
  if (options_.max_queue_delay_us > 0) {
    // Wait for the batch to fill, at most until the oldest call has waited
    // max_queue_delay_us.
    const SteadyClock::time_point until =
        queue_.front().enqueued +
        std::chrono::microseconds(options_.max_queue_delay_us);
    arrived_.wait_until(lock, until, [this] {
      return queue_.empty() || queued_rows_ >= options_.max_batch_rows;
    });
    if (queue_.empty()) {  // Another runner took them.
      RunnerExited(&lock);
      return false;
    }
  }
  int64_t rows = 0;
  while (!queue_.empty()) {
    const int64_t next = queue_.front().call.input.rows();
    if (!batch->empty() && rows + next > options_.max_batch_rows) break;
    rows += next;
    batch->push_back(std::move(queue_.front()));
    queue_.pop_front();
    if (rows >= options_.max_batch_rows) break;
  }
  queued_rows_ -= rows;
  return true;
}

void ModelBatcher::RunBatches() {
  std::vector<Pending> batch;
  while (TakeBatch(&batch)) {
    BatcherMetrics* metrics = served_->batcher_metrics;
    metrics->AddQueued(-static_cast<int64_t>(batch.size()));
    const SteadyClock::time_point now = SteadyClock::now();
    for (const Pending& pending : batch) {
      metrics->RecordQueueWait(
          std::chrono::duration<double>(now - pending.enqueued).count());
    }
    RunBatch(&batch);
  }
  // TakeBatch returned false and has already counted this runner out.
}

void ModelBatcher::RunBatch(std::vector<Pending>* batch) {
  // Calls given up on while queued are answered without computing them.
  const auto wall_now = std::chrono::system_clock::now();
  std::vector<Pending*> live;
  live.reserve(batch->size());
  int64_t rows = 0;
  for (Pending& pending : *batch) {
    Call& call = pending.call;
    if (call.is_cancelled && call.is_cancelled()) {
      std::move(call.done)(
          absl::CancelledError("the call was cancelled while queued"));
    } else if (call.deadline <= wall_now) {
      std::move(call.done)(absl::DeadlineExceededError(
          "the call's deadline passed while it waited in the dynamic "
          "batching queue; it was not computed"));
    } else {
      live.push_back(&pending);
      rows += call.input.rows();
    }
  }
  if (live.empty()) return;
  served_->batcher_metrics->RecordBatch(rows);

  if (live.size() == 1) {
    Call& call = live.front()->call;
    absl::Status status =
        RunPredict(*served_, call.input, options_.time_layers, call.response);
    std::move(call.done)(std::move(status));
    return;
  }

  const engine::Model& model = *served_->model;
  const int64_t in_cols = model.input_size();
  const int64_t out_cols = model.output_size();
  BatchScratch& scratch = ThreadBatchScratch();
  scratch.input.resize(static_cast<size_t>(rows * in_cols));
  scratch.output.resize(static_cast<size_t>(rows * out_cols));
  float* dst = scratch.input.data();
  for (const Pending* pending : live) {
    std::span<const float> values = pending->call.input.values();
    std::memcpy(dst, values.data(), values.size_bytes());
    dst += values.size();
  }
  std::span<double> layer_seconds;
  if (options_.time_layers) {
    scratch.layer_seconds.assign(model.num_layers(), 0.0);
    layer_seconds = scratch.layer_seconds;
  }

  const SteadyClock::time_point start = SteadyClock::now();
  absl::Status status =
      model.Forward(scratch.input, rows, scratch.output, layer_seconds);
  const double seconds =
      std::chrono::duration<double>(SteadyClock::now() - start).count();
  if (status.ok()) {
    served_->metrics->RecordInference(seconds, rows, layer_seconds);
  }

  const float* out = scratch.output.data();
  for (Pending* pending : live) {
    Call& call = pending->call;
    const int64_t call_rows = call.input.rows();
    if (status.ok()) {
      FillPredictResponse(*served_,
                          std::span<const float>(
                              out, static_cast<size_t>(call_rows * out_cols)),
                          call_rows, call.input.encoding(), call.response);
      out += call_rows * out_cols;
    }
    std::move(call.done)(status);
  }
}

}  // namespace nnserve::server
