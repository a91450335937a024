// falco_tables: Falco's own vocabulary, generated from falcosecurity/libs (commit 48dfd53cd)
// by tools/gen_falco_tables.py into falco_tables.cc: the fields of the syscall source's
// filter classes (evt, proc, thread, user, group, fd, fs.path, fdlist), the parameter names
// of every event of its event table (what evt.arg.<name> accepts), the parameters of the
// exit events whose types driftwatch's events carry, the flag names they print with, and
// each event's category. The field registry (rule_fields.cc) and evt.arg
// (fields_evt_arg.cc) read them; nothing else should need to.
//
// Thread-safety: immutable tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "lib/rules/rule_fields.h"

namespace driftwatch::falco {

// One field of Falco's table.
struct FalcoField {
  std::string_view name;
  FieldType type;
  FieldArgMode arg;
  bool numeric_arg;  // the [arg] is a number (proc.aname[2]), not a key (proc.env[HOME])
  bool deprecated;
  std::string_view doc;
};
extern const FalcoField kFalcoFields[];
extern const size_t kFalcoFieldCount;
inline std::span<const FalcoField> FalcoFields() { return {kFalcoFields, kFalcoFieldCount}; }

// libs' PT_* parameter types (driver/ppm_events_public.h), those its event table uses.
enum class ParamType : uint8_t {
  ABSTIME, BYTEBUF, CHARBUF, CHARBUFARRAY, DYN, ENUMFLAGS16, ENUMFLAGS32, ENUMFLAGS8, ERRNO,
  FD, FDLIST, FLAGS16, FLAGS32, FLAGS8, FSPATH, FSRELPATH, GID, INT16, INT32, INT64,
  IPV4ADDR, MODE, PID, PID32, PORT, RELTIME, SIGSET, SIGTYPE, SOCKADDR, SOCKTUPLE, SYSCALLID,
  UID, UINT16, UINT32, UINT64, UINT8,
};
// libs' PF_* print formats.
enum class ParamFormat : uint8_t { DEC, HEX, NA, OCT };

// A name of a flags or mode table (driver/flags_table.c), in the table's order: the order
// Falco prints them in. Ends with {nullptr, 0}.
struct FlagName {
  const char* name;
  uint32_t value;
};

// One parameter of an event.
struct Param {
  std::string_view name;
  ParamType type;
  ParamFormat format;
  const FlagName* flags;  // flags and mode parameters: their names; else null
};

// Every parameter name of every event in Falco's event table (enter and exit), with the
// type of its first definition (the type evt.rawarg.<name> takes), sorted by name.
struct ParamName {
  std::string_view name;
  ParamType type;
};
extern const ParamName kParamNames[];
extern const size_t kParamNameCount;
inline std::span<const ParamName> ParamNames() { return {kParamNames, kParamNameCount}; }

// The exit-event parameters of each event type driftwatch produces (execve, execveat, the
// chmod family, openat, renameat2, unlinkat), sorted by type name. Two departures from
// libs, both in tools/gen_falco_tables.py: fchmodat2 (a generic event in libs) has
// fchmodat's parameters, and execveat has execve's filename (audit names the file).
struct EventParams {
  std::string_view type;
  std::span<const Param> params;
};
extern const EventParams kProducedEvents[];
extern const size_t kProducedEventCount;
inline std::span<const EventParams> ProducedEvents() {
  return {kProducedEvents, kProducedEventCount};
}

// libs' EC_* categories.
enum class Category : uint8_t {
  FILE, INTERNAL, IO_OTHER, IO_READ, IO_WRITE, IPC, ITER, MEMORY, NET, OTHER, PROCESS,
  SCHEDULER, SIGNAL, SLEEP, SYSTEM, TIME, UNKNOWN, USER, WAIT,
};
// The category of every event name of the event table (its first event's), sorted by name.
struct EventCategory {
  std::string_view type;
  Category category;
};
extern const EventCategory kEventCategories[];
extern const size_t kEventCategoryCount;
inline std::span<const EventCategory> EventCategories() {
  return {kEventCategories, kEventCategoryCount};
}

}  // namespace driftwatch::falco
