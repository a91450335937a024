// baseline.* fields: the event against its image's learned baseline (RuleContext::baseline,
// set by the collector's detection from lib/detect/baseline.h). Offline analysis learns
// nothing: there every baseline field is unset.
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

using fields::SetBool;
using fields::SetStr;
using State = BaselineVerdict::State;

bool BaselineState(const RuleContext& c, FieldArg, FieldValue* out) {
  switch (c.baseline.state) {
    case State::kNone: return false;
    case State::kLearning: return SetStr("learning", out);
    case State::kEnforcing: return SetStr("enforcing", out);
    case State::kFull: return SetStr("full", out);
  }
  return false;
}

bool BaselineUnexpected(const RuleContext& c, FieldArg, FieldValue* out) {
  return c.baseline.state != State::kNone && SetBool(c.baseline.unexpected, out);
}

bool BaselineKindField(const RuleContext& c, FieldArg, FieldValue* out) {
  return c.baseline.state != State::kNone && SetStr(c.baseline.kind, out);
}

bool BaselineItemField(const RuleContext& c, FieldArg, FieldValue* out) {
  return c.baseline.state != State::kNone && SetStr(c.baseline.item, out);
}

bool BaselineImage(const RuleContext& c, FieldArg, FieldValue* out) {
  return c.baseline.state != State::kNone && SetStr(c.baseline.image, out);
}

const FieldInfo kBaselineFields[] = {
    {"baseline.state", FieldType::kString,
     "the event's image baseline (collector only): learning, enforcing, or full (nothing more "
     "can be recorded); unset for events no baseline covers (host, unknown image, other kinds)",
     BaselineState},
    {"baseline.unexpected", FieldType::kBool,
     "true when the baseline is enforcing and this behaviour is not in it: the first time only "
     "(it then joins the baseline), every time when the baseline is full",
     BaselineUnexpected},
    {"baseline.kind", FieldType::kString,
     "what the baseline compares: process (an exec), connection (a connect), listener (a bind "
     "to a fixed port), read (a sensitive file read)",
     BaselineKindField},
    {"baseline.item", FieldType::kString,
     "the behaviour as the baseline records it: an executable path (with \" [name]\" where "
     "the process name is not the file's: \"/bin/busybox [ls]\"), a destination "
     "(\"10.0.0.5:443\", \"[fd00::5]:443\", \"unix:/run/x.sock\"), a port (\"8080\"), a "
     "sensitive file's path",
     BaselineItemField},
    {"baseline.image", FieldType::kString,
     "the baseline's image: registry digest, else the image id, else the image name",
     BaselineImage},
};

}  // namespace

std::span<const FieldInfo> BaselineFields() { return kBaselineFields; }

}  // namespace driftwatch
