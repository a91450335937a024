#include "lib/store/pg_event_reader.h"

#include <cstdlib>

#include "lib/store/pg_schema.h"
#include "lib/store/prepared_batch.h"

namespace driftwatch {
namespace {

int64_t Int(const PGresult* r, int row, int col) {
  return std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}
std::string Text(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}

}  // namespace

Result<std::unique_ptr<PgEventReader>> PgEventReader::Open(const std::string& uri) {
  auto c = PgConn::Connect(uri);
  if (!c) return std::unexpected(c.error());
  // Read-only, and never a schema newer than this build: the version table says which.
  auto v = (*c)->Exec("read the schema version",
                      "SELECT coalesce(max(version), 0) FROM dw_schema_migrations");
  if (!v) {
    if (v.error().message().find("does not exist") == std::string::npos)
      return std::unexpected(v.error());
    return std::unexpected(Error::InvalidInput(
        (*c)->where() + ": not a driftwatch store (no dw_schema_migrations table)"));
  }
  const int have = std::atoi(PQgetvalue(v->get(), 0, 0));
  const int known = static_cast<int>(PgStoreMigrations().size());
  if (have < 1 || have > known) {
    return std::unexpected(Error::InvalidInput(
        (*c)->where() + ": schema version " + std::to_string(have) + ", this driftwatch reads " +
        "1 to " + std::to_string(known)));
  }
  if (auto ok = (*c)->Run("read-only", "SET default_transaction_read_only = on"); !ok)
    return std::unexpected(ok.error());
  return std::unique_ptr<PgEventReader>(new PgEventReader(std::move(*c)));
}

Result<uint64_t> PgEventReader::Query(const EventQuery& q,
                                      const std::function<void(const StoredEvent&)>& fn) {
  std::vector<std::optional<std::string>> params;
  auto param = [&](std::string v) {
    params.push_back(std::move(v));
    std::string ref = "$";
    ref += std::to_string(params.size());  // not "$" + ...: g++ 12 warns falsely (-Wrestrict)
    return ref;
  };
  std::string where = " WHERE true";
  if (!q.node.empty()) where += " AND e.node = " + param(q.node);
  if (!q.container.empty()) {
    // A full id or a prefix (a 12-character short id): compared as text, never as a pattern.
    const std::string p = param(q.container);
    where += " AND e.cid IN (SELECT cid FROM container_ids WHERE left(id, length(" + p +
             ")) = " + p + ")";
  }
  if (!q.kind.empty()) where += " AND e.kind = " + param(std::to_string(EventKindNumber(q.kind)));
  if (q.since_ns) where += " AND e.time_ns >= " + param(std::to_string(*q.since_ns));
  if (q.until_ns) where += " AND e.time_ns < " + param(std::to_string(*q.until_ns));
  const std::string cols =
      "SELECT e.id, e.node, e.stored_ns, e.payload, c.info, r.boot_id, r.sensor_start_ns, "
      "e.seq, k.id AS container FROM events e JOIN runs r ON r.run_id = e.run_id "
      "JOIN container_ids k ON k.cid = e.cid LEFT JOIN containers c ON c.cid = e.cid";
  std::string sql;
  if (q.limit > 0) {
    const std::string lim = param(std::to_string(std::min<uint64_t>(q.limit, INT64_MAX)));
    sql = "SELECT * FROM (" + cols + where + " ORDER BY e.stored_ns DESC, e.node DESC, e.id DESC LIMIT " +
          lim + ") x ORDER BY stored_ns, node, id";
  } else {
    sql = cols + where + " ORDER BY e.stored_ns, e.node, e.id";
  }
  // Text results: bytea columns come hex-escaped (PQunescapeBytea).
  auto r = c_->Exec("query events", sql, params);
  if (!r) return std::unexpected(r.error());
  const PGresult* res = r->get();
  uint64_t n = 0;
  StoredEvent se;
  for (int i = 0; i < PQntuples(res); ++i) {
    se.rowid = Int(res, i, 0);
    se.node = Text(res, i, 1);
    se.stored_ns = Int(res, i, 2);
    size_t len = 0;
    unsigned char* payload =
        PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(res, i, 3)), &len);
    RunInfo run{se.node, Text(res, i, 5), Int(res, i, 6)};
    se.event.Clear();
    const bool ok = payload != nullptr &&
                    DecodeStoredEvent(std::string_view(reinterpret_cast<const char*>(payload), len),
                                      run, static_cast<uint64_t>(Int(res, i, 7)), Text(res, i, 8),
                                      &se.event);
    PQfreemem(payload);
    if (!ok) {
      return std::unexpected(Error::Corruption(
          c_->where() + ": event " + std::to_string(se.rowid) + " of node " + se.node +
          ": payload does not parse as driftwatch.v1.Event"));
    }
    se.container.reset();
    if (!PQgetisnull(res, i, 4)) {
      unsigned char* info =
          PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(res, i, 4)), &len);
      v1::ContainerInfo ci;
      if (info != nullptr && ci.ParseFromArray(info, static_cast<int>(len))) se.container = std::move(ci);
      PQfreemem(info);
    }
    fn(se);
    ++n;
  }
  return n;
}

Result<std::vector<NodeState>> PgEventReader::Nodes() {
  auto r = c_->Exec("read nodes",
                    "SELECT node, connected_streams, last_seen_ns, events_stored, duplicates, "
                    "boot_id, sensor_start_ns, sensor_version, kernel_version, audit_mode, "
                    "fanotify_mode, spool_dropped, peer FROM nodes ORDER BY node");
  if (!r) return std::unexpected(r.error());
  std::vector<NodeState> out;
  const PGresult* res = r->get();
  for (int i = 0; i < PQntuples(res); ++i) {
    NodeState n;
    n.node = Text(res, i, 0);
    n.connected_streams = static_cast<uint32_t>(Int(res, i, 1));
    n.last_seen_ns = Int(res, i, 2);
    n.events_stored = static_cast<uint64_t>(Int(res, i, 3));
    n.duplicates = static_cast<uint64_t>(Int(res, i, 4));
    n.hello.boot_id = Text(res, i, 5);
    n.hello.sensor_start_ns = Int(res, i, 6);
    n.hello.sensor_version = Text(res, i, 7);
    n.hello.kernel_version = Text(res, i, 8);
    n.hello.audit_mode = Text(res, i, 9);
    n.hello.fanotify_mode = Text(res, i, 10);
    n.hello.spool_dropped = static_cast<uint64_t>(Int(res, i, 11));
    n.hello.peer = Text(res, i, 12);
    out.push_back(std::move(n));
  }
  return out;
}

Result<uint64_t> PgEventReader::CountEvents() {
  auto r = c_->Exec("count events", "SELECT count(*) FROM events");
  if (!r) return std::unexpected(r.error());
  return static_cast<uint64_t>(Int(r->get(), 0, 0));
}

Result<std::unique_ptr<EventQueries>> OpenEventQueries(const std::string& db) {
  if (IsPgUri(db)) {
    auto r = PgEventReader::Open(db);
    if (!r) return std::unexpected(r.error());
    return std::unique_ptr<EventQueries>(std::move(*r));
  }
  auto r = EventReader::Open(db);
  if (!r) return std::unexpected(r.error());
  return std::unique_ptr<EventQueries>(std::move(*r));
}

}  // namespace driftwatch
