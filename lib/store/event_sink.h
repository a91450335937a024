// event_sink: what the collector's ingest needs of an event store, whichever backend keeps
// it: the embedded SQLite store (lib/store/event_store.h) or the PostgreSQL store several
// collectors share (lib/store/pg_event_store.h). Both take prepared batches, commit them
// exactly once per (node, run, seq), and call back once a batch is committed.
//
// Thread-safety: every method is thread-safe. Submit never blocks on the database; callbacks
// run on the store's writer thread, in submission order, and must not block. REQUIRES:
// Close() is called by the owner only, never from a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lib/base/result.h"
#include "lib/store/node_state.h"
#include "lib/store/prepared_batch.h"

namespace driftwatch {

struct CommitResult {
  uint64_t stored = 0;      // events newly stored
  uint64_t duplicates = 0;  // events already stored before (dropped)
  std::string error;        // set when the transaction failed: nothing of it was stored
};

class EventSink {
 public:
  using Callback = std::function<void(const CommitResult&)>;

  virtual ~EventSink() = default;

  // The batch is shared, not copied. `stream` names the sensor stream it came from (0: none):
  // once one of a stream's batches failed to commit, its later batches are refused too, so
  // that they cannot raise the run's high-water mark above events that must be sent again.
  virtual void Submit(std::shared_ptr<const PreparedBatch> batch, Callback done,
                      uint64_t stream = 0) = 0;
  // Blocks until everything submitted before the call is committed (or failed).
  virtual void Flush() = 0;
  // Commits what is queued, runs the remaining callbacks, stops the writer.
  virtual void Close() = 0;
  // Why the last commit failed; "" once one succeeds again.
  virtual std::string last_error() const = 0;
  // The store's clock: the wall clock slewed never to run backwards (ns since the epoch).
  virtual int64_t StoreNowNs() = 0;

  // Connection bookkeeping (in memory at once, in the `nodes` table with the next commit).
  virtual void NodeConnected(const std::string& node, const NodeHello& hello) = 0;
  virtual void NodeDisconnected(const std::string& node) = 0;
  virtual std::optional<NodeState> Node(const std::string& node) const = 0;
  virtual std::vector<NodeState> Nodes() const = 0;

  // Runs retention now (the writer also runs it periodically). Returns what it deleted
  // (rows for SQLite, partitions and side-table rows for PostgreSQL).
  virtual Result<uint64_t> EnforceRetention(int64_t now_ns) = 0;
};

}  // namespace driftwatch
