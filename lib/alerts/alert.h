// alert: one rule match, and its JSON in Falco's shape, so that falcosidekick and existing
// Falco pipelines take driftwatch alerts unchanged.
//
// Falco's JSON (falco userspace/engine/formats.cpp; falco.org "Output Channels"): one object
// per line with the keys, in the sorted order Falco's JSON library prints them,
//   hostname, output, output_fields, priority, rule, source, tags, time
// where `time` is "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (UTC, always 9 digits), `output` is
// "HH:MM:SS.nnnnnnnnn: <Priority> <message>", `priority` is capitalized ("Critical",
// "Informational"), `tags` is sorted and de-duplicated, and `output_fields` holds every
// %field of the rule's output plus "evt.time" as an integer (ns since the epoch).
//
// Thread-safety: plain data and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/rules/priority.h"
#include "lib/rules/rule_context.h"

namespace driftwatch {

// One value of output_fields: Falco prints numbers and booleans unquoted and unset fields
// as null.
struct AlertField {
  enum class Kind { kNull, kString, kNumber, kBool };
  Kind kind = Kind::kNull;
  std::string str;
  int64_t num = 0;
  bool boolean = false;

  static AlertField Null() { return {}; }
  static AlertField String(std::string s) { return {Kind::kString, std::move(s), 0, false}; }
  static AlertField Number(int64_t n) { return {Kind::kNumber, {}, n, false}; }
  static AlertField Bool(bool b) { return {Kind::kBool, {}, 0, b}; }

  // The text a rule's output printed for this value ("<NA>" for null).
  std::string Text() const {
    switch (kind) {
      case Kind::kNull: return "<NA>";
      case Kind::kString: return str;
      case Kind::kNumber: return std::to_string(num);
      case Kind::kBool: return boolean ? "true" : "false";
    }
    return {};
  }
};

struct Alert {
  int64_t time_ns = 0;          // the event's time
  std::string rule;
  Priority priority = Priority::kWarning;
  std::string message;          // the rule's output with its %fields resolved
  std::vector<std::pair<std::string, AlertField>> output_fields;  // any order
  std::vector<std::string> tags;
  std::string source = "syscall";
  std::string hostname;         // the node the event came from

  // Not in Falco's JSON: the store's columns and the de-duplication key (FillAlertContext).
  std::string node;
  std::string container_id;     // full id; "host" for host processes
  std::string container_name;
  std::string pod_name;
  std::string pod_namespace;
  std::string event_key;        // "node/boot_id/sensor_start_ns/seq"; "" when the id is unset
  // What the alert is about, for aggregation (lib/alerts/alert_aggregation.h): an exec's
  // "sha256:<hex>" when its executable was hashed, else its path, and its process name
  // (one busybox is many commands); the file of a write,
  // chmod, read or prevented exec (its sha256 first, likewise); a connection's executable
  // and peer. "" when the event names none (container alerts).
  std::string subject;
};

// output_fields an aggregated alert's summary adds (AggregateJson): how many alerts it stands
// for, and the event times of the first and the last (ISO 8601, as `time`).
inline constexpr const char* kAggregateCountField = "driftwatch.count";
inline constexpr const char* kAggregateFirstField = "driftwatch.first_time";
inline constexpr const char* kAggregateLastField = "driftwatch.last_time";

// Fills time_ns, hostname, node, the container and pod columns and event_key from the
// context's event and container.
void FillAlertContext(const RuleContext& ctx, Alert* alert);

// "node/boot_id/sensor_start_ns/seq" for an event with an id (seq > 0), else "".
std::string EventKey(const v1::Event& ev);

// Appends the alert as one line of Falco JSON, without the newline.
void AppendFalcoJson(const Alert& alert, std::string* out);
std::string FalcoJson(const Alert& alert);

// The Falco fields of an alert (hostname, message, output_fields, priority, rule, source,
// tags, time_ns) read back from its JSON line, as a collector restart finds it in the store;
// the store's columns (node, container, event_key, ...) are not in it. nullopt unless
// AppendFalcoJson of the result gives `json` again byte for byte (a line of another shape,
// or one it cannot read back exactly), so that nothing of it is lost in a rewrite.
std::optional<Alert> ParseFalcoJson(std::string_view json);

// "HH:MM:SS.nnnnnnnnn: Priority message": Falco's `output` string (UTC).
std::string FalcoOutputLine(const Alert& alert);

// `json` (a line of AppendFalcoJson) with kAggregateCountField, kAggregateFirstField and
// kAggregateLastField added to its output_fields, in their sorted place (fields of those
// names already there are replaced). Works from the stored line alone: after a restart the
// Alert is gone. A line without an output_fields object is returned unchanged.
std::string AggregateJson(std::string_view json, uint64_t count, int64_t first_ns,
                          int64_t last_ns);

}  // namespace driftwatch
