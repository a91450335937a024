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
  // As Falco's append_output extra_fields: every container alert names its container and
  // pod in output_fields, whatever the rule's output mentions.
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
  }
  return a;
}

Detector::Detector(std::shared_ptr<const RuleSet> rules, CorrelationOptions options)
    : rules_(std::move(rules)), correlator_(options) {}

void Detector::OnEvent(const std::string& node, const v1::Event& ev, const Sink& sink,
                       const Hook& before) {
  ++stats_.events;
  std::vector<RuleContext> again;
  RuleContext ctx = correlator_.Observe(node, ev, &again);
  if (before) before(&ctx);
  Evaluate(ctx, false, sink);
  for (const RuleContext& c : again) {
    ++stats_.reevaluations;
    Evaluate(c, true, sink);
  }
}

void Detector::Evaluate(const RuleContext& ctx, bool again, const Sink& sink) {
  if (!rules_ || ctx.event == nullptr) return;
  matches_.clear();
  auto t0 = std::chrono::steady_clock::now();
  rules_->Evaluate(ctx, &matches_);
  stats_.eval_ns += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  if (matches_.empty()) return;
  // Execs may be looked at again when their file's write arrives late: remember what fired.
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
  for (const RuleMatch& m : matches_) {
    if (fired) {
      if (!fired->insert(m.rule->name).second) continue;  // alerted on the first look
    } else if (again) {
      continue;
    }
    ++stats_.alerts;
    ++stats_.by_rule[m.rule->name];
    sink(MakeAlert(ctx, m));
  }
}

}  // namespace driftwatch
