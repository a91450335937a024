// user.* and group.* fields: who ran the process.
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

using fields::SetNum;
using fields::SetStr;

constexpr uint32_t kUnset = 4294967295u;

bool UserUid(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.event->has_exec()) return SetNum(c.event->exec().uid(), out);
  if (c.event->has_chmod()) return SetNum(c.event->chmod().uid(), out);
  return false;
}

bool UserEuid(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.event->has_exec()) return SetNum(c.event->exec().euid(), out);
  if (c.event->has_chmod()) return SetNum(c.event->chmod().euid(), out);
  return false;
}

// The name an ENRICHED log gave; uid 0 is "root" everywhere, other uids stay unknown (the
// container's /etc/passwd is not the host's).
bool UserName(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.event->has_exec()) {
    const v1::ProcessExec& x = c.event->exec();
    if (!x.user_name().empty()) return SetStr(x.user_name(), out);
    if (x.uid() == 0) return SetStr("root", out);
    return false;
  }
  if (c.event->has_chmod() && c.event->chmod().uid() == 0) return SetStr("root", out);
  return false;
}

// -1 when unset, as Falco prints it.
bool UserLoginuid(const RuleContext& c, FieldArg, FieldValue* out) {
  uint32_t a;
  if (c.event->has_exec()) {
    a = c.event->exec().auid();
  } else if (c.event->has_chmod()) {
    a = c.event->chmod().auid();
  } else {
    return false;
  }
  return SetNum(a == kUnset ? -1 : int64_t{a}, out);
}

bool GroupGid(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.event->has_exec()) return SetNum(c.event->exec().gid(), out);
  return false;
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
