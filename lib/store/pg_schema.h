// pg_schema: the tables of the store several collectors share on PostgreSQL (issue 17), as
// versioned migrations (MigratePg, lib/store/pg_conn.h), and the daily event partitions.
//
// What differs from the SQLite store (event_store.cc) and why:
//  - Event ids are per node, assigned under the lock of the node's row in node_heads, so a
//    node's ids grow in commit order whichever collector commits: detection's per-node
//    cursor ("id > cursor") never passes over a row committed later with a smaller id, as a
//    global sequence shared by concurrent writers would allow.
//  - A run's high-water mark (runs.max_seq) is read FOR UPDATE in the ingest transaction, not
//    trusted from memory: another collector may have stored the run's events since (a
//    sensor that failed over). Events at or below it are duplicates, as in SQLite.
//  - events is partitioned by stored_ns, one partition per UTC day (events_YYYYMMDD), made
//    ahead by EnsureEventPartitions; retention drops whole partitions, not rows.
//  - detect_leases: which collector evaluates which node, until when (issue 17's takeover).
// Migration 2, detection's tables (lib/alerts/pg_alert_store.h; SQLite's: alert_store.h):
//  - ids: bigint identities, never reused; an insert that conflicts uses one up (gaps).
//  - alerts: count .. open_until_ns from the start (no ADD COLUMN path); first/last_ns never 0.
//  - alerts: two more indexes, (rule, time_ns) and (container_id text_pattern_ops) for prefixes.
//  - text is UTF-8 without NUL: other bytes of an alert's fields are stored as U+FFFD (PgTextOf).
//  - detect_cursors (migration 1) has a cursor per node, not SQLite's global floor under "".
//  - collectors(owner, expires_ns): each live collector's heartbeat, for the lease balancer.
// Migration 3: enrollments, the newest node certificate per name (collector/enrollment.h),
// SQLite deployments' --enroll-records file as a table the collectors share.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "lib/base/result.h"
#include "lib/store/pg_conn.h"

namespace driftwatch {

// The store's migrations, oldest first.
std::span<const PgMigration> PgStoreMigrations();

// A read-only connection to a store this build can read (the CLI's readers, detection's
// scanner): schema version 1 to PgStoreMigrations().size(), put in `*version` when given.
// A database without dw_schema_migrations is "not a driftwatch store" (InvalidInput, naming
// the redacted URI).
Result<std::unique_ptr<PgConn>> OpenPgStoreReader(const std::string& uri, int* version = nullptr);

// events_YYYYMMDD for the UTC day holding `stored_ns`: its bounds [from, to) in ns.
struct EventPartition {
  std::string name;
  int64_t from_ns = 0, to_ns = 0;
};
EventPartition EventPartitionOf(int64_t stored_ns);

// Makes the partitions of the days from `now_ns` to `days_ahead` days after it, if missing
// (collectors racing here are fine: IF NOT EXISTS under the migration lock's key).
Result<> EnsureEventPartitions(PgConn* c, int64_t now_ns, int days_ahead = 1);

// Drops the partitions that end at or before `cutoff_ns` (retention by age); returns how
// many. A partition a day still running is never dropped.
Result<int> DropEventPartitionsBefore(PgConn* c, int64_t cutoff_ns);

}  // namespace driftwatch
