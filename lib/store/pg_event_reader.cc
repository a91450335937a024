#include "lib/store/pg_event_reader.h"

#include <cstdlib>

#include "lib/store/pg_schema.h"
#include "lib/store/prepared_batch.h"

namespace driftwatch {
Result<std::unique_ptr<PgEventReader>> PgEventReader::Open(const std::string& uri) {
  int version = 0;
  auto c = OpenPgStoreReader(uri, &version);
  if (!c) return std::unexpected(c.error());
  return std::unique_ptr<PgEventReader>(new PgEventReader(std::move(*c), version));
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
  // Row by row (a query without --limit may match every stored event); text results: bytea
  // columns come hex-escaped.
  StoredEvent se;
  return c_->Stream("query events", sql, params, [&](const PGresult* res) -> Result<> {
    se.rowid = PgGetInt(res, 0, 0);
    se.node = PgGetText(res, 0, 1);
    se.stored_ns = PgGetInt(res, 0, 2);
    const std::string payload = PgGetBytes(res, 0, 3);
    RunInfo run{se.node, PgGetText(res, 0, 5), PgGetInt(res, 0, 6)};
    se.event.Clear();
    if (!DecodeStoredEvent(payload, run, static_cast<uint64_t>(PgGetInt(res, 0, 7)),
                           PgGetText(res, 0, 8), &se.event)) {
      return std::unexpected(Error::Corruption(
          c_->where() + ": event " + std::to_string(se.rowid) + " of node " + se.node +
          ": payload does not parse as driftwatch.v1.Event"));
    }
    se.container.reset();
    if (!PQgetisnull(res, 0, 4)) {
      v1::ContainerInfo ci;
      if (ci.ParseFromString(PgGetBytes(res, 0, 4))) se.container = std::move(ci);
    }
    fn(se);
    return {};
  });
}

namespace {
// A nodes row's first 13 columns, in the order Nodes() and Status() select them.
void ReadNodeRow(const PGresult* res, int i, NodeState* n) {
  n->node = PgGetText(res, i, 0);
  n->connected_streams = static_cast<uint32_t>(PgGetInt(res, i, 1));
  n->last_seen_ns = PgGetInt(res, i, 2);
  n->events_stored = static_cast<uint64_t>(PgGetInt(res, i, 3));
  n->duplicates = static_cast<uint64_t>(PgGetInt(res, i, 4));
  n->hello.boot_id = PgGetText(res, i, 5);
  n->hello.sensor_start_ns = PgGetInt(res, i, 6);
  n->hello.sensor_version = PgGetText(res, i, 7);
  n->hello.kernel_version = PgGetText(res, i, 8);
  n->hello.audit_mode = PgGetText(res, i, 9);
  n->hello.fanotify_mode = PgGetText(res, i, 10);
  n->hello.spool_dropped = static_cast<uint64_t>(PgGetInt(res, i, 11));
  n->hello.peer = PgGetText(res, i, 12);
}
}  // namespace

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
    ReadNodeRow(res, i, &n);
    out.push_back(std::move(n));
  }
  return out;
}

Result<uint64_t> PgEventReader::CountEvents() {
  auto r = c_->Exec("count events", "SELECT count(*) FROM events");
  if (!r) return std::unexpected(r.error());
  return static_cast<uint64_t>(PgGetInt(r->get(), 0, 0));
}

Result<StoreStatus> PgEventReader::Status() {
  // One snapshot for the nodes and the collectors, though several collectors commit.
  if (auto ok = c_->Run("begin the status read", "BEGIN ISOLATION LEVEL REPEATABLE READ"); !ok)
    return std::unexpected(ok.error());
  auto body = [&]() -> Result<StoreStatus> {
    StoreStatus out;
    out.schema_version = version_;
    auto r = c_->Exec(
        "read the nodes' status",
        std::string("WITH now AS (SELECT ") + kPgServerNowNs +
            " AS ns), missing AS (SELECT node, sum(to_seq - from_seq + 1)::bigint AS n FROM "
            "gaps GROUP BY node) "
            "SELECT n.node, n.connected_streams, n.last_seen_ns, n.events_stored, n.duplicates, "
            "n.boot_id, n.sensor_start_ns, n.sensor_version, n.kernel_version, n.audit_mode, "
            "n.fanotify_mode, n.spool_dropped, n.peer, coalesce(m.n, 0), "
            "greatest(coalesce(h.last_id, 0) - coalesce(k.id, 0), 0), coalesce(l.owner, ''), "
            "coalesce(l.expires_ns <= now.ns, false) "
            "FROM nodes n CROSS JOIN now LEFT JOIN node_heads h ON h.node = n.node "
            "LEFT JOIN detect_cursors k ON k.node = n.node "
            "LEFT JOIN detect_leases l ON l.node = n.node "
            "LEFT JOIN missing m ON m.node = n.node ORDER BY n.node");
    if (!r) return std::unexpected(r.error());
    const PGresult* res = r->get();
    for (int i = 0; i < PQntuples(res); ++i) {
      StoredNodeStatus& s = out.nodes.emplace_back();
      NodeState& n = s.state;
      ReadNodeRow(res, i, &n);
      n.events_missing = static_cast<uint64_t>(PgGetInt(res, i, 13));
      s.detect_lag = PgGetInt(res, i, 14);
      s.lease_owner = PgGetText(res, i, 15);
      s.lease_expired = PgGetText(res, i, 16) == "t";
    }
    if (version_ >= 2) {  // the collectors table came with migration 2
      auto live = c_->Exec("read the live collectors",
                           std::string("SELECT owner FROM collectors WHERE expires_ns > ") +
                               kPgServerNowNs + " ORDER BY owner");
      if (!live) return std::unexpected(live.error());
      for (int i = 0; i < PQntuples(live->get()); ++i)
        out.live_collectors.push_back(PgGetText(live->get(), i, 0));
    }
    return out;
  };
  auto out = body();
  // Read only: nothing to keep; a failed statement leaves the transaction aborted, which
  // COMMIT ends as well.
  auto end = c_->Run("end the status read", "COMMIT");
  if (!end && out) return std::unexpected(end.error());
  return out;
}

Result<std::unique_ptr<PgEventScanner>> PgEventScanner::Open(const std::string& uri) {
  auto c = OpenPgStoreReader(uri);
  if (!c) return std::unexpected(c.error());
  return std::unique_ptr<PgEventScanner>(new PgEventScanner(std::move(*c)));
}

Result<uint64_t> PgEventScanner::Scan(const std::string& node, int64_t after, int64_t upto,
                                      size_t limit,
                                      const std::function<void(const ScannedEvent&)>& fn) {
  auto r = c_->Exec("scan the events of node " + node,
                    "SELECT id, run_id, seq, time_ns, stored_ns, cid, kind, payload FROM events "
                    "WHERE node = $1 AND id > $2 AND ($3 = 0 OR id <= $3) ORDER BY id LIMIT $4",
                    {node, std::to_string(after), std::to_string(upto), std::to_string(limit)});
  if (!r) return std::unexpected(r.error());
  const PGresult* res = r->get();
  ScannedEvent e;
  std::string payload;
  for (int i = 0; i < PQntuples(res); ++i) {
    e.rowid = PgGetInt(res, i, 0);
    e.run_id = PgGetInt(res, i, 1);
    e.seq = static_cast<uint64_t>(PgGetInt(res, i, 2));
    e.time_ns = PgGetInt(res, i, 3);
    e.stored_ns = PgGetInt(res, i, 4);
    e.cid = PgGetInt(res, i, 5);
    e.kind = static_cast<int>(PgGetInt(res, i, 6));
    payload = PgGetBytes(res, i, 7);
    e.payload = payload;
    fn(e);
  }
  return static_cast<uint64_t>(PQntuples(res));
}

Result<const RunInfo*> PgEventScanner::Run(int64_t run_id) {
  if (auto it = runs_.find(run_id); it != runs_.end()) return &it->second;
  auto r = c_->Exec("read run", "SELECT node, boot_id, sensor_start_ns FROM runs WHERE run_id = $1",
                    {std::to_string(run_id)});
  if (!r) return std::unexpected(r.error());
  if (PQntuples(r->get()) == 0) return static_cast<const RunInfo*>(nullptr);
  return &(runs_[run_id] = RunInfo{PgGetText(r->get(), 0, 0), PgGetText(r->get(), 0, 1),
                                   PgGetInt(r->get(), 0, 2)});
}

Result<const std::string*> PgEventScanner::ContainerId(int64_t cid) {
  if (auto it = cids_.find(cid); it != cids_.end()) return &it->second;
  auto r = c_->Exec("read container id", "SELECT id FROM container_ids WHERE cid = $1",
                    {std::to_string(cid)});
  if (!r) return std::unexpected(r.error());
  if (PQntuples(r->get()) == 0) return static_cast<const std::string*>(nullptr);
  return &(cids_[cid] = PgGetText(r->get(), 0, 0));
}

Result<int64_t> PgEventScanner::FirstIdAtOrAfter(const std::string& node, int64_t time_ns) {
  auto r = c_->Exec("find the first event at a time",
                    "SELECT coalesce(min(id), 0) FROM events WHERE node = $1 AND time_ns >= $2",
                    {node, std::to_string(time_ns)});
  if (!r) return std::unexpected(r.error());
  return PgGetInt(r->get(), 0, 0);
}

Result<std::optional<int64_t>> PgEventScanner::TimeOf(const std::string& node, int64_t id) {
  auto r = c_->Exec("read an event's time", "SELECT time_ns FROM events WHERE node = $1 AND id = $2",
                    {node, std::to_string(id)});
  if (!r) return std::unexpected(r.error());
  if (PQntuples(r->get()) == 0) return std::optional<int64_t>();
  return std::optional<int64_t>(PgGetInt(r->get(), 0, 0));
}

Result<std::vector<StoredGap>> PgEventScanner::Gaps(const std::string& node, int64_t after,
                                                    int64_t upto) {
  auto r = c_->Exec("read gaps",
                    "SELECT gap_id, run_id, from_seq, to_seq, after_id, stored_ns FROM gaps "
                    "WHERE node = $1 AND after_id > $2 AND after_id <= $3 ORDER BY after_id",
                    {node, std::to_string(after), std::to_string(upto)});
  if (!r) return std::unexpected(r.error());
  std::vector<StoredGap> out;
  for (int i = 0; i < PQntuples(r->get()); ++i) {
    const PGresult* res = r->get();
    out.push_back({PgGetInt(res, i, 0), node, PgGetInt(res, i, 1),
                   static_cast<uint64_t>(PgGetInt(res, i, 2)),
                   static_cast<uint64_t>(PgGetInt(res, i, 3)), PgGetInt(res, i, 4),
                   PgGetInt(res, i, 5)});
  }
  return out;
}

Result<> PgEventScanner::ContainerInfos(
    const std::string& node,
    const std::function<void(const std::string& id, std::string_view info)>& fn) {
  auto r = c_->Exec("read container infos",
                    "SELECT k.id, c.info FROM containers c JOIN container_ids k ON k.cid = c.cid "
                    "WHERE k.node = $1 ORDER BY c.updated_ns",
                    {node});
  if (!r) return std::unexpected(r.error());
  for (int i = 0; i < PQntuples(r->get()); ++i)
    fn(PgGetText(r->get(), i, 0), PgGetBytes(r->get(), i, 1));
  return {};
}

Result<int64_t> PgEventScanner::Cursor(const std::string& node) {
  auto r = c_->Exec("read the detection cursor",
                    "SELECT coalesce(max(id), 0) FROM detect_cursors WHERE node = $1", {node});
  if (!r) return std::unexpected(r.error());
  return PgGetInt(r->get(), 0, 0);
}

Result<int64_t> PgEventScanner::Head(const std::string& node) {
  auto r = c_->Exec("read the node's head",
                    "SELECT coalesce(max(last_id), 0) FROM node_heads WHERE node = $1", {node});
  if (!r) return std::unexpected(r.error());
  return PgGetInt(r->get(), 0, 0);
}

Result<std::map<std::string, int64_t>> PgEventScanner::Heads(const std::vector<std::string>& nodes) {
  std::map<std::string, int64_t> out;
  if (nodes.empty()) return out;
  // One text[] parameter: one query for a shard's nodes, polled while they are idle.
  const std::vector<std::string_view> names(nodes.begin(), nodes.end());
  const std::string array = PgTextArray(names);
  auto r = c_->Exec("read the nodes' heads",
                    "SELECT node, last_id FROM node_heads WHERE node = ANY($1::text[])", {array});
  if (!r) return std::unexpected(r.error());
  for (int i = 0; i < PQntuples(r->get()); ++i)
    out[PQgetvalue(r->get(), i, 0)] = PgGetInt(r->get(), i, 1);
  return out;
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
