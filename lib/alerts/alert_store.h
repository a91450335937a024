// alert_store: alerts and the drift inventories they led to, in SQLite, in the collector's
// database file (its own connection and its own tables; the event store's schema and
// user_version are left alone), and the queries behind `driftwatch alerts` and
// `driftwatch inventory`.
//
// Table (created if missing):
//   alerts(id INTEGER PRIMARY KEY, time_ns, stored_ns, node, container_id, container_name,
//          pod_name, pod_namespace, rule, priority (0 Emergency .. 7 Debug), event_key,
//          message = the rule's resolved output, json = the Falco JSON line)
//   indexes: alerts(time_ns); alerts(node, time_ns); unique (event_key, rule) where
//   event_key != '' so that an event re-evaluated after a restart is stored once.
//   inventories(id INTEGER PRIMARY KEY, taken_ns, node, container_id, container_name,
//          pod_name, pod_namespace, rules = the rules whose alerts asked for it (sorted,
//          comma-separated), error, entries, reply = the sensor's InventoryReply, its chunks
//          joined as one message)
//   index: inventories(node, container_id, taken_ns). The newest kInventoriesKept of each
//   container are kept.
//   deliveries(alert_id, output): an alert not yet delivered to that output (outbox); written
//          with the alert, deleted once the output delivered it or gave up on it. After a
//          restart the collector sends what is left again.
//   node_losses(node, lifetime, updated_ns): the highest loss totals detection has seen from
//          each node and the sensor run that reported them (a v1::Hello with losses and
//          sensor_start_ns, serialized), for the "Sensor blind window" alert.
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

class AlertStore {
 public:
  [[nodiscard]] static Result<std::unique_ptr<AlertStore>> Open(
      const std::string& path, std::chrono::milliseconds busy_timeout = std::chrono::seconds(5));
  ~AlertStore();

  // Stores the alert with `json` (FalcoJson(alert)); false when (event_key, rule) was
  // already stored.
  [[nodiscard]] Result<bool> Insert(const Alert& alert, const std::string& json);

  // One detection step, in one transaction: the alerts (each with its Falco JSON; one
  // deliveries row per output for each alert not stored before), detection's cursors
  // (node -> rowid), the loss totals of nodes (node -> serialized LossCounters), and `extra`.
  // Returns each alert's new id, or 0 when (event_key, rule) was stored before. Nothing of it
  // is stored on error.
  struct DetectionCommit {
    std::vector<std::pair<const Alert*, std::string>> alerts;  // alert, json
    std::vector<std::string> outputs;
    std::map<std::string, int64_t> cursors;
    std::map<std::string, std::string> losses;
    // More writes of the same step, in the same transaction (detection's baseline changes).
    std::function<Result<>(sqlite3* db)> extra;
  };
  [[nodiscard]] Result<std::vector<int64_t>> CommitDetection(const DetectionCommit& c);
  // Outbox: alerts not yet delivered to an output (alert id, output, json), oldest first.
  struct PendingDelivery {
    int64_t alert_id = 0;
    std::string output, json;
  };
  [[nodiscard]] Result<std::vector<PendingDelivery>> Undelivered();
  [[nodiscard]] Result<> MarkDelivered(const std::vector<std::pair<int64_t, std::string>>& done);
  // node -> serialized LossCounters.
  [[nodiscard]] Result<std::map<std::string, std::string>> NodeLosses();

  static constexpr int kInventoriesKept = 10;
  // Stores a container's drift inventory (id is ignored) and drops that container's older
  // ones beyond kInventoriesKept.
  [[nodiscard]] Result<> InsertInventory(const StoredInventory& inv);

 private:
  AlertStore() = default;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
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

struct StoredAlert {
  int64_t id = 0;
  int64_t time_ns = 0;
  int64_t stored_ns = 0;
  std::string node, container_id, container_name, pod_name, pod_namespace, rule;
  Priority priority = Priority::kDebug;
  std::string message;
  std::string json;
};

class AlertReader {
 public:
  // Read-only. A database without the alerts table reads as empty.
  [[nodiscard]] static Result<std::unique_ptr<AlertReader>> Open(const std::string& path);
  ~AlertReader();

  // Calls `fn` for each match, oldest first; returns the number of matches.
  [[nodiscard]] Result<uint64_t> Query(const AlertQuery& q,
                                       const std::function<void(const StoredAlert&)>& fn);

  // Inventories, oldest first; the number of matches. A database without the table (an
  // older collector) reads as empty.
  [[nodiscard]] Result<uint64_t> QueryInventories(
      const InventoryQuery& q, const std::function<void(const StoredInventory&)>& fn);

 private:
  AlertReader() = default;
  sqlite3* db_ = nullptr;
  bool has_table_ = false;
  bool has_inventories_ = false;
};

}  // namespace driftwatch
