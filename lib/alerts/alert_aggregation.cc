#include "lib/alerts/alert_aggregation.h"

namespace driftwatch {

std::string AggregationKey(const Alert& a, const AggregationOptions& opt) {
  if (opt.window.count() <= 0 || a.source == "internal") return "";
  if (a.priority <= Priority::kCritical && !opt.critical) return "";
  // '\n' separates the parts: node names cannot hold one (the node name check refuses
  // control characters) and container ids are hex, so parts cannot run together.
  std::string key;
  key.reserve(a.rule.size() + a.node.size() + a.container_id.size() + a.subject.size() + 3);
  for (const std::string* part : {&a.rule, &a.node, &a.container_id}) {
    key += *part;
    key += '\n';
  }
  key += a.subject;
  return key;
}

}  // namespace driftwatch
