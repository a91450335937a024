// alert_store: alerts and the drift inventories they led to, in SQLite, in the collector's
// database file (its own connection and its own tables; the event store's schema and
// user_version are left alone), and the queries behind `driftwatch alerts` and
// `driftwatch inventory`.
//
// Table (created if missing):
//   alerts(id INTEGER PRIMARY KEY, time_ns, stored_ns, node, container_id, container_name,
//          pod_name, pod_namespace, rule, priority (0 Emergency .. 7 Debug), event_key,
//          message = the rule's resolved output, json = the Falco JSON line)
//          count, first_ns, last_ns = how many alerts the row stands for (aggregation,
//          lib/alerts/alert_aggregation.h) and the event times of the first and the last
//          (0 in rows of older versions: time_ns), agg_key = AggregationKey ('' : stored on
//          its own), open_until_ns = while the collector's clock is before it, repeats of
//          agg_key are counted in this row (0: closed)
//   indexes: alerts(time_ns); alerts(node, time_ns); unique (event_key, rule) where
//   event_key != '' so that an event re-evaluated after a restart is stored once;
//   alerts(agg_key, open_until_ns) where open_until_ns != 0.
//   alert_repeats(event_key, rule, alert_id): each repeat counted into aggregate alert_id,
//          so that a repeat evaluated again is counted once, as the unique index does for
//          stored alerts.
//   Databases of older versions get the columns and tables they lack when opened
//   (ALTER TABLE ... ADD COLUMN), in place.
//   inventories(id INTEGER PRIMARY KEY, taken_ns, node, container_id, container_name,
//          pod_name, pod_namespace, rules = the rules whose alerts asked for it (sorted,
//          comma-separated), error, entries, reply = the sensor's InventoryReply, its chunks
//          joined as one message)
//   index: inventories(node, container_id, taken_ns). The newest kInventoriesKept of each
//   container are kept.
//   deliveries(alert_id, output): an alert not yet delivered to that output (outbox); written
//          with the alert, deleted once the output delivered it or gave up on it. After a
//          restart the collector sends what is left again. alert_id < 0: the summary of
//          aggregate -alert_id (AggregateJson), written when its window closed with repeats.
//   node_losses(node, lifetime, updated_ns): the highest loss totals detection has seen from
//          each node and the sensor run that reported them (a v1::Hello with losses and
//          sensor_start_ns, serialized), for the "Sensor blind window" alert.
//   allowed_drift(id INTEGER PRIMARY KEY, day = the event's UTC date "YYYY-MM-DD", node,
//          pod_namespace, workload (AllowedDrift::workload), container_name, image, rule,
//          allowed_by ("exception <name>" or "policy <entry>"), subject (Alert::subject),
//          count, first_ns, last_ns = event times, and of the latest: container_id,
//          pod_name, message): the drift the policy or the rules' exceptions allowed,
//          summarized per workload and day; unique by (day, node, pod_namespace, workload,
//          container_name, rule, allowed_by, subject).
//   detect_cursors (the event store's table): written here with the alerts (CommitDetection).
//
// Open the EventStore first on a new database: it sets the page size before WAL mode.
//
// Errors are SQLite's, coded as lib/store/sqlite_util.h's SqliteError codes them (corrupt
// or not a database: kCorruption; busy or locked: kUnavailable; anything else: kIo).
//
// Thread-safety: an AlertStore is used by one thread at a time (SQLITE_OPEN_NOMUTEX);
// SQLite serializes it with the event store's writer (busy timeout 5 s). AlertReader
// likewise.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <vector>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "lib/alerts/alert.h"
#include "lib/base/result.h"
#include "lib/store/pg_lease.h"

struct sqlite3;
struct sqlite3_stmt;

namespace driftwatch {

// A container's drift inventory as its sensor took it on the collector's request.
struct StoredInventory {
  int64_t id = 0;
  int64_t taken_ns = 0;  // when the reply reached the collector
  std::string node, container_id, container_name, pod_name, pod_namespace;
  std::string rules;     // the rules whose alerts asked for it, comma-separated
  std::string error;     // the sensor could not take it (container gone, ...)
  uint64_t entries = 0;
  std::string reply;     // serialized driftwatch.v1.InventoryReply (chunks joined)
};

// What detection writes and reads back, on SQLite (AlertStore) or on PostgreSQL
// (PgAlertStore, lib/alerts/pg_alert_store.h, shared by several collectors).
class DetectionStore {
 public:
  virtual ~DetectionStore() = default;
  // Stores the alert with `json` (FalcoJson(alert)); false when (event_key, rule) was
  // already stored.
  [[nodiscard]] virtual Result<bool> Insert(const Alert& alert, const std::string& json) = 0;

  // One detection step, in one transaction: the alerts, in order (each with its Falco JSON;
  // one deliveries row per output for each alert stored as new), the aggregates whose
  // window ended (closed; one deliveries row per output for the summary of each that counted
  // repeats), detection's cursors (node -> rowid), the loss totals of nodes (node ->
  // serialized LossCounters), and `extra`. Nothing of it is stored on error.
  //
  // An alert with an aggregate_key is counted in the open aggregate of that key (count,
  // last_ns) when there is one whose window has not ended at now_ns; otherwise it is stored
  // and opens an aggregate until now_ns + aggregate_window.
  struct NewAlert {
    const Alert* alert = nullptr;
    std::string json;           // FalcoJson(*alert)
    std::string aggregate_key;  // AggregationKey(*alert, ...); "" : stored on its own
  };
  // A rule match allowed (lib/detect/detect.h's AllowedMatch): counted, not alerted.
  struct AllowedDrift {
    const Alert* alert = nullptr;
    std::string allowed_by;
    std::string workload;  // WorkloadOf the container
    std::string image;     // the image as the runtime names it
  };
  // A stored alert completed later (its container's metadata arrived after it was stored):
  // its container and pod columns, message and JSON rewritten in place.
  struct AlertUpdate {
    int64_t id = 0;
    const Alert* alert = nullptr;
    std::string json;  // FalcoJson(*alert)
  };
  struct DetectionCommit {
    // Rewritten first: the summary of an aggregate closed in the same commit is made from its
    // row's JSON.
    std::vector<AlertUpdate> updates;
    std::vector<NewAlert> alerts;
    std::vector<AllowedDrift> allowed;  // counted in allowed_drift
    int64_t now_ns = 0;  // the collector's clock for the aggregates' windows; 0: NowNs()
    std::chrono::nanoseconds aggregate_window{0};
    std::vector<int64_t> close;  // open aggregates (alert ids) whose window ended
    std::vector<std::string> outputs;
    std::map<std::string, int64_t> cursors;
    std::map<std::string, std::string> losses;
    // More writes of the same step, in the same transaction (detection's baseline changes;
    // SQLite only).
    std::function<Result<>(sqlite3* db)> extra;
    // PostgreSQL: the leases of the nodes whose rows the commit covers (lib/store/pg_lease.h).
    // Each is checked (HoldsLease) inside the transaction; when one is no longer held the
    // commit stores nothing and fails with ErrorCode::kNotFound naming the node: the node is
    // another collector's now. Ignored by SQLite (one collector).
    std::vector<Lease> leases;
    std::chrono::milliseconds lease_ttl{0};  // a held lease is extended by this
  };
  struct StoredResult {
    enum class Kind {
      kNew,        // stored: id is its own; open_until_ns > 0 when it opened an aggregate
      kRepeat,     // counted in aggregate `id`
      kDuplicate,  // (event_key, rule) stored or counted before: a replay; id 0
    };
    Kind kind = Kind::kDuplicate;
    int64_t id = 0;
    int64_t open_until_ns = 0;
  };
  struct ClosedAggregate {
    int64_t id = 0;
    uint64_t count = 0;
    std::string summary_json;  // AggregateJson; "" when count is 1 (nothing more to say)
  };
  struct DetectionCommitted {
    std::vector<StoredResult> alerts;     // one per DetectionCommit::alerts
    std::vector<ClosedAggregate> closed;  // those of `close` still open
  };
  [[nodiscard]] virtual Result<DetectionCommitted> CommitDetection(const DetectionCommit& c) = 0;
  // Aggregates still open (a restart finds them here): alert id, node, open_until_ns.
  struct OpenAggregate {
    int64_t id = 0;
    std::string node;
    int64_t open_until_ns = 0;
  };
  [[nodiscard]] virtual Result<std::vector<OpenAggregate>> OpenAggregates() = 0;
  // Outbox: alerts not yet delivered to an output (alert id, output, json), oldest first;
  // an aggregate's summary (alert id < 0) after its first alert.
  struct PendingDelivery {
    int64_t alert_id = 0;
    std::string output, json;
    // Of the alert's row (abs(alert_id)): for a restart to complete an alert stored without
    // its container's metadata, and to make its summary again from the completed JSON.
    std::string node, container_id, container_name;
    uint64_t count = 1;
    int64_t first_ns = 0, last_ns = 0;
  };
  // PostgreSQL: only the alerts of nodes whose lease the store's owner holds (PgAlertStore::Open).
  [[nodiscard]] virtual Result<std::vector<PendingDelivery>> Undelivered() = 0;
  // AlertUpdates in one transaction of their own.
  [[nodiscard]] virtual Result<> UpdateAlerts(const std::vector<AlertUpdate>& updates) = 0;
  [[nodiscard]] virtual Result<> MarkDelivered(
      const std::vector<std::pair<int64_t, std::string>>& done) = 0;
  // node -> serialized LossCounters.
  [[nodiscard]] virtual Result<std::map<std::string, std::string>> NodeLosses() = 0;

  static constexpr int kInventoriesKept = 10;
  // Stores a container's drift inventory (id is ignored) and drops that container's older
  // ones beyond kInventoriesKept.
  [[nodiscard]] virtual Result<> InsertInventory(const StoredInventory& inv) = 0;

};

class AlertStore : public DetectionStore {
 public:
  [[nodiscard]] static Result<std::unique_ptr<AlertStore>> Open(
      const std::string& path, std::chrono::milliseconds busy_timeout = std::chrono::seconds(5));
  ~AlertStore() override;

  Result<bool> Insert(const Alert& alert, const std::string& json) override;
  Result<DetectionCommitted> CommitDetection(const DetectionCommit& c) override;
  Result<std::vector<OpenAggregate>> OpenAggregates() override;
  Result<std::vector<PendingDelivery>> Undelivered() override;
  Result<> UpdateAlerts(const std::vector<AlertUpdate>& updates) override;
  Result<> MarkDelivered(const std::vector<std::pair<int64_t, std::string>>& done) override;
  Result<std::map<std::string, std::string>> NodeLosses() override;
  Result<> InsertInventory(const StoredInventory& inv) override;

 private:
  AlertStore() = default;
  // Inserts a row (count 1); false when (event_key, rule) was stored before.
  Result<bool> InsertRow(const Alert& a, const std::string& json, const std::string& agg_key,
                         int64_t open_until_ns);
  // An alert with an aggregate key, in CommitDetection's transaction.
  Result<StoredResult> StoreAggregated(const NewAlert& n, int64_t now_ns, int64_t window_ns);
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* find_open_ = nullptr;
  sqlite3_stmt* known_ = nullptr;
  sqlite3_stmt* add_repeat_ = nullptr;
  sqlite3_stmt* count_repeat_ = nullptr;
  sqlite3_stmt* close_ = nullptr;
  sqlite3_stmt* insert_inventory_ = nullptr;
  sqlite3_stmt* trim_inventories_ = nullptr;
};

struct InventoryQuery {
  std::string node;       // exact
  std::string container;  // full id or a prefix
  std::string name;       // container name (in its pod), exact
  std::string pod;        // pod name, or namespace/name
  uint64_t limit = 0;     // the newest N matches; 0 = all
};

struct AlertQuery {
  std::string node;                    // exact
  std::string container;               // full id or a prefix (the 12-char short id)
  std::string pod;                     // pod name, or namespace/name
  std::string rule;                    // exact rule name
  std::optional<Priority> min_priority;  // this severity or more severe
  std::optional<int64_t> since_ns;     // time_ns >= since
  std::optional<int64_t> until_ns;     // time_ns < until
  uint64_t limit = 0;                  // the newest N matches; 0 = all
};

struct AllowedDriftQuery {
  std::string node;                 // exact
  std::string pod;                  // pod name (the latest of the row), or namespace/name
  std::string ns;                   // pod namespace, exact
  std::optional<int64_t> since_ns;  // last_ns >= since
  uint64_t limit = 0;               // the newest N rows; 0 = all
};

struct StoredAllowedDrift {
  int64_t id = 0;
  std::string day, node, pod_namespace, workload, container_name, image, rule, allowed_by,
      subject;
  uint64_t count = 0;
  int64_t first_ns = 0, last_ns = 0;
  std::string container_id, pod_name, message;  // of the latest
};

struct StoredAlert {
  int64_t id = 0;
  int64_t time_ns = 0;
  int64_t stored_ns = 0;
  std::string node, container_id, container_name, pod_name, pod_namespace, rule;
  Priority priority = Priority::kDebug;
  std::string message;
  std::string json;  // the first alert's Falco JSON, as it was delivered
  uint64_t count = 1;  // alerts the row stands for (aggregation)
  int64_t first_ns = 0, last_ns = 0;  // event times of the first and the last of them
  bool open = false;   // its aggregate still counts repeats
  // The Falco JSON that says it all: `json`, or with count > 1 its AggregateJson.
  std::string FullJson() const;
};

// The queries behind `driftwatch alerts` and `driftwatch inventory`, of SQLite (AlertReader)
// or of PostgreSQL (PgAlertReader, lib/alerts/pg_alert_reader.h; OpenAlertQueries there
// picks by --db). Both give the same rows in the same order for the same stored alerts.
class AlertQueries {
 public:
  virtual ~AlertQueries() = default;

  // Calls `fn` for each match, oldest first (by time, then id); the newest `limit` of them
  // when q.limit > 0; returns the number of matches.
  [[nodiscard]] virtual Result<uint64_t> Query(
      const AlertQuery& q, const std::function<void(const StoredAlert&)>& fn) = 0;

  // The allowed-drift summary, by last_ns, oldest first; the number of rows. A database
  // without the table (an older collector) reads as empty.
  [[nodiscard]] virtual Result<uint64_t> QueryAllowed(
      const AllowedDriftQuery& q, const std::function<void(const StoredAllowedDrift&)>& fn) = 0;

  // Inventories, oldest first; the number of matches. A database without the table (an
  // older collector) reads as empty.
  [[nodiscard]] virtual Result<uint64_t> QueryInventories(
      const InventoryQuery& q, const std::function<void(const StoredInventory&)>& fn) = 0;
};

class AlertReader : public AlertQueries {
 public:
  // Read-only. A database without the alerts table reads as empty.
  [[nodiscard]] static Result<std::unique_ptr<AlertReader>> Open(const std::string& path);
  ~AlertReader() override;

  Result<uint64_t> Query(const AlertQuery& q,
                         const std::function<void(const StoredAlert&)>& fn) override;
  Result<uint64_t> QueryAllowed(
      const AllowedDriftQuery& q,
      const std::function<void(const StoredAllowedDrift&)>& fn) override;
  Result<uint64_t> QueryInventories(
      const InventoryQuery& q, const std::function<void(const StoredInventory&)>& fn) override;

 private:
  AlertReader() = default;
  sqlite3* db_ = nullptr;
  bool has_table_ = false;
  bool has_inventories_ = false;
  bool has_allowed_ = false;
  bool has_counts_ = false;  // an older version's table has no count columns
};

}  // namespace driftwatch
