// `driftwatch inventory`: the drift inventories a collector stored. A sensor takes one on the
// collector's request (Command{inventory}) after drift alerts on a container: the files the
// container added, changed and deleted against its image, as `driftwatch diff` on the node
// would have printed them then.
#include "cli/inventory.h"

#include <cstdio>
#include <string>
#include <vector>

#include "cli/diff.h"
#include "driftwatch/v1/collector.pb.h"
#include "lib/alerts/alert_store.h"
#include "lib/alerts/pg_alert_reader.h"
#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/event/event_json.h"
#include "lib/base/terminal_text.h"

namespace driftwatch::cli {
namespace {

// Messages name containers the sensors reported: escaped (lib/base/terminal_text.h).
int Fail(const std::string& msg) {
  std::fprintf(stderr, "driftwatch inventory: %s\n", TerminalEscapeLines(msg).c_str());
  return 1;
}

std::vector<DriftEntry> Entries(const v1::InventoryReply& r) {
  std::vector<DriftEntry> out;
  for (const v1::InventoryEntry& e : r.entries()) {
    DriftEntry d;
    d.path = e.path();
    d.kind = e.kind() == "deleted"    ? DriftKind::kDeleted
             : e.kind() == "modified" ? DriftKind::kModified
                                      : DriftKind::kAdded;
    d.type = e.type().empty() ? '?' : e.type()[0];
    d.size = e.size();
    d.mode = e.mode();
    d.opaque_dir = e.opaque();
    d.executable = e.executable();
    d.sha256_hex = e.sha256();
    out.push_back(std::move(d));
  }
  return out;
}

// The sensor's walk stopped short (its caps): said wherever the entries are shown.
InventoryTruncation Truncation(const v1::InventoryReply& r) {
  InventoryTruncation t;
  if (!r.has_truncated()) return t;
  const v1::InventoryTruncation& p = r.truncated();
  t.depth = p.depth();
  t.entries = p.entries();
  t.path_bytes = p.path_bytes();
  t.dirs_not_entered = p.dirs_not_entered();
  t.first_not_entered = p.first_not_entered();
  t.entries_examined = p.entries_examined();
  t.path_bytes_listed = p.path_bytes_listed();
  t.max_depth = p.max_depth();
  t.max_entries = p.max_entries();
  t.max_path_bytes = p.max_path_bytes();
  return t;
}

std::string Pod(const StoredInventory& inv) {
  return inv.pod_name.empty() ? "-" : inv.pod_namespace + "/" + inv.pod_name;
}

std::string Name(const StoredInventory& inv) {
  return inv.container_name.empty() ? ShortContainerId(inv.container_id) : inv.container_name;
}

std::string Json(const StoredInventory& inv, const v1::InventoryReply& reply) {
  std::string j = "{\"time\":" + JsonQuote(FormatIsoTime(inv.taken_ns)) +
                  ",\"node\":" + JsonQuote(inv.node) +
                  ",\"container.id\":" + JsonQuote(inv.container_id) +
                  ",\"container.name\":" + JsonQuote(inv.container_name) +
                  ",\"k8s.pod.name\":" + JsonQuote(inv.pod_name) +
                  ",\"k8s.ns.name\":" + JsonQuote(inv.pod_namespace) + ",\"rules\":[";
  size_t b = 0;
  for (bool first = true; b < inv.rules.size(); first = false) {
    size_t e = inv.rules.find(',', b);
    if (e == std::string::npos) e = inv.rules.size();
    if (!first) j += ',';
    j += JsonQuote(inv.rules.substr(b, e - b));
    b = e + 1;
  }
  j += "],\"error\":" + JsonQuote(inv.error) + ",\"truncated\":";
  if (InventoryTruncation t = Truncation(reply); t.truncated()) {
    j += "{\"depth\":" + std::string(t.depth ? "true" : "false") +
         ",\"entries\":" + (t.entries ? "true" : "false") +
         ",\"path_bytes\":" + (t.path_bytes ? "true" : "false") +
         ",\"dirs_not_entered\":" + std::to_string(t.dirs_not_entered) +
         ",\"entries_examined\":" + std::to_string(t.entries_examined) +
         ",\"path_bytes_listed\":" + std::to_string(t.path_bytes_listed) +
         ",\"text\":" + JsonQuote(TruncationText(t)) + "}";
  } else {
    j += "null";
  }
  j += ",\"entries\":[";
  bool first = true;
  for (const DriftEntry& e : Entries(reply)) {
    if (!first) j += ',';
    j += DriftEntryJson(e);
    first = false;
  }
  return j + "]}";
}

}  // namespace

int RunInventory(const InventoryOptions& opt) {
  InventoryQuery q;
  q.node = opt.node;
  q.pod = opt.pod;
  bool hex_id = false;
  // CONTAINER: an id (prefix), or a name as `driftwatch diff` takes it.
  if (!opt.container.empty()) {
    std::vector<std::string> parts;
    for (size_t b = 0;;) {
      size_t e = opt.container.find('/', b);
      parts.push_back(opt.container.substr(b, e == std::string::npos ? e : e - b));
      if (e == std::string::npos) break;
      b = e + 1;
    }
    if (parts.size() > 3) return Fail(opt.container + ": not ID, NAME, POD/NAME or NS/POD/NAME");
    if (parts.size() == 1) {
      // Hex digits are an id prefix first; a name such as "cafe" is tried after (below).
      hex_id = opt.container.find_first_not_of("0123456789abcdef") == std::string::npos;
      (hex_id ? q.container : q.name) = opt.container;
    } else {
      if (!q.pod.empty()) return Fail("--pod and a POD/NAME container: give one");
      q.name = parts.back();
      q.pod = parts.size() == 3 ? parts[0] + "/" + parts[1] : parts[0];
    }
  }
  const bool listing = opt.container.empty() && !opt.all;
  if (!listing && !opt.all) q.limit = 1;
  auto reader = OpenAlertQueries(opt.db);
  if (!reader) return Fail(reader.error().message());
  if (listing && !opt.json) {
    std::printf("%-20s  %-16s  %-13s  %-20s  %-30s  %7s  %s\n", "TIME", "NODE", "CONTAINER",
                "NAME", "POD", "CHANGES", "RULES");
  }
  v1::InventoryReply reply;
  std::string bad;
  bool any_cut = false;
  auto print = [&](const StoredInventory& inv) {
    if (!reply.ParseFromString(inv.reply)) {
      bad = "inventory " + std::to_string(inv.id) + " of container " + inv.container_id +
            ": stored reply does not parse";
      reply.Clear();
    }
    std::string t = FormatIsoTime(inv.taken_ns).substr(0, 19) + "Z";
    if (opt.json) {
      std::string j = Json(inv, reply) + "\n";
      std::fwrite(j.data(), 1, j.size(), stdout);
    } else if (listing) {
      // Node, container, pod and the sensor's error are the sensors' words: escaped.
      // "+": the sensor's walk stopped at a cap, there is more.
      const bool cut = Truncation(reply).truncated();
      any_cut = any_cut || cut;
      std::printf("%-20s  %-16s  %-13s  %-20s  %-30s  %7s  %s\n", t.c_str(),
                  TerminalEscape(inv.node).c_str(),
                  TerminalEscape(ShortContainerId(inv.container_id)).c_str(),
                  TerminalEscape(Name(inv)).c_str(), TerminalEscape(Pod(inv)).c_str(),
                  inv.error.empty() ? (std::to_string(inv.entries) + (cut ? "+" : "")).c_str()
                                    : "error",
                  TerminalEscape(inv.rules).c_str());
    } else {
      std::printf("== %s: container %s (%s, pod %s) on node %s, after: %s\n", t.c_str(),
                  TerminalEscape(inv.container_id).c_str(), TerminalEscape(Name(inv)).c_str(),
                  TerminalEscape(Pod(inv)).c_str(), TerminalEscape(inv.node).c_str(),
                  TerminalEscape(inv.rules).c_str());
      if (!inv.error.empty()) {
        std::printf("the sensor could not take it: %s\n", TerminalEscape(inv.error).c_str());
      } else {
        PrintDriftTable(Entries(reply), "node " + inv.node + ", container " + inv.container_id);
        if (InventoryTruncation cut = Truncation(reply); cut.truncated()) {
          std::printf("the listing is %s (the sensor's --inventory-max-* caps)\n",
                      TerminalEscape(TruncationText(cut)).c_str());
        }
      }
    }
  };
  auto n = (*reader)->QueryInventories(q, print);
  if (n && *n == 0 && hex_id) {
    q.container.clear();
    q.name = opt.container;
    n = (*reader)->QueryInventories(q, print);
  }
  if (!n) {
    // --db without its password, should it be a URI that holds one.
    return Fail((IsPgUri(opt.db) ? RedactPgUri(opt.db) : opt.db) + ": " + n.error().message());
  }
  if (any_cut) std::printf("+: the listing is incomplete (the sensor's walk stopped at a cap)\n");
  if (!bad.empty()) return Fail(bad);
  if (*n == 0 && !listing) return Fail("no inventory stored for " + opt.container);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace driftwatch::cli
