// detection: the collector's detection stage, a durable consumer of the event store.
//
//   events table ─► shard k (nodes with hash(node) % shards == k): EventScanner reads the
//   rows committed after its position ─► Detector (correlation, rules) and the built-in
//   loss alerts ─► one transaction: alerts + outbox rows + the shard's node cursors + node
//   loss totals ─► outputs (file, webhook); the outbox row goes when the output is done.
//
// Nothing is skipped: a shard takes every committed row in rowid order, evaluates the rows of
// its nodes and commits, per node, the highest rowid it is done with (detect_cursors) in the
// same transaction as the alerts those rows produced. Rows come from memory while the shard
// keeps up: the store hands each commit's batches to Notify, which queues each shard the
// batches of its nodes (the feed, at most `feed_max_bytes` for all shards); a shard that is
// behind the feed (at start, after a restart, when its feed overflowed) reads the rows from
// the store instead until it meets the feed again. Both give the same rows. After a crash or kill -9 each node
// resumes after its cursor; before that its correlation state is rebuilt from its recent
// stored events (the containers' latest info, then `warmup` of event time before the cursor,
// at most `warmup_max_events` rows) without alerting. Alerts are exactly once: (event key,
// rule) is unique in the alerts table, so a replay stores and sends none twice; an alert is
// sent to the outputs once its transaction committed, and alerts whose delivery did not
// finish before a restart are sent again then (at least once per output across a crash,
// exactly once otherwise); so are those an output dropped, once two sweeps `outbox_retry`
// apart found them undelivered (a row just committed or delivered is not sent twice). A row
// that cannot be evaluated (its payload or run unreadable) is not passed over silently: it
// raises the built-in "Event not evaluated" alert.
//
// Aggregation: repeats of an alert (same rule, node, container and executable or file) are
// counted in the first one's row for `aggregation.window` after it was stored, in the same
// transaction as the cursors, so that a replay after a crash counts each once; the open
// aggregates are read back from the store at start. The first alert goes to the outputs at
// once; when the window ends (a shard's timer, or shutdown) an aggregate that counted repeats
// sends its summary (AggregateJson) through the same outbox. Critical and above are stored
// one by one unless `aggregation.critical`.
//
// Late container metadata (`metadata_wait`): an alert of a container whose node had not
// reported it yet (no name, no image) is stored at once, as every alert, but its delivery is
// held in its shard, the outbox row kept. When the container's info reaches the shard's
// correlator the alert is completed (container and pod columns, container.*/k8s.* fields,
// the message made again from the rule's output), its row rewritten in the same transaction
// as the cursors, then sent; after the wait it is sent as it is. Alerts whose info is already
// known at commit (it came with a later row of the step) are completed before they are
// stored. Order: a container's alerts go out in commit order (held ones before the next
// commit's; the info that completes them comes before any alert that would carry it); other
// containers' alerts may pass them. The outbox sweep skips held alerts; a stop sends them
// (completed if the info came), a kill leaves them in the outbox, and the next start
// completes them from the rebuilt state or holds them again for another wait. An aggregate
// whose first alert is held counts repeats as usual (its key has the container id, not the
// name); the summary is made from the row's JSON, so it carries what the completion wrote;
// when the window ends first, the held first alert goes out just before its summary. At most
// `max_held_alerts` per shard: past it the oldest goes out at once.
//
// Losses: a status event or a Hello whose lifetime loss totals (LossCounters) grew, and a
// gap in a run's sequence numbers (seen by the store at commit), raise the built-in Critical
// alert "Sensor blind window", naming the node, the counters and the time window.
//
// Backpressure: lag() is the number of committed rows the slowest shard has not finished;
// over max_lag_events, or with a shard's feed three quarters full, Admit() says no and
// ingest holds its acks (its streams stop being read; the sensors' spools absorb the rest)
// until the held acks are released (lag and feeds below three quarters of that). The
// retention floor (floor()) keeps every row a shard has not committed as done.
//
// Drift inventories: when rules tagged `inventory_tag` alert on a container, the
// housekeeping thread asks that container's sensor for its drift inventory once the
// container's alerts pause for `inventory_quiet`, or `inventory_max_delay` after the first
// alert waiting. Replies are stored beside the alerts (`driftwatch inventory`).
//
// Baselines: before the rules see an exec, connect or bind of a container, the shared
// Baselines learn it or judge it (the baseline.* fields); what they decided is written in
// the commit of the rows that made it. Edits by `driftwatch baseline` (baseline_edits) are
// polled by the housekeeping thread and loaded.
//
// PostgreSQL (`db` a postgresql:// URI; several collectors share the store): ids are per
// node (lib/store/pg_schema.h), so a shard reads each of its nodes by id from the node's
// cursor instead of one rowid order, and only the nodes whose lease this collector holds
// (lib/store/pg_lease.h). The lease thread takes and renews them and keeps each live
// collector at about its share (nodes with events / collectors alive, rounded up), giving
// back the excess when another collector comes up. A node taken is rebuilt before it is
// evaluated: its own Detector, fed the node's containers' latest info and `warmup` of its
// events before the cursor, its loss totals and open aggregates; a node given back or lost
// takes its state with it. Each node's rows commit with that node's lease checked in the
// transaction (DetectionStore::DetectionCommit::leases), so a collector that stalled past its
// lease stores nothing of what the new owner evaluates: alerts stay exactly once across a
// takeover. Idle nodes' heads are polled every `pg_poll` (other collectors' commits); this
// collector's own commits wake the shards at once. Not on PostgreSQL yet: learned baselines
// (off, said at start), the in-memory feed (rows are read back), a Hello's loss totals for a
// node another collector evaluates (its owner sees them in the node's next status event), and
// inventories of a node whose sensor streams to another collector (the request fails,
// counted).
//
// Thread-safety: every public method may be called from any thread. Each shard's Detector,
// scanner and store connection belong to its thread; inventory bookkeeping and outbox marks
// are guarded by mu_ and done by the housekeeping thread with its own store connection.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "driftwatch/v1/collector.pb.h"
#include "lib/alerts/alert_aggregation.h"
#include "lib/alerts/alert_output.h"
#include "lib/alerts/alert_store.h"
#include "lib/base/mutex.h"
#include "lib/detect/baseline.h"
#include "lib/detect/baseline_store.h"
#include "lib/detect/detect.h"
#include "lib/detect/image_policy.h"
#include "lib/rules/rule_engine.h"
#include "lib/store/event_store.h"
#include "lib/store/event_reader.h"

namespace driftwatch::collector {

struct DetectionOptions {
  // Loaded in order after the shipped rule files (lib/rules/rule_loader.h RuleFilesToLoad),
  // exactly what `driftwatch rules check` loads with the same files and flag.
  std::vector<std::string> rule_files;
  bool no_shipped_rules = false;             // only rule_files
  std::vector<std::string> approved_images;  // image policy files; empty: no digest check
  // The drift policy (lib/node/prevent_policy.h): matches of drift rules it allows are
  // counted in the allowed-drift summary, not alerted. "": none.
  std::string drift_policy;
  std::string db;                            // the collector's database
  std::vector<std::string> outputs;          // "-" (stdout) or files, Falco JSON lines
  std::vector<std::string> webhooks;         // http(s) URLs
  std::string webhook_ca;                    // CA file for https webhooks (default: system)
  size_t shards = 2;                         // detection threads; nodes split among them
  int64_t max_lag_events = 500000;           // beyond it ingest holds its acks
  size_t scan_rows = 4096;                   // rows read per step
  size_t feed_max_bytes = 48 << 20;          // committed batches queued in memory; 0: none
  std::chrono::milliseconds commit_interval{50};  // cursor commits while rows keep coming
  std::chrono::seconds warmup{600};          // correlation history rebuilt at start, per node
  int64_t warmup_max_events = 2'000'000;
  std::chrono::milliseconds busy_timeout{5000};
  std::chrono::milliseconds outbox_retry{30000};  // undelivered alerts tried again this often
  std::string inventory_tag = "drift";  // "" : never ask for inventories
  std::chrono::milliseconds inventory_quiet{2000};
  std::chrono::milliseconds inventory_max_delay{30000};
  std::chrono::milliseconds inventory_timeout{60000};  // a reply later than this is a failure
  // Rules whose new alerts ask the node's sensor to stop the container (Command
  // {stop_container}; a sensor acts only with --respond stop). Empty: never.
  std::vector<std::string> respond_rules;
  // Learned per-image baselines (lib/detect/baseline.h); off: the baseline.* fields stay
  // unset and nothing is learned.
  bool baselines = true;
  BaselineOptions baseline;
  std::chrono::milliseconds baseline_edit_poll{2000};  // CLI edits reach detection this often
  // Repeats of an alert within a window stored and sent as one (lib/alerts/alert_aggregation.h).
  AggregationOptions aggregation;
  // An alert of a container its node had not reported yet (no name or image) is stored at
  // once but sent when the container's info reaches detection (completed, its row rewritten)
  // or after this long as it is. 0: sent at once.
  std::chrono::milliseconds metadata_wait{5000};
  size_t max_held_alerts = 10000;  // per shard; past it the oldest held goes out at once
  size_t max_held_bytes = 64u << 20;  // per shard, the same (alerts carry long command lines)
  // PostgreSQL (`db` a postgresql:// URI, several collectors): this collector's name in the
  // node leases (unique per collector; required there: --lease-owner, default host:pid),
  // and how long a lease lasts without renewal, i.e. how soon another collector takes a
  // dead one's nodes over.
  std::string lease_owner;
  std::chrono::milliseconds lease_ttl{10000};
  std::chrono::milliseconds pg_poll{50};  // idle nodes' heads read this often
};

// Sends Command{inventory} to the node's sensor (IngestService::RequestInventory).
using InventoryRequester = std::function<std::expected<void, std::string>(
    const std::string& node, const std::string& container_id, uint64_t command_id)>;

// Sends Command{stop_container} to the node's sensor (IngestService::RequestStop).
using StopRequester = std::function<std::expected<void, std::string>(
    const std::string& node, const std::string& container_id, const std::string& reason)>;

struct DetectionCounters {
  std::atomic<uint64_t> events{0};         // rows evaluated
  std::atomic<uint64_t> warmup_events{0};  // rows replayed to rebuild correlation state
  std::atomic<uint64_t> not_evaluated{0};  // rows that could not be evaluated (alerted)
  std::atomic<uint64_t> alerts{0};
  std::atomic<uint64_t> aggregated{0};           // repeats counted into an earlier alert
  std::atomic<uint64_t> aggregate_summaries{0};  // closed aggregates that counted repeats
  std::atomic<uint64_t> blind_windows{0};  // "Sensor blind window" alerts
  // Alerts of a container whose name or image (so also its pod) was unknown when made: the
  // node had not reported the container (yet) when detection evaluated the event.
  std::atomic<uint64_t> alerts_without_metadata{0};
  // How those were sent (metadata_wait): completed (the container's info came later, also
  // after a restart), or as they were (it never came within the wait, the wait is 0, the
  // hold was full, the collector stopped). Held now: the rest.
  std::atomic<uint64_t> metadata_filled_late{0};
  std::atomic<uint64_t> metadata_unknown{0};
  std::atomic<uint64_t> held_overflows{0};  // sent before their wait ended: hold full
  std::atomic<int64_t> alerts_held{0};      // waiting for their container's info now
  // Rule matches allowed (a rule exception or the drift policy) and counted in the
  // allowed-drift summary instead of alerting.
  std::atomic<uint64_t> allowed_drift{0};
  std::atomic<uint64_t> store_errors{0};   // failed detection commits (retried)
  std::atomic<uint64_t> eval_ns{0};
  std::atomic<uint64_t> fed_events{0};      // rows evaluated from the feed (not read back)
  std::atomic<uint64_t> feed_overflows{0};  // commits a shard's full feed let go (read back)
  std::atomic<uint64_t> held_acks{0};      // acks held back by backpressure, total
  std::atomic<uint64_t> reloads{0}, reload_failures{0};
  std::atomic<uint64_t> redelivered{0};    // alerts sent again after a restart
  std::atomic<uint64_t> inventories_requested{0}, inventories_stored{0};
  std::atomic<uint64_t> inventories_failed{0};  // not sent, error reply, timed out, not stored
  std::atomic<uint64_t> stops_requested{0};     // --respond-rules: stop commands sent (one
                                                // per container)
  std::atomic<uint64_t> stops_not_sent{0};      // the node had no stream to take one
  // PostgreSQL: node leases taken (a node's state rebuilt each time), lost (another
  // collector took the node while this one held it: it stalled past the lease), given back
  // (another collector came up and takes its share), and held now.
  std::atomic<uint64_t> leases_taken{0}, leases_lost{0}, leases_released{0};
  std::atomic<int64_t> nodes_owned{0};
};

// What the collector knows of a node's losses (for /metrics, /status).
struct NodeLossView {
  v1::LossCounters lifetime;
  uint64_t blind_windows = 0;
  int64_t last_ns = 0;           // newest blind window alert
  uint64_t quota_evictions = 0;  // detection state the node lost to its own quota
};

class Detection {
 public:
  // Loads rules and policy (errors name file and line), opens the outputs, resends what the
  // outbox holds, and starts the shards at the cursors stored in `opt.db`. `head` is the
  // highest rowid committed so far (EventStore::head()).
  static std::expected<std::unique_ptr<Detection>, std::string> Start(const DetectionOptions& opt,
                                                                     int64_t head);
  ~Detection();

  // The store committed rows up to `head` (does not block). PostgreSQL: the shards look at
  // their nodes' heads now (`head` is not used).
  void Notify(int64_t head);
  // PostgreSQL: this collector committed events of these nodes (does not block): the shards
  // look at their heads now, and a node not seen before has its lease looked for now
  // rather than at the lease thread's next tick.
  void NotifyNodes(const std::vector<std::string>& nodes);
  // The store committed these batches (EventStore's on_commit; does not block).
  void Notify(StoreCommit commit);
  // Backpressure: true when ingest may ack now; otherwise `release` runs once the lag fell
  // back (or at Stop).
  bool Admit(std::function<void()> release);
  // Runs every held ack and admits everything from now on (shutdown: streams must finish).
  void ReleaseAll();
  int64_t lag() const;
  // The lowest rowid a shard still needs (retention keeps it and everything above).
  int64_t floor() const;
  // A sensor's Hello: its loss totals are checked like a status event's.
  void OnHello(const std::string& node, const v1::Hello& hello);

  // SIGHUP: reloads rule and policy files; on any error keeps what it had and says why.
  // Returns the new rules' summary (RuleSet::Summary).
  std::expected<std::vector<std::string>, std::string> Reload();
  void Stop();
  void SetInventoryRequester(InventoryRequester fn);
  void SetStopRequester(StopRequester fn);
  // An inventory reply (IngestOptions::on_inventory): container_id, error, entries and
  // reply set; detection adds what it asked for (names, rules) and stores it.
  void SubmitInventory(const std::string& node, uint64_t command_id, StoredInventory inv);

  const DetectionCounters& counters() const { return counters_; }
  // Null when baselines are off.
  const Baselines* baselines() const { return baselines_.get(); }
  std::map<std::string, uint64_t> AlertsByRule() const;
  std::map<std::string, NodeLossView> NodeLosses() const;
  std::vector<std::pair<std::string, OutputStats>> OutputStatsList() const;
  // Active rules (enabled and evaluated) and inactive ones (Rule::inactive_reason).
  size_t rules_loaded() const { return rules_loaded_; }
  size_t rules_inactive() const { return rules_inactive_; }
  // The loaded rules' summary (RuleSet::Summary), as logged at start and reload.
  std::vector<std::string> RulesSummary() const;
  // Why detection is unhealthy (store errors now, lag over the bound); "" when healthy.
  std::string Unhealthy() const;

 private:
  struct Shard;
  struct PgNode;
  struct LeaseChange;
  using Clock = std::chrono::steady_clock;
  explicit Detection(DetectionOptions opt);
  std::expected<std::shared_ptr<const RuleSet>, std::string> LoadRules() const;
  std::expected<std::shared_ptr<const ImagePolicy>, std::string> LoadPolicy() const;
  std::expected<std::shared_ptr<const PreventPolicy>, std::string> LoadDriftPolicy() const;
  size_t ShardOf(const std::string& node) const;
  struct FeedEntry;
  void RunShard(Shard* s);
  // PostgreSQL: takes, renews, balances and gives back node leases (its own connection).
  void RunLeases();
  // PostgreSQL, at start: refuses an owner name a running collector uses.
  Result<> WaitOwnerFree();
  void Housekeeping();
  void Emit(int64_t alert_id, const std::string& json);
  void Deliver(AlertOutput* o, const std::string& output, int64_t alert_id,
               std::string_view json);
  // The output's Emit, its outcome recorded for the outbox; the caller marked it in flight.
  void Send(AlertOutput* o, const std::string& output, int64_t alert_id, std::string_view json);
  // Sends `rows` of alert `id`, which a shard held (held_ids_) until now. The rows are in
  // flight before the hold is lifted, so that the outbox sweep never sends one as well.
  void Release(int64_t id, const std::vector<AlertStore::PendingDelivery>& rows);
  // Start: undelivered alerts stored without their container's metadata are completed from
  // the rebuilt correlation state, or held in their shard for another metadata_wait; the
  // rest is returned, to be sent again.
  std::vector<AlertStore::PendingDelivery> CompleteUndelivered(
      std::vector<AlertStore::PendingDelivery> rows);
  // Sends outbox rows not in flight to their outputs; the number sent.
  size_t SendOutbox(const std::vector<AlertStore::PendingDelivery>& rows);
  void MaybeRelease();
  // Over `percent`% of the lag bound, or a shard's feed over `percent`% of three quarters
  // of its share of feed_max_bytes.
  bool Behind(int percent) const;
  // Inventory bookkeeping (housekeeping thread; wants come from the shards under mu_).
  void WantInventory(const Alert& a);
  // A new alert of a --respond-rules rule: the container's node is asked to stop it.
  void Respond(const Alert& a);
  void RequestDueInventories(Clock::time_point now);
  void StoreInventory(const std::string& node, uint64_t command_id, StoredInventory inv);

  DetectionOptions opt_;
  std::vector<std::pair<std::string, std::unique_ptr<AlertOutput>>> outputs_;
  std::vector<std::string> output_names_;
  DetectionCounters counters_;
  std::atomic<size_t> rules_loaded_{0};
  std::atomic<size_t> rules_inactive_{0};
  std::atomic<int64_t> head_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> holding_{true};

  mutable Mutex mu_;
  CondVar hk_cv_;  // housekeeping waits
  std::map<std::string, uint64_t> by_rule_ DW_GUARDED_BY(mu_);
  std::vector<std::string> rules_summary_ DW_GUARDED_BY(mu_);
  std::map<std::string, NodeLossView> losses_ DW_GUARDED_BY(mu_);
  std::deque<std::function<void()>> held_ DW_GUARDED_BY(mu_);
  std::vector<std::pair<int64_t, std::string>> delivered_ DW_GUARDED_BY(mu_);
  std::set<std::pair<int64_t, std::string>> in_flight_ DW_GUARDED_BY(mu_);
  // Alerts a shard holds for their container's metadata: the outbox sweep leaves them (and
  // their summaries) alone.
  std::set<int64_t> held_ids_ DW_GUARDED_BY(mu_);
  InventoryRequester request_inventory_ DW_GUARDED_BY(mu_);
  StopRequester request_stop_ DW_GUARDED_BY(mu_);
  std::set<std::pair<std::string, std::string>> stops_asked_ DW_GUARDED_BY(mu_);  // node, id
  struct InventoryReceived {
    std::string node;
    uint64_t command_id = 0;
    StoredInventory inv;
  };
  std::deque<InventoryReceived> replies_ DW_GUARDED_BY(mu_);
  struct InventoryWant {
    std::string node, container_id, container_name, pod_name, pod_namespace;
    std::set<std::string> rules;
    Clock::time_point first, last;  // alerts that asked for it
  };
  std::map<std::pair<std::string, std::string>, InventoryWant> wanted_ DW_GUARDED_BY(mu_);
  // Housekeeping thread only.
  std::map<uint64_t, std::pair<InventoryWant, Clock::time_point>> asked_;  // by command id
  uint64_t next_command_id_ = 1;
  std::unique_ptr<DetectionStore> hk_store_;
  std::unique_ptr<BaselineStore> baseline_store_;  // housekeeping thread: edits
  int64_t baseline_edit_ = 0;                      // the last edit loaded
  Clock::time_point next_edit_poll_{};
  void LoadBaselineEdits();

  std::unique_ptr<Baselines> baselines_;  // shared by the shards (its own lock)

  // PostgreSQL: several collectors share the store; each evaluates the nodes it leases.
  bool pg_ = false;
  std::atomic<bool> stop_leases_{false};  // set once the shards stopped (their last commits)
  // Leases the shards gave back, for the lease thread to release in the store.
  std::vector<Lease> released_ DW_GUARDED_BY(mu_);
  std::set<std::string> seen_nodes_ DW_GUARDED_BY(mu_);  // NotifyNodes: committed here before
  bool new_nodes_ DW_GUARDED_BY(mu_) = false;             // some not seen before: a lease tick
  CondVar lease_cv_;  // the lease thread waits

  // Destruction: shards (their threads) stop before the outputs they emit to go.
  std::vector<std::unique_ptr<Shard>> shards_;
  std::thread housekeeping_;
  std::thread leases_;
};

}  // namespace driftwatch::collector
