// user.* and group.* fields: who ran the process.
#include "lib/event/event_view.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

using fields::SetNum;
using fields::SetStr;

constexpr uint32_t kUnset = 4294967295u;

// The process's ids, when its kind carries them (exec, chmod).
std::optional<ProcessView> Ids(const RuleContext& c) {
  std::optional<ProcessView> p = ProcessOf(*c.event);
  if (p && !p->Carries(ProcessView::kIds)) p.reset();
  return p;
}

bool UserUid(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = Ids(c);
  return p && SetNum(p->uid, out);
}

bool UserEuid(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = Ids(c);
  return p && SetNum(p->euid, out);
}

// The name an ENRICHED log gave; uid 0 is "root" everywhere, other uids stay unknown (the
// container's /etc/passwd is not the host's).
bool UserName(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = Ids(c);
  if (!p) return false;
  if (p->exec && !p->exec->user_name().empty()) return SetStr(p->exec->user_name(), out);
  if (p->uid == 0) return SetStr("root", out);
  return false;
}

// -1 when unset, as Falco prints it.
bool UserLoginuid(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = Ids(c);
  return p && SetNum(p->auid == kUnset ? -1 : int64_t{p->auid}, out);
}

bool GroupGid(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = ProcessOf(*c.event);
  return p && p->Carries(ProcessView::kGid) && SetNum(p->gid, out);
}

constexpr FieldInfo kUserFields[] = {
    {"user.uid", FieldType::kNumber, "real user id", UserUid},
    {"user.euid", FieldType::kNumber, "effective user id", UserEuid},
    {"user.name", FieldType::kString,
     "user name from an ENRICHED log; \"root\" for uid 0 otherwise", UserName},
    {"user.loginuid", FieldType::kNumber, "audit login uid; -1 when unset", UserLoginuid},
    {"group.gid", FieldType::kNumber, "real group id", GroupGid},
};

}  // namespace

std::span<const FieldInfo> UserFields() { return kUserFields; }

}  // namespace driftwatch
