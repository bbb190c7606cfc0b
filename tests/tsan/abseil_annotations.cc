// Tells ThreadSanitizer how Abseil's synchronisation primitives order
// memory, for Debian's Abseil, which is not built with -fsanitize=thread.
// Without this TSan never sees an absl::Mutex being taken (its lock word
// and futex live in the uninstrumented libabsl_synchronization) and reports
// every access it guards as a data race.
//
// scripts/tsan.sh preloads this library (LD_PRELOAD) into the test programs
// it runs. It defines the public out-of-line members of absl::Mutex,
// CondVar, Notification and BlockingCounter; the dynamic linker
// binds every call (from the programs and from Abseil itself) to these
// definitions, which call Abseil's own (found with dlsym(RTLD_NEXT)) and
// add TSan's happens-before annotations around them, the way Abseil
// annotates itself when it is built with TSan:
//   - a lock acquires the mutex's address after taking the lock, an unlock
//     releases it before letting go (readers like writers: conservative);
//   - waits (Await, CondVar::Wait) release before and acquire after;
//   - a Condition is evaluated by whichever thread holds the lock at the
//     time, so it is wrapped to acquire and release the mutex around Eval;
//   - Notify / DecrementCount release the object's address, the matching
//     waits acquire it.
// Nothing is suppressed: a race in nnserve code is still reported. Inline
// members (e.g. Notification::HasBeenNotified) cannot be intercepted, so
// nnserve code must not rely on them alone to publish data to TSan's eyes.
//
// Not part of the product and never linked into it. Thread-safe: the
// definitions hold no state beyond the resolved function pointers, which
// are initialised once (function-local statics).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/base/config.h"
#include "absl/base/macros.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

static_assert(ABSL_OPTION_USE_INLINE_NAMESPACE == 1,
              "the mangled names below assume absl::<inline namespace>");

namespace {

// Abseil's own definition of the member whose Itanium-mangled name is
// `prefix` ("_ZN" or "_ZNK" for const members) + "4absl" + the inline
// namespace + `member` (e.g. "5Mutex4LockEv"). Aborts if it is missing:
// running without the annotation would report false races.
void* Next(const char* prefix, const char* member) {
  const char* ns = ABSL_INTERNAL_TOKEN_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(prefix) + "4absl" +
                           std::to_string(std::strlen(ns)) + ns + member;
  void* next = dlsym(RTLD_NEXT, name.c_str());
  if (next == nullptr) {
    std::fprintf(stderr,
                 "nnserve_tsan_abseil: %s not found after this library "
                 "(expected Abseil's libabsl_synchronization): %s\n",
                 name.c_str(), dlerror());
    std::abort();
  }
  return next;
}

template <typename F>
F Real(const char* prefix, const char* member) {
  return reinterpret_cast<F>(Next(prefix, member));
}

void* Address(const void* p) { return const_cast<void*>(p); }

// A Condition evaluated with the mutex acquired and released around it, on
// whichever thread evaluates it.
struct Annotated {
  const absl::Condition* condition;
  const absl::Mutex* mutex;
};

// Not instrumented itself: `a` was written by the waiting thread, and it
// is the acquire below that orders what the condition reads.
__attribute__((no_sanitize_thread)) bool EvalAnnotated(void* arg) {
  const Annotated* a = static_cast<const Annotated*>(arg);
  __tsan_acquire(Address(a->mutex));
  const bool result = a->condition->Eval();
  __tsan_release(Address(a->mutex));
  return result;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// ---- Mutex: locks and unlocks ------------------------------------------

void Mutex::Lock() {
  static const auto real = Real<void (*)(Mutex*)>("_ZN", "5Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}

void Mutex::ReaderLock() {
  static const auto real =
      Real<void (*)(Mutex*)>("_ZN", "5Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}

bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("_ZN", "5Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  static const auto real =
      Real<bool (*)(Mutex*)>("_ZN", "5Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>("_ZN", "5Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  static const auto real =
      Real<void (*)(Mutex*)>("_ZN", "5Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}

// ---- Mutex: locks that wait for a condition ----------------------------

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN", "5Mutex8LockWhenERKNS0_9ConditionE");
  Annotated a{&cond, this};
  real(this, Condition(&EvalAnnotated, &a));
  __tsan_acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN", "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Annotated a{&cond, this};
  real(this, Condition(&EvalAnnotated, &a));
  __tsan_acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN", "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Annotated a{&cond, this};
  const bool result = real(this, Condition(&EvalAnnotated, &a), timeout);
  __tsan_acquire(this);  // Locked either way.
  return result;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "_ZN", "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Annotated a{&cond, this};
  const bool result = real(this, Condition(&EvalAnnotated, &a), deadline);
  __tsan_acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN",
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Annotated a{&cond, this};
  const bool result = real(this, Condition(&EvalAnnotated, &a), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "_ZN", "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Annotated a{&cond, this};
  const bool result = real(this, Condition(&EvalAnnotated, &a), deadline);
  __tsan_acquire(this);
  return result;
}

// ---- Mutex: waits with the lock held -----------------------------------

void Mutex::Await(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN", "5Mutex5AwaitERKNS0_9ConditionE");
  Annotated a{&cond, this};
  __tsan_release(this);
  real(this, Condition(&EvalAnnotated, &a));
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN", "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Annotated a{&cond, this};
  __tsan_release(this);
  const bool result = real(this, Condition(&EvalAnnotated, &a), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "_ZN", "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Annotated a{&cond, this};
  __tsan_release(this);
  const bool result = real(this, Condition(&EvalAnnotated, &a), deadline);
  __tsan_acquire(this);
  return result;
}

// ---- CondVar -------------------------------------------------------------

void CondVar::Wait(Mutex* mu) {
  static const auto real =
      Real<void (*)(CondVar*, Mutex*)>("_ZN", "7CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "_ZN", "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  const bool result = real(this, mu, timeout);
  __tsan_acquire(mu);
  return result;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "_ZN", "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  const bool result = real(this, mu, deadline);
  __tsan_acquire(mu);
  return result;
}

// ---- Notification, BlockingCounter --------------------------------------

void Notification::Notify() {
  static const auto real =
      Real<void (*)(Notification*)>("_ZN", "12Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  static const auto real = Real<void (*)(const Notification*)>(
      "_ZNK", "12Notification19WaitForNotificationEv");
  real(this);
  __tsan_acquire(Address(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static const auto real = Real<bool (*)(const Notification*, Duration)>(
      "_ZNK", "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(Address(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static const auto real = Real<bool (*)(const Notification*, Time)>(
      "_ZNK", "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(Address(this));
  return notified;
}

bool BlockingCounter::DecrementCount() {
  static const auto real = Real<bool (*)(BlockingCounter*)>(
      "_ZN", "15BlockingCounter14DecrementCountEv");
  __tsan_release(this);
  return real(this);
}

void BlockingCounter::Wait() {
  static const auto real =
      Real<void (*)(BlockingCounter*)>("_ZN", "15BlockingCounter4WaitEv");
  real(this);
  __tsan_acquire(this);
}

ABSL_NAMESPACE_END
}  // namespace absl
