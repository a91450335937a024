#include "lib/store/sqlite_util.h"

namespace driftwatch::sql {

const char* const kNodeColumns =
    "node, connected_streams, last_seen_ns, events_stored, duplicates, boot_id, "
    "sensor_start_ns, sensor_version, kernel_version, audit_mode, fanotify_mode, "
    "spool_dropped, peer";

Error SqliteError(sqlite3* db, std::string_view what) {
  std::string m = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
  switch (db ? sqlite3_errcode(db) & 0xff : SQLITE_NOMEM) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return Error::Corruption(std::move(m));
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return Error::Unavailable(std::move(m));
    default: return Error::Io(std::move(m));
  }
}

Result<> Prepare(sqlite3* db, const char* sql, Stmt* out,
                                         bool persistent) {
  if (sqlite3_prepare_v3(db, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, &out->s,
                         nullptr) != SQLITE_OK) {
    return std::unexpected(SqliteError(db, std::string("prepare ") + sql));
  }
  return {};
}

void BindText(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
void BindBlob(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_blob(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}
std::string ColumnText(sqlite3_stmt* s, int i) {
  const unsigned char* p = sqlite3_column_text(s, i);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(s, i)))
           : std::string();
}

NodeState ReadNodeRow(sqlite3_stmt* s) {
  NodeState n;
  n.node = ColumnText(s, 0);
  n.connected_streams = static_cast<uint32_t>(sqlite3_column_int64(s, 1));
  n.last_seen_ns = sqlite3_column_int64(s, 2);
  n.events_stored = static_cast<uint64_t>(sqlite3_column_int64(s, 3));
  n.duplicates = static_cast<uint64_t>(sqlite3_column_int64(s, 4));
  n.hello.boot_id = ColumnText(s, 5);
  n.hello.sensor_start_ns = sqlite3_column_int64(s, 6);
  n.hello.sensor_version = ColumnText(s, 7);
  n.hello.kernel_version = ColumnText(s, 8);
  n.hello.audit_mode = ColumnText(s, 9);
  n.hello.fanotify_mode = ColumnText(s, 10);
  n.hello.spool_dropped = static_cast<uint64_t>(sqlite3_column_int64(s, 11));
  n.hello.peer = ColumnText(s, 12);
  return n;
}

Result<std::pair<int, bool>> SchemaState(sqlite3* db) {
  Stmt v, t;
  if (auto ok = Prepare(db, "PRAGMA user_version", &v); !ok) return std::unexpected(ok.error());
  if (sqlite3_step(v.s) != SQLITE_ROW) return std::unexpected(SqliteError(db, "user_version"));
  if (auto ok = Prepare(db, "SELECT count(*) FROM sqlite_master WHERE name='events'", &t); !ok) {
    return std::unexpected(ok.error());
  }
  if (sqlite3_step(t.s) != SQLITE_ROW) return std::unexpected(SqliteError(db, "sqlite_master"));
  return std::pair{sqlite3_column_int(v.s, 0), sqlite3_column_int(t.s, 0) > 0};
}

std::string OldSchemaError(int version) {
  return "database schema version " + std::to_string(version == 0 ? 1 : version) +
         ", this collector reads version " + std::to_string(kSchemaVersion) +
         (version == 2 ? " (the collector migrates it when it starts)"
                       : " (move the old database away to start a new one)");
}

}  // namespace driftwatch::sql
