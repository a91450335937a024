// counters: the sensor's counters as one list. The status event (SensorStatus), /metrics and
// /status all render one reading of this list, so a counter added to the table in
// counters.cc appears in all three, under names that say the same thing, and a report never
// mixes two readings.
//
// Thread-safety: ReadCounters reads the sources' atomics (any thread); a reading is plain data.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/daemon/metrics.h"

namespace driftwatch::sensor {

class AuditSource;
class ContainerRegistry;
class Enricher;
class ExecGuard;
class FanotifyWatcher;
class Output;
class Responder;
class SensitiveReads;
class Spool;
class Uplink;

// The enrich stage's counts, published by the audit parser's thread after each event (the
// Enricher itself is that thread's alone) for the threads that report.
struct EnrichCounters {
  std::atomic<uint64_t> state_read{0}, state_gone{0}, state_moved{0}, env_capped{0};
  std::atomic<uint64_t> name_files_refused{0};
  std::atomic<uint64_t> by_cgroup{0}, by_parent{0}, by_device{0}, unknown{0};
  std::atomic<uint64_t> cache_trusted{0};
  void Publish(const Enricher& e);
};

// What the counters are read from; null: that stage is off (its counters are left out).
struct CounterSources {
  const AuditSource* audit = nullptr;
  const FanotifyWatcher* fanotify = nullptr;
  const ContainerRegistry* registry = nullptr;
  const Spool* spool = nullptr;
  const Output* output = nullptr;  // REQUIRED
  const Uplink* uplink = nullptr;
  const EnrichCounters* enrich = nullptr;
  const ExecGuard* prevent = nullptr;
  const Responder* respond = nullptr;
  const SensitiveReads* reads = nullptr;
};

struct CounterReading {
  std::string_view section;       // /status object it belongs to: "audit", "fanotify", ...
  std::string_view key;           // its key there ("" : not in /status)
  std::string_view status_field;  // SensorStatus field ("" : not in the status event)
  std::string_view metric;        // Prometheus name
  std::string_view help;
  bool gauge = false;
  std::string_view label_name, label_value;  // one label, or none
  uint64_t value = 0;
};

std::vector<CounterReading> ReadCounters(const CounterSources& src);

// Sets the SensorStatus fields the readings name.
void SetStatusFields(const std::vector<CounterReading>& r, v1::SensorStatus* status);
// One sample per reading.
void WriteMetrics(const std::vector<CounterReading>& r, MetricsWriter* w);
// `"key":value` pairs of one /status section, each preceded by a comma.
std::string StatusJsonFields(const std::vector<CounterReading>& r, std::string_view section);

}  // namespace driftwatch::sensor
