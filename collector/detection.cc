#include "collector/detection.h"

#include <algorithm>
#include <list>
#include <pthread.h>

#include <cstdio>

#include <google/protobuf/arena.h>

#include <unistd.h>

#include "lib/alerts/pg_alert_store.h"
#include "lib/base/clock.h"
#include "lib/base/log.h"
#include "lib/rules/rule_loader.h"
#include "lib/store/pg_conn.h"
#include "lib/store/pg_event_reader.h"
#include "lib/store/pg_lease.h"

namespace driftwatch::collector {
namespace {

constexpr const char* kBlindWindowRule = "Sensor blind window";
constexpr const char* kNotEvaluatedRule = "Event not evaluated";

// The LossCounters fields, by name, for growth checks and alert fields.
struct LossField {
  const char* name;
  uint64_t (v1::LossCounters::*get)() const;
};
constexpr LossField kLossFields[] = {
    {"kernel_lost", &v1::LossCounters::kernel_lost},
    {"socket_enobufs", &v1::LossCounters::socket_enobufs},
    {"queue_drops", &v1::LossCounters::queue_drops},
    {"reassembly_evictions", &v1::LossCounters::reassembly_evictions},
    {"fanotify_overflows", &v1::LossCounters::fanotify_overflows},
    {"hash_skipped", &v1::LossCounters::hash_skipped},
    {"spool_dropped", &v1::LossCounters::spool_dropped},
    {"spool_append_failures", &v1::LossCounters::spool_append_failures},
    {"encode_failures", &v1::LossCounters::encode_failures},
    {"hash_queue_full", &v1::LossCounters::hash_queue_full},
};

// A sensor without lifetime totals (older version): this run's counters stand in for them.
v1::LossCounters LossesOf(const v1::SensorStatus& s) {
  if (s.has_lifetime()) return s.lifetime();
  v1::LossCounters l;
  l.set_kernel_lost(s.kernel_lost());
  l.set_socket_enobufs(s.socket_enobufs());
  l.set_queue_drops(s.queue_drops());
  l.set_reassembly_evictions(s.reassembly_evictions());
  l.set_fanotify_overflows(s.fanotify_overflows());
  l.set_hash_skipped(s.hash_skipped());
  l.set_spool_dropped(s.spool_dropped());
  l.set_spool_append_failures(s.spool_append_failures());
  l.set_encode_failures(s.encode_failures());
  l.set_hash_queue_full(s.hash_queue_full());
  return l;
}

Alert InternalAlert(const std::string& rule, const std::string& node, int64_t time_ns,
                    std::string key, std::string message) {
  Alert a;
  a.time_ns = time_ns;
  a.rule = rule;
  a.priority = Priority::kCritical;
  a.source = "internal";
  a.hostname = node;
  a.node = node;
  a.container_id = "host";
  a.event_key = std::move(key);
  a.message = std::move(message);
  a.tags = {"driftwatch", "sensor_health"};
  a.output_fields.emplace_back("sensor.node", AlertField::String(node));
  return a;
}

}  // namespace

// One commit's batches of a shard's nodes: the rows (after, head] of those nodes.
struct Detection::FeedEntry {
  int64_t after = 0, head = 0;
  std::vector<CommittedBatch> batches;
  size_t bytes = 0;
};

// PostgreSQL: a node this collector holds the lease of, with its own correlation state (a
// node that goes to another collector takes its state with it: dropped here).
struct Detection::PgNode {
  Lease lease;
  std::unique_ptr<Detector> detector;
  int64_t cursor = 0;  // ids up to here done (committed, or in the shard's pending commit)
  int64_t head = 0;    // the highest id known committed
};

// From the lease thread to a shard.
struct Detection::LeaseChange {
  enum Kind { kTake, kLost, kGiveBack } kind = kTake;
  Lease lease;
};

struct Detection::Shard {
  size_t index = 0;
  std::unique_ptr<Detector> detector;  // SQLite: every node's; PostgreSQL: none (PgNode's)
  std::unique_ptr<EventScanner> scanner;
  std::unique_ptr<DetectionStore> store;
  std::unique_ptr<PgEventScanner> pg_scanner;
  std::map<std::string, PgNode> pg_nodes;  // PostgreSQL: the leased nodes of this shard
  std::shared_ptr<const ImagePolicy> image_policy;     // PostgreSQL: what a new node's
  std::shared_ptr<const PreventPolicy> drift_policy;   // Detector starts with
  std::atomic<int64_t> pg_lag{0};          // their events committed, not evaluated yet
  std::map<std::string, int64_t> cursors;    // node -> rows up to here done
  std::map<std::string, int64_t> warm_from;  // node -> first row replayed at start
  int64_t default_cursor = 0;                // nodes without a cursor row
  int64_t pos = 0;                           // every row <= pos looked at
  std::atomic<int64_t> committed{0};         // every row <= committed done and committed
  std::atomic<bool> failing{false};          // the last commit failed
  std::map<std::string, v1::Hello> lifetime;  // node -> highest totals seen, and their run
  std::map<std::string, int64_t> last_report_ns;     // node -> newest status/Hello time
  std::map<std::string, uint64_t> quota_seen;        // node -> quota evictions reported
  std::map<std::string, int64_t> quota_alerted;      // node -> 10-min bucket alerted + 1
  std::set<std::pair<int64_t, int64_t>> open_aggregates;  // (open_until_ns, alert id)
  // Alerts stored without their container's metadata, not sent yet, in commit order (and so
  // by `until`: every wait is metadata_wait).
  struct HeldAlert {
    int64_t id = 0;
    Alert alert;
    std::string json;
    Clock::time_point until;
    // Held again at start: the outbox rows left (its outputs, its summary). Empty: every output.
    std::vector<AlertStore::PendingDelivery> rows;
    size_t bytes = 0;  // counted in held_bytes
  };
  std::list<HeldAlert> held;
  // About what `held` takes: the JSON twice (as text and as the Alert). An alert carries a
  // process's arguments, up to the event cap: bounded in bytes, not only in number.
  size_t held_bytes = 0;
  std::map<std::pair<std::string, std::string>, size_t> held_containers;  // (node, id) -> held

  Mutex mu;
  CondVar cv;
  std::shared_ptr<const RuleSet> new_rules DW_GUARDED_BY(mu);
  std::shared_ptr<const ImagePolicy> new_policy DW_GUARDED_BY(mu);
  std::shared_ptr<const PreventPolicy> new_drift_policy DW_GUARDED_BY(mu);
  bool reload DW_GUARDED_BY(mu) = false;
  std::deque<std::pair<std::string, v1::Hello>> hellos DW_GUARDED_BY(mu);
  std::deque<LeaseChange> lease_changes DW_GUARDED_BY(mu);
  bool woken DW_GUARDED_BY(mu) = false;  // PostgreSQL: a commit of this collector came
  std::deque<FeedEntry> feed DW_GUARDED_BY(mu);
  std::atomic<size_t> feed_bytes{0};  // of `feed`; changed under mu, read by Admit
  std::thread thread;
};

std::expected<std::shared_ptr<const RuleSet>, std::string> Detection::LoadRules() const {
  const std::vector<std::string> files = RuleFilesToLoad(opt_.rule_files, opt_.no_shipped_rules);
  if (files.empty()) return std::unexpected("rules not loaded: no rule files (--no-shipped-rules needs --rules)");
  auto r = RuleSet::Load(files);
  if (!r) {
    std::string msg = "rules not loaded:";
    for (const auto& d : r.error()) msg += "\n  " + d.ToString();
    return std::unexpected(msg);
  }
  for (const auto& d : (*r)->warnings()) LogWarn("%s\n", d.ToString().c_str());
  return std::shared_ptr<const RuleSet>(std::move(*r));
}

std::vector<std::string> Detection::RulesSummary() const {
  MutexLock lk(mu_);
  return rules_summary_;
}

std::expected<std::shared_ptr<const ImagePolicy>, std::string> Detection::LoadPolicy() const {
  if (opt_.approved_images.empty()) return std::shared_ptr<const ImagePolicy>();
  auto p = ImagePolicy::LoadFiles(opt_.approved_images);
  if (!p) return std::unexpected("approved images: " + p.error().message());
  for (const auto& w : p->warnings()) LogWarn("approved images: %s\n", w.c_str());
  return std::make_shared<const ImagePolicy>(std::move(*p));
}

std::expected<std::shared_ptr<const PreventPolicy>, std::string> Detection::LoadDriftPolicy()
    const {
  if (opt_.drift_policy.empty()) return std::shared_ptr<const PreventPolicy>();
  auto p = PreventPolicy::Load(opt_.drift_policy);
  if (!p) return std::unexpected("drift policy: " + p.error().message());
  return std::make_shared<const PreventPolicy>(std::move(*p));
}

size_t Detection::ShardOf(const std::string& node) const {
  return std::hash<std::string>{}(node) % shards_.size();
}

std::expected<std::unique_ptr<Detection>, std::string> Detection::Start(
    const DetectionOptions& opt, int64_t head) {
  std::unique_ptr<Detection> d(new Detection(opt));
  if (d->opt_.shards == 0) d->opt_.shards = 1;
  d->head_ = head;
  auto rules = d->LoadRules();
  if (!rules) return std::unexpected(rules.error());
  for (const std::string& name : opt.respond_rules) {
    const auto all = (*rules)->rules();
    if (std::none_of(all.begin(), all.end(), [&](const Rule* r) { return r->name == name; }))
      return std::unexpected("--respond-rules " + name + ": no rule of that name is loaded");
  }
  auto policy = d->LoadPolicy();
  if (!policy) return std::unexpected(policy.error());
  auto drift_policy = d->LoadDriftPolicy();
  if (!drift_policy) return std::unexpected(drift_policy.error());
  for (const auto& path : opt.outputs) {
    auto o = StreamOutput::Open(path);
    if (!o) return std::unexpected("alert output " + path + ": " + o.error().message());
    d->outputs_.emplace_back(path == "-" ? "stdout" : "file:" + path, std::move(*o));
  }
  for (const auto& url : opt.webhooks) {
    WebhookOptions wo;
    wo.url = url;
    wo.ca_file = opt.webhook_ca;
    auto w = WebhookOutput::Create(wo);
    if (!w) return std::unexpected("webhook " + url + ": " + w.error().message());
    (*w)->Start();
    d->outputs_.emplace_back("webhook:" + url, std::move(*w));
  }
  for (const auto& [name, o] : d->outputs_) d->output_names_.push_back(name);
  d->rules_loaded_ = (*rules)->active_count();
  d->rules_inactive_ = (*rules)->inactive_count();
  {
    MutexLock lk(d->mu_);
    d->rules_summary_ = (*rules)->Summary(3);
  }

  d->pg_ = IsPgUri(opt.db);
  if (d->pg_) {
    if (d->opt_.lease_owner.empty())
      return std::unexpected("a PostgreSQL store needs this collector's lease owner name");
    if (d->opt_.baselines) {
      // The baselines' tables are SQLite's: on PostgreSQL each collector would learn only
      // its own nodes' share of an image. Said, not hidden.
      LogWarn("baselines: off (learned baselines need the SQLite store for now)\n");
      d->opt_.baselines = false;
    }
    auto hk = PgAlertStore::Open(opt.db, d->opt_.lease_owner);
    if (!hk) return std::unexpected("alerts in " + RedactPgUri(opt.db) + ": " + hk.error().message());
    d->hk_store_ = std::move(*hk);
    if (auto ok = d->WaitOwnerFree(); !ok) return std::unexpected(ok.error().message());
    for (size_t i = 0; i < d->opt_.shards; ++i) {
      auto s = std::make_unique<Shard>();
      s->index = i;
      // Holds the rules and policies a newly leased node's Detector starts with.
      s->detector = std::make_unique<Detector>(*rules);
      s->image_policy = *policy;
      s->drift_policy = *drift_policy;
      auto sc = PgEventScanner::Open(opt.db);
      if (!sc) return std::unexpected(sc.error().message());
      s->pg_scanner = std::move(*sc);
      auto st = PgAlertStore::Open(opt.db, d->opt_.lease_owner);
      if (!st) return std::unexpected("alerts in " + RedactPgUri(opt.db) + ": " + st.error().message());
      s->store = std::move(*st);
      d->shards_.push_back(std::move(s));
    }
    LogInfo("detection: sharing %s as %s (node leases of %lld ms)\n", RedactPgUri(opt.db).c_str(),
            d->opt_.lease_owner.c_str(), static_cast<long long>(d->opt_.lease_ttl.count()));
    for (auto& s : d->shards_)
      s->thread = std::thread([p = d.get(), s = s.get()] { p->RunShard(s); });
    d->housekeeping_ = std::thread([p = d.get()] { p->Housekeeping(); });
    d->leases_ = std::thread([p = d.get()] { p->RunLeases(); });
    return d;
  }

  auto hk = AlertStore::Open(opt.db, opt.busy_timeout);
  if (!hk) return std::unexpected("alerts table in " + opt.db + ": " + hk.error().message());
  d->hk_store_ = std::move(*hk);
  if (opt.baselines) {
    auto bs = BaselineStore::Open(opt.db, /*writable=*/true, opt.busy_timeout);
    if (!bs) return std::unexpected("baselines in " + opt.db + ": " + bs.error().message());
    d->baseline_store_ = std::move(*bs);
    auto last = d->baseline_store_->LastEdit();
    std::vector<BaselineHeader> headers;
    std::vector<BaselineItem> items;
    Result<> loaded = last ? d->baseline_store_->Load(true, {}, &headers, &items)
                           : Result<>(std::unexpected(last.error()));
    if (!loaded) return std::unexpected("baselines in " + opt.db + ": " + loaded.error().message());
    d->baseline_edit_ = *last;
    d->baselines_ = std::make_unique<Baselines>(opt.baseline);
    d->baselines_->Load(true, {}, headers, items);
    LogInfo("baselines: %zu loaded (%zu items), learning %lld s from each image's first event\n",
            headers.size(), items.size(),
            static_cast<long long>(
                std::chrono::duration_cast<std::chrono::seconds>(opt.baseline.learn).count()));
  }
  auto open_aggs = d->hk_store_->OpenAggregates();
  if (!open_aggs) return std::unexpected(opt.db + ": " + open_aggs.error().message());
  auto losses = d->hk_store_->NodeLosses();
  if (!losses) return std::unexpected(opt.db + ": " + losses.error().message());
  auto probe = EventScanner::Open(opt.db);
  if (!probe) return std::unexpected(probe.error().message());
  auto cursors = (*probe)->Cursors();
  if (!cursors) return std::unexpected(opt.db + ": " + cursors.error().message());
  const int64_t default_cursor = cursors->contains("") ? cursors->at("") : 0;

  for (size_t i = 0; i < d->opt_.shards; ++i) {
    auto s = std::make_unique<Shard>();
    s->index = i;
    s->detector = std::make_unique<Detector>(*rules);
    if (*policy) s->detector->SetImagePolicy(*policy);
    s->detector->SetDriftPolicy(*drift_policy);
    auto sc = EventScanner::Open(opt.db);
    if (!sc) return std::unexpected(sc.error().message());
    s->scanner = std::move(*sc);
    auto st = AlertStore::Open(opt.db, opt.busy_timeout);
    if (!st) return std::unexpected("alerts table in " + opt.db + ": " + st.error().message());
    s->store = std::move(*st);
    s->default_cursor = default_cursor;
    d->shards_.push_back(std::move(s));
  }
  // Each node's cursor, and where its correlation history starts.
  for (auto& s : d->shards_) s->pos = default_cursor;
  for (const auto& [node, rowid] : *cursors) {
    if (node.empty()) continue;
    Shard* s = d->shards_[d->ShardOf(node)].get();
    s->cursors[node] = rowid;
    int64_t from = rowid + 1;
    auto t = (*probe)->TimeOf(rowid);
    if (!t) return std::unexpected(opt.db + ": " + t.error().message());
    if (*t && opt.warmup.count() > 0) {
      auto w = (*probe)->FirstRowidAtOrAfter(
          **t - std::chrono::duration_cast<std::chrono::nanoseconds>(opt.warmup).count());
      if (!w) return std::unexpected(opt.db + ": " + w.error().message());
      if (*w > 0) from = std::max(*w, rowid - opt.warmup_max_events + 1);
    }
    s->warm_from[node] = from;
    s->pos = std::min(s->pos, from - 1);
  }
  // Aggregates a previous run left open: counted in again, closed by their shard's timer.
  for (const AlertStore::OpenAggregate& a : *open_aggs)
    d->shards_[d->ShardOf(a.node)]->open_aggregates.emplace(a.open_until_ns, a.id);
  for (const auto& [node, blob] : *losses) {
    Shard* s = d->shards_[d->ShardOf(node)].get();
    v1::Hello known;  // the totals and the sensor run that reported them
    if (known.ParseFromString(blob)) s->lifetime[node] = known;
  }
  for (auto& s : d->shards_) s->committed = std::min<int64_t>(s->pos, head);
  // Correlation history: the latest info of every container first.
  Detector::Sink discard = [](Alert&&) {};
  auto infos = (*probe)->ContainerInfos([&](const std::string& node, const std::string& id,
                                            std::string_view info) {
    v1::Event ev;
    if (!ev.mutable_container()->ParseFromArray(info.data(), static_cast<int>(info.size())))
      return;
    ev.mutable_id()->set_node(node);
    ev.set_container_id(id);
    d->shards_[d->ShardOf(node)]->detector->OnEvent(node, ev, discard);
  });
  if (!infos) return std::unexpected(opt.db + ": " + infos.error().message());

  // The outbox: alerts a previous run stored but did not finish delivering.
  auto undelivered = d->hk_store_->Undelivered();
  if (!undelivered) return std::unexpected(opt.db + ": " + undelivered.error().message());
  if (const size_t n = d->SendOutbox(d->CompleteUndelivered(std::move(*undelivered))); n > 0)
    LogInfo("%zu alert deliveries left over from the last run sent again\n", n);

  for (auto& s : d->shards_) s->thread = std::thread([p = d.get(), s = s.get()] { p->RunShard(s); });
  d->housekeeping_ = std::thread([p = d.get()] { p->Housekeeping(); });
  return d;
}

Detection::Detection(DetectionOptions opt) : opt_(std::move(opt)) {}
Detection::~Detection() { Stop(); }

void Detection::Stop() {
  if (stop_.exchange(true)) return;
  for (auto& s : shards_) {
    {
      MutexLock lk(s->mu);
    }
    s->cv.NotifyAll();
  }
  for (auto& s : shards_)
    if (s->thread.joinable()) s->thread.join();
  hk_cv_.NotifyAll();
  if (housekeeping_.joinable()) housekeeping_.join();
  // The leases go after the shards' last commits (each checks its node's lease).
  {
    MutexLock lk(mu_);
    stop_leases_ = true;
  }
  lease_cv_.NotifyAll();
  if (leases_.joinable()) leases_.join();
  for (auto& [name, o] : outputs_)
    if (auto* w = dynamic_cast<WebhookOutput*>(o.get())) w->Drain(std::chrono::seconds(5));
  std::deque<std::function<void()>> held;
  std::vector<std::pair<int64_t, std::string>> done;
  {
    MutexLock lk(mu_);
    held.swap(held_);
    done.swap(delivered_);
  }
  for (auto& f : held) f();
  if (hk_store_) {
    if (auto ok = hk_store_->MarkDelivered(done); !ok)
      LogWarn("outbox: %s (sent again at the next start)\n", ok.error().c_str());
  }
}

void Detection::Notify(int64_t head) {
  if (pg_) {
    for (auto& s : shards_) {
      {
        MutexLock lk(s->mu);
        s->woken = true;
      }
      s->cv.NotifyOne();
    }
    return;
  }
  int64_t prev = head_.load();
  while (head > prev && !head_.compare_exchange_weak(prev, head)) {
  }
  for (auto& s : shards_) s->cv.NotifyOne();
}

void Detection::Notify(StoreCommit commit) {
  if (opt_.feed_max_bytes > 0 && !shards_.empty()) {
    std::vector<FeedEntry> to(shards_.size());
    for (CommittedBatch& b : commit.batches) {
      FeedEntry& e = to[ShardOf(b.batch->node)];
      e.bytes += b.batch->MemoryBytes() + b.rowids.capacity() * sizeof(int64_t);
      e.batches.push_back(std::move(b));
    }
    const size_t bound = opt_.feed_max_bytes / shards_.size();
    for (size_t i = 0; i < shards_.size(); ++i) {
      // Every shard gets the entry, also one without batches: it tells the shard that no row
      // of (after, head] is its own, so it moves on without reading the store.
      to[i].after = commit.after;
      to[i].head = commit.head;
      to[i].bytes += sizeof(FeedEntry);
      Shard* s = shards_[i].get();
      MutexLock lk(s->mu);
      s->feed_bytes += to[i].bytes;
      // A shard that has not taken the last entry yet gets this one with it, up to a step's
      // worth of bytes (its cursor commits wait for the step).
      if (!s->feed.empty() && s->feed.back().head == to[i].after &&
          s->feed.back().bytes < (1 << 20)) {
        FeedEntry& back = s->feed.back();
        back.head = to[i].head;
        back.bytes += to[i].bytes;
        for (CommittedBatch& b : to[i].batches) back.batches.push_back(std::move(b));
      } else {
        s->feed.push_back(std::move(to[i]));
      }
      // Over the bound (the shard is behind): the oldest go; the shard reads them back.
      while (s->feed_bytes > bound && !s->feed.empty()) {
        s->feed_bytes -= s->feed.front().bytes;
        s->feed.pop_front();
        ++counters_.feed_overflows;
      }
    }
  }
  Notify(commit.head);
}

void Detection::NotifyNodes(const std::vector<std::string>& nodes) {
  bool fresh = false;
  {
    MutexLock lk(mu_);
    for (const std::string& n : nodes) {
      // Bounded: a fleet's node names; past the bound new nodes wait for the next tick.
      if (seen_nodes_.size() < 100000 && seen_nodes_.insert(n).second) fresh = true;
    }
    if (fresh) new_nodes_ = true;
  }
  if (fresh) lease_cv_.NotifyAll();
  Notify(0);
}

int64_t Detection::lag() const {
  if (pg_) {
    int64_t sum = 0;
    for (const auto& s : shards_) sum += s->pg_lag.load();
    return sum;
  }
  const int64_t head = head_.load();
  int64_t low = head;
  for (const auto& s : shards_) low = std::min(low, s->committed.load());
  return head - low;
}

int64_t Detection::floor() const {
  int64_t low = head_.load();
  for (const auto& s : shards_) low = std::min(low, s->committed.load());
  return low + 1;
}

void Detection::ReleaseAll() {
  holding_ = false;
  std::deque<std::function<void()>> held;
  {
    MutexLock lk(mu_);
    held.swap(held_);
  }
  for (auto& f : held) f();
}

bool Detection::Behind(int percent) const {
  if (lag() > opt_.max_lag_events * percent / 100) return true;
  // A shard whose feed fills up would soon read rows back from the store, which costs more
  // than taking them from memory: ingest waits for it instead.
  const size_t bound = shards_.empty() ? 0 : opt_.feed_max_bytes / shards_.size();
  for (const auto& s : shards_)
    if (s->feed_bytes.load() > bound * percent / 100 * 3 / 4) return true;
  return false;
}

bool Detection::Admit(std::function<void()> release) {
  if (!Behind(100) || stop_ || !holding_) return true;
  {
    MutexLock lk(mu_);
    held_.push_back(std::move(release));
  }
  ++counters_.held_acks;
  return false;
}

void Detection::MaybeRelease() {
  // A little below the bound, so that acks do not flap one batch at a time.
  if (Behind(75) && !stop_ && holding_) return;
  std::deque<std::function<void()>> held;
  {
    MutexLock lk(mu_);
    held.swap(held_);
  }
  for (auto& f : held) f();
}

void Detection::OnHello(const std::string& node, const v1::Hello& hello) {
  if (shards_.empty()) return;
  Shard* s = shards_[ShardOf(node)].get();
  {
    MutexLock lk(s->mu);
    s->hellos.emplace_back(node, hello);
  }
  s->cv.NotifyOne();
}

std::expected<std::vector<std::string>, std::string> Detection::Reload() {
  auto rules = LoadRules();
  auto policy = rules ? LoadPolicy()
                      : std::expected<std::shared_ptr<const ImagePolicy>, std::string>();
  auto drift_policy = rules && policy
                          ? LoadDriftPolicy()
                          : std::expected<std::shared_ptr<const PreventPolicy>, std::string>();
  if (!rules || !policy || !drift_policy) {
    ++counters_.reload_failures;
    return std::unexpected((!rules ? rules.error() : !policy ? policy.error() : drift_policy.error()) +
                           "\nkeeping the rules and policies loaded before");
  }
  std::vector<std::string> summary = (*rules)->Summary(3);
  const size_t n = (*rules)->active_count(), inactive = (*rules)->inactive_count();
  for (auto& s : shards_) {
    {
      MutexLock lk(s->mu);
      s->new_rules = *rules;
      s->new_policy = *policy;
      s->new_drift_policy = *drift_policy;
      s->reload = true;
    }
    s->cv.NotifyOne();
  }
  ++counters_.reloads;
  rules_loaded_ = n;
  rules_inactive_ = inactive;
  {
    MutexLock lk(mu_);
    rules_summary_ = summary;
  }
  return summary;
}

std::map<std::string, uint64_t> Detection::AlertsByRule() const {
  MutexLock lk(mu_);
  return by_rule_;
}

std::map<std::string, NodeLossView> Detection::NodeLosses() const {
  MutexLock lk(mu_);
  return losses_;
}

std::vector<std::pair<std::string, OutputStats>> Detection::OutputStatsList() const {
  std::vector<std::pair<std::string, OutputStats>> out;
  for (const auto& [name, o] : outputs_) out.emplace_back(name, o->Stats());
  return out;
}

std::string Detection::Unhealthy() const {
  std::string why;
  for (const auto& s : shards_) {
    if (s->failing) {
      why += "detection cannot commit to the store; ";
      break;
    }
  }
  if (const int64_t l = lag(); l > opt_.max_lag_events)
    why += "detection lags " + std::to_string(l) + " events behind the store; ";
  return why;
}

void Detection::Deliver(AlertOutput* o, const std::string& output, int64_t alert_id,
                        std::string_view json) {
  {
    MutexLock lk(mu_);
    in_flight_.emplace(alert_id, output);
  }
  Send(o, output, alert_id, json);
}

void Detection::Release(int64_t id, const std::vector<AlertStore::PendingDelivery>& rows) {
  std::vector<std::pair<AlertOutput*, const AlertStore::PendingDelivery*>> go;
  {
    MutexLock lk(mu_);
    for (const AlertStore::PendingDelivery& r : rows) {
      auto o = std::find_if(outputs_.begin(), outputs_.end(),
                            [&](const auto& p) { return p.first == r.output; });
      if (o == outputs_.end()) {  // an output of the last run's (held again at start)
        LogWarn("alert %lld was not delivered to %s, which is no longer configured: dropped\n",
                static_cast<long long>(r.alert_id), r.output.c_str());
        delivered_.emplace_back(r.alert_id, r.output);
        continue;
      }
      in_flight_.emplace(r.alert_id, r.output);
      go.emplace_back(o->second.get(), &r);
    }
    held_ids_.erase(id);
  }
  for (const auto& [o, r] : go) Send(o, r->output, r->alert_id, r->json);
}

void Detection::Send(AlertOutput* o, const std::string& output, int64_t alert_id,
                     std::string_view json) {
  o->Emit(json, [this, alert_id, output](Delivery r) {
    MutexLock lk(mu_);
    in_flight_.erase({alert_id, output});
    // Dropped (queue full, output stopping): stays in the outbox for the next sweep.
    if (r != Delivery::kDropped) delivered_.emplace_back(alert_id, output);
  });
}

void Detection::Emit(int64_t alert_id, const std::string& json) {
  for (auto& [name, o] : outputs_) Deliver(o.get(), name, alert_id, json);
}

size_t Detection::SendOutbox(const std::vector<AlertStore::PendingDelivery>& rows) {
  size_t sent = 0;
  for (const auto& u : rows) {
    {
      MutexLock lk(mu_);
      if (in_flight_.contains({u.alert_id, u.output})) continue;
      // Waiting for its container's metadata (a summary goes after its first alert).
      if (held_ids_.contains(u.alert_id < 0 ? -u.alert_id : u.alert_id)) continue;
      // Delivered, not marked yet.
      if (std::find(delivered_.begin(), delivered_.end(), std::make_pair(u.alert_id, u.output)) !=
          delivered_.end())
        continue;
    }
    auto o = std::find_if(outputs_.begin(), outputs_.end(),
                          [&](const auto& p) { return p.first == u.output; });
    if (o == outputs_.end()) {
      LogWarn("alert %lld was not delivered to %s, which is no longer configured: dropped\n",
              static_cast<long long>(u.alert_id), u.output.c_str());
      MutexLock lk(mu_);
      delivered_.emplace_back(u.alert_id, u.output);
      continue;
    }
    ++counters_.redelivered;
    ++sent;
    Deliver(o->second.get(), u.output, u.alert_id, u.json);
  }
  return sent;
}

namespace {
size_t HeldBytes(const std::string& json) { return 2 * json.size() + 256; }
}  // namespace

std::vector<AlertStore::PendingDelivery> Detection::CompleteUndelivered(
    std::vector<AlertStore::PendingDelivery> rows) {
  if (opt_.metadata_wait.count() <= 0 || rows.empty()) return rows;
  // Rows by alert (an alert's rows are adjacent: ordered by abs(alert_id), its summary last).
  std::vector<AlertStore::PendingDelivery> send;
  std::deque<Alert> filled;  // what the updates point to
  std::vector<AlertStore::AlertUpdate> updates;
  std::vector<std::vector<AlertStore::PendingDelivery>> updated_rows;
  const auto until = Clock::now() + opt_.metadata_wait;
  for (size_t i = 0; i < rows.size();) {
    const int64_t id = std::abs(rows[i].alert_id);
    size_t end = i;
    while (end < rows.size() && std::abs(rows[end].alert_id) == id) ++end;
    std::vector<AlertStore::PendingDelivery> group(std::make_move_iterator(rows.begin() + i),
                                                   std::make_move_iterator(rows.begin() + end));
    i = end;
    const AlertStore::PendingDelivery& p = group.front();
    std::optional<Alert> a;
    // Only a container alert not sent anywhere yet that names neither container nor image, and
    // whose JSON reads back exactly (it is rewritten).
    if (p.alert_id > 0 && !p.container_id.empty() && p.container_id != "host" &&
        p.container_name.empty())
      a = ParseFalcoJson(p.json);
    if (a) {
      a->node = p.node;
      a->container_id = p.container_id;
    }
    if (!a || !MissingContainerMetadata(*a)) {
      for (auto& r : group) send.push_back(std::move(r));
      continue;
    }
    Shard* s = shards_[ShardOf(p.node)].get();
    RuleContext ctx;
    if (s->detector->ContainerContext(p.node, p.container_id, &ctx)) {
      // The rebuilt correlation state knows the container now: completed, sent.
      FillContainerMetadata(ctx, s->detector->rules().get(), &*a);
      filled.push_back(std::move(*a));
      updates.push_back({id, &filled.back(), FalcoJson(filled.back())});
      updated_rows.push_back(std::move(group));
      continue;
    }
    // Not known yet: the same wait as a new alert, in its shard (before its thread starts),
    // within the same bounds (else sent now as it is).
    const size_t bytes = HeldBytes(p.json);
    if (s->held.size() >= std::max<size_t>(opt_.max_held_alerts, 1) ||
        s->held_bytes + bytes > opt_.max_held_bytes) {
      ++counters_.held_overflows;
      ++counters_.metadata_unknown;
      for (auto& r : group) send.push_back(std::move(r));
      continue;
    }
    s->held_containers[{p.node, p.container_id}]++;
    s->held_bytes += bytes;
    s->held.push_back({id, std::move(*a), p.json, until, std::move(group), bytes});
    ++counters_.alerts_held;
    MutexLock lk(mu_);
    held_ids_.insert(id);
  }
  if (updates.empty()) return send;
  if (auto ok = hk_store_->UpdateAlerts(updates); !ok) {
    // Sent as stored: what is delivered stays what the row says.
    LogWarn("alerts completed from their containers' info not rewritten: %s (sent as they "
            "were)\n",
            ok.error().c_str());
    counters_.metadata_unknown += updates.size();
    for (auto& g : updated_rows)
      for (auto& r : g) send.push_back(std::move(r));
    return send;
  }
  for (size_t k = 0; k < updates.size(); ++k) {
    ++(MissingContainerMetadata(*updates[k].alert) ? counters_.metadata_unknown
                                                   : counters_.metadata_filled_late);
    for (AlertStore::PendingDelivery& r : updated_rows[k]) {
      r.json = r.alert_id > 0 ? updates[k].json
                              : AggregateJson(updates[k].json, r.count, r.first_ns, r.last_ns);
      send.push_back(std::move(r));
    }
  }
  LogInfo("%zu alerts left over from the last run completed with their containers' info\n",
          updates.size());
  return send;
}

void Detection::RunShard(Shard* s) {
  // Named, so that top -H and perf tell the shards apart.
  pthread_setname_np(pthread_self(), ("dw-detect-" + std::to_string(s->index)).substr(0, 15).c_str());
  Detector::Sink discard = [](Alert&&) {};
  std::deque<Alert> pending;  // alerts of rows looked at, not committed yet
  std::deque<AllowedMatch> allowed;  // allowed drift of those rows, not committed yet
  std::set<std::string> dirty_losses;
  bool dirty = false;
  // PostgreSQL: the nodes whose cursor or losses the next commit writes (their leases are
  // checked in it), and those a commit found lost (dropped by the loop below).
  std::set<std::string> pg_dirty;
  std::vector<Lease> pg_lost;
  // The correlation state that holds `node`: the shard's (SQLite), the node's (PostgreSQL).
  auto det_of = [&](const std::string& node) -> Detector* {
    if (!pg_) return s->detector.get();
    auto it = s->pg_nodes.find(node);
    return it == s->pg_nodes.end() ? nullptr : it->second.detector.get();
  };
  auto context_of = [&](const std::string& node, const std::string& id, RuleContext* ctx) {
    Detector* d = det_of(node);
    return d && d->ContainerContext(node, id, ctx);
  };
  // Baselines: judged before the rules, by the store's time of the row.
  BaselineChanges baseline_changes;  // decided for rows not committed yet
  const std::string* row_node = nullptr;
  int64_t row_stored_ns = 0;
  Detector::Hook baseline_hook;
  if (baselines_) {
    baseline_hook = [&](RuleContext* ctx) {
      baselines_->Check(ctx, *row_node, row_stored_ns, &baseline_changes);
    };
  }
  auto last_commit = Clock::now();
  // Rows are parsed into an arena that starts over every kArenaRows rows: a parse allocates a
  // dozen strings and sub-messages, and their malloc/free was a quarter of detection's time.
  constexpr int kArenaRows = 256;
  std::vector<char> arena_block(1 << 20);
  google::protobuf::ArenaOptions arena_opt;
  arena_opt.initial_block = arena_block.data();
  arena_opt.initial_block_size = arena_block.size();
  arena_opt.max_block_size = 1 << 20;
  google::protobuf::Arena arena(arena_opt);
  int arena_rows = 0;
  auto new_event = [&]() -> v1::Event& {
    if (++arena_rows == kArenaRows) {
      arena.Reset();
      arena_rows = 0;
    }
    return *google::protobuf::Arena::CreateMessage<v1::Event>(&arena);
  };

  // Loss totals only grow over a node's lifetime, but reports arrive out of order: a Hello
  // tells the present, status events from the spool tell the past. A total lower than the
  // one known is an old report when it comes from the same or an earlier sensor run (it is
  // ignored), and a new loss file when it comes from a later run (counted from zero again).
  auto losses_grew = [&](const std::string& node, const v1::LossCounters& now_l,
                         int64_t run_start, int64_t time_ns, std::string key,
                         const std::string& via) {
    v1::Hello& known = s->lifetime[node];  // losses and the run that reported them
    v1::LossCounters& prev = *known.mutable_losses();
    const bool later_run = run_start > known.sensor_start_ns();
    bool reset = false;
    for (const LossField& f : kLossFields)
      reset |= later_run && (now_l.*f.get)() < (prev.*f.get)();
    std::string what;
    Alert a = InternalAlert(kBlindWindowRule, node, time_ns, std::move(key), "");
    v1::LossCounters next = reset ? v1::LossCounters() : prev;
    const auto* d = next.GetDescriptor();
    const auto* r = next.GetReflection();
    for (const LossField& f : kLossFields) {
      const uint64_t cur = (now_l.*f.get)(), before = (next.*f.get)();
      if (cur <= before) continue;
      r->SetUInt64(&next, d->FindFieldByName(f.name), cur);
      const uint64_t grew = cur - before;
      what += std::string(what.empty() ? "" : ", ") + f.name + " +" + std::to_string(grew);
      a.output_fields.emplace_back(std::string("sensor.loss.") + f.name,
                                   AlertField::Number(static_cast<long long>(grew)));
    }
    prev = next;
    known.set_sensor_start_ns(std::max(known.sensor_start_ns(), run_start));
    dirty_losses.insert(node);
    int64_t& last = s->last_report_ns[node];
    const int64_t from = last;
    last = std::max(last, time_ns);
    if (what.empty()) return;
    if (reset) what += " (the sensor's loss totals started again from zero)";
    a.output_fields.emplace_back("sensor.window.start",
                                 from ? AlertField::String(FormatIsoTime(from)) : AlertField::Null());
    a.output_fields.emplace_back("sensor.window.end", AlertField::String(FormatIsoTime(time_ns)));
    a.output_fields.emplace_back("sensor.report", AlertField::String(via));
    a.message = "Sensor blind window on node " + node + ": " + what + " (" + via + ", " +
                (from ? "since " + FormatIsoTime(from) : std::string("since the sensor's "
                                                                     "previous report")) +
                " until " + FormatIsoTime(time_ns) + "): events the sensor did not see or keep";
    pending.push_back(std::move(a));
  };

  std::vector<int64_t> closing;  // aggregates whose window ended, closed by the next commit
  // Containers with held alerts whose info came in rows not committed yet.
  std::set<std::pair<std::string, std::string>> arrived;
  bool flush_held = false;  // stopping: nothing is held any more
  using HeldIt = std::list<Shard::HeldAlert>::iterator;
  // A held alert goes out: completed or as it was, counted.
  auto send_held = [&](Shard::HeldAlert& h) {
    const bool missing = MissingContainerMetadata(h.alert);
    ++(missing ? counters_.metadata_unknown : counters_.metadata_filled_late);
    std::vector<AlertStore::PendingDelivery> rows = std::move(h.rows);
    if (rows.empty()) {
      for (const std::string& o : output_names_) {
        AlertStore::PendingDelivery r;
        r.alert_id = h.id;
        r.output = o;
        r.json = h.json;
        rows.push_back(std::move(r));
      }
    } else {
      for (AlertStore::PendingDelivery& r : rows) {
        if (r.alert_id > 0) {
          r.json = h.json;
        } else if (!missing) {
          r.json = AggregateJson(h.json, r.count, r.first_ns, r.last_ns);
        }
      }
    }
    Release(h.id, rows);
    --counters_.alerts_held;
  };
  auto drop_held = [&](HeldIt it) {
    s->held_bytes -= it->bytes;
    auto k = s->held_containers.find({it->alert.node, it->alert.container_id});
    if (k != s->held_containers.end() && --k->second == 0) s->held_containers.erase(k);
    s->held.erase(it);
  };
  auto commit = [&]() -> bool {
    AlertStore::DetectionCommit c;
    const RuleSet* rules = s->detector->rules().get();
    // Alerts of containers their node had not reported: completed now when the info came
    // with a later row of this step (the correlator knows it).
    std::vector<char> lacked(pending.size(), 0);
    for (size_t i = 0; i < pending.size(); ++i) {
      Alert& a = pending[i];
      if (!MissingContainerMetadata(a)) continue;
      lacked[i] = 1;
      RuleContext ctx;
      if (context_of(a.node, a.container_id, &ctx))
        FillContainerMetadata(ctx, rules, &a);
    }
    // Held alerts going out with this commit (before its new alerts, so that a container's
    // alerts keep their order): their container's info came (completed, row rewritten),
    // their wait ended, their aggregate closes (its summary follows them), or stopping.
    std::vector<HeldIt> going;
    const auto now_tp = Clock::now();
    for (auto it = s->held.begin(); it != s->held.end(); ++it) {
      const bool go =
          flush_held || it->until <= now_tp ||
          arrived.contains({it->alert.node, it->alert.container_id}) ||
          std::find(closing.begin(), closing.end(), it->id) != closing.end();
      if (!go && arrived.empty() && closing.empty()) break;  // the rest wait longer
      if (!go) continue;
      RuleContext ctx;
      if (context_of(it->alert.node, it->alert.container_id, &ctx)) {
        FillContainerMetadata(ctx, rules, &it->alert);
        it->json = FalcoJson(it->alert);
        c.updates.push_back({it->id, &it->alert, it->json});
      }
      going.push_back(it);
    }
    c.alerts.reserve(pending.size());
    for (const Alert& a : pending)
      c.alerts.push_back({&a, FalcoJson(a), AggregationKey(a, opt_.aggregation)});
    c.allowed.reserve(allowed.size());
    for (const AllowedMatch& m : allowed)
      c.allowed.push_back({&m.alert, m.allowed_by, m.workload, m.image});
    c.aggregate_window = opt_.aggregation.window;
    c.close = closing;
    c.outputs = output_names_;
    if (pg_) {
      for (const std::string& n : pg_dirty) {
        auto it = s->pg_nodes.find(n);
        if (it == s->pg_nodes.end()) continue;
        c.cursors[n] = it->second.cursor;
        c.leases.push_back(it->second.lease);
      }
      c.lease_ttl = opt_.lease_ttl;
    } else {
      c.cursors = s->cursors;
      int64_t low = s->pos;
      for (const auto& o : shards_)
        if (o.get() != s) low = std::min(low, o->committed.load());
      c.cursors[""] = low;
    }
    for (const std::string& n : dirty_losses) c.losses[n] = s->lifetime[n].SerializeAsString();
    if (!baseline_changes.empty()) {
      c.extra = [&](sqlite3* db) { return WriteBaselineChanges(db, baseline_changes, NowNs()); };
    }
    auto backoff = std::chrono::milliseconds(100);
    for (;;) {
      auto done = s->store->CommitDetection(c);
      if (done) {
        s->failing = false;
        for (HeldIt it : going) {
          send_held(*it);
          drop_held(it);
        }
        arrived.clear();
        for (const AlertStore::ClosedAggregate& agg : done->closed) {
          if (agg.summary_json.empty()) continue;  // no repeats: the first alert said it all
          ++counters_.aggregate_summaries;
          Emit(-agg.id, agg.summary_json);
        }
        closing.clear();
        for (size_t i = 0; i < done->alerts.size(); ++i) {
          const AlertStore::StoredResult& r = done->alerts[i];
          if (r.kind == AlertStore::StoredResult::Kind::kRepeat) ++counters_.aggregated;
          if (r.kind != AlertStore::StoredResult::Kind::kNew) continue;  // or a replay
          if (r.open_until_ns != 0) s->open_aggregates.emplace(r.open_until_ns, r.id);
          const Alert& a = pending[i];
          ++counters_.alerts;
          if (a.rule == kBlindWindowRule) ++counters_.blind_windows;
          if (lacked[i]) ++counters_.alerts_without_metadata;
          {
            MutexLock lk(mu_);
            ++by_rule_[a.rule];
            if (a.rule == kBlindWindowRule) {
              NodeLossView& v = losses_[a.node];
              ++v.blind_windows;
              v.last_ns = a.time_ns;
            }
          }
          WantInventory(a);
          Respond(a);
          const bool missing = lacked[i] && MissingContainerMetadata(a);
          if (missing && opt_.metadata_wait.count() > 0 && !flush_held) {
            // Stored; sent when its container's info arrives or the wait ends. Over the
            // bound, the oldest held goes out now as it is.
            const size_t bytes = HeldBytes(c.alerts[i].json);
            while (!s->held.empty() &&
                   (s->held.size() >= std::max<size_t>(opt_.max_held_alerts, 1) ||
                    s->held_bytes + bytes > opt_.max_held_bytes)) {
              ++counters_.held_overflows;
              send_held(s->held.front());
              drop_held(s->held.begin());
            }
            s->held_bytes += bytes;
            s->held.push_back(
                {r.id, a, c.alerts[i].json, Clock::now() + opt_.metadata_wait, {}, bytes});
            ++s->held_containers[{a.node, a.container_id}];
            ++counters_.alerts_held;
            MutexLock lk(mu_);
            held_ids_.insert(r.id);
            continue;
          }
          if (lacked[i]) ++(missing ? counters_.metadata_unknown : counters_.metadata_filled_late);
          Emit(r.id, c.alerts[i].json);
        }
        break;
      }
      if (pg_ && done.error().code() == ErrorCode::kNotFound) {
        // A lease of the commit is another collector's now: nothing of it was stored, and
        // what it evaluated is the new owner's to evaluate. Its nodes are dropped (and taken
        // again, rebuilt from the store, if their leases come back).
        LogWarn("detection: %s: its events are left to the node's owner\n", done.error().c_str());
        pg_lost = c.leases;
        pending.clear();
        allowed.clear();
        dirty_losses.clear();
        pg_dirty.clear();
        dirty = false;
        return true;
      }
      if (!s->failing.exchange(true) || counters_.store_errors % 100 == 0)
        LogWarn("detection: %s (retrying)\n", done.error().c_str());
      ++counters_.store_errors;
      if (stop_) return false;  // the rows are evaluated again after the restart
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
    {
      MutexLock lk(mu_);
      for (const std::string& n : dirty_losses) losses_[n].lifetime = s->lifetime[n].losses();
    }
    counters_.allowed_drift += allowed.size();
    pending.clear();
    allowed.clear();
    dirty_losses.clear();
    baseline_changes.clear();
    pg_dirty.clear();
    dirty = false;
    s->committed = s->pos;
    last_commit = Clock::now();
    MaybeRelease();
    return true;
  };

  // A row that cannot be evaluated is alerted, not passed over.
  auto not_evaluated = [&](const std::string* node, int64_t rowid, uint64_t seq, int64_t time_ns,
                           const char* why) {
    ++counters_.not_evaluated;
    const std::string node_name = node ? *node : std::string();
    pending.push_back(InternalAlert(
        kNotEvaluatedRule, node_name, time_ns,
        // PostgreSQL's ids are per node.
        (pg_ ? "row/" + node_name + "/" : std::string("row/")) + std::to_string(rowid),
        "Event not evaluated: stored event " + std::to_string(rowid) + " of node " +
            (node ? node_name : std::string("<unknown run>")) + " (seq " + std::to_string(seq) +
            ") " + why + ": no rule saw it"));
    pending.back().output_fields.emplace_back("evt.num",
                                              AlertField::Number(static_cast<long long>(rowid)));
  };
  auto evaluate = [&](const std::string& node, const v1::Event& ev, int64_t stored_ns) {
    if (ev.has_status()) {
      losses_grew(node, LossesOf(ev.status()), ev.id().sensor_start_ns(), ev.time_ns(),
                  EventKey(ev), "status event");
    }
    row_node = &node;
    row_stored_ns = stored_ns;
    det_of(node)->OnEvent(node, ev, [&](Alert&& a) { pending.push_back(std::move(a)); },
                         baseline_hook, [&](AllowedMatch&& m) { allowed.push_back(std::move(m)); });
    if (ev.has_container() && !s->held_containers.empty()) {
      const std::string& id =
          ev.container().id().empty() ? ev.container_id() : ev.container().id();
      if (s->held_containers.contains({node, id})) arrived.emplace(node, id);
    }
  };

  // A Hello's loss totals: checked like a status event's, keyed by the run and the totals.
  auto hello_losses = [&](const std::string& node, const v1::Hello& h) {
    uint64_t total = 0;
    for (const LossField& f : kLossFields) total += (h.losses().*f.get)();
    losses_grew(node, h.losses(), h.sensor_start_ns(), NowNs(),
                "hello/" + node + "/" + h.boot_id() + "/" + std::to_string(h.sensor_start_ns()) +
                    "/" + std::to_string(total),
                "Hello");
  };
  auto check_quota = [&](Detector* d) {
    // A node over its detection-state quota lost its own oldest state: its later alerts
    // may miss context (lineage, files written long ago). Said once per node per 10 min.
    for (const auto& [node, n] : d->QuotaEvictions()) {
      uint64_t& seen = s->quota_seen[node];
      if (n == seen) continue;
      const uint64_t grew = n - seen;
      seen = n;
      {
        MutexLock lk(mu_);
        losses_[node].quota_evictions = n;
      }
      const int64_t now = NowNs();
      const int64_t bucket = now / 600'000'000'000LL;
      if (s->quota_alerted[node] == bucket + 1) continue;
      s->quota_alerted[node] = bucket + 1;
      LogWarn("detection: node %s exceeds its detection state quota: %llu processes or "
              "containers of its own evicted\n",
              node.c_str(), static_cast<unsigned long long>(n));
      Alert a = InternalAlert(
          kBlindWindowRule, node, now, "quota/" + node + "/" + std::to_string(bucket),
          "Sensor blind window on node " + node + ": the node sends more state than its "
              "detection quota holds (" + std::to_string(grew) +
              " of its oldest processes or containers forgotten); its alerts may lack "
              "lineage or files written long ago");
      a.output_fields.emplace_back("sensor.loss.quota_evictions",
                                   AlertField::Number(static_cast<long long>(grew)));
      a.output_fields.emplace_back("sensor.report", AlertField::String("detection quota"));
      pending.push_back(std::move(a));
      if (pg_) pg_dirty.insert(node);  // committed under the node's lease
    }
  };
  auto close_due = [&] {
    // Aggregates whose window ended, with or without rows coming.
    for (const int64_t now = NowNs();
         !s->open_aggregates.empty() && s->open_aggregates.begin()->first <= now;) {
      closing.push_back(s->open_aggregates.begin()->second);
      s->open_aggregates.erase(s->open_aggregates.begin());
    }
  };
  // A gap the store saw in a node's sequence numbers: events that never arrived.
  auto gap_alert = [&](const StoredGap& g) {
    const uint64_t missing = g.to_seq - g.from_seq + 1;
    Alert a = InternalAlert(
        kBlindWindowRule, g.node, g.stored_ns, "gap/" + std::to_string(g.id),
        "Sensor blind window on node " + g.node + ": " + std::to_string(missing) +
            " events never arrived (sequence numbers " + std::to_string(g.from_seq) +
            " to " + std::to_string(g.to_seq) + " of run " + std::to_string(g.run_id) +
            "), found missing at " + FormatIsoTime(g.stored_ns));
    a.output_fields.emplace_back("sensor.loss.missing_events",
                                 AlertField::Number(static_cast<long long>(missing)));
    a.output_fields.emplace_back("sensor.loss.seq_from",
                                 AlertField::Number(static_cast<long long>(g.from_seq)));
    a.output_fields.emplace_back("sensor.loss.seq_to",
                                 AlertField::Number(static_cast<long long>(g.to_seq)));
    a.output_fields.emplace_back("sensor.report", AlertField::String("sequence gap"));
    pending.push_back(std::move(a));
  };

  // ---- PostgreSQL: the nodes this collector leases, each read by its own ids. ----
  // Drops a node's state (another collector has it, or is about to). Its held alerts stay in
  // the outbox, for the node's owner to send.
  auto drop_node = [&](const std::string& node, bool give_back) {
    auto it = s->pg_nodes.find(node);
    if (it == s->pg_nodes.end()) return;
    for (auto h = s->held.begin(); h != s->held.end();) {
      auto next = std::next(h);
      if (h->alert.node == node) {
        {
          MutexLock lk(mu_);
          held_ids_.erase(h->id);
        }
        --counters_.alerts_held;
        drop_held(h);
      }
      h = next;
    }
    if (give_back) {
      MutexLock lk(mu_);
      released_.push_back(it->second.lease);
    }
    s->pg_nodes.erase(it);
    s->lifetime.erase(node);
    s->last_report_ns.erase(node);
    pg_dirty.erase(node);
  };
  // Decodes a stored row of `node`; nullptr when it cannot be (`why` says so), and an error
  // when the store could not be read.
  auto decode_pg = [&](const ScannedEvent& e, const char** why) -> Result<v1::Event*> {
    auto run = s->pg_scanner->Run(e.run_id);
    if (!run) return std::unexpected(run.error());
    auto cid = s->pg_scanner->ContainerId(e.cid);
    if (!cid) return std::unexpected(cid.error());
    v1::Event& ev = new_event();
    *why = !*run ? "belongs to no known run" : !*cid ? "has no container id" : "does not parse";
    if (!*run || !*cid || !DecodeStoredEvent(e.payload, **run, e.seq, **cid, &ev))
      return static_cast<v1::Event*>(nullptr);
    return &ev;
  };
  // A node leased: its cursor, its containers' latest info, then `warmup` of its events
  // before the cursor (at most warmup_max_events) replayed without alerting, its loss totals
  // and open aggregates. False when the store could not be read.
  // The loss totals and open aggregates of every node, read once for the nodes taken in one
  // round (a collector coming up takes its whole share at once).
  std::optional<std::map<std::string, std::string>> all_losses;
  std::optional<std::vector<DetectionStore::OpenAggregate>> all_aggregates;
  auto take_node = [&](const Lease& l) -> Result<> {
    auto have = s->pg_nodes.find(l.node);
    if (have != s->pg_nodes.end() && have->second.lease.epoch == l.epoch) return {};
    drop_node(l.node, false);
    PgNode n;
    n.lease = l;
    n.detector = std::make_unique<Detector>(s->detector->rules());
    n.detector->SetImagePolicy(s->image_policy);
    n.detector->SetDriftPolicy(s->drift_policy);
    auto cursor = s->pg_scanner->Cursor(l.node);
    if (!cursor) return std::unexpected(cursor.error());
    n.cursor = n.head = *cursor;
    auto infos = s->pg_scanner->ContainerInfos(l.node, [&](const std::string& id,
                                                           std::string_view info) {
      v1::Event ev;
      if (!ev.mutable_container()->ParseFromArray(info.data(), static_cast<int>(info.size())))
        return;
      ev.mutable_id()->set_node(l.node);
      ev.set_container_id(id);
      n.detector->OnEvent(l.node, ev, discard);
    });
    if (!infos) return std::unexpected(infos.error());
    uint64_t warmed = 0;
    if (*cursor > 0 && opt_.warmup.count() > 0) {
      auto t = s->pg_scanner->TimeOf(l.node, *cursor);
      if (!t) return std::unexpected(t.error());
      int64_t from = *cursor + 1;
      if (*t) {
        auto w = s->pg_scanner->FirstIdAtOrAfter(
            l.node, **t - std::chrono::duration_cast<std::chrono::nanoseconds>(opt_.warmup).count());
        if (!w) return std::unexpected(w.error());
        if (*w > 0) from = std::max(*w, *cursor - opt_.warmup_max_events + 1);
      }
      for (int64_t after = from - 1; after < *cursor;) {
        int64_t last = after;
        Result<> bad = {};
        auto got = s->pg_scanner->Scan(l.node, after, *cursor, opt_.scan_rows,
                                       [&](const ScannedEvent& e) {
          last = e.rowid;
          if (!bad) return;
          const char* why = "";
          auto ev = decode_pg(e, &why);
          if (!ev) {
            bad = std::unexpected(ev.error());
          } else if (*ev) {
            n.detector->OnEvent(l.node, **ev, discard);
            ++warmed;
          }
        });
        if (!got) return std::unexpected(got.error());
        if (!bad) return bad;
        if (*got == 0) break;
        after = last;
      }
    }
    if (!all_losses) {
      auto losses = s->store->NodeLosses();
      if (!losses) return std::unexpected(losses.error());
      all_losses = std::move(*losses);
    }
    if (auto it = all_losses->find(l.node); it != all_losses->end()) {
      v1::Hello known;
      if (known.ParseFromString(it->second)) s->lifetime[l.node] = known;
    }
    if (!all_aggregates) {
      auto aggs = s->store->OpenAggregates();
      if (!aggs) return std::unexpected(aggs.error());
      all_aggregates = std::move(*aggs);
    }
    for (const DetectionStore::OpenAggregate& a : *all_aggregates)
      if (a.node == l.node) s->open_aggregates.emplace(a.open_until_ns, a.id);
    counters_.warmup_events += warmed;
    LogInfo("detection: node %s taken (lease epoch %lld), from event %lld, %llu events of "
            "history replayed\n",
            l.node.c_str(), static_cast<long long>(l.epoch), static_cast<long long>(*cursor),
            static_cast<unsigned long long>(warmed));
    s->pg_nodes[l.node] = std::move(n);
    return {};
  };
  // A node's ids are dense (assigned in its commits, rolled back with them): ids missing
  // between the cursor and the rows read are events deleted before detection evaluated them
  // (retention dropped their day while detection lagged behind it). Counted and alerted.
  auto unevaluated = [&](const std::string& node, int64_t from, int64_t to) {
    const uint64_t n = static_cast<uint64_t>(to - from + 1);
    counters_.not_evaluated += n;
    const int64_t now = NowNs();
    Alert a = InternalAlert(
        kNotEvaluatedRule, node, now,
        "deleted/" + node + "/" + std::to_string(from) + "-" + std::to_string(to),
        "Event not evaluated: " + std::to_string(n) + " stored events of node " + node +
            " (ids " + std::to_string(from) + " to " + std::to_string(to) +
            ") were deleted (retention) before detection evaluated them: no rule saw them");
    a.output_fields.emplace_back("sensor.loss.deleted_events",
                                 AlertField::Number(static_cast<long long>(n)));
    pending.push_back(std::move(a));
  };
  // A commit, then the nodes whose leases it found lost are dropped and given back (taken
  // again, rebuilt from the store, if their leases come back). False: stopping.
  auto pg_commit = [&] {
    if (!commit()) return false;
    for (const Lease& l : pg_lost) drop_node(l.node, true);
    pg_lost.clear();
    return true;
  };
  // The store could not be read: a new connection, a pause.
  auto pg_read_failed = [&](const Error& e) {
    if (!s->failing.exchange(true)) LogWarn("detection: reading events: %s (retrying)\n", e.c_str());
    ++counters_.store_errors;
    if (auto sc = PgEventScanner::Open(opt_.db); sc) s->pg_scanner = std::move(*sc);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  };
  while (pg_ && !stop_) {
    std::deque<std::pair<std::string, v1::Hello>> hellos;
    std::deque<LeaseChange> changes;
    {
      MutexLock lk(s->mu);
      s->cv.WaitFor(lk, opt_.pg_poll, [&]() DW_REQUIRES(s->mu) {
        return stop_ || s->reload || !s->hellos.empty() || !s->lease_changes.empty() || s->woken;
      });
      if (s->reload) {
        s->detector->SetRules(s->new_rules);
        s->image_policy = std::move(s->new_policy);
        s->drift_policy = std::move(s->new_drift_policy);
        for (auto& [node, n] : s->pg_nodes) {
          n.detector->SetRules(s->new_rules);
          n.detector->SetImagePolicy(s->image_policy);
          n.detector->SetDriftPolicy(s->drift_policy);
        }
        s->new_rules.reset();
        s->reload = false;
      }
      hellos.swap(s->hellos);
      changes.swap(s->lease_changes);
      s->woken = false;
    }
    if (stop_) break;
    all_losses.reset();
    all_aggregates.reset();
    for (const LeaseChange& ch : changes) {
      if (ch.kind != LeaseChange::kTake) {
        drop_node(ch.lease.node, ch.kind == LeaseChange::kGiveBack);
        continue;
      }
      if (auto ok = take_node(ch.lease); !ok) {
        // Given back: taken again (and rebuilt) at a later tick.
        LogWarn("detection: node %s not taken: %s\n", ch.lease.node.c_str(), ok.error().c_str());
        drop_node(ch.lease.node, false);
        MutexLock lk(mu_);
        released_.push_back(ch.lease);
      }
    }
    // A Hello's loss totals, of the nodes this collector evaluates (the others' owners see
    // the same totals in the node's next status event).
    for (const auto& [node, h] : hellos) {
      if (!h.has_losses() || !s->pg_nodes.contains(node)) continue;
      hello_losses(node, h);
      pg_dirty.insert(node);
    }
    // Committed before the nodes' rows, so that each node's commit below holds its own.
    if (!pending.empty() || !pg_dirty.empty()) {
      if (!pg_commit()) break;
    }
    std::vector<std::string> names;
    for (const auto& [node, n] : s->pg_nodes) names.push_back(node);
    auto heads = s->pg_scanner->Heads(names);
    if (!heads) {
      pg_read_failed(heads.error());
      continue;
    }
    for (auto& [node, n] : s->pg_nodes)
      if (auto h = heads->find(node); h != heads->end()) n.head = std::max(n.head, h->second);
    // Each node with new rows: read from its cursor, evaluated, committed under its lease.
    bool behind = false;
    for (const std::string& node : names) {
      if (stop_) break;
      auto it = s->pg_nodes.find(node);
      if (it == s->pg_nodes.end()) continue;
      PgNode& n = it->second;
      if (n.head > n.cursor) {
        const int64_t before = n.cursor;
        const uint64_t eval_before = n.detector->stats().eval_ns;
        uint64_t evaluated = 0;
        Result<> bad = {};
        auto got = s->pg_scanner->Scan(node, n.cursor, n.head, opt_.scan_rows,
                                       [&](const ScannedEvent& e) {
          if (!bad) return;
          const char* why = "";
          auto ev = decode_pg(e, &why);
          if (!ev) {
            bad = std::unexpected(ev.error());
            return;
          }
          if (e.rowid > n.cursor + 1) unevaluated(node, n.cursor + 1, e.rowid - 1);
          n.cursor = e.rowid;
          ++evaluated;
          if (!*ev) {
            not_evaluated(&node, e.rowid, e.seq, e.time_ns, why);
          } else {
            evaluate(node, **ev, e.stored_ns);
          }
        });
        counters_.events += evaluated;
        counters_.eval_ns += n.detector->stats().eval_ns - eval_before;
        if (evaluated > 0) {
          pg_dirty.insert(node);
          dirty = true;
        }
        if (!got || !bad) {
          // Rows evaluated so far are committed below; the rest is read again.
          pg_read_failed(!got ? got.error() : bad.error());
        } else if (*got == opt_.scan_rows) {
          behind = true;
        } else if (n.cursor < n.head) {
          // Every row up to the head was read: ids missing below it were deleted before
          // they were evaluated.
          unevaluated(node, n.cursor + 1, n.head);
          n.cursor = n.head;
          pg_dirty.insert(node);
          dirty = true;
        }
        if (n.cursor > before) {
          auto gaps = s->pg_scanner->Gaps(node, before, n.cursor);
          if (!gaps) {
            // Its rows cannot be committed without their gaps: the node goes back, to be
            // taken again and its rows read again from the stored cursor.
            pg_read_failed(gaps.error());
            pending.clear();
            allowed.clear();
            drop_node(node, true);
            continue;
          }
          for (const StoredGap& g : *gaps) gap_alert(g);
        }
      }
      check_quota(n.detector.get());
      if (!pending.empty() || !allowed.empty() || pg_dirty.contains(node)) {
        if (!pg_commit()) break;
      }
    }
    close_due();
    const bool held_due = !s->held.empty() && s->held.front().until <= Clock::now();
    if (!pending.empty() || !allowed.empty() || !dirty_losses.empty() || !closing.empty() ||
        held_due || !arrived.empty() || !pg_dirty.empty()) {
      if (!pg_commit()) break;
    }
    int64_t lag = 0;
    for (const auto& [node, n] : s->pg_nodes) lag += n.head - n.cursor;
    s->pg_lag = lag;
    MaybeRelease();
    if (behind) {
      MutexLock lk(s->mu);
      s->woken = true;  // more rows wait: no pause before the next round
    }
  }
  FeedEntry fed;
  int64_t scan_upto = 0;
  int64_t gaps_pos = s->pos;  // gaps read for the rows up to here
  while (!pg_ && !stop_) {
    std::deque<std::pair<std::string, v1::Hello>> hellos;
    fed = FeedEntry();
    {
      MutexLock lk(s->mu);
      s->cv.WaitFor(lk, std::chrono::milliseconds(200), [&]() DW_REQUIRES(s->mu) {
        return stop_ || s->reload || !s->hellos.empty() || head_.load() > s->pos || dirty ||
               !pending.empty() || !s->feed.empty();
      });
      if (s->reload) {
        s->detector->SetRules(std::move(s->new_rules));
        s->detector->SetImagePolicy(std::move(s->new_policy));
        s->detector->SetDriftPolicy(std::move(s->new_drift_policy));
        s->reload = false;
      }
      hellos.swap(s->hellos);
      // The next rows: the feed's first entry when it starts at or before this shard's
      // position, else the store's rows up to where the feed starts.
      scan_upto = head_.load();
      while (!s->feed.empty() && s->feed.front().head <= s->pos) {
        s->feed_bytes -= s->feed.front().bytes;
        s->feed.pop_front();
      }
      if (!s->feed.empty() && s->feed.front().after <= s->pos) {
        fed = std::move(s->feed.front());
        s->feed_bytes -= fed.bytes;
        s->feed.pop_front();
      } else if (!s->feed.empty()) {
        scan_upto = std::min(scan_upto, s->feed.front().after);
      }
    }
    if (stop_) break;
    for (const auto& [node, h] : hellos)
      if (h.has_losses()) hello_losses(node, h);

    const int64_t before = s->pos;
    int64_t last_row = before;
    bool scan_failed = false;
    if (fed.head > before) {
      // From memory: the rows of this shard's nodes in (fed.after, fed.head], as committed.
      uint64_t evaluated = 0;
      const uint64_t eval_before = s->detector->stats().eval_ns;
      for (const CommittedBatch& cb : fed.batches) {
        const PreparedBatch& b = *cb.batch;
        int64_t& cursor = s->cursors.try_emplace(b.node, s->default_cursor).first->second;
        for (size_t i = 0; i < b.events.size(); ++i) {
          const int64_t rowid = cb.rowids[i];
          if (rowid == 0 || rowid <= before || rowid <= cursor) continue;  // not stored; done
          cursor = rowid;
          dirty = true;
          ++evaluated;
          v1::Event& ev = new_event();
          if (!DecodePreparedEvent(b, i, &ev)) {
            not_evaluated(&b.node, rowid, b.events[i].seq, b.events[i].time_ns, "does not parse");
            continue;
          }
          evaluate(b.node, ev, cb.stored_ns);
        }
      }
      s->pos = fed.head;
      counters_.events += evaluated;
      counters_.fed_events += evaluated;
      counters_.eval_ns += s->detector->stats().eval_ns - eval_before;
    } else if (scan_upto > before) {
      const int64_t head = scan_upto;
      uint64_t evaluated = 0, warmed = 0;
      const uint64_t eval_before = s->detector->stats().eval_ns;
      // One row; false when the store could not be read (the row is looked at again).
      auto handle = [&](const ScannedEvent& e) -> bool {
        auto run = s->scanner->Run(e.run_id);
        if (!run) return false;
        const std::string* node = *run ? &(*run)->node : nullptr;
        // A row whose run is gone cannot be placed: shard 0 says so.
        if (node ? ShardOf(*node) != s->index : s->index != 0) return true;
        const std::string node_name = node ? *node : std::string();
        auto cur = s->cursors.find(node_name);
        const int64_t done = cur != s->cursors.end() ? cur->second : s->default_cursor;
        if (e.rowid <= done) {
          auto w = s->warm_from.find(node_name);
          if (w == s->warm_from.end() || e.rowid < w->second || !node) return true;
          auto cid = s->scanner->ContainerId(e.cid);
          if (!cid) return false;
          if (!*cid) return true;
          v1::Event& ev = new_event();
          if (!DecodeStoredEvent(e.payload, **run, e.seq, **cid, &ev)) return true;
          s->detector->OnEvent(node_name, ev, discard);
          ++warmed;
          return true;
        }
        auto cid = node ? s->scanner->ContainerId(e.cid)
                        : Result<const std::string*>(nullptr);
        if (!cid) return false;
        s->cursors[node_name] = e.rowid;
        dirty = true;
        ++evaluated;
        v1::Event& ev = new_event();
        if (!node || !*cid || !DecodeStoredEvent(e.payload, **run, e.seq, **cid, &ev)) {
          not_evaluated(node, e.rowid, e.seq, e.time_ns,
                        !node ? "belongs to no known run" : !*cid ? "has no container id"
                                                                  : "does not parse");
          return true;
        }
        evaluate(node_name, ev, e.stored_ns);
        return true;
      };
      auto n = s->scanner->Scan(before, head, opt_.scan_rows, [&](const ScannedEvent& e) {
        if (scan_failed) return;
        if (handle(e)) {
          last_row = e.rowid;
        } else {
          scan_failed = true;
        }
      });
      if (!n || scan_failed) {
        // The store could not be read: look at the same rows again later. Rows already
        // handled in this pass keep their cursors (they are past them).
        if (!s->failing.exchange(true)) LogWarn("detection: reading events failed; retrying\n");
        ++counters_.store_errors;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        s->pos = last_row;  // rows up to here are handled
        continue;
      }
      s->pos = *n < opt_.scan_rows ? std::max(head, last_row) : last_row;
      counters_.events += evaluated;
      counters_.warmup_events += warmed;
      counters_.eval_ns += s->detector->stats().eval_ns - eval_before;
    }
    // Gaps the store saw in the rows looked at, for this shard's nodes (a failed read is
    // tried again with the next rows).
    if (s->pos > gaps_pos) {
      auto gaps = s->scanner->Gaps(gaps_pos, s->pos);
      if (!gaps) {
        LogWarn("detection: reading gaps: %s (retrying)\n", gaps.error().c_str());
      } else {
        gaps_pos = s->pos;
        for (const StoredGap& g : *gaps) {
          if (ShardOf(g.node) != s->index) continue;
          gap_alert(g);
        }
      }
    }
    check_quota(s->detector.get());
    close_due();
    const bool caught_up = s->pos >= head_.load();
    const bool held_due = !s->held.empty() && s->held.front().until <= Clock::now();
    if (!pending.empty() || !allowed.empty() || !dirty_losses.empty() || !closing.empty() ||
        held_due || !arrived.empty() ||
        (dirty && (caught_up || Clock::now() - last_commit >= opt_.commit_interval))) {
      if (!commit()) break;
    } else if (!dirty) {
      // Only other shards' rows: done as soon as looked at.
      s->committed = s->pos;
      MaybeRelease();
    }
  }
  // Shutdown closes every window: the summaries go out now, not after the next start. Held
  // alerts too (completed when their container's info came): a collector that stops may not
  // come back soon. A kill leaves them in the outbox, where the next start finds them.
  if (!s->open_aggregates.empty() || !s->held.empty()) {
    for (const auto& [until, id] : s->open_aggregates) closing.push_back(id);
    s->open_aggregates.clear();
    flush_held = true;
    if (!commit())
      LogWarn("detection: open aggregates not closed or held alerts not sent; done after the "
              "restart\n");
  }
  if (pg_) {
    // Every lease of this shard goes back now (the lease thread releases them at its stop).
    std::vector<Lease> back;
    for (const auto& [node, n] : s->pg_nodes) back.push_back(n.lease);
    {
      MutexLock lk(s->mu);
      for (const LeaseChange& ch : s->lease_changes) back.push_back(ch.lease);
    }
    MutexLock lk(mu_);
    released_.insert(released_.end(), back.begin(), back.end());
  }
}

// Two live collectors under one owner name would both pass each other's lease checks. A
// row of this name that is still live is waited out (a previous run of this collector that
// died within the lease: its row stops being renewed and expires); one that is renewed
// meanwhile belongs to a running collector: refused.
Result<> Detection::WaitOwnerFree() {
  auto c = PgConn::Connect(opt_.db);
  if (!c) return std::unexpected(c.error());
  int64_t seen = -1;
  for (;;) {
    auto r = (*c)->Exec("read this collector's presence",
                        std::string("SELECT expires_ns, expires_ns - ") + kPgServerNowNs +
                            " FROM collectors WHERE owner = $1",
                        {opt_.lease_owner});
    if (!r) return std::unexpected(r.error());
    if (PQntuples(r->get()) == 0 || PgGetInt(r->get(), 0, 1) <= 0) return {};
    const int64_t expires = PgGetInt(r->get(), 0, 0);
    if (seen >= 0 && expires != seen) {
      return std::unexpected(Error::InvalidInput(
          "--lease-owner " + opt_.lease_owner + ": another running collector uses this name in " +
          (*c)->where() + " (each collector sharing a store needs its own)"));
    }
    if (seen < 0)
      LogInfo("detection: waiting for the lease owner %s of a previous run to expire\n",
              opt_.lease_owner.c_str());
    seen = expires;
    std::this_thread::sleep_for(std::max(opt_.lease_ttl / 2, std::chrono::milliseconds(10)));
  }
}

// Node leases (PostgreSQL). Every tick (a quarter of the lease): this collector says it is
// alive (collectors), gives back what its shards let go, renews what it holds, and takes or
// gives back nodes so that each live collector holds about its share (the nodes with events
// divided by the live collectors, rounded up). A node taken goes to its shard (ShardOf),
// which rebuilds its state from the store before evaluating it.
void Detection::RunLeases() {
  pthread_setname_np(pthread_self(), "dw-leases");
  const std::string& me = opt_.lease_owner;
  const std::string ttl_ns = std::to_string(opt_.lease_ttl.count() * 1'000'000);
  std::map<std::string, Lease> held;
  std::unique_ptr<PgConn> c;
  bool failing = false;
  auto tell = [&](const Lease& l, LeaseChange::Kind kind) {
    Shard* s = shards_[ShardOf(l.node)].get();
    {
      MutexLock lk(s->mu);
      s->lease_changes.push_back({kind, l});
    }
    s->cv.NotifyOne();
  };
  auto give_back = [&](std::vector<Lease> leases) -> Result<> {
    for (const Lease& l : leases) {
      if (auto ok = ReleaseLease(c.get(), l); !ok) {
        MutexLock lk(mu_);  // tried again next tick (or it expires)
        released_.insert(released_.end(), leases.begin(), leases.end());
        return ok;
      }
      ++counters_.leases_released;
    }
    return {};
  };
  auto step = [&]() -> Result<> {
    const std::string now = kPgServerNowNs;
    auto live = c->Exec("say this collector is alive",
                        "WITH up AS (INSERT INTO collectors(owner, expires_ns) VALUES ($1, " +
                            now + " + $2) ON CONFLICT (owner) DO UPDATE SET expires_ns = "
                            "excluded.expires_ns RETURNING owner) "
                            "SELECT (SELECT count(*) FROM collectors WHERE owner <> $1 AND "
                            "expires_ns > " + now + ") + 1, (SELECT count(*) FROM node_heads) "
                            "FROM up",
                        {me, ttl_ns});
    if (!live) return std::unexpected(live.error());
    // Collectors named by HOST:PID leave a row per run: those dead for a day go.
    if (auto gone = c->Exec("forget collectors dead for a day",
                            "DELETE FROM collectors WHERE expires_ns < " + now +
                                " - 86400000000000");
        !gone)
      return std::unexpected(gone.error());
    const int64_t collectors = std::max<int64_t>(1, PgGetInt(live->get(), 0, 0));
    const int64_t nodes = PgGetInt(live->get(), 0, 1);
    std::vector<Lease> back;
    {
      MutexLock lk(mu_);
      back.swap(released_);
    }
    for (const Lease& l : back) {
      // A shard let it go (a commit found it lost, the store could not be read): no longer
      // renewed, and free for any collector (this one too) to take again.
      if (auto h = held.find(l.node); h != held.end() && h->second.epoch == l.epoch) held.erase(h);
    }
    if (auto ok = give_back(std::move(back)); !ok) return ok;
    for (auto it = held.begin(); it != held.end();) {
      auto r = AcquireLease(c.get(), it->first, me, opt_.lease_ttl);
      if (!r) return std::unexpected(r.error());
      if (*r && (*r)->epoch == it->second.epoch) {
        ++it;
        continue;
      }
      // Another collector owned the node meanwhile (this one stalled past the lease).
      ++counters_.leases_lost;
      LogWarn("detection: the lease of node %s was lost (another collector took it)\n",
              it->first.c_str());
      tell(it->second, LeaseChange::kLost);
      if (!*r) {
        it = held.erase(it);
        continue;
      }
      it->second = **r;  // held again: its state is rebuilt
      ++counters_.leases_taken;
      tell(it->second, LeaseChange::kTake);
      ++it;
    }
    const size_t share = static_cast<size_t>((nodes + collectors - 1) / collectors);
    if (held.size() > share) {
      // Given back by the shard after its last commit of the node, then released.
      for (size_t n = held.size() - share; n > 0; --n) {
        auto last = std::prev(held.end());
        tell(last->second, LeaseChange::kGiveBack);
        held.erase(last);
      }
    } else if (held.size() < share) {
      auto free = UnownedNodes(c.get(), share - held.size());
      if (!free) return std::unexpected(free.error());
      for (const std::string& node : *free) {
        auto r = AcquireLease(c.get(), node, me, opt_.lease_ttl);
        if (!r) return std::unexpected(r.error());
        if (!*r) continue;  // another collector was quicker
        held[node] = **r;
        ++counters_.leases_taken;
        tell(**r, LeaseChange::kTake);
      }
    }
    counters_.nodes_owned = static_cast<int64_t>(held.size());
    return {};
  };
  const auto tick = std::max(opt_.lease_ttl / 4, std::chrono::milliseconds(10));
  while (!stop_leases_) {
    Result<> ok = {};
    if (!c) {
      auto cc = PgConn::Connect(opt_.db);
      if (cc) {
        c = std::move(*cc);
      } else {
        ok = std::unexpected(cc.error());
      }
    }
    if (c) ok = step();
    if (!ok) {
      // The leases run out unless renewed: the other collectors take the nodes over, and
      // this one's shards find theirs lost at their next commit.
      if (!failing) LogWarn("detection: node leases: %s (retrying)\n", ok.error().c_str());
      failing = true;
      if (c && !c->connected()) c.reset();
    } else {
      failing = false;
    }
    MutexLock lk(mu_);
    lease_cv_.WaitFor(lk, tick,
                      [&]() DW_REQUIRES(mu_) { return stop_leases_.load() || new_nodes_; });
    new_nodes_ = false;
  }
  // Stopped: the shards made their last commits; every lease is given back at once, so the
  // other collectors need not wait for them to expire.
  if (!c) {
    auto cc = PgConn::Connect(opt_.db);
    if (!cc) return;
    c = std::move(*cc);
  }
  std::vector<Lease> all;
  {
    MutexLock lk(mu_);
    all.swap(released_);
  }
  for (auto& [node, l] : held) all.push_back(l);
  if (auto ok = give_back(std::move(all)); !ok)
    LogWarn("detection: node leases not given back (they expire): %s\n", ok.error().c_str());
  (void)c->Exec("say this collector stopped", "DELETE FROM collectors WHERE owner = $1", {me});
  counters_.nodes_owned = 0;
}

void Detection::SetInventoryRequester(InventoryRequester fn) {
  MutexLock lk(mu_);
  request_inventory_ = std::move(fn);
}

void Detection::SubmitInventory(const std::string& node, uint64_t command_id,
                                StoredInventory inv) {
  {
    MutexLock lk(mu_);
    replies_.push_back({node, command_id, std::move(inv)});
  }
  hk_cv_.NotifyOne();
}

void Detection::SetStopRequester(StopRequester fn) {
  MutexLock lk(mu_);
  request_stop_ = std::move(fn);
}

void Detection::Respond(const Alert& a) {
  if (opt_.respond_rules.empty() || a.container_id.empty() || a.container_id == "host") return;
  if (std::find(opt_.respond_rules.begin(), opt_.respond_rules.end(), a.rule) ==
      opt_.respond_rules.end())
    return;
  StopRequester request;
  const std::pair<std::string, std::string> key{a.node, a.container_id};
  {
    MutexLock lk(mu_);
    // Asked once per container: a container running drift in a loop raises an alert per
    // exec, and the sensor would only count the repeats.
    if (stops_asked_.contains(key)) return;
    request = request_stop_;
  }
  auto sent = request ? request(a.node, a.container_id, a.rule)
                      : std::expected<void, std::string>(std::unexpected("not serving yet"));
  if (sent) {
    {
      MutexLock lk(mu_);
      if (stops_asked_.size() >= 4096) stops_asked_.clear();  // a bound: ids are not reused
      stops_asked_.insert(key);
    }
    ++counters_.stops_requested;
    LogInfo("respond: asked node %s to stop container %s (%s)\n", a.node.c_str(),
            a.container_id.c_str(), a.rule.c_str());
  } else {
    ++counters_.stops_not_sent;
    LogWarn("respond: container %s on node %s not stopped (%s): %s\n", a.container_id.c_str(),
            a.node.c_str(), a.rule.c_str(), sent.error().c_str());
  }
}

void Detection::WantInventory(const Alert& a) {
  if (opt_.inventory_tag.empty() || a.container_id.empty() || a.container_id == "host") return;
  if (std::find(a.tags.begin(), a.tags.end(), opt_.inventory_tag) == a.tags.end()) return;
  const auto now = Clock::now();
  MutexLock lk(mu_);
  auto [it, fresh] = wanted_.try_emplace({a.node, a.container_id});
  InventoryWant& w = it->second;
  if (fresh) {
    w.node = a.node;
    w.container_id = a.container_id;
    w.first = now;
  }
  // The newest names: a pod sandbox's are known only after its first events.
  if (!a.container_name.empty()) w.container_name = a.container_name;
  if (!a.pod_name.empty()) {
    w.pod_name = a.pod_name;
    w.pod_namespace = a.pod_namespace;
  }
  w.rules.insert(a.rule);
  w.last = now;
}

void Detection::RequestDueInventories(Clock::time_point now) {
  for (auto it = asked_.begin(); it != asked_.end();) {
    if (now < it->second.second + opt_.inventory_timeout) {
      ++it;
      continue;
    }
    ++counters_.inventories_failed;
    LogWarn("inventory of container %s on node %s: no reply within %llds\n",
            it->second.first.container_id.c_str(), it->second.first.node.c_str(),
            static_cast<long long>(
                std::chrono::duration_cast<std::chrono::seconds>(opt_.inventory_timeout).count()));
    it = asked_.erase(it);
  }
  std::vector<InventoryWant> due;
  InventoryRequester request;
  {
    MutexLock lk(mu_);
    request = request_inventory_;
    for (auto it = wanted_.begin(); it != wanted_.end();) {
      const InventoryWant& w = it->second;
      if (now < w.last + opt_.inventory_quiet && now < w.first + opt_.inventory_max_delay) {
        ++it;
        continue;
      }
      due.push_back(std::move(it->second));
      it = wanted_.erase(it);
    }
  }
  for (InventoryWant& w : due) {
    const uint64_t id = next_command_id_++;
    auto sent = request ? request(w.node, w.container_id, id)
                        : std::unexpected(std::string("no sensor streams"));
    if (sent) {
      ++counters_.inventories_requested;
      asked_.emplace(id, std::pair{std::move(w), now});
    } else {
      ++counters_.inventories_failed;
      LogWarn("inventory of container %s on node %s not asked for: %s\n",
              w.container_id.c_str(), w.node.c_str(), sent.error().c_str());
    }
  }
}

void Detection::StoreInventory(const std::string& node, uint64_t command_id,
                               StoredInventory inv) {
  auto it = asked_.find(command_id);
  if (it == asked_.end() || it->second.first.node != node) {
    LogWarn("node %s: inventory reply to command %llu, which is not waiting for one: ignored\n",
            node.c_str(), static_cast<unsigned long long>(command_id));
    return;
  }
  const InventoryWant& w = it->second.first;
  inv.taken_ns = NowNs();
  inv.node = node;
  inv.container_id = w.container_id;
  inv.container_name = w.container_name;
  inv.pod_name = w.pod_name;
  inv.pod_namespace = w.pod_namespace;
  for (const std::string& r : w.rules) {
    if (!inv.rules.empty()) inv.rules += ',';
    inv.rules += r;
  }
  asked_.erase(it);
  if (!inv.error.empty()) {
    ++counters_.inventories_failed;
    LogWarn("inventory of container %s on node %s failed: %s\n",
            inv.container_id.c_str(), node.c_str(), inv.error.c_str());
  }
  if (auto st = hk_store_->InsertInventory(inv); !st) {
    ++counters_.inventories_failed;
    LogWarn("storing an inventory: %s\n", st.error().c_str());
    return;
  }
  if (inv.error.empty()) {
    ++counters_.inventories_stored;
    LogInfo("inventory of container %s on node %s: %llu changed paths\n",
            inv.container_id.c_str(), node.c_str(), static_cast<unsigned long long>(inv.entries));
  }
}

void Detection::Housekeeping() {
  pthread_setname_np(pthread_self(), "dw-detect-hk");
  auto next_outbox_sweep = Clock::now() + opt_.outbox_retry;
  // Outbox rows seen by the previous sweep: only those are sent again. A row a shard has
  // just committed is not in flight until its Emit runs, and a delivery that completed
  // after this loop took `delivered_` is not marked yet: either would be sent twice.
  std::set<std::pair<int64_t, std::string>> stuck;
  while (!stop_) {
    std::deque<InventoryReceived> replies;
    std::vector<std::pair<int64_t, std::string>> done;
    {
      MutexLock lk(mu_);
      hk_cv_.WaitFor(lk, std::chrono::milliseconds(100),
                     [&]() DW_REQUIRES(mu_) { return stop_.load() || !replies_.empty(); });
      replies.swap(replies_);
      done.swap(delivered_);
    }
    for (InventoryReceived& r : replies) StoreInventory(r.node, r.command_id, std::move(r.inv));
    RequestDueInventories(Clock::now());
    // Delivered: marked first, so that the sweep below does not send them again.
    bool marked = true;
    if (auto ok = hk_store_->MarkDelivered(done); !ok) {
      LogWarn("outbox: %s (retrying)\n", ok.error().c_str());
      MutexLock lk(mu_);
      delivered_.insert(delivered_.end(), done.begin(), done.end());
      marked = false;
    }
    // Deliveries an output dropped (a full queue) are tried again from the outbox.
    if (marked && Clock::now() >= next_outbox_sweep) {
      next_outbox_sweep = Clock::now() + opt_.outbox_retry;
      if (auto rows = hk_store_->Undelivered(); !rows) {
        LogWarn("outbox: %s\n", rows.error().c_str());
      } else {
        std::vector<AlertStore::PendingDelivery> again;
        std::set<std::pair<int64_t, std::string>> seen;
        for (AlertStore::PendingDelivery& r : *rows) {
          auto key = std::make_pair(r.alert_id, r.output);
          if (stuck.contains(key)) again.push_back(std::move(r));
          seen.insert(std::move(key));
        }
        stuck.swap(seen);
        SendOutbox(again);
      }
    }
    if (baseline_store_ && Clock::now() >= next_edit_poll_) {
      next_edit_poll_ = Clock::now() + opt_.baseline_edit_poll;
      LoadBaselineEdits();
    }
    MaybeRelease();
  }
}

// Baselines edited by the CLI since the last look are loaded again.
void Detection::LoadBaselineEdits() {
  auto edits = baseline_store_->EditsAfter(baseline_edit_);
  if (!edits) {
    LogWarn("baselines: %s (retrying)\n", edits.error().c_str());
    return;
  }
  if (edits->empty()) return;
  std::set<BaselineId> ids;
  for (const auto& [id, b] : *edits) ids.insert(b);
  std::vector<BaselineId> list(ids.begin(), ids.end());
  std::vector<BaselineHeader> headers;
  std::vector<BaselineItem> items;
  if (auto ok = baseline_store_->Load(false, list, &headers, &items); !ok) {
    LogWarn("baselines: %s (retrying)\n", ok.error().c_str());
    return;
  }
  baselines_->Load(false, list, headers, items);
  baseline_edit_ = edits->back().first;
  LogInfo("baselines: %zu edited by the CLI, loaded again\n", list.size());
}

}  // namespace driftwatch::collector
