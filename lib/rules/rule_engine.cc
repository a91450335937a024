#include "lib/rules/rule_engine.h"

#include <charconv>

namespace driftwatch {
namespace {

bool IsFieldChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

}  // namespace

std::expected<OutputFormat, std::pair<size_t, std::string>> OutputFormat::Parse(
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
    if (!info) return std::unexpected(std::make_pair(i, "unknown field '" + name + "' in output"));
    Part p;
    p.literal = std::move(literal);
    literal.clear();
    p.field = info;
    p.field_name = name;
    if (end < text.size() && text[end] == '[') {
      size_t close = text.find(']', end);
      if (close == std::string_view::npos) {
        return std::unexpected(std::make_pair(end, "unterminated '[' after %" + name));
      }
      std::string_view idx = text.substr(end + 1, close - end - 1);
      int v = -1;
      auto r = std::from_chars(idx.data(), idx.data() + idx.size(), v);
      if (info->arg == FieldArgMode::kNone || r.ec != std::errc() ||
          r.ptr != idx.data() + idx.size() || v < 0) {
        return std::unexpected(
            std::make_pair(end, "bad index '" + std::string(idx) + "' for %" + name));
      }
      p.arg.index = v;
      p.field_name += '[';
      p.field_name += idx;
      p.field_name += ']';
      end = close + 1;
    } else if (info->arg == FieldArgMode::kRequired) {
      return std::unexpected(std::make_pair(i, "%" + name + " needs an index, as %" + name + "[1]"));
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

void RuleSet::Match(const RuleContext& ctx, std::vector<const Rule*>* out) const {
  for (const Rule* r : enabled_) {
    if (r->compiled.Evaluate(ctx)) out->push_back(r);
  }
}

void RuleSet::Evaluate(const RuleContext& ctx, std::vector<RuleMatch>* out) const {
  for (const Rule* r : enabled_) {
    if (!r->compiled.Evaluate(ctx)) continue;
    RuleMatch m;
    m.rule = r;
    r->format.Format(ctx, &m.output, &m.output_fields);
    out->push_back(std::move(m));
  }
}

}  // namespace driftwatch
