// sqlite_util: what the store's writer and readers share: the schema version they read,
// statements that finalize themselves, errors that name the statement that failed.
#pragma once

#include <sqlite3.h>

#include <expected>
#include <string>
#include <string_view>
#include <utility>

#include "lib/base/result.h"

#include "lib/store/node_state.h"

namespace driftwatch::sql {

// PRAGMA user_version of the schema lib/store/event_store.cc creates.
inline constexpr int kSchemaVersion = 3;

// The `nodes` columns in ReadNodeRow's order.
extern const char* const kNodeColumns;

// "what: sqlite's message", coded by sqlite's error: corrupt or not a database: corruption;
// busy or locked: unavailable; anything else: I/O.
Error SqliteError(sqlite3* db, std::string_view what);

// Finalizes on scope exit.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s); }
};

Result<> Prepare(sqlite3* db, const char* sql, Stmt* out,
                                         bool persistent = false);
// Bound without a copy (SQLITE_STATIC): `v` must outlive the statement's step.
void BindText(sqlite3_stmt* s, int i, std::string_view v);
void BindBlob(sqlite3_stmt* s, int i, std::string_view v);
std::string ColumnText(sqlite3_stmt* s, int i);
// A row of `SELECT <kNodeColumns> FROM nodes`.
NodeState ReadNodeRow(sqlite3_stmt* s);

// user_version and whether an `events` table exists: 0/false is an empty database.
Result<std::pair<int, bool>> SchemaState(sqlite3* db);
// Why a database of this schema version cannot be used, and what to do.
std::string OldSchemaError(int version);

}  // namespace driftwatch::sql
