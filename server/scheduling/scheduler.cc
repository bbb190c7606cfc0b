#include "server/scheduling/scheduler.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <new>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/str_util.h"
#include "server/observability/logging.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Per-thread buffers reused across forward passes: merged inputs and
// outputs, per-layer times. Steady-state batches allocate nothing here.
struct Scratch {
  std::vector<float> input;
  std::vector<float> output;
  std::vector<double> layer_seconds;
  std::vector<InferenceCall*> live;
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

double SecondsBetween(SteadyClock::time_point from,
                      SteadyClock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

int64_t TensorBytes(const InferenceCall& call) {
  size_t bytes = call.input.size_bytes() + call.output.size_bytes();
  for (const engine::LayerOutput& layer : call.layers) {
    bytes += layer.values.size_bytes();
  }
  return static_cast<int64_t>(bytes);
}

// Runs `body`. An exception escaping it is logged (with `where` and
// `description`, read only then) and returned as the status the calls it
// affected get: RESOURCE_EXHAUSTED for std::bad_alloc, INTERNAL otherwise.
template <typename Body>
absl::Status Contain(std::string_view where,
                     const std::string_view& description, Body&& body) {
  std::string what;
  bool out_of_memory = false;
  try {
    body();
    return absl::OkStatus();
  } catch (const std::bad_alloc& e) {
    out_of_memory = true;
    what = e.what();
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception not derived from std::exception";
  }
  what = Clip(what, 200);
  spdlog::error("event=inference_exception where={} target={} error={}", where,
                LogQuote(Sv(description)), LogQuote(what));
  if (out_of_memory) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the server ran out of memory while running ", Sv(description), " (",
        what, "); the call was not computed; retry with backoff"));
  }
  return absl::InternalError(absl::StrCat("running ", Sv(description),
                                          " failed: ", what,
                                          "; the call was not computed"));
}

// Answers `call` with `status` unless it has been answered: its `done` is
// taken (left empty) before it runs, so no call is answered twice, even
// when a `done` throws. What a `done` throws is logged and dropped.
void Answer(InferenceCall* call, absl::Status status,
            std::string_view description) {
  if (!call->done) return;
  absl::AnyInvocable<void(absl::Status)&&> done = std::move(call->done);
  call->done = nullptr;
  // The status is already the call's answer; nothing is left to answer.
  Contain("done", description, [&] {
    std::move(done)(std::move(status));
  }).IgnoreError();
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

ModelQueue::ModelQueue(std::shared_ptr<const engine::Model> model,
                       const BatchingOptions& options,
                       std::shared_ptr<ModelVersionMetrics> metrics,
                       BatcherMetrics* batcher_metrics, std::string description)
    : model_(std::move(model)),
      options_([&] {
        BatchingOptions o = options;
        o.max_batch_rows = std::max<int64_t>(o.max_batch_rows, 1);
        o.max_queue_size = std::max<int64_t>(o.max_queue_size, 1);
        // Without merging there is nothing to wait for.
        o.max_queue_delay_us =
            o.merge ? std::max<int64_t>(o.max_queue_delay_us, 0) : 0;
        return o;
      }()),
      metrics_(std::move(metrics)),
      batcher_metrics_(batcher_metrics),
      description_(std::move(description)) {}

Scheduler::Scheduler(const Options& options)
    : options_([&] {
        Options o = options;
        o.threads = std::max(o.threads, 1);
        o.intra_op_threads = std::max(o.intra_op_threads, 1);
        o.max_queued_calls = std::max<int64_t>(o.max_queued_calls, 1);
        o.max_queued_bytes = std::max<int64_t>(o.max_queued_bytes, 1);
        return o;
      }()) {
  workers_.reserve(static_cast<size_t>(options_.threads));
  for (int i = 0; i < options_.threads; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

Scheduler::~Scheduler() { Shutdown(); }

std::shared_ptr<ModelQueue> Scheduler::CreateQueue(
    std::shared_ptr<const engine::Model> model, const BatchingOptions& options,
    std::shared_ptr<ModelVersionMetrics> metrics,
    BatcherMetrics* batcher_metrics, std::string description) {
  return std::shared_ptr<ModelQueue>(
      new ModelQueue(std::move(model), options, std::move(metrics),
                     batcher_metrics, std::move(description)));
}

int64_t Scheduler::queued_calls() const {
  absl::MutexLock lock(&mutex_);
  return queued_calls_;
}

int64_t Scheduler::queued_bytes() const {
  absl::MutexLock lock(&mutex_);
  return queued_bytes_;
}

absl::Status Scheduler::Submit(const std::shared_ptr<ModelQueue>& queue,
                               InferenceCall call) {
  // Tiny forwards of an idle version run right here: a hand-off to a worker
  // would cost more than the forward pass itself.
  const int64_t work = call.rows * queue->model().info().total_parameters;
  if (work <= options_.inline_work_limit &&
      queue->busy_.load(std::memory_order_relaxed) == 0) {
    if (stopped_.load(std::memory_order_relaxed)) {
      return absl::UnavailableError(
          "the server is shutting down and runs no new inference");
    }
    InferenceCall* one = &call;
    RunCalls(*queue, std::span<InferenceCall*>(&one, 1));
    return absl::OkStatus();
  }

  const int64_t rows = call.rows;
  const int64_t bytes = TensorBytes(call);
  absl::MutexLock lock(&mutex_);
  if (stopping_) {
    return absl::UnavailableError(
        "the server is shutting down and runs no new inference");
  }
  const ModelQueue::Listed was = queue->listed_;
  if (static_cast<int64_t>(queue->pending_.size()) >=
      queue->options().max_queue_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the queue of ", queue->description_, " is full (",
        queue->options().max_queue_size,
        " calls waiting, dynamic_batching.max_queue_size); retry with "
        "backoff"));
  }
  if (queued_calls_ >= options_.max_queued_calls) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the inference queue is full (", options_.max_queued_calls,
                     " calls waiting for ", options_.threads,
                     " workers, --max-queued-requests); retry with backoff"));
  }
  // A call larger than the whole limit still gets in alone.
  if (queued_bytes_ > 0 && bytes > options_.max_queued_bytes - queued_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the inference queue is full by size: its calls hold ", queued_bytes_,
        " bytes of tensors and this call needs ", bytes,
        " more, over the limit of ", options_.max_queued_bytes,
        " bytes (--max-queued-bytes, by default an eighth of "
        "--max-memory-bytes); "
        "retry with backoff"));
  }
  const SteadyClock::time_point now = SteadyClock::now();
  queue->pending_.push_back(ModelQueue::Pending{std::move(call), now, bytes});
  queue->pending_rows_ += rows;
  queue->queued_.fetch_add(1, std::memory_order_relaxed);
  queue->busy_.fetch_add(1, std::memory_order_relaxed);
  ++queued_calls_;
  queued_bytes_ += bytes;
  // Counted under the lock, before a worker can take the call, so the gauge
  // never dips below zero.
  if (queue->batcher_metrics_ != nullptr) queue->batcher_metrics_->AddQueued(1);

  if (was == ModelQueue::Listed::kNo) {
    List(queue, now);
  } else if (was == ModelQueue::Listed::kWaiting && IsReady(*queue, now)) {
    // The batch filled before its delay ran out.
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), queue));
    queue->listed_ = ModelQueue::Listed::kNo;
    List(queue, now);
  }
  return absl::OkStatus();
}

void Scheduler::List(const std::shared_ptr<ModelQueue>& queue,
                     SteadyClock::time_point now) {
  if (IsReady(*queue, now)) {
    queue->listed_ = ModelQueue::Listed::kReady;
    ready_.push_back(queue);
  } else {
    // An idle worker must learn of the new timer, too.
    queue->listed_ = ModelQueue::Listed::kWaiting;
    waiting_.push_back(queue);
  }
  if (idle_workers_ > 0) work_.Signal();
}

bool Scheduler::IsReady(const ModelQueue& queue,
                        SteadyClock::time_point now) const {
  const BatchingOptions& o = queue.options();
  return stopping_ || o.max_queue_delay_us == 0 ||
         queue.pending_rows_ >= o.max_batch_rows ||
         queue.pending_.front().enqueued +
                 std::chrono::microseconds(o.max_queue_delay_us) <=
             now;
}

SteadyClock::time_point Scheduler::PromoteDueQueues(
    SteadyClock::time_point now) {
  SteadyClock::time_point next = SteadyClock::time_point::max();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    ModelQueue& queue = **it;
    if (IsReady(queue, now)) {
      queue.listed_ = ModelQueue::Listed::kReady;
      ready_.push_back(std::move(*it));
      it = waiting_.erase(it);
      continue;
    }
    next = std::min(next, queue.pending_.front().enqueued +
                              std::chrono::microseconds(
                                  queue.options().max_queue_delay_us));
    ++it;
  }
  return next;
}

void Scheduler::TakeBatch(ModelQueue* queue, Batch* batch) {
  const BatchingOptions& o = queue->options();
  int64_t rows = 0;
  while (!queue->pending_.empty()) {
    const int64_t next = queue->pending_.front().call.rows;
    // A call that asks for layer outputs runs alone.
    const bool alone = !queue->pending_.front().call.layers.empty();
    if (!batch->empty() &&
        (!o.merge || alone || rows + next > o.max_batch_rows)) {
      break;
    }
    queued_bytes_ -= queue->pending_.front().bytes;
    batch->push_back(std::move(queue->pending_.front()));
    queue->pending_.pop_front();
    rows += next;
    if (!o.merge || alone || rows >= o.max_batch_rows) break;
  }
  const auto taken = static_cast<int64_t>(batch->size());
  queue->pending_rows_ -= rows;
  queue->queued_.fetch_sub(taken, std::memory_order_relaxed);
  // `taken` calls leave the queue, one running batch joins.
  queue->busy_.fetch_add(1 - taken, std::memory_order_relaxed);
  queued_calls_ -= taken;
  if (queue->batcher_metrics_ != nullptr) {
    queue->batcher_metrics_->AddQueued(-taken);
  }
}

bool Scheduler::NextBatch(std::shared_ptr<ModelQueue>* queue, Batch* batch) {
  absl::MutexLock lock(&mutex_);
  while (true) {
    // Queues whose delay ran out join the round-robin even while others
    // keep the workers busy.
    SteadyClock::time_point next = SteadyClock::time_point::max();
    if (!waiting_.empty()) next = PromoteDueQueues(SteadyClock::now());
    if (!ready_.empty()) {
      *queue = std::move(ready_.front());
      ready_.pop_front();
      (*queue)->listed_ = ModelQueue::Listed::kNo;
      TakeBatch(queue->get(), batch);
      // Still has calls: back in line behind the other models.
      if (!(*queue)->pending_.empty()) List(*queue, SteadyClock::now());
      return true;
    }
    if (stopping_ && waiting_.empty()) return false;
    ++idle_workers_;
    if (next == SteadyClock::time_point::max()) {
      work_.Wait(&mutex_);
    } else {
      work_.WaitWithDeadline(&mutex_,
                             absl::FromChrono(std::chrono::system_clock::now() +
                                              (next - SteadyClock::now())));
    }
    --idle_workers_;
  }
}

void Scheduler::WorkerLoop() {
  // The OpenMP thread count is a per-thread setting: set it once here.
  omp_set_num_threads(options_.intra_op_threads);
  std::shared_ptr<ModelQueue> queue;
  Batch batch;
  std::vector<InferenceCall*> calls;
  bool more = true;
  while (more) {
    // RunCalls contains its own exceptions; this catches the rest (taking
    // the batch, the metrics, `calls` growing) so that the worker lives on
    // and the batch's calls are still answered.
    std::string_view description = "a batch of the scheduler";
    const absl::Status failed = Contain("worker", description, [&] {
      more = NextBatch(&queue, &batch);
      if (!more) return;
      description = queue->description_;
      const SteadyClock::time_point now = SteadyClock::now();
      calls.clear();
      for (ModelQueue::Pending& pending : batch) {
        if (queue->batcher_metrics_ != nullptr) {
          queue->batcher_metrics_->RecordQueueWait(
              SecondsBetween(pending.enqueued, now));
        }
        calls.push_back(&pending.call);
      }
      RunCalls(*queue, calls);
    });
    if (!failed.ok()) {
      for (ModelQueue::Pending& pending : batch) {
        Answer(&pending.call, failed, description);
      }
    }
    batch.clear();
    if (queue != nullptr) {
      queue->busy_.fetch_sub(1, std::memory_order_release);
      queue.reset();
    }
  }
}

void Scheduler::RunCalls(ModelQueue& queue,
                         std::span<InferenceCall*> calls) const {
  const absl::Status failed = Contain("batch", queue.description_,
                                      [&] { RunCallsOrThrow(queue, calls); });
  if (failed.ok()) return;
  // Calls answered before the exception keep their answer.
  for (InferenceCall* call : calls) Answer(call, failed, queue.description_);
}

void Scheduler::RunCallsOrThrow(ModelQueue& queue,
                                std::span<InferenceCall*> calls) const {
  Scratch& scratch = ThreadScratch();
  // Calls given up on while queued are answered without computing them.
  const auto wall_now = std::chrono::system_clock::now();
  std::vector<InferenceCall*>& live = scratch.live;
  live.clear();
  int64_t rows = 0;
  for (InferenceCall* call : calls) {
    if (call->is_cancelled && call->is_cancelled()) {
      Answer(call, absl::CancelledError("the call was cancelled before it ran"),
             queue.description_);
    } else if (call->deadline <= wall_now) {
      Answer(call,
             absl::DeadlineExceededError(
                 absl::StrCat("the call's deadline passed while it waited for ",
                              queue.description_, "; it was not computed")),
             queue.description_);
    } else {
      live.push_back(call);
      rows += call->rows;
    }
  }
  if (live.empty()) return;

  const engine::Model& model = queue.model();
  std::span<double> layer_seconds;
  if (options_.time_layers && queue.metrics_ != nullptr) {
    scratch.layer_seconds.assign(model.num_layers(), 0.0);
    layer_seconds = scratch.layer_seconds;
  }
  // One call: straight from its input into its output. Several: merged
  // into one [rows, features] matrix and split back.
  std::span<const float> input = live.front()->input;
  std::span<float> output = live.front()->output;
  if (live.size() > 1) {
    scratch.input.resize(static_cast<size_t>(rows * model.input_size()));
    scratch.output.resize(static_cast<size_t>(rows * model.output_size()));
    float* dst = scratch.input.data();
    for (const InferenceCall* call : live) {
      std::memcpy(dst, call->input.data(), call->input.size_bytes());
      dst += call->input.size();
    }
    input = scratch.input;
    output = scratch.output;
  }

  const SteadyClock::time_point start = SteadyClock::now();
  // Only a batch of one call can carry layer outputs (TakeBatch), so
  // `layers` is empty for merged batches.
  const absl::Status status = model.ForwardWithLayers(
      input, rows, output,
      live.size() == 1
          ? std::span<const engine::LayerOutput>(live.front()->layers)
          : std::span<const engine::LayerOutput>(),
      layer_seconds);
  const double seconds = SecondsBetween(start, SteadyClock::now());
  if (status.ok()) {
    if (queue.metrics_ != nullptr) {
      queue.metrics_->RecordInference(seconds, rows, layer_seconds);
    }
    if (queue.batcher_metrics_ != nullptr) {
      queue.batcher_metrics_->RecordBatch(rows);
    }
    if (live.size() > 1) {
      const float* src = scratch.output.data();
      for (InferenceCall* call : live) {
        std::memcpy(call->output.data(), src, call->output.size_bytes());
        src += call->output.size();
      }
    }
  }
  for (InferenceCall* call : live) Answer(call, status, queue.description_);
}

void Scheduler::Shutdown() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    stopped_.store(true, std::memory_order_relaxed);
    work_.SignalAll();
  }
  // Workers leave only once every queue is empty. A concurrent second
  // caller waits here until the first has joined them.
  std::lock_guard<std::mutex> join(join_mutex_);
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

}  // namespace nnserve::server
