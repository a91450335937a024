// Locks that clang's thread-safety analysis knows (lib/base/thread_annotations.h).
//
// libstdc++'s std::mutex carries no annotations, so a member marked DW_GUARDED_BY(mu_) is
// checked only when mu_ is one of these and is taken through MutexLock (or the shared
// locks). They wrap the standard types and add nothing at run time.
//
//   Mutex mu_;
//   std::deque<Item> queue_ DW_GUARDED_BY(mu_);
//   CondVar ready_;
//   ...
//   MutexLock lock(mu_);
//   ready_.Wait(lock, [this]() DW_REQUIRES(mu_) { return !queue_.empty(); });
//
// A condition variable's predicate runs with the lock held, which the analysis cannot see
// through the call: the lambda says so with DW_REQUIRES, and its body is then checked.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <utility>

#include "lib/base/thread_annotations.h"

namespace driftwatch {

// Taken only through a MutexLock, so that no path leaves it held. Not copyable (std::mutex).
class DW_CAPABILITY("mutex") Mutex {
  friend class MutexLock;
  std::mutex mu_;
};

// Holds a Mutex from construction to destruction; Unlock() and Lock() let go of it and take
// it back in between (the analysis follows both).
class DW_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) DW_ACQUIRE(mu) : lock_(mu.mu_) {}
  ~MutexLock() DW_RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() DW_RELEASE() { lock_.unlock(); }
  void Lock() DW_ACQUIRE() { lock_.lock(); }

 private:
  friend class CondVar;
  std::unique_lock<std::mutex> lock_;
};

// std::condition_variable waited on through a MutexLock. Each wait returns with the lock
// held and `pred` true, or (WaitFor, WaitUntil) false when the time ran out first.
class CondVar {
 public:
  template <class Pred>
  void Wait(MutexLock& lock, Pred pred) {
    cv_.wait(lock.lock_, std::move(pred));
  }
  template <class Rep, class Period, class Pred>
  bool WaitFor(MutexLock& lock, const std::chrono::duration<Rep, Period>& timeout, Pred pred) {
    return cv_.wait_for(lock.lock_, timeout, std::move(pred));
  }
  template <class Clock, class Duration, class Pred>
  bool WaitUntil(MutexLock& lock, const std::chrono::time_point<Clock, Duration>& deadline,
                 Pred pred) {
    return cv_.wait_until(lock.lock_, deadline, std::move(pred));
  }
  void NotifyOne() noexcept { cv_.notify_one(); }
  void NotifyAll() noexcept { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

// A readers-writer lock: ReaderMutexLock shares it, WriterMutexLock holds it alone.
class DW_CAPABILITY("mutex") SharedMutex {
  friend class ReaderMutexLock;
  friend class WriterMutexLock;
  std::shared_mutex mu_;
};

class DW_SCOPED_CAPABILITY ReaderMutexLock {
 public:
  explicit ReaderMutexLock(SharedMutex& mu) DW_ACQUIRE_SHARED(mu) : mu_(mu.mu_) {
    mu_.lock_shared();
  }
  ~ReaderMutexLock() DW_RELEASE() { mu_.unlock_shared(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  std::shared_mutex& mu_;
};

class DW_SCOPED_CAPABILITY WriterMutexLock {
 public:
  explicit WriterMutexLock(SharedMutex& mu) DW_ACQUIRE(mu) : mu_(mu.mu_) { mu_.lock(); }
  ~WriterMutexLock() DW_RELEASE() { mu_.unlock(); }
  WriterMutexLock(const WriterMutexLock&) = delete;
  WriterMutexLock& operator=(const WriterMutexLock&) = delete;

 private:
  std::shared_mutex& mu_;
};

}  // namespace driftwatch
