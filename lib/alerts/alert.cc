#include "lib/alerts/alert.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/event/event_json.h"
#include "lib/event/file_digest.h"

namespace driftwatch {
namespace {

void AppendField(const AlertField& f, std::string* out) {
  switch (f.kind) {
    case AlertField::Kind::kNull:
      out->append("null");
      break;
    case AlertField::Kind::kString:
      AppendJsonString(f.str, out);
      break;
    case AlertField::Kind::kNumber:
      out->append(std::to_string(f.num));
      break;
    case AlertField::Kind::kBool:
      out->append(f.boolean ? "true" : "false");
      break;
  }
}

// Alert::subject: the file by its content when it was hashed, else by its path.
std::string FileSubject(const std::string& sha256_hex, const std::string& raw_sha256,
                        const std::string& path) {
  if (!sha256_hex.empty()) return "sha256:" + sha256_hex;
  // Sensors send the digest raw (32 bytes); older ones sent hex.
  if (!raw_sha256.empty())
    return "sha256:" + (raw_sha256.size() == 32 ? HexOf(raw_sha256) : raw_sha256);
  return path;
}

std::string AlertSubject(const RuleContext& ctx) {
  const v1::Event& ev = *ctx.event;
  switch (ev.body_case()) {
    case v1::Event::kExec:
      // The file that ran, and its name: one multi-call binary (busybox) is many commands,
      // each its own alert.
      return FileSubject(ctx.file.sha256, "", std::string(EventFilePath(ev))) + '\n' +
             std::string(ProcessName(ev.exec()));
    case v1::Event::kWrite:
      return FileSubject(ctx.file.sha256, ev.write().sha256(), ev.write().path());
    case v1::Event::kChmod:
    case v1::Event::kRead:
      return std::string(EventFilePath(ev));
    case v1::Event::kPrevented:
      return FileSubject("", ev.prevented().sha256(), ev.prevented().path());
    case v1::Event::kNetwork: {
      const v1::NetworkActivity& n = ev.network();
      return n.exe() + '\n' + n.syscall() + ' ' + HexOf(n.address()) + ':' +
             std::to_string(n.port());
    }
    default:
      return "";
  }
}

}  // namespace

std::string EventKey(const v1::Event& ev) {
  if (!ev.has_id() || ev.id().seq() == 0) return "";
  return ev.id().node() + "/" + ev.id().boot_id() + "/" + std::to_string(ev.id().sensor_start_ns()) +
         "/" + std::to_string(ev.id().seq());
}

void FillAlertContext(const RuleContext& ctx, Alert* a) {
  if (ctx.event == nullptr) return;
  const v1::Event& ev = *ctx.event;
  a->time_ns = ev.time_ns();
  a->node = ev.id().node();
  if (a->hostname.empty()) a->hostname = a->node;
  a->container_id = ev.container_id();
  if (ev.has_container() && a->container_id.empty()) a->container_id = ev.container().id();
  if (const v1::ContainerInfo* c = ctx.container) {
    a->container_name = c->name();
    a->pod_name = c->pod_name();
    a->pod_namespace = c->pod_namespace();
  }
  a->event_key = EventKey(ev);
  a->subject = AlertSubject(ctx);
}

std::string FalcoOutputLine(const Alert& a) {
  // The time of day of FormatIsoTime: "...T13:44:05.478445995Z" -> "13:44:05.478445995".
  std::string iso = FormatIsoTime(a.time_ns);
  std::string out;
  const size_t t = iso.find('T');
  if (t != std::string::npos && iso.size() > t + 1) out = iso.substr(t + 1, iso.size() - t - 2);
  out += ": ";
  out += PriorityName(a.priority);
  out += ' ';
  out += a.message;
  return out;
}

void AppendFalcoJson(const Alert& a, std::string* out) {
  // Keys in the sorted order Falco's JSON library prints them.
  out->append("{\"hostname\":");
  AppendJsonString(a.hostname, out);
  out->append(",\"output\":");
  AppendJsonString(FalcoOutputLine(a), out);
  out->append(",\"output_fields\":{");
  std::map<std::string_view, const AlertField*> fields;
  const AlertField evt_time = AlertField::Number(a.time_ns);
  fields.emplace("evt.time", &evt_time);
  for (const auto& [name, value] : a.output_fields) fields[name] = &value;
  bool first = true;
  for (const auto& [name, value] : fields) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(name, out);
    out->push_back(':');
    AppendField(*value, out);
  }
  out->append("},\"priority\":");
  AppendJsonString(PriorityName(a.priority), out);
  out->append(",\"rule\":");
  AppendJsonString(a.rule, out);
  out->append(",\"source\":");
  AppendJsonString(a.source, out);
  out->append(",\"tags\":[");
  std::set<std::string_view> tags(a.tags.begin(), a.tags.end());
  first = true;
  for (std::string_view t : tags) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(t, out);
  }
  out->append("],\"time\":");
  AppendJsonString(FormatIsoTime(a.time_ns), out);
  out->push_back('}');
}

namespace {

// The end of the JSON string literal that starts at json[i] ('"'), one past its closing
// quote; npos when it does not close.
size_t StringEnd(std::string_view json, size_t i) {
  for (++i; i < json.size(); ++i) {
    if (json[i] == '\\') {
      ++i;
    } else if (json[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

}  // namespace

std::string AggregateJson(std::string_view json, uint64_t count, int64_t first_ns,
                          int64_t last_ns) {
  // Raw '"' only delimits strings in JSON, so this is output_fields' own key. Its values are
  // flat (AppendField): strings and bare literals.
  constexpr std::string_view kOpen = ",\"output_fields\":{";
  const size_t open = json.find(kOpen);
  if (open == std::string_view::npos) return std::string(json);
  const size_t body = open + kOpen.size();
  // "key":value entries by key (without its quotes; field names need no escapes).
  std::map<std::string, std::string> entries;
  size_t i = body;
  while (i < json.size() && json[i] != '}') {
    if (json[i] == ',' && ++i == json.size()) break;
    const size_t key_end = json[i] == '"' ? StringEnd(json, i) : std::string_view::npos;
    if (key_end == std::string_view::npos || key_end >= json.size() || json[key_end] != ':')
      return std::string(json);
    size_t end = key_end + 1;
    if (end < json.size() && json[end] == '"') {
      end = StringEnd(json, end);
    } else {
      end = json.find_first_of(",}", end);
    }
    if (end == std::string_view::npos) return std::string(json);
    entries[std::string(json.substr(i + 1, key_end - i - 2))] = json.substr(i, end - i);
    i = end;
  }
  if (i >= json.size()) return std::string(json);
  auto put = [&entries](const char* name, const AlertField& f) {
    std::string e;
    AppendJsonString(name, &e);
    e.push_back(':');
    AppendField(f, &e);
    entries[name] = std::move(e);
  };
  put(kAggregateCountField, AlertField::Number(static_cast<int64_t>(count)));
  put(kAggregateFirstField, AlertField::String(FormatIsoTime(first_ns)));
  put(kAggregateLastField, AlertField::String(FormatIsoTime(last_ns)));
  std::string out(json.substr(0, body));
  bool first = true;
  for (const auto& [name, entry] : entries) {
    if (!first) out.push_back(',');
    first = false;
    out += entry;
  }
  out += json.substr(i);
  return out;
}

std::optional<Alert> ParseFalcoJson(std::string_view json) {
  using Json = nlohmann::json;
  const Json j = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto str = [&j](const char* key) -> const std::string* {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
  };
  const std::string *hostname = str("hostname"), *output = str("output"),
                    *priority = str("priority"), *rule = str("rule"), *source = str("source");
  auto fields = j.find("output_fields");
  auto tags = j.find("tags");
  if (!hostname || !output || !priority || !rule || !source || fields == j.end() ||
      !fields->is_object() || tags == j.end() || !tags->is_array())
    return std::nullopt;
  Alert a;
  a.hostname = *hostname;
  a.rule = *rule;
  a.source = *source;
  const std::optional<Priority> p = ParsePriority(*priority);
  if (!p) return std::nullopt;
  a.priority = *p;
  for (const Json& t : *tags) {
    if (!t.is_string()) return std::nullopt;
    a.tags.push_back(t.get<std::string>());
  }
  bool have_time = false;
  for (auto it = fields->begin(); it != fields->end(); ++it) {
    const Json& v = it.value();
    if (it.key() == "evt.time" && v.is_number_integer()) {
      a.time_ns = v.get<int64_t>();
      have_time = true;
      continue;  // AppendFalcoJson adds it from time_ns
    }
    AlertField f;
    if (v.is_null()) {
      f = AlertField::Null();
    } else if (v.is_string()) {
      f = AlertField::String(v.get<std::string>());
    } else if (v.is_boolean()) {
      f = AlertField::Bool(v.get<bool>());
    } else if (v.is_number_integer()) {
      f = AlertField::Number(v.get<int64_t>());
    } else {
      return std::nullopt;
    }
    a.output_fields.emplace_back(it.key(), std::move(f));
  }
  if (!have_time) return std::nullopt;
  // `output` is FalcoOutputLine: the time of day and the priority before the message.
  const std::string prefix = FalcoOutputLine(a);
  if (!output->starts_with(prefix)) return std::nullopt;
  a.message = output->substr(prefix.size());
  if (FalcoJson(a) != json) return std::nullopt;
  return a;
}

std::string FalcoJson(const Alert& a) {
  std::string s;
  AppendFalcoJson(a, &s);
  return s;
}

}  // namespace driftwatch
