#include "server/signals.h"

#include <pthread.h>
#include <signal.h>

#include <cstdlib>

#include "spdlog/spdlog.h"

namespace nnserve::server {
namespace {

sigset_t TerminationSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSet();
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

void SignalWaiter::Loop() {
  const sigset_t set = TerminationSet();
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (stopping_.load()) return;
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
