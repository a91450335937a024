#include "lib/alerts/alert_store.h"

#include "lib/base/clock.h"
#include "lib/store/sqlite_util.h"

#include <sqlite3.h>

#include <chrono>
#include <set>
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
CREATE TABLE IF NOT EXISTS allowed_drift(
  id INTEGER PRIMARY KEY,
  day TEXT NOT NULL,
  node TEXT NOT NULL,
  pod_namespace TEXT NOT NULL,
  workload TEXT NOT NULL,
  container_name TEXT NOT NULL,
  image TEXT NOT NULL,
  rule TEXT NOT NULL,
  allowed_by TEXT NOT NULL,
  subject TEXT NOT NULL,
  count INTEGER NOT NULL,
  first_ns INTEGER NOT NULL,
  last_ns INTEGER NOT NULL,
  container_id TEXT NOT NULL,
  pod_name TEXT NOT NULL,
  message TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS allowed_drift_key ON allowed_drift(day, node, pod_namespace,
  workload, container_name, rule, allowed_by, subject);
CREATE INDEX IF NOT EXISTS allowed_drift_last ON allowed_drift(last_ns);
CREATE TABLE IF NOT EXISTS detect_cursors(
  node TEXT PRIMARY KEY,
  rowid INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL);
)sql";

// Aggregation (issue 19): columns the alerts table of older versions lacks, added in place
// with the values their rows mean (one alert, open to nothing).
struct AddedColumn {
  const char* name;
  const char* decl;
};
constexpr AddedColumn kAddedColumns[] = {
    {"count", "INTEGER NOT NULL DEFAULT 1"},
    {"first_ns", "INTEGER NOT NULL DEFAULT 0"},
    {"last_ns", "INTEGER NOT NULL DEFAULT 0"},
    {"agg_key", "TEXT NOT NULL DEFAULT ''"},
    {"open_until_ns", "INTEGER NOT NULL DEFAULT 0"},
};

// What needs the added columns; after them.
constexpr const char* kAggregateSchema = R"sql(
CREATE INDEX IF NOT EXISTS alerts_open ON alerts(agg_key, open_until_ns)
  WHERE open_until_ns != 0;
CREATE TABLE IF NOT EXISTS alert_repeats(
  event_key TEXT NOT NULL,
  rule TEXT NOT NULL,
  alert_id INTEGER NOT NULL,
  PRIMARY KEY(event_key, rule)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_repeats_alert ON alert_repeats(alert_id);
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

// The names of `table`'s columns (none when it does not exist).
Result<std::set<std::string>> Columns(sqlite3* db, const std::string& table) {
  sqlite3_stmt* s = nullptr;
  const std::string sql = "PRAGMA table_info(" + table + ")";
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
    return std::unexpected(Err(db, sql));
  std::set<std::string> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) out.insert(Text(s, 1));
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) return std::unexpected(Err(db, sql));
  return out;
}

// An older version's alerts table gets the columns it lacks, in one write transaction (two
// collectors opening the same file at once add each column once).
Result<> MigrateAlerts(sqlite3* db) {
  if (auto ok = ExecSql(db, "BEGIN IMMEDIATE"); !ok) return ok;
  auto body = [&]() -> Result<> {
    auto have = Columns(db, "alerts");
    if (!have) return std::unexpected(have.error());
    for (const AddedColumn& c : kAddedColumns) {
      if (have->contains(c.name)) continue;
      const std::string sql =
          std::string("ALTER TABLE alerts ADD COLUMN ") + c.name + " " + c.decl;
      if (auto ok = ExecSql(db, sql.c_str()); !ok) return ok;
    }
    return ExecSql(db, kAggregateSchema);
  };
  auto ok = body();
  if (ok) ok = ExecSql(db, "COMMIT");
  if (!ok) (void)ExecSql(db, "ROLLBACK");  // the failure above is the one to report
  return ok;
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
  if (auto ok = MigrateAlerts(st->db_); !ok) return std::unexpected(ok.error().Prefix(path));
  const char* ins =
      "INSERT OR IGNORE INTO alerts(time_ns, stored_ns, node, container_id, container_name, "
      "pod_name, pod_namespace, rule, priority, event_key, message, json, count, first_ns, "
      "last_ns, agg_key, open_until_ns) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,1,?1,?1,"
      "?13,?14)";
  const char* find_open =
      "SELECT id FROM alerts WHERE agg_key = ? AND open_until_ns > ? AND open_until_ns != 0 "
      "ORDER BY open_until_ns DESC LIMIT 1";
  const char* known =
      "SELECT 1 FROM alerts WHERE event_key = ?1 AND rule = ?2 AND event_key != '' UNION ALL "
      "SELECT 1 FROM alert_repeats WHERE event_key = ?1 AND rule = ?2";
  const char* add_repeat =
      "INSERT OR IGNORE INTO alert_repeats(event_key, rule, alert_id) VALUES(?,?,?)";
  const char* count_repeat =
      "UPDATE alerts SET count = count + 1, first_ns = min(first_ns, ?1), "
      "last_ns = max(last_ns, ?1) WHERE id = ?2";
  const char* close =
      "UPDATE alerts SET open_until_ns = 0 WHERE id = ? AND open_until_ns != 0 "
      "RETURNING count, first_ns, last_ns, json";
  const char* ins_inv =
      "INSERT INTO inventories(taken_ns, node, container_id, container_name, pod_name, "
      "pod_namespace, rules, error, entries, reply) VALUES(?,?,?,?,?,?,?,?,?,?)";
  const char* trim =
      "DELETE FROM inventories WHERE node = ?1 AND container_id = ?2 AND id NOT IN "
      "(SELECT id FROM inventories WHERE node = ?1 AND container_id = ?2 "
      "ORDER BY taken_ns DESC, id DESC LIMIT ?3)";
  for (auto [sql, stmt] : {std::pair{ins, &st->insert_}, std::pair{ins_inv, &st->insert_inventory_},
                           std::pair{trim, &st->trim_inventories_},
                           std::pair{find_open, &st->find_open_}, std::pair{known, &st->known_},
                           std::pair{add_repeat, &st->add_repeat_},
                           std::pair{count_repeat, &st->count_repeat_},
                           std::pair{close, &st->close_}}) {
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
  for (sqlite3_stmt* s : {find_open_, known_, add_repeat_, count_repeat_, close_})
    sqlite3_finalize(s);
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
  return InsertRow(a, json, "", 0);
}

Result<bool> AlertStore::InsertRow(const Alert& a, const std::string& json,
                                   const std::string& agg_key, int64_t open_until_ns) {
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
  BindText(s, i++, agg_key);
  sqlite3_bind_int64(s, i++, open_until_ns);
  if (!StepDone(s)) return std::unexpected(Err(db_, "insert alert"));
  return sqlite3_changes(db_) > 0;
}

Result<AlertStore::StoredResult> AlertStore::StoreAggregated(const NewAlert& n, int64_t now_ns,
                                                             int64_t window_ns) {
  const Alert& a = *n.alert;
  // Evaluated before (a replay): stored, or counted in an aggregate.
  if (!a.event_key.empty()) {
    BindText(known_, 1, a.event_key);
    BindText(known_, 2, a.rule);
    const int rc = sqlite3_step(known_);
    sqlite3_reset(known_);
    sqlite3_clear_bindings(known_);
    if (rc == SQLITE_ROW) return StoredResult{};
    if (rc != SQLITE_DONE) return std::unexpected(Err(db_, "look up alert"));
  }
  BindText(find_open_, 1, n.aggregate_key);
  sqlite3_bind_int64(find_open_, 2, now_ns);
  const int rc = sqlite3_step(find_open_);
  const int64_t open = rc == SQLITE_ROW ? sqlite3_column_int64(find_open_, 0) : 0;
  sqlite3_reset(find_open_);
  sqlite3_clear_bindings(find_open_);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return std::unexpected(Err(db_, "look up open aggregate"));
  if (open == 0) {
    const int64_t until = now_ns + window_ns;
    auto fresh = InsertRow(a, n.json, n.aggregate_key, until);
    if (!fresh) return std::unexpected(fresh.error());
    return StoredResult{StoredResult::Kind::kNew, sqlite3_last_insert_rowid(db_), until};
  }
  if (!a.event_key.empty()) {
    BindText(add_repeat_, 1, a.event_key);
    BindText(add_repeat_, 2, a.rule);
    sqlite3_bind_int64(add_repeat_, 3, open);
    if (!StepDone(add_repeat_)) return std::unexpected(Err(db_, "record repeat"));
  }
  sqlite3_bind_int64(count_repeat_, 1, a.time_ns);
  sqlite3_bind_int64(count_repeat_, 2, open);
  if (!StepDone(count_repeat_)) return std::unexpected(Err(db_, "count repeat"));
  return StoredResult{StoredResult::Kind::kRepeat, open, 0};
}

namespace {

// UPDATE of AlertUpdates, inside the caller's transaction.
Result<> WriteUpdates(sqlite3* db, const std::vector<AlertStore::AlertUpdate>& updates) {
  if (updates.empty()) return {};
  OneStmt u;
  if (sqlite3_prepare_v2(db,
                         "UPDATE alerts SET container_name = ?, pod_name = ?, pod_namespace = ?, "
                         "message = ?, json = ? WHERE id = ?",
                         -1, &u.s, nullptr) != SQLITE_OK)
    return std::unexpected(Err(db, "prepare alert update"));
  for (const AlertStore::AlertUpdate& up : updates) {
    const Alert& a = *up.alert;
    int i = 1;
    for (const std::string* t : {&a.container_name, &a.pod_name, &a.pod_namespace, &a.message,
                                 &up.json})
      BindText(u.s, i++, *t);
    sqlite3_bind_int64(u.s, i, up.id);
    if (!StepDone(u.s)) return std::unexpected(Err(db, "update alert"));
  }
  return {};
}

}  // namespace

Result<> AlertStore::UpdateAlerts(const std::vector<AlertUpdate>& updates) {
  if (updates.empty()) return {};
  if (auto ok = ExecSql(db_, "BEGIN IMMEDIATE"); !ok) return ok;
  auto ok = WriteUpdates(db_, updates);
  if (ok) ok = ExecSql(db_, "COMMIT");
  if (!ok) (void)ExecSql(db_, "ROLLBACK");
  return ok;
}

Result<AlertStore::DetectionCommitted> AlertStore::CommitDetection(const DetectionCommit& c) {
  if (auto ok = ExecSql(db_, "BEGIN IMMEDIATE"); !ok) return std::unexpected(ok.error());
  DetectionCommitted out;
  const int64_t now = c.now_ns != 0 ? c.now_ns : NowNs();
  auto body = [&]() -> Result<> {
    OneStmt del, cur, loss, allow;
    if (sqlite3_prepare_v2(db_, "INSERT OR IGNORE INTO deliveries(alert_id, output) VALUES(?,?)",
                           -1, &del.s, nullptr) != SQLITE_OK ||
        (!c.allowed.empty() &&
         sqlite3_prepare_v2(
             db_,
             "INSERT INTO allowed_drift(day, node, pod_namespace, workload, container_name, "
             "image, rule, allowed_by, subject, count, first_ns, last_ns, container_id, "
             "pod_name, message) VALUES(?,?,?,?,?,?,?,?,?,1,?,?,?,?,?) "
             "ON CONFLICT(day, node, pod_namespace, workload, container_name, rule, allowed_by, "
             "subject) DO UPDATE SET count = count + 1, first_ns = min(first_ns, "
             "excluded.first_ns), last_ns = max(last_ns, excluded.last_ns), image = "
             "excluded.image, container_id = excluded.container_id, pod_name = "
             "excluded.pod_name, message = excluded.message",
             -1, &allow.s, nullptr) != SQLITE_OK) ||
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
    auto deliver = [&](int64_t id) -> Result<> {
      for (const std::string& o : c.outputs) {
        sqlite3_bind_int64(del.s, 1, id);
        BindText(del.s, 2, o);
        if (!StepDone(del.s)) return std::unexpected(Err(db_, "insert delivery"));
      }
      return {};
    };
    if (auto ok = WriteUpdates(db_, c.updates); !ok) return ok;
    // Closed first: a repeat in this commit after the window ended opens a new aggregate.
    for (const int64_t id : c.close) {
      sqlite3_bind_int64(close_, 1, id);
      int rc = sqlite3_step(close_);
      ClosedAggregate agg{id, 0, {}};
      if (rc == SQLITE_ROW) {
        agg.count = static_cast<uint64_t>(sqlite3_column_int64(close_, 0));
        if (agg.count > 1) {
          agg.summary_json = AggregateJson(Text(close_, 3), agg.count,
                                           sqlite3_column_int64(close_, 1),
                                           sqlite3_column_int64(close_, 2));
        }
        rc = sqlite3_step(close_);
      }
      sqlite3_reset(close_);
      if (rc != SQLITE_DONE) return std::unexpected(Err(db_, "close aggregate"));
      if (agg.count == 0) continue;  // closed before, or gone with retention
      if (agg.count > 1) {
        if (auto ok = deliver(-id); !ok) return ok;
      }
      out.closed.push_back(std::move(agg));
    }
    for (const NewAlert& n : c.alerts) {
      StoredResult r;
      if (!n.aggregate_key.empty()) {
        auto st = StoreAggregated(n, now, c.aggregate_window.count());
        if (!st) return std::unexpected(st.error());
        r = *st;
      } else {
        auto fresh = InsertRow(*n.alert, n.json, "", 0);
        if (!fresh) return std::unexpected(fresh.error());
        if (*fresh) r = {StoredResult::Kind::kNew, sqlite3_last_insert_rowid(db_), 0};
      }
      if (r.kind == StoredResult::Kind::kNew) {
        if (auto ok = deliver(r.id); !ok) return ok;
      }
      out.alerts.push_back(r);
    }
    for (const AllowedDrift& d : c.allowed) {
      const Alert& a = *d.alert;
      const std::string day = FormatIsoTime(a.time_ns).substr(0, 10);
      const std::string* text[] = {&day, &a.node, &a.pod_namespace, &d.workload,
                                   &a.container_name, &d.image, &a.rule, &d.allowed_by,
                                   &a.subject};
      int i = 1;
      for (const std::string* t : text) BindText(allow.s, i++, *t);
      sqlite3_bind_int64(allow.s, i++, a.time_ns);
      sqlite3_bind_int64(allow.s, i++, a.time_ns);
      BindText(allow.s, i++, a.container_id);
      BindText(allow.s, i++, a.pod_name);
      BindText(allow.s, i++, a.message);
      if (!StepDone(allow.s)) return std::unexpected(Err(db_, "count allowed drift"));
    }
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
  return out;
}

Result<std::vector<AlertStore::OpenAggregate>> AlertStore::OpenAggregates() {
  OneStmt q;
  if (sqlite3_prepare_v2(db_,
                         "SELECT id, node, open_until_ns FROM alerts WHERE open_until_ns != 0",
                         -1, &q.s, nullptr) != SQLITE_OK) {
    return std::unexpected(Err(db_, "read open aggregates"));
  }
  std::vector<OpenAggregate> out;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(q.s, 0), Text(q.s, 1), sqlite3_column_int64(q.s, 2)});
  if (rc != SQLITE_DONE) return std::unexpected(Err(db_, "read open aggregates"));
  return out;
}

Result<std::vector<AlertStore::PendingDelivery>> AlertStore::Undelivered() {
  OneStmt q;
  if (sqlite3_prepare_v2(db_,
                         "SELECT d.alert_id, d.output, a.json, a.count, a.first_ns, a.last_ns, "
                         "a.node, a.container_id, a.container_name "
                         "FROM deliveries d JOIN alerts a ON a.id = abs(d.alert_id) "
                         "ORDER BY abs(d.alert_id), d.alert_id DESC",
                         -1, &q.s, nullptr) != SQLITE_OK) {
    return std::unexpected(Err(db_, "read deliveries"));
  }
  std::vector<PendingDelivery> out;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
    const int64_t id = sqlite3_column_int64(q.s, 0);
    std::string json = Text(q.s, 2);
    if (id < 0) {
      json = AggregateJson(json, static_cast<uint64_t>(sqlite3_column_int64(q.s, 3)),
                           sqlite3_column_int64(q.s, 4), sqlite3_column_int64(q.s, 5));
    }
    PendingDelivery p;
    p.alert_id = id;
    p.output = Text(q.s, 1);
    p.json = std::move(json);
    p.count = static_cast<uint64_t>(sqlite3_column_int64(q.s, 3));
    p.first_ns = sqlite3_column_int64(q.s, 4);
    p.last_ns = sqlite3_column_int64(q.s, 5);
    p.node = Text(q.s, 6);
    p.container_id = Text(q.s, 7);
    p.container_name = Text(q.s, 8);
    out.push_back(std::move(p));
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

std::string StoredAlert::FullJson() const {
  return count > 1 ? AggregateJson(json, count, first_ns, last_ns) : json;
}

Result<std::unique_ptr<AlertReader>> AlertReader::Open(const std::string& path) {
  std::unique_ptr<AlertReader> r(new AlertReader());
  if (sqlite3_open_v2(path.c_str(), &r->db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return std::unexpected(Err(r->db_, path));
  }
  sqlite3_busy_timeout(r->db_, 5000);
  if (!HasTable(r->db_, "alerts", &r->has_table_) ||
      !HasTable(r->db_, "inventories", &r->has_inventories_) ||
      !HasTable(r->db_, "allowed_drift", &r->has_allowed_)) {
    return std::unexpected(Err(r->db_, path));
  }
  // Read-only: an older version's table is read as it is (each row one alert).
  auto cols = Columns(r->db_, "alerts");
  if (!cols) return std::unexpected(cols.error().Prefix(path));
  r->has_counts_ = cols->contains("open_until_ns");
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
      "rule, priority, message, json, " +
          std::string(has_counts_ ? "count, CASE first_ns WHEN 0 THEN time_ns ELSE first_ns END, "
                                    "CASE last_ns WHEN 0 THEN time_ns ELSE last_ns END, "
                                    "open_until_ns != 0"
                                  : "1, time_ns, time_ns, 0"),
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
    a.count = static_cast<uint64_t>(sqlite3_column_int64(s, 12));
    a.first_ns = sqlite3_column_int64(s, 13);
    a.last_ns = sqlite3_column_int64(s, 14);
    a.open = sqlite3_column_int(s, 15) != 0;
    fn(a);
  });
}

Result<uint64_t> AlertReader::QueryAllowed(
    const AllowedDriftQuery& q, const std::function<void(const StoredAllowedDrift&)>& fn) {
  if (!has_allowed_) return 0;
  Filter f;
  f.Common(q.node, "", q.pod);
  if (!q.ns.empty()) f.Text(" AND pod_namespace = ?", q.ns);
  if (q.since_ns) f.Num(" AND last_ns >= ?", *q.since_ns);
  const std::string sql = f.Select(
      "id, day, node, pod_namespace, workload, container_name, image, rule, allowed_by, "
      "subject, count, first_ns, last_ns, container_id, pod_name, message",
      "allowed_drift", "last_ns", q.limit);
  StoredAllowedDrift d;
  return f.Run(db_, sql, [&](sqlite3_stmt* s) {
    d.id = sqlite3_column_int64(s, 0);
    std::string* text[] = {&d.day, &d.node, &d.pod_namespace, &d.workload, &d.container_name,
                           &d.image, &d.rule, &d.allowed_by, &d.subject};
    int i = 1;
    for (std::string* t : text) *t = Text(s, i++);
    d.count = static_cast<uint64_t>(sqlite3_column_int64(s, 10));
    d.first_ns = sqlite3_column_int64(s, 11);
    d.last_ns = sqlite3_column_int64(s, 12);
    d.container_id = Text(s, 13);
    d.pod_name = Text(s, 14);
    d.message = Text(s, 15);
    fn(d);
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
