// pg_lease: which collector evaluates which node's events (issue 17). Detection is per node
// (correlation state is a node's), so collectors sharing one PostgreSQL store share the work
// by node: each node's detection has one owner at a time, through a lease row in
// detect_leases (node, owner, expires_ns, epoch) that the owner renews; when it stops renewing
// (killed, partitioned away), another collector takes the node over once the lease expires,
// with the epoch one higher, and rebuilds the node's correlation state from the stored window.
//
// Times are the database server's clock (clock_timestamp()), never a collector's: collectors
// whose clocks disagree still agree on when a lease ends.
//
// Fencing: an owner that lost its lease without knowing (it stalled past the expiry while
// another took over) must not store alerts or move the cursor any more. Every detection
// commit calls HoldsLease inside its transaction: the row is locked and checked against the
// owner and epoch it was granted, so a commit of a deposed owner fails and rolls back, and
// the new owner's alerts are the only ones stored for what it evaluates.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lib/base/result.h"

namespace driftwatch {

class PgConn;  // lib/store/pg_conn.h (this header is read without libpq's)

struct Lease {
  std::string node;
  std::string owner;
  int64_t epoch = 0;       // one more at every change of owner
  int64_t expires_ns = 0;  // the server's clock
};

// Takes or renews `node`'s lease for `owner` for `ttl`: granted when the node has no lease,
// `owner` holds it, or it expired. nullopt: another owner holds it. An epoch other than the
// one the caller held means another collector owned the node meanwhile (and may have moved
// its cursor): the caller rebuilds the node's state from the store.
Result<std::optional<Lease>> AcquireLease(PgConn* c, const std::string& node,
                                          const std::string& owner, std::chrono::milliseconds ttl);

// Inside the caller's transaction: locks the lease row and says whether `lease` is still
// current (same owner and epoch, not expired), extending it by `ttl` if so. False: the
// caller must roll back: the node is another collector's now.
Result<bool> HoldsLease(PgConn* c, const Lease& lease, std::chrono::milliseconds ttl);

// Gives the lease up at once (a clean stop), so another collector need not wait for it to
// expire. Only the current owner's, and only that epoch.
Result<> ReleaseLease(PgConn* c, const Lease& lease);

// The nodes with events whose lease is free or expired (candidates to take over), oldest
// expiry first.
Result<std::vector<std::string>> UnownedNodes(PgConn* c, size_t limit);

}  // namespace driftwatch
