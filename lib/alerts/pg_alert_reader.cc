#include "lib/alerts/pg_alert_reader.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "lib/store/pg_schema.h"

namespace driftwatch {
namespace {

// WHERE clauses over the columns alerts, allowed_drift and inventories share, their values
// as parameters ($1, $2, ...), never in the SQL.
struct Filter {
  std::string where = " WHERE true";
  std::vector<std::optional<std::string>> params;

  std::string Param(std::string_view v) {
    params.push_back(PgTextOf(v));
    std::string ref = "$";
    ref += std::to_string(params.size());  // not "$" + ...: g++ 12 warns falsely (-Wrestrict)
    return ref;
  }
  void Text(const std::string& column, const std::string& v) {
    where += " AND " + column + " = " + Param(v);
  }
  void Num(const std::string& condition, int64_t v) {
    where += " AND " + condition + " " + Param(std::to_string(v));
  }
  void Common(const std::string& node, const std::string& container, const std::string& pod) {
    if (!node.empty()) Text("node", node);
    if (!container.empty()) {
      // A full id or a prefix: LIKE with its wildcards escaped, which the index on
      // container_id (text_pattern_ops) serves; text, never a pattern of the user's.
      std::string like;
      for (char ch : container) {
        if (ch == '%' || ch == '_' || ch == '\\') like += '\\';
        like += ch;
      }
      where += " AND container_id LIKE " + Param(like + "%");
    }
    if (!pod.empty()) {
      if (size_t slash = pod.find('/'); slash != std::string::npos) {
        Text("pod_namespace", pod.substr(0, slash));
        Text("pod_name", pod.substr(slash + 1));
      } else {
        Text("pod_name", pod);
      }
    }
  }
  // SELECT cols FROM table WHERE ... in time order, or only the newest `limit` of them.
  std::string Select(const std::string& cols, const std::string& table,
                     const std::string& time_col, uint64_t limit) {
    if (limit == 0)
      return "SELECT " + cols + " FROM " + table + where + " ORDER BY " + time_col + ", id";
    const std::string lim = Param(std::to_string(std::min<uint64_t>(limit, INT64_MAX)));
    return "SELECT * FROM (SELECT " + cols + " FROM " + table + where + " ORDER BY " +
           time_col + " DESC, id DESC LIMIT " + lim + ") AS newest ORDER BY " + time_col +
           ", id";
  }
};

}  // namespace

Result<std::unique_ptr<PgAlertReader>> PgAlertReader::Open(const std::string& uri) {
  int version = 0;
  auto c = OpenPgStoreReader(uri, &version);
  if (!c) return std::unexpected(c.error());
  return std::unique_ptr<PgAlertReader>(new PgAlertReader(std::move(*c), version >= 2));
}

Result<uint64_t> PgAlertReader::Query(const AlertQuery& q,
                                      const std::function<void(const StoredAlert&)>& fn) {
  if (!has_tables_) return 0;
  Filter f;
  f.Common(q.node, q.container, q.pod);
  if (!q.rule.empty()) f.Text("rule", q.rule);
  if (q.min_priority) f.Num("priority <=", static_cast<int64_t>(*q.min_priority));
  if (q.since_ns) f.Num("time_ns >=", *q.since_ns);
  if (q.until_ns) f.Num("time_ns <", *q.until_ns);
  const std::string sql = f.Select(
      "id, time_ns, stored_ns, node, container_id, container_name, pod_name, pod_namespace, "
      "rule, priority, message, json, count, first_ns, last_ns, open_until_ns <> 0 AS open",
      "alerts", "time_ns", q.limit);
  StoredAlert a;
  return c_->Stream("query alerts", sql, f.params, [&](const PGresult* r) -> Result<> {
    a.id = PgGetInt(r, 0, 0);
    a.time_ns = PgGetInt(r, 0, 1);
    a.stored_ns = PgGetInt(r, 0, 2);
    a.node = PgGetText(r, 0, 3);
    a.container_id = PgGetText(r, 0, 4);
    a.container_name = PgGetText(r, 0, 5);
    a.pod_name = PgGetText(r, 0, 6);
    a.pod_namespace = PgGetText(r, 0, 7);
    a.rule = PgGetText(r, 0, 8);
    const int64_t p = PgGetInt(r, 0, 9);
    a.priority = p >= 0 && p <= 7 ? static_cast<Priority>(p) : Priority::kDebug;
    a.message = PgGetText(r, 0, 10);
    a.json = PgGetText(r, 0, 11);
    a.count = static_cast<uint64_t>(PgGetInt(r, 0, 12));
    a.first_ns = PgGetInt(r, 0, 13);
    a.last_ns = PgGetInt(r, 0, 14);
    a.open = PgGetText(r, 0, 15) == "t";
    fn(a);
    return {};
  });
}

Result<uint64_t> PgAlertReader::QueryAllowed(
    const AllowedDriftQuery& q, const std::function<void(const StoredAllowedDrift&)>& fn) {
  if (!has_tables_) return 0;
  Filter f;
  f.Common(q.node, "", q.pod);
  if (!q.ns.empty()) f.Text("pod_namespace", q.ns);
  if (q.since_ns) f.Num("last_ns >=", *q.since_ns);
  const std::string sql = f.Select(
      "id, day, node, pod_namespace, workload, container_name, image, rule, allowed_by, "
      "subject, count, first_ns, last_ns, container_id, pod_name, message",
      "allowed_drift", "last_ns", q.limit);
  StoredAllowedDrift d;
  return c_->Stream("query allowed drift", sql, f.params, [&](const PGresult* r) -> Result<> {
    d.id = PgGetInt(r, 0, 0);
    std::string* text[] = {&d.day, &d.node, &d.pod_namespace, &d.workload, &d.container_name,
                           &d.image, &d.rule, &d.allowed_by, &d.subject};
    int i = 1;
    for (std::string* t : text) *t = PgGetText(r, 0, i++);
    d.count = static_cast<uint64_t>(PgGetInt(r, 0, 10));
    d.first_ns = PgGetInt(r, 0, 11);
    d.last_ns = PgGetInt(r, 0, 12);
    d.container_id = PgGetText(r, 0, 13);
    d.pod_name = PgGetText(r, 0, 14);
    d.message = PgGetText(r, 0, 15);
    fn(d);
    return {};
  });
}

Result<uint64_t> PgAlertReader::QueryInventories(
    const InventoryQuery& q, const std::function<void(const StoredInventory&)>& fn) {
  if (!has_tables_) return 0;
  Filter f;
  f.Common(q.node, q.container, q.pod);
  if (!q.name.empty()) f.Text("container_name", q.name);
  const std::string sql = f.Select(
      "id, taken_ns, node, container_id, container_name, pod_name, pod_namespace, rules, "
      "error, entries, reply",
      "inventories", "taken_ns", q.limit);
  StoredInventory inv;
  return c_->Stream("query inventories", sql, f.params, [&](const PGresult* r) -> Result<> {
    inv.id = PgGetInt(r, 0, 0);
    inv.taken_ns = PgGetInt(r, 0, 1);
    inv.node = PgGetText(r, 0, 2);
    inv.container_id = PgGetText(r, 0, 3);
    inv.container_name = PgGetText(r, 0, 4);
    inv.pod_name = PgGetText(r, 0, 5);
    inv.pod_namespace = PgGetText(r, 0, 6);
    inv.rules = PgGetText(r, 0, 7);
    inv.error = PgGetText(r, 0, 8);
    inv.entries = static_cast<uint64_t>(PgGetInt(r, 0, 9));
    inv.reply = PgGetBytes(r, 0, 10);
    fn(inv);
    return {};
  });
}

Result<std::unique_ptr<AlertQueries>> OpenAlertQueries(const std::string& db) {
  if (IsPgUri(db)) {
    auto r = PgAlertReader::Open(db);
    if (!r) return std::unexpected(r.error());
    return std::unique_ptr<AlertQueries>(std::move(*r));
  }
  auto r = AlertReader::Open(db);
  if (!r) return std::unexpected(r.error());
  return std::unique_ptr<AlertQueries>(std::move(*r));
}

}  // namespace driftwatch
