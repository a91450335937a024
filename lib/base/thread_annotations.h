// Clang's thread-safety attributes (-Wthread-safety), empty under other compilers.
//
// Which lock guards a member, which a function needs held or must not hold, and which
// functions take and give back a lock: written as code, so that the clang build
// (DW_THREAD_SAFETY, turned on by scripts/test.sh) checks every access and fails on one
// made without the lock. The lock types that carry them are in lib/mutex.h.
//
// Prefixed DW_: gRPC's Abseil headers still define the unprefixed GUARDED_BY and
// NO_THREAD_SAFETY_ANALYSIS, differently, and both are included in the same files.
#pragma once

#if defined(__clang__)
#define DW_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define DW_THREAD_ANNOTATION(x)
#endif

// A type that is a lock ("mutex"), and a type that holds one for its lifetime.
#define DW_CAPABILITY(name) DW_THREAD_ANNOTATION(capability(name))
#define DW_SCOPED_CAPABILITY DW_THREAD_ANNOTATION(scoped_lockable)
// The member may be read or written only with the lock held (PT_: the data it points to).
#define DW_GUARDED_BY(mu) DW_THREAD_ANNOTATION(guarded_by(mu))
#define DW_PT_GUARDED_BY(mu) DW_THREAD_ANNOTATION(pt_guarded_by(mu))
// The caller holds the lock (exclusively, or at least shared); the caller must not hold it.
#define DW_REQUIRES(...) DW_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define DW_REQUIRES_SHARED(...) DW_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define DW_EXCLUDES(...) DW_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// The function takes the lock (exclusively or shared), or gives it back.
#define DW_ACQUIRE(...) DW_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define DW_ACQUIRE_SHARED(...) DW_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define DW_RELEASE(...) DW_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
// The function is not checked; each use says why on the same line.
#define DW_NO_THREAD_SAFETY_ANALYSIS DW_THREAD_ANNOTATION(no_thread_safety_analysis)
