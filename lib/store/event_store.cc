#include "lib/store/event_store.h"

#include <pthread.h>
#include <sqlite3.h>

#include <algorithm>
#include <set>

#include "lib/base/clock.h"
#include "lib/base/log.h"
#include "lib/store/sqlite_util.h"

namespace driftwatch {

using namespace sql;  // lib/store/sqlite_util.h: the store's own helpers

namespace {

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

}  // namespace


struct EventStore::Statements {
  Stmt begin, commit, rollback, insert_event, insert_run, update_run, insert_cid, touch_cid,
      upsert_container, upsert_node, insert_gap;
};

EventStore::EventStore(const StoreOptions& opt) : opt_(opt) {}

Result<std::unique_ptr<EventStore>> EventStore::Open(
    const StoreOptions& opt) {
  // No memory statistics: SQLite otherwise takes a process-wide mutex on every allocation,
  // which the writer and detection's readers then contend on. Only possible before SQLite's
  // first use in the process (refused, harmlessly, after it).
  static const int memstatus_off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)memstatus_off;
  std::unique_ptr<EventStore> s(new EventStore(opt));
  if (auto ok = s->Init(); !ok) return std::unexpected(ok.error());
  s->writer_ = std::thread([p = s.get()] { p->WriterLoop(); });
  return s;
}

Result<> EventStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Error e = SqliteError(db_, std::string(sql).substr(0, 60));
    if (err != nullptr) e = Error(e.code(), std::string(sql).substr(0, 60) + ": " + err);
    sqlite3_free(err);
    return std::unexpected(std::move(e));
  }
  return {};
}

Result<> EventStore::Init() {
  if (sqlite3_open_v2(opt_.path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return std::unexpected(SqliteError(db_, opt_.path));
  }
  sqlite3_busy_timeout(db_, static_cast<int>(opt_.busy_timeout.count()));
  auto schema = SchemaState(db_);
  if (!schema) return std::unexpected(schema.error().Prefix(opt_.path));
  const auto [version, has_events] = *schema;
  if (version == 2 && has_events) {
    std::string sql = kMigrate2To3;
    const std::string now = std::to_string(NowNs());
    for (size_t at; (at = sql.find(":now")) != std::string::npos;) sql.replace(at, 4, now);
    if (auto ok = Exec(sql.c_str()); !ok) {
      (void)Exec("ROLLBACK");  // the failure above is the one to report
      return std::unexpected(ok.error().Prefix(opt_.path + ": migrating schema version 2 to 3"));
    }
    LogInfo("%s: schema version 2 migrated to 3\n", opt_.path.c_str());
  } else if (version != kSchemaVersion && (version != 0 || has_events)) {
    return std::unexpected(Error::InvalidInput(opt_.path + ": " + OldSchemaError(version)));
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
    if (auto ok = Exec(sql); !ok) return std::unexpected(ok.error().Prefix(opt_.path));
  }
  if (auto ok = Exec(opt_.synchronous_full ? "PRAGMA synchronous=FULL"
                                           : "PRAGMA synchronous=NORMAL");
      !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = Exec(kSchema); !ok) return std::unexpected(ok.error().Prefix(opt_.path));

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
      StoreCommit stored;
      auto ok = CommitPending(&items, &results, &stored);
      {
        MutexLock elk(mu_);
        last_error_ = ok ? std::string() : ok.error().message();
      }
      if (!ok) {
        LogWarn("store: %s\n", ok.error().c_str());
        for (const Pending& p : items) {
          if (p.stream != 0) failed_streams_.emplace(p.stream, ok.error().message());
        }
        // Bounded: streams live minutes to days; a failure is rare.
        while (failed_streams_.size() > 4096) failed_streams_.erase(failed_streams_.begin());
      } else if (opt_.on_commit && stored.head > stored.after) {
        opt_.on_commit(std::move(stored));
      }
      for (size_t i = 0; i < items.size(); ++i) {
        CommitResult r = ok ? results[i] : CommitResult{0, 0, ok.error().message()};
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

Result<> EventStore::CommitPending(std::vector<Pending>* items,
                                   std::vector<CommitResult>* results, StoreCommit* stored) {
  MutexLock db_lk(db_mu_);
  results->assign(items->size(), CommitResult{});
  const bool feed = static_cast<bool>(opt_.on_commit);
  stored->after = stored->head = head_.load(std::memory_order_acquire);
  stored->batches.clear();
  const int64_t now = StoreNowNs();
  auto step_done = [&](sqlite3_stmt* s, const char* what) -> Result<> {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, what));
    return {};
  };
  if (auto ok = step_done(st_->begin.s, "begin"); !ok) return ok;

  std::map<RunKey, RunMark> before;  // marks as they were, to undo on rollback
  std::vector<const ContainerKey*> new_cids;  // container keys added, to undo on rollback
  std::map<int64_t, uint64_t> touched;  // run_id -> new max_seq
  auto fail = [&](Error e) -> Result<> {
    (void)step_done(st_->rollback.s, "rollback");  // `e` is the one to report
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
    std::vector<int64_t> rowids;
    if (feed) rowids.assign(b.events.size(), 0);
    for (size_t ei = 0; ei < b.events.size(); ++ei) {
      const PreparedEvent& e = b.events[ei];
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
      if (feed) rowids[ei] = rowid;
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
    if (feed && r.stored > 0) stored->batches.push_back({(*items)[i].batch, std::move(rowids), now});
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
  if (head > 0) {
    head_.store(head, std::memory_order_release);
    stored->head = head;
  } else {
    stored->batches.clear();
  }
  return {};
}

Result<uint64_t> EventStore::EnforceRetention(int64_t now_ns) {
  MutexLock db_lk(db_mu_);
  return RetentionLocked(now_ns);
}

Result<uint64_t> EventStore::RetentionLocked(int64_t now_ns) {
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
    // Never the newest row: with the table empty SQLite would number rows from 1 again, and
    // detection, which follows rowids, would take the new rows for ones it has done.
    sqlite3_bind_int64(del.s, 2,
                       std::min(min_id + static_cast<int64_t>(opt_.retention_chunk), max_id));
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

Result<uint64_t> EventStore::RetainSideTables(int64_t cutoff_ns) {
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
  auto exec = [&](const char* sql, int64_t v) -> Result<> {
    Stmt st;
    if (auto ok = Prepare(db_, sql, &st); !ok) return ok;
    sqlite3_bind_int64(st.s, 1, v);
    if (sqlite3_step(st.s) != SQLITE_DONE) return std::unexpected(SqliteError(db_, sql));
    deleted += static_cast<uint64_t>(sqlite3_changes(db_));
    return {};
  };
  bool has_alerts = false, has_inventories = false, has_deliveries = false, has_repeats = false,
       has_allowed = false;
  {
    Stmt t;
    if (auto ok = Prepare(db_, "SELECT name FROM sqlite_master WHERE type='table'", &t); !ok)
      return std::unexpected(ok.error());
    while (sqlite3_step(t.s) == SQLITE_ROW) {
      const std::string name = ColumnText(t.s, 0);
      has_alerts |= name == "alerts";
      has_inventories |= name == "inventories";
      has_deliveries |= name == "deliveries";
      has_repeats |= name == "alert_repeats";
      has_allowed |= name == "allowed_drift";
    }
  }
  if (auto ok = Exec("BEGIN IMMEDIATE"); !ok) return std::unexpected(ok.error());
  auto body = [&]() -> Result<> {
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
      // Rows of alerts gone with them. An aggregate's summary is delivered as -id, its
      // repeats recorded by id (lib/alerts/alert_store.h).
      for (const auto& [has, sql] :
           {std::pair{has_deliveries, "DELETE FROM deliveries WHERE abs(alert_id) < "
                                      "(SELECT coalesce(min(id), ?) FROM alerts)"},
            std::pair{has_repeats, "DELETE FROM alert_repeats WHERE alert_id < "
                                   "(SELECT coalesce(min(id), ?) FROM alerts)"}}) {
        if (!has) continue;
        if (auto ok = exec(sql, INT64_MAX); !ok) return ok;
      }
    }
    if (has_inventories) {
      if (auto ok = exec("DELETE FROM inventories WHERE taken_ns < ?", cutoff_ns); !ok)
        return ok;
    }
    // The allowed-drift summary: by its last event, and as many rows as alerts at most (a
    // container allowed to drift can name a new file every time).
    if (has_allowed) {
      if (auto ok = exec("DELETE FROM allowed_drift WHERE last_ns < ?", cutoff_ns); !ok) return ok;
      if (opt_.retention_max_alerts > 0) {
        if (auto ok = exec("DELETE FROM allowed_drift WHERE id <= (SELECT max(id) FROM "
                           "allowed_drift) - ?",
                           static_cast<int64_t>(opt_.retention_max_alerts));
            !ok) {
          return ok;
        }
      }
    }
    return {};
  };
  if (auto ok = body(); !ok) {
    (void)Exec("ROLLBACK");  // the failure above is the one to report
    return std::unexpected(ok.error());
  }
  if (auto ok = Exec("COMMIT"); !ok) {
    (void)Exec("ROLLBACK");  // the failure above is the one to report
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

}  // namespace driftwatch
