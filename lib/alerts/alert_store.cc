#include "lib/alerts/alert_store.h"

#include "lib/base/clock.h"
#include "lib/store/sqlite_util.h"

#include <sqlite3.h>

#include <chrono>
#include <vector>

namespace driftwatch {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS alerts(
  id INTEGER PRIMARY KEY,
  time_ns INTEGER NOT NULL,
  stored_ns INTEGER NOT NULL,
  node TEXT NOT NULL,
  container_id TEXT NOT NULL,
  container_name TEXT NOT NULL,
  pod_name TEXT NOT NULL,
  pod_namespace TEXT NOT NULL,
  rule TEXT NOT NULL,
  priority INTEGER NOT NULL,
  event_key TEXT NOT NULL,
  message TEXT NOT NULL,
  json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts(time_ns);
CREATE INDEX IF NOT EXISTS alerts_node_time ON alerts(node, time_ns);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_event_rule ON alerts(event_key, rule)
  WHERE event_key != '';
CREATE TABLE IF NOT EXISTS inventories(
  id INTEGER PRIMARY KEY,
  taken_ns INTEGER NOT NULL,
  node TEXT NOT NULL,
  container_id TEXT NOT NULL,
  container_name TEXT NOT NULL,
  pod_name TEXT NOT NULL,
  pod_namespace TEXT NOT NULL,
  rules TEXT NOT NULL,
  error TEXT NOT NULL,
  entries INTEGER NOT NULL,
  reply BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS inventories_container ON inventories(node, container_id, taken_ns);
CREATE TABLE IF NOT EXISTS deliveries(
  alert_id INTEGER NOT NULL,
  output TEXT NOT NULL,
  PRIMARY KEY(alert_id, output)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS node_losses(
  node TEXT PRIMARY KEY,
  lifetime BLOB NOT NULL,
  updated_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS detect_cursors(
  node TEXT PRIMARY KEY,
  rowid INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL);
)sql";

// "what: sqlite's message" (sql::SqliteError, coded by sqlite's error).
Error Err(sqlite3* db, const std::string& what) { return sql::SqliteError(db, what); }

// "what: sqlite3_exec's message" (frees it), coded as Err codes the connection's error.
Error ExecErr(sqlite3* db, const std::string& what, char* err) {
  Error e(Err(db, what).code(), what + ": " + (err ? err : "?"));
  sqlite3_free(err);
  return e;
}


std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t ? std::string(reinterpret_cast<const char*>(t),
                         static_cast<size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

std::string Blob(sqlite3_stmt* s, int col) {
  const void* b = sqlite3_column_blob(s, col);
  return b ? std::string(static_cast<const char*>(b),
                         static_cast<size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

void BindText(sqlite3_stmt* s, int i, const std::string& t) {
  sqlite3_bind_text(s, i, t.data(), static_cast<int>(t.size()), SQLITE_STATIC);
}

// A step of a statement that returns no rows; the statement is reset for its next use.
bool StepDone(sqlite3_stmt* s) {
  const int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc == SQLITE_DONE;
}

bool HasTable(sqlite3* db, const char* name, bool* has) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?",
                         -1, &s, nullptr) != SQLITE_OK)
    return false;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *has = sqlite3_column_int(s, 0) > 0;
  sqlite3_finalize(s);
  return rc == SQLITE_ROW;
}

// WHERE clauses over the columns alerts and inventories share, with their bound values.
struct Filter {
  struct Bind {
    bool is_int;
    int64_t i;
    std::string s;
  };
  std::string where = " WHERE 1";
  std::vector<Bind> binds;

  void Text(const std::string& sql, std::string v) {
    where += sql;
    binds.push_back({false, 0, std::move(v)});
  }
  void Num(const std::string& sql, int64_t v) {
    where += sql;
    binds.push_back({true, v, {}});
  }
  void Common(const std::string& node, const std::string& container, const std::string& pod) {
    if (!node.empty()) Text(" AND node = ?", node);
    if (!container.empty()) {
      Num(" AND substr(container_id, 1, ?)", static_cast<int64_t>(container.size()));
      Text(" = ?", container);
    }
    if (!pod.empty()) {
      if (size_t slash = pod.find('/'); slash != std::string::npos) {
        Text(" AND pod_namespace = ?", pod.substr(0, slash));
        Text(" AND pod_name = ?", pod.substr(slash + 1));
      } else {
        Text(" AND pod_name = ?", pod);
      }
    }
  }
  // SELECT cols FROM table WHERE ... in time order, or only the newest `limit` of them.
  std::string Select(const std::string& cols, const std::string& table,
                     const std::string& time_col, uint64_t limit) const {
    if (limit == 0)
      return "SELECT " + cols + " FROM " + table + where + " ORDER BY " + time_col + ", id";
    return "SELECT * FROM (SELECT " + cols + " FROM " + table + where + " ORDER BY " +
           time_col + " DESC, id DESC LIMIT " + std::to_string(limit) + ") ORDER BY " +
           time_col + ", id";
  }
  // Prepares `sql`, binds, calls `row` for each row; the number of rows.
  Result<uint64_t> Run(sqlite3* db, const std::string& sql,
                       const std::function<void(sqlite3_stmt*)>& row) const {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
      return std::unexpected(Err(db, "query"));
    BindAll(s);
    uint64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      ++n;
      row(s);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return std::unexpected(Err(db, "query"));
    return n;
  }
  void BindAll(sqlite3_stmt* s) const {
    for (size_t i = 0; i < binds.size(); ++i) {
      const int idx = static_cast<int>(i + 1);
      if (binds[i].is_int) {
        sqlite3_bind_int64(s, idx, binds[i].i);
      } else {
        sqlite3_bind_text(s, idx, binds[i].s.data(), static_cast<int>(binds[i].s.size()),
                          SQLITE_TRANSIENT);
      }
    }
  }
};

}  // namespace

Result<std::unique_ptr<AlertStore>> AlertStore::Open(const std::string& path,
                                                     std::chrono::milliseconds busy_timeout) {
  std::unique_ptr<AlertStore> st(new AlertStore());
  if (sqlite3_open_v2(path.c_str(), &st->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return std::unexpected(Err(st->db_, path));
  }
  sqlite3_busy_timeout(st->db_, static_cast<int>(busy_timeout.count()));
  char* err = nullptr;
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", kSchema}) {
    if (sqlite3_exec(st->db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      return std::unexpected(ExecErr(st->db_, path, err));
    }
  }
  const char* ins =
      "INSERT OR IGNORE INTO alerts(time_ns, stored_ns, node, container_id, container_name, "
      "pod_name, pod_namespace, rule, priority, event_key, message, json) "
      "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)";
  const char* ins_inv =
      "INSERT INTO inventories(taken_ns, node, container_id, container_name, pod_name, "
      "pod_namespace, rules, error, entries, reply) VALUES(?,?,?,?,?,?,?,?,?,?)";
  const char* trim =
      "DELETE FROM inventories WHERE node = ?1 AND container_id = ?2 AND id NOT IN "
      "(SELECT id FROM inventories WHERE node = ?1 AND container_id = ?2 "
      "ORDER BY taken_ns DESC, id DESC LIMIT ?3)";
  for (auto [sql, stmt] : {std::pair{ins, &st->insert_}, std::pair{ins_inv, &st->insert_inventory_},
                           std::pair{trim, &st->trim_inventories_}}) {
    if (sqlite3_prepare_v3(st->db_, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, nullptr) !=
        SQLITE_OK) {
      return std::unexpected(Err(st->db_, path));
    }
  }
  return st;
}

AlertStore::~AlertStore() {
  sqlite3_finalize(insert_);
  sqlite3_finalize(insert_inventory_);
  sqlite3_finalize(trim_inventories_);
  sqlite3_close(db_);
}

Result<> AlertStore::InsertInventory(const StoredInventory& inv) {
  sqlite3_stmt* s = insert_inventory_;
  sqlite3_bind_int64(s, 1, inv.taken_ns);
  int i = 2;
  for (const std::string* t : {&inv.node, &inv.container_id, &inv.container_name,
                               &inv.pod_name, &inv.pod_namespace, &inv.rules, &inv.error}) {
    BindText(s, i++, *t);
  }
  sqlite3_bind_int64(s, i++, static_cast<int64_t>(inv.entries));
  sqlite3_bind_blob(s, i++, inv.reply.data(), static_cast<int>(inv.reply.size()), SQLITE_STATIC);
  if (!StepDone(s)) return std::unexpected(Err(db_, "insert inventory"));
  s = trim_inventories_;
  BindText(s, 1, inv.node);
  BindText(s, 2, inv.container_id);
  sqlite3_bind_int(s, 3, kInventoriesKept);
  if (!StepDone(s)) return std::unexpected(Err(db_, "trim inventories"));
  return {};
}

Result<bool> AlertStore::Insert(const Alert& a, const std::string& json) {
  sqlite3_stmt* s = insert_;
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, a.time_ns);
  sqlite3_bind_int64(s, 2, NowNs());
  int i = 3;
  for (const std::string* t : {&a.node, &a.container_id, &a.container_name, &a.pod_name,
                               &a.pod_namespace, &a.rule}) {
    BindText(s, i++, *t);
  }
  sqlite3_bind_int(s, i++, static_cast<int>(a.priority));
  BindText(s, i++, a.event_key);
  BindText(s, i++, a.message);
  BindText(s, i++, json);
  if (!StepDone(s)) return std::unexpected(Err(db_, "insert alert"));
  return sqlite3_changes(db_) > 0;
}

namespace {

Result<> ExecSql(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    return std::unexpected(ExecErr(db, sql, err));
  }
  return {};
}

// A statement prepared for one use, finalized on scope exit.
struct OneStmt {
  sqlite3_stmt* s = nullptr;
  ~OneStmt() { sqlite3_finalize(s); }
};

}  // namespace

Result<std::vector<int64_t>> AlertStore::CommitDetection(const DetectionCommit& c) {
  if (auto ok = ExecSql(db_, "BEGIN IMMEDIATE"); !ok) return std::unexpected(ok.error());
  std::vector<int64_t> ids;
  auto body = [&]() -> Result<> {
    OneStmt del, cur, loss;
    if (sqlite3_prepare_v2(db_, "INSERT OR IGNORE INTO deliveries(alert_id, output) VALUES(?,?)",
                           -1, &del.s, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_,
                           "INSERT INTO detect_cursors(node, rowid, updated_ns) VALUES(?,?,?) "
                           "ON CONFLICT(node) DO UPDATE SET rowid = max(rowid, excluded.rowid), "
                           "updated_ns = excluded.updated_ns",
                           -1, &cur.s, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_,
                           "INSERT OR REPLACE INTO node_losses(node, lifetime, updated_ns) "
                           "VALUES(?,?,?)",
                           -1, &loss.s, nullptr) != SQLITE_OK) {
      return std::unexpected(Err(db_, "prepare detection commit"));
    }
    for (const auto& [alert, json] : c.alerts) {
      auto fresh = Insert(*alert, json);
      if (!fresh) return std::unexpected(fresh.error());
      const int64_t id = *fresh ? sqlite3_last_insert_rowid(db_) : 0;
      ids.push_back(id);
      if (id == 0) continue;
      for (const std::string& o : c.outputs) {
        sqlite3_bind_int64(del.s, 1, id);
        BindText(del.s, 2, o);
        if (!StepDone(del.s)) return std::unexpected(Err(db_, "insert delivery"));
      }
    }
    const int64_t now = NowNs();
    for (const auto& [node, rowid] : c.cursors) {
      BindText(cur.s, 1, node);
      sqlite3_bind_int64(cur.s, 2, rowid);
      sqlite3_bind_int64(cur.s, 3, now);
      if (!StepDone(cur.s)) return std::unexpected(Err(db_, "write detection cursor"));
    }
    for (const auto& [node, blob] : c.losses) {
      BindText(loss.s, 1, node);
      sqlite3_bind_blob(loss.s, 2, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
      sqlite3_bind_int64(loss.s, 3, now);
      if (!StepDone(loss.s)) return std::unexpected(Err(db_, "write node losses"));
    }
    if (c.extra) return c.extra(db_);
    return {};
  };
  auto ok = body();
  if (ok) ok = ExecSql(db_, "COMMIT");
  if (!ok) {
    (void)ExecSql(db_, "ROLLBACK");
    return std::unexpected(ok.error());
  }
  return ids;
}

Result<std::vector<AlertStore::PendingDelivery>> AlertStore::Undelivered() {
  OneStmt q;
  if (sqlite3_prepare_v2(db_,
                         "SELECT d.alert_id, d.output, a.json FROM deliveries d JOIN alerts a "
                         "ON a.id = d.alert_id ORDER BY d.alert_id",
                         -1, &q.s, nullptr) != SQLITE_OK) {
    return std::unexpected(Err(db_, "read deliveries"));
  }
  std::vector<PendingDelivery> out;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
    out.push_back({sqlite3_column_int64(q.s, 0), Text(q.s, 1), Text(q.s, 2)});
  }
  if (rc != SQLITE_DONE) return std::unexpected(Err(db_, "read deliveries"));
  return out;
}

Result<> AlertStore::MarkDelivered(const std::vector<std::pair<int64_t, std::string>>& done) {
  if (done.empty()) return {};
  if (auto ok = ExecSql(db_, "BEGIN IMMEDIATE"); !ok) return ok;
  OneStmt d;
  if (sqlite3_prepare_v2(db_, "DELETE FROM deliveries WHERE alert_id = ? AND output = ?", -1,
                         &d.s, nullptr) != SQLITE_OK) {
    (void)ExecSql(db_, "ROLLBACK");
    return std::unexpected(Err(db_, "mark delivered"));
  }
  for (const auto& [id, output] : done) {
    sqlite3_bind_int64(d.s, 1, id);
    BindText(d.s, 2, output);
    if (!StepDone(d.s)) {
      auto e = Err(db_, "mark delivered");
      (void)ExecSql(db_, "ROLLBACK");
      return std::unexpected(e);
    }
  }
  if (auto ok = ExecSql(db_, "COMMIT"); !ok) {
    (void)ExecSql(db_, "ROLLBACK");
    return ok;
  }
  return {};
}

Result<std::map<std::string, std::string>> AlertStore::NodeLosses() {
  OneStmt q;
  if (sqlite3_prepare_v2(db_, "SELECT node, lifetime FROM node_losses", -1, &q.s, nullptr) !=
      SQLITE_OK) {
    return std::unexpected(Err(db_, "read node losses"));
  }
  std::map<std::string, std::string> out;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) out[Text(q.s, 0)] = Blob(q.s, 1);
  if (rc != SQLITE_DONE) return std::unexpected(Err(db_, "read node losses"));
  return out;
}

Result<std::unique_ptr<AlertReader>> AlertReader::Open(const std::string& path) {
  std::unique_ptr<AlertReader> r(new AlertReader());
  if (sqlite3_open_v2(path.c_str(), &r->db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return std::unexpected(Err(r->db_, path));
  }
  sqlite3_busy_timeout(r->db_, 5000);
  if (!HasTable(r->db_, "alerts", &r->has_table_) ||
      !HasTable(r->db_, "inventories", &r->has_inventories_)) {
    return std::unexpected(Err(r->db_, path));
  }
  return r;
}

AlertReader::~AlertReader() { sqlite3_close(db_); }

Result<uint64_t> AlertReader::Query(const AlertQuery& q,
                                    const std::function<void(const StoredAlert&)>& fn) {
  if (!has_table_) return 0;
  Filter f;
  f.Common(q.node, q.container, q.pod);
  if (!q.rule.empty()) f.Text(" AND rule = ?", q.rule);
  if (q.min_priority) f.Num(" AND priority <= ?", static_cast<int64_t>(*q.min_priority));
  if (q.since_ns) f.Num(" AND time_ns >= ?", *q.since_ns);
  if (q.until_ns) f.Num(" AND time_ns < ?", *q.until_ns);
  const std::string sql = f.Select(
      "id, time_ns, stored_ns, node, container_id, container_name, pod_name, pod_namespace, "
      "rule, priority, message, json",
      "alerts", "time_ns", q.limit);
  StoredAlert a;
  return f.Run(db_, sql, [&](sqlite3_stmt* s) {
    a.id = sqlite3_column_int64(s, 0);
    a.time_ns = sqlite3_column_int64(s, 1);
    a.stored_ns = sqlite3_column_int64(s, 2);
    a.node = Text(s, 3);
    a.container_id = Text(s, 4);
    a.container_name = Text(s, 5);
    a.pod_name = Text(s, 6);
    a.pod_namespace = Text(s, 7);
    a.rule = Text(s, 8);
    const int p = sqlite3_column_int(s, 9);
    a.priority = p >= 0 && p <= 7 ? static_cast<Priority>(p) : Priority::kDebug;
    a.message = Text(s, 10);
    a.json = Text(s, 11);
    fn(a);
  });
}

Result<uint64_t> AlertReader::QueryInventories(
    const InventoryQuery& q, const std::function<void(const StoredInventory&)>& fn) {
  if (!has_inventories_) return 0;
  Filter f;
  f.Common(q.node, q.container, q.pod);
  if (!q.name.empty()) f.Text(" AND container_name = ?", q.name);
  const std::string sql = f.Select(
      "id, taken_ns, node, container_id, container_name, pod_name, pod_namespace, rules, "
      "error, entries, reply",
      "inventories", "taken_ns", q.limit);
  StoredInventory inv;
  return f.Run(db_, sql, [&](sqlite3_stmt* s) {
    inv.id = sqlite3_column_int64(s, 0);
    inv.taken_ns = sqlite3_column_int64(s, 1);
    inv.node = Text(s, 2);
    inv.container_id = Text(s, 3);
    inv.container_name = Text(s, 4);
    inv.pod_name = Text(s, 5);
    inv.pod_namespace = Text(s, 6);
    inv.rules = Text(s, 7);
    inv.error = Text(s, 8);
    inv.entries = static_cast<uint64_t>(sqlite3_column_int64(s, 9));
    inv.reply = Blob(s, 10);
    fn(inv);
  });
}

}  // namespace driftwatch
