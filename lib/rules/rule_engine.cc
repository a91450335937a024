#include "lib/rules/rule_engine.h"

#include <algorithm>
#include <charconv>

namespace driftwatch {
namespace {

bool IsFieldChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

}  // namespace

std::expected<OutputFormat, OutputFormat::ParseError> OutputFormat::Parse(
    std::string_view text) {
  OutputFormat f;
  std::string literal;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '%' || i + 1 >= text.size() || !IsFieldChar(text[i + 1]) || text[i + 1] == '.') {
      literal.push_back(c);
      ++i;
      continue;
    }
    size_t start = i + 1;
    size_t end = start;
    while (end < text.size() && IsFieldChar(text[end])) ++end;
    // "%proc.name." ends a sentence: the dot is text, not part of the name.
    while (end > start && text[end - 1] == '.') --end;
    std::string name(text.substr(start, end - start));
    const FieldInfo* info = FindField(name);
    if (!info) return std::unexpected(ParseError{i, "unknown field '" + name + "' in output", true});
    Part p;
    p.literal = std::move(literal);
    literal.clear();
    p.field = info;
    p.field_name = name;
    if (end < text.size() && text[end] == '[') {
      size_t close = text.find(']', end);
      if (close == std::string_view::npos) {
        return std::unexpected(ParseError{end, "unterminated '[' after %" + name});
      }
      std::string_view idx = text.substr(end + 1, close - end - 1);
      int v = -1;
      auto r = std::from_chars(idx.data(), idx.data() + idx.size(), v);
      const bool number = r.ec == std::errc() && r.ptr == idx.data() + idx.size() && v >= 0;
      if (!number && info->arg == FieldArgMode::kIndexOrKey && !idx.empty()) {
        p.key = std::make_shared<const std::string>(idx);
        p.arg.key = p.key.get();
      } else if (info->arg == FieldArgMode::kNone || !number) {
        return std::unexpected(ParseError{end, "bad index '" + std::string(idx) + "' for %" + name});
      } else {
        p.arg.index = v;
      }
      p.field_name += '[';
      p.field_name += idx;
      p.field_name += ']';
      end = close + 1;
    } else if (info->arg == FieldArgMode::kRequired || info->arg == FieldArgMode::kIndexOrKey) {
      return std::unexpected(ParseError{i, "%" + name + " needs an index, as %" + name + "[1]"});
    }
    f.parts_.push_back(std::move(p));
    i = end;
  }
  if (!literal.empty()) {
    Part p;
    p.literal = std::move(literal);
    f.parts_.push_back(std::move(p));
  }
  return f;
}

void OutputFormat::Format(const RuleContext& ctx, std::string* out,
                          std::map<std::string, std::string>* fields) const {
  thread_local FieldValue scratch;
  for (const Part& p : parts_) {
    out->append(p.literal);
    if (!p.field) continue;
    size_t before = out->size();
    AppendFieldText(*p.field, p.arg, ctx, &scratch, out);
    if (fields) (*fields)[p.field_name] = out->substr(before);
  }
}

bool OutputFormat::FormatFrom(
    const std::function<std::optional<std::string>(std::string_view field)>& value,
    std::string* out) const {
  for (const Part& p : parts_) {
    out->append(p.literal);
    if (!p.field) continue;
    std::optional<std::string> v = value(p.field_name);
    if (!v) return false;
    out->append(*v);
  }
  return true;
}

std::vector<const Rule*> RuleSet::rules() const {
  std::vector<const Rule*> out;
  out.reserve(rules_.size());
  for (const auto& r : rules_) out.push_back(r.get());
  return out;
}

const Rule* RuleSet::Find(std::string_view name) const {
  for (const auto& r : rules_) {
    if (r->name == name) return r.get();
  }
  return nullptr;
}

std::vector<std::string> RuleSet::Summary(size_t max_names) const {
  size_t disabled = 0;
  // Reasons in the order their first rule was defined.
  std::vector<std::pair<std::string, std::vector<const Rule*>>> reasons;
  for (const auto& r : rules_) {
    if (!r->enabled) {
      ++disabled;
      continue;
    }
    if (r->inactive_reason.empty()) continue;
    auto it = std::find_if(reasons.begin(), reasons.end(), [&](const auto& p) { return p.first == r->inactive_reason; });
    if (it == reasons.end()) it = reasons.insert(reasons.end(), {r->inactive_reason, {}});
    it->second.push_back(r.get());
  }
  std::vector<std::string> out;
  out.push_back(std::to_string(rules_.size()) + " rules: " + std::to_string(active_count()) + " active, " +
                std::to_string(disabled) + " disabled, " + std::to_string(inactive_count()) + " inactive");
  for (const auto& [reason, rules] : reasons) {
    std::string line = "  " + std::to_string(rules.size()) + " inactive, " + reason + ": ";
    for (size_t i = 0; i < rules.size(); ++i) {
      if (max_names != 0 && i == max_names) {
        line += ", +" + std::to_string(rules.size() - i) + " more";
        break;
      }
      line += (i ? ", " : "") + ("'" + rules[i]->name + "'");
    }
    out.push_back(std::move(line));
  }
  return out;
}

namespace {

// The first exception of `r` that holds for the event, or null.
const RuleException* ExceptedBy(const Rule& r, const RuleContext& ctx) {
  for (const RuleException& x : r.exceptions)
    if (x.compiled.Evaluate(ctx)) return &x;
  return nullptr;
}

}  // namespace

void RuleSet::Match(const RuleContext& ctx, std::vector<const Rule*>* out) const {
  const EventTypeSet type = EventTypeBit(EventType(*ctx.event));
  for (const Rule* r : active_) {
    if ((r->compiled.event_types() & type) != 0 && r->compiled.Evaluate(ctx) && !ExceptedBy(*r, ctx))
      out->push_back(r);
  }
}

void RuleSet::Evaluate(const RuleContext& ctx, std::vector<RuleMatch>* out,
                       std::vector<RuleMatch>* excepted) const {
  const EventTypeSet type = EventTypeBit(EventType(*ctx.event));
  for (const Rule* r : active_) {
    if ((r->compiled.event_types() & type) == 0 || !r->compiled.Evaluate(ctx)) continue;
    const RuleException* x = ExceptedBy(*r, ctx);
    if (x && !excepted) continue;
    RuleMatch m;
    m.rule = r;
    if (x) m.excepted_by = x->name;
    r->format.Format(ctx, &m.output, &m.output_fields);
    (x ? excepted : out)->push_back(std::move(m));
  }
}

}  // namespace driftwatch
