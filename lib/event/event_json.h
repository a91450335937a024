// Events as JSON objects keyed by Falco's field names (DESIGN.md, "Field names"): what
// `driftwatch analyze --events` prints, one object per line.
//
// Every string value is bytes (argv, paths, names: whatever the kernel or the runtime gave),
// written so that the output is JSON and no byte is lost (README, "File names that are not
// UTF-8"): valid UTF-8 as it is; each byte that is not part of a valid UTF-8 sequence
// (overlong forms and encoded surrogates included) as the lone surrogate \udc80..\udcff of
// its value (Python's "surrogateescape" reads it back); '"', '\\' and control characters
// escaped as JSON requires. A valid name never produces a \udcXX escape, so the mapping is
// one to one and deterministic. Thread-safe (pure functions).
#pragma once

#include <string>
#include <string_view>

#include "driftwatch/v1/event.pb.h"

namespace driftwatch {

// Appends one JSON object (no newline) for an event of any kind (exec, chmod, file write,
// container, sensor status). False for an event without a body (nothing appended).
// `container`, when given, is what the sensor reported about the event's container: its
// name, image and pod fields are added.
bool AppendEventJson(const v1::Event& ev, std::string* out);
bool AppendEventJson(const v1::Event& ev, const v1::ContainerInfo* container, std::string* out);

// One field's value as event JSON writes it (a string, a number, true or false, a list).
struct EventField;
struct FieldValue;
void AppendFieldValueJson(const EventField& f, const FieldValue& v, std::string* out);

// Falco's container.id is the 12-character short form of a 64-hex id; other ids (as
// `ctr run` names them) are kept whole. The view is into `id`.
std::string_view ShortContainerIdView(std::string_view id);
std::string ShortContainerId(const std::string& id);

// The last component of a path ("/usr/bin/ls" -> "ls"); a view into `path`.
std::string_view Basename(std::string_view path);

// Falco's proc.name: the task's comm, except where the exec went through /proc/self/exe
// or an fd (busybox runs its applets that way, fexecve does), which names every task
// "exe" or a digit: there the basename of argv[0] is the name the user gave. A view into `e`.
std::string_view ProcessName(const v1::ProcessExec& e);

// The file an event is about: an exec's file that ran (a script rather than its
// interpreter: exe_file, else exe, else PATH's name), the file written, chmod'ed, read or
// whose exec was prevented; "" for other events. A view into `ev`.
std::string_view EventFilePath(const v1::Event& ev);

// Falco's proc.cmdline: the process name followed by the arguments after argv[0]. When the
// argument caps cut argv (args_capped) it ends with "..." (the cut argument's kept bytes,
// then "..."); proc.args_capped says so for certain, as an argument may end in "..." itself.
std::string CommandLine(const v1::ProcessExec& e);

}  // namespace driftwatch
