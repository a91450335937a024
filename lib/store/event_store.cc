#include "lib/store/event_store.h"
#include "lib/base/clock.h"
#include "lib/base/log.h"
#include "lib/event/event_view.h"
#include "lib/event/wire_format.h"

#include <google/protobuf/arena.h>
#include <sqlite3.h>
#include <pthread.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>

namespace driftwatch {
namespace {

constexpr int kSchemaVersion = 3;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS runs(
  run_id INTEGER PRIMARY KEY,
  node TEXT NOT NULL,
  boot_id TEXT NOT NULL,
  sensor_start_ns INTEGER NOT NULL,
  max_seq INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL DEFAULT 0,
  UNIQUE(node, boot_id, sensor_start_ns));
CREATE TABLE IF NOT EXISTS container_ids(
  cid INTEGER PRIMARY KEY,
  node TEXT NOT NULL,
  id TEXT NOT NULL,
  updated_ns INTEGER NOT NULL DEFAULT 0,
  UNIQUE(id, node));
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  time_ns INTEGER NOT NULL,
  stored_ns INTEGER NOT NULL,
  cid INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_cid ON events(cid);
CREATE INDEX IF NOT EXISTS events_time ON events(time_ns);
CREATE TABLE IF NOT EXISTS containers(
  cid INTEGER PRIMARY KEY,
  info BLOB NOT NULL,
  updated_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nodes(
  node TEXT PRIMARY KEY,
  connected_streams INTEGER NOT NULL,
  last_seen_ns INTEGER NOT NULL,
  events_stored INTEGER NOT NULL,
  duplicates INTEGER NOT NULL,
  boot_id TEXT NOT NULL,
  sensor_start_ns INTEGER NOT NULL,
  sensor_version TEXT NOT NULL,
  kernel_version TEXT NOT NULL,
  audit_mode TEXT NOT NULL,
  fanotify_mode TEXT NOT NULL,
  spool_dropped INTEGER NOT NULL,
  peer TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gaps(
  id INTEGER PRIMARY KEY,
  node TEXT NOT NULL,
  run_id INTEGER NOT NULL,
  from_seq INTEGER NOT NULL,
  to_seq INTEGER NOT NULL,
  after_rowid INTEGER NOT NULL,
  stored_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS gaps_after ON gaps(after_rowid);
CREATE TABLE IF NOT EXISTS detect_cursors(
  node TEXT PRIMARY KEY,
  rowid INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL);
PRAGMA user_version = 3;
)sql";

// Version 2 -> 3: time columns for the retention of runs and container keys, the gaps and
// detection cursor tables. The collector that wrote a version 2 database evaluated its
// events in memory as they came: detection resumes after the newest event, not from the
// start of the table.
constexpr const char* kMigrate2To3 = R"sql(
BEGIN IMMEDIATE;
ALTER TABLE runs ADD COLUMN updated_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE container_ids ADD COLUMN updated_ns INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET updated_ns = :now;
UPDATE container_ids SET updated_ns = :now;
CREATE TABLE gaps(
  id INTEGER PRIMARY KEY,
  node TEXT NOT NULL,
  run_id INTEGER NOT NULL,
  from_seq INTEGER NOT NULL,
  to_seq INTEGER NOT NULL,
  after_rowid INTEGER NOT NULL,
  stored_ns INTEGER NOT NULL);
CREATE INDEX gaps_after ON gaps(after_rowid);
CREATE TABLE detect_cursors(
  node TEXT PRIMARY KEY,
  rowid INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL);
INSERT INTO detect_cursors(node, rowid, updated_ns)
  SELECT DISTINCT node, (SELECT coalesce(max(id), 0) FROM events), :now FROM runs;
INSERT INTO detect_cursors(node, rowid, updated_ns)
  VALUES('', (SELECT coalesce(max(id), 0) FROM events), :now);
PRAGMA user_version = 3;
COMMIT;
)sql";

constexpr const char* kNodeColumns =
    "node, connected_streams, last_seen_ns, events_stored, duplicates, boot_id, "
    "sensor_start_ns, sensor_version, kernel_version, audit_mode, fanotify_mode, "
    "spool_dropped, peer";

std::string SqliteError(sqlite3* db, std::string_view what) {
  return std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
}

// Finalizes on scope exit.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s); }
};

std::expected<void, std::string> Prepare(sqlite3* db, const char* sql, Stmt* out,
                                         bool persistent = false) {
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

bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// user_version and whether an `events` table exists: 0/false is an empty database.
std::expected<std::pair<int, bool>, std::string> SchemaState(sqlite3* db) {
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

// Appends `msg` without its top-level fields `drop_a` and `drop_b`, bytes otherwise as they
// are. False for wire data it does not walk (groups, truncation): the caller re-serializes.
bool AppendWithoutFields(std::string_view msg, uint32_t drop_a, uint32_t drop_b,
                         std::string* out) {
  const size_t start = out->size();
  while (!msg.empty()) {
    const char* field_begin = msg.data();
    uint64_t field = 0, wire_type = 0, value = 0;
    std::string_view bytes;
    if (!wire::NextField(&msg, &field, &wire_type, &value, &bytes))
      return out->resize(start), false;
    if (field != drop_a && field != drop_b) {
      out->append(field_begin, static_cast<size_t>(msg.data() - field_begin));
    }
  }
  return true;
}

}  // namespace

std::string_view EventKind(const v1::Event& ev) { return KindName(KindOf(ev)); }

std::expected<void, std::string> ValidateEvent(const v1::Event& ev) {
  if (!ev.has_id()) return std::unexpected("id missing");
  if (ev.id().seq() == 0) return std::unexpected("id.seq is 0 (sequence numbers start at 1)");
  if (ev.id().seq() > static_cast<uint64_t>(INT64_MAX)) {
    return std::unexpected("id.seq is larger than 2^63-1");
  }
  if (ev.id().boot_id().size() > 128) return std::unexpected("id.boot_id longer than 128 bytes");
  if (ev.time_ns() < 0) return std::unexpected("time_ns is negative");
  if (ev.container_id().size() > 256) {
    return std::unexpected("container_id longer than 256 bytes");
  }
  if (KindOf(ev) == Kind::kNone) return std::unexpected("body missing (none of " + KindNames() + ")");
  if (ev.has_container() && ev.container().id().empty()) {
    return std::unexpected("container.id is empty");
  }
  return {};
}

std::expected<int64_t, std::string> ParseTimeArg(std::string_view text, int64_t now_ns) {
  auto bad = [&](std::string_view why) {
    return std::unexpected("bad time '" + std::string(text) + "': " + std::string(why) +
                           " (ISO 8601 like 2026-11-28T09:06:20Z, or relative like 30s, "
                           "10m, 2h, 7d)");
  };
  if (text.empty()) return bad("empty");
  // Relative: a number and one unit, meaning that long ago.
  if (std::isdigit(static_cast<unsigned char>(text[0])) && text.size() <= 12 &&
      text.find('-') == std::string_view::npos) {
    int64_t n = 0;
    int64_t unit = 0;
    switch (text.back()) {
      case 's': unit = 1'000'000'000LL; break;
      case 'm': unit = 60'000'000'000LL; break;
      case 'h': unit = 3'600'000'000'000LL; break;
      case 'd': unit = 86'400'000'000'000LL; break;
      default: return bad("unknown unit (s, m, h, d)");
    }
    if (!ParseInt(text.substr(0, text.size() - 1), &n) || n < 0) return bad("not a number");
    if (n > INT64_MAX / unit) return bad("too far back");
    return now_ns - n * unit;
  }
  // ISO 8601: YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|(+|-)HH[:]MM]; no zone means UTC.
  std::string_view s = text;
  auto num = [&](size_t digits, int* out) -> bool {
    if (s.size() < digits) return false;
    int64_t v = 0;
    if (!ParseInt(s.substr(0, digits), &v)) return false;
    *out = static_cast<int>(v);
    s.remove_prefix(digits);
    return true;
  };
  auto eat = [&](char c) -> bool {
    if (s.empty() || s[0] != c) return false;
    s.remove_prefix(1);
    return true;
  };
  std::tm tm{};
  int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
  int64_t frac_ns = 0;
  if (!num(4, &year) || !eat('-') || !num(2, &mon) || !eat('-') || !num(2, &day)) {
    return bad("expected YYYY-MM-DD");
  }
  if (!s.empty() && (s[0] == 'T' || s[0] == 't' || s[0] == ' ')) {
    s.remove_prefix(1);
    if (!num(2, &hour) || !eat(':') || !num(2, &min)) return bad("expected HH:MM after the date");
    if (eat(':')) {
      if (!num(2, &sec)) return bad("expected seconds");
      if (eat('.') || eat(',')) {
        int64_t scale = 100'000'000;
        size_t digits = 0;
        while (!s.empty() && std::isdigit(static_cast<unsigned char>(s[0]))) {
          frac_ns += (s[0] - '0') * scale;
          scale /= 10;
          s.remove_prefix(1);
          ++digits;
        }
        if (digits == 0) return bad("expected digits after the decimal point");
      }
    }
  }
  int64_t offset_s = 0;
  if (eat('Z') || eat('z')) {
  } else if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    int sign = s[0] == '-' ? -1 : 1;
    s.remove_prefix(1);
    int oh = 0, om = 0;
    if (!num(2, &oh)) return bad("expected a zone offset +HH:MM");
    eat(':');
    if (!num(2, &om)) return bad("expected a zone offset +HH:MM");
    offset_s = sign * (oh * 3600 + om * 60);
  }
  if (!s.empty()) return bad("trailing characters");
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return bad("field out of range");
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  int64_t t = timegm(&tm);
  return (t - offset_s) * 1'000'000'000LL + frac_ns;
}

std::expected<void, std::string> ParseTimeRange(std::string_view since, std::string_view until,
                                                int64_t now_ns, std::optional<int64_t>* since_ns,
                                                std::optional<int64_t>* until_ns) {
  for (auto [text, out] : {std::pair{since, since_ns}, std::pair{until, until_ns}}) {
    if (text.empty()) continue;
    auto t = ParseTimeArg(text, now_ns);
    if (!t) return std::unexpected(t.error());
    *out = *t;
  }
  return {};
}

int EventKindNumber(std::string_view kind) {
  std::optional<Kind> k = ParseKind(kind);
  return k ? KindFieldNumber(*k) : 0;
}

std::expected<PreparedBatch, std::string> PrepareEncodedBatch(
    const std::string& node, std::span<const std::string_view> events) {
  PreparedBatch b;
  b.node = node;
  b.events.reserve(events.size());
  size_t total = 0;
  for (std::string_view e : events) total += e.size();
  b.data.reserve(total);
  // Parsed into an arena reset per event: validation costs no malloc per field.
  constexpr size_t kBlock = 16384;
  std::unique_ptr<char[]> block(new char[kBlock]);
  google::protobuf::ArenaOptions ao;
  ao.initial_block = block.get();
  ao.initial_block_size = kBlock;
  google::protobuf::Arena arena(ao);
  for (size_t i = 0; i < events.size(); ++i) {
    const std::string_view raw = events[i];
    arena.Reset();
    auto* ev = google::protobuf::Arena::CreateMessage<v1::Event>(&arena);
    if (raw.size() > INT32_MAX || !ev->ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
      return std::unexpected("event " + std::to_string(i) +
                             ": does not parse as driftwatch.v1.Event");
    }
    if (auto ok = ValidateEvent(*ev); !ok) {
      return std::unexpected("event " + std::to_string(i) + ": " + ok.error());
    }
    if (b.data.size() + raw.size() + 4096 > UINT32_MAX) {
      return std::unexpected("event " + std::to_string(i) + ": batch larger than 4 GiB");
    }
    PreparedEvent& p = b.events.emplace_back();
    const v1::EventId& id = ev->id();
    // Runs and containers: a batch usually has one of each; the last one is checked first.
    auto run = std::find_if(b.runs.rbegin(), b.runs.rend(), [&](const PreparedRun& r) {
      return r.sensor_start_ns == id.sensor_start_ns() && r.boot_id == id.boot_id();
    });
    if (run == b.runs.rend()) {
      b.runs.push_back(PreparedRun{id.boot_id(), id.sensor_start_ns()});
      p.run = static_cast<uint32_t>(b.runs.size() - 1);
    } else {
      p.run = static_cast<uint32_t>(b.runs.rend() - run - 1);
    }
    auto c = std::find(b.containers.rbegin(), b.containers.rend(), ev->container_id());
    if (c == b.containers.rend()) {
      b.containers.push_back(ev->container_id());
      p.container = static_cast<uint32_t>(b.containers.size() - 1);
    } else {
      p.container = static_cast<uint32_t>(b.containers.rend() - c - 1);
    }
    p.seq = id.seq();
    p.time_ns = ev->time_ns();
    p.kind = KindFieldNumber(KindOf(*ev));
    p.payload_offset = static_cast<uint32_t>(b.data.size());
    if (!AppendWithoutFields(raw, v1::Event::kIdFieldNumber, v1::Event::kContainerIdFieldNumber,
                             &b.data)) {
      ev->clear_id();
      ev->clear_container_id();
      ev->AppendToString(&b.data);
    }
    p.payload_size = static_cast<uint32_t>(b.data.size() - p.payload_offset);
    if (ev->has_container()) {
      p.has_info = true;
      p.info_offset = static_cast<uint32_t>(b.data.size());
      ev->container().AppendToString(&b.data);
      p.info_size = static_cast<uint32_t>(b.data.size() - p.info_offset);
    }
  }
  return b;
}

bool DecodePreparedEvent(const PreparedBatch& b, size_t i, v1::Event* out) {
  if (i >= b.events.size()) return false;
  const PreparedEvent& e = b.events[i];
  const std::string_view p = b.payload(e);
  if (!out->ParseFromArray(p.data(), static_cast<int>(p.size()))) return false;
  v1::EventId* id = out->mutable_id();
  id->set_node(b.node);
  id->set_boot_id(b.runs[e.run].boot_id);
  id->set_sensor_start_ns(b.runs[e.run].sensor_start_ns);
  id->set_seq(e.seq);
  out->set_container_id(b.containers[e.container]);
  return true;
}

std::expected<PreparedBatch, std::string> PrepareBatch(
    const std::string& node, google::protobuf::RepeatedPtrField<v1::Event>* events) {
  std::vector<std::string> bytes;
  bytes.reserve(static_cast<size_t>(events->size()));
  for (const v1::Event& ev : *events) bytes.push_back(ev.SerializeAsString());
  std::vector<std::string_view> views(bytes.begin(), bytes.end());
  return PrepareEncodedBatch(node, views);
}

// ---------------------------------------------------------------------------------------
// EventStore

struct EventStore::Statements {
  Stmt begin, commit, rollback, insert_event, insert_run, update_run, insert_cid, touch_cid,
      upsert_container, upsert_node, insert_gap;
};

EventStore::EventStore(const StoreOptions& opt) : opt_(opt) {}

std::expected<std::unique_ptr<EventStore>, std::string> EventStore::Open(
    const StoreOptions& opt) {
  std::unique_ptr<EventStore> s(new EventStore(opt));
  if (auto ok = s->Init(); !ok) return std::unexpected(ok.error());
  s->writer_ = std::thread([p = s.get()] { p->WriterLoop(); });
  return s;
}

std::expected<void, std::string> EventStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string e = std::string(sql).substr(0, 60) + ": " + (err ? err : "?");
    sqlite3_free(err);
    return std::unexpected(e);
  }
  return {};
}

std::expected<void, std::string> EventStore::Init() {
  if (sqlite3_open_v2(opt_.path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return std::unexpected(SqliteError(db_, opt_.path));
  }
  sqlite3_busy_timeout(db_, static_cast<int>(opt_.busy_timeout.count()));
  auto schema = SchemaState(db_);
  if (!schema) return std::unexpected(opt_.path + ": " + schema.error());
  const auto [version, has_events] = *schema;
  if (version == 2 && has_events) {
    std::string sql = kMigrate2To3;
    const std::string now = std::to_string(NowNs());
    for (size_t at; (at = sql.find(":now")) != std::string::npos;) sql.replace(at, 4, now);
    if (auto ok = Exec(sql.c_str()); !ok) {
      Exec("ROLLBACK");
      return std::unexpected(opt_.path + ": migrating schema version 2 to 3: " + ok.error());
    }
    LogInfo("%s: schema version 2 migrated to 3\n", opt_.path.c_str());
  } else if (version != kSchemaVersion && (version != 0 || has_events)) {
    return std::unexpected(opt_.path + ": " + OldSchemaError(version));
  }
  // A new database: larger pages mean fewer WAL frames (and write calls) per event; must be
  // set before WAL mode is.
  if (version == 0) {
    if (auto ok = Exec("PRAGMA page_size=8192"); !ok) return std::unexpected(ok.error());
  }
  // WAL: readers (the CLI) never block the writer. NORMAL: see the header on durability.
  // A larger checkpoint interval lets index pages changed by many commits reach the main
  // file once per checkpoint instead of once per 1000 WAL pages (the default); the size
  // limit truncates the WAL back after a checkpoint so it does not stay at its peak.
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA temp_store=MEMORY",
                          "PRAGMA cache_size=-8192", "PRAGMA wal_autocheckpoint=8192",
                          "PRAGMA journal_size_limit=67108864"}) {
    if (auto ok = Exec(sql); !ok) return std::unexpected(opt_.path + ": " + ok.error());
  }
  if (auto ok = Exec(opt_.synchronous_full ? "PRAGMA synchronous=FULL"
                                           : "PRAGMA synchronous=NORMAL");
      !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = Exec(kSchema); !ok) return std::unexpected(opt_.path + ": " + ok.error());

  st_ = std::make_unique<Statements>();
  struct {
    Stmt* s;
    const char* sql;
  } stmts[] = {
      {&st_->begin, "BEGIN IMMEDIATE"},
      {&st_->commit, "COMMIT"},
      {&st_->rollback, "ROLLBACK"},
      {&st_->insert_event,
       "INSERT INTO events(run_id, seq, time_ns, stored_ns, cid, kind, payload) "
       "VALUES(?,?,?,?,?,?,?)"},
      {&st_->insert_cid, "INSERT INTO container_ids(node, id, updated_ns) VALUES(?,?,?)"},
      {&st_->touch_cid, "UPDATE container_ids SET updated_ns=? WHERE cid=?"},
      {&st_->insert_run,
       "INSERT INTO runs(node, boot_id, sensor_start_ns, max_seq, updated_ns) "
       "VALUES(?,?,?,0,?)"},
      {&st_->update_run, "UPDATE runs SET max_seq=?, updated_ns=? WHERE run_id=?"},
      {&st_->insert_gap,
       "INSERT INTO gaps(node, run_id, from_seq, to_seq, after_rowid, stored_ns) "
       "VALUES(?,?,?,?,?,?)"},
      {&st_->upsert_container,
       "INSERT OR REPLACE INTO containers(cid, info, updated_ns) VALUES(?,?,?)"},
      {&st_->upsert_node,
       "INSERT OR REPLACE INTO nodes(node, connected_streams, last_seen_ns, events_stored, "
       "duplicates, boot_id, sensor_start_ns, sensor_version, kernel_version, audit_mode, "
       "fanotify_mode, spool_dropped, peer) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"},
  };
  for (auto& [s, sql] : stmts) {
    if (auto ok = Prepare(db_, sql, s, true); !ok) return ok;
  }

  // The high-water marks and the node counters survive restarts; no stream is connected yet.
  Stmt q;
  if (auto ok = Prepare(db_,
                        "SELECT run_id, node, boot_id, sensor_start_ns, max_seq, updated_ns "
                        "FROM runs",
                        &q);
      !ok) {
    return ok;
  }
  while (sqlite3_step(q.s) == SQLITE_ROW) {
    runs_[{ColumnText(q.s, 1), ColumnText(q.s, 2), sqlite3_column_int64(q.s, 3)}] =
        RunMark{sqlite3_column_int64(q.s, 0), static_cast<uint64_t>(sqlite3_column_int64(q.s, 4)),
                sqlite3_column_int64(q.s, 5)};
  }
  Stmt k;
  if (auto ok = Prepare(db_, "SELECT cid, node, id FROM container_ids", &k); !ok) return ok;
  while (sqlite3_step(k.s) == SQLITE_ROW) {
    cids_[{ColumnText(k.s, 1), ColumnText(k.s, 2)}] = sqlite3_column_int64(k.s, 0);
  }
  Stmt n;
  if (auto ok = Prepare(db_, (std::string("SELECT ") + kNodeColumns + " FROM nodes").c_str(), &n);
      !ok) {
    return ok;
  }
  while (sqlite3_step(n.s) == SQLITE_ROW) {
    NodeState ns = ReadNodeRow(n.s);
    ns.connected_streams = 0;
    MutexLock lk(mu_);  // no writer thread yet: uncontended
    dirty_nodes_[ns.node] = true;
    nodes_[ns.node] = std::move(ns);
  }
  // The head for detection, and the store clock: never behind what is stored already.
  Stmt h;
  if (auto ok = Prepare(db_, "SELECT coalesce(max(id), 0), coalesce(max(stored_ns), 0) FROM "
                             "events WHERE id = (SELECT max(id) FROM events)",
                        &h);
      !ok) {
    return ok;
  }
  MutexLock clock_lk(clock_mu_);
  if (sqlite3_step(h.s) == SQLITE_ROW) {
    head_ = sqlite3_column_int64(h.s, 0);
    clock_last_ns_ = std::max<int64_t>(WallNs(), sqlite3_column_int64(h.s, 1));
  } else {
    clock_last_ns_ = WallNs();
  }
  clock_last_mono_ = std::chrono::steady_clock::now();
  return {};
}

int64_t EventStore::WallNs() const { return opt_.wall_clock ? opt_.wall_clock() : NowNs(); }

int64_t EventStore::StoreNowNs() {
  const int64_t wall = WallNs();
  const auto mono = std::chrono::steady_clock::now();
  MutexLock lk(clock_mu_);
  const int64_t real =
      std::chrono::duration_cast<std::chrono::nanoseconds>(mono - clock_last_mono_).count();
  // Never backwards; forward at most twice as fast as real time.
  const int64_t next = std::max(clock_last_ns_, std::min(wall, clock_last_ns_ + 2 * real));
  clock_last_mono_ = mono;
  clock_last_ns_ = next;
  return next;
}

EventStore::~EventStore() {
  Close();
  st_.reset();
  if (db_) sqlite3_close(db_);
}

void EventStore::Close() {
  {
    MutexLock lk(mu_);
    closing_ = true;
  }
  cv_.NotifyAll();
  if (writer_.joinable()) writer_.join();
}

void EventStore::Submit(std::shared_ptr<const PreparedBatch> batch, Callback done,
                        uint64_t stream) {
  {
    MutexLock lk(mu_);
    if (!closing_) {
      queued_events_ += batch->events.size();
      ++submitted_;
      queue_.push_back(Pending{std::move(batch), std::move(done), stream});
      if (queue_.size() == 1 || queued_events_ >= opt_.commit_max_events) cv_.NotifyAll();
      return;
    }
  }
  done(CommitResult{0, 0, "event store closed"});
}

void EventStore::Flush() {
  MutexLock lk(mu_);
  const uint64_t target = submitted_;
  flush_waiters_++;
  cv_.NotifyAll();
  flushed_cv_.Wait(lk, [&]() DW_REQUIRES(mu_) { return committed_ >= target || writer_done_; });
  flush_waiters_--;
}

void EventStore::NodeConnected(const std::string& node, const NodeHello& h) {
  {
    MutexLock lk(mu_);
    NodeState& n = nodes_[node];
    n.node = node;
    ++n.connected_streams;
    n.last_seen_ns = NowNs();
    n.hello = h;
    dirty_nodes_[node] = true;
  }
  cv_.NotifyAll();
}

void EventStore::NodeDisconnected(const std::string& node) {
  {
    MutexLock lk(mu_);
    NodeState& n = nodes_[node];
    n.node = node;
    if (n.connected_streams > 0) --n.connected_streams;
    n.last_seen_ns = NowNs();
    dirty_nodes_[node] = true;
  }
  cv_.NotifyAll();
}

std::string EventStore::last_error() const {
  MutexLock lk(mu_);
  return last_error_;
}

std::optional<NodeState> EventStore::Node(const std::string& node) const {
  MutexLock lk(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return std::nullopt;
  return it->second;
}

std::vector<NodeState> EventStore::Nodes() const {
  MutexLock lk(mu_);
  std::vector<NodeState> out;
  for (const auto& [_, n] : nodes_) out.push_back(n);
  return out;
}

void EventStore::WriterLoop() {
  pthread_setname_np(pthread_self(), "dw-store");
  using Clock = std::chrono::steady_clock;
  auto next_retention = Clock::now() + opt_.retention_interval;
  MutexLock lk(mu_);
  for (;;) {
    size_t committed_extra = 0;
    cv_.WaitUntil(lk, next_retention, [&]() DW_REQUIRES(mu_) {
      return closing_ || !queue_.empty() || !dirty_nodes_.empty() || flush_waiters_ > 0;
    });
    if (!queue_.empty() && !closing_ && flush_waiters_ == 0) {
      // Group commit: give other streams' batches a moment to join this transaction.
      cv_.WaitFor(lk, opt_.commit_interval, [&]() DW_REQUIRES(mu_) {
        return closing_ || flush_waiters_ > 0 || queued_events_ >= opt_.commit_max_events;
      });
    }
    std::vector<Pending> items;
    size_t n_events = 0;
    while (!queue_.empty() && n_events < opt_.commit_max_events) {
      n_events += queue_.front().batch->events.size();
      items.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    queued_events_ -= n_events;
    const bool had_dirty = !dirty_nodes_.empty();
    lk.Unlock();

    // A stream one of whose batches failed gets its later ones refused: committing them
    // would raise the run's mark above the failed events, which the resend then needs.
    std::vector<Pending> refused;
    if (!failed_streams_.empty()) {
      std::erase_if(items, [&](Pending& p) {
        if (p.stream == 0 || !failed_streams_.contains(p.stream)) return false;
        refused.push_back(std::move(p));
        return true;
      });
    }
    for (Pending& p : refused) {
      p.done(CommitResult{0, 0, "not stored: an earlier batch of this stream failed (" +
                                    failed_streams_[p.stream] + ")"});
    }
    if (!items.empty() || had_dirty) {
      std::vector<CommitResult> results;
      auto ok = CommitPending(&items, &results);
      {
        MutexLock elk(mu_);
        last_error_ = ok ? std::string() : ok.error();
      }
      if (!ok) {
        LogWarn("store: %s\n", ok.error().c_str());
        for (const Pending& p : items) {
          if (p.stream != 0) failed_streams_.emplace(p.stream, ok.error());
        }
        // Bounded: streams live minutes to days; a failure is rare.
        while (failed_streams_.size() > 4096) failed_streams_.erase(failed_streams_.begin());
      } else if (opt_.on_commit && !items.empty()) {
        opt_.on_commit(head_.load(std::memory_order_acquire));
      }
      for (size_t i = 0; i < items.size(); ++i) {
        CommitResult r = ok ? results[i] : CommitResult{0, 0, ok.error()};
        items[i].done(r);
      }
    }
    committed_extra = refused.size();
    if (Clock::now() >= next_retention) {
      auto r = EnforceRetention(StoreNowNs());
      if (!r) LogWarn("retention: %s\n", r.error().c_str());
      // A backlog of old rows is worked off a few chunks at a time between commits.
      next_retention = Clock::now() + ((r && *r >= opt_.retention_chunk * 20)
                                           ? std::chrono::milliseconds(0)
                                           : opt_.retention_interval);
    }

    lk.Lock();
    committed_ += items.size() + committed_extra;
    flushed_cv_.NotifyAll();
    if (closing_ && queue_.empty() && dirty_nodes_.empty()) break;
  }
  writer_done_ = true;
  lk.Unlock();
  // Wake any Flush() that arrived after the last commit.
  flushed_cv_.NotifyAll();
}

std::expected<void, std::string> EventStore::CommitPending(std::vector<Pending>* items,
                                                           std::vector<CommitResult>* results) {
  MutexLock db_lk(db_mu_);
  results->assign(items->size(), CommitResult{});
  const int64_t now = StoreNowNs();
  auto step_done = [&](sqlite3_stmt* s, const char* what) -> std::expected<void, std::string> {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, what));
    return {};
  };
  if (auto ok = step_done(st_->begin.s, "begin"); !ok) return ok;

  std::map<RunKey, RunMark> before;  // marks as they were, to undo on rollback
  std::vector<const ContainerKey*> new_cids;  // container keys added, to undo on rollback
  std::map<int64_t, uint64_t> touched;  // run_id -> new max_seq
  auto fail = [&](std::string e) -> std::expected<void, std::string> {
    step_done(st_->rollback.s, "rollback");
    for (auto& [k, m] : before) {
      if (m.run_id == 0) runs_.erase(k); else runs_[k] = m;
    }
    for (const ContainerKey* k : new_cids) cids_.erase(*k);
    return std::unexpected(std::move(e));
  };

  struct NodeCounts {
    uint64_t stored = 0, duplicates = 0, missing = 0;
  };
  std::map<std::string, NodeCounts> per_node;
  std::set<int64_t> touched_cids;  // existing container keys used: their updated_ns
  int64_t head = 0;
  std::vector<RunMark*> marks;
  std::vector<int64_t> cids;
  for (size_t i = 0; i < items->size(); ++i) {
    const PreparedBatch& b = *(*items)[i].batch;
    CommitResult& r = (*results)[i];
    // The batch's runs and containers, resolved once per batch, not per event.
    marks.assign(b.runs.size(), nullptr);
    for (size_t k = 0; k < b.runs.size(); ++k) {
      RunKey key{b.node, b.runs[k].boot_id, b.runs[k].sensor_start_ns};
      auto it = runs_.find(key);
      if (it == runs_.end()) {
        before.emplace(key, RunMark{});
        sqlite3_stmt* s = st_->insert_run.s;
        BindText(s, 1, b.node);
        BindText(s, 2, b.runs[k].boot_id);
        sqlite3_bind_int64(s, 3, b.runs[k].sensor_start_ns);
        sqlite3_bind_int64(s, 4, now);
        if (auto ok = step_done(s, "insert run"); !ok) return fail(ok.error());
        it = runs_.emplace(key, RunMark{sqlite3_last_insert_rowid(db_), 0, now}).first;
      } else {
        before.emplace(key, it->second);
      }
      marks[k] = &it->second;
    }
    cids.assign(b.containers.size(), 0);  // resolved on first use: duplicates need none
    for (const PreparedEvent& e : b.events) {
      RunMark* mark = marks[e.run];
      if (e.seq <= mark->max_seq) {
        ++r.duplicates;
        continue;
      }
      // Sequence numbers that never came (the sensor lost them): recorded with the event
      // after them, for the loss ledger and detection's blind-window alert.
      const uint64_t gap_from = mark->max_seq + 1;
      mark->max_seq = e.seq;
      int64_t& cid = cids[e.container];
      if (cid == 0) {
        auto [it, added] = cids_.try_emplace(ContainerKey{b.node, b.containers[e.container]}, 0);
        if (added) {
          new_cids.push_back(&it->first);
          sqlite3_stmt* s = st_->insert_cid.s;
          BindText(s, 1, b.node);
          BindText(s, 2, b.containers[e.container]);
          sqlite3_bind_int64(s, 3, now);
          if (auto ok = step_done(s, "insert container id"); !ok) return fail(ok.error());
          it->second = sqlite3_last_insert_rowid(db_);
        } else {
          touched_cids.insert(it->second);
        }
        cid = it->second;
      }
      sqlite3_stmt* s = st_->insert_event.s;
      sqlite3_bind_int64(s, 1, mark->run_id);
      sqlite3_bind_int64(s, 2, static_cast<int64_t>(e.seq));
      sqlite3_bind_int64(s, 3, e.time_ns);
      sqlite3_bind_int64(s, 4, now);
      sqlite3_bind_int64(s, 5, cid);
      sqlite3_bind_int(s, 6, e.kind);
      BindBlob(s, 7, b.payload(e));
      if (auto ok = step_done(s, "insert event"); !ok) return fail(ok.error());
      const int64_t rowid = sqlite3_last_insert_rowid(db_);
      head = rowid;
      if (e.seq > gap_from) {
        sqlite3_stmt* g = st_->insert_gap.s;
        BindText(g, 1, b.node);
        sqlite3_bind_int64(g, 2, mark->run_id);
        sqlite3_bind_int64(g, 3, static_cast<int64_t>(gap_from));
        sqlite3_bind_int64(g, 4, static_cast<int64_t>(e.seq - 1));
        sqlite3_bind_int64(g, 5, rowid);
        sqlite3_bind_int64(g, 6, now);
        if (auto ok = step_done(g, "insert gap"); !ok) return fail(ok.error());
        per_node[b.node].missing += e.seq - gap_from;
      }
      if (e.has_info) {
        sqlite3_stmt* c = st_->upsert_container.s;
        sqlite3_bind_int64(c, 1, cid);
        BindBlob(c, 2, b.info(e));
        sqlite3_bind_int64(c, 3, now);
        if (auto ok = step_done(c, "upsert container"); !ok) return fail(ok.error());
      }
      ++r.stored;
    }
    for (RunMark* m : marks) {
      touched[m->run_id] = m->max_seq;
      m->updated_ns = now;
    }
    auto& pn = per_node[b.node];
    pn.stored += r.stored;
    pn.duplicates += r.duplicates;
  }
  for (auto [run_id, seq] : touched) {
    sqlite3_stmt* s = st_->update_run.s;
    sqlite3_bind_int64(s, 1, static_cast<int64_t>(seq));
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, run_id);
    if (auto ok = step_done(s, "update run"); !ok) return fail(ok.error());
  }
  for (int64_t cid : touched_cids) {
    sqlite3_stmt* s = st_->touch_cid.s;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, cid);
    if (auto ok = step_done(s, "touch container id"); !ok) return fail(ok.error());
  }

  // Node counters: updated in memory now, written with this transaction.
  std::vector<NodeState> dirty;
  {
    MutexLock lk(mu_);
    for (auto& [node, c] : per_node) {
      NodeState& n = nodes_[node];
      n.node = node;
      n.events_stored += c.stored;
      n.duplicates += c.duplicates;
      n.events_missing += c.missing;
      n.last_seen_ns = now;
      dirty_nodes_[node] = true;
    }
    for (auto& [node, _] : dirty_nodes_) dirty.push_back(nodes_[node]);
    dirty_nodes_.clear();
  }
  for (const NodeState& n : dirty) {
    sqlite3_stmt* s = st_->upsert_node.s;
    BindText(s, 1, n.node);
    sqlite3_bind_int64(s, 2, n.connected_streams);
    sqlite3_bind_int64(s, 3, n.last_seen_ns);
    sqlite3_bind_int64(s, 4, static_cast<int64_t>(n.events_stored));
    sqlite3_bind_int64(s, 5, static_cast<int64_t>(n.duplicates));
    BindText(s, 6, n.hello.boot_id);
    sqlite3_bind_int64(s, 7, n.hello.sensor_start_ns);
    BindText(s, 8, n.hello.sensor_version);
    BindText(s, 9, n.hello.kernel_version);
    BindText(s, 10, n.hello.audit_mode);
    BindText(s, 11, n.hello.fanotify_mode);
    sqlite3_bind_int64(s, 12, static_cast<int64_t>(n.hello.spool_dropped));
    BindText(s, 13, n.hello.peer);
    if (auto ok = step_done(s, "upsert node"); !ok) {
      MutexLock lk(mu_);
      for (const NodeState& d : dirty) dirty_nodes_[d.node] = true;
      return fail(ok.error());
    }
  }
  if (auto ok = step_done(st_->commit.s, "commit"); !ok) {
    MutexLock lk(mu_);
    for (const NodeState& d : dirty) dirty_nodes_[d.node] = true;
    return fail(ok.error());
  }
  if (head > 0) head_.store(head, std::memory_order_release);
  return {};
}

std::expected<uint64_t, std::string> EventStore::EnforceRetention(int64_t now_ns) {
  MutexLock db_lk(db_mu_);
  return RetentionLocked(now_ns);
}

std::expected<uint64_t, std::string> EventStore::RetentionLocked(int64_t now_ns) {
  // Rowids grow with commit time and retention only ever deletes from the oldest end, so the
  // table is the rowid range [min, max]: counting and finding the oldest rows is cheap and
  // needs no index. Each chunk is its own transaction so ingest is never held up for long.
  // Nothing at or above the floor goes: detection has not evaluated it yet.
  uint64_t deleted = 0;
  const int64_t cutoff = opt_.retention_age.count() > 0
                             ? now_ns - std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            opt_.retention_age)
                                            .count()
                             : INT64_MIN;
  const int64_t floor = opt_.retention_floor ? opt_.retention_floor() : INT64_MAX;
  Stmt range, del;
  if (auto ok = Prepare(db_,
                        "SELECT min(id), max(id), (SELECT stored_ns FROM events ORDER BY id "
                        "LIMIT 1) FROM events",
                        &range);
      !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = Prepare(db_,
                        "DELETE FROM events WHERE id >= ? AND id < ? AND id < ? AND "
                        "(id < ? OR stored_ns < ?)",
                        &del);
      !ok) {
    return std::unexpected(ok.error());
  }
  for (int chunk = 0; chunk < 20; ++chunk) {
    if (sqlite3_step(range.s) != SQLITE_ROW || sqlite3_column_type(range.s, 0) == SQLITE_NULL) {
      sqlite3_reset(range.s);
      break;
    }
    const int64_t min_id = sqlite3_column_int64(range.s, 0);
    const int64_t max_id = sqlite3_column_int64(range.s, 1);
    const int64_t oldest_ns = sqlite3_column_int64(range.s, 2);
    sqlite3_reset(range.s);
    if (min_id >= floor) break;
    // Rows below keep_from go for the count bound.
    int64_t keep_from = min_id;
    if (opt_.retention_max_events > 0 &&
        static_cast<uint64_t>(max_id - min_id + 1) > opt_.retention_max_events) {
      keep_from = max_id - static_cast<int64_t>(opt_.retention_max_events) + 1;
    }
    if (keep_from == min_id && oldest_ns >= cutoff) break;
    sqlite3_bind_int64(del.s, 1, min_id);
    sqlite3_bind_int64(del.s, 2, min_id + static_cast<int64_t>(opt_.retention_chunk));
    sqlite3_bind_int64(del.s, 3, floor);
    sqlite3_bind_int64(del.s, 4, keep_from);
    sqlite3_bind_int64(del.s, 5, cutoff);
    int rc = sqlite3_step(del.s);
    sqlite3_reset(del.s);
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "retention delete"));
    const int changes = sqlite3_changes(db_);
    deleted += static_cast<uint64_t>(changes);
    if (changes == 0) break;  // the oldest row is young (a clock step back): stop
  }
  auto side = RetainSideTables(cutoff);
  if (!side) return std::unexpected(side.error());
  return deleted;
}

std::expected<uint64_t, std::string> EventStore::RetainSideTables(int64_t cutoff_ns) {
  // A run or container key whose last event was stored before the oldest event still here
  // has no events left: it goes once it is also older than the age bound. (A run's mark is
  // what tells a resend from new events; past the age bound no sensor resends it.)
  Stmt oldest;
  if (auto ok = Prepare(db_, "SELECT stored_ns FROM events ORDER BY id LIMIT 1", &oldest); !ok)
    return std::unexpected(ok.error());
  int64_t oldest_ns = INT64_MAX;
  if (sqlite3_step(oldest.s) == SQLITE_ROW) oldest_ns = sqlite3_column_int64(oldest.s, 0);
  const int64_t bound = std::min(oldest_ns, cutoff_ns);
  if (bound == INT64_MIN) return 0;
  uint64_t deleted = 0;
  auto exec = [&](const char* sql, int64_t v) -> std::expected<void, std::string> {
    Stmt st;
    if (auto ok = Prepare(db_, sql, &st); !ok) return ok;
    sqlite3_bind_int64(st.s, 1, v);
    if (sqlite3_step(st.s) != SQLITE_DONE) return std::unexpected(SqliteError(db_, sql));
    deleted += static_cast<uint64_t>(sqlite3_changes(db_));
    return {};
  };
  bool has_alerts = false, has_inventories = false, has_deliveries = false;
  {
    Stmt t;
    if (auto ok = Prepare(db_, "SELECT name FROM sqlite_master WHERE type='table'", &t); !ok)
      return std::unexpected(ok.error());
    while (sqlite3_step(t.s) == SQLITE_ROW) {
      const std::string name = ColumnText(t.s, 0);
      has_alerts |= name == "alerts";
      has_inventories |= name == "inventories";
      has_deliveries |= name == "deliveries";
    }
  }
  if (auto ok = Exec("BEGIN IMMEDIATE"); !ok) return std::unexpected(ok.error());
  auto body = [&]() -> std::expected<void, std::string> {
    if (auto ok = exec("DELETE FROM runs WHERE updated_ns < ?", bound); !ok) return ok;
    if (auto ok = exec("DELETE FROM containers WHERE cid IN (SELECT cid FROM container_ids "
                       "WHERE updated_ns < ?)",
                       bound);
        !ok) {
      return ok;
    }
    if (auto ok = exec("DELETE FROM container_ids WHERE updated_ns < ?", bound); !ok) return ok;
    if (auto ok = exec("DELETE FROM gaps WHERE stored_ns < ?", cutoff_ns); !ok) return ok;
    if (has_alerts) {
      if (auto ok = exec("DELETE FROM alerts WHERE stored_ns < ?", cutoff_ns); !ok) return ok;
      if (opt_.retention_max_alerts > 0) {
        if (auto ok = exec("DELETE FROM alerts WHERE id <= (SELECT max(id) FROM alerts) - ?",
                           static_cast<int64_t>(opt_.retention_max_alerts));
            !ok) {
          return ok;
        }
      }
      if (has_deliveries) {
        if (auto ok = exec("DELETE FROM deliveries WHERE alert_id < (SELECT coalesce(min(id), "
                           "?) FROM alerts)",
                           INT64_MAX);
            !ok) {
          return ok;
        }
      }
    }
    if (has_inventories) {
      if (auto ok = exec("DELETE FROM inventories WHERE taken_ns < ?", cutoff_ns); !ok)
        return ok;
    }
    return {};
  };
  if (auto ok = body(); !ok) {
    Exec("ROLLBACK");
    return std::unexpected(ok.error());
  }
  if (auto ok = Exec("COMMIT"); !ok) {
    Exec("ROLLBACK");
    return std::unexpected(ok.error());
  }
  // The in-memory copies follow the tables: what is gone from them is gone here too.
  std::erase_if(runs_, [&](const auto& kv) { return kv.second.updated_ns < bound; });
  if (deleted > 0) {
    Stmt k;
    if (auto ok = Prepare(db_, "SELECT cid, node, id FROM container_ids", &k); !ok)
      return std::unexpected(ok.error());
    cids_.clear();
    while (sqlite3_step(k.s) == SQLITE_ROW) {
      cids_[{ColumnText(k.s, 1), ColumnText(k.s, 2)}] = sqlite3_column_int64(k.s, 0);
    }
  }
  return deleted;
}

// ---------------------------------------------------------------------------------------
// EventReader

std::expected<std::unique_ptr<EventReader>, std::string> EventReader::Open(
    const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return std::unexpected(path + ": no such database (" + std::strerror(errno) + ")");
  }
  std::unique_ptr<EventReader> r(new EventReader());
  if (sqlite3_open_v2(path.c_str(), &r->db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    return std::unexpected(SqliteError(r->db_, path));
  }
  sqlite3_busy_timeout(r->db_, 5000);
  auto schema = SchemaState(r->db_);
  if (!schema) return std::unexpected(path + ": " + schema.error());
  if (schema->first != kSchemaVersion) {
    if (schema->second) return std::unexpected(path + ": " + OldSchemaError(schema->first));
    return std::unexpected(path + ": not a driftwatch collector database");
  }
  Stmt s;
  if (auto ok = Prepare(r->db_,
                        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN "
                        "('events','containers','container_ids','nodes','runs')",
                        &s);
      !ok) {
    return std::unexpected(path + ": " + ok.error());
  }
  if (sqlite3_step(s.s) != SQLITE_ROW || sqlite3_column_int(s.s, 0) != 5) {
    return std::unexpected(path + ": not a driftwatch collector database");
  }
  return r;
}

EventReader::~EventReader() {
  if (db_) sqlite3_close(db_);
}

std::expected<uint64_t, std::string> EventReader::Query(
    const EventQuery& q, const std::function<void(const StoredEvent&)>& fn) {
  // events drives the loop (CROSS JOIN keeps it outer): the other tables are rowid lookups.
  // Node and container filters are sets of small keys; a container prefix (short id) is a
  // range on container_ids(id).
  std::string where = " WHERE 1";
  if (!q.node.empty()) where += " AND e.run_id IN (SELECT run_id FROM runs WHERE node = :node)";
  if (!q.container.empty()) {
    where += " AND e.cid IN (SELECT cid FROM container_ids WHERE id >= :c AND id < :c_end)";
  }
  if (!q.kind.empty()) where += " AND e.kind = :kind";
  if (q.since_ns) where += " AND e.time_ns >= :since";
  if (q.until_ns) where += " AND e.time_ns < :until";
  const std::string cols =
      "SELECT e.id AS id, r.node, e.stored_ns, e.payload, c.info, r.boot_id, "
      "r.sensor_start_ns, e.seq, k.id FROM events e CROSS JOIN runs r ON r.run_id = e.run_id "
      "CROSS JOIN container_ids k ON k.cid = e.cid LEFT JOIN containers c ON c.cid = e.cid";
  std::string sql = q.limit > 0 ? "SELECT * FROM (" + cols + where +
                                      " ORDER BY e.id DESC LIMIT :limit) ORDER BY id"
                                : cols + where + " ORDER BY e.id";
  Stmt s;
  if (auto ok = Prepare(db_, sql.c_str(), &s); !ok) return std::unexpected(ok.error());
  auto bind = [&](const char* name) { return sqlite3_bind_parameter_index(s.s, name); };
  const std::string c_end = q.container + "\xff";
  if (!q.node.empty()) BindText(s.s, bind(":node"), q.node);
  if (!q.container.empty()) {
    BindText(s.s, bind(":c"), q.container);
    BindText(s.s, bind(":c_end"), c_end);
  }
  if (!q.kind.empty()) sqlite3_bind_int(s.s, bind(":kind"), EventKindNumber(q.kind));
  if (q.since_ns) sqlite3_bind_int64(s.s, bind(":since"), *q.since_ns);
  if (q.until_ns) sqlite3_bind_int64(s.s, bind(":until"), *q.until_ns);
  if (q.limit > 0) {
    sqlite3_bind_int64(s.s, bind(":limit"),
                       static_cast<int64_t>(std::min<uint64_t>(q.limit, INT64_MAX)));
  }
  uint64_t n = 0;
  StoredEvent se;
  for (;;) {
    int rc = sqlite3_step(s.s);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return std::unexpected(SqliteError(db_, "query"));
    se.rowid = sqlite3_column_int64(s.s, 0);
    se.node = ColumnText(s.s, 1);
    se.stored_ns = sqlite3_column_int64(s.s, 2);
    const void* p = sqlite3_column_blob(s.s, 3);
    if (!se.event.ParseFromArray(p, sqlite3_column_bytes(s.s, 3))) {
      return std::unexpected("event " + std::to_string(se.rowid) +
                             ": payload does not parse as driftwatch.v1.Event");
    }
    // The payload lacks what the columns hold: the id and the container id.
    v1::EventId* id = se.event.mutable_id();
    id->set_node(se.node);
    id->set_boot_id(ColumnText(s.s, 5));
    id->set_sensor_start_ns(sqlite3_column_int64(s.s, 6));
    id->set_seq(static_cast<uint64_t>(sqlite3_column_int64(s.s, 7)));
    se.event.set_container_id(ColumnText(s.s, 8));
    se.container.reset();
    if (sqlite3_column_type(s.s, 4) != SQLITE_NULL) {
      v1::ContainerInfo ci;
      if (ci.ParseFromArray(sqlite3_column_blob(s.s, 4), sqlite3_column_bytes(s.s, 4))) {
        se.container = std::move(ci);
      }
    }
    fn(se);
    ++n;
  }
  return n;
}

std::expected<std::vector<NodeState>, std::string> EventReader::Nodes() {
  Stmt s;
  if (auto ok = Prepare(db_, (std::string("SELECT ") + kNodeColumns + " FROM nodes ORDER BY node").c_str(), &s); !ok) {
    return std::unexpected(ok.error());
  }
  std::vector<NodeState> out;
  while (sqlite3_step(s.s) == SQLITE_ROW) out.push_back(ReadNodeRow(s.s));
  return out;
}

std::expected<uint64_t, std::string> EventReader::CountEvents() {
  Stmt s;
  if (auto ok = Prepare(db_, "SELECT count(*) FROM events", &s); !ok) {
    return std::unexpected(ok.error());
  }
  if (sqlite3_step(s.s) != SQLITE_ROW) return std::unexpected(SqliteError(db_, "count"));
  return static_cast<uint64_t>(sqlite3_column_int64(s.s, 0));
}

// ---------------------------------------------------------------------------------------
// EventScanner

bool DecodeStoredEvent(std::string_view payload, const RunInfo& run, uint64_t seq,
                       const std::string& container_id, v1::Event* out) {
  if (payload.size() > INT32_MAX ||
      !out->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return false;
  }
  v1::EventId* id = out->mutable_id();
  id->set_node(run.node);
  id->set_boot_id(run.boot_id);
  id->set_sensor_start_ns(run.sensor_start_ns);
  id->set_seq(seq);
  out->set_container_id(container_id);
  return true;
}

struct EventScanner::Statements {
  Stmt scan, run, cid, first_at, time_of, gaps;
};

std::expected<std::unique_ptr<EventScanner>, std::string> EventScanner::Open(
    const std::string& path) {
  std::unique_ptr<EventScanner> r(new EventScanner());
  if (sqlite3_open_v2(path.c_str(), &r->db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return std::unexpected(SqliteError(r->db_, path));
  }
  sqlite3_busy_timeout(r->db_, 5000);
  r->st_ = std::make_unique<Statements>();
  struct {
    Stmt* s;
    const char* sql;
  } stmts[] = {
      {&r->st_->scan,
       "SELECT id, run_id, seq, time_ns, stored_ns, cid, kind, payload FROM events "
       "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"},
      {&r->st_->run, "SELECT node, boot_id, sensor_start_ns FROM runs WHERE run_id = ?"},
      {&r->st_->cid, "SELECT id FROM container_ids WHERE cid = ?"},
      {&r->st_->first_at, "SELECT min(id) FROM events WHERE time_ns >= ?"},
      {&r->st_->time_of, "SELECT time_ns FROM events WHERE id = ?"},
      {&r->st_->gaps,
       "SELECT id, node, run_id, from_seq, to_seq, after_rowid, stored_ns FROM gaps "
       "WHERE after_rowid > ? AND after_rowid <= ? ORDER BY after_rowid"},
  };
  for (auto& [s, sql] : stmts) {
    if (auto ok = Prepare(r->db_, sql, s, true); !ok)
      return std::unexpected(path + ": " + ok.error());
  }
  return r;
}

EventScanner::~EventScanner() {
  st_.reset();
  if (db_) sqlite3_close(db_);
}

std::expected<uint64_t, std::string> EventScanner::Scan(
    int64_t after, int64_t upto, size_t limit,
    const std::function<void(const ScannedEvent&)>& fn) {
  sqlite3_stmt* s = st_->scan.s;
  sqlite3_bind_int64(s, 1, after);
  sqlite3_bind_int64(s, 2, upto);
  sqlite3_bind_int64(s, 3, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  uint64_t n = 0;
  ScannedEvent e;
  for (;;) {
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      auto err = SqliteError(db_, "scan events");
      sqlite3_reset(s);
      return std::unexpected(err);
    }
    e.rowid = sqlite3_column_int64(s, 0);
    e.run_id = sqlite3_column_int64(s, 1);
    e.seq = static_cast<uint64_t>(sqlite3_column_int64(s, 2));
    e.time_ns = sqlite3_column_int64(s, 3);
    e.stored_ns = sqlite3_column_int64(s, 4);
    e.cid = sqlite3_column_int64(s, 5);
    e.kind = sqlite3_column_int(s, 6);
    const void* p = sqlite3_column_blob(s, 7);
    e.payload = std::string_view(static_cast<const char*>(p),
                                 static_cast<size_t>(sqlite3_column_bytes(s, 7)));
    fn(e);
    ++n;
  }
  sqlite3_reset(s);
  return n;
}

std::expected<const RunInfo*, std::string> EventScanner::Run(int64_t run_id) {
  if (auto it = runs_.find(run_id); it != runs_.end()) return &it->second;
  sqlite3_stmt* s = st_->run.s;
  sqlite3_bind_int64(s, 1, run_id);
  const int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return nullptr;
    return std::unexpected(SqliteError(db_, "read run"));
  }
  RunInfo r{ColumnText(s, 0), ColumnText(s, 1), sqlite3_column_int64(s, 2)};
  sqlite3_reset(s);
  if (runs_.size() > 100000) runs_.clear();  // a cache: bounded, refilled on demand
  return &runs_.emplace(run_id, std::move(r)).first->second;
}

std::expected<const std::string*, std::string> EventScanner::ContainerId(int64_t cid) {
  if (auto it = cids_.find(cid); it != cids_.end()) return &it->second;
  sqlite3_stmt* s = st_->cid.s;
  sqlite3_bind_int64(s, 1, cid);
  const int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return nullptr;
    return std::unexpected(SqliteError(db_, "read container id"));
  }
  std::string id = ColumnText(s, 0);
  sqlite3_reset(s);
  if (cids_.size() > 100000) cids_.clear();
  return &cids_.emplace(cid, std::move(id)).first->second;
}

std::expected<int64_t, std::string> EventScanner::FirstRowidAtOrAfter(int64_t time_ns) {
  sqlite3_stmt* s = st_->first_at.s;
  sqlite3_bind_int64(s, 1, time_ns);
  const int rc = sqlite3_step(s);
  const int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  if (rc != SQLITE_ROW) return std::unexpected(SqliteError(db_, "first rowid by time"));
  return v;
}

std::expected<std::optional<int64_t>, std::string> EventScanner::TimeOf(int64_t rowid) {
  sqlite3_stmt* s = st_->time_of.s;
  sqlite3_bind_int64(s, 1, rowid);
  const int rc = sqlite3_step(s);
  std::optional<int64_t> v;
  if (rc == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "time of"));
  return v;
}

std::expected<std::vector<StoredGap>, std::string> EventScanner::Gaps(int64_t after,
                                                                      int64_t upto) {
  sqlite3_stmt* s = st_->gaps.s;
  sqlite3_bind_int64(s, 1, after);
  sqlite3_bind_int64(s, 2, upto);
  std::vector<StoredGap> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    StoredGap& g = out.emplace_back();
    g.id = sqlite3_column_int64(s, 0);
    g.node = ColumnText(s, 1);
    g.run_id = sqlite3_column_int64(s, 2);
    g.from_seq = static_cast<uint64_t>(sqlite3_column_int64(s, 3));
    g.to_seq = static_cast<uint64_t>(sqlite3_column_int64(s, 4));
    g.after_rowid = sqlite3_column_int64(s, 5);
    g.stored_ns = sqlite3_column_int64(s, 6);
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read gaps"));
  return out;
}

std::expected<void, std::string> EventScanner::ContainerInfos(
    const std::function<void(const std::string&, const std::string&, std::string_view)>& fn) {
  Stmt s;
  if (auto ok = Prepare(db_,
                        "SELECT k.node, k.id, c.info FROM containers c JOIN container_ids k "
                        "ON k.cid = c.cid ORDER BY c.updated_ns",
                        &s);
      !ok) {
    return ok;
  }
  int rc;
  while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) {
    const void* p = sqlite3_column_blob(s.s, 2);
    fn(ColumnText(s.s, 0), ColumnText(s.s, 1),
       std::string_view(static_cast<const char*>(p),
                        static_cast<size_t>(sqlite3_column_bytes(s.s, 2))));
  }
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read containers"));
  return {};
}

std::expected<std::map<std::string, int64_t>, std::string> EventScanner::Cursors() {
  Stmt s;
  if (auto ok = Prepare(db_, "SELECT node, rowid FROM detect_cursors", &s); !ok)
    return std::unexpected(ok.error());
  std::map<std::string, int64_t> out;
  int rc;
  while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) out[ColumnText(s.s, 0)] = sqlite3_column_int64(s.s, 1);
  if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, "read detection cursors"));
  return out;
}

std::expected<int64_t, std::string> EventScanner::MaxRowid() {
  Stmt s;
  if (auto ok = Prepare(db_, "SELECT coalesce(max(id), 0) FROM events", &s); !ok)
    return std::unexpected(ok.error());
  if (sqlite3_step(s.s) != SQLITE_ROW) return std::unexpected(SqliteError(db_, "max rowid"));
  return sqlite3_column_int64(s.s, 0);
}

}  // namespace driftwatch
