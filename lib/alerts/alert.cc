#include "lib/alerts/alert.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include "lib/base/clock.h"
#include "lib/base/json.h"

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

std::string FalcoJson(const Alert& a) {
  std::string s;
  AppendFalcoJson(a, &s);
  return s;
}

}  // namespace driftwatch
