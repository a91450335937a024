#include "lib/store/event_reader.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "lib/event/event_view.h"
#include "lib/store/prepared_batch.h"
#include "lib/store/sqlite_util.h"

namespace driftwatch {

using namespace sql;  // lib/store/sqlite_util.h: the store's own helpers


Result<std::unique_ptr<EventReader>> EventReader::Open(
    const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return std::unexpected(Error::FromErrno(errno, path + ": no such database"));
  }
  std::unique_ptr<EventReader> r(new EventReader());
  if (sqlite3_open_v2(path.c_str(), &r->db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    return std::unexpected(SqliteError(r->db_, path));
  }
  sqlite3_busy_timeout(r->db_, 5000);
  auto schema = SchemaState(r->db_);
  if (!schema) return std::unexpected(schema.error().Prefix(path));
  if (schema->first != kSchemaVersion) {
    if (schema->second)
      return std::unexpected(Error::InvalidInput(path + ": " + OldSchemaError(schema->first)));
    return std::unexpected(Error::InvalidInput(path + ": not a driftwatch collector database"));
  }
  Stmt s;
  if (auto ok = Prepare(r->db_,
                        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN "
                        "('events','containers','container_ids','nodes','runs')",
                        &s);
      !ok) {
    return std::unexpected(ok.error().Prefix(path));
  }
  if (sqlite3_step(s.s) != SQLITE_ROW || sqlite3_column_int(s.s, 0) != 5) {
    return std::unexpected(Error::InvalidInput(path + ": not a driftwatch collector database"));
  }
  return r;
}

EventReader::~EventReader() {
  if (db_) sqlite3_close(db_);
}

Result<uint64_t> EventReader::Query(
    const EventQuery& q, const std::function<void(const StoredEvent&)>& fn) {
  // events drives the loop (CROSS JOIN keeps it outer): the other tables are rowid lookups.
  // Node and container filters are sets of small keys; a container prefix (short id) is a
  // range on container_ids(id).
  std::string where = " WHERE 1";
  if (!q.node.empty()) where += " AND e.run_id IN (SELECT run_id FROM runs WHERE node = :node)";
  if (!q.container.empty()) {
    where += " AND e.cid IN (SELECT cid FROM container_ids WHERE id >= :c AND id < :c_end)";
  }
  if (!q.kind.empty()) where += " AND e.kind = :kind";
  if (q.since_ns) where += " AND e.time_ns >= :since";
  if (q.until_ns) where += " AND e.time_ns < :until";
  const std::string cols =
      "SELECT e.id AS id, r.node, e.stored_ns, e.payload, c.info, r.boot_id, "
      "r.sensor_start_ns, e.seq, k.id FROM events e CROSS JOIN runs r ON r.run_id = e.run_id "
      "CROSS JOIN container_ids k ON k.cid = e.cid LEFT JOIN containers c ON c.cid = e.cid";
  std::string sql = q.limit > 0 ? "SELECT * FROM (" + cols + where +
                                      " ORDER BY e.id DESC LIMIT :limit) ORDER BY id"
                                : cols + where + " ORDER BY e.id";
  Stmt s;
  if (auto ok = Prepare(db_, sql.c_str(), &s); !ok) return std::unexpected(ok.error());
  auto bind = [&](const char* name) { return sqlite3_bind_parameter_index(s.s, name); };
  const std::string c_end = q.container + "\xff";
  if (!q.node.empty()) BindText(s.s, bind(":node"), q.node);
  if (!q.container.empty()) {
    BindText(s.s, bind(":c"), q.container);
    BindText(s.s, bind(":c_end"), c_end);
  }
  if (!q.kind.empty()) sqlite3_bind_int(s.s, bind(":kind"), EventKindNumber(q.kind));
  if (q.since_ns) sqlite3_bind_int64(s.s, bind(":since"), *q.since_ns);
  if (q.until_ns) sqlite3_bind_int64(s.s, bind(":until"), *q.until_ns);
  if (q.limit > 0) {
    sqlite3_bind_int64(s.s, bind(":limit"),
                       static_cast<int64_t>(std::min<uint64_t>(q.limit, INT64_MAX)));
  }
  uint64_t n = 0;
  StoredEvent se;
  for (;;) {
    int rc = sqlite3_step(s.s);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return std::unexpected(SqliteError(db_, "query"));
    se.rowid = sqlite3_column_int64(s.s, 0);
    se.node = ColumnText(s.s, 1);
    se.stored_ns = sqlite3_column_int64(s.s, 2);
    const void* p = sqlite3_column_blob(s.s, 3);
    if (!se.event.ParseFromArray(p, sqlite3_column_bytes(s.s, 3))) {
      return std::unexpected(Error::Corruption("event " + std::to_string(se.rowid) +
                                               ": payload does not parse as driftwatch.v1.Event"));
    }
    // The payload lacks what the columns hold: the id and the container id.
    v1::EventId* id = se.event.mutable_id();
    id->set_node(se.node);
    id->set_boot_id(ColumnText(s.s, 5));
    id->set_sensor_start_ns(sqlite3_column_int64(s.s, 6));
    id->set_seq(static_cast<uint64_t>(sqlite3_column_int64(s.s, 7)));
    se.event.set_container_id(ColumnText(s.s, 8));
    se.container.reset();
    if (sqlite3_column_type(s.s, 4) != SQLITE_NULL) {
      v1::ContainerInfo ci;
      if (ci.ParseFromArray(sqlite3_column_blob(s.s, 4), sqlite3_column_bytes(s.s, 4))) {
        se.container = std::move(ci);
      }
    }
    fn(se);
    ++n;
  }
  return n;
}

Result<std::vector<NodeState>> EventReader::Nodes() {
  Stmt s;
  if (auto ok = Prepare(db_, (std::string("SELECT ") + kNodeColumns + " FROM nodes ORDER BY node").c_str(), &s); !ok) {
    return std::unexpected(ok.error());
  }
  std::vector<NodeState> out;
  while (sqlite3_step(s.s) == SQLITE_ROW) out.push_back(ReadNodeRow(s.s));
  return out;
}

Result<uint64_t> EventReader::CountEvents() {
  Stmt s;
  if (auto ok = Prepare(db_, "SELECT count(*) FROM events", &s); !ok) {
    return std::unexpected(ok.error());
  }
  if (sqlite3_step(s.s) != SQLITE_ROW) return std::unexpected(SqliteError(db_, "count"));
  return static_cast<uint64_t>(sqlite3_column_int64(s.s, 0));
}

Result<StoreStatus> EventReader::Status() {
  // One read transaction: the nodes, cursors and counts of one snapshot, whatever the
  // collector commits meanwhile.
  Stmt begin, end;
  if (auto ok = Prepare(db_, "BEGIN", &begin); !ok) return std::unexpected(ok.error());
  if (auto ok = Prepare(db_, "COMMIT", &end); !ok) return std::unexpected(ok.error());
  if (sqlite3_step(begin.s) != SQLITE_DONE) return std::unexpected(SqliteError(db_, "begin"));
  auto body = [&]() -> Result<StoreStatus> {
    StoreStatus out;
    auto schema = SchemaState(db_);
    if (!schema) return std::unexpected(schema.error());
    out.schema_version = schema->first;
    auto nodes = Nodes();
    if (!nodes) return std::unexpected(nodes.error());
    std::map<std::string, size_t> at;
    for (NodeState& n : *nodes) {
      at[n.node] = out.nodes.size();
      out.nodes.push_back({std::move(n), 0, false, "", false});
    }
    // Gaps by node: no index on gaps(node), but one row per gap, and they age out with
    // the events.
    Stmt gaps, cur, max, lag;
    if (auto ok = Prepare(db_,
                          "SELECT node, sum(to_seq - from_seq + 1) FROM gaps GROUP BY node", &gaps);
        !ok) {
      return std::unexpected(ok.error());
    }
    int rc;
    while ((rc = sqlite3_step(gaps.s)) == SQLITE_ROW) {
      if (auto it = at.find(ColumnText(gaps.s, 0)); it != at.end()) {
        out.nodes[it->second].state.events_missing =
            static_cast<uint64_t>(sqlite3_column_int64(gaps.s, 1));
      }
    }
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read gaps"));
    // A node's events up to its cursor, and every event up to the global floor ('' row),
    // are evaluated.
    std::map<std::string, int64_t> cursors;
    if (auto ok = Prepare(db_, "SELECT node, rowid FROM detect_cursors", &cur); !ok)
      return std::unexpected(ok.error());
    while ((rc = sqlite3_step(cur.s)) == SQLITE_ROW)
      cursors[ColumnText(cur.s, 0)] = sqlite3_column_int64(cur.s, 1);
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read detection cursors"));
    const int64_t global_floor = cursors.contains("") ? cursors[""] : 0;
    if (auto ok = Prepare(db_, "SELECT coalesce(max(id), 0) FROM events", &max); !ok)
      return std::unexpected(ok.error());
    if (sqlite3_step(max.s) != SQLITE_ROW) return std::unexpected(SqliteError(db_, "max rowid"));
    const int64_t head = sqlite3_column_int64(max.s, 0);
    auto cursor_of = [&](const std::string& node) {
      auto it = cursors.find(node);
      return std::max(global_floor, it == cursors.end() ? 0 : it->second);
    };
    int64_t low = head;
    for (const StoredNodeStatus& n : out.nodes) low = std::min(low, cursor_of(n.state.node));
    const int64_t from = std::max(low, head - max_lag_scan_);
    // events has no node column and no run_id index: the rows above `from` by rowid (a
    // range of the primary key), each's run and cursor by their keys; events drives the loop.
    if (auto ok = Prepare(db_,
                          "SELECT r.node, count(*) FROM events e CROSS JOIN runs r ON r.run_id "
                          "= e.run_id LEFT JOIN detect_cursors k ON k.node = r.node WHERE e.id "
                          "> ?1 AND e.id > max(?2, coalesce(k.rowid, 0)) GROUP BY r.node",
                          &lag);
        !ok) {
      return std::unexpected(ok.error());
    }
    sqlite3_bind_int64(lag.s, 1, from);
    sqlite3_bind_int64(lag.s, 2, global_floor);
    while ((rc = sqlite3_step(lag.s)) == SQLITE_ROW) {
      if (auto it = at.find(ColumnText(lag.s, 0)); it != at.end())
        out.nodes[it->second].detect_lag = sqlite3_column_int64(lag.s, 1);
    }
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "count events not evaluated"));
    for (StoredNodeStatus& n : out.nodes) n.detect_lag_at_least = cursor_of(n.state.node) < from;
    return out;
  };
  auto out = body();
  if (sqlite3_step(end.s) != SQLITE_DONE && out) return std::unexpected(SqliteError(db_, "end read"));
  return out;
}

// ---------------------------------------------------------------------------------------
// EventScanner

bool DecodeStoredEvent(std::string_view payload, const RunInfo& run, uint64_t seq,
                       const std::string& container_id, v1::Event* out) {
  if (payload.size() > INT32_MAX ||
      !out->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return false;
  }
  v1::EventId* id = out->mutable_id();
  id->set_node(run.node);
  id->set_boot_id(run.boot_id);
  id->set_sensor_start_ns(run.sensor_start_ns);
  id->set_seq(seq);
  out->set_container_id(container_id);
  return true;
}

struct EventScanner::Statements {
  Stmt scan, run, cid, first_at, time_of, gaps;
};

Result<std::unique_ptr<EventScanner>> EventScanner::Open(
    const std::string& path) {
  std::unique_ptr<EventScanner> r(new EventScanner());
  if (sqlite3_open_v2(path.c_str(), &r->db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return std::unexpected(SqliteError(r->db_, path));
  }
  sqlite3_busy_timeout(r->db_, 5000);
  r->st_ = std::make_unique<Statements>();
  struct {
    Stmt* s;
    const char* sql;
  } stmts[] = {
      {&r->st_->scan,
       "SELECT id, run_id, seq, time_ns, stored_ns, cid, kind, payload FROM events "
       "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"},
      {&r->st_->run, "SELECT node, boot_id, sensor_start_ns FROM runs WHERE run_id = ?"},
      {&r->st_->cid, "SELECT id FROM container_ids WHERE cid = ?"},
      {&r->st_->first_at, "SELECT min(id) FROM events WHERE time_ns >= ?"},
      {&r->st_->time_of, "SELECT time_ns FROM events WHERE id = ?"},
      {&r->st_->gaps,
       "SELECT id, node, run_id, from_seq, to_seq, after_rowid, stored_ns FROM gaps "
       "WHERE after_rowid > ? AND after_rowid <= ? ORDER BY after_rowid"},
  };
  for (auto& [s, sql] : stmts) {
    if (auto ok = Prepare(r->db_, sql, s, true); !ok)
      return std::unexpected(ok.error().Prefix(path));
  }
  return r;
}

EventScanner::~EventScanner() {
  st_.reset();
  if (db_) sqlite3_close(db_);
}

Result<uint64_t> EventScanner::Scan(
    int64_t after, int64_t upto, size_t limit,
    const std::function<void(const ScannedEvent&)>& fn) {
  sqlite3_stmt* s = st_->scan.s;
  sqlite3_bind_int64(s, 1, after);
  sqlite3_bind_int64(s, 2, upto);
  sqlite3_bind_int64(s, 3, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  uint64_t n = 0;
  ScannedEvent e;
  for (;;) {
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      auto err = SqliteError(db_, "scan events");
      sqlite3_reset(s);
      return std::unexpected(err);
    }
    e.rowid = sqlite3_column_int64(s, 0);
    e.run_id = sqlite3_column_int64(s, 1);
    e.seq = static_cast<uint64_t>(sqlite3_column_int64(s, 2));
    e.time_ns = sqlite3_column_int64(s, 3);
    e.stored_ns = sqlite3_column_int64(s, 4);
    e.cid = sqlite3_column_int64(s, 5);
    e.kind = sqlite3_column_int(s, 6);
    const void* p = sqlite3_column_blob(s, 7);
    e.payload = std::string_view(static_cast<const char*>(p),
                                 static_cast<size_t>(sqlite3_column_bytes(s, 7)));
    fn(e);
    ++n;
  }
  sqlite3_reset(s);
  return n;
}

Result<const RunInfo*> EventScanner::Run(int64_t run_id) {
  if (auto it = runs_.find(run_id); it != runs_.end()) return &it->second;
  sqlite3_stmt* s = st_->run.s;
  sqlite3_bind_int64(s, 1, run_id);
  const int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return nullptr;
    return std::unexpected(SqliteError(db_, "read run"));
  }
  RunInfo r{ColumnText(s, 0), ColumnText(s, 1), sqlite3_column_int64(s, 2)};
  sqlite3_reset(s);
  if (runs_.size() > 100000) runs_.clear();  // a cache: bounded, refilled on demand
  return &runs_.emplace(run_id, std::move(r)).first->second;
}

Result<const std::string*> EventScanner::ContainerId(int64_t cid) {
  if (auto it = cids_.find(cid); it != cids_.end()) return &it->second;
  sqlite3_stmt* s = st_->cid.s;
  sqlite3_bind_int64(s, 1, cid);
  const int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return nullptr;
    return std::unexpected(SqliteError(db_, "read container id"));
  }
  std::string id = ColumnText(s, 0);
  sqlite3_reset(s);
  if (cids_.size() > 100000) cids_.clear();
  return &cids_.emplace(cid, std::move(id)).first->second;
}

Result<int64_t> EventScanner::FirstRowidAtOrAfter(int64_t time_ns) {
  sqlite3_stmt* s = st_->first_at.s;
  sqlite3_bind_int64(s, 1, time_ns);
  const int rc = sqlite3_step(s);
  const int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  if (rc != SQLITE_ROW) return std::unexpected(SqliteError(db_, "first rowid by time"));
  return v;
}

Result<std::optional<int64_t>> EventScanner::TimeOf(int64_t rowid) {
  sqlite3_stmt* s = st_->time_of.s;
  sqlite3_bind_int64(s, 1, rowid);
  const int rc = sqlite3_step(s);
  std::optional<int64_t> v;
  if (rc == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "time of"));
  return v;
}

Result<std::vector<StoredGap>> EventScanner::Gaps(int64_t after,
                                                                      int64_t upto) {
  sqlite3_stmt* s = st_->gaps.s;
  sqlite3_bind_int64(s, 1, after);
  sqlite3_bind_int64(s, 2, upto);
  std::vector<StoredGap> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    StoredGap& g = out.emplace_back();
    g.id = sqlite3_column_int64(s, 0);
    g.node = ColumnText(s, 1);
    g.run_id = sqlite3_column_int64(s, 2);
    g.from_seq = static_cast<uint64_t>(sqlite3_column_int64(s, 3));
    g.to_seq = static_cast<uint64_t>(sqlite3_column_int64(s, 4));
    g.after_rowid = sqlite3_column_int64(s, 5);
    g.stored_ns = sqlite3_column_int64(s, 6);
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read gaps"));
  return out;
}

Result<> EventScanner::ContainerInfos(
    const std::function<void(const std::string&, const std::string&, std::string_view)>& fn) {
  Stmt s;
  if (auto ok = Prepare(db_,
                        "SELECT k.node, k.id, c.info FROM containers c JOIN container_ids k "
                        "ON k.cid = c.cid ORDER BY c.updated_ns",
                        &s);
      !ok) {
    return ok;
  }
  int rc;
  while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) {
    const void* p = sqlite3_column_blob(s.s, 2);
    fn(ColumnText(s.s, 0), ColumnText(s.s, 1),
       std::string_view(static_cast<const char*>(p),
                        static_cast<size_t>(sqlite3_column_bytes(s.s, 2))));
  }
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read containers"));
  return {};
}

Result<std::map<std::string, int64_t>> EventScanner::Cursors() {
  Stmt s;
  if (auto ok = Prepare(db_, "SELECT node, rowid FROM detect_cursors", &s); !ok)
    return std::unexpected(ok.error());
  std::map<std::string, int64_t> out;
  int rc;
  while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) out[ColumnText(s.s, 0)] = sqlite3_column_int64(s.s, 1);
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read detection cursors"));
  return out;
}

Result<int64_t> EventScanner::MaxRowid() {
  Stmt s;
  if (auto ok = Prepare(db_, "SELECT coalesce(max(id), 0) FROM events", &s); !ok)
    return std::unexpected(ok.error());
  if (sqlite3_step(s.s) != SQLITE_ROW) return std::unexpected(SqliteError(db_, "max rowid"));
  return sqlite3_column_int64(s.s, 0);
}

}  // namespace driftwatch
