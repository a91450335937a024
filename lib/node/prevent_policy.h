// prevent_policy: the drift that --prevent drift lets run, from a YAML file
// (--prevent-policy, reloaded on SIGHUP) and --prevent-allow. Each entry of `allow` lets an
// exec of an upper-layer file run when every selector it gives matches; an exec is allowed
// when any entry matches:
//
//   allow:
//     - name: ci-runners          # said in the sensor's log and counters' help
//       namespaces: [ci, "build-*"]    # pod namespace globs
//       pods: ["runner-*"]             # pod name globs
//       labels: {app: builder}         # container (pod) labels, each must be equal
//       paths: ["/workspace/bin/*"]    # the file's path inside the container (FNM_PATHNAME)
//       sha256: [9f86d0...]            # the file's sha256 (hex; hashed only if asked, up to
//                                      # 16 MiB: a larger file matches no hash)
//
// Thread-safety: a loaded policy is immutable; Allows may run on any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/result.h"

namespace driftwatch {

// Files up to this size are hashed on the verdict path for a sha256 selector.
inline constexpr uint64_t kPolicyHashMaxBytes = 16ull << 20;

class PreventPolicy {
 public:
  struct Entry {
    std::string name;
    std::vector<std::string> namespaces, pods, paths;  // globs; empty: any
    std::map<std::string, std::string> labels;         // all must match; empty: any
    std::set<std::string> sha256;                      // lowercase hex; empty: any
  };
  // What an exec is judged by. `container` is null when the registry knows nothing more
  // than the id; `sha256` computes the file's hash (raw bytes; nullopt when it cannot).
  struct Exec {
    std::string_view path;
    const v1::ContainerInfo* container = nullptr;
    std::function<std::optional<std::string>()> sha256;
  };

  // A policy's text is at most this long (a file, or one pushed by the collector).
  static constexpr size_t kMaxTextBytes = 1 << 20;

  // `text` of a file named `name` (for errors: "name:line:column: what").
  static Result<PreventPolicy> Parse(std::string_view text, std::string_view name);
  static Result<PreventPolicy> Load(const std::string& path);
  // The file's text, at most kMaxTextBytes (a longer file is an error), not parsed.
  static Result<std::string> ReadText(const std::string& path);
  // The same, checked to parse (the collector pushes it to sensors as it is).
  static Result<std::string> ReadChecked(const std::string& path);
  // The --prevent-allow globs as an entry of their own.
  void AddPaths(const std::vector<std::string>& globs);
  // The entries of `other` after this one's; an unnamed one takes `name`.
  void Add(const PreventPolicy& other, const std::string& name);

  // The name of the first entry that allows the exec ("" for an unnamed one), or nullopt.
  std::optional<std::string> Allows(const Exec& exec) const;
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // Whether some entry needs the container's pod metadata.
  bool wants_container() const { return wants_container_; }

 private:
  std::vector<Entry> entries_;
  bool wants_container_ = false;
};

}  // namespace driftwatch
