// event_reader: read-only access to the event store beside its writer (SQLite WAL readers
// never block the writer): EventScanner for detection (events by rowid as committed, gaps,
// cursors), EventReader for the CLI's queries. The schema: lib/store/event_store.h.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/result.h"
#include "lib/store/node_state.h"

struct sqlite3;

namespace driftwatch {

// Detection's view of the store (collector/detection): events by rowid, as committed.
struct ScannedEvent {
  int64_t rowid = 0;
  int64_t run_id = 0;
  uint64_t seq = 0;
  int64_t time_ns = 0;
  int64_t stored_ns = 0;
  int64_t cid = 0;
  int kind = 0;
  std::string_view payload;  // valid during the callback only
};

struct RunInfo {
  std::string node, boot_id;
  int64_t sensor_start_ns = 0;
};

// Sequence numbers of a run that never reached the store.
struct StoredGap {
  int64_t id = 0;
  std::string node;
  int64_t run_id = 0;
  uint64_t from_seq = 0, to_seq = 0;  // inclusive
  int64_t after_rowid = 0;            // the first event stored after the gap
  int64_t stored_ns = 0;
};

// The event as readers return it: the payload parsed, id and container id put back. False if
// the payload does not parse.
bool DecodeStoredEvent(std::string_view payload, const RunInfo& run, uint64_t seq,
                       const std::string& container_id, v1::Event* out);

// Read-only scans for detection; works beside the writer (WAL). Thread-compatible: one
// scanner per thread. Runs and container ids are cached once read.
class EventScanner {
 public:
  static Result<std::unique_ptr<EventScanner>> Open(const std::string& path);
  ~EventScanner();
  EventScanner(const EventScanner&) = delete;
  EventScanner& operator=(const EventScanner&) = delete;

  // Events with after < rowid <= upto, in rowid order, at most `limit`; returns how many.
  Result<uint64_t> Scan(int64_t after, int64_t upto, size_t limit,
                                            const std::function<void(const ScannedEvent&)>& fn);
  // nullptr when the run is not (or no longer) in the store.
  Result<const RunInfo*> Run(int64_t run_id);
  Result<const std::string*> ContainerId(int64_t cid);
  // The smallest rowid whose event time is >= time_ns; 0 when none.
  Result<int64_t> FirstRowidAtOrAfter(int64_t time_ns);
  // The event time of a rowid; nullopt when it is gone.
  Result<std::optional<int64_t>> TimeOf(int64_t rowid);
  // Gaps whose after_rowid is in (after, upto].
  Result<std::vector<StoredGap>> Gaps(int64_t after, int64_t upto);
  // The latest ContainerInfo of every container known: node, container id, serialized info.
  Result<> ContainerInfos(
      const std::function<void(const std::string& node, const std::string& id,
                               std::string_view info)>& fn);
  // detect_cursors: node -> the highest rowid of its events detection has finished with.
  Result<std::map<std::string, int64_t>> Cursors();
  Result<int64_t> MaxRowid();

 private:
  EventScanner() = default;
  sqlite3* db_ = nullptr;
  struct Statements;
  std::unique_ptr<Statements> st_;
  std::map<int64_t, RunInfo> runs_;
  std::map<int64_t, std::string> cids_;
};

struct EventQuery {
  std::string node;       // exact; "" any
  std::string container;  // full id or a prefix of one (12-char short ids); "" any
  std::string kind;       // exec, chmod, write, container, status; "" any
  std::optional<int64_t> since_ns;  // event time >= since
  std::optional<int64_t> until_ns;  // event time < until
  uint64_t limit = 0;     // the newest `limit` matches (still printed oldest first); 0 = all
};

struct StoredEvent {
  int64_t rowid = 0;
  std::string node;
  int64_t stored_ns = 0;
  v1::Event event;
  // The latest ContainerInfo the event's node reported for its container, if any.
  std::optional<v1::ContainerInfo> container;
};

// One node as the store records it (`driftwatch status --db`): what the collectors wrote,
// read without asking one.
struct StoredNodeStatus {
  // The nodes row as last written: connected_streams is what the last writer recorded (a
  // collector killed leaves its streams counted). events_missing: the sequence numbers of
  // the node's gaps retention kept.
  NodeState state;
  // Events committed that detection has not finished with: SQLite, the node's events above
  // its cursor (or the global floor, the higher); PostgreSQL, node_heads.last_id minus the
  // node's cursor.
  int64_t detect_lag = 0;
  // SQLite: the node's cursor is more than kMaxLagScan rows behind the newest event, and
  // detect_lag counts only the node's events among those rows.
  bool detect_lag_at_least = false;
  std::string lease_owner;     // PostgreSQL: the collector that evaluates the node; "" none
  bool lease_expired = false;  // its lease ran out (server clock): nobody evaluates the node
};

struct StoreStatus {
  int schema_version = 0;  // SQLite: PRAGMA user_version; PostgreSQL: dw_schema_migrations
  // PostgreSQL: the collectors whose heartbeat (collectors.expires_ns) has not run out by the
  // server's clock, by name; empty on SQLite and schema version 1.
  std::vector<std::string> live_collectors;
  std::vector<StoredNodeStatus> nodes;  // by name
};

// SQLite has no per-node index on events: a node's lag is counted over the newest rows, at
// most this many (four times the collector's default --detect-max-lag-events, which ingest
// keeps detection within).
inline constexpr int64_t kMaxLagScan = 2'000'000;

// The CLI's queries of a store, SQLite (EventReader) or PostgreSQL (PgEventReader,
// lib/store/pg_event_reader.h, whose OpenEventQueries picks by --db).
class EventQueries {
 public:
  virtual ~EventQueries() = default;
  // Calls `fn` for each match, oldest first; returns how many. A payload that does not parse
  // is an error naming its event.
  virtual Result<uint64_t> Query(const EventQuery& q,
                                 const std::function<void(const StoredEvent&)>& fn) = 0;
  virtual Result<std::vector<NodeState>> Nodes() = 0;
  virtual Result<uint64_t> CountEvents() = 0;
  // The fleet as the store records it: nodes, their detection lag and, on PostgreSQL, who
  // evaluates them and which collectors are alive.
  virtual Result<StoreStatus> Status() = 0;
};

// Read-only access (the CLI); works while a collector writes (WAL readers do not block the
// writer). Thread-compatible: one reader per thread.
class EventReader : public EventQueries {
 public:
  static Result<std::unique_ptr<EventReader>> Open(const std::string& path);
  ~EventReader() override;
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  Result<uint64_t> Query(const EventQuery& q,
                         const std::function<void(const StoredEvent&)>& fn) override;
  Result<std::vector<NodeState>> Nodes() override;
  Result<uint64_t> CountEvents() override;
  // Reads the events above the lowest node cursor, at most kMaxLagScan of them.
  Result<StoreStatus> Status() override;
  // Another bound than kMaxLagScan (tests).
  void set_max_lag_scan(int64_t rows) { max_lag_scan_ = rows; }

 private:
  EventReader() = default;
  sqlite3* db_ = nullptr;
  int64_t max_lag_scan_ = kMaxLagScan;
};

}  // namespace driftwatch
