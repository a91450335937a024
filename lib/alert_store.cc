#include "lib/alert_store.h"

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
)sql";

std::string Err(sqlite3* db, const std::string& what) {
  return what + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
}

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t ? std::string(reinterpret_cast<const char*>(t),
                         static_cast<size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

}  // namespace

std::expected<std::unique_ptr<AlertStore>, std::string> AlertStore::Open(const std::string& path) {
  std::unique_ptr<AlertStore> st(new AlertStore());
  if (sqlite3_open_v2(path.c_str(), &st->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return std::unexpected(Err(st->db_, path));
  }
  sqlite3_busy_timeout(st->db_, 5000);
  char* err = nullptr;
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", kSchema}) {
    if (sqlite3_exec(st->db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string e = path + ": " + (err ? err : "?");
      sqlite3_free(err);
      return std::unexpected(e);
    }
  }
  const char* ins =
      "INSERT OR IGNORE INTO alerts(time_ns, stored_ns, node, container_id, container_name, "
      "pod_name, pod_namespace, rule, priority, event_key, message, json) "
      "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)";
  if (sqlite3_prepare_v3(st->db_, ins, -1, SQLITE_PREPARE_PERSISTENT, &st->insert_, nullptr) !=
      SQLITE_OK) {
    return std::unexpected(Err(st->db_, path));
  }
  return st;
}

AlertStore::~AlertStore() {
  sqlite3_finalize(insert_);
  sqlite3_close(db_);
}

std::expected<bool, std::string> AlertStore::Insert(const Alert& a, const std::string& json) {
  sqlite3_stmt* s = insert_;
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, a.time_ns);
  sqlite3_bind_int64(s, 2, Now());
  int i = 3;
  for (const std::string* t : {&a.node, &a.container_id, &a.container_name, &a.pod_name,
                               &a.pod_namespace, &a.rule}) {
    sqlite3_bind_text(s, i++, t->data(), static_cast<int>(t->size()), SQLITE_STATIC);
  }
  sqlite3_bind_int(s, i++, static_cast<int>(a.priority));
  sqlite3_bind_text(s, i++, a.event_key.data(), static_cast<int>(a.event_key.size()),
                    SQLITE_STATIC);
  sqlite3_bind_text(s, i++, a.message.data(), static_cast<int>(a.message.size()),
                    SQLITE_STATIC);
  sqlite3_bind_text(s, i++, json.data(), static_cast<int>(json.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_DONE) return std::unexpected(Err(db_, "insert alert"));
  return sqlite3_changes(db_) > 0;
}

std::expected<std::unique_ptr<AlertReader>, std::string> AlertReader::Open(
    const std::string& path) {
  std::unique_ptr<AlertReader> r(new AlertReader());
  if (sqlite3_open_v2(path.c_str(), &r->db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return std::unexpected(Err(r->db_, path));
  }
  sqlite3_busy_timeout(r->db_, 5000);
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(r->db_, "SELECT count(*) FROM sqlite_master WHERE name='alerts'", -1,
                         &s, nullptr) != SQLITE_OK) {
    return std::unexpected(Err(r->db_, path));
  }
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) r->has_table_ = sqlite3_column_int(s, 0) > 0;
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW) return std::unexpected(Err(r->db_, path));
  return r;
}

AlertReader::~AlertReader() { sqlite3_close(db_); }

std::expected<uint64_t, std::string> AlertReader::Query(
    const AlertQuery& q, const std::function<void(const StoredAlert&)>& fn) {
  if (!has_table_) return 0;
  std::string where = " WHERE 1";
  struct Bind {
    bool is_int;
    int64_t i;
    std::string s;
  };
  std::vector<Bind> binds;
  auto text = [&](std::string v) { binds.push_back({false, 0, std::move(v)}); };
  auto num = [&](int64_t v) { binds.push_back({true, v, {}}); };
  if (!q.node.empty()) {
    where += " AND node = ?";
    text(q.node);
  }
  if (!q.container.empty()) {
    where += " AND substr(container_id, 1, ?) = ?";
    num(static_cast<int64_t>(q.container.size()));
    text(q.container);
  }
  if (!q.pod.empty()) {
    if (size_t slash = q.pod.find('/'); slash != std::string::npos) {
      where += " AND pod_namespace = ? AND pod_name = ?";
      text(q.pod.substr(0, slash));
      text(q.pod.substr(slash + 1));
    } else {
      where += " AND pod_name = ?";
      text(q.pod);
    }
  }
  if (!q.rule.empty()) {
    where += " AND rule = ?";
    text(q.rule);
  }
  if (q.min_priority) {
    where += " AND priority <= ?";
    num(static_cast<int64_t>(*q.min_priority));
  }
  if (q.since_ns != 0) {
    where += " AND time_ns >= ?";
    num(q.since_ns);
  }
  if (q.until_ns != 0) {
    where += " AND time_ns < ?";
    num(q.until_ns);
  }
  const std::string cols =
      "id, time_ns, stored_ns, node, container_id, container_name, pod_name, pod_namespace, "
      "rule, priority, message, json";
  std::string sql;
  if (q.limit > 0) {
    sql = "SELECT * FROM (SELECT " + cols + " FROM alerts" + where +
          " ORDER BY time_ns DESC, id DESC LIMIT " + std::to_string(q.limit) +
          ") ORDER BY time_ns, id";
  } else {
    sql = "SELECT " + cols + " FROM alerts" + where + " ORDER BY time_ns, id";
  }
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
    return std::unexpected(Err(db_, "query"));
  }
  for (size_t i = 0; i < binds.size(); ++i) {
    const int idx = static_cast<int>(i + 1);
    if (binds[i].is_int) {
      sqlite3_bind_int64(s, idx, binds[i].i);
    } else {
      sqlite3_bind_text(s, idx, binds[i].s.data(), static_cast<int>(binds[i].s.size()),
                        SQLITE_TRANSIENT);
    }
  }
  uint64_t n = 0;
  int rc;
  StoredAlert a;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
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
    ++n;
    fn(a);
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) return std::unexpected(Err(db_, "query"));
  return n;
}

}  // namespace driftwatch
