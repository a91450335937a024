// Compiled, not run, by thread_annotations_test.sh: with no DW_CASE_* defined, the right uses
// of lib/base/mutex.h, which clang must accept; each DW_CASE_* adds one wrong use, which clang's
// -Wthread-safety must refuse. Fails if the annotations stop reaching the analysis.
#include <cstdint>

#include "lib/base/mutex.h"

namespace driftwatch {

class Counter {
 public:
  void Add() {
    MutexLock lock(mu_);
    AddLocked();
    lock.Unlock();
#ifdef DW_CASE_WRITE_AFTER_UNLOCK
    ++count_;
#endif
    lock.Lock();
    ++count_;
    more_.NotifyAll();
  }
  uint64_t WaitAbove(uint64_t n) {
    MutexLock lock(mu_);
#ifdef DW_CASE_PREDICATE_UNANNOTATED
    more_.Wait(lock, [&] { return count_ > n; });
#else
    more_.Wait(lock, [&]() DW_REQUIRES(mu_) { return count_ > n; });
#endif
    return count_;
  }
  uint64_t count() const {
#ifndef DW_CASE_READ_UNLOCKED
    MutexLock lock(mu_);
#endif
    return count_;
  }
#ifdef DW_CASE_CALL_REQUIRES
  void AddUnlocked() { AddLocked(); }
#endif

 private:
  void AddLocked() DW_REQUIRES(mu_) { ++count_; }

  mutable Mutex mu_;
  CondVar more_;
  uint64_t count_ DW_GUARDED_BY(mu_) = 0;
};

class Table {
 public:
  int Get() const {
    ReaderMutexLock lock(mu_);
    return value_;
  }
  void Set(int v) {
#ifdef DW_CASE_WRITE_SHARED
    ReaderMutexLock lock(mu_);
#else
    WriterMutexLock lock(mu_);
#endif
    value_ = v;
  }

 private:
  mutable SharedMutex mu_;
  int value_ DW_GUARDED_BY(mu_) = 0;
};

}  // namespace driftwatch
