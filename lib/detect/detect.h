// detect: the last stage of the data flow, shared by the collector and `driftwatch analyze`:
// every event goes through the correlator (per node and container state) and the rules;
// each rule match becomes an Alert in Falco's shape, handed to the caller's sink.
//
//   event ─► Correlator::Observe ─► RuleSet::Evaluate ─► Alert ─► sink (store, outputs)
//                     │                   └─ excepted by the rule's exceptions or allowed by
//                     │                      the drift policy ─► AllowedMatch ─► allowed sink
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
#include "lib/node/prevent_policy.h"
#include "lib/rules/rule_engine.h"

namespace driftwatch {

struct DetectorStats {
  uint64_t events = 0;
  uint64_t alerts = 0;
  uint64_t allowed = 0;  // matches a rule exception or the drift policy allowed
  uint64_t reevaluations = 0;
  uint64_t eval_ns = 0;  // time spent in rule evaluation
  std::unordered_map<std::string, uint64_t> by_rule;
};

// A rule match that is not an alert: the rule's own exception (Falco's `exceptions:`) or
// the drift policy allows it. Still said: the allowed-drift summary counts it.
struct AllowedMatch {
  Alert alert;             // the alert it would have been
  std::string allowed_by;  // "exception <name>" or "policy <entry name>"
  std::string workload;    // WorkloadOf its container
  std::string image;       // its container's image as the runtime names it
};

// The workload a container belongs to, for the allowed-drift summary: the pod's label
// app.kubernetes.io/name, app or k8s-app when it has one, else its pod name without the
// suffixes controllers generate (a Deployment's "-<template hash>-<5 chars>", a Job's or
// DaemonSet's "-<5 chars>", a CronJob's "-<minutes since the epoch>"); the container's name
// for a container outside a pod; "" for none.
std::string WorkloadOf(const v1::ContainerInfo* c);

class Detector {
 public:
  using Sink = std::function<void(Alert&& alert)>;
  using AllowedSink = std::function<void(AllowedMatch&& allowed)>;
  // Sees the event's context before the rules do, on its first look only (the collector's
  // baseline check sets ctx->baseline).
  using Hook = std::function<void(RuleContext* ctx)>;

  Detector(std::shared_ptr<const RuleSet> rules, CorrelationOptions options = {});

  void SetRules(std::shared_ptr<const RuleSet> rules) { rules_ = std::move(rules); }
  void SetImagePolicy(std::shared_ptr<const ImagePolicy> policy) {
    correlator_.SetImagePolicy(std::move(policy));
  }
  // Matches of drift rules (by default: PreventPolicy::Entry::rules) that the policy allows
  // go to the allowed sink instead of alerting. Null: none.
  void SetDriftPolicy(std::shared_ptr<const PreventPolicy> policy) { policy_ = std::move(policy); }
  // One event from `node` (its EventId.node is ignored: the caller says who sent it).
  // Allowed matches go to `allowed` (counted in stats().allowed either way).
  void OnEvent(const std::string& node, const v1::Event& ev, const Sink& sink,
               const Hook& before = nullptr, const AllowedSink& allowed = nullptr);

  const DetectorStats& stats() const { return stats_; }
  const std::shared_ptr<const RuleSet>& rules() const { return rules_; }
  // The container's info as the correlator knows it now (Correlator::ContainerContext).
  bool ContainerContext(const std::string& node, const std::string& id, RuleContext* ctx) const {
    return correlator_.ContainerContext(node, id, ctx);
  }
  // Processes and containers each node lost to its own quota (Correlator::QuotaEvictions).
  std::vector<std::pair<std::string, uint64_t>> QuotaEvictions() const {
    return correlator_.QuotaEvictions();
  }

 private:
  void Evaluate(const RuleContext& ctx, bool again, const Sink& sink, const AllowedSink& allowed);

  std::shared_ptr<const RuleSet> rules_;
  std::shared_ptr<const PreventPolicy> policy_;
  Correlator correlator_;
  DetectorStats stats_;
  std::vector<RuleMatch> matches_, excepted_;  // reused
  // Rules that matched an event already, for events that may come back for another look
  // (execs awaiting a late write); bounded, oldest forgotten first.
  std::unordered_map<std::string, std::set<std::string>> fired_;
  std::list<std::string> fired_order_;
};

// An alert of a container that names neither its container nor its image: the node had not
// reported the container (yet) when the event was evaluated. Host and internal alerts never.
bool MissingContainerMetadata(const Alert& a);

// Fills an alert made before its container's info was known as if the info had been there:
// the container and pod columns, every container.* and k8s.* value of output_fields (from
// `container`, a Correlator::ContainerContext), and the message, made again from the rule's
// output (rules->Find(a->rule)) with those values. The message is kept as it was when the
// rule is gone or its output no longer makes the old message from the old values (reloaded
// with another output). Lineage, files and the other fields stay the event's.
void FillContainerMetadata(const RuleContext& container, const RuleSet* rules, Alert* a);

// An Alert from one rule match: rule, priority, message, tags, typed output fields
// (numbers and booleans as JSON would have them, <NA> as null), and the event's context.
Alert MakeAlert(const RuleContext& ctx, const RuleMatch& m);

}  // namespace driftwatch
