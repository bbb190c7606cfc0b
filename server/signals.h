// Signal handling for `nnserve serve`: SIGTERM, SIGINT and SIGHUP are
// blocked in every thread (call BlockServerSignals() in main before any
// thread is created, so all threads inherit the mask) and received
// synchronously by one dedicated sigwait thread owned by a SignalWaiter.
// No async-signal-safety concerns: nothing runs in a signal handler.
//
// SIGTERM/SIGINT start the shutdown (Wait returns; a second one exits at
// once). SIGHUP never shuts the server down: it runs the hang-up action
// (the model lifecycle's rescan) on the sigwait thread, or is logged and
// ignored while none is set.
//
// Thread-safe: every method may be called from any thread.
#ifndef NNSERVE_SERVER_SIGNALS_H_
#define NNSERVE_SERVER_SIGNALS_H_

#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace nnserve::server {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and thereby in
// threads it creates afterwards).
void BlockServerSignals();

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
  // The termination signal received so far, or 0.
  int received() const { return signal_.load(); }

  // What SIGHUP does from now on (empty: nothing). It must return quickly;
  // once this returns, a previous action no longer runs.
  void OnHangup(absl::AnyInvocable<void()> action);

 private:
  void Loop();

  std::atomic<int> signal_{0};
  std::atomic<bool> stopping_{false};
  absl::Notification notified_;
  absl::Mutex hangup_mutex_;
  absl::AnyInvocable<void()> hangup_ ABSL_GUARDED_BY(hangup_mutex_);
  std::thread thread_;
};

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_SIGNALS_H_
