#include "lib/store/pg_lease.h"

#include "lib/store/pg_conn.h"

#include <cstdlib>

namespace driftwatch {
namespace {

// The server's clock in ns since the epoch, in SQL.
constexpr const char* kNowNs = "(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint";

int64_t Int(const PGresult* r, int row, int col) {
  return std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

}  // namespace

Result<std::optional<Lease>> AcquireLease(PgConn* c, const std::string& node,
                                          const std::string& owner,
                                          std::chrono::milliseconds ttl) {
  const std::string ttl_ns = std::to_string(ttl.count() * 1'000'000);
  // One statement: the insert, or the update where the row allows it; a row held by another
  // owner and not expired is left alone and returns nothing.
  auto r = c->Exec("acquire the lease of node " + node,
                   std::string("INSERT INTO detect_leases AS l(node, owner, expires_ns, epoch) "
                               "VALUES ($1, $2, ") + kNowNs + " + $3, 1) "
                   "ON CONFLICT (node) DO UPDATE SET owner = excluded.owner, "
                   "expires_ns = excluded.expires_ns, "
                   "epoch = l.epoch + CASE WHEN l.owner = excluded.owner THEN 0 ELSE 1 END "
                   "WHERE l.owner = excluded.owner OR l.expires_ns <= " + kNowNs +
                   " RETURNING epoch, expires_ns",
                   {node, owner, ttl_ns});
  if (!r) return std::unexpected(r.error());
  if (PQntuples(r->get()) == 0) return std::optional<Lease>();
  return std::optional<Lease>(Lease{node, owner, Int(r->get(), 0, 0), Int(r->get(), 0, 1)});
}

Result<bool> HoldsLease(PgConn* c, const Lease& lease, std::chrono::milliseconds ttl) {
  auto r = c->Exec("check the lease of node " + lease.node,
                   std::string("UPDATE detect_leases SET expires_ns = ") + kNowNs + " + $4 "
                   "WHERE node = $1 AND owner = $2 AND epoch = $3 AND expires_ns > " + kNowNs +
                   " RETURNING expires_ns",
                   {lease.node, lease.owner, std::to_string(lease.epoch),
                    std::to_string(ttl.count() * 1'000'000)});
  if (!r) return std::unexpected(r.error());
  return PQntuples(r->get()) == 1;
}

Result<> ReleaseLease(PgConn* c, const Lease& lease) {
  auto r = c->Exec("release the lease of node " + lease.node,
                   std::string("UPDATE detect_leases SET expires_ns = ") + kNowNs +
                   " WHERE node = $1 AND owner = $2 AND epoch = $3",
                   {lease.node, lease.owner, std::to_string(lease.epoch)});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<std::vector<std::string>> UnownedNodes(PgConn* c, size_t limit) {
  auto r = c->Exec("list nodes without a live lease",
                   std::string("SELECT h.node FROM node_heads h LEFT JOIN detect_leases l "
                               "ON l.node = h.node WHERE l.node IS NULL OR l.expires_ns <= ") +
                       kNowNs + " ORDER BY coalesce(l.expires_ns, 0), h.node LIMIT $1",
                   {std::to_string(limit)});
  if (!r) return std::unexpected(r.error());
  std::vector<std::string> out;
  for (int i = 0; i < PQntuples(r->get()); ++i) out.emplace_back(PQgetvalue(r->get(), i, 0));
  return out;
}

}  // namespace driftwatch
