#include "lib/rules/rule_fields.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>

#include "lib/event/event_view.h"

namespace driftwatch {
namespace {

struct Registry {
  std::vector<const FieldInfo*> sorted;
  std::unordered_map<std::string_view, const FieldInfo*> by_name;

  Registry() {
    for (auto table : {EvtFields(), ProcFields(), UserFields(), ContainerFields(), FdFields()}) {
      for (const FieldInfo& f : table) {
        sorted.push_back(&f);
        by_name.emplace(f.name, &f);
      }
    }
    std::sort(sorted.begin(), sorted.end(),
              [](const FieldInfo* a, const FieldInfo* b) { return a->name < b->name; });
  }
};

const Registry& TheRegistry() {
  static const Registry r;
  return r;
}

}  // namespace

std::string_view FieldTypeName(FieldType t) {
  switch (t) {
    case FieldType::kString: return "string";
    case FieldType::kNumber: return "number";
    case FieldType::kBool: return "bool";
    case FieldType::kList: return "list";
  }
  return "?";
}

const FieldInfo* FindField(std::string_view name) {
  const auto& m = TheRegistry().by_name;
  auto it = m.find(name);
  return it == m.end() ? nullptr : it->second;
}

std::vector<const FieldInfo*> AllFields() { return TheRegistry().sorted; }

void AppendFieldText(const FieldInfo& f, FieldArg arg, const RuleContext& ctx,
                     FieldValue* scratch, std::string* out) {
  scratch->Clear();
  if (!f.extract(ctx, arg, scratch)) {
    out->append("<NA>");
    return;
  }
  switch (f.TypeFor(arg)) {
    case FieldType::kString:
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
