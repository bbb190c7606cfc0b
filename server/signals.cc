#include "server/signals.h"

#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <utility>

#include "spdlog/spdlog.h"

namespace nnserve::server {
namespace {

sigset_t ServerSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void BlockServerSignals() {
  sigset_t set = ServerSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

SignalWaiter::SignalWaiter() : thread_([this] { Loop(); }) {}

SignalWaiter::~SignalWaiter() {
  stopping_.store(true);
  // Wake the sigwait with a signal directed at that thread only.
  pthread_kill(thread_.native_handle(), SIGTERM);
  thread_.join();
}

int SignalWaiter::Wait() {
  notified_.WaitForNotification();
  return signal_.load();
}

void SignalWaiter::OnHangup(absl::AnyInvocable<void()> action) {
  absl::MutexLock lock(&hangup_mutex_);
  hangup_ = std::move(action);
}

void SignalWaiter::Loop() {
  const sigset_t set = ServerSignals();
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (stopping_.load()) return;
    if (sig == SIGHUP) {
      absl::MutexLock lock(&hangup_mutex_);
      spdlog::info("event=signal signal={} action={}", sig,
                   hangup_ ? "rescan" : "none");
      if (hangup_) hangup_();
      continue;
    }
    if (signal_.load() != 0) {
      // A second signal while shutting down: the operator insists.
      spdlog::warn("event=signal signal={} action=exit_now", sig);
      std::_Exit(128 + sig);
    }
    spdlog::info("event=signal signal={} action=shutdown", sig);
    signal_.store(sig);
    notified_.Notify();
  }
}

}  // namespace nnserve::server
