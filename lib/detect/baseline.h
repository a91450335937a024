// baseline: what each image's containers normally do, learned by the collector, and the
// verdict on one event against it (RuleContext::baseline, the baseline.* fields that the
// shipped rules "Unexpected process/connection/listener for image" read).
//
//   event of a container (exec, connect, bind, sensitive read) ─► its baseline: (image,
//   container name)
//     learning  ─► the item joins the baseline
//     enforcing ─► an item not in the baseline is unexpected; the first time only, as it then
//                  joins the baseline as "unexpected" (each new behaviour alerts once)
//   ─► BaselineChanges, which detection commits with the alerts and cursors of the same rows
//      (lib/detect/baseline_store.h), so a replay after a crash decides as the first pass did.
//
// Items: process = proc.exepath of a successful exec (as spawned_process: not the runtime's
// own), with " [proc.name]" where the name is not the executable's (busybox's applets);
// connection = the destination of a connect
// ("10.0.0.5:443", "[fd00::5]:443", or "unix:/run/x.sock"); listener = the port of a bind to
// a fixed port, TCP and UDP alike ("8080"; audit does not tell the protocol of a bind);
// read = the path of a sensitive file read (driftwatch-sensor --sensitive-paths).
//
// Image: the registry digest (a CRI image_ref "repo@sha256:..." or image_digest), else the
// image id a locally imported image has, else the image name; an event of a container whose
// image is unknown has no baseline.
//
// Time: the store's clock (the row's stored_ns), not the sensor's: a node cannot extend
// learning by back-dating events, and every collector and every replay judges a row alike.
// Learning lasts `learn` from the first row of that image and container name (a baseline
// reset by the CLI starts again at its next row).
//
// Bounds (a hostile container or node may invent any number of items or images): at most
// `max_items` items per baseline, `max_total_items` in all, and `max_baselines` baselines. Past them nothing more is
// recorded and each refusal is counted (BaselineStats, per baseline in the store). What
// cannot be recorded is never hidden: an unexpected item that cannot join a full baseline
// is unexpected at every occurrence; a row that cannot have a baseline (too many) says
// state "full".
//
// Thread-safety: every method may be called from any thread (one mutex).
#pragma once

#include <atomic>
#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/mutex.h"
#include "lib/rules/rule_context.h"

namespace driftwatch {

struct BaselineOptions {
  std::chrono::nanoseconds learn = std::chrono::hours(24);
  size_t max_items = 2000;          // per baseline
  size_t max_baselines = 10000;     // in all
  size_t max_total_items = 500000;  // in all baselines (each at most 1 KiB)
};

enum class BaselineKind : uint8_t { kProcess, kConnection, kListener, kRead };
// "process", "connection", "listener", "read".
std::string_view BaselineKindName(BaselineKind k);
std::optional<BaselineKind> ParseBaselineKind(std::string_view name);
inline constexpr BaselineKind kBaselineKinds[] = {BaselineKind::kProcess, BaselineKind::kConnection,
                                                  BaselineKind::kListener, BaselineKind::kRead};

struct BaselineId {
  std::string image;      // digest, image id or name (see above)
  std::string container;  // the container's name in its pod
  auto operator<=>(const BaselineId&) const = default;
};

// A baseline as stored. `generation` grows with every edit by the CLI (reset, import,
// enforce): what detection decided under an older generation is not written over it.
struct BaselineHeader {
  BaselineId id;
  int64_t generation = 0;
  int64_t first_ns = 0;        // its first row; 0: learning starts at the next row
  int64_t learn_until_ns = 0;  // rows stored before it are learned, the others checked
  uint64_t dropped = 0;        // items refused as the baseline was full
};

struct BaselineItem {
  BaselineId id;
  int64_t generation = 0;
  BaselineKind kind = BaselineKind::kProcess;
  std::string item;
  std::string source;     // "learned", "unexpected" (alerted), "imported"
  std::string detail;     // process: "sha256=... parent=..." of its first exec, when known
  std::string node;       // where it was first seen
  std::string event_key;  // the event that first showed it
  int64_t first_ns = 0;   // stored_ns of that event
};

// What Check decided that the store must keep.
struct BaselineChanges {
  std::vector<BaselineHeader> headers;
  std::vector<BaselineItem> items;
  bool empty() const { return headers.empty() && items.empty(); }
  void clear() {
    headers.clear();
    items.clear();
  }
};

struct BaselineStats {
  std::atomic<uint64_t> checked{0};            // rows with a baseline
  std::atomic<uint64_t> learned{0};            // items learned
  std::atomic<uint64_t> unexpected{0};         // rows whose item was unexpected
  std::atomic<uint64_t> dropped_items{0};      // items a full baseline could not record
  std::atomic<uint64_t> dropped_baselines{0};  // rows of an image past max_baselines
};

// The event's baseline item (kind and item), when it has one.
std::optional<std::pair<BaselineKind, std::string>> BaselineItemOf(const RuleContext& ctx);
// The container's baseline id; empty image when unknown.
BaselineId BaselineIdOf(const v1::ContainerInfo& c);

class Baselines {
 public:
  explicit Baselines(BaselineOptions opt) : opt_(opt) {}

  // Replaces what is known of the baselines named in `ids` (all when `all`) by the stored
  // `headers` and `items` (a named baseline without a header is forgotten: reset).
  void Load(bool all, const std::vector<BaselineId>& ids, const std::vector<BaselineHeader>& headers,
            const std::vector<BaselineItem>& items);

  // Sets ctx->baseline for an event stored at `stored_ns` by `node`, and appends to *out
  // what the store must keep of the decision.
  void Check(RuleContext* ctx, const std::string& node, int64_t stored_ns, BaselineChanges* out);

  size_t size() const;
  const BaselineStats& stats() const { return stats_; }

 private:
  struct Entry {
    BaselineHeader header;
    std::set<std::pair<BaselineKind, std::string>> items;
  };
  const BaselineOptions opt_;
  mutable Mutex mu_;
  std::map<BaselineId, Entry> by_id_ DW_GUARDED_BY(mu_);
  size_t items_ DW_GUARDED_BY(mu_) = 0;  // in all entries
  BaselineStats stats_;
};

}  // namespace driftwatch
