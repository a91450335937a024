// detect: the last stage of the data flow, shared by the collector and `driftwatch analyze`:
// every event goes through the correlator (per node and container state) and the rules;
// each rule match becomes an Alert in Falco's shape, handed to the caller's sink.
//
//   event ─► Correlator::Observe ─► RuleSet::Evaluate ─► Alert ─► sink (store, outputs)
//                     └─ earlier execs whose facts changed (a write arrived after the exec
//                        of the same file) are evaluated again; only rules that did not
//                        match them the first time can alert then.
//
// Thread-safety: not thread-safe (the correlator is not): one Detector per ingest thread.
// SetRules may be called between OnEvent calls (SIGHUP reload).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "lib/alerts/alert.h"
#include "lib/detect/correlation.h"
#include "lib/rules/rule_engine.h"

namespace driftwatch {

struct DetectorStats {
  uint64_t events = 0;
  uint64_t alerts = 0;
  uint64_t reevaluations = 0;
  uint64_t eval_ns = 0;  // time spent in rule evaluation
  std::unordered_map<std::string, uint64_t> by_rule;
};

class Detector {
 public:
  using Sink = std::function<void(Alert&& alert)>;
  // Sees the event's context before the rules do, on its first look only (the collector's
  // baseline check sets ctx->baseline).
  using Hook = std::function<void(RuleContext* ctx)>;

  Detector(std::shared_ptr<const RuleSet> rules, CorrelationOptions options = {});

  void SetRules(std::shared_ptr<const RuleSet> rules) { rules_ = std::move(rules); }
  void SetImagePolicy(std::shared_ptr<const ImagePolicy> policy) {
    correlator_.SetImagePolicy(std::move(policy));
  }
  // One event from `node` (its EventId.node is ignored: the caller says who sent it).
  void OnEvent(const std::string& node, const v1::Event& ev, const Sink& sink,
               const Hook& before = nullptr);

  const DetectorStats& stats() const { return stats_; }
  // Processes and containers each node lost to its own quota (Correlator::QuotaEvictions).
  std::vector<std::pair<std::string, uint64_t>> QuotaEvictions() const {
    return correlator_.QuotaEvictions();
  }

 private:
  void Evaluate(const RuleContext& ctx, bool again, const Sink& sink);

  std::shared_ptr<const RuleSet> rules_;
  Correlator correlator_;
  DetectorStats stats_;
  std::vector<RuleMatch> matches_;  // reused
  // Rules that matched an event already, for events that may come back for another look
  // (execs awaiting a late write); bounded, oldest forgotten first.
  std::unordered_map<std::string, std::set<std::string>> fired_;
  std::list<std::string> fired_order_;
};

// An Alert from one rule match: rule, priority, message, tags, typed output fields
// (numbers and booleans as JSON would have them, <NA> as null), and the event's context.
Alert MakeAlert(const RuleContext& ctx, const RuleMatch& m);

}  // namespace driftwatch
