// event_fields: the fields an event carries itself, named as Falco and the rules name them
// (proc.pid, fd.name, container.image, sensor.kernel_lost, ...): the table event JSON is
// written from (lib/event/event_json.cc walks it) and that the rules' field registry
// (lib/rules/rule_fields.h) takes in, so that every key of event JSON is a rule field with
// a type and a doc. A field the JSON prints is added here, in the order of the JSON's keys.
//
// Thread-safety: the table is immutable; getters are pure functions of their arguments.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/event/event_view.h"

namespace driftwatch {

enum class FieldType {
  kString,
  kNumber,  // int64
  kBool,
  kList,    // several strings (proc.args, proc.aname without index)
  kIpNet,   // an IP address as text (fd.net...): compared with networks ("10.0.0.0/8")
};

std::string_view FieldTypeName(FieldType t);

// A field's value. Only the member that matches the field's type is meaningful.
struct FieldValue {
  std::string_view str;
  int64_t num = 0;
  bool boolean = false;
  std::vector<std::string_view> list;
  std::string buf;  // backing store for computed strings; str may point into it

  // Resets the view members; keeps the capacity of buf and list.
  void Clear() {
    str = {};
    num = 0;
    boolean = false;
    list.clear();
    buf.clear();
  }
};

// One field of the event itself. `doc`: its meaning and where the value comes from; for a
// field the rules define too (lib/rules/fields_*.cc, with their doc), only how the JSON's
// value differs from theirs, or empty. `get` fills *out as event JSON writes it and returns true
// when the JSON prints the field for this event (fields every event of a kind prints return
// true with an empty or zero value); `info` is what the sensor reported about the event's
// container, or null (a container event's own body is used for container events).
//
// `set` is `get` backwards, for event JSON read back (lib/event/event_json_read.h): it puts
// the value, as `get` writes it, into `ev`, whose body is already of one of the field's
// kinds, and into `info` (container.* and k8s.*: the container event's own body for a
// container event). Setters run in the table's order, so a later field may refine what an
// earlier one set (proc.argv after proc.exe). Returns null, or why the value was refused
// ("not octal text"). A field with no setter is computed from others (proc.cmdline from
// proc.name and proc.args, fd.directory from fd.name): the reader only checks it.
struct EventField {
  std::string_view name;
  FieldType type;         // the JSON value's type
  std::string_view doc;   // meaning, and where the value comes from
  KindSet kinds;          // the kinds whose JSON prints it; empty: not in event JSON
  bool (*get)(const v1::Event& ev, const v1::ContainerInfo* info, FieldValue* out);
  const char* (*set)(const FieldValue& v, v1::Event* ev, v1::ContainerInfo* info);
};

// Every event field, in the order event JSON prints them.
std::span<const EventField> EventFields();

// A container mount as Falco's container.mounts prints one: "source:dest:mode:rdrw:propagation"
// (mode is always empty: CRI has none; rdrw "true" or "false").
std::string MountText(const v1::Mount& m);

// `driftwatch events` adds this field (in EventFields(), with no kinds) after the event's
// own: when the collector committed the event.
inline constexpr std::string_view kCollectorStoredNs = "collector.stored_ns";

}  // namespace driftwatch
