// event_types: the event type names a rule's evt.type may compare with, and which of them
// driftwatch's events carry. Falco refuses a rule comparing evt.type with a name its event
// tables do not know; a known name driftwatch never produces (connect, ptrace, ...) makes
// a rule that needs it inactive instead of refused.
//
// Thread-safety: immutable tables.
#pragma once

#include <cstdint>
#include <string_view>

namespace driftwatch {

// Falco knows this event type: a syscall of its syscall tables, an event of its event
// table (container, procexit, ...), or one of driftwatch's own (sensor_status, attrib,
// exec_prevented).
bool IsKnownEventType(std::string_view name);

// driftwatch's events can have this evt.type (EventType in lib/event/event_view.h): the
// audit execve/execveat/chmod family, the file events' types, container, sensor_status.
bool IsProducedEventType(std::string_view name);

// A set of event types as bits: one per type driftwatch produces and one for every other
// name (an event outside the table), so that a set is exact for the types that occur. The
// engine skips a rule whose condition cannot be true for the event's type, as Falco indexes
// rules by event type.
using EventTypeSet = uint32_t;
// The set of one event type (the "other" bit for a name driftwatch does not produce).
EventTypeSet EventTypeBit(std::string_view name);
inline constexpr EventTypeSet kAnyEventType = ~EventTypeSet{0};

// A short group for an event type from its category in Falco's event table, for summaries
// of what inactive rules wait for: "network", "file", "process", "ipc", "memory", "signal",
// "system", "user", "I/O", "scheduler", "time", "internal"; "other" for a syscall libs gives
// no event of its own (a generic syscall event) or a name it does not know.
std::string_view EventTypeGroup(std::string_view name);

}  // namespace driftwatch
