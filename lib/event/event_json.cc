#include "lib/event/event_json.h"

#include <cstring>

#include <charconv>

#include "lib/base/json.h"
#include "lib/event/event_fields.h"
#include "lib/event/event_view.h"

namespace driftwatch {

void AppendFieldValueJson(const EventField& f, const FieldValue& v, std::string* out) {
  switch (f.type) {
    case FieldType::kString:
    case FieldType::kIpNet:
      AppendJsonString(v.str, out);
      return;
    case FieldType::kNumber: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.num);
      out->append(buf, static_cast<size_t>(r.ptr - buf));
      return;
    }
    case FieldType::kBool:
      out->append(v.boolean ? "true" : "false");
      return;
    case FieldType::kList:
      out->push_back('[');
      for (size_t i = 0; i < v.list.size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendJsonString(v.list[i], out);
      }
      out->push_back(']');
      return;
  }
}

std::string_view ShortContainerIdView(std::string_view id) {
  if (id.size() != 64) return id;
  // Rules read container.id many times per event (the `container` macro): the hex check
  // of the last id looked at is remembered by its bytes (a 64-byte compare costs a tenth of
  // the check, which was a fifth of rule evaluation).
  thread_local char last[64];
  thread_local bool last_valid = false, last_hex = false;
  if (!last_valid || std::memcmp(last, id.data(), 64) != 0) {
    bool hex = true;
    for (char c : id) hex &= (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    std::memcpy(last, id.data(), 64);
    last_valid = true;
    last_hex = hex;
  }
  return last_hex ? id.substr(0, 12) : id;
}

std::string ShortContainerId(const std::string& id) { return std::string(ShortContainerIdView(id)); }

std::string_view Basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view EventFilePath(const v1::Event& ev) {
  switch (ev.body_case()) {
    case v1::Event::kExec: {
      const v1::ProcessExec& x = ev.exec();
      return !x.exe_file().empty() ? x.exe_file() : !x.exe().empty() ? x.exe() : x.path();
    }
    case v1::Event::kWrite: return ev.write().path();
    case v1::Event::kChmod: return ev.chmod().path();
    case v1::Event::kRead: return ev.read().path();
    case v1::Event::kPrevented: return ev.prevented().path();
    default: return {};
  }
}

std::string_view ProcessName(const v1::ProcessExec& e) {
  const std::string& path = e.path();
  bool via_fd = path.starts_with("/proc/") || path.starts_with("/dev/fd/");
  if (!via_fd || e.args_size() == 0 || e.args(0).empty()) return e.comm();
  return Basename(e.args(0)).substr(0, 15);  // as the kernel cuts comm
}

std::string CommandLine(const v1::ProcessExec& e) {
  std::string s(ProcessName(e));
  for (int i = 1; i < e.args_size(); ++i) {
    s.push_back(' ');
    s.append(e.args(i));
  }
  if (e.args_capped()) s.append("...");
  return s;
}

bool AppendEventJson(const v1::Event& ev, std::string* out) {
  return AppendEventJson(ev, nullptr, out);
}

// The fields of the event's kind, in the table's order, each where it has a value.
bool AppendEventJson(const v1::Event& ev, const v1::ContainerInfo* info, std::string* out) {
  const Kind kind = KindOf(ev);
  if (kind == Kind::kNone) return false;
  thread_local FieldValue v;  // keeps its buffers' capacity from one event to the next
  out->push_back('{');
  bool first = true;
  for (const EventField& f : EventFields()) {
    if (!f.kinds.Has(kind)) continue;
    v.Clear();
    if (!f.get(ev, info, &v)) continue;
    // Keys are our own field names: plain ASCII, nothing to escape.
    out->append(first ? "\"" : ",\"");
    first = false;
    out->append(f.name);
    out->append("\":");
    AppendFieldValueJson(f, v, out);
  }
  out->push_back('}');
  return true;
}

}  // namespace driftwatch
