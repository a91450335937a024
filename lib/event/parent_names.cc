#include "lib/event/parent_names.h"

#include <algorithm>

#include "lib/event/event_view.h"

namespace driftwatch {

const ParentNames::Comm* ParentNames::Find(uint32_t pid) {
  if (auto it = young_.find(pid); it != young_.end()) return &it->second;
  auto it = old_.find(pid);
  if (it == old_.end()) return nullptr;
  // Used again: it moves to the young generation, which the next turn keeps.
  Comm c = it->second;
  old_.erase(it);
  if (young_.size() >= generation_) Turn();
  return &young_.emplace(pid, c).first->second;
}

void ParentNames::Turn() {
  old_ = std::move(young_);
  young_.clear();
  young_.reserve(generation_);
}

void ParentNames::Remember(uint32_t pid, std::string_view comm) {
  Comm c;
  c.size = static_cast<uint8_t>(std::min(comm.size(), c.bytes.size()));
  std::copy_n(comm.data(), c.size, c.bytes.data());
  old_.erase(pid);
  if (auto it = young_.find(pid); it != young_.end()) {
    it->second = c;
    return;
  }
  if (young_.size() >= generation_) Turn();
  young_.emplace(pid, c);
}

void ParentNames::Name(v1::Event* ev) {
  const std::optional<ProcessView> view = ProcessOf(*ev);
  if (!view || !view->Carries(ProcessView::kParentName) || !view->Carries(ProcessView::kPpid))
    return;
  std::string name;
  if (const Comm* parent = Find(view->ppid)) {
    name.assign(parent->view());
  } else if (std::optional<std::string> comm = fallback_ ? fallback_(view->ppid, ev->time_ns())
                                                         : std::nullopt) {
    Remember(view->ppid, *comm);
    name = std::move(*comm);
    if (name.size() > Comm{}.bytes.size()) name.resize(Comm{}.bytes.size());
  }
  SetParentName(ev, name);
  if (view->exec != nullptr && view->exec->success()) Remember(view->pid, view->exec->comm());
}

}  // namespace driftwatch
