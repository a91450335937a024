// pg_event_reader: the CLI's queries (driftwatch events) of the store on PostgreSQL
// (lib/store/pg_schema.h), as EventReader answers them of SQLite: the same filters, the
// newest `limit` matches printed oldest first, each event with its id, container id and its
// container's latest info put back. Order: as committed (stored_ns, then node and the node's
// id: a node's ids grow in commit order; nodes' commits interleave by time).
#pragma once

#include <memory>
#include <string>

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

 private:
  explicit PgEventReader(std::unique_ptr<PgConn> c) : c_(std::move(c)) {}
  std::unique_ptr<PgConn> c_;
};

// The reader --db names: a postgresql:// URI, else a SQLite file.
Result<std::unique_ptr<EventQueries>> OpenEventQueries(const std::string& db);

}  // namespace driftwatch
