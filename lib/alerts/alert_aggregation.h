// alert_aggregation: which alerts repeat one another. Repeats of an alert (same rule, node,
// container and Alert::subject: the executable's sha256, else its path; a file; a peer)
// within a window become one stored alert with a count and the event times of the first
// and the last. The store does the counting in detection's commit (AlertStore::
// CommitDetection), so a restart neither loses nor double-counts a repeat; this file holds
// the policy: the key, and who is never aggregated.
//
// Thread-safety: plain data and pure functions.
#pragma once

#include <chrono>
#include <string>

#include "lib/alerts/alert.h"

namespace driftwatch {

struct AggregationOptions {
  // An aggregate takes repeats for this long after its first alert was stored; 0: off.
  std::chrono::nanoseconds window = std::chrono::seconds(60);
  // Critical, Alert and Emergency alerts too: by default each of those stays its own.
  bool critical = false;
};

// The key repeats of `a` share; "" when `a` is stored on its own: aggregation off, a
// priority of Critical or above without `critical`, or one of the collector's own alerts
// (source "internal": each blind window carries its own losses).
std::string AggregationKey(const Alert& a, const AggregationOptions& opt);

}  // namespace driftwatch
