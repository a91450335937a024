// argv_caps: how much of an exec's arguments an event keeps, applied where execs are
// assembled (lib/audit) and again where events from other nodes arrive (collector).
#pragma once

#include <cstddef>
#include <cstdint>

#include "driftwatch/v1/event.pb.h"

namespace driftwatch {

// How much of an exec's argv an event keeps. A process in any container can exec with
// megabytes of arguments (the kernel allows 128 KiB per argument and a quarter of the stack
// limit in all), again and again; every stage after the parser would hold them. Falco keeps
// 4 KiB of all arguments together (its modern eBPF probe) and a page in its kernel module,
// silently; driftwatch keeps more, and says when it cut (ProcessExec.args_capped,
// args_dropped_bytes). Arguments are kept in order; each counts its bytes plus its
// terminating NUL against max_bytes, as the kernel counts argv. argc stays exact.
struct ArgvCaps {
  size_t max_bytes = 64 << 10;     // all arguments kept, together
  size_t max_arg_bytes = 4 << 10;  // one argument: a long one cannot crowd out those after it
};

// Applies ArgvCaps to one argv, assembled argument by argument in order.
// Thread-compatible.
class ArgvBudget {
 public:
  explicit ArgvBudget(const ArgvCaps& caps) : caps_(caps) {}
  // A new argument starts (its NUL is counted). False: there is no room left for it at all;
  // it is left out, and so is every argument after it.
  bool StartArg();
  // Of `n` more bytes of the current argument, which holds `have` bytes so far: how many to
  // keep. The rest is counted as dropped.
  size_t Take(size_t have, size_t n);
  // `n` bytes left out whole (an argument with no room, or past one).
  void Drop(size_t n);

  bool capped() const { return capped_; }
  uint64_t dropped_bytes() const { return dropped_; }
  size_t used() const { return used_; }  // bytes kept, NULs included
  const ArgvCaps& caps() const { return caps_; }

 private:
  ArgvCaps caps_;
  size_t used_ = 0;
  uint64_t dropped_ = 0;
  bool capped_ = false;
};

// Caps an exec event's arguments as the sensor would have: for events from a sensor that
// did not (an older or a lying one). True when it cut anything (then args_capped is set
// and args_dropped_bytes grown).
bool CapExecArgs(v1::ProcessExec* exec, const ArgvCaps& caps);

}  // namespace driftwatch
