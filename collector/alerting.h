// alerting: the collector's detection stage. Stored events (after their batch committed)
// are queued to one detection thread, which runs them through the Detector (correlation by
// node and container, then the rules), stores each alert (SQLite, de-duplicated by event and
// rule) and hands new ones to the outputs (file or stdout, webhook).
//
// Drift inventories: when rules tagged `inventory_tag` alert on a container, the detection
// thread asks that container's sensor for its drift inventory (what `driftwatch diff` shows)
// once the container's alerts pause for `inventory_quiet`, or `inventory_max_delay` after the
// first alert waiting, whichever comes first: one inventory per burst, taken after it, and at
// most one per container per max delay while alerts keep coming. Replies are stored beside
// the alerts (`driftwatch inventory`).
//
// Thread-safety: Submit and Reload from any thread; counters() any thread. The Detector,
// its rules and the alert store are touched by the detection thread only (Reload hands
// it new rules through a locked slot).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <condition_variable>
#include <deque>
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "driftwatch/v1/collector.pb.h"
#include "lib/alert_output.h"
#include "lib/alert_store.h"
#include "lib/detect.h"
#include "lib/event_store.h"
#include "lib/image_policy.h"
#include "lib/rule_engine.h"

namespace driftwatch::collector {

struct AlertingOptions {
  std::vector<std::string> rule_files;       // empty: the shipped rules
  std::vector<std::string> approved_images;  // image policy files; empty: no digest check
  std::string db;                            // the collector's database (alerts table)
  std::vector<std::string> outputs;          // "-" (stdout) or files, Falco JSON lines
  std::vector<std::string> webhooks;         // http(s) URLs
  std::string webhook_ca;                    // CA file for https webhooks (default: system)
  // Events waiting for detection (~0.5-1 KiB each): beyond it a burst is stored but not
  // evaluated, counted in driftwatch_collector_detect_queue_drops_total.
  size_t queue_events = 1 << 18;
  std::string inventory_tag = "drift";  // "" : never ask for inventories
  std::chrono::milliseconds inventory_quiet{2000};
  std::chrono::milliseconds inventory_max_delay{30000};
  std::chrono::milliseconds inventory_timeout{60000};  // a reply later than this is a failure
};

// Sends Command{inventory} to the node's sensor (IngestService::RequestInventory).
using InventoryRequester = std::function<std::expected<void, std::string>(
    const std::string& node, const std::string& container_id, uint64_t command_id)>;

struct AlertingCounters {
  std::atomic<uint64_t> events{0};
  std::atomic<uint64_t> alerts{0};
  std::atomic<uint64_t> queue_drops{0};
  std::atomic<uint64_t> store_errors{0};
  std::atomic<uint64_t> eval_ns{0};
  std::atomic<uint64_t> reloads{0}, reload_failures{0};
  std::atomic<uint64_t> inventories_requested{0}, inventories_stored{0};
  std::atomic<uint64_t> inventories_failed{0};  // not sent, error reply, timed out, not stored
};

class Alerting {
 public:
  // Loads rules and policy (errors name file and line), opens the alerts table and the
  // outputs, starts the detection thread.
  static std::expected<std::unique_ptr<Alerting>, std::string> Start(const AlertingOptions& opt);
  ~Alerting();

  // One committed batch (its node inside); decoded on the detection thread.
  void Submit(std::shared_ptr<const PreparedBatch> batch);
  // SIGHUP: reloads rule and policy files; on any error keeps what it had and says why.
  std::expected<size_t, std::string> Reload();
  void Stop();
  // Before the server starts: how inventories are asked for (without one, none are).
  void SetInventoryRequester(InventoryRequester fn);
  // A sensor's InventoryReply (any thread); stored on the detection thread.
  void SubmitInventory(const std::string& node, v1::InventoryReply reply);

  const AlertingCounters& counters() const { return counters_; }
  // Alerts by rule and the outputs' statistics, for metrics (a locked copy).
  std::map<std::string, uint64_t> AlertsByRule() const;
  std::vector<std::pair<std::string, OutputStats>> OutputStatsList() const;
  size_t rules_loaded() const { return rules_loaded_; }

 private:
  explicit Alerting(AlertingOptions opt) : opt_(std::move(opt)) {}
  std::expected<std::shared_ptr<const RuleSet>, std::string> LoadRules() const;
  std::expected<std::shared_ptr<const ImagePolicy>, std::string> LoadPolicy() const;
  void Run();
  // Detection thread: inventory bookkeeping.
  using Clock = std::chrono::steady_clock;
  void WantInventory(const Alert& a);
  void RequestDueInventories(Clock::time_point now);
  void StoreInventory(const std::string& node, const v1::InventoryReply& reply);
  Clock::time_point NextInventoryDue() const;

  AlertingOptions opt_;
  std::unique_ptr<AlertStore> store_;
  std::vector<std::pair<std::string, std::unique_ptr<AlertOutput>>> outputs_;
  std::unique_ptr<Detector> detector_;  // detection thread only
  AlertingCounters counters_;
  std::atomic<size_t> rules_loaded_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<const PreparedBatch>> queue_;            // GUARDED_BY(mu_)
  size_t queued_ = 0;                                                 // GUARDED_BY(mu_)
  bool stop_ = false;                                                 // GUARDED_BY(mu_)
  std::shared_ptr<const RuleSet> new_rules_;                          // GUARDED_BY(mu_)
  std::shared_ptr<const ImagePolicy> new_policy_;                     // GUARDED_BY(mu_)
  std::map<std::string, uint64_t> by_rule_;                           // GUARDED_BY(mu_)
  InventoryRequester request_inventory_;                              // GUARDED_BY(mu_)
  std::deque<std::pair<std::string, v1::InventoryReply>> replies_;    // GUARDED_BY(mu_)

  // Detection thread only. An inventory wanted for (node, container id), or asked for.
  struct InventoryWant {
    std::string node, container_id, container_name, pod_name, pod_namespace;
    std::set<std::string> rules;
    Clock::time_point first, last;  // alerts that asked for it
  };
  std::map<std::pair<std::string, std::string>, InventoryWant> wanted_;
  std::map<uint64_t, std::pair<InventoryWant, Clock::time_point>> asked_;  // by command id
  uint64_t next_command_id_ = 1;
  std::thread thread_;
};

}  // namespace driftwatch::collector
