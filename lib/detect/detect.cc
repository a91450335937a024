#include "lib/detect/detect.h"

#include <chrono>
#include <cstdlib>

#include "lib/event/event_json.h"
#include "lib/event/event_view.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

constexpr size_t kFiredLimit = 1 << 16;

AlertField TypedField(const std::string& name, const std::string& value) {
  if (value == "<NA>") return AlertField::Null();
  std::string_view base = name;
  if (auto b = base.find('['); b != std::string_view::npos) base = base.substr(0, b);
  const FieldInfo* f = FindField(base);
  if (f && f->type == FieldType::kNumber) {
    char* end = nullptr;
    long long n = std::strtoll(value.c_str(), &end, 10);
    if (end && *end == '\0' && !value.empty()) return AlertField::Number(n);
  }
  if (f && f->type == FieldType::kBool && (value == "true" || value == "false"))
    return AlertField::Bool(value == "true");
  return AlertField::String(value);
}

}  // namespace

Alert MakeAlert(const RuleContext& ctx, const RuleMatch& m) {
  Alert a;
  a.rule = m.rule->name;
  a.priority = m.rule->priority;
  a.message = m.output;
  a.tags = m.rule->tags;
  for (const auto& [k, v] : m.output_fields) a.output_fields.emplace_back(k, TypedField(k, v));
  FillAlertContext(ctx, &a);
  // As Falco's append_output extra_fields: every container alert names its container, pod
  // and image in output_fields, whatever the rule's output mentions (issue 19).
  if (!a.container_id.empty() && a.container_id != "host") {
    auto have = [&a](std::string_view k) {
      for (const auto& f : a.output_fields)
        if (f.first == k) return true;
      return false;
    };
    auto opt = [](const std::string& v) {
      return v.empty() ? AlertField::Null() : AlertField::String(v);
    };
    if (!have("container.id")) a.output_fields.emplace_back("container.id", opt(ShortContainerId(a.container_id)));
    if (!have("container.name")) a.output_fields.emplace_back("container.name", opt(a.container_name));
    if (!have("k8s.pod.name")) a.output_fields.emplace_back("k8s.pod.name", opt(a.pod_name));
    if (!have("k8s.ns.name")) a.output_fields.emplace_back("k8s.ns.name", opt(a.pod_namespace));
    const v1::ContainerInfo* c = ctx.container;
    if (!have("container.image.repository"))
      a.output_fields.emplace_back("container.image.repository",
                                   opt(c ? c->image_repository() : std::string()));
    if (!have("container.image.id"))
      a.output_fields.emplace_back("container.image.id", opt(c ? c->image_ref() : std::string()));
  }
  return a;
}

namespace {

bool ContainerClassField(std::string_view name) {
  return name.starts_with("container.") || name.starts_with("k8s.");
}

}  // namespace

bool MissingContainerMetadata(const Alert& a) {
  if (a.container_id.empty() || a.container_id == "host" || a.source == "internal") return false;
  if (a.container_name.empty()) return true;
  for (const auto& [k, v] : a.output_fields) {
    if ((k == "container.image.repository" || k == "container.image.id") &&
        v.kind != AlertField::Kind::kNull)
      return false;
  }
  return true;
}

void FillContainerMetadata(const RuleContext& container, const RuleSet* rules, Alert* a) {
  const v1::ContainerInfo* c = container.container;
  if (c == nullptr) return;
  // What container fields read of the event: its node, container and time (container.duration).
  v1::Event ev;
  ev.mutable_id()->set_node(a->node);
  ev.set_container_id(a->container_id);
  ev.set_time_ns(a->time_ns);
  RuleContext ctx = container;
  ctx.event = &ev;
  const std::vector<std::pair<std::string, AlertField>> before = a->output_fields;
  for (auto& [name, value] : a->output_fields) {
    if (!ContainerClassField(name)) continue;
    auto f = OutputFormat::Parse("%" + name);
    if (!f) continue;
    std::string text;
    f->Format(ctx, &text, nullptr);
    value = TypedField(name, text);
  }
  a->container_name = c->name();
  a->pod_name = c->pod_name();
  a->pod_namespace = c->pod_namespace();
  const Rule* rule = rules ? rules->Find(a->rule) : nullptr;
  if (rule == nullptr) return;
  auto from = [](const std::vector<std::pair<std::string, AlertField>>& fields) {
    return [&fields](std::string_view n) -> std::optional<std::string> {
      for (const auto& [k, v] : fields)
        if (k == n) return v.Text();
      return std::nullopt;
    };
  };
  std::string old_message, message;
  if (rule->format.FormatFrom(from(before), &old_message) && old_message == a->message &&
      rule->format.FormatFrom(from(a->output_fields), &message))
    a->message = std::move(message);
}

namespace {

// "-xxxxx" of the characters Kubernetes generates names from (no vowels, no 0 1 3).
bool GeneratedSuffix(std::string_view s, size_t n) {
  if (s.size() <= n + 1 || s[s.size() - n - 1] != '-') return false;
  return s.substr(s.size() - n).find_first_not_of("bcdfghjklmnpqrstvwxz2456789") ==
         std::string_view::npos;
}

bool DigitsSuffix(std::string_view s, size_t min) {
  size_t dash = s.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || s.size() - dash - 1 < min) return false;
  return s.substr(dash + 1).find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

std::string WorkloadOf(const v1::ContainerInfo* c) {
  if (c == nullptr) return {};
  for (const char* key : {"app.kubernetes.io/name", "app", "k8s-app"}) {
    for (const v1::Label& l : c->pod_labels())
      if (l.key() == key && !l.value().empty()) return l.value();
  }
  std::string_view name = c->pod_name();
  if (name.empty()) return c->name();
  if (GeneratedSuffix(name, 5)) {
    name.remove_suffix(6);
    // A ReplicaSet's pod-template-hash (up to 10 characters of the same alphabet).
    for (size_t n = 10; n >= 6; --n) {
      if (GeneratedSuffix(name, n)) {
        name.remove_suffix(n + 1);
        break;
      }
    }
    if (DigitsSuffix(name, 8)) name.remove_suffix(name.size() - name.rfind('-'));
  }
  return std::string(name);
}

Detector::Detector(std::shared_ptr<const RuleSet> rules, CorrelationOptions options)
    : rules_(std::move(rules)), correlator_(options) {}

void Detector::OnEvent(const std::string& node, const v1::Event& ev, const Sink& sink,
                       const Hook& before, const AllowedSink& allowed) {
  ++stats_.events;
  std::vector<RuleContext> again;
  RuleContext ctx = correlator_.Observe(node, ev, &again);
  if (before) before(&ctx);
  Evaluate(ctx, false, sink, allowed);
  for (const RuleContext& c : again) {
    ++stats_.reevaluations;
    Evaluate(c, true, sink, allowed);
  }
}

void Detector::Evaluate(const RuleContext& ctx, bool again, const Sink& sink,
                        const AllowedSink& allowed) {
  if (!rules_ || ctx.event == nullptr) return;
  matches_.clear();
  excepted_.clear();
  auto t0 = std::chrono::steady_clock::now();
  rules_->Evaluate(ctx, &matches_, &excepted_);
  // The drift policy: matches of the rules an entry covers that it allows.
  if (policy_ && !policy_->empty() && !matches_.empty()) {
    const std::string_view path = EventFilePath(*ctx.event);
    for (size_t i = 0; i < matches_.size();) {
      const PreventPolicy::RuleMatch m{matches_[i].rule->name, &matches_[i].rule->tags,
                                       ctx.file.sha256};
      if (auto by = policy_->Allows({path, ctx.container, {}}, &m)) {
        matches_[i].excepted_by = "policy " + (by->empty() ? std::string("(unnamed)") : *by);
        excepted_.push_back(std::move(matches_[i]));
        matches_.erase(matches_.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
  }
  stats_.eval_ns += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  if (matches_.empty() && excepted_.empty()) return;
  // Execs may be looked at again when their file's write arrives late: remember what fired
  // (or was allowed: said once too).
  std::string key = EventKey(*ctx.event);
  bool remember = KindOf(*ctx.event) == Kind::kExec && !key.empty();
  std::set<std::string>* fired = nullptr;
  if (remember) {
    auto [it, inserted] = fired_.try_emplace(key);
    if (inserted) {
      fired_order_.push_back(key);
      if (fired_order_.size() > kFiredLimit) {
        fired_.erase(fired_order_.front());
        fired_order_.pop_front();
      }
    }
    fired = &it->second;
  }
  auto first_look = [&](const RuleMatch& m) {
    if (fired) return fired->insert(m.rule->name).second;
    return !again;
  };
  for (const RuleMatch& m : matches_) {
    if (!first_look(m)) continue;
    ++stats_.alerts;
    ++stats_.by_rule[m.rule->name];
    sink(MakeAlert(ctx, m));
  }
  for (const RuleMatch& m : excepted_) {
    if (!first_look(m)) continue;
    ++stats_.allowed;
    if (!allowed) continue;
    AllowedMatch a;
    a.alert = MakeAlert(ctx, m);
    a.allowed_by =
        m.excepted_by.starts_with("policy ") ? m.excepted_by : "exception " + m.excepted_by;
    a.workload = WorkloadOf(ctx.container);
    if (ctx.container) a.image = ctx.container->image();
    allowed(std::move(a));
  }
}

}  // namespace driftwatch
