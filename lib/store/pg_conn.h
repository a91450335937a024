// pg_conn: a PostgreSQL connection (libpq) for the store several collectors share (issue 17),
// and the versioned schema migrations it is brought up to date with.
//
// Errors name the statement that failed and what the server said, and the database by its
// URI with the password left out (RedactPgUri): they end up in logs.
//
// Migrations run in one transaction under a transaction-scoped advisory lock: collectors
// that start together against one database apply each migration exactly once (the others
// wait, then find it applied), a failing migration leaves nothing of itself, and a database
// a newer driftwatch migrated further is refused rather than written with an older schema.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.h"

namespace driftwatch {

// True for a libpq connection URI (postgresql:// or postgres://).
bool IsPgUri(std::string_view s);
// `uri` with its password (URI user info, or a password= query parameter) replaced by ***.
std::string RedactPgUri(std::string_view uri);

// A parameter of PgConn::ExecParams: text, or binary (bytea: the raw bytes) when `binary`;
// NULL when `null`. The bytes must outlive the call.
struct PgParam {
  std::string_view value;
  bool binary = false;
  bool null = false;
};

struct PgResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultFree>;

class PgConn {
 public:
  // Connects by a libpq URI; `timeout` unless the URI sets connect_timeout.
  static Result<std::unique_ptr<PgConn>> Connect(const std::string& uri,
                                                 std::chrono::seconds timeout = std::chrono::seconds(10));
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Runs one statement with text parameters (nullopt: NULL); `what` names it in errors. The
  // result holds the rows of a query.
  Result<PgResult> Exec(std::string_view what, const std::string& sql,
                        const std::vector<std::optional<std::string>>& params = {});
  // The same with parameters that may be binary (bytea without hex encoding).
  Result<PgResult> ExecParams(std::string_view what, const std::string& sql,
                              std::span<const PgParam> params);
  // A query whose rows are handed to `row` one at a time as they arrive (libpq's single-row
  // mode): memory stays one row whatever the result's size. `row` returns an error to stop
  // (the rest of the result is read and dropped). Returns how many rows were handed over.
  Result<uint64_t> Stream(std::string_view what, const std::string& sql,
                          const std::vector<std::optional<std::string>>& params,
                          const std::function<Result<>(const PGresult* row)>& row);
  // Statements without parameters or rows (several, separated by ';').
  Result<> Run(std::string_view what, const std::string& sql);
  // `sql` is a COPY ... FROM STDIN; `data` its whole input, in the format the COPY names.
  Result<> CopyIn(std::string_view what, const std::string& sql, std::string_view data);

  // The SQLSTATE of the last failed statement ("40P01": deadlock...); "" when the server
  // sent none (a lost connection).
  const std::string& last_sqlstate() const { return last_sqlstate_; }
  bool connected() const { return PQstatus(c_) == CONNECTION_OK; }
  int backend_pid() const { return PQbackendPID(c_); }

  const std::string& where() const { return where_; }  // the URI, redacted
  PGconn* raw() { return c_; }

 private:
  PgConn(PGconn* c, std::string where) : c_(c), where_(std::move(where)) {}
  Error Failed(std::string_view what, const PGresult* r);

  PGconn* c_;
  std::string where_;
  std::string last_sqlstate_;
};

// The database server's clock in ns since the epoch, as SQL: leases and their expiry are
// compared with it, never with a collector's clock (lib/store/pg_lease.h).
inline constexpr const char* kPgServerNowNs =
    "(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint";

// Reading a result of Exec, ExecParams or Stream (text format): a column as an integer
// (0 when NULL), as text, and a bytea column as its bytes (text results hex-escape them).
int64_t PgGetInt(const PGresult* r, int row, int col);
std::string PgGetText(const PGresult* r, int row, int col);
std::string PgGetBytes(const PGresult* r, int row, int col);

// PostgreSQL text is UTF-8 without NUL: anything else fails the statement it is in.
bool IsPgText(std::string_view s);
// `s` as PostgreSQL text: itself when IsPgText, else with every NUL and every byte that is
// not part of a valid UTF-8 sequence replaced by U+FFFD (a file name's raw bytes in an alert
// must not fail the commit it is in, again at every retry).
std::string PgTextOf(std::string_view s);

// One parameter holding an array: text[] (every element quoted and escaped) and bigint[].
std::string PgTextArray(std::span<const std::string_view> v);
std::string PgIntArray(std::span<const int64_t> v);

struct PgMigration {
  int version;       // 1, 2, ... in order, none skipped
  const char* name;  // for errors and the bookkeeping table
  const char* sql;   // statements separated by ';'
};

// Applies the migrations the database has not had yet, in one transaction under the advisory
// lock, recording each in dw_schema_migrations (version, name, applied_by, applied_at).
// Returns the schema version now. Errors: a migration that fails (named, with the server's
// message; nothing applied), a database already past the last migration given.
Result<int> MigratePg(PgConn* c, std::span<const PgMigration> migrations, std::string_view by);

}  // namespace driftwatch
