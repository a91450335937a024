#include "lib/store/pg_conn.h"

#include <cstdlib>
#include <algorithm>
#include <cstring>

#include "lib/base/log.h"
#include "lib/base/utf8.h"

namespace driftwatch {
namespace {

// The advisory lock migrations take: one key for every driftwatch database user.
constexpr int64_t kMigrationLock = 0x6477736368656d61;  // "dwschema"

std::string ServerMessage(const PGresult* r, PGconn* c) {
  std::string m = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m.empty() ? "no message from the server" : m;
}

}  // namespace

bool IsPgUri(std::string_view s) {
  return s.starts_with("postgresql://") || s.starts_with("postgres://");
}

std::string RedactPgUri(std::string_view uri) {
  std::string out(uri);
  // postgresql://user:password@host...: the user info ends at the last '@' before the path.
  const size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    const size_t start = scheme + 3;
    size_t end = out.find_first_of("/?", start);
    if (end == std::string::npos) end = out.size();
    const size_t at = out.rfind('@', end);
    if (at != std::string::npos && at >= start) {
      const size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // ...?password=...&...
  for (size_t p = out.find("password="); p != std::string::npos;
       p = out.find("password=", p + 1)) {
    if (p > 0 && out[p - 1] != '?' && out[p - 1] != '&' && out[p - 1] != ' ') continue;
    const size_t v = p + 9;
    size_t e = out.find_first_of("& ", v);
    if (e == std::string::npos) e = out.size();
    out.replace(v, e - v, "***");
  }
  return out;
}

Result<std::unique_ptr<PgConn>> PgConn::Connect(const std::string& uri,
                                                std::chrono::seconds timeout) {
  const std::string where = RedactPgUri(uri);
  if (!IsPgUri(uri))
    return std::unexpected(Error::InvalidInput(where + ": not a postgresql:// URI"));
  char* parse_err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(uri.c_str(), &parse_err);
  if (opts == nullptr) {
    std::string m = parse_err ? parse_err : "unparsable";
    PQfreemem(parse_err);
    while (!m.empty() && m.back() == '\n') m.pop_back();
    return std::unexpected(Error::InvalidInput(where + ": " + m));
  }
  PQconninfoFree(opts);
  // Ours first: what the URI says (its dbname, expanded, comes last) overrides them.
  const std::string t = std::to_string(timeout.count());
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {t.c_str(), "driftwatch", uri.c_str(), nullptr};
  PGconn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (c == nullptr) return std::unexpected(Error::Unavailable(where + ": out of memory"));
  if (PQstatus(c) != CONNECTION_OK) {
    std::string m = ServerMessage(nullptr, c);
    PQfinish(c);
    return std::unexpected(Error::Unavailable(where + ": " + m));
  }
  std::unique_ptr<PgConn> conn(new PgConn(c, where));
  // The server's notices go to the log, not to stderr: warnings only ("already exists,
  // skipping" and such are the statements' business).
  PQsetNoticeReceiver(
      c,
      [](void* arg, const PGresult* r) {
        const char* sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
        if (sev == nullptr || std::strcmp(sev, "WARNING") != 0) return;
        std::string m = PQresultErrorMessage(r);
        while (!m.empty() && m.back() == '\n') m.pop_back();
        LogWarn("%s: %s\n", static_cast<const PgConn*>(arg)->where().c_str(), m.c_str());
      },
      conn.get());
  return conn;
}

PgConn::~PgConn() { PQfinish(c_); }

Error PgConn::Failed(std::string_view what, const PGresult* r) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  last_sqlstate_ = state ? state : "";
  std::string m = where_ + ": " + std::string(what) + ": " + ServerMessage(r, c_);
  // Lost connections are worth a retry; anything else is the statement's or the data's.
  if (PQstatus(c_) != CONNECTION_OK) return Error::Unavailable(std::move(m));
  return Error::Io(std::move(m));
}

Result<PgResult> PgConn::Exec(std::string_view what, const std::string& sql,
                              const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  PgResult r(PQexecParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, /*text results=*/0));
  const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    return std::unexpected(Failed(what, r.get()));
  return r;
}

Result<uint64_t> PgConn::Stream(std::string_view what, const std::string& sql,
                                const std::vector<std::optional<std::string>>& params,
                                const std::function<Result<>(const PGresult* row)>& row) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  if (!PQsendQueryParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                         values.data(), nullptr, nullptr, /*text results=*/0) ||
      !PQsetSingleRowMode(c_)) {
    Error e = Failed(what, nullptr);
    while (PgResult(PQgetResult(c_))) {}  // the connection ready for the next statement
    return std::unexpected(std::move(e));
  }
  uint64_t n = 0;
  std::optional<Error> err;
  // Every result is read, also after an error, so that the connection stays usable.
  for (PgResult r(PQgetResult(c_)); r; r.reset(PQgetResult(c_))) {
    const ExecStatusType st = PQresultStatus(r.get());
    if (st == PGRES_SINGLE_TUPLE) {
      if (err) continue;
      if (auto ok = row(r.get()); !ok) err = ok.error();
      else ++n;
    } else if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !err) {
      err = Failed(what, r.get());
    }
  }
  if (err) return std::unexpected(*err);
  return n;
}

Result<PgResult> PgConn::ExecParams(std::string_view what, const std::string& sql,
                                    std::span<const PgParam> params) {
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  values.reserve(params.size());
  lengths.reserve(params.size());
  formats.reserve(params.size());
  // Text parameters need a terminating NUL, which a string_view does not promise.
  std::vector<std::string> texts;
  texts.reserve(params.size());
  for (const PgParam& p : params) {
    if (p.null) {
      values.push_back(nullptr);
    } else if (p.binary) {
      values.push_back(p.value.data());
    } else {
      values.push_back(texts.emplace_back(p.value).c_str());
    }
    lengths.push_back(static_cast<int>(p.value.size()));
    formats.push_back(p.binary ? 1 : 0);
  }
  PgResult r(PQexecParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), lengths.data(), formats.data(), /*text results=*/0));
  const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    return std::unexpected(Failed(what, r.get()));
  return r;
}

Result<> PgConn::CopyIn(std::string_view what, const std::string& sql, std::string_view data) {
  PgResult r(PQexec(c_, sql.c_str()));
  if (!r || PQresultStatus(r.get()) != PGRES_COPY_IN) return std::unexpected(Failed(what, r.get()));
  r.reset();
  // In pieces: libpq buffers what the socket does not take at once.
  constexpr size_t kPiece = 1 << 20;
  bool sent = true;
  for (size_t at = 0; at < data.size() && sent; at += kPiece) {
    const size_t n = std::min(kPiece, data.size() - at);
    sent = PQputCopyData(c_, data.data() + at, static_cast<int>(n)) == 1;
  }
  if (PQputCopyEnd(c_, sent ? nullptr : "driftwatch: sending the data failed") != 1)
    sent = false;
  // The COPY's result, then nothing: every result must be read before the next command.
  std::optional<Error> err;
  while (PgResult res{PQgetResult(c_)}) {
    if (PQresultStatus(res.get()) != PGRES_COMMAND_OK && !err) err = Failed(what, res.get());
  }
  if (!err && !sent) err = Failed(what, nullptr);
  if (err) return std::unexpected(std::move(*err));
  return {};
}

Result<> PgConn::Run(std::string_view what, const std::string& sql) {
  PgResult r(PQexec(c_, sql.c_str()));
  const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    return std::unexpected(Failed(what, r.get()));
  return {};
}

int64_t PgGetInt(const PGresult* r, int row, int col) {
  return std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

std::string PgGetText(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}

std::string PgGetBytes(const PGresult* r, int row, int col) {
  size_t len = 0;
  unsigned char* b =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r, row, col)), &len);
  std::string out = b ? std::string(reinterpret_cast<const char*>(b), len) : std::string();
  PQfreemem(b);
  return out;
}

// Utf8SequenceLength: 1 for any ASCII byte, NUL included; the server refuses NUL in text.
bool IsPgText(std::string_view s) {
  return IsUtf8(s) && s.find('\0') == std::string_view::npos;
}

std::string PgTextOf(std::string_view s) {
  if (IsPgText(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const size_t n = s[i] == '\0' ? 0 : Utf8SequenceLength(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string PgTextArray(std::span<const std::string_view> v) {
  std::string o = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) o.push_back(',');
    o.push_back('"');
    for (char c : v[i]) {
      if (c == '"' || c == '\\') o.push_back('\\');
      o.push_back(c);
    }
    o.push_back('"');
  }
  o.push_back('}');
  return o;
}

std::string PgIntArray(std::span<const int64_t> v) {
  std::string o = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) o.push_back(',');
    o += std::to_string(v[i]);
  }
  o.push_back('}');
  return o;
}

Result<int> MigratePg(PgConn* c, std::span<const PgMigration> migrations, std::string_view by) {
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1)
      return std::unexpected(Error::InvalidInput("migration list out of order at " +
                                                 std::string(migrations[i].name)));
  }
  const int latest = static_cast<int>(migrations.size());
  auto body = [&]() -> Result<int> {
    if (auto ok = c->Run("take the migration lock",
                         "SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLock) + ")");
        !ok)
      return std::unexpected(ok.error());
    if (auto ok = c->Run("create dw_schema_migrations",
                         "CREATE TABLE IF NOT EXISTS dw_schema_migrations("
                         "version integer PRIMARY KEY, name text NOT NULL, "
                         "applied_by text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
        !ok)
      return std::unexpected(ok.error());
    auto r = c->Exec("read the schema version",
                     "SELECT coalesce(max(version), 0) FROM dw_schema_migrations");
    if (!r) return std::unexpected(r.error());
    const int have = std::atoi(PQgetvalue(r->get(), 0, 0));
    if (have > latest)
      return std::unexpected(Error::InvalidInput(
          c->where() + ": schema version " + std::to_string(have) +
          " is newer than this driftwatch's (" + std::to_string(latest) +
          "): a newer driftwatch migrated it; run that version"));
    for (int v = have + 1; v <= latest; ++v) {
      const PgMigration& m = migrations[static_cast<size_t>(v - 1)];
      const std::string what = "migration " + std::to_string(v) + " (" + m.name + ")";
      if (auto ok = c->Run(what, m.sql); !ok) return std::unexpected(ok.error());
      if (auto ok = c->Exec(what + ": record it",
                            "INSERT INTO dw_schema_migrations(version, name, applied_by) "
                            "VALUES ($1, $2, $3)",
                            {std::to_string(v), std::string(m.name), std::string(by)});
          !ok)
        return std::unexpected(ok.error());
    }
    return latest;
  };
  if (auto ok = c->Run("begin the migration", "BEGIN"); !ok) return std::unexpected(ok.error());
  auto v = body();
  if (!v) {
    (void)c->Run("roll the migration back", "ROLLBACK");
    return v;
  }
  if (auto ok = c->Run("commit the migration", "COMMIT"); !ok) return std::unexpected(ok.error());
  return v;
}

}  // namespace driftwatch
