#include "lib/alerts/pg_alert_store.h"

#include <algorithm>
#include <deque>
#include <set>

#include "lib/base/clock.h"
#include "lib/store/pg_lease.h"
#include "lib/store/pg_schema.h"

namespace driftwatch {
namespace {

// The advisory lock class of a commit's nodes (pg_advisory_xact_lock(class, hashtext(node)));
// the two-key space, apart from the single-key locks of migrations and partitions.
constexpr int32_t kAlertNodeLock = 0x6477616c;  // "dwal"

// The parameters of one statement, kept alive with it: text (as PostgreSQL text), integers
// and bytes (bytea, sent binary).
class Params {
 public:
  Params& Text(std::string_view s) { return Add(PgTextOf(s), false); }
  Params& Int(int64_t v) { return Add(std::to_string(v), false); }
  Params& Bytes(std::string_view b) { return Add(std::string(b), true); }
  std::span<const PgParam> get() const { return params_; }

 private:
  Params& Add(std::string v, bool binary) {
    params_.push_back({values_.emplace_back(std::move(v)), binary});
    return *this;
  }
  std::deque<std::string> values_;  // a deque: the views in params_ stay valid
  std::vector<PgParam> params_;
};

constexpr const char* kInsertAlert =
    "INSERT INTO alerts(time_ns, stored_ns, node, container_id, container_name, pod_name, "
    "pod_namespace, rule, priority, event_key, message, json, count, first_ns, last_ns, "
    "agg_key, open_until_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $1, "
    "$1, $13, $14) ON CONFLICT (event_key, rule) WHERE event_key <> '' DO NOTHING RETURNING id";

// UPDATE of AlertUpdates, inside the caller's transaction.
Result<> WriteUpdates(PgConn* c, const std::vector<DetectionStore::AlertUpdate>& updates) {
  for (const DetectionStore::AlertUpdate& up : updates) {
    const Alert& a = *up.alert;
    Params p;
    p.Text(a.container_name).Text(a.pod_name).Text(a.pod_namespace).Text(a.message).Text(up.json);
    p.Int(up.id);
    auto r = c->ExecParams("update alert " + std::to_string(up.id),
                           "UPDATE alerts SET container_name = $1, pod_name = $2, "
                           "pod_namespace = $3, message = $4, json = $5 WHERE id = $6",
                           p.get());
    if (!r) return std::unexpected(r.error());
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<PgAlertStore>> PgAlertStore::Open(const std::string& uri,
                                                         std::string owner) {
  std::unique_ptr<PgAlertStore> s(new PgAlertStore(uri, std::move(owner)));
  auto c = s->Conn();
  if (!c) return std::unexpected(c.error());
  if (auto v = MigratePg(*c, PgStoreMigrations(), s->owner_); !v)
    return std::unexpected(v.error());
  return s;
}

Result<PgConn*> PgAlertStore::Conn() {
  if (conn_ != nullptr && conn_->connected()) return conn_.get();
  conn_.reset();
  auto c = PgConn::Connect(uri_);
  if (!c) return std::unexpected(c.error());
  conn_ = std::move(*c);
  return conn_.get();
}

Result<> PgAlertStore::Transaction(std::string_view what,
                                   const std::function<Result<>(PgConn*)>& body) {
  auto c = Conn();
  if (!c) return std::unexpected(c.error());
  const std::string w(what);
  if (auto ok = (*c)->Run("begin " + w, "BEGIN"); !ok) return ok;
  auto ok = body(*c);
  if (ok) ok = (*c)->Run("commit " + w, "COMMIT");
  // A lost connection has nothing to roll back (the server did); `ok` is the error to report.
  if (!ok && (*c)->connected()) (void)(*c)->Run("roll back " + w, "ROLLBACK");
  return ok;
}

Result<int64_t> PgAlertStore::InsertRow(PgConn* c, const Alert& a, const std::string& json,
                                        const std::string& agg_key, int64_t open_until_ns) {
  Params p;
  p.Int(a.time_ns).Int(NowNs());
  p.Text(a.node).Text(a.container_id).Text(a.container_name).Text(a.pod_name);
  p.Text(a.pod_namespace).Text(a.rule).Int(static_cast<int>(a.priority)).Text(a.event_key);
  p.Text(a.message).Text(json).Text(agg_key).Int(open_until_ns);
  auto r = c->ExecParams("insert alert of node " + a.node, kInsertAlert, p.get());
  if (!r) return std::unexpected(r.error());
  return PQntuples(r->get()) == 1 ? PgGetInt(r->get(), 0, 0) : 0;
}

Result<bool> PgAlertStore::Insert(const Alert& alert, const std::string& json) {
  auto c = Conn();
  if (!c) return std::unexpected(c.error());
  auto id = InsertRow(*c, alert, json, "", 0);
  if (!id) return std::unexpected(id.error());
  return *id != 0;
}

Result<DetectionStore::StoredResult> PgAlertStore::StoreAggregated(PgConn* c, const NewAlert& n,
                                                                   int64_t now_ns,
                                                                   int64_t window_ns) {
  const Alert& a = *n.alert;
  // Evaluated before (a replay): stored, or counted in an aggregate.
  if (!a.event_key.empty()) {
    Params p;
    p.Text(a.event_key).Text(a.rule);
    auto r = c->ExecParams("look up alert of node " + a.node,
                           "SELECT EXISTS (SELECT 1 FROM alerts WHERE event_key = $1 AND "
                           "rule = $2 AND event_key <> '') OR EXISTS (SELECT 1 FROM "
                           "alert_repeats WHERE event_key = $1 AND rule = $2)",
                           p.get());
    if (!r) return std::unexpected(r.error());
    if (PgGetText(r->get(), 0, 0) == "t") return StoredResult{};
  }
  Params find;
  find.Text(n.aggregate_key).Int(now_ns);
  auto open = c->ExecParams("look up open aggregate of node " + a.node,
                            "SELECT id FROM alerts WHERE agg_key = $1 AND open_until_ns > $2 "
                            "AND open_until_ns <> 0 ORDER BY open_until_ns DESC LIMIT 1",
                            find.get());
  if (!open) return std::unexpected(open.error());
  if (PQntuples(open->get()) == 1) {
    const int64_t id = PgGetInt(open->get(), 0, 0);
    Params p;
    p.Int(a.time_ns).Int(id);
    // Still open: a close committed since the lookup (another collector's) wins, and the
    // alert opens a new aggregate below.
    auto counted = c->ExecParams("count repeat in aggregate " + std::to_string(id),
                                 "UPDATE alerts SET count = count + 1, first_ns = "
                                 "least(first_ns, $1), last_ns = greatest(last_ns, $1) "
                                 "WHERE id = $2 AND open_until_ns <> 0 RETURNING id",
                                 p.get());
    if (!counted) return std::unexpected(counted.error());
    if (PQntuples(counted->get()) == 1) {
      if (!a.event_key.empty()) {
        Params rp;
        rp.Text(a.event_key).Text(a.rule).Int(id);
        auto r = c->ExecParams("record repeat in aggregate " + std::to_string(id),
                               "INSERT INTO alert_repeats(event_key, rule, alert_id) "
                               "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                               rp.get());
        if (!r) return std::unexpected(r.error());
      }
      return StoredResult{StoredResult::Kind::kRepeat, id, 0};
    }
  }
  const int64_t until = now_ns + window_ns;
  auto id = InsertRow(c, a, n.json, n.aggregate_key, until);
  if (!id) return std::unexpected(id.error());
  if (*id == 0) return StoredResult{};  // stored by another commit meanwhile
  return StoredResult{StoredResult::Kind::kNew, *id, until};
}

Result<> PgAlertStore::UpdateAlerts(const std::vector<AlertUpdate>& updates) {
  if (updates.empty()) return {};
  return Transaction("alert updates", [&](PgConn* c) { return WriteUpdates(c, updates); });
}

Result<DetectionStore::DetectionCommitted> PgAlertStore::CommitDetection(
    const DetectionCommit& c) {
  if (c.extra) {
    return std::unexpected(Error::InvalidInput(
        RedactPgUri(uri_) + ": detection commit: extra writes are SQLite's (a sqlite3* "
        "callback) and cannot run on PostgreSQL"));
  }
  DetectionCommitted out;
  const int64_t now = c.now_ns != 0 ? c.now_ns : NowNs();
  auto ok = Transaction("detection commit", [&](PgConn* pc) -> Result<> {
    // 1. Fencing, in node order (one lock order for every collector).
    std::vector<const Lease*> leases;
    for (const Lease& l : c.leases) leases.push_back(&l);
    std::sort(leases.begin(), leases.end(),
              [](const Lease* x, const Lease* y) { return x->node < y->node; });
    for (const Lease* l : leases) {
      auto held = HoldsLease(pc, *l, c.lease_ttl);
      if (!held) return std::unexpected(held.error());
      if (!*held) {
        return std::unexpected(Error::NotFound(
            "lease of node " + l->node + " lost: " + l->owner + "'s epoch " +
            std::to_string(l->epoch) + " is no longer current in " + pc->where() +
            " (another collector took the node over); nothing of the commit stored"));
      }
    }
    // 2. The nodes of the alerts, one commit at a time (the header says why).
    std::set<std::string> nodes;
    for (const NewAlert& n : c.alerts) nodes.insert(PgTextOf(n.alert->node));
    if (!nodes.empty()) {
      const std::vector<std::string_view> names(nodes.begin(), nodes.end());
      Params p;
      p.Int(kAlertNodeLock).Text(PgTextArray(names));
      auto r = pc->ExecParams("lock the alerts' nodes",
                              "SELECT count(pg_advisory_xact_lock($1::integer, h)) FROM "
                              "(SELECT DISTINCT hashtext(n) AS h FROM unnest($2::text[]) AS n "
                              "ORDER BY h) AS s",
                              p.get());
      if (!r) return std::unexpected(r.error());
    }
    auto deliver = [&](int64_t id) -> Result<> {
      if (c.outputs.empty()) return {};
      std::vector<std::string_view> outputs(c.outputs.begin(), c.outputs.end());
      Params p;
      p.Int(id).Text(PgTextArray(outputs));
      auto r = pc->ExecParams("insert deliveries of alert " + std::to_string(id),
                              "INSERT INTO deliveries(alert_id, output) SELECT $1, o FROM "
                              "unnest($2::text[]) AS o ON CONFLICT DO NOTHING",
                              p.get());
      if (!r) return std::unexpected(r.error());
      return {};
    };
    if (auto ok = WriteUpdates(pc, c.updates); !ok) return ok;
    // 3. Closed first: a repeat in this commit after the window ended opens a new aggregate.
    for (const int64_t id : c.close) {
      Params p;
      p.Int(id);
      auto r = pc->ExecParams("close aggregate " + std::to_string(id),
                              "UPDATE alerts SET open_until_ns = 0 WHERE id = $1 AND "
                              "open_until_ns <> 0 RETURNING count, first_ns, last_ns, json",
                              p.get());
      if (!r) return std::unexpected(r.error());
      if (PQntuples(r->get()) == 0) continue;  // closed before, or gone
      ClosedAggregate agg{id, static_cast<uint64_t>(PgGetInt(r->get(), 0, 0)), {}};
      if (agg.count > 1) {
        agg.summary_json = AggregateJson(PgGetText(r->get(), 0, 3), agg.count,
                                         PgGetInt(r->get(), 0, 1), PgGetInt(r->get(), 0, 2));
        if (auto ok = deliver(-id); !ok) return ok;
      }
      out.closed.push_back(std::move(agg));
    }
    // 4. The alerts, in order.
    for (const NewAlert& n : c.alerts) {
      StoredResult r;
      if (!n.aggregate_key.empty()) {
        auto st = StoreAggregated(pc, n, now, c.aggregate_window.count());
        if (!st) return std::unexpected(st.error());
        r = *st;
      } else {
        auto id = InsertRow(pc, *n.alert, n.json, "", 0);
        if (!id) return std::unexpected(id.error());
        if (*id != 0) r = {StoredResult::Kind::kNew, *id, 0};
      }
      if (r.kind == StoredResult::Kind::kNew) {
        if (auto ok = deliver(r.id); !ok) return ok;
      }
      out.alerts.push_back(r);
    }
    // 5. Allowed drift, cursors, loss totals.
    for (const AllowedDrift& d : c.allowed) {
      const Alert& a = *d.alert;
      Params p;
      p.Text(FormatIsoTime(a.time_ns).substr(0, 10)).Text(a.node).Text(a.pod_namespace);
      p.Text(d.workload).Text(a.container_name).Text(d.image).Text(a.rule).Text(d.allowed_by);
      p.Text(a.subject).Int(a.time_ns).Text(a.container_id).Text(a.pod_name).Text(a.message);
      auto r = pc->ExecParams(
          "count allowed drift of node " + a.node,
          "INSERT INTO allowed_drift AS d(day, node, pod_namespace, workload, container_name, "
          "image, rule, allowed_by, subject, count, first_ns, last_ns, container_id, pod_name, "
          "message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10, $11, $12, $13) "
          "ON CONFLICT (day, node, pod_namespace, workload, container_name, rule, allowed_by, "
          "subject) DO UPDATE SET count = d.count + 1, first_ns = least(d.first_ns, "
          "excluded.first_ns), last_ns = greatest(d.last_ns, excluded.last_ns), image = "
          "excluded.image, container_id = excluded.container_id, pod_name = "
          "excluded.pod_name, message = excluded.message",
          p.get());
      if (!r) return std::unexpected(r.error());
    }
    for (const auto& [node, id] : c.cursors) {
      if (node.empty()) continue;  // SQLite's global floor: PostgreSQL's cursors are per node
      Params p;
      p.Text(node).Int(id).Int(now);
      auto r = pc->ExecParams("write the detection cursor of node " + node,
                              "INSERT INTO detect_cursors AS k(node, id, updated_ns) "
                              "VALUES ($1, $2, $3) ON CONFLICT (node) DO UPDATE SET "
                              "id = greatest(k.id, excluded.id), updated_ns = excluded.updated_ns",
                              p.get());
      if (!r) return std::unexpected(r.error());
    }
    for (const auto& [node, blob] : c.losses) {
      Params p;
      p.Text(node).Bytes(blob).Int(now);
      auto r = pc->ExecParams("write the loss totals of node " + node,
                              "INSERT INTO node_losses(node, lifetime, updated_ns) "
                              "VALUES ($1, $2, $3) ON CONFLICT (node) DO UPDATE SET "
                              "lifetime = excluded.lifetime, updated_ns = excluded.updated_ns",
                              p.get());
      if (!r) return std::unexpected(r.error());
    }
    return {};
  });
  if (!ok) return std::unexpected(ok.error());
  return out;
}

Result<std::vector<DetectionStore::OpenAggregate>> PgAlertStore::OpenAggregates() {
  auto c = Conn();
  if (!c) return std::unexpected(c.error());
  auto r = (*c)->Exec("read open aggregates",
                      "SELECT id, node, open_until_ns FROM alerts WHERE open_until_ns <> 0 "
                      "ORDER BY id");
  if (!r) return std::unexpected(r.error());
  std::vector<OpenAggregate> out;
  for (int i = 0; i < PQntuples(r->get()); ++i) {
    out.push_back({PgGetInt(r->get(), i, 0), PgGetText(r->get(), i, 1),
                   PgGetInt(r->get(), i, 2)});
  }
  return out;
}

Result<std::vector<DetectionStore::PendingDelivery>> PgAlertStore::Undelivered() {
  auto c = Conn();
  if (!c) return std::unexpected(c.error());
  auto r = (*c)->Exec(
      "read the deliveries of " + owner_ + "'s nodes",
      std::string("SELECT d.alert_id, d.output, a.json, a.count, a.first_ns, a.last_ns, a.node, "
                  "a.container_id, a.container_name FROM deliveries d "
                  "JOIN alerts a ON a.id = abs(d.alert_id) "
                  "JOIN detect_leases l ON l.node = a.node AND l.owner = $1 AND l.expires_ns > ") +
          kPgServerNowNs + " ORDER BY abs(d.alert_id), d.alert_id DESC, d.output",
      {PgTextOf(owner_)});
  if (!r) return std::unexpected(r.error());
  std::vector<PendingDelivery> out;
  const PGresult* res = r->get();
  for (int i = 0; i < PQntuples(res); ++i) {
    PendingDelivery p;
    p.alert_id = PgGetInt(res, i, 0);
    p.output = PgGetText(res, i, 1);
    p.json = PgGetText(res, i, 2);
    p.count = static_cast<uint64_t>(PgGetInt(res, i, 3));
    p.first_ns = PgGetInt(res, i, 4);
    p.last_ns = PgGetInt(res, i, 5);
    if (p.alert_id < 0) p.json = AggregateJson(p.json, p.count, p.first_ns, p.last_ns);
    p.node = PgGetText(res, i, 6);
    p.container_id = PgGetText(res, i, 7);
    p.container_name = PgGetText(res, i, 8);
    out.push_back(std::move(p));
  }
  return out;
}

Result<> PgAlertStore::MarkDelivered(const std::vector<std::pair<int64_t, std::string>>& done) {
  if (done.empty()) return {};
  auto c = Conn();
  if (!c) return std::unexpected(c.error());
  std::vector<int64_t> ids;
  std::vector<std::string> outputs;
  for (const auto& [id, output] : done) {
    ids.push_back(id);
    outputs.push_back(PgTextOf(output));
  }
  const std::vector<std::string_view> views(outputs.begin(), outputs.end());
  const std::string id_array = PgIntArray(ids), output_array = PgTextArray(views);
  const PgParam p[] = {{id_array}, {output_array}};
  // One statement: all of them or none.
  auto r = (*c)->ExecParams("mark delivered",
                            "DELETE FROM deliveries d USING unnest($1::bigint[], $2::text[]) "
                            "AS v(id, o) WHERE d.alert_id = v.id AND d.output = v.o",
                            p);
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<std::map<std::string, std::string>> PgAlertStore::NodeLosses() {
  auto c = Conn();
  if (!c) return std::unexpected(c.error());
  auto r = (*c)->Exec("read node losses", "SELECT node, lifetime FROM node_losses");
  if (!r) return std::unexpected(r.error());
  std::map<std::string, std::string> out;
  for (int i = 0; i < PQntuples(r->get()); ++i)
    out[PgGetText(r->get(), i, 0)] = PgGetBytes(r->get(), i, 1);
  return out;
}

Result<> PgAlertStore::InsertInventory(const StoredInventory& inv) {
  return Transaction("inventory of container " + inv.container_id, [&](PgConn* c) -> Result<> {
    Params p;
    p.Int(inv.taken_ns).Text(inv.node).Text(inv.container_id).Text(inv.container_name);
    p.Text(inv.pod_name).Text(inv.pod_namespace).Text(inv.rules).Text(inv.error);
    p.Int(static_cast<int64_t>(inv.entries)).Bytes(inv.reply);
    auto r = c->ExecParams("insert inventory of node " + inv.node,
                           "INSERT INTO inventories(taken_ns, node, container_id, "
                           "container_name, pod_name, pod_namespace, rules, error, entries, "
                           "reply) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                           p.get());
    if (!r) return std::unexpected(r.error());
    Params t;
    t.Text(inv.node).Text(inv.container_id).Int(kInventoriesKept);
    r = c->ExecParams("trim inventories of node " + inv.node,
                      "DELETE FROM inventories WHERE node = $1 AND container_id = $2 AND id NOT IN "
                      "(SELECT id FROM inventories WHERE node = $1 AND container_id = $2 "
                      "ORDER BY taken_ns DESC, id DESC LIMIT $3)",
                      t.get());
    if (!r) return std::unexpected(r.error());
    return {};
  });
}

}  // namespace driftwatch
