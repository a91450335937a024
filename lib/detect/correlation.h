// correlation: per-node, per-container state that turns single events into the facts rules
// read from a RuleContext: process lineage (proc.pname, proc.aname[N], proc.apid[N]), files
// written at runtime and their writer and hash (proc.exe_written_at_runtime,
// proc.exe_writer.name, ...), chmod +x, container start time and entrypoint, and the image
// verdict of the approved-images policy.
//
// Thread-safety: none. One Correlator per ingest thread (the collector shards by node), or
// guard it with a mutex. SetImagePolicy too.
//
// Lifetime: a RuleContext returned by Observe points at the caller's event (valid while the
// caller keeps it) and owns, through RuleContext::container_owner, the container info it
// points to. Re-evaluation contexts own their event as well (event_owner): they stay valid
// whatever the correlator does next.
//
// Matching a write to an exec (DESIGN.md, fanotify): same node and container, and the
// exec's path (exe_file, the script or loader's program it runs; exe= for a successful
// exec; the PATH name, joined to cwd, for any exec) equals the write's path inside the
// container, or the exec's inode (exe_file's when known, else PATH item 0's) equals the
// write's inode (fd-mode fanotify reports the upper file's inode, which the overlay shows
// to exec when upper and lower share a filesystem). Audit and fanotify are separate streams, so the
// exec may arrive first: an exec whose file was not known as written is kept for `window`
// (event time) and, when the write arrives, returned in `reevaluate`. Either way the write's
// time must not be later than the exec's time plus `window`.
//
// Process identity: (node, pid) from its successful exec. A later exec of the same pid with
// the same ppid is the same process exec'ing again; with another ppid it is a reused pid and
// replaces the entry. A lineage walk stops at an ancestor entry younger than its child (its
// pid was reused after the child started). There are no exit events: the table is bounded
// by `max_processes` (oldest exec evicted first).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lib/detect/image_policy.h"
#include "lib/rules/rule_context.h"

namespace driftwatch {

struct CorrelationOptions {
  std::chrono::nanoseconds window = std::chrono::seconds(10);
  size_t max_processes = 1 << 20;
  // The process table's memory (keys, names, paths, command lines, table overhead),
  // approximately: beyond it the oldest exec is forgotten first, as beyond max_processes.
  size_t max_process_bytes = 32 << 20;
  size_t max_files_per_container = 100000;
  // Execs kept for a late write (not those the sensor saw run an image file): those within
  // `window` of their node's newest event (swept every 4096 events), at most this many per
  // container.
  size_t max_pending_execs_per_container = 4096;
  size_t max_containers = 65536;     // removed containers go first, then the oldest
  // Per-node quotas: a node beyond one loses its own oldest state, never another node's
  // (one compromised node cannot evict what another's alerts need). The global bounds above
  // then take from the node holding the most.
  size_t max_processes_per_node = 1 << 18;
  size_t max_process_bytes_per_node = 8 << 20;
  size_t max_containers_per_node = 4096;
  size_t max_lineage = 32;           // ancestors per context
};

struct CorrelatorStats {
  uint64_t processes_evicted = 0;
  uint64_t files_evicted = 0;
  uint64_t pending_evicted = 0;      // execs dropped from the late-write buffer by the bound
  uint64_t containers_evicted = 0;
  uint64_t late_matches = 0;         // execs matched to a write that arrived after them
  uint64_t quota_evictions = 0;      // processes and containers evicted by a node's quota
};

class Correlator {
 public:
  explicit Correlator(CorrelationOptions opt = {});
  ~Correlator();
  Correlator(const Correlator&) = delete;
  Correlator& operator=(const Correlator&) = delete;

  // Feeds one event (any kind, from any node, in arrival order). Returns the context for
  // evaluating it. Appends to `reevaluate` (may be null) the contexts of earlier events
  // whose facts changed because of this one (an exec that arrived before the write of its
  // file); each earlier event is returned at most once. The caller emits only matches it
  // had not emitted before for that event and rule.
  RuleContext Observe(const std::string& node, const v1::Event& ev,
                      std::vector<RuleContext>* reevaluate);

  // Container info by (node, container id) from container events; null when unknown. Valid
  // until the next Observe.
  const v1::ContainerInfo* Container(const std::string& node, const std::string& id) const;
  // What a context of the container's events gets from its info (container, image verdict,
  // start time, entrypoint), into *ctx; false (ctx untouched) when its info is unknown. The
  // context owns the info (container_owner).
  bool ContainerContext(const std::string& node, const std::string& id, RuleContext* ctx) const;

  // The policy checked for every context from now on; null: none (posture only).
  void SetImagePolicy(std::shared_ptr<const ImagePolicy> policy);

  const CorrelatorStats& stats() const { return stats_; }
  size_t process_count() const;
  size_t process_bytes() const { return proc_bytes_; }
  // Processes and containers each node lost to its own quota, by node (nodes with none left
  // out).
  std::vector<std::pair<std::string, uint64_t>> QuotaEvictions() const;
  // Files known in one container (written or chmod'ed); 0 for an unknown container.
  size_t file_count(const std::string& node, const std::string& id) const;

 private:
  struct Proc;
  struct ProcSlot;
  struct FileNode;
  struct FileRecord;
  static constexpr size_t kMaxLinks = 64;  // names sharing one file's history
  static constexpr size_t kMaxUnlinked = 64;  // deleted files kept per container
  struct PendingExec;
  struct ContainerState;

  ContainerState& State(const std::string& node, const std::string& id);
  const ContainerState* FindState(const std::string& node, const std::string& id) const;
  void FillContainer(const ContainerState* cs, RuleContext* ctx) const;
  // The container's image against the policy (or posture only, without one).
  ImageVerdict CheckImage(const v1::ContainerInfo& info) const;
  std::vector<ProcessInfo> Lineage(const std::string& node, uint32_t ppid, int64_t child_start,
                                   const std::string& parent_name) const;
  const Proc* FindProc(const std::string& node, uint32_t pid) const;
  // The process entry a successful exec made or renewed; nullptr for a failed one.
  Proc* RecordExec(const std::string& node, const v1::Event& ev, int64_t* start_ns);
  static size_t EntryBytes(const Proc& p);
  static uint64_t ProcKey(uint32_t node_id, uint32_t pid);
  uint32_t NodeId(const std::string& node);
  FileRecord* FindFile(ContainerState& cs, const std::vector<std::string>& paths,
                       uint64_t inode);
  // The record of `path`, made or moved to the end of the eviction order. `moved`: the
  // file a rename brought here (its history comes along).
  FileRecord& UpsertFile(ContainerState& cs, const std::string& path, uint64_t inode,
                         std::shared_ptr<FileNode> moved = nullptr);
  // A deleted file an exec may still run by its fd: by inode, or by "<path> (deleted)".
  static FileNode* FindUnlinked(ContainerState& cs, uint64_t inode,
                                const std::vector<std::string>& paths);
  void Attach(ContainerState& cs, FileRecord& r, std::shared_ptr<FileNode> node);
  void Detach(ContainerState& cs, FileRecord& r);
  void EraseFile(ContainerState& cs, const std::string& path);
  void NameWriter(const std::string& node, FileHistory* h) const;
  void MatchPending(const std::string& node, ContainerState& cs, const FileRecord& rec,
                    std::vector<RuleContext>* reevaluate);
  void SweepPending();
  void ClearFiles(ContainerState* cs);
  // Removed, and a window past its removal: no more per-file state (late events still
  // get its info).
  bool Gone(const ContainerState& cs, int64_t time_ns) const;
  void OnContainer(const std::string& node, const v1::Event& ev);

  CorrelationOptions opt_;
  std::shared_ptr<const ImagePolicy> policy_;
  CorrelatorStats stats_;
  // (node, pid) -> process, keyed by ProcKey (the node interned: a small integer key keeps
  // the table's lookups cheap).
  std::unordered_map<std::string, uint32_t> node_ids_;
  std::unordered_map<uint64_t, ProcSlot> procs_;
  // Per node (indexed by node id): its processes oldest exec first, its containers oldest
  // first and the removed ones in removal order, and what its quotas took.
  struct NodeShare {
    std::string name;
    std::list<uint64_t> procs;
    size_t proc_bytes = 0;
    std::list<std::string> containers;
    std::deque<std::string> removed;
    size_t container_count = 0;
    uint64_t quota_evictions = 0;
  };
  std::vector<NodeShare> shares_;
  void EvictProc(NodeShare& share);
  void EvictContainer(NodeShare& share);
  NodeShare& Largest(bool by_procs);
  size_t proc_bytes_ = 0;  // approximate memory of procs_ and the shares' lists
  // node '\x1f' container id -> state.
  std::unordered_map<std::string, std::unique_ptr<ContainerState>> containers_;

  std::unordered_map<std::string, int64_t> node_newest_ns_;  // latest event time per node
  uint64_t observed_ = 0;
};

}  // namespace driftwatch
