#include "lib/store/pg_schema.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace driftwatch {
namespace {

constexpr int64_t kDayNs = 86'400'000'000'000;
// Partition DDL of collectors racing: one at a time (catalog rows are unique).
constexpr int64_t kPartitionLock = 0x6477706172746e73;  // "dwpartns"

// Migration 1: ingest's tables. Times are ns since the epoch (bigint), as in SQLite;
// payloads the events' protobuf bytes.
constexpr const char* kIngestTables = R"sql(
CREATE TABLE runs(
  run_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  node text NOT NULL,
  boot_id text NOT NULL,
  sensor_start_ns bigint NOT NULL,
  max_seq bigint NOT NULL DEFAULT 0,
  updated_ns bigint NOT NULL,
  UNIQUE (node, boot_id, sensor_start_ns));
CREATE TABLE node_heads(
  node text PRIMARY KEY,
  last_id bigint NOT NULL DEFAULT 0);
CREATE TABLE container_ids(
  cid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  node text NOT NULL,
  id text NOT NULL,
  updated_ns bigint NOT NULL,
  UNIQUE (id, node));
CREATE TABLE events(
  node text NOT NULL,
  id bigint NOT NULL,
  run_id bigint NOT NULL,
  seq bigint NOT NULL,
  time_ns bigint NOT NULL,
  stored_ns bigint NOT NULL,
  cid bigint NOT NULL,
  kind smallint NOT NULL,
  payload bytea NOT NULL) PARTITION BY RANGE (stored_ns);
CREATE INDEX events_node_id ON events (node, id);
CREATE INDEX events_cid_time ON events (cid, time_ns);
CREATE INDEX events_time ON events (time_ns);
CREATE TABLE containers(
  cid bigint PRIMARY KEY,
  info bytea NOT NULL,
  updated_ns bigint NOT NULL);
CREATE TABLE nodes(
  node text PRIMARY KEY,
  connected_streams integer NOT NULL,
  last_seen_ns bigint NOT NULL,
  events_stored bigint NOT NULL,
  duplicates bigint NOT NULL,
  boot_id text NOT NULL,
  sensor_start_ns bigint NOT NULL,
  sensor_version text NOT NULL,
  kernel_version text NOT NULL,
  audit_mode text NOT NULL,
  fanotify_mode text NOT NULL,
  spool_dropped bigint NOT NULL,
  peer text NOT NULL);
CREATE TABLE gaps(
  gap_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  node text NOT NULL,
  run_id bigint NOT NULL,
  from_seq bigint NOT NULL,
  to_seq bigint NOT NULL,
  after_id bigint NOT NULL,
  stored_ns bigint NOT NULL);
CREATE INDEX gaps_node_after ON gaps (node, after_id);
CREATE TABLE detect_cursors(
  node text PRIMARY KEY,
  id bigint NOT NULL,
  updated_ns bigint NOT NULL);
CREATE TABLE detect_leases(
  node text PRIMARY KEY,
  owner text NOT NULL,
  expires_ns bigint NOT NULL,
  epoch bigint NOT NULL DEFAULT 1)
)sql";

// Migration 2: detection's tables (lib/alerts/pg_alert_store.h), as SQLite's AlertStore
// has them (lib/alerts/alert_store.h), and the collectors' presence for the lease balancer.
constexpr const char* kAlertTables = R"sql(
CREATE TABLE alerts(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time_ns bigint NOT NULL,
  stored_ns bigint NOT NULL,
  node text NOT NULL,
  container_id text NOT NULL,
  container_name text NOT NULL,
  pod_name text NOT NULL,
  pod_namespace text NOT NULL,
  rule text NOT NULL,
  priority smallint NOT NULL,
  event_key text NOT NULL,
  message text NOT NULL,
  json text NOT NULL,
  count bigint NOT NULL DEFAULT 1,
  first_ns bigint NOT NULL,
  last_ns bigint NOT NULL,
  agg_key text NOT NULL DEFAULT '',
  open_until_ns bigint NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX alerts_event_rule ON alerts (event_key, rule) WHERE event_key <> '';
CREATE INDEX alerts_time ON alerts (time_ns);
CREATE INDEX alerts_node_time ON alerts (node, time_ns);
CREATE INDEX alerts_rule_time ON alerts (rule, time_ns);
CREATE INDEX alerts_container ON alerts (container_id text_pattern_ops, time_ns);
CREATE INDEX alerts_open ON alerts (agg_key, open_until_ns) WHERE open_until_ns <> 0;
CREATE TABLE alert_repeats(
  event_key text NOT NULL,
  rule text NOT NULL,
  alert_id bigint NOT NULL,
  PRIMARY KEY (event_key, rule));
CREATE INDEX alert_repeats_alert ON alert_repeats (alert_id);
CREATE TABLE deliveries(
  alert_id bigint NOT NULL,
  output text NOT NULL,
  PRIMARY KEY (alert_id, output));
CREATE TABLE node_losses(
  node text PRIMARY KEY,
  lifetime bytea NOT NULL,
  updated_ns bigint NOT NULL);
CREATE TABLE allowed_drift(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  day text NOT NULL,
  node text NOT NULL,
  pod_namespace text NOT NULL,
  workload text NOT NULL,
  container_name text NOT NULL,
  image text NOT NULL,
  rule text NOT NULL,
  allowed_by text NOT NULL,
  subject text NOT NULL,
  count bigint NOT NULL,
  first_ns bigint NOT NULL,
  last_ns bigint NOT NULL,
  container_id text NOT NULL,
  pod_name text NOT NULL,
  message text NOT NULL);
CREATE UNIQUE INDEX allowed_drift_key ON allowed_drift (day, node, pod_namespace, workload,
  container_name, rule, allowed_by, subject);
CREATE INDEX allowed_drift_last ON allowed_drift (last_ns);
CREATE TABLE inventories(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  taken_ns bigint NOT NULL,
  node text NOT NULL,
  container_id text NOT NULL,
  container_name text NOT NULL,
  pod_name text NOT NULL,
  pod_namespace text NOT NULL,
  rules text NOT NULL,
  error text NOT NULL,
  entries bigint NOT NULL,
  reply bytea NOT NULL);
CREATE INDEX inventories_container ON inventories (node, container_id, taken_ns);
CREATE TABLE collectors(
  owner text PRIMARY KEY,
  expires_ns bigint NOT NULL)
)sql";

// Migration 3: the enrollment records (collector/enrollment.h), one row per node name for
// every collector sharing the store; a file per collector let a name enrolled at one be
// enrolled again with the bootstrap certificate at another.
constexpr const char* kEnrollmentTable = R"sql(
CREATE TABLE enrollments(
  name text PRIMARY KEY,
  serial text NOT NULL,
  not_after_s bigint NOT NULL,
  enrolled_by text NOT NULL,
  updated_ns bigint NOT NULL)
)sql";

// Migration 4: `driftwatch alerts --pod` and `--priority` by index. Without them the planner
// walked alerts_time backwards filtering every row: 0.96 s for a pod's newest 100 of 10M
// alerts (bench/pg_alerts_scale.sh), the whole table for a pod with none. Retention ages
// alerts out by stored_ns (the collector's clock, not the node's event time: a node's clock
// can lie) and inventories by taken_ns.
constexpr const char* kAlertFilterIndexes = R"sql(
CREATE INDEX alerts_pod_time ON alerts (pod_name, time_ns);
CREATE INDEX alerts_priority_time ON alerts (priority, time_ns);
CREATE INDEX alerts_stored ON alerts (stored_ns);
CREATE INDEX inventories_taken ON inventories (taken_ns)
)sql";

const PgMigration kMigrations[] = {
    {1, "ingest tables", kIngestTables},
    {2, "alert tables", kAlertTables},
    {3, "enrollment records", kEnrollmentTable},
    {4, "alert filter and retention indexes", kAlertFilterIndexes},
};

std::string DayName(int64_t day_start_ns) {
  const time_t t = static_cast<time_t>(day_start_ns / 1'000'000'000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "events_%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday);
  return buf;
}

// The day a partition's name says, as its start in ns; -1 when it is no such name.
int64_t DayOfName(const std::string& name) {
  int y = 0, m = 0, d = 0;
  char tail = 0;
  if (name.size() != 15 || std::sscanf(name.c_str(), "events_%4d%2d%2d%c", &y, &m, &d, &tail) != 3)
    return -1;
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  const time_t t = timegm(&tm);
  if (t == static_cast<time_t>(-1) || DayName(int64_t{t} * 1'000'000'000) != name) return -1;
  return int64_t{t} * 1'000'000'000;
}

}  // namespace

std::span<const PgMigration> PgStoreMigrations() { return kMigrations; }

Result<std::unique_ptr<PgConn>> OpenPgStoreReader(const std::string& uri, int* version) {
  auto c = PgConn::Connect(uri);
  if (!c) return std::unexpected(c.error());
  auto v = (*c)->Exec("read the schema version",
                      "SELECT coalesce(max(version), 0) FROM dw_schema_migrations");
  if (!v) {
    if ((*c)->last_sqlstate() != "42P01")  // undefined_table
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
  if (version != nullptr) *version = have;
  return std::move(*c);
}

EventPartition EventPartitionOf(int64_t stored_ns) {
  const int64_t from = stored_ns >= 0 ? stored_ns / kDayNs * kDayNs
                                      : (stored_ns - kDayNs + 1) / kDayNs * kDayNs;
  return {DayName(from), from, from + kDayNs};
}

Result<> EnsureEventPartitions(PgConn* c, int64_t now_ns, int days_ahead) {
  if (auto ok = c->Run("begin partitions", "BEGIN"); !ok) return ok;
  auto body = [&]() -> Result<> {
    if (auto ok = c->Run("take the partition lock",
                         "SELECT pg_advisory_xact_lock(" + std::to_string(kPartitionLock) + ")");
        !ok)
      return ok;
    for (int d = 0; d <= days_ahead; ++d) {
      const EventPartition p = EventPartitionOf(now_ns + d * kDayNs);
      if (auto ok = c->Run("create partition " + p.name,
                           "CREATE TABLE IF NOT EXISTS " + p.name + " PARTITION OF events FOR VALUES FROM (" +
                               std::to_string(p.from_ns) + ") TO (" + std::to_string(p.to_ns) + ")");
          !ok)
        return ok;
    }
    return {};
  };
  auto ok = body();
  if (!ok) {
    (void)c->Run("roll partitions back", "ROLLBACK");
    return ok;
  }
  return c->Run("commit partitions", "COMMIT");
}

Result<int> DropEventPartitionsBefore(PgConn* c, int64_t cutoff_ns) {
  auto r = c->Exec("list event partitions",
                   "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                   "WHERE i.inhparent = 'events'::regclass");
  if (!r) return std::unexpected(r.error());
  std::vector<std::string> drop;
  for (int i = 0; i < PQntuples(r->get()); ++i) {
    const std::string name = PQgetvalue(r->get(), i, 0);
    const int64_t day = DayOfName(name);
    if (day >= 0 && day + kDayNs <= cutoff_ns) drop.push_back(name);
  }
  for (const std::string& name : drop) {
    // A name DayOfName took: events_ and eight digits, nothing to quote.
    if (auto ok = c->Run("drop partition " + name, "DROP TABLE IF EXISTS " + name); !ok)
      return std::unexpected(ok.error());
  }
  return static_cast<int>(drop.size());
}

}  // namespace driftwatch
