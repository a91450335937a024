// `driftwatch diff`: a container's filesystem drift (added, modified, deleted files) read
// from its overlay upper layer, like `docker diff` but with types, modes and hashes.
#include "cli/diff.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <expected>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lib/base/json.h"
#include "lib/node/cgroup_path.h"
#include "lib/k8s/cri_client.h"
#include "lib/k8s/docker_client.h"
#include "lib/node/drift_inventory.h"
#include "lib/node/mountinfo.h"
#include "lib/node/procfs.h"
#include "lib/base/terminal_text.h"

namespace driftwatch::cli {
namespace {

struct Target {
  std::string id;       // container id ("" for --pid / --upperdir)
  std::string runtime;  // as the cgroup layout says
  pid_t pid = 0;
};

// Start time (clock ticks since boot) of a live process; nullopt for a vanished process or
// a zombie (no root left to read).
std::optional<uint64_t> LiveStartTime(pid_t pid) {
  auto st = ReadProcStat(pid);
  if (!st || st->state == 'Z' || st->state == 'X') return std::nullopt;
  return st->start_ticks;
}

struct Candidate {
  std::string runtime;
  pid_t pid = 0;
  uint64_t start = 0;
};

// Every container with a live process, keyed by id, with its oldest process (lowest start
// time: normally the container's init, which lives as long as the container).
std::map<std::string, Candidate> ScanContainers() {
  std::map<std::string, Candidate> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (struct dirent* de = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(de->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    auto c = ContainerOfPid(static_cast<pid_t>(pid));
    if (!c) continue;
    auto start = LiveStartTime(static_cast<pid_t>(pid));
    if (!start) continue;
    auto [it, inserted] = out.try_emplace(c->id, Candidate{c->runtime, static_cast<pid_t>(pid),
                                                           *start});
    if (!inserted && (*start < it->second.start ||
                      (*start == it->second.start && pid < it->second.pid))) {
      it->second.pid = static_cast<pid_t>(pid);
      it->second.start = *start;
    }
  }
  closedir(d);
  return out;
}

// Lookup by name through the CRI runtimes that answer: NAME is the container's name in its
// pod, or POD/NAME, or NAMESPACE/POD/NAME; and through the Docker engine when it answers (a
// bare NAME, as `docker ps` shows it). Several matches are an error listing them.
std::expected<std::optional<std::string>, std::string> ContainerIdByName(
    const std::string& query, const std::vector<std::string>& endpoints,
    const std::string& docker_endpoint) {
  std::vector<std::string> parts;
  for (size_t b = 0;;) {
    size_t e = query.find('/', b);
    parts.push_back(query.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  if (parts.size() > 3) return std::optional<std::string>();
  const std::string& name = parts.back();
  std::string pod = parts.size() >= 2 ? parts[parts.size() - 2] : "";
  std::string ns = parts.size() == 3 ? parts[0] : "";
  auto label = [](const CriContainer& c, const char* k) {
    auto it = c.labels.find(k);
    return it == c.labels.end() ? std::string() : it->second;
  };
  std::vector<std::string> found, described;
  for (const auto& ep : endpoints.empty() ? CriClient::DefaultEndpoints() : endpoints) {
    auto client = CriClient::Connect(ep, std::chrono::milliseconds(2000));
    if (!client) continue;
    CriContainerFilter running;
    running.running_only = true;
    auto list = (*client)->ListContainers(running);
    if (!list) continue;
    for (const auto& c : *list) {
      if (c.name != name) continue;
      if (!pod.empty() && label(c, kCriLabelPodName) != pod) continue;
      if (!ns.empty() && label(c, kCriLabelPodNamespace) != ns) continue;
      found.push_back(c.id);
      described.push_back(c.id + " (" + label(c, kCriLabelPodNamespace) + "/" +
                          label(c, kCriLabelPodName) + "/" + c.name + " on " + ep + ")");
    }
  }
  std::string docker = docker_endpoint;
  if (docker.empty() && access(DockerClient::kDefaultEndpoint, F_OK) == 0)
    docker = DockerClient::kDefaultEndpoint;
  if (parts.size() == 1 && !docker.empty()) {
    if (auto client = DockerClient::Connect(docker, std::chrono::milliseconds(2000)); client) {
      if (auto list = (*client)->ListContainers(false); list) {
        for (const DockerContainer& c : *list) {
          if (c.name != name) continue;
          found.push_back(c.id);
          described.push_back(c.id + " (" + c.name + " on " + (*client)->version().engine + " " +
                              docker + ")");
        }
      }
    } else if (!docker_endpoint.empty()) {
      return std::unexpected(client.error().message());  // asked for by the user: said
    }
  }
  if (found.size() > 1) {
    std::string msg = "container name '" + query + "' is ambiguous (use POD/NAME or an id):";
    for (const auto& d : described) msg += "\n  " + d;
    return std::unexpected(msg);
  }
  if (found.empty()) return std::optional<std::string>();
  return std::optional<std::string>(found[0]);
}

std::expected<Target, std::string> ResolveContainer(const std::string& query,
                                                    const std::vector<std::string>& endpoints,
                                                    const std::string& docker_endpoint) {
  if (query.empty()) return std::unexpected("empty container id");
  std::map<std::string, Candidate> all = ScanContainers();
  auto pick = [](const std::string& id, const Candidate& c) {
    return Target{id, c.runtime, c.pid};
  };
  if (auto it = all.find(query); it != all.end()) return pick(it->first, it->second);
  std::vector<std::map<std::string, Candidate>::iterator> matches;
  for (auto it = all.lower_bound(query); it != all.end() && it->first.starts_with(query); ++it) {
    matches.push_back(it);
  }
  if (matches.size() == 1) return pick(matches[0]->first, matches[0]->second);
  if (matches.size() > 1) {
    std::string msg = "container id prefix '" + query + "' is ambiguous; candidates:";
    for (auto& it : matches) msg += "\n  " + it->first + " (" + it->second.runtime + ")";
    return std::unexpected(msg);
  }
  auto by_name = ContainerIdByName(query, endpoints, docker_endpoint);
  if (!by_name) return std::unexpected(by_name.error());
  if (*by_name) {
    if (auto it = all.find(**by_name); it != all.end()) return pick(it->first, it->second);
    return std::unexpected("container '" + query + "' is " + **by_name +
                           ", which has no process in /proc to read its root from");
  }
  return std::unexpected("no running container matches '" + query + "' (" +
                         std::to_string(all.size()) + " running container(s) seen in /proc)");
}

std::string OctalMode(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04o", mode);
  return buf;
}

// Messages name containers, paths and mount options the node's containers chose: escaped,
// line by line (some list candidates on lines of their own).
int Fail(const std::string& msg) {
  std::fprintf(stderr, "driftwatch diff: %s\n", TerminalEscapeLines(msg).c_str());
  return 1;
}

}  // namespace

std::string DriftEntryJson(const DriftEntry& e) {
  std::string out = "{\"kind\":\"";
  out += DriftKindName(e.kind);
  out += "\",\"path\":";
  AppendJsonString(e.path, &out);
  out += ",\"type\":\"";
  out.push_back(e.type);
  out += "\",\"mode\":\"" + OctalMode(e.mode) + "\",\"size\":" + std::to_string(e.size);
  out += std::string(",\"executable\":") + (e.executable ? "true" : "false");
  out += ",\"sha256\":\"" + e.sha256_hex + "\"";
  out += std::string(",\"opaque\":") + (e.opaque_dir ? "true" : "false") + "}";
  return out;
}

// Paths, and with `driftwatch inventory` every field a sensor sent, come from the container:
// escaped (lib/base/terminal_text.h), one line per entry whatever they hold.
void PrintDriftTable(const std::vector<DriftEntry>& entries, const std::string& what) {
  size_t width = 4;
  std::vector<std::string> paths;
  for (const DriftEntry& e : entries) {
    paths.push_back(TerminalEscape(e.path) + (e.type == 'd' ? "/" : ""));
    width = std::max(width, paths.back().size());
  }
  width = std::min<size_t>(width, 60);
  std::printf("%-8s  %-*s  %-4s  %-4s  %10s  %s\n", "KIND", static_cast<int>(width), "PATH",
              "TYPE", "MODE", "SIZE", "SHA256");
  size_t counts[3] = {0, 0, 0};
  for (size_t i = 0; i < entries.size(); ++i) {
    const DriftEntry& e = entries[i];
    ++counts[static_cast<int>(e.kind)];
    std::string flags = e.opaque_dir ? " (opaque: image contents removed)" : "";
    std::printf("%-8s  %-*s  %-4s  %-4s  %10llu  %s%s\n", DriftKindName(e.kind),
                static_cast<int>(width), paths[i].c_str(),
                TerminalEscape(std::string_view(&e.type, 1)).c_str(), OctalMode(e.mode).c_str(),
                static_cast<unsigned long long>(e.size),
                e.sha256_hex.empty() ? (e.executable ? "(exec, not hashed)" : "-")
                                     : TerminalEscape(e.sha256_hex).c_str(),
                flags.c_str());
  }
  std::printf("%zu change(s): %zu added, %zu modified, %zu deleted (%s)\n", entries.size(),
              counts[0], counts[1], counts[2], TerminalEscape(what).c_str());
}

int RunDiff(const DiffOptions& opt) {
  int sources = !opt.container.empty() + (opt.pid != 0) + !opt.upperdir.empty();
  if (sources != 1) return Fail("give exactly one of CONTAINER, --pid or --upperdir");
  if (!opt.lowerdir.empty() && opt.upperdir.empty()) return Fail("--lowerdir needs --upperdir");
  if (opt.pid < 0) return Fail("--pid must be positive");

  OverlayRoot root;
  std::string what;
  std::set<std::string> mount_points;
  if (!opt.upperdir.empty()) {
    if (opt.lowerdir.empty()) return Fail("--upperdir needs --lowerdir (the image's layers)");
    root.upperdir = opt.upperdir;
    root.lowerdirs = SplitLowerdirOption(opt.lowerdir);
    what = "upperdir " + opt.upperdir;
  } else {
    Target t;
    if (opt.pid != 0) {
      t.pid = opt.pid;
    } else {
      auto r = ResolveContainer(opt.container, opt.cri_endpoints, opt.docker_endpoint);
      if (!r) return Fail(r.error());
      t = *r;
    }
    auto o = RootOverlayOfPid(t.pid);
    if (!o) {
      return Fail(t.id.empty() ? o.error().message()
                               : "container " + t.id + " (pid " + std::to_string(t.pid) +
                                     "): " + o.error().message());
    }
    root = *o;
    if (!opt.include_mount_points) mount_points = MountPointsOfPid(t.pid);
    what = (t.id.empty() ? "pid " + std::to_string(t.pid)
                         : "container " + t.id + ", pid " + std::to_string(t.pid)) +
           ", upperdir " + root.upperdir;
  }

  InventoryOptions io;
  io.hash_max_bytes = opt.hash_max;
  auto inv = DriftInventory(root, io);
  if (!inv) return Fail(inv.error().message());
  std::vector<DriftEntry>* entries = &inv->entries;
  size_t left_out = DropMountTargets(entries, mount_points);
  if (left_out > 0)
    std::fprintf(stderr, "driftwatch diff: %zu mount target(s) made by the runtime left out "
                 "(--include-mount-points shows them)\n", left_out);
  if (opt.json) {
    std::string out;
    for (const DriftEntry& e : *entries) out += DriftEntryJson(e) + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  } else {
    PrintDriftTable(*entries, what);
  }
  if (inv->truncation.truncated()) {
    std::fprintf(stderr, "driftwatch diff: the listing is %s\n",
                 TerminalEscape(TruncationText(inv->truncation)).c_str());
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace driftwatch::cli
