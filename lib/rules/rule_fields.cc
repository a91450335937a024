#include "lib/rules/rule_fields.h"

#include <algorithm>
#include <charconv>
#include <deque>
#include <initializer_list>
#include <unordered_map>

#include "lib/event/event_view.h"
#include "lib/rules/falco_tables.h"

namespace driftwatch {
namespace {

// The tables of fields_*.cc, joined with the event's own fields (lib/event/event_fields.h):
// a field both define reads the table's extractor in rules and is printed by event JSON; a
// field only the event defines is read from the event.
struct Registry {
  std::deque<FieldInfo> fields;
  std::deque<std::string> docs;  // docs joined with the JSON's note
  std::vector<const FieldInfo*> sorted;
  // evt.arg.<p> and evt.rawarg.<p> of parameters no event here has (ptrace's request, ...):
  // findable, left out of AllFields (hundreds of them), named in one line of the docs.
  std::vector<std::string_view> unset_parameters;

  static bool IsUnsetParameter(const FieldInfo& f) {
    return !f.never.empty() && f.extract == nullptr &&
           (f.name.starts_with("evt.arg.") || f.name.starts_with("evt.rawarg."));
  }
  std::unordered_map<std::string_view, FieldInfo*> by_name;

  Registry() {
    for (auto table : {EvtFields(), ProcFields(), UserFields(), ContainerFields(), FdFields(),
                       FsPathFields(), EvtArgFields(), ProcStateFields(), BaselineFields()}) {
      for (const FieldInfo& f : table) by_name.emplace(f.name, &fields.emplace_back(f));
    }
    for (const EventField& e : EventFields()) {
      auto it = by_name.find(e.name);
      if (it == by_name.end()) {
        FieldInfo& f = fields.emplace_back(FieldInfo{e.name, e.type, e.doc, nullptr});
        f.event = &e;
        by_name.emplace(f.name, &f);
        continue;
      }
      FieldInfo& f = *it->second;
      f.event = &e;
      if (!e.doc.empty()) f.doc = docs.emplace_back(std::string(f.doc) + "; JSON: " + std::string(e.doc));
    }
    // Falco's fields no table here defines: known, so a rule naming one loads (inactive),
    // never given a value. evt.arg and evt.rawarg are EvtArgFields' (per parameter).
    for (const falco::FalcoField& ff : falco::FalcoFields()) {
      if (ff.name == "evt.arg" || ff.name == "evt.rawarg" || by_name.contains(ff.name)) continue;
      FieldInfo& f = fields.emplace_back(FieldInfo{ff.name, ff.type, ff.doc, nullptr, ff.arg});
      f.never = NeverReason(ff.name);
      by_name.emplace(f.name, &f);
    }
    for (const FieldInfo& f : ContainerPluginNeverFields()) {
      if (!by_name.contains(f.name)) by_name.emplace(f.name, &fields.emplace_back(f));
    }
    for (FieldInfo& f : fields) {
      if (!f.never.empty()) {
        std::string d("NEVER SET (");
        d.append(f.never).append("). ").append(f.doc);
        f.doc = docs.emplace_back(std::move(d));
      }
    }
    for (const FieldInfo& f : fields) {
      if (IsUnsetParameter(f)) {
        unset_parameters.push_back(f.name);
        continue;
      }
      sorted.push_back(&f);
    }
    std::sort(unset_parameters.begin(), unset_parameters.end());
    std::sort(sorted.begin(), sorted.end(),
              [](const FieldInfo* a, const FieldInfo* b) { return a->name < b->name; });
  }
};

const Registry& TheRegistry() {
  static const Registry r;
  return r;
}

}  // namespace

std::string_view NeverReason(std::string_view n) {
  auto any = [&](std::initializer_list<std::string_view> prefixes) {
    for (std::string_view p : prefixes) {
      if (n.starts_with(p)) return true;
    }
    return false;
  };
  if (any({"fd.connected", "fd.cproto", "fd.sproto", "fd.lproto", "fd.rproto", "fd.proto",
           "fd.cip.name", "fd.sip.name", "fd.lip.name", "fd.rip.name", "fdlist."}))
    return "socket state: audit gives the address a call named, not the socket's state, "
           "protocol names or resolved host names";
  if (any({"evt.buffer", "evt.buflen", "evt.is_io", "evt.io_dir", "evt.is_syslog"}))
    return "I/O data: the sensor sees no read or write syscalls";
  if (any({"evt.latency", "evt.deltatime", "evt.wait_latency", "evt.is_wait", "evt.cpu",
           "evt.reltime", "evt.around", "evt.count"}))
    return "syscall timing: audit and fanotify give no per-syscall latency, CPU or capture time";
  if (any({"evt.plugin", "evt.is_async", "evt.asynctype", "evt.source", "evt.info",
           "evt.type.is", "evt.abspath"}))
    return "Falco engine details driftwatch's events do not have";
  if (any({"evt."})) return "event details audit and fanotify do not report";
  if (any({"fd.types", "fd.uid", "fd.containername", "fd.containerdirectory", "fd.dev",
           "fd.lock", "fd.is_"}))
    return "descriptor details: audit and fanotify name files, not the caller's descriptors";
  if (any({"fd."})) return "descriptor details: audit and fanotify name files, not descriptors";
  if (any({"thread.cap", "proc.cap"})) return "capabilities: audit's records do not carry them";
  if (any({"thread."})) return "thread state: audit names processes, not their threads' state";
  if (any({"proc.fd", "proc.vm", "proc.pfmaj", "proc.pfmin", "proc.stdin", "proc.stdout",
           "proc.stderr", "proc.nthreads", "proc.nchilds", "proc.thread"}))
    return "process resources: audit records do not carry them";
  if (any({"proc."})) return "process details audit's exec records do not carry";
  if (any({"user.", "group."}))
    return "user and group details: the container's passwd and group files are not read";
  return "not in driftwatch's events";
}

const FieldInfo* FindField(std::string_view name) {
  const auto& m = TheRegistry().by_name;
  auto it = m.find(name);
  return it == m.end() ? nullptr : it->second;
}

std::vector<const FieldInfo*> AllFields() { return TheRegistry().sorted; }

std::string FieldsMarkdown() {
  std::string md =
      "# Fields\n\n"
      "Generated by `driftwatch rules fields --markdown` from the field registry\n"
      "(`lib/rules/fields_*.cc`, `lib/event/event_fields.cc`); do not edit.\n\n"
      "Every field a rule condition or output may name. *Event JSON* lists the event kinds\n"
      "whose JSON (`driftwatch analyze --events`, `driftwatch events`) prints the field, and\n"
      "the JSON value's type where it differs from the field's type in rules.\n\n"
      "| field | type | event JSON | meaning |\n|---|---|---|---|\n";
  auto cell = [](std::string_view s) {
    std::string c;
    for (char ch : s) {
      if (ch == '|') c += "\\|";
      else c += ch;
    }
    return c;
  };
  std::vector<const FieldInfo*> never;
  for (const FieldInfo* f : AllFields()) {
    if (!f->never.empty()) {
      never.push_back(f);
      continue;
    }
    std::string name(f->name);
    if (f->arg == FieldArgMode::kOptional) name += "[N]?";
    if (f->arg == FieldArgMode::kRequired) name += "[N]";
    std::string json;
    if (f->printed()) {
      for (Kind k : AllKinds()) {
        if (!f->event->kinds.Has(k)) continue;
        if (!json.empty()) json += ", ";
        json += KindName(k);
      }
      if (f->event->type != f->type) json += " (" + std::string(FieldTypeName(f->event->type)) + ")";
    }
    md += "| `" + name + "` | " + std::string(FieldTypeName(f->type)) + " | " + json + " | " +
          cell(f->doc) + " |\n";
  }
  md +=
      "\n## Fields driftwatch never sets\n\n"
      "Falco's fields (and event parameters) that driftwatch's events never carry a value for,\n"
      "and why. A rule may name them: it loads, and a rule that needs one is inactive.\n\n"
      "| field | type | why never | meaning in Falco |\n|---|---|---|---|\n";
  for (const FieldInfo* f : never) {
    std::string name(f->name);
    if (f->arg == FieldArgMode::kOptional) name += "[N]?";
    if (f->arg == FieldArgMode::kRequired) name += "[N]";
    std::string_view doc = f->doc;
    if (size_t cut = doc.find("). "); doc.starts_with("NEVER SET (") && cut != std::string_view::npos)
      doc = doc.substr(cut + 3);
    md += "| `" + name + "` | " + std::string(FieldTypeName(f->type)) + " | " + cell(f->never) +
          " | " + cell(doc) + " |\n";
  }
  md += "\nAnd `evt.arg.<name>`, `evt.rawarg.<name>` for every other parameter of Falco's event "
        "table (parameters only of events the sensor does not see):";
  for (std::string_view n : TheRegistry().unset_parameters) {
    if (!n.starts_with("evt.arg.")) continue;
    md += ' ';
    md += n.substr(8);
  }
  md += ".\n";
  return md;
}

void AppendFieldText(const FieldInfo& f, FieldArg arg, const RuleContext& ctx,
                     FieldValue* scratch, std::string* out) {
  scratch->Clear();
  if (!f.Extract(ctx, arg, scratch)) {
    out->append("<NA>");
    return;
  }
  switch (f.TypeFor(arg)) {
    case FieldType::kString:
    case FieldType::kIpNet:
      out->append(scratch->str);
      return;
    case FieldType::kNumber: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, scratch->num);
      out->append(buf, r.ptr);
      return;
    }
    case FieldType::kBool:
      out->append(scratch->boolean ? "true" : "false");
      return;
    case FieldType::kList:
      for (size_t i = 0; i < scratch->list.size(); ++i) {
        if (i) out->push_back(' ');
        out->append(scratch->list[i]);
      }
      return;
  }
}

namespace fields {

const v1::ContainerInfo* ContainerOf(const RuleContext& ctx) {
  if (ctx.container) return ctx.container;
  if (ctx.event && KindOf(*ctx.event) == Kind::kContainer) return &ctx.event->container();
  return nullptr;
}

}  // namespace fields
}  // namespace driftwatch
