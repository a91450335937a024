#include "lib/store/pg_event_store.h"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <tuple>

#include "lib/base/clock.h"
#include "lib/base/log.h"
#include "lib/store/pg_schema.h"

namespace driftwatch {
namespace {

constexpr std::chrono::milliseconds kMaxBackoff{2000};

// Binary COPY: big-endian integers, each field preceded by its length.
void PutBe(std::string* o, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) o->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutInt64Field(std::string* o, int64_t v) {
  PutBe(o, 8, 4);
  PutBe(o, static_cast<uint64_t>(v), 8);
}
void PutBytesField(std::string* o, std::string_view v) {
  PutBe(o, v.size(), 4);
  o->append(v);
}

// A batch naming a node, boot id or container that is not PostgreSQL text would fail every
// transaction it is in, so it is refused alone at Submit.
std::string BatchTextProblem(const PreparedBatch& b) {
  if (!IsPgText(b.node)) return "node name is not UTF-8 text without NUL";
  for (const PreparedRun& r : b.runs) {
    if (!IsPgText(r.boot_id)) return "a boot_id is not UTF-8 text without NUL";
  }
  for (const std::string& c : b.containers) {
    if (!IsPgText(c)) return "a container_id is not UTF-8 text without NUL";
  }
  return "";
}

constexpr const char* kNodeColumns =
    "node, connected_streams, last_seen_ns, events_stored, duplicates, boot_id, "
    "sensor_start_ns, sensor_version, kernel_version, audit_mode, fanotify_mode, "
    "spool_dropped, peer";

// Connection state as this collector has it when $14 (it has some), else as it was; the
// counters are this commit's, added to every collector's.
constexpr const char* kUpsertNode =
    "INSERT INTO nodes(node, connected_streams, last_seen_ns, events_stored, duplicates, "
    "boot_id, sensor_start_ns, sensor_version, kernel_version, audit_mode, fanotify_mode, "
    "spool_dropped, peer) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
    "ON CONFLICT (node) DO UPDATE SET "
    "connected_streams = CASE WHEN $14 THEN EXCLUDED.connected_streams "
    "ELSE nodes.connected_streams END, "
    "last_seen_ns = greatest(nodes.last_seen_ns, EXCLUDED.last_seen_ns), "
    "events_stored = nodes.events_stored + EXCLUDED.events_stored, "
    "duplicates = nodes.duplicates + EXCLUDED.duplicates, "
    "boot_id = CASE WHEN $14 THEN EXCLUDED.boot_id ELSE nodes.boot_id END, "
    "sensor_start_ns = CASE WHEN $14 THEN EXCLUDED.sensor_start_ns ELSE nodes.sensor_start_ns END, "
    "sensor_version = CASE WHEN $14 THEN EXCLUDED.sensor_version ELSE nodes.sensor_version END, "
    "kernel_version = CASE WHEN $14 THEN EXCLUDED.kernel_version ELSE nodes.kernel_version END, "
    "audit_mode = CASE WHEN $14 THEN EXCLUDED.audit_mode ELSE nodes.audit_mode END, "
    "fanotify_mode = CASE WHEN $14 THEN EXCLUDED.fanotify_mode ELSE nodes.fanotify_mode END, "
    "spool_dropped = CASE WHEN $14 THEN EXCLUDED.spool_dropped ELSE nodes.spool_dropped END, "
    "peer = CASE WHEN $14 THEN EXCLUDED.peer ELSE nodes.peer END";

}  // namespace

PgEventStore::PgEventStore(const PgStoreOptions& opt) : opt_(opt) {}

Result<std::unique_ptr<PgEventStore>> PgEventStore::Open(const PgStoreOptions& opt) {
  std::unique_ptr<PgEventStore> s(new PgEventStore(opt));
  if (auto ok = s->Init(); !ok) return std::unexpected(ok.error());
  s->writer_ = std::thread([p = s.get()] { p->WriterLoop(); });
  return s;
}

PgEventStore::~PgEventStore() { Close(); }

int64_t PgEventStore::WallNs() const { return opt_.wall_clock ? opt_.wall_clock() : NowNs(); }

int64_t PgEventStore::StoreNowNs() {
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

Result<> PgEventStore::Connect() {
  backend_pid_.store(0, std::memory_order_release);
  conn_.reset();
  auto c = PgConn::Connect(opt_.uri);
  if (!c) return std::unexpected(c.error());
  conn_ = std::move(*c);
  backend_pid_.store(conn_->backend_pid(), std::memory_order_release);
  return {};
}

Result<> PgEventStore::EnsurePartitions(int64_t now_ns) {
  const int64_t day = EventPartitionOf(now_ns).from_ns;
  if (day == partitions_day_) return {};
  if (auto ok = EnsureEventPartitions(conn_.get(), now_ns, 1); !ok) return ok;
  partitions_day_ = day;
  return {};
}

Result<> PgEventStore::Init() {
  {
    // Before the first reading: the clock starts at the wall clock.
    MutexLock lk(clock_mu_);
    clock_last_ns_ = WallNs();
    clock_last_mono_ = std::chrono::steady_clock::now();
  }
  MutexLock lk(conn_mu_);
  if (auto ok = Connect(); !ok) return ok;
  if (auto v = MigratePg(conn_.get(), PgStoreMigrations(), opt_.name); !v)
    return std::unexpected(v.error());
  if (auto ok = EnsurePartitions(StoreNowNs()); !ok) return ok;
  // This collector's view of the nodes starts from the table; no stream of it is connected.
  // Not marked dirty: writing connected_streams = 0 would overwrite another collector's.
  auto r = conn_->Exec("read nodes", std::string("SELECT ") + kNodeColumns + " FROM nodes");
  if (!r) return std::unexpected(r.error());
  MutexLock nlk(mu_);  // no writer thread yet: uncontended
  for (int i = 0; i < PQntuples(r->get()); ++i) {
    NodeState n;
    n.node = PQgetvalue(r->get(), i, 0);
    n.last_seen_ns = PgGetInt(r->get(), i, 2);
    n.events_stored = static_cast<uint64_t>(PgGetInt(r->get(), i, 3));
    n.duplicates = static_cast<uint64_t>(PgGetInt(r->get(), i, 4));
    n.hello.boot_id = PQgetvalue(r->get(), i, 5);
    n.hello.sensor_start_ns = PgGetInt(r->get(), i, 6);
    n.hello.sensor_version = PQgetvalue(r->get(), i, 7);
    n.hello.kernel_version = PQgetvalue(r->get(), i, 8);
    n.hello.audit_mode = PQgetvalue(r->get(), i, 9);
    n.hello.fanotify_mode = PQgetvalue(r->get(), i, 10);
    n.hello.spool_dropped = static_cast<uint64_t>(PgGetInt(r->get(), i, 11));
    n.hello.peer = PQgetvalue(r->get(), i, 12);
    nodes_[n.node] = std::move(n);
  }
  return {};
}

void PgEventStore::Close() {
  {
    MutexLock lk(mu_);
    closing_ = true;
  }
  cv_.NotifyAll();
  if (writer_.joinable()) writer_.join();
}

void PgEventStore::Submit(std::shared_ptr<const PreparedBatch> batch, Callback done,
                          uint64_t stream) {
  if (std::string why = BatchTextProblem(*batch); !why.empty()) {
    done(CommitResult{0, 0, "not stored: " + why});
    return;
  }
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

void PgEventStore::Flush() {
  MutexLock lk(mu_);
  const uint64_t target = submitted_;
  flush_waiters_++;
  cv_.NotifyAll();
  flushed_cv_.Wait(lk, [&]() DW_REQUIRES(mu_) { return committed_ >= target || writer_done_; });
  flush_waiters_--;
}

std::string PgEventStore::last_error() const {
  MutexLock lk(mu_);
  return last_error_;
}

void PgEventStore::NodeConnected(const std::string& node, const NodeHello& h) {
  {
    MutexLock lk(mu_);
    NodeState& n = nodes_[node];
    n.node = node;
    ++n.connected_streams;
    n.last_seen_ns = NowNs();
    n.hello = h;
    dirty_nodes_[node] = ++node_changes_;
  }
  cv_.NotifyAll();
}

void PgEventStore::NodeDisconnected(const std::string& node) {
  {
    MutexLock lk(mu_);
    NodeState& n = nodes_[node];
    n.node = node;
    if (n.connected_streams > 0) --n.connected_streams;
    n.last_seen_ns = NowNs();
    dirty_nodes_[node] = ++node_changes_;
  }
  cv_.NotifyAll();
}

std::optional<NodeState> PgEventStore::Node(const std::string& node) const {
  MutexLock lk(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return std::nullopt;
  return it->second;
}

std::vector<NodeState> PgEventStore::Nodes() const {
  MutexLock lk(mu_);
  std::vector<NodeState> out;
  for (const auto& [_, n] : nodes_) out.push_back(n);
  return out;
}

void PgEventStore::WriterLoop() {
  pthread_setname_np(pthread_self(), "dw-pgstore");
  using Clock = std::chrono::steady_clock;
  auto next_retention = Clock::now() + opt_.retention_interval;
  MutexLock lk(mu_);
  for (;;) {
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
      std::vector<Pending*> all;
      for (Pending& p : items) all.push_back(&p);
      std::vector<CommitResult> results;
      PgStoreCommit stored;
      bool passing = false;
      Result<> ok;
      {
        MutexLock clk(conn_mu_);
        ok = CommitWithRetry(all, &results, &stored, &passing);
      }
      std::vector<Result<>> outcome(items.size(), ok);
      if (ok) {
        if (opt_.on_commit && !stored.batches.empty()) opt_.on_commit(std::move(stored));
      } else if (items.size() > 1 && !passing) {
        // Something in the data: one batch per transaction, so that only the bad one fails.
        LogWarn("store: %s: committing the %zu batches one by one\n", ok.error().c_str(),
                items.size());
        results.assign(items.size(), CommitResult{});
        for (size_t i = 0; i < items.size(); ++i) {
          std::vector<CommitResult> one;
          PgStoreCommit one_stored;
          bool one_passing = false;
          {
            MutexLock clk(conn_mu_);
            outcome[i] = CommitWithRetry({all[i]}, &one, &one_stored, &one_passing);
          }
          if (outcome[i]) {
            results[i] = one[0];
            if (opt_.on_commit && !one_stored.batches.empty()) opt_.on_commit(std::move(one_stored));
          }
        }
      }
      std::string error;
      for (size_t i = 0; i < items.size(); ++i) {
        if (outcome[i]) continue;
        error = outcome[i].error().message();
        if (items[i].stream != 0) failed_streams_.emplace(items[i].stream, error);
      }
      if (!error.empty()) LogWarn("store: %s\n", error.c_str());
      // Bounded: streams live minutes to days; a failure is rare.
      while (failed_streams_.size() > 4096) failed_streams_.erase(failed_streams_.begin());
      {
        MutexLock elk(mu_);
        last_error_ = error;
      }
      for (size_t i = 0; i < items.size(); ++i) {
        items[i].done(outcome[i] ? results[i]
                                 : CommitResult{0, 0, outcome[i].error().message()});
      }
    }
    if (opt_.retention_age.count() > 0 && Clock::now() >= next_retention) {
      auto r = EnforceRetention(StoreNowNs());
      if (!r) LogWarn("retention: %s\n", r.error().c_str());
      next_retention = Clock::now() + opt_.retention_interval;
    }

    lk.Lock();
    committed_ += items.size() + refused.size();
    flushed_cv_.NotifyAll();
    if (closing_ && queue_.empty() && dirty_nodes_.empty()) break;
  }
  writer_done_ = true;
  lk.Unlock();
  // Wake any Flush() that arrived after the last commit.
  flushed_cv_.NotifyAll();
}

bool PgEventStore::Retryable(const Error& e) const {
  if (e.code() == ErrorCode::kUnavailable) return true;  // connection lost or refused
  if (e.code() != ErrorCode::kIo || conn_ == nullptr) return false;  // ours: the data's
  if (!conn_->connected()) return true;
  const std::string& s = conn_->last_sqlstate();
  // 40: serialization failure, deadlock; 08: connection; 53: resources; 57P: shutdown,
  // terminated; 55P03: lock timeout; 23514: no partition for the row (made on retry).
  return s.starts_with("40") || s.starts_with("08") || s.starts_with("53") ||
         s.starts_with("57P") || s == "55P03" || s == "23514";
}

Result<> PgEventStore::CommitWithRetry(const std::vector<Pending*>& items,
                                       std::vector<CommitResult>* results, PgStoreCommit* stored,
                                       bool* passing) {
  const auto deadline = std::chrono::steady_clock::now() + opt_.retry_for;
  auto backoff = opt_.retry_backoff;
  for (;;) {
    Result<> ok;
    if (conn_ == nullptr || !conn_->connected()) ok = Connect();
    if (ok) ok = CommitOnce(items, results, stored);
    if (ok) return ok;
    *passing = Retryable(ok.error());
    if (*passing && conn_ != nullptr && conn_->last_sqlstate() == "23514") partitions_day_ = -1;
    if (!*passing || std::chrono::steady_clock::now() + backoff > deadline) return ok;
    retries_.fetch_add(1, std::memory_order_relaxed);
    LogWarn("store: %s: retrying in %lld ms\n", ok.error().c_str(),
            static_cast<long long>(backoff.count()));
    {
      MutexLock lk(mu_);
      last_error_ = ok.error().message();
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
  }
}

Result<> PgEventStore::CommitOnce(const std::vector<Pending*>& items,
                                  std::vector<CommitResult>* results, PgStoreCommit* stored) {
  const int64_t now = StoreNowNs();
  const std::string now_s = std::to_string(now);
  if (auto ok = EnsurePartitions(now); !ok) return ok;
  results->assign(items.size(), CommitResult{});
  stored->heads.clear();
  stored->batches.clear();
  const bool feed = static_cast<bool>(opt_.on_commit);
  PgConn* c = conn_.get();

  struct RunState {
    int64_t run_id = 0;
    uint64_t max_seq = 0, was = 0;
  };
  struct NodeWork {
    int64_t last_id = 0, was = 0;
    std::map<std::pair<std::string, int64_t>, RunState> runs;  // (boot_id, start): sorted
    std::map<std::string, int64_t> cids;                         // container id -> cid
    uint64_t stored = 0, duplicates = 0, missing = 0;
  };
  std::map<std::string, NodeWork> nodes;  // sorted: the lock order
  for (const Pending* p : items) {
    NodeWork& w = nodes[p->batch->node];
    for (const PreparedRun& r : p->batch->runs) w.runs[{r.boot_id, r.sensor_start_ns}];
  }
  // Node rows to write: those with changed connection state, and those with events.
  struct NodeRow {
    NodeState state;
    uint64_t change = 0;  // 0: no connection news, only counters
  };
  std::map<std::string, NodeRow> node_rows;
  {
    MutexLock lk(mu_);
    for (const auto& [node, change] : dirty_nodes_) node_rows[node] = {nodes_[node], change};
    for (const auto& [node, _] : nodes) node_rows.try_emplace(node);
  }

  auto fail = [&](Error e) -> Result<> {
    // A lost connection has nothing to roll back; `e` is the error to report either way
    // (a successful ROLLBACK leaves the failed statement's SQLSTATE for Retryable).
    if (c->connected()) (void)c->Run("rollback", "ROLLBACK");
    return std::unexpected(std::move(e));
  };
  if (auto ok = c->Run("begin ingest", "BEGIN"); !ok) return fail(ok.error());

  // 1. Locks, in the fixed order: each node's head, then its runs.
  for (auto& [node, w] : nodes) {
    const PgParam lock_head[] = {{node}};
    auto h = c->ExecParams("lock node head",
                           "INSERT INTO node_heads(node) VALUES ($1) ON CONFLICT (node) DO "
                           "UPDATE SET last_id = node_heads.last_id RETURNING last_id",
                           lock_head);
    if (!h) return fail(h.error());
    if (PQntuples(h->get()) != 1)
      return fail(Error::Corruption(c->where() + ": lock node head: no row for " + node));
    w.last_id = w.was = PgGetInt(h->get(), 0, 0);
    for (auto& [key, run] : w.runs) {
      const std::string start = std::to_string(key.second);
      const PgParam lock_run[] = {{node}, {key.first}, {start}, {now_s}};
      // ON CONFLICT DO UPDATE locks the row whether this statement inserted it or another
      // collector did (even one that committed it a moment ago), and returns its mark as
      // committed: one round trip, and no moment where the row could go (retention) between
      // finding it and locking it.
      auto r = c->ExecParams("lock run",
                             "INSERT INTO runs(node, boot_id, sensor_start_ns, max_seq, "
                             "updated_ns) VALUES ($1, $2, $3, 0, $4) ON CONFLICT (node, "
                             "boot_id, sensor_start_ns) DO UPDATE SET updated_ns = "
                             "greatest(runs.updated_ns, EXCLUDED.updated_ns) "
                             "RETURNING run_id, max_seq",
                             lock_run);
      if (!r) return fail(r.error());
      if (PQntuples(r->get()) != 1)
        return fail(Error::Corruption(c->where() + ": lock run: no row for " + node));
      run.run_id = PgGetInt(r->get(), 0, 0);
      run.max_seq = run.was = static_cast<uint64_t>(PgGetInt(r->get(), 0, 1));
    }
  }

  // 2. Duplicates, gaps, ids, in commit order.
  struct Gap {
    const std::string* node;
    int64_t run_id, after_id;
    uint64_t from, to;
  };
  std::vector<Gap> gaps;
  std::vector<std::vector<int64_t>> ids(items.size());       // per event; 0: duplicate
  std::vector<std::vector<RunState*>> marks(items.size());   // per batch run
  for (size_t i = 0; i < items.size(); ++i) {
    const PreparedBatch& b = *items[i]->batch;
    NodeWork& w = nodes[b.node];
    CommitResult& r = (*results)[i];
    marks[i].resize(b.runs.size());
    for (size_t k = 0; k < b.runs.size(); ++k)
      marks[i][k] = &w.runs[{b.runs[k].boot_id, b.runs[k].sensor_start_ns}];
    ids[i].assign(b.events.size(), 0);
    for (size_t ei = 0; ei < b.events.size(); ++ei) {
      const PreparedEvent& e = b.events[ei];
      RunState* m = marks[i][e.run];
      if (e.seq <= m->max_seq) {
        ++r.duplicates;
        continue;
      }
      const uint64_t gap_from = m->max_seq + 1;
      m->max_seq = e.seq;
      ids[i][ei] = ++w.last_id;
      w.cids.try_emplace(b.containers[e.container], 0);
      if (e.seq > gap_from) {
        gaps.push_back({&b.node, m->run_id, ids[i][ei], gap_from, e.seq - 1});
        w.missing += e.seq - gap_from;
      }
      ++r.stored;
    }
    w.stored += r.stored;
    w.duplicates += r.duplicates;
  }

  // 3. Container keys: one upsert per node, which also refreshes their age for retention.
  for (auto& [node, w] : nodes) {
    if (w.cids.empty()) continue;
    std::vector<std::string_view> names;
    for (const auto& [id, _] : w.cids) names.push_back(id);
    const std::string arr = PgTextArray(names);
    const PgParam p[] = {{node}, {arr}, {now_s}};
    auto r = c->ExecParams("upsert container ids",
                           "INSERT INTO container_ids(node, id, updated_ns) SELECT $1, u, $3 "
                           "FROM unnest($2::text[]) AS u ORDER BY u ON CONFLICT (id, node) DO "
                           "UPDATE SET updated_ns = EXCLUDED.updated_ns RETURNING cid, id",
                           p);
    if (!r) return fail(r.error());
    for (int row = 0; row < PQntuples(r->get()); ++row) {
      auto it = w.cids.find(PQgetvalue(r->get(), row, 1));
      if (it != w.cids.end()) it->second = PgGetInt(r->get(), row, 0);
    }
    for (const auto& [id, cid] : w.cids) {
      if (cid == 0)
        return fail(Error::Corruption(c->where() + ": upsert container ids: no cid for " + id));
    }
  }

  // 4. The events, by binary COPY (header, rows of 9 fields, trailer).
  std::string copy("PGCOPY\n\377\r\n\0", 11);
  PutBe(&copy, 0, 4);  // flags
  PutBe(&copy, 0, 4);  // header extension
  std::map<int64_t, std::string_view> infos;  // cid -> the commit's latest ContainerInfo
  size_t n_rows = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const PreparedBatch& b = *items[i]->batch;
    const NodeWork& w = nodes[b.node];
    for (size_t ei = 0; ei < b.events.size(); ++ei) {
      if (ids[i][ei] == 0) continue;
      const PreparedEvent& e = b.events[ei];
      const int64_t cid = w.cids.at(b.containers[e.container]);
      PutBe(&copy, 9, 2);
      PutBytesField(&copy, b.node);
      PutInt64Field(&copy, ids[i][ei]);
      PutInt64Field(&copy, marks[i][e.run]->run_id);
      PutInt64Field(&copy, static_cast<int64_t>(e.seq));
      PutInt64Field(&copy, e.time_ns);
      PutInt64Field(&copy, now);
      PutInt64Field(&copy, cid);
      PutBe(&copy, 2, 4);
      PutBe(&copy, static_cast<uint16_t>(e.kind), 2);
      PutBytesField(&copy, b.payload(e));
      if (e.has_info) infos[cid] = b.info(e);
      ++n_rows;
    }
  }
  PutBe(&copy, 0xffff, 2);  // trailer: -1
  if (n_rows > 0) {
    if (auto ok = c->CopyIn("copy events",
                            "COPY events(node, id, run_id, seq, time_ns, stored_ns, cid, kind, "
                            "payload) FROM STDIN (FORMAT binary)",
                            copy);
        !ok)
      return fail(ok.error());
  }
  for (const Gap& g : gaps) {
    const std::string run = std::to_string(g.run_id), from = std::to_string(g.from),
                      to = std::to_string(g.to), after = std::to_string(g.after_id);
    const PgParam p[] = {{*g.node}, {run}, {from}, {to}, {after}, {now_s}};
    auto r = c->ExecParams("insert gap",
                           "INSERT INTO gaps(node, run_id, from_seq, to_seq, after_id, "
                           "stored_ns) VALUES ($1, $2, $3, $4, $5, $6)",
                           p);
    if (!r) return fail(r.error());
  }
  for (const auto& [cid, info] : infos) {
    const std::string cid_s = std::to_string(cid);
    const PgParam p[] = {{cid_s}, {info, true}, {now_s}};
    auto r = c->ExecParams("upsert container",
                           "INSERT INTO containers(cid, info, updated_ns) VALUES ($1, $2, $3) "
                           "ON CONFLICT (cid) DO UPDATE SET info = EXCLUDED.info, "
                           "updated_ns = EXCLUDED.updated_ns",
                           p);
    if (!r) return fail(r.error());
  }

  // 5. Marks and heads raised.
  std::vector<int64_t> run_ids, run_marks, heads;
  std::vector<std::string_view> head_nodes;
  for (const auto& [node, w] : nodes) {
    for (const auto& [_, run] : w.runs) {
      if (run.max_seq == run.was) continue;
      run_ids.push_back(run.run_id);
      run_marks.push_back(static_cast<int64_t>(run.max_seq));
    }
    if (w.last_id != w.was) {
      head_nodes.push_back(node);
      heads.push_back(w.last_id);
    }
  }
  if (!run_ids.empty()) {
    const std::string a = PgIntArray(run_ids), b = PgIntArray(run_marks);
    const PgParam p[] = {{a}, {b}, {now_s}};
    auto r = c->ExecParams("raise run marks",
                           "UPDATE runs AS r SET max_seq = v.m, updated_ns = $3 FROM "
                           "unnest($1::bigint[], $2::bigint[]) AS v(id, m) WHERE r.run_id = v.id",
                           p);
    if (!r) return fail(r.error());
  }
  if (!head_nodes.empty()) {
    const std::string a = PgTextArray(head_nodes), b = PgIntArray(heads);
    const PgParam p[] = {{a}, {b}};
    auto r = c->ExecParams("raise node heads",
                           "UPDATE node_heads AS h SET last_id = v.l FROM "
                           "unnest($1::text[], $2::bigint[]) AS v(n, l) WHERE h.node = v.n",
                           p);
    if (!r) return fail(r.error());
  }

  // 6. Node rows, in sorted order (after every node_heads lock: one order for all).
  for (const auto& [node, row] : node_rows) {
    const NodeState& n = row.state;
    const bool conn_news = row.change != 0;
    const NodeWork* w = nodes.contains(node) ? &nodes.at(node) : nullptr;
    const std::string streams = std::to_string(n.connected_streams),
                      seen = std::to_string(w ? now : n.last_seen_ns),
                      stored_s = std::to_string(w ? w->stored : 0),
                      dups = std::to_string(w ? w->duplicates : 0),
                      start = std::to_string(n.hello.sensor_start_ns),
                      dropped = std::to_string(n.hello.spool_dropped);
    const PgParam p[] = {{node},
                         {streams},
                         {seen},
                         {stored_s},
                         {dups},
                         {n.hello.boot_id},
                         {start},
                         {n.hello.sensor_version},
                         {n.hello.kernel_version},
                         {n.hello.audit_mode},
                         {n.hello.fanotify_mode},
                         {dropped},
                         {n.hello.peer},
                         {conn_news ? "true" : "false"}};
    auto r = c->ExecParams("upsert node " + node, kUpsertNode, p);
    if (!r) return fail(r.error());
  }

  if (auto ok = c->Run("commit ingest", "COMMIT"); !ok) return fail(ok.error());

  // Committed: memory follows.
  {
    MutexLock lk(mu_);
    for (const auto& [node, row] : node_rows) {
      // A change made while this commit ran stays to be written.
      auto d = dirty_nodes_.find(node);
      if (row.change != 0 && d != dirty_nodes_.end() && d->second == row.change)
        dirty_nodes_.erase(d);
    }
    for (const auto& [node, w] : nodes) {
      NodeState& n = nodes_[node];
      n.node = node;
      n.events_stored += w.stored;
      n.duplicates += w.duplicates;
      n.events_missing += w.missing;
      n.last_seen_ns = now;
    }
  }
  for (const auto& [node, w] : nodes) {
    if (w.last_id != w.was) stored->heads[node] = {w.was, w.last_id};
  }
  if (feed) {
    for (size_t i = 0; i < items.size(); ++i) {
      if ((*results)[i].stored > 0) stored->batches.push_back({items[i]->batch, std::move(ids[i]), now});
    }
  }
  return {};
}

Result<uint64_t> PgEventStore::EnforceRetention(int64_t now_ns) {
  if (opt_.retention_age.count() == 0) return 0;
  MutexLock lk(conn_mu_);
  if (conn_ == nullptr || !conn_->connected()) {
    if (auto ok = Connect(); !ok) return std::unexpected(ok.error());
  }
  PgConn* c = conn_.get();
  // Retention deletes what every collector stored: never by a clock ahead of the database
  // server's (one collector whose clock runs a year ahead would drop every partition).
  auto server = c->Exec("read the server's clock", std::string("SELECT ") + kPgServerNowNs);
  if (!server) return std::unexpected(server.error());
  now_ns = std::min(now_ns, PgGetInt(server->get(), 0, 0));
  const int64_t cutoff =
      now_ns - std::chrono::duration_cast<std::chrono::nanoseconds>(opt_.retention_age).count();
  auto dropped = DropEventPartitionsBefore(c, cutoff);
  if (!dropped) return std::unexpected(dropped.error());
  // Every partition that ended before the cutoff is gone: the events left were stored on
  // or after the start of the cutoff's day. A run or container key not written since has
  // no events left.
  const std::string bound = std::to_string(EventPartitionOf(cutoff).from_ns);
  const std::string cut = std::to_string(cutoff);
  uint64_t deleted = static_cast<uint64_t>(*dropped);
  if (auto ok = c->Run("begin retention", "BEGIN"); !ok) return std::unexpected(ok.error());
  auto body = [&]() -> Result<> {
    // The oldest alert's id, or every id when none is left.
    const std::string oldest_alert =
        "(SELECT coalesce(min(id), 9223372036854775807) FROM alerts)";
    const std::pair<std::string, const std::string*> steps[] = {
        {"DELETE FROM runs WHERE updated_ns < $1", &bound},
        {"DELETE FROM containers WHERE cid IN (SELECT cid FROM container_ids WHERE "
         "updated_ns < $1)",
         &bound},
        {"DELETE FROM container_ids WHERE updated_ns < $1", &bound},
        {"DELETE FROM gaps WHERE stored_ns < $1", &cut},
        // Alerts age out as on SQLite: stored before the cutoff (the collectors' clock), their
        // outbox rows and counted repeats with them (a summary is delivered as -id): those
        // of ids below the oldest alert left, by range on the tables' alert_id indexes, not
        // a scan of them every minute on the writer's connection.
        {"DELETE FROM alerts WHERE stored_ns < $1", &cut},
        {"DELETE FROM deliveries WHERE alert_id < " + oldest_alert + " AND alert_id > -" +
             oldest_alert,
         nullptr},
        {"DELETE FROM alert_repeats WHERE alert_id < " + oldest_alert, nullptr},
        {"DELETE FROM inventories WHERE taken_ns < $1", &cut},
        {"DELETE FROM allowed_drift WHERE last_ns < $1", &cut},
    };
    for (const auto& [sql, v] : steps) {
      const PgParam p[] = {{v ? std::string_view(*v) : std::string_view()}};
      auto r = c->ExecParams(std::string("retention: ") + sql, sql,
                             std::span<const PgParam>(p, v ? 1 : 0));
      if (!r) return std::unexpected(r.error());
      deleted += std::strtoull(PQcmdTuples(r->get()), nullptr, 10);
    }
    return {};
  };
  if (auto ok = body(); !ok) {
    if (c->connected()) (void)c->Run("roll retention back", "ROLLBACK");
    return std::unexpected(ok.error());
  }
  if (auto ok = c->Run("commit retention", "COMMIT"); !ok) return std::unexpected(ok.error());
  return deleted;
}

}  // namespace driftwatch
