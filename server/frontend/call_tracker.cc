#include "server/frontend/call_tracker.h"

namespace nnserve::server {

void CallTracker::CallEnded() {
  if (in_flight_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      draining_.load(std::memory_order_acquire)) {
    // Unlocking makes absl::Mutex re-evaluate WaitForIdle's condition.
    absl::MutexLock lock(&idle_mutex_);
  }
}

bool CallTracker::WaitForIdle(std::chrono::system_clock::time_point deadline) {
  absl::MutexLock lock(&idle_mutex_);
  return idle_mutex_.AwaitWithDeadline(
      absl::Condition(
          +[](std::atomic<int64_t>* n) { return n->load() == 0; }, &in_flight_),
      absl::FromChrono(deadline));
}

absl::Status CallTracker::DrainingError() {
  return absl::UnavailableError(
      "the server is shutting down and accepts no new calls; retry on "
      "another replica");
}

}  // namespace nnserve::server
