// pg_event_store: the writer of the event store several collectors share on PostgreSQL
// (issue 17); the tables are lib/store/pg_schema.h's. The same contract as the SQLite store
// (lib/store/event_store.h), through the same interface (lib/store/event_sink.h): prepared
// batches are queued by Submit and committed by one writer thread, the queued batches of all
// streams together in one transaction, and each callback runs once its batch committed.
//
// Exactly once across collectors: an event is (node, boot_id, sensor_start_ns, seq). Every
// collector writing a node serializes on that node's row in node_heads, and reads each run's
// high-water mark (runs.max_seq) under that row's lock in the same transaction that stores
// the events and raises the mark. Nothing is trusted from memory: a sensor that failed over
// from another collector resends events this collector has never seen, and they are dropped
// as duplicates because the other collector's commit raised the mark. Per transaction:
//   1. per node touched, in sorted order: lock its node_heads row (an upsert that locks the
//      row whether it inserted it or found it, RETURNING last_id), then per run of that node,
//      in sorted order, the same upsert of its runs row (RETURNING run_id, max_seq). A fixed
//      lock order across collectors: no deadlock between ingest transactions;
//   2. events at or below the mark are counted as duplicates; a seq past mark + 1 records a
//      gap (gaps, after_id = the id of the event after it), as the SQLite store does;
//   3. ids last_id + 1, ... in commit order (per node: a node's ids grow in commit order,
//      whichever collector commits, so detection's per-node cursor never skips a row);
//   4. container keys upserted (container_ids, one statement per node), events written by
//      binary COPY, container infos upserted, marks, heads and node counters updated; COMMIT.
// A failed transaction is rolled back. Lost connections, deadlocks, serialization failures,
// a server shutting down are retried (reconnecting, with backoff) for up to
// `retry_for`; other errors fail the batch: a group that fails so is retried one batch per
// transaction, so that one bad batch fails alone. A callback reports success only for a
// committed transaction. A commit whose outcome is unknown (the connection lost while COMMIT
// was under way) is retried too: if it had committed, the retry finds every event a
// duplicate, and the batch is acknowledged with stored = 0 (and its events are missing from
// the on_commit feed: readers catch them up from the table).
//
// Partitions: events is partitioned by the store clock's stored_ns per UTC day. Open makes
// today's and tomorrow's partitions; the writer makes them again whenever the commit's day
// is not the last one it made them for (before the transaction: DDL under its own lock).
//
// Retention (age only; the SQLite store's count bound and detection floor are not here yet):
// partitions that end before now - retention_age are dropped whole; runs and container keys
// not written since the start of the oldest day still kept, and gaps older than the cutoff,
// are deleted (what the SQLite store does, with the partition day as "the oldest event");
// so are alerts stored before the cutoff (with their outbox rows and repeats), inventories
// taken and allowed-drift rows last counted before it, as on SQLite.
//
// Time: stored_ns is the store clock of the SQLite store (the wall clock slewed to never run
// backwards, and forward at most twice as fast as real time): a jump of the wall clock by a
// year does not make retention drop everything. Each collector has its own clock: rows of
// one node written by two collectors may have stored_ns out of id order by their clocks'
// difference.
//
// The `nodes` table: this collector's connection state (streams, hello, last seen) is
// written as it is, the counters (events stored, duplicates) are added, so that collectors
// sharing a node add up. Node()/Nodes() are this collector's view: the table's rows as they
// were at Open plus what this process did since.
//
// Thread-safety: as EventSink. The writer owns its connection; EnforceRetention borrows it
// under conn_mu_.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "lib/base/mutex.h"
#include "lib/base/result.h"
#include "lib/store/event_sink.h"
#include "lib/store/event_store.h"  // CommittedBatch
#include "lib/store/pg_conn.h"

namespace driftwatch {

// What one PostgreSQL commit stored: per node, the ids (after, head] are exactly the events
// of that node among `batches` (ids are per node; see above).
struct PgStoreCommit {
  std::map<std::string, std::pair<int64_t, int64_t>> heads;  // node -> (after, head)
  std::vector<CommittedBatch> batches;  // rowids are the per-node ids; 0 for a duplicate
};

struct PgStoreOptions {
  std::string uri;                   // postgresql://...
  std::string name = "driftwatch";   // this collector: recorded with the migrations it applies
  std::chrono::milliseconds commit_interval{20};
  size_t commit_max_events = 10000;
  // Retention, checked every `retention_interval` by the writer; 0 hours: none.
  std::chrono::hours retention_age{168};
  std::chrono::milliseconds retention_interval{60000};
  // How long a commit failing for a passing reason is retried before its batches fail.
  std::chrono::milliseconds retry_for{30000};
  std::chrono::milliseconds retry_backoff{50};  // first wait; doubles up to 2 s
  // The wall clock (ns since the epoch); tests inject one. Unset: the system's.
  std::function<int64_t()> wall_clock;
  // Called on the writer thread after each commit that stored events. Must not block.
  std::function<void(PgStoreCommit)> on_commit;
};

class PgEventStore : public EventSink {
 public:
  // Connects, migrates the schema (MigratePg), makes today's and tomorrow's partitions and
  // starts the writer.
  static Result<std::unique_ptr<PgEventStore>> Open(const PgStoreOptions& opt);
  ~PgEventStore() override;
  PgEventStore(const PgEventStore&) = delete;
  PgEventStore& operator=(const PgEventStore&) = delete;

  void Submit(std::shared_ptr<const PreparedBatch> batch, Callback done,
              uint64_t stream = 0) override;
  void Flush() override;
  void Close() override;
  std::string last_error() const override;
  int64_t StoreNowNs() override;

  void NodeConnected(const std::string& node, const NodeHello& hello) override;
  void NodeDisconnected(const std::string& node) override;
  std::optional<NodeState> Node(const std::string& node) const override;
  std::vector<NodeState> Nodes() const override;

  // Drops partitions and side-table rows older than `now_ns` - retention_age. Returns the
  // partitions dropped plus the side-table rows deleted.
  Result<uint64_t> EnforceRetention(int64_t now_ns) override;

  // The writer connection's server process (tests terminate it); 0 while disconnected.
  int writer_backend_pid() const { return backend_pid_.load(std::memory_order_acquire); }
  // Transactions retried after a passing failure, since Open.
  uint64_t retries() const { return retries_.load(std::memory_order_relaxed); }

 private:
  struct Pending {
    std::shared_ptr<const PreparedBatch> batch;
    Callback done;
    uint64_t stream = 0;
  };

  explicit PgEventStore(const PgStoreOptions& opt);
  Result<> Init();
  void WriterLoop();
  // Commits `items` in one transaction, retrying passing failures; fills `results`. On
  // failure, `passing` says whether the error was one worth retrying (time ran out).
  Result<> CommitWithRetry(const std::vector<Pending*>& items, std::vector<CommitResult>* results,
                           PgStoreCommit* stored, bool* passing) DW_REQUIRES(conn_mu_);
  // One attempt. REQUIRES: a connected conn_.
  Result<> CommitOnce(const std::vector<Pending*>& items, std::vector<CommitResult>* results,
                      PgStoreCommit* stored) DW_REQUIRES(conn_mu_);
  Result<> Connect() DW_REQUIRES(conn_mu_);
  Result<> EnsurePartitions(int64_t now_ns) DW_REQUIRES(conn_mu_);
  bool Retryable(const Error& e) const DW_REQUIRES(conn_mu_);
  int64_t WallNs() const;

  const PgStoreOptions opt_;
  Mutex conn_mu_;  // the writer's connection: the writer's commits, EnforceRetention
  std::unique_ptr<PgConn> conn_ DW_GUARDED_BY(conn_mu_);
  int64_t partitions_day_ DW_GUARDED_BY(conn_mu_) = -1;  // day start the partitions were made for
  std::atomic<int> backend_pid_{0};
  std::atomic<uint64_t> retries_{0};
  std::map<uint64_t, std::string> failed_streams_;  // writer thread only: stream -> why

  Mutex clock_mu_;
  int64_t clock_last_ns_ DW_GUARDED_BY(clock_mu_) = 0;
  std::chrono::steady_clock::time_point clock_last_mono_ DW_GUARDED_BY(clock_mu_);

  mutable Mutex mu_;
  CondVar cv_;  // the writer waits for work
  CondVar flushed_cv_;
  std::deque<Pending> queue_ DW_GUARDED_BY(mu_);
  size_t queued_events_ DW_GUARDED_BY(mu_) = 0;
  uint64_t submitted_ DW_GUARDED_BY(mu_) = 0;
  uint64_t committed_ DW_GUARDED_BY(mu_) = 0;
  bool closing_ DW_GUARDED_BY(mu_) = false;
  bool writer_done_ DW_GUARDED_BY(mu_) = false;
  int flush_waiters_ DW_GUARDED_BY(mu_) = 0;
  std::map<std::string, NodeState> nodes_ DW_GUARDED_BY(mu_);
  // Nodes whose connection state is to be written, with the change's number: a commit
  // clears only the changes it wrote.
  std::map<std::string, uint64_t> dirty_nodes_ DW_GUARDED_BY(mu_);
  uint64_t node_changes_ DW_GUARDED_BY(mu_) = 0;
  std::string last_error_ DW_GUARDED_BY(mu_);
  std::thread writer_;  // last: started after everything above exists
};

}  // namespace driftwatch
