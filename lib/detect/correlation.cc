#include "lib/detect/correlation.h"

#include <algorithm>

#include "lib/event/event_json.h"
#include "lib/event/event_view.h"
#include "lib/event/exe_file.h"
#include "lib/event/file_digest.h"

namespace driftwatch {
namespace {

// Whether the file an exec ran is known to be on another device than the container's
// rootfs overlay (a volume). False when either device is unknown.
bool OnOtherDevice(const v1::ContainerInfo* info, const v1::ProcessExec& e) {
  if (info == nullptr || (info->rootfs_dev_major() == 0 && info->rootfs_dev_minor() == 0))
    return false;
  const bool by_file = e.exe_file_inode() != 0;
  const uint32_t major = by_file ? e.exe_file_dev_major() : e.exe_dev_major();
  const uint32_t minor = by_file ? e.exe_file_dev_minor() : e.exe_dev_minor();
  if ((by_file ? e.exe_file_inode() : e.exe_inode()) == 0) return false;
  return major != info->rootfs_dev_major() || minor != info->rootfs_dev_minor();
}

std::string ContainerKey(const std::string& node, const std::string& id) {
  return node + '\x1f' + id;
}

// A comm that names no program: busybox applets and fexecve run as "exe" or a digit.
bool CommUninformative(const std::string& comm) {
  return comm.empty() || comm == "exe" ||
         std::all_of(comm.begin(), comm.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

struct Correlator::Proc {
  uint32_t pid = 0;
  uint32_t ppid = 0;
  int64_t start_ns = 0;  // first exec of this process (a re-exec keeps it)
  std::string name, exepath, cmdline;
  std::string exe_file;  // the script or loaded program it runs; empty: exepath
  ProcessInfo::Origin origin = ProcessInfo::Origin::kUnknown;
  std::string argv0 = {};  // its proc.exe (argv[0])
  int64_t fork_ns = 0;   // its start as the sensor read it (ProcessExec.start_time_ns); 0 unknown
};

struct Correlator::ProcSlot {
  Proc proc;
  std::list<uint64_t>::iterator order;
  size_t bytes = 0;  // what this entry costs, for the byte bound
};

namespace {

size_t HeapBytes(const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; }

// proc.exe of an exec: argv[0], or exe when argv was empty.
std::string Argv0(const v1::ProcessExec& e) { return e.args_size() > 0 ? e.args(0) : e.exe(); }

}  // namespace

// One file's content as the container's writes and chmods made it: shared by every path
// that names it (hard links, the name a rename gave it), so that an exec through any of
// them joins the write whichever of its events arrived first.
struct Correlator::FileNode {
  FileHistory hist;
  uint64_t inode = 0;              // on the upper layer's filesystem; 0: unknown
  std::vector<std::string> paths;  // the records naming it, at most kMaxLinks
  std::string unlinked_path;       // its last name, once deleted
};

struct Correlator::FileRecord {
  std::string path;
  std::shared_ptr<FileNode> node;
  std::list<std::string>::iterator order;
};

struct Correlator::PendingExec {
  std::shared_ptr<const v1::Event> ev;
  std::vector<std::string> paths;
  uint64_t inode = 0;
  std::vector<ProcessInfo> lineage;
  bool matched = false;
};

struct Correlator::ContainerState {
  std::string node;
  std::shared_ptr<const v1::ContainerInfo> info;
  ImageVerdict image;  // info against the policy: on each container event and policy change
  std::string entrypoint;
  bool entrypoint_is_init = false;
  bool removed = false;
  int64_t removed_ns = 0;  // the removal event's time
  bool cleared = false;    // its per-file state dropped (a window after the removal)
  std::unordered_map<std::string, FileRecord> files;  // by path inside the container
  std::list<std::string> file_order;                  // oldest change first
  std::unordered_map<uint64_t, std::shared_ptr<FileNode>> by_inode;
  // Files written at runtime whose last name was deleted, newest last: a process that
  // holds one open can still run it by its fd (execveat, /proc/self/fd/N). Bounded.
  std::deque<std::shared_ptr<FileNode>> unlinked;
  std::deque<PendingExec> pending;                    // arrival order
  int64_t newest_ns = 0;                              // latest event time seen here
  uint32_t node_id = 0;
  std::list<std::string>::iterator order;             // in its node's share
};

Correlator::Correlator(CorrelationOptions opt) : opt_(opt) {}
Correlator::~Correlator() = default;

void Correlator::SetImagePolicy(std::shared_ptr<const ImagePolicy> policy) {
  policy_ = std::move(policy);
  for (auto& [key, cs] : containers_)
    if (cs->info) cs->image = CheckImage(*cs->info);
}

ImageVerdict Correlator::CheckImage(const v1::ContainerInfo& info) const {
  return policy_ ? policy_->Check(info) : CheckPosture(info);
}

size_t Correlator::process_count() const { return procs_.size(); }
size_t Correlator::file_count(const std::string& node, const std::string& id) const {
  const ContainerState* cs = FindState(node, id);
  return cs ? cs->files.size() : 0;
}

const Correlator::ContainerState* Correlator::FindState(const std::string& node,
                                                        const std::string& id) const {
  auto it = containers_.find(ContainerKey(node, id));
  return it == containers_.end() ? nullptr : it->second.get();
}

Correlator::ContainerState& Correlator::State(const std::string& node, const std::string& id) {
  const std::string key = ContainerKey(node, id);
  auto it = containers_.find(key);
  if (it != containers_.end()) return *it->second;
  const uint32_t nid = NodeId(node);
  NodeShare& share = shares_[nid];
  auto cs = std::make_unique<ContainerState>();
  cs->node = node;
  cs->node_id = nid;
  cs->order = share.containers.insert(share.containers.end(), key);
  ++share.container_count;
  ContainerState& ref = *cs;
  containers_.emplace(key, std::move(cs));
  // The node's quota first (its own oldest go), then the global bound (from the node that
  // holds the most). The container just added is the newest: it never goes here.
  while (share.container_count > opt_.max_containers_per_node && share.container_count > 1) {
    EvictContainer(share);
    ++share.quota_evictions;
    ++stats_.quota_evictions;
  }
  while (containers_.size() > opt_.max_containers && containers_.size() > 1) {
    NodeShare& big = Largest(false);
    if (big.container_count <= (&big == &share ? 1u : 0u)) break;
    EvictContainer(big);
  }
  return ref;
}

void Correlator::EvictContainer(NodeShare& share) {
  // Removed containers go first, then the oldest.
  std::string victim;
  while (!share.removed.empty() && victim.empty()) {
    if (containers_.contains(share.removed.front())) victim = share.removed.front();
    share.removed.pop_front();
  }
  if (victim.empty()) {
    if (share.containers.empty()) return;
    victim = share.containers.front();
  }
  auto it = containers_.find(victim);
  if (it == containers_.end()) {
    share.containers.remove(victim);
    return;
  }
  share.containers.erase(it->second->order);
  --share.container_count;
  containers_.erase(it);
  ++stats_.containers_evicted;
}

Correlator::NodeShare& Correlator::Largest(bool by_procs) {
  NodeShare* big = &shares_.front();
  for (NodeShare& n : shares_) {
    if (by_procs ? n.proc_bytes > big->proc_bytes : n.container_count > big->container_count)
      big = &n;
  }
  return *big;
}

void Correlator::EvictProc(NodeShare& share) {
  if (share.procs.empty()) return;
  auto victim = procs_.find(share.procs.front());
  if (victim != procs_.end()) {
    proc_bytes_ -= victim->second.bytes;
    share.proc_bytes -= victim->second.bytes;
    procs_.erase(victim);
  }
  share.procs.pop_front();
  ++stats_.processes_evicted;
}

std::vector<std::pair<std::string, uint64_t>> Correlator::QuotaEvictions() const {
  std::vector<std::pair<std::string, uint64_t>> out;
  for (const NodeShare& n : shares_)
    if (n.quota_evictions > 0) out.emplace_back(n.name, n.quota_evictions);
  return out;
}

const v1::ContainerInfo* Correlator::Container(const std::string& node,
                                               const std::string& id) const {
  const ContainerState* cs = FindState(node, id);
  return cs ? cs->info.get() : nullptr;
}

bool Correlator::ContainerContext(const std::string& node, const std::string& id,
                                  RuleContext* ctx) const {
  const ContainerState* cs = FindState(node, id);
  if (cs == nullptr || !cs->info) return false;
  FillContainer(cs, ctx);
  return true;
}

const Correlator::Proc* Correlator::FindProc(const std::string& node, uint32_t pid) const {
  auto n = node_ids_.find(node);
  if (n == node_ids_.end()) return nullptr;
  auto it = procs_.find(ProcKey(n->second, pid));
  return it == procs_.end() ? nullptr : &it->second.proc;
}

void Correlator::NameWriter(const std::string& node, FileHistory* h) const {
  // A file's write (fanotify) can arrive before its writer's exec (audit): name it later.
  if (!h->writer_name.empty() || h->writer_pid == 0) return;
  if (const Proc* w = FindProc(node, h->writer_pid)) {
    h->writer_name = w->name;
    if (h->writer_exepath.empty()) h->writer_exepath = w->exepath;
  }
}

std::vector<ProcessInfo> Correlator::Lineage(const std::string& node, uint32_t ppid,
                                             int64_t child_start,
                                             const std::string& parent_name) const {
  std::vector<ProcessInfo> out;
  uint32_t pid = ppid;
  while (pid != 0 && out.size() < opt_.max_lineage) {
    const Proc* p = FindProc(node, pid);
    // Unknown, or younger than its child: that pid now names another process.
    if (p == nullptr || (child_start != 0 && p->start_ns > child_start)) break;
    out.push_back({p->pid, p->name, p->exepath, p->cmdline, p->origin,
                   p->exe_file.empty() ? p->exepath : p->exe_file});
    out.back().exe = p->argv0;
    out.back().start_ns = p->fork_ns;
    if (p->ppid == p->pid) break;
    child_start = p->start_ns;
    pid = p->ppid;
  }
  if (out.empty() && ppid != 0 && !parent_name.empty()) {
    // The kernel's comm of the parent, at least: a name only, from nowhere known.
    out.push_back({ppid, parent_name, "", "", ProcessInfo::Origin::kUnknown, ""});
  }
  return out;
}

size_t Correlator::EntryBytes(const Proc& p) {
  // The slot in its hash node, the list node, and the strings' heaps.
  return sizeof(ProcSlot) + 4 * sizeof(void*) + sizeof(uint64_t) + HeapBytes(p.name) +
         HeapBytes(p.exepath) + HeapBytes(p.cmdline) + HeapBytes(p.argv0) + 16;
}

uint64_t Correlator::ProcKey(uint32_t node_id, uint32_t pid) {
  return (static_cast<uint64_t>(node_id) << 32) | pid;
}

uint32_t Correlator::NodeId(const std::string& node) {
  auto [it, added] = node_ids_.try_emplace(node, static_cast<uint32_t>(shares_.size()));
  if (added) shares_.emplace_back().name = node;
  return it->second;
}

Correlator::Proc* Correlator::RecordExec(const std::string& node, const v1::Event& ev, int64_t* start_ns) {
  const v1::ProcessExec& e = ev.exec();
  const uint32_t nid = NodeId(node);
  NodeShare& share = shares_[nid];
  const uint64_t key = ProcKey(nid, e.pid());
  Proc* recorded = nullptr;
  auto it = procs_.find(key);
  *start_ns = ev.time_ns();
  if (it != procs_.end()) {
    Proc& p = it->second.proc;
    recorded = &p;
    if (!e.success()) {  // the process image did not change
      *start_ns = p.start_ns;
      return nullptr;
    }
    // The same process exec'ing again keeps its start; a reused pid starts anew.
    if (p.ppid == e.ppid() && p.start_ns <= ev.time_ns()) *start_ns = p.start_ns;
    p = Proc{e.pid(), e.ppid(), *start_ns, std::string(ProcessName(e)), e.exe(),
             CommandLine(e), e.exe_file()};
    p.argv0 = Argv0(e);
    p.fork_ns = e.start_time_ns();
    proc_bytes_ -= it->second.bytes;
    share.proc_bytes -= it->second.bytes;
    it->second.bytes = EntryBytes(p);
    proc_bytes_ += it->second.bytes;
    share.proc_bytes += it->second.bytes;
    share.procs.splice(share.procs.end(), share.procs, it->second.order);
  } else {
    if (!e.success()) return nullptr;
    ProcSlot& slot = procs_[key];
    recorded = &slot.proc;
    slot.proc = Proc{e.pid(), e.ppid(), *start_ns, std::string(ProcessName(e)), e.exe(),
                     CommandLine(e), e.exe_file()};
    slot.proc.argv0 = Argv0(e);
    slot.proc.fork_ns = e.start_time_ns();
    slot.order = share.procs.insert(share.procs.end(), key);
    slot.bytes = EntryBytes(slot.proc);
    proc_bytes_ += slot.bytes;
    share.proc_bytes += slot.bytes;
  }
  // The node's quota first (its own oldest exec goes), then the global bounds (from the
  // node that holds the most).
  while (share.procs.size() > 1 && (share.procs.size() > opt_.max_processes_per_node ||
                                    share.proc_bytes > opt_.max_process_bytes_per_node)) {
    EvictProc(share);
    ++share.quota_evictions;
    ++stats_.quota_evictions;
  }
  while ((procs_.size() > opt_.max_processes || proc_bytes_ > opt_.max_process_bytes) &&
         procs_.size() > 1) {
    NodeShare& big = Largest(true);
    if (big.procs.size() <= (&big == &share ? 1u : 0u)) break;
    EvictProc(big);
  }
  // The entry just recorded is its node's newest: the bounds above never evict it.
  return recorded;
}

Correlator::FileRecord* Correlator::FindFile(ContainerState& cs,
                                             const std::vector<std::string>& paths,
                                             uint64_t inode) {
  FileRecord* by_path = nullptr;
  for (const std::string& p : paths) {
    if (p.empty()) continue;
    auto it = cs.files.find(p);
    if (it != cs.files.end()) {
      by_path = &it->second;
      break;
    }
  }
  // The path names this inode, or nothing better is known: the path decides.
  if (by_path != nullptr && (inode == 0 || by_path->node->inode == inode)) return by_path;
  if (inode != 0) {
    auto in = cs.by_inode.find(inode);
    if (in != cs.by_inode.end() && !in->second->paths.empty()) {
      auto it = cs.files.find(in->second->paths.front());
      if (it != cs.files.end()) return &it->second;
    }
  }
  return by_path;
}

Correlator::FileNode* Correlator::FindUnlinked(ContainerState& cs, uint64_t inode,
                                               const std::vector<std::string>& paths) {
  for (auto it = cs.unlinked.rbegin(); it != cs.unlinked.rend(); ++it) {
    FileNode& f = **it;
    if (inode != 0 && f.inode == inode) return &f;
    if (f.inode != 0) continue;
    // Its inode unknown: the exec names it "<its last path> (deleted)".
    for (const std::string& p : paths)
      if (std::string_view was = DeletedExePath(p); !was.empty() && was == f.unlinked_path)
        return &f;
  }
  return nullptr;
}

void Correlator::Detach(ContainerState& cs, FileRecord& r) {
  if (!r.node) return;
  std::vector<std::string>& v = r.node->paths;
  if (auto p = std::find(v.begin(), v.end(), r.path); p != v.end()) v.erase(p);
  if (v.empty() && r.node->inode != 0) {
    auto in = cs.by_inode.find(r.node->inode);
    if (in != cs.by_inode.end() && in->second == r.node) cs.by_inode.erase(in);
  }
  r.node.reset();
}

void Correlator::Attach(ContainerState& cs, FileRecord& r, std::shared_ptr<FileNode> node) {
  Detach(cs, r);
  node->paths.push_back(r.path);
  if (node->inode != 0) cs.by_inode.try_emplace(node->inode, node);
  r.node = std::move(node);
}

Correlator::FileRecord& Correlator::UpsertFile(ContainerState& cs, const std::string& path,
                                               uint64_t inode, std::shared_ptr<FileNode> moved) {
  auto [it, inserted] = cs.files.try_emplace(path);
  FileRecord& r = it->second;
  if (inserted) {
    r.path = path;
    r.order = cs.file_order.insert(cs.file_order.end(), path);
  } else {
    cs.file_order.splice(cs.file_order.end(), cs.file_order, r.order);
  }
  if (moved) {
    if (inode != 0 && moved->inode == 0) moved->inode = inode;
    Attach(cs, r, std::move(moved));
  } else if (inserted || (inode != 0 && inode != r.node->inode)) {
    // A content already known by its inode under another name (a hard link): share it.
    // A bounded number of names share one node: more links of one file each get a copy.
    std::shared_ptr<FileNode> linked;
    const FileNode* full = nullptr;  // the file's node, already at kMaxLinks names
    if (inode != 0) {
      auto in = cs.by_inode.find(inode);
      if (in != cs.by_inode.end()) {
        if (in->second->paths.size() < kMaxLinks) {
          linked = in->second;
        } else {
          full = in->second.get();
        }
      }
    }
    if (!linked) {
      linked = std::make_shared<FileNode>();
      linked->inode = inode;
      if (full != nullptr) {
        linked->hist = full->hist;  // one more link of a known file: its history, copied
      } else if (!inserted) {
        // Other content at a known path: what was known of the path stays (as before links).
        linked->hist = r.node->hist;
      }
    }
    Attach(cs, r, std::move(linked));
  }
  while (cs.files.size() > opt_.max_files_per_container && cs.file_order.front() != path) {
    EraseFile(cs, cs.file_order.front());
    ++stats_.files_evicted;
  }
  return r;
}

void Correlator::EraseFile(ContainerState& cs, const std::string& path) {
  auto it = cs.files.find(path);
  if (it == cs.files.end()) return;
  Detach(cs, it->second);
  cs.file_order.erase(it->second.order);
  cs.files.erase(it);
}

void Correlator::FillContainer(const ContainerState* cs, RuleContext* ctx) const {
  if (cs == nullptr) return;
  if (cs->info) {
    ctx->container = cs->info.get();
    ctx->container_owner = cs->info;
    ctx->container_start_ns = cs->info->start_time_ns();
    ctx->image = cs->image;
  }
  ctx->container_entrypoint = cs->entrypoint;
}

void Correlator::MatchPending(const std::string& node, ContainerState& cs, const FileRecord& rec,
                              std::vector<RuleContext>* reevaluate) {
  const int64_t window = opt_.window.count();
  for (PendingExec& pe : cs.pending) {
    if (pe.matched) continue;
    // The exec ran this file by its inode or by any of its names (hard links), or by its fd
    // once it was unlinked ("<name> (deleted)"): an exec read before the file's write, whose
    // inode the watcher could not learn (the file was gone when it looked).
    const FileNode& file = *rec.node;
    auto named = [&pe](const std::string& p) {
      return std::find(pe.paths.begin(), pe.paths.end(), p) != pe.paths.end() ||
             std::find(pe.paths.begin(), pe.paths.end(), p + " (deleted)") != pe.paths.end();
    };
    bool same = (file.inode != 0 && pe.inode == file.inode) ||
                std::any_of(file.paths.begin(), file.paths.end(), named);
    if (!same) continue;
    const FileHistory& hist = file.hist;
    const int64_t change_ns = hist.written_at_runtime ? hist.written_ns : hist.chmod_ns;
    if (change_ns > pe.ev->time_ns() + window) continue;  // changed after that exec ran
    pe.matched = true;
    ++stats_.late_matches;
    if (reevaluate == nullptr) continue;
    RuleContext ctx;
    ctx.event = pe.ev.get();
    ctx.event_owner = pe.ev;
    ctx.lineage = pe.lineage;
    ctx.file = hist;
    NameWriter(node, &ctx.file);
    FillContainer(&cs, &ctx);
    reevaluate->push_back(std::move(ctx));
  }
}

void Correlator::SweepPending() {
  // Containers that went quiet keep their last execs until swept here: drop those older
  // than the window before the newest event of their node; and the per-file state of
  // containers removed a window before it.
  for (auto& [key, cs] : containers_) {
    auto newest = node_newest_ns_.find(cs->node);
    if (newest == node_newest_ns_.end()) continue;
    while (!cs->pending.empty() &&
           cs->pending.front().ev->time_ns() < newest->second - opt_.window.count()) {
      cs->pending.pop_front();
    }
    if (cs->removed && !cs->cleared && cs->removed_ns < newest->second - opt_.window.count())
      ClearFiles(cs.get());
  }
}

void Correlator::ClearFiles(ContainerState* cs) {
  cs->cleared = true;
  cs->files.clear();
  cs->file_order.clear();
  cs->by_inode.clear();
  cs->unlinked.clear();
  cs->pending.clear();
}

bool Correlator::Gone(const ContainerState& cs, int64_t time_ns) const {
  return cs.removed && (cs.cleared || time_ns > cs.removed_ns + opt_.window.count());
}

void Correlator::OnContainer(const std::string& node, const v1::Event& ev) {
  const v1::ContainerInfo& c = ev.container();
  const std::string& id = c.id().empty() ? ev.container_id() : c.id();
  if (id.empty()) return;
  ContainerState& cs = State(node, id);
  cs.info = std::make_shared<const v1::ContainerInfo>(c);
  cs.image = CheckImage(c);
  if (c.state() == "removed" && !cs.removed) {
    cs.removed = true;
    cs.removed_ns = ev.time_ns();
    // Late events still name it, and the sensor's removal (from the cgroup's end) can
    // overtake the container's last execs and writes (from the audit and fanotify
    // readers): its per-file state serves them for a window (SweepPending drops it).
    shares_[cs.node_id].removed.push_back(ContainerKey(node, id));
  }
}

RuleContext Correlator::Observe(const std::string& node, const v1::Event& ev,
                                std::vector<RuleContext>* reevaluate) {
  RuleContext ctx;
  ctx.event = &ev;
  const int64_t window = opt_.window.count();

  const Kind kind = KindOf(ev);
  if (kind == Kind::kContainer) {
    OnContainer(node, ev);
    const std::string& id = ev.container().id().empty() ? ev.container_id() : ev.container().id();
    FillContainer(FindState(node, id), &ctx);
    return ctx;
  }
  // Only events with a process (exec, chmod, file write) have lineage and file history.
  if (!ProcessOf(ev)) return ctx;

  int64_t& node_newest = node_newest_ns_[node];
  node_newest = std::max(node_newest, ev.time_ns());
  if (++observed_ % 4096 == 0) SweepPending();
  ContainerState& cs = State(node, ev.container_id());
  if (!cs.cleared && Gone(cs, ev.time_ns())) ClearFiles(&cs);
  cs.newest_ns = std::max(cs.newest_ns, ev.time_ns());
  // Execs older than the window can no longer meet a late write.
  while (!cs.pending.empty() && cs.pending.front().ev->time_ns() < cs.newest_ns - window) {
    cs.pending.pop_front();
  }

  if (kind == Kind::kExec) {
    const v1::ProcessExec& e = ev.exec();
    int64_t start_ns = 0;
    Proc* self = RecordExec(node, ev, &start_ns);
    ctx.lineage = Lineage(node, e.ppid(), start_ns, e.parent_name());
    // The file actually run (a script, a loader's program) first, then exe and PATH's name.
    std::vector<std::string> paths;
    if (e.exe_file().starts_with("/")) paths.push_back(e.exe_file());
    for (std::string p : {e.success() ? JoinPath(e.exe(), "/") : std::string(),
                          JoinPath(e.path(), e.cwd())}) {
      if (!p.empty() && std::find(paths.begin(), paths.end(), p) == paths.end())
        paths.push_back(std::move(p));
    }
    const uint64_t inode = e.exe_file_inode() != 0 ? e.exe_file_inode() : e.exe_inode();
    // The inode joins only an exec of an upper-layer file: an image (lower-layer) binary
    // never ran what was written at runtime, whatever inode number a write elsewhere (a
    // volume on another filesystem) happened to have. Not in the upper layer means in the
    // image only for a file on the container's rootfs overlay: one on a volume (another
    // device) may well have been written at runtime.
    const bool lower = e.has_is_exe_upper_layer() && !e.is_exe_upper_layer() &&
                       !OnOtherDevice(cs.info.get(), e);
    FileRecord* rec = FindFile(cs, paths, lower ? 0 : inode);
    // No name has it now: a file deleted after it was written, run by an fd held open.
    FileNode* gone = rec == nullptr && !lower ? FindUnlinked(cs, inode, paths) : nullptr;
    if (rec != nullptr || gone != nullptr) {
      FileHistory& hist = rec != nullptr ? rec->node->hist : gone->hist;
      NameWriter(node, &hist);
      ctx.file = hist;
      // A write later than the exec (beyond the window) is not what this exec ran.
      if (hist.written_at_runtime && hist.written_ns > ev.time_ns() + window) {
        ctx.file.written_at_runtime = false;
      }
    }
    if (self != nullptr) {
      // Its children's allowlists ask where this process's executable came from.
      using Origin = ProcessInfo::Origin;
      self->origin = ctx.file.written_at_runtime     ? Origin::kUpper
                     : !e.has_is_exe_upper_layer() ? Origin::kUnknown
                     : e.is_exe_upper_layer()      ? Origin::kUpper
                                                   : Origin::kImage;
    }
    if (!e.runtime_plumbing() && e.success() && !Gone(cs, ev.time_ns())) {
      if (cs.info && cs.info->init_pid() != 0 && cs.info->init_pid() == e.pid() &&
          !cs.entrypoint_is_init) {
        cs.entrypoint = e.exe();
        cs.entrypoint_is_init = true;
      } else if (cs.entrypoint.empty()) {
        cs.entrypoint = e.exe();
      }
    }
    // Kept for a late write only if it can have one: an exec the sensor saw run an image
    // (lower-layer) file never ran a file written at runtime. Unknown (offline logs): kept.
    const bool from_image = lower;
    if (!ctx.file.written_at_runtime && !e.runtime_plumbing() && !Gone(cs, ev.time_ns()) && !from_image &&
        opt_.max_pending_execs_per_container > 0) {
      PendingExec pe;
      pe.ev = std::make_shared<const v1::Event>(ev);
      pe.paths = std::move(paths);
      pe.inode = inode;
      pe.lineage = ctx.lineage;
      cs.pending.push_back(std::move(pe));
      while (cs.pending.size() > opt_.max_pending_execs_per_container) {
        cs.pending.pop_front();
        ++stats_.pending_evicted;
      }
    }
  } else if (kind == Kind::kNetwork) {
    // The caller's ancestry (proc.aname, proc.pname of network rules); no file state.
    const v1::NetworkActivity& n = ev.network();
    const Proc* p = FindProc(node, n.pid());
    ctx.lineage = Lineage(node, n.ppid(), p ? p->start_ns : 0, n.parent_name());
  } else if (kind == Kind::kChmod) {
    const v1::Chmod& c = ev.chmod();
    const Proc* p = FindProc(node, c.pid());
    ctx.lineage = Lineage(node, c.ppid(), p ? p->start_ns : 0, c.parent_name());
    const std::string path = JoinPath(c.path(), c.cwd());
    FileRecord* rec = FindFile(cs, {path}, c.inode());
    if (c.success() && c.adds_exec() && !Gone(cs, ev.time_ns()) && (rec != nullptr || !path.empty())) {
      if (rec == nullptr) rec = &UpsertFile(cs, path, c.inode());
      FileHistory& hist = rec->node->hist;
      hist.chmod_exec = true;
      hist.chmod_ns = ev.time_ns();
      hist.chmod_by = p ? p->name : c.comm();
      MatchPending(node, cs, *rec, reevaluate);
    }
    if (rec != nullptr) ctx.file = rec->node->hist;
  } else if (kind == Kind::kRead || kind == Kind::kPrevented) {
    // The reader's (the denied caller's) ancestry; neither changes what a file holds.
    const uint32_t pid = ProcessOf(ev)->pid;
    const Proc* p = pid != 0 ? FindProc(node, pid) : nullptr;
    if (p != nullptr) ctx.lineage = Lineage(node, p->ppid, p->start_ns, "");
  } else {
    const v1::FileWrite& w = ev.write();
    const Proc* p = w.pid() != 0 ? FindProc(node, w.pid()) : nullptr;
    if (p != nullptr) ctx.lineage = Lineage(node, p->ppid, p->start_ns, "");
    const std::string& kind = w.kind();
    const std::string path = JoinPath(w.path(), "/");
    if (kind == "delete") {
      if (FileRecord* rec = FindFile(cs, {path}, 0)) {
        ctx.file = rec->node->hist;
        std::shared_ptr<FileNode> file = rec->node;
        EraseFile(cs, path);
        // Kept with its inode, or by its last name when the sensor never learnt the inode
        // (the file was gone before it looked): the exec then names "<path> (deleted)".
        if (file->paths.empty() && (file->hist.written_at_runtime || file->hist.chmod_exec)) {
          file->unlinked_path = path;
          cs.unlinked.push_back(std::move(file));
          if (cs.unlinked.size() > kMaxUnlinked) cs.unlinked.pop_front();
        }
      }
    } else if (!path.empty() && !Gone(cs, ev.time_ns())) {
      std::shared_ptr<FileNode> moved;
      if (kind == "rename" && !w.old_path().empty()) {
        const std::string old = JoinPath(w.old_path(), "/");
        if (FileRecord* prev = FindFile(cs, {old}, 0); prev != nullptr && old != path) {
          moved = prev->node;
          EraseFile(cs, old);
        }
      }
      const bool have_moved = moved != nullptr;
      // Inodes join only on the container's upper layer: a volume (cgroup- or
      // volume-attributed write) is another filesystem, whose inode numbers say nothing of
      // the rootfs.
      const uint64_t inode = ev.attribution() == v1::ATTRIBUTION_CGROUP ||
                                     ev.attribution() == v1::ATTRIBUTION_VOLUME
                                 ? 0
                                 : w.inode();
      FileRecord& rec = UpsertFile(cs, path, inode, std::move(moved));
      FileHistory& h = rec.node->hist;
      const bool attrib = kind == "attrib";
      if (attrib) {
        // FAN_ATTRIB: a mode change. With an exec bit now, a chmod +x of a runtime file.
        if ((w.mode() & 0111) != 0 && h.written_at_runtime && !h.chmod_exec) {
          h.chmod_exec = true;
          h.chmod_ns = ev.time_ns();
          h.chmod_by = p ? p->name : w.comm();
        }
      } else if (kind == "create" || kind == "modify") {
        // Not the content yet: its close_write follows with the hash. An exec that comes
        // first waits for it (MatchPending), so its alert names the hash.
      } else if (!have_moved || !h.written_at_runtime) {
        h.written_at_runtime = true;
        h.written_ns = ev.time_ns();
        h.writer_pid = w.pid();
        h.writer_exepath = p ? p->exepath : w.exe();
        if (p != nullptr) {
          h.writer_name = p->name;
        } else if (!CommUninformative(w.comm())) {
          h.writer_name = w.comm();
        } else {
          h.writer_name = Basename(w.exe());
        }
      } else {
        h.written_ns = ev.time_ns();  // moved into place now; the content's writer stays
      }
      // A raw sha256 as hex; anything else (not what the sensor sends) kept as it came.
      if (!w.sha256().empty())
        h.sha256 = w.sha256().size() == 32 ? HexOf(w.sha256()) : w.sha256();
      ctx.file = h;
      if (h.written_at_runtime || h.chmod_exec) MatchPending(node, cs, rec, reevaluate);
    }
  }
  FillContainer(&cs, &ctx);
  return ctx;
}

}  // namespace driftwatch
