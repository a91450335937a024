// pg_event_reader: the CLI's queries (driftwatch events) of the store on PostgreSQL
// (lib/store/pg_schema.h), as EventReader answers them of SQLite: the same filters, the
// newest `limit` matches printed oldest first, each event with its id, container id and its
// container's latest info put back. Order: as committed (stored_ns, then node and the node's
// id: a node's ids grow in commit order; nodes' commits interleave by time).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lib/base/result.h"
#include "lib/store/event_reader.h"
#include "lib/store/pg_conn.h"

namespace driftwatch {

class PgEventReader : public EventQueries {
 public:
  static Result<std::unique_ptr<PgEventReader>> Open(const std::string& uri);

  Result<uint64_t> Query(const EventQuery& q,
                         const std::function<void(const StoredEvent&)>& fn) override;
  Result<std::vector<NodeState>> Nodes() override;
  Result<uint64_t> CountEvents() override;
  // Leases and collectors' heartbeats compared with the server's clock; every table read by
  // its key or whole (nodes, node_heads, detect_cursors, detect_leases, gaps, collectors:
  // a row per node, gap or collector), never events.
  Result<StoreStatus> Status() override;

 private:
  PgEventReader(std::unique_ptr<PgConn> c, int version) : c_(std::move(c)), version_(version) {}
  std::unique_ptr<PgConn> c_;
  int version_;  // the schema's, as read at Open
};

// Detection's view of one node's events on PostgreSQL (issue 17): a collector evaluates the
// nodes whose lease it holds (lib/store/pg_lease.h), each from its cursor by the node's ids,
// which grow in commit order; when it takes a node over it rebuilds the node's correlation
// state from the node's containers and the events of a window before the cursor.
// Thread-compatible: one scanner per thread. Runs and container ids are cached once read.
class PgEventScanner {
 public:
  static Result<std::unique_ptr<PgEventScanner>> Open(const std::string& uri);

  // `node`'s events with after < id <= upto (0: no upper bound), in id order, at most
  // `limit`; `fn` gets each with its id in ScannedEvent::rowid. Returns how many.
  Result<uint64_t> Scan(const std::string& node, int64_t after, int64_t upto, size_t limit,
                        const std::function<void(const ScannedEvent&)>& fn);
  Result<const RunInfo*> Run(int64_t run_id);  // nullptr when gone
  Result<const std::string*> ContainerId(int64_t cid);
  // The node's first id whose event time is >= time_ns (0: none), and an id's event time.
  Result<int64_t> FirstIdAtOrAfter(const std::string& node, int64_t time_ns);
  Result<std::optional<int64_t>> TimeOf(const std::string& node, int64_t id);
  // The node's gaps recorded with an event after < id <= upto.
  Result<std::vector<StoredGap>> Gaps(const std::string& node, int64_t after, int64_t upto);
  // The latest ContainerInfo of each of the node's containers: container id, serialized info.
  Result<> ContainerInfos(const std::string& node,
                          const std::function<void(const std::string& id, std::string_view info)>& fn);
  // detect_cursors: the node's last id detection finished with (0: none yet).
  Result<int64_t> Cursor(const std::string& node);
  // The node's highest id committed (node_heads), 0 when it has none.
  Result<int64_t> Head(const std::string& node);
  // The same for several nodes at once; nodes without events are left out.
  Result<std::map<std::string, int64_t>> Heads(const std::vector<std::string>& nodes);

 private:
  explicit PgEventScanner(std::unique_ptr<PgConn> c) : c_(std::move(c)) {}
  std::unique_ptr<PgConn> c_;
  std::map<int64_t, RunInfo> runs_;
  std::map<int64_t, std::string> cids_;
};

// The reader --db names: a postgresql:// URI, else a SQLite file.
Result<std::unique_ptr<EventQueries>> OpenEventQueries(const std::string& db);

}  // namespace driftwatch
