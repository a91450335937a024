// pg_alert_store: detection's writes (DetectionStore, lib/alerts/alert_store.h) on the store
// several collectors share on PostgreSQL (issue 17); the tables are migration 2 of
// lib/store/pg_schema.h, SQLite's alert tables with the differences listed there. The same
// contract as AlertStore, and:
//
// Fencing: CommitDetection first checks, inside its transaction, every lease the commit
// names (HoldsLease, lib/store/pg_lease.h; in node order, which is also the lock order): a
// lease no longer held fails the commit with ErrorCode::kNotFound ("lease of node X lost")
// and nothing of it is stored. A commit that names no lease is not fenced.
//
// Two collectors committing one node's alerts at once (a deposed owner before its fencing
// catches it, or a replay racing the new owner): each commit then takes a transaction-scoped
// advisory lock per node its alerts are of, in one order, so that whether an alert is a
// replay, a repeat or new is decided on committed rows, one commit after the other. The
// unique index on (event_key, rule) stays the last word on stored alerts
// (INSERT ... ON CONFLICT DO NOTHING): an alert is stored once whoever commits it.
//
// Outbox: Undelivered returns only the deliveries of alerts whose node has an unexpired
// lease (by the server's clock) held by this store's owner: each collector delivers what its
// nodes alerted, and after a takeover the new owner delivers what the old one left.
// OpenAggregates returns every node's: closing an aggregate that another collector closes too
// is harmless (the close takes effect once; the second finds it closed).
//
// Connections: one, made at Open, made again by the next call after it was lost. A call on a
// lost connection fails with ErrorCode::kUnavailable (nothing stored, or, for a COMMIT lost
// under way, unknown: a retry of the commit finds its alerts stored and reports them as
// duplicates). Other server errors are kIo and name the statement and the redacted URI.
//
// Text: alert fields are stored as PostgreSQL text (PgTextOf: bytes that are not UTF-8 become
// U+FFFD); a SQLite callback (DetectionCommit::extra) is refused with kInvalidInput.
//
// Thread-safety: as AlertStore: one thread at a time.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "lib/alerts/alert_store.h"
#include "lib/store/pg_conn.h"

namespace driftwatch {

class PgAlertStore : public DetectionStore {
 public:
  // Connects to `uri` and migrates the schema (MigratePg with PgStoreMigrations, recorded as
  // applied by `owner`): a fresh database works. `owner` is this collector's lease owner name
  // (Undelivered).
  [[nodiscard]] static Result<std::unique_ptr<PgAlertStore>> Open(const std::string& uri,
                                                                  std::string owner);
  ~PgAlertStore() override = default;
  PgAlertStore(const PgAlertStore&) = delete;
  PgAlertStore& operator=(const PgAlertStore&) = delete;

  Result<bool> Insert(const Alert& alert, const std::string& json) override;
  Result<DetectionCommitted> CommitDetection(const DetectionCommit& c) override;
  Result<std::vector<OpenAggregate>> OpenAggregates() override;
  Result<std::vector<PendingDelivery>> Undelivered() override;
  Result<> UpdateAlerts(const std::vector<AlertUpdate>& updates) override;
  Result<> MarkDelivered(const std::vector<std::pair<int64_t, std::string>>& done) override;
  Result<std::map<std::string, std::string>> NodeLosses() override;
  Result<> InsertInventory(const StoredInventory& inv) override;

  // The connection's server process (tests end it); 0 while disconnected.
  int backend_pid() const { return conn_ && conn_->connected() ? conn_->backend_pid() : 0; }

 private:
  PgAlertStore(std::string uri, std::string owner)
      : uri_(std::move(uri)), owner_(std::move(owner)) {}
  // The connection, made again when it was lost.
  Result<PgConn*> Conn();
  // `body` in one transaction: committed when it succeeds, rolled back when it fails.
  Result<> Transaction(std::string_view what, const std::function<Result<>(PgConn*)>& body);
  // Inserts a row (count 1); its id, or 0 when (event_key, rule) was stored before.
  Result<int64_t> InsertRow(PgConn* c, const Alert& a, const std::string& json,
                            const std::string& agg_key, int64_t open_until_ns);
  // An alert with an aggregate key, in CommitDetection's transaction.
  Result<StoredResult> StoreAggregated(PgConn* c, const NewAlert& n, int64_t now_ns,
                                       int64_t window_ns);

  const std::string uri_;
  const std::string owner_;
  std::unique_ptr<PgConn> conn_;
};

}  // namespace driftwatch
