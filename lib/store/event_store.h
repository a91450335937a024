// event_store: the collector's embedded event database (SQLite, WAL): its writer. Readers
// (detection's scanner, the CLI's queries) are in lib/store/event_reader.h, the batches the
// writer takes in lib/store/prepared_batch.h.
//
// Data flow: a gRPC reactor turns the serialized events of an EventBatch, as received, into a
// PreparedBatch (PrepareEncodedBatch: parse to validate, strip the id and container_id, which
// the store keeps as columns; runs on the caller's thread), hands it to EventStore::Submit,
// and gets its callback once the batch is committed. One writer thread commits the queued
// batches of all streams together in one transaction (every `commit_interval` or
// `commit_max_events`, whichever comes first), then runs the callbacks in submission order.
//
// Exactly once: an event is identified by (node, boot_id, sensor_start_ns, seq). A sensor
// sends each run's events in seq order and resends from its oldest unacknowledged one, so the
// store keeps, per run, the highest seq stored (the `runs` table, loaded into memory at open):
// an event at or below it is a duplicate and is dropped. Runs and their marks are written in
// the same transaction as the events, so the mark is right after a crash or restart too.
//
// Durability: WAL with synchronous=NORMAL. A committed batch (and so an Ack) survives a crash
// or kill of the collector; after a power loss or kernel crash the last transactions before
// the most recent WAL checkpoint sync may be lost (the database itself stays consistent), and
// the sensors, whose acks then overstated what is on disk, do not resend them.
// `StoreOptions::synchronous_full` syncs the WAL on every commit instead (slower).
//
// Schema (PRAGMA user_version 3; version 2 is migrated in place at open, version 1 refused
// with a message): rows are narrow, as ingest cost grows with the bytes every row and index
// entry takes.
//   events(id = rowid, run_id, seq, time_ns, stored_ns, cid, kind = the body's field number,
//          payload = the serialized Event without id and container_id; readers put them back)
//   runs(run_id, node, boot_id, sensor_start_ns, max_seq, updated_ns): per-run high-water mark
//   container_ids(cid, node, id, updated_ns): one small key per (node, container id)
//   containers(cid, info, updated_ns): latest ContainerInfo per (node, container id)
//   nodes(node, ...): per-node state
//   gaps(id, node, run_id, from_seq, to_seq, after_rowid, stored_ns): sequence numbers of a
//          run that never arrived (the sensor lost them), seen at commit, written in the same
//          transaction as the event after them (after_rowid)
//   detect_cursors(node, rowid, updated_ns): detection's progress, written by detection
//          (collector/detection) with the alerts it produced
// Indexes: events(cid), events(time_ns), container_ids(id, node), gaps(after_rowid);
// retention walks the rowid (oldest stored first).
//
// Time: stored_ns and retention use the store's clock, the wall clock slewed so that it never
// runs backwards and never runs ahead faster than twice real (monotonic) time: a forward
// jump of the system clock by a year ages stored rows by real time, not by the jump, and so
// does not delete everything at once (the store catches up with the wall clock over time).
//
// Retention never deletes events detection has not evaluated yet (StoreOptions::
// retention_floor), and also ages out runs, container keys, gaps and, where the tables
// exist, alerts, inventories and the allowed-drift summary (lib/alerts/alert_store.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <google/protobuf/repeated_ptr_field.h>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/result.h"
#include "lib/base/mutex.h"
#include "lib/store/event_sink.h"
#include "lib/store/node_state.h"
#include "lib/store/prepared_batch.h"

struct sqlite3;

namespace driftwatch {

// One batch's events as a commit stored them, for a consumer that takes them from memory
// instead of reading them back (detection's feed, collector/detection.h).
struct CommittedBatch {
  std::shared_ptr<const PreparedBatch> batch;
  std::vector<int64_t> rowids;  // per event of the batch: its rowid; 0 for a duplicate
  int64_t stored_ns = 0;        // the rows' stored_ns (the commit's)
};

// What one commit stored: the rows (after, head] are exactly the events of `batches` with a
// rowid (one writer, rowids only grow: retention keeps the newest row).
struct StoreCommit {
  int64_t after = 0;
  int64_t head = 0;
  std::vector<CommittedBatch> batches;  // those with at least one event stored
};

struct StoreOptions {
  std::string path;
  // How long a statement waits for another connection's write lock before it fails.
  std::chrono::milliseconds busy_timeout{5000};
  std::chrono::milliseconds commit_interval{20};
  size_t commit_max_events = 10000;
  bool synchronous_full = false;
  // Retention, checked every `retention_interval` by the writer thread; 0 disables a bound.
  std::chrono::hours retention_age{168};
  uint64_t retention_max_events = 10'000'000;
  std::chrono::milliseconds retention_interval{10000};
  size_t retention_chunk = 5000;  // rows deleted per transaction
  uint64_t retention_max_alerts = 1'000'000;  // 0: no bound
  // Events at or above this rowid are never deleted (detection has not evaluated them);
  // unset: no floor. Called on the writer thread.
  std::function<int64_t()> retention_floor;
  // The wall clock (ns since the epoch); tests inject one. Unset: the system's.
  std::function<int64_t()> wall_clock;
  // Called on the writer thread after each commit that stored events. Must not block.
  std::function<void(StoreCommit)> on_commit;
};

// Thread-safety: every public method is thread-safe. Submit never blocks on the database (it
// queues); callbacks run on the writer thread, in submission order, and must not block.
// Close() (or the destructor) commits what is queued, runs the remaining callbacks and stops
// the writer; Submit after Close fails the callback with an error. REQUIRES: Close() is called
// by the owner only, never from a callback.
class EventStore : public EventSink {
 public:
  static Result<std::unique_ptr<EventStore>> Open(const StoreOptions& opt);
  ~EventStore() override;
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  // The batch is shared, not copied. `stream` names the sensor stream it came from (0: none):
  // once one of a stream's batches failed to commit, its later batches are refused too, so
  // that they cannot raise the run's high-water mark above events that must be sent again
  // (which would then be dropped as duplicates).
  void Submit(std::shared_ptr<const PreparedBatch> batch, Callback done,
              uint64_t stream = 0) override;
  // The highest event rowid committed (0: none yet).
  int64_t head() const { return head_.load(std::memory_order_acquire); }
  // The store's clock (see Time above).
  int64_t StoreNowNs() override;
  // Why the last commit failed; "" once one succeeds again.
  std::string last_error() const override;
  // Blocks until everything submitted before the call is committed.
  void Flush() override;
  void Close() override;

  // Connection bookkeeping (in memory at once, in the `nodes` table with the next commit).
  void NodeConnected(const std::string& node, const NodeHello& hello) override;
  void NodeDisconnected(const std::string& node) override;
  std::optional<NodeState> Node(const std::string& node) const override;
  std::vector<NodeState> Nodes() const override;

  // Runs retention now (tests; the writer also runs it periodically). Returns rows deleted.
  Result<uint64_t> EnforceRetention(int64_t now_ns) override;

 private:
  struct Pending {
    std::shared_ptr<const PreparedBatch> batch;
    Callback done;
    uint64_t stream = 0;
  };
  struct RunMark {
    int64_t run_id = 0;
    uint64_t max_seq = 0;
    int64_t updated_ns = 0;
  };
  using RunKey = std::tuple<std::string, std::string, int64_t>;  // node, boot_id, start_ns

  explicit EventStore(const StoreOptions& opt);
  Result<> Init();
  void WriterLoop();
  // REQUIRES: writer thread (or before it starts / after it stops).
  // `stored` gets the commit's batches with the rowids of their events (when on_commit is set).
  Result<> CommitPending(std::vector<Pending>* items, std::vector<CommitResult>* results,
                         StoreCommit* stored);
  Result<> Exec(const char* sql);
  int64_t WallNs() const;
  Result<uint64_t> RetentionLocked(int64_t now_ns) DW_REQUIRES(db_mu_);
  // Runs, container keys, gaps, alerts and inventories older than `cutoff_ns`.
  Result<uint64_t> RetainSideTables(int64_t cutoff_ns) DW_REQUIRES(db_mu_);

  const StoreOptions opt_;
  sqlite3* db_ = nullptr;  // writer thread only after Open
  struct Statements;
  std::unique_ptr<Statements> st_;
  std::map<RunKey, RunMark> runs_;  // writer thread only
  using ContainerKey = std::pair<std::string, std::string>;  // node, container id
  std::map<ContainerKey, int64_t> cids_;  // writer thread only: container_ids, all of it
  Mutex db_mu_;                           // serializes the writer and EnforceRetention
  std::map<uint64_t, std::string> failed_streams_;  // writer thread only: stream -> why
  std::atomic<int64_t> head_{0};
  Mutex clock_mu_;
  int64_t clock_last_ns_ DW_GUARDED_BY(clock_mu_) = 0;  // store clock, last reading
  std::chrono::steady_clock::time_point clock_last_mono_ DW_GUARDED_BY(clock_mu_);

  mutable Mutex mu_;
  CondVar cv_;  // writer waits for work
  CondVar flushed_cv_;
  std::deque<Pending> queue_ DW_GUARDED_BY(mu_);
  size_t queued_events_ DW_GUARDED_BY(mu_) = 0;
  uint64_t submitted_ DW_GUARDED_BY(mu_) = 0;  // batches ever queued
  uint64_t committed_ DW_GUARDED_BY(mu_) = 0;  // batches whose callback ran
  bool closing_ DW_GUARDED_BY(mu_) = false;
  bool writer_done_ DW_GUARDED_BY(mu_) = false;
  int flush_waiters_ DW_GUARDED_BY(mu_) = 0;  // Flush() calls waiting
  std::map<std::string, NodeState> nodes_ DW_GUARDED_BY(mu_);
  std::map<std::string, bool> dirty_nodes_ DW_GUARDED_BY(mu_);  // to write at next commit
  std::string last_error_ DW_GUARDED_BY(mu_);
  std::thread writer_;  // last: started after everything above exists
};

}  // namespace driftwatch
