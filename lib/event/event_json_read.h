// event_json_read: event JSON (lib/event/event_json.h, what `analyze --events` and
// `driftwatch events` print) read back into events: for hand-written and stored events that
// `driftwatch rules test` runs through the rules. It is the writer's own field table run
// backwards (lib/event/event_fields.h, each field's `set`), so there is no second list of
// fields to drift from the first: read then written, an event prints as it was read.
//
// The input: one JSON object per line, keyed by the Falco field names event JSON prints,
// each value of its field's type (a string, an integer, true or false, a list of strings).
// Strings are bytes as AppendJsonString writes them: \udc80..\udcff is the byte 0x80..0xff.
//   - evt.type is required: it says the kind. execve, execveat: exec; chmod, fchmod,
//     fchmodat: chmod; openat: a file write, or a sensitive read when a field only reads
//     print is given (sensitive.entry, ...); renameat2, unlinkat, attrib: a file write;
//     connect, accept, accept4, bind, listen: network; container; sensor_status;
//     exec_prevented.
//   - A missing field is unset: the zero of its type, or audit's "unset" where JSON prints
//     -1 (user.loginuid, proc.sid) or leaves the field out (fd.num).
//   - container.* and k8s.* (but container.id, container.full_id, container.attribution)
//     on an event of another kind are what the sensor reported of its container: they make
//     EventRead::container.
//   - Refused, naming the field: an unknown field, a field the kind does not print, a value
//     of the wrong JSON type, a field given twice, null, nested objects or lists, and any
//     field the event, written again, would not print as given (a value not in the writer's
//     form, "755" for "0755"; a field computed from others, such as proc.cmdline or
//     fd.directory, that disagrees with them).
//   - collector.stored_ns (`driftwatch events` adds it) is accepted and ignored.
// Parsing never recurses and never looks into a nested value, so depth costs nothing.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/result.h"

namespace driftwatch {

struct EventRead {
  v1::Event event;
  // What container.* and k8s.* said of the event's container (id: the event's
  // container_id); nullopt when no such field was given or the event is a container event.
  std::optional<v1::ContainerInfo> container;
};

// One line (without its newline). Errors name the field, or the column of a syntax error.
Result<EventRead> ParseEventJson(std::string_view line);

// Longer lines are refused: no event the writer prints comes near it.
inline constexpr size_t kMaxEventJsonLine = size_t{16} << 20;

// Every event of a file of lines, in order. Blank lines and lines starting with '#' are
// skipped (notes in hand-written files). The first bad line is the error: "PATH:LINE: ...".
Result<std::vector<EventRead>> ReadEventJsonFile(const std::string& path);

}  // namespace driftwatch
