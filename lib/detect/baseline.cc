#include "lib/detect/baseline.h"

#include "lib/alerts/alert.h"
#include "lib/base/log.h"
#include "lib/event/event_json.h"
#include "lib/event/event_view.h"
#include "lib/event/file_digest.h"
#include "lib/event/image_ref.h"
#include "lib/event/net_address.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

constexpr uint32_t kAfUnix = 1, kAfInet = 2, kAfInet6 = 10;
constexpr size_t kMaxItemBytes = 1024;

// The field's text for this event ("" when it has none), as rules read it.
std::string FieldText(const RuleContext& ctx, std::string_view name) {
  const FieldInfo* f = FindField(name);
  if (f == nullptr) return {};
  FieldValue v;
  if (!f->Extract(ctx, {}, &v)) return {};
  return std::string(v.str);
}

bool FieldTrue(const RuleContext& ctx, std::string_view name) {
  const FieldInfo* f = FindField(name);
  FieldValue v;
  return f != nullptr && f->Extract(ctx, {}, &v) && v.boolean;
}

}  // namespace

std::string_view BaselineKindName(BaselineKind k) {
  switch (k) {
    case BaselineKind::kProcess: return "process";
    case BaselineKind::kConnection: return "connection";
    case BaselineKind::kListener: return "listener";
    case BaselineKind::kRead: return "read";
  }
  return "?";
}

std::optional<BaselineKind> ParseBaselineKind(std::string_view name) {
  for (BaselineKind k : kBaselineKinds)
    if (BaselineKindName(k) == name) return k;
  return std::nullopt;
}

BaselineId BaselineIdOf(const v1::ContainerInfo& c) {
  BaselineId id;
  id.container = c.name();
  if (!c.image_digest().empty()) {
    id.image = c.image_digest();
  } else if (std::string d = RepoDigestOf(c.image_ref()); !d.empty()) {
    id.image = std::move(d);
  } else if (!c.image_ref().empty()) {
    id.image = c.image_ref();  // a local image's id
  } else {
    id.image = c.image();
  }
  return id;
}

std::optional<std::pair<BaselineKind, std::string>> BaselineItemOf(const RuleContext& ctx) {
  const v1::Event& ev = *ctx.event;
  switch (KindOf(ev)) {
    case Kind::kExec: {
      // As spawned_process: a failed exec or the runtime's own is no behaviour of the image
      // (and recording a failed one would let its later success pass unseen).
      if (FieldText(ctx, "evt.res") != "SUCCESS" || FieldTrue(ctx, "proc.is_runtime_plumbing"))
        return std::nullopt;
      std::string path = FieldText(ctx, "proc.exepath");
      if (path.empty()) return std::nullopt;
      // Multi-call binaries (busybox: sh, ls, nc are all /bin/busybox) tell their commands
      // apart by name: the name joins the item where it is not the executable's own.
      const std::string name = FieldText(ctx, "proc.name");
      if (!name.empty() && name != path.substr(path.rfind('/') + 1)) path += " [" + name + "]";
      return std::pair{BaselineKind::kProcess, std::move(path)};
    }
    case Kind::kNetwork: {
      const v1::NetworkActivity& n = ev.network();
      const bool ip = (n.family() == kAfInet && n.address().size() == 4) ||
                      (n.family() == kAfInet6 && n.address().size() == 16);
      if (n.syscall() == "connect") {
        if (ip) {
          std::string text = IpText(n.address());
          if (n.family() == kAfInet6) text = "[" + text + "]";
          return std::pair{BaselineKind::kConnection, text + ":" + std::to_string(n.port())};
        }
        if (n.family() == kAfUnix && !n.unix_path().empty()) {
          // Abstract names start with a NUL: '@' as ss(8) prints them.
          std::string path = n.unix_path();
          if (path[0] == '\0') path[0] = '@';
          return std::pair{BaselineKind::kConnection, "unix:" + path};
        }
        return std::nullopt;
      }
      if (n.syscall() == "bind" && n.success() && ip && n.port() != 0)
        return std::pair{BaselineKind::kListener, std::to_string(n.port())};
      return std::nullopt;
    }
    case Kind::kRead: {
      if (ev.read().path().empty()) return std::nullopt;
      return std::pair{BaselineKind::kRead, ev.read().path()};
    }
    default:
      return std::nullopt;
  }
}

void Baselines::Load(bool all, const std::vector<BaselineId>& ids,
                     const std::vector<BaselineHeader>& headers,
                     const std::vector<BaselineItem>& items) {
  MutexLock lk(mu_);
  if (all) by_id_.clear();
  for (const BaselineId& id : ids) by_id_.erase(id);
  for (const BaselineHeader& h : headers) by_id_[h.id] = Entry{h, {}};
  for (const BaselineItem& i : items) {
    auto it = by_id_.find(i.id);
    if (it != by_id_.end()) it->second.items.emplace(i.kind, i.item);
  }
  items_ = 0;
  for (const auto& [id, e] : by_id_) items_ += e.items.size();
}

size_t Baselines::size() const {
  MutexLock lk(mu_);
  return by_id_.size();
}

void Baselines::Check(RuleContext* ctx, const std::string& node, int64_t stored_ns,
                      BaselineChanges* out) {
  BaselineVerdict& v = ctx->baseline;
  v = BaselineVerdict();
  if (ctx->event == nullptr || ctx->container == nullptr) return;
  const std::string& cid = ctx->event->container_id();
  if (cid.empty() || cid == "host") return;
  auto item = BaselineItemOf(*ctx);
  if (!item) return;
  BaselineId id = BaselineIdOf(*ctx->container);
  if (id.image.empty()) return;
  ++stats_.checked;
  // An item is a path or an address a container or node chose: past kMaxItemBytes its tail
  // becomes a digest, so the bound on items bounds memory, and distinct items stay distinct.
  if (item->second.size() > kMaxItemBytes) {
    const std::string digest = Sha256Hex(item->second);
    constexpr std::string_view kMark = "...sha256:";
    item->second.resize(kMaxItemBytes - kMark.size() - digest.size());
    item->second.append(kMark).append(digest);
  }
  v.kind = BaselineKindName(item->first);
  v.item = item->second;
  v.image = id.image;

  MutexLock lk(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) {
    if (by_id_.size() >= opt_.max_baselines) {
      if (stats_.dropped_baselines++ == 0)
        LogWarn("baselines: %zu baselines, the most kept (--baseline-max); images past them are "
                "not learned (counted in driftwatch_collector_baseline_dropped_total)\n",
                opt_.max_baselines);
      v.state = BaselineVerdict::State::kFull;
      return;
    }
    it = by_id_.emplace(id, Entry{BaselineHeader{id, 0, 0, 0, 0}, {}}).first;
  }
  Entry& e = it->second;
  if (e.header.first_ns == 0) {  // new, or reset: learning starts now
    e.header.first_ns = stored_ns;
    e.header.learn_until_ns = stored_ns + opt_.learn.count();
    out->headers.push_back(e.header);
  }
  const bool learning = stored_ns < e.header.learn_until_ns;
  v.state = learning ? BaselineVerdict::State::kLearning : BaselineVerdict::State::kEnforcing;
  if (e.items.contains(*item)) return;
  v.unexpected = !learning;
  if (v.unexpected) ++stats_.unexpected;
  if (e.items.size() >= opt_.max_items || items_ >= opt_.max_total_items) {
    // Full: nothing more is recorded; an unexpected item stays unexpected every time.
    ++stats_.dropped_items;
    ++e.header.dropped;
    out->headers.push_back(e.header);
    if (learning) v.state = BaselineVerdict::State::kFull;
    return;
  }
  e.items.insert(*item);
  ++items_;
  if (learning) ++stats_.learned;
  BaselineItem row;
  row.id = id;
  row.generation = e.header.generation;
  row.kind = item->first;
  row.item = item->second;
  row.source = learning ? "learned" : "unexpected";
  if (item->first == BaselineKind::kProcess) {
    std::string sha = FieldText(*ctx, "fd.sha256"), parent = FieldText(*ctx, "proc.pname");
    if (!sha.empty()) row.detail = "sha256=" + sha;
    if (!parent.empty()) {
      if (!row.detail.empty()) row.detail += ' ';
      row.detail.append("parent=").append(parent);
    }
  }
  row.node = node;
  row.event_key = EventKey(*ctx->event);
  row.first_ns = stored_ns;
  out->items.push_back(std::move(row));
}

}  // namespace driftwatch
