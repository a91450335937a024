// pg_alert_reader: the CLI's queries (driftwatch alerts, driftwatch inventory) of the store
// several collectors share on PostgreSQL (lib/store/pg_schema.h, migration 2), as AlertReader
// answers them of SQLite: the same filters, the newest `limit` matches printed oldest first,
// ordered by time, then id. Rows are streamed (libpq's single-row mode): a query without
// --limit over every stored alert holds one row at a time. A store of schema version 1 (no
// alert tables yet) reads as empty, as a SQLite file without the tables does.
//
// Thread-safety: one thread at a time.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "lib/alerts/alert_store.h"
#include "lib/store/pg_conn.h"

namespace driftwatch {

class PgAlertReader : public AlertQueries {
 public:
  // Read-only; errors name the URI without its password ("not a driftwatch store": a
  // database without the store's schema).
  [[nodiscard]] static Result<std::unique_ptr<PgAlertReader>> Open(const std::string& uri);

  Result<uint64_t> Query(const AlertQuery& q,
                         const std::function<void(const StoredAlert&)>& fn) override;
  Result<uint64_t> QueryAllowed(
      const AllowedDriftQuery& q,
      const std::function<void(const StoredAllowedDrift&)>& fn) override;
  Result<uint64_t> QueryInventories(
      const InventoryQuery& q, const std::function<void(const StoredInventory&)>& fn) override;

 private:
  PgAlertReader(std::unique_ptr<PgConn> c, bool has_tables)
      : c_(std::move(c)), has_tables_(has_tables) {}
  std::unique_ptr<PgConn> c_;
  const bool has_tables_;  // schema version 2 or later
};

// The reader --db names: a postgresql:// URI, else a SQLite file.
[[nodiscard]] Result<std::unique_ptr<AlertQueries>> OpenAlertQueries(const std::string& db);

}  // namespace driftwatch
