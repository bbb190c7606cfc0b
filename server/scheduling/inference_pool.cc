#include "server/scheduling/inference_pool.h"

#include <omp.h>

#include <algorithm>
#include <utility>

namespace nnserve::server {

InferencePool::InferencePool(const Options& options)
    : max_queue_(std::max<size_t>(options.max_queue, 1)) {
  const int threads = std::max(options.threads, 1);
  const int intra_op = std::max(options.intra_op_threads, 1);
  workers_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) {
    workers_.emplace_back([this, intra_op] { WorkerLoop(intra_op); });
  }
}

InferencePool::~InferencePool() { Shutdown(); }

bool InferencePool::TrySubmit(Task task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || queue_.size() >= max_queue_) return false;
    queue_.push_back(std::move(task));
  }
  ready_.notify_one();
  return true;
}

void InferencePool::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

size_t InferencePool::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

void InferencePool::WorkerLoop(int intra_op_threads) {
  // The OpenMP thread count is a per-thread setting: set it once here.
  omp_set_num_threads(intra_op_threads);
  while (true) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // Stopping and drained.
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(task)();
  }
}

}  // namespace nnserve::server
