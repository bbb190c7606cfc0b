// Termination-signal handling for `nnserve serve`: SIGTERM and SIGINT are
// blocked in every thread (call BlockTerminationSignals() in main before any
// thread is created, so all threads inherit the mask) and received
// synchronously by one dedicated sigwait thread owned by a SignalWaiter.
// No async-signal-safety concerns: nothing runs in a signal handler.
//
// Thread-safe: Wait/received may be called from any thread.
#ifndef NNSERVE_SERVER_SIGNALS_H_
#define NNSERVE_SERVER_SIGNALS_H_

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"

namespace nnserve::server {

// Blocks SIGTERM and SIGINT in the calling thread (and thereby in threads
// it creates afterwards).
void BlockTerminationSignals();

class SignalWaiter {
 public:
  // Starts the sigwait thread. Signals must already be blocked.
  SignalWaiter();
  // Stops and joins the sigwait thread.
  ~SignalWaiter();
  SignalWaiter(const SignalWaiter&) = delete;
  SignalWaiter& operator=(const SignalWaiter&) = delete;

  // Blocks until SIGTERM or SIGINT arrives; returns its number.
  int Wait();
  // The signal received so far, or 0.
  int received() const { return signal_.load(); }

 private:
  void Loop();

  std::atomic<int> signal_{0};
  std::atomic<bool> stopping_{false};
  absl::Notification notified_;
  std::thread thread_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_SIGNALS_H_
