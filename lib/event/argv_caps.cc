#include "lib/event/argv_caps.h"

#include <algorithm>
#include <string>

namespace driftwatch {

bool ArgvBudget::StartArg() {
  if (used_ >= caps_.max_bytes) {
    capped_ = true;
    return false;
  }
  ++used_;
  return true;
}

size_t ArgvBudget::Take(size_t have, size_t n) {
  size_t room = have < caps_.max_arg_bytes ? caps_.max_arg_bytes - have : 0;
  room = std::min(room, caps_.max_bytes - used_);
  const size_t keep = std::min(n, room);
  used_ += keep;
  if (keep < n) Drop(n - keep);
  return keep;
}

void ArgvBudget::Drop(size_t n) {
  dropped_ += n;
  capped_ = true;
}

bool CapExecArgs(v1::ProcessExec* exec, const ArgvCaps& caps) {
  ArgvBudget budget(caps);
  int keep = exec->args_size();
  for (int i = 0; i < exec->args_size(); ++i) {
    std::string* a = exec->mutable_args(i);
    if (i < keep && budget.StartArg()) {
      a->resize(budget.Take(0, a->size()));
    } else {
      keep = std::min(keep, i);
      budget.Drop(a->size());
    }
  }
  if (!budget.capped()) return false;
  exec->mutable_args()->DeleteSubrange(keep, exec->args_size() - keep);
  exec->set_args_capped(true);
  exec->set_args_dropped_bytes(exec->args_dropped_bytes() + budget.dropped_bytes());
  return true;
}

}  // namespace driftwatch
