// rule_fields: the registry of fields a rule condition or output may name (proc.name,
// container.image.repository, ...), each an entry {name, type, doc, extractor} whose
// extractor is one small function over a RuleContext. One file per field class:
// lib/rules/fields_evt.cc, fields_evt_arg.cc, fields_proc.cc, fields_user.cc,
// fields_container.cc, fields_fd.cc, fields_baseline.cc.
//
// Falco's own vocabulary joins them (lib/rules/falco_tables.h, generated from libs): every
// field of its syscall classes and every evt.arg.<param> of its event table is known; those
// no table here gives a value are registered with `never` set, so a Falco rule naming one
// loads (inactive) while a typo is still refused.
//
// Names and meanings follow Falco (DESIGN.md, "Field names"). The fields an event carries
// itself (lib/event/event_fields.h, what event JSON prints) join the registry: those no
// table here defines are read from the event as the JSON prints them, so every key of event
// JSON is a field here. docs/fields.md lists them all (FieldsMarkdown).
// Extractors do not allocate in the common case: strings come back as views into the event
// or the context; the few computed strings (proc.cmdline, fd.sha256, ...) are built in the
// caller's FieldValue::buf, whose capacity survives from one call to the next.
//
// Thread-safety: the registry is immutable after static initialization; extractors are
// pure functions of their arguments. A FieldValue belongs to one thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lib/event/event_fields.h"
#include "lib/rules/rule_context.h"

namespace driftwatch {

// FieldType and FieldValue (what an extractor produced) come from lib/event/event_fields.h.

// The [N] of an indexed field such as proc.aname[2]; index < 0 when the field had none.
// Or the [key] of a field that takes a name, as container.mount.dest[/proc*]: `key` points
// to text the compiled condition or output owns (it outlives every extraction).
struct FieldArg {
  int index = -1;
  const std::string* key = nullptr;
  bool present() const { return index >= 0 || key != nullptr; }
};

// Fills *out and returns true when the field has a value for this event; false when it is
// unset (output "<NA>", every comparison false).
using FieldExtractor = bool (*)(const RuleContext& ctx, FieldArg arg, FieldValue* out);

enum class FieldArgMode {
  kNone,      // proc.name
  kOptional,  // proc.aname, proc.aname[2]
  kRequired,  // proc.apid[2]
  kIndexOrKey,  // container.mount.dest[0] or container.mount.dest[/proc*]: required
};

struct FieldInfo {
  std::string_view name;
  FieldType type;          // without an index
  std::string_view doc;
  // Null for a field read from the event as event JSON prints it (`event`): the registry
  // adds every field of lib/event/event_fields.h that no table here defines.
  FieldExtractor extract;
  FieldArgMode arg = FieldArgMode::kNone;
  FieldType indexed_type = FieldType::kString;  // with an index
  // kList fields only: string operators (=, contains, startswith, ...) compare the
  // space-joined list (Falco's proc.args is one string) instead of any single element.
  bool list_joins_for_strings = false;
  // Not empty: driftwatch's events never give this field a value (a Falco field of events
  // the sensor does not see); says why in a few words ("network activity: no socket
  // events"). Rules may name it; a rule that needs it is loaded inactive.
  std::string_view never = {};

  // Set by the registry: the event's own field of this name (how event JSON prints it:
  // its kinds and JSON type), or null.
  const EventField* event = nullptr;

  FieldType TypeFor(FieldArg a) const { return a.present() ? indexed_type : type; }
  // Event JSON prints this field for some kind.
  bool printed() const { return event != nullptr && !event->kinds.empty(); }
  // The value for this event: `extract`, or the event's own field.
  bool Extract(const RuleContext& ctx, FieldArg arg, FieldValue* out) const {
    if (extract != nullptr) return extract(ctx, arg, out);
    if (event == nullptr || !event->kinds.Has(KindOf(*ctx.event))) return false;
    return event->get(*ctx.event, ctx.container, out);
  }
};

// The field of this name, or null.
const FieldInfo* FindField(std::string_view name);

// Every field, sorted by name (for `driftwatch rules fields` and docs), but for the
// evt.arg.<name> and evt.rawarg.<name> of parameters no event of driftwatch's has (FindField
// knows them; docs/fields.md names them in one line).
std::vector<const FieldInfo*> AllFields();

// docs/fields.md: every field with its type, the event kinds whose JSON prints it and its
// doc, as `driftwatch rules fields --markdown` prints it.
std::string FieldsMarkdown();

// Appends the field's value as output text: numbers in decimal, bools "true"/"false",
// lists joined by spaces, "<NA>" when unset. `scratch` is reused between calls.
void AppendFieldText(const FieldInfo& f, FieldArg arg, const RuleContext& ctx,
                     FieldValue* scratch, std::string* out);

// The per-class tables (one per fields_*.cc).
std::span<const FieldInfo> EvtFields();
std::span<const FieldInfo> ProcFields();
std::span<const FieldInfo> UserFields();
std::span<const FieldInfo> ContainerFields();
std::span<const FieldInfo> FdFields();
// evt.arg.<param> and evt.rawarg.<param> for every parameter name of Falco's event table,
// evt.arg[N], evt.args (fields_evt_arg.cc).
std::span<const FieldInfo> EvtArgFields();
// fs.path.* (fields_fd.cc).
std::span<const FieldInfo> FsPathFields();
// The fields of Falco's container plugin driftwatch never gives a value (health probes, IP
// addresses, labels by key, deprecated k8s objects; fields_container.cc), registered as
// Falco's own tables are: after every table that gives values.
std::span<const FieldInfo> ContainerPluginNeverFields();

// Falco's field of this name (lib/rules/falco_tables.h) is one driftwatch has no value for:
// why, in a few words, grouped ("network activity: ..."). Used for the fields of Falco's
// tables that no table here defines.
std::string_view NeverReason(std::string_view falco_field);
// Fields over what the sensor read of the process at its exec (fields_proc_state.cc).
std::span<const FieldInfo> ProcStateFields();
// baseline.*: the event against its image's learned baseline (fields_baseline.cc).
std::span<const FieldInfo> BaselineFields();

// Helpers the field files share.
namespace fields {
// The container the event belongs to: ctx.container, or the event's own body for
// container events; null when unknown.
const v1::ContainerInfo* ContainerOf(const RuleContext& ctx);
// Sets out->str and returns true when s is not empty.
inline bool SetStr(std::string_view s, FieldValue* out) {
  if (s.empty()) return false;
  out->str = s;
  return true;
}
inline bool SetNum(int64_t n, FieldValue* out) {
  out->num = n;
  return true;
}
inline bool SetBool(bool b, FieldValue* out) {
  out->boolean = b;
  return true;
}
// Falco's proc.tty: the kernel's tty_nr for audit's terminal name ("pts3"); 0: none.
int64_t TtyNumber(std::string_view tty);
// fd.num (and evt.arg.fd, evt.rawarg.fd) of a file event: fanotify never says which
// descriptor the writer used, only that its open succeeded. 2147483647 (INT_MAX) is no
// descriptor the kernel hands out (fs.nr_open stays below it), so it cannot be taken for a
// real one, and it meets Falco's `fd.num>=0` ("the open succeeded").
inline constexpr int64_t kFileEventFdNum = 2147483647;
}  // namespace fields

}  // namespace driftwatch
