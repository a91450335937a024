// prevent_policy: the drift a site allows, declared once, from a YAML file. The sensor
// lets such execs run under --prevent drift (--prevent-policy, reloaded on SIGHUP, plus
// --prevent-allow); the collector (--drift-policy, pushed to the sensors as their fleet
// policy) counts such matches of drift rules in the allowed-drift summary instead of
// alerting. Each entry of `allow` allows what every selector it gives matches; something is
// allowed when any entry matches:
//
//   allow:
//     - name: ci-runners          # said in logs, counters and the allowed-drift summary
//       namespaces: [ci, "build-*"]    # pod namespace globs
//       pods: ["runner-*"]             # pod name globs
//       labels: {app: builder}         # pod or container labels, each must be equal
//       annotations: {driftwatch.io/team: ci}  # pod annotations (driftwatch.io/ keys only:
//                                      # the sensor carries no other), each must be equal
//       images: ["docker.io/library/golang:*"]  # image globs: the image as the runtime
//                                      # names it, repository[:tag], repository@digest, or
//                                      # the image id
//       paths: ["/workspace/bin/*"]    # the file's path inside the container (FNM_PATHNAME)
//       path_annotation: driftwatch.io/allow-drift  # the file's path matches one of the
//                                      # comma-separated globs this pod annotation lists
//                                      # (an entry for who may declare drift in pod specs)
//       sha256: [9f86d0...]            # the file's sha256 (hex; hashed only if asked, up to
//                                      # 16 MiB: a larger file matches no hash)
//       rules: [drift]                 # collector only: the rules (names or tags) whose
//                                      # matches it allows; default: those tagged drift
//                                      # and not prevention (a denial is always said)
//
// The file is an exec's (prevention; an exec rule's match), or the file written or chmod'ed.
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
    std::vector<std::string> namespaces, pods, paths, images;  // globs; empty: any
    std::map<std::string, std::string> labels;         // all must match; empty: any
    std::map<std::string, std::string> annotations;    // all must match; empty: any
    std::string path_annotation;                       // "": none
    std::set<std::string> sha256;                      // lowercase hex; empty: any
    std::vector<std::string> rules;                    // names or tags; empty: tag drift
  };
  // What an exec is judged by. `container` is null when the registry knows nothing more
  // than the id; `sha256` computes the file's hash (raw bytes; nullopt when it cannot).
  struct Exec {
    std::string_view path;
    const v1::ContainerInfo* container = nullptr;
    std::function<std::optional<std::string>()> sha256;
  };
  // The collector's rule match of the event (the sensor's prevention has none: `rules`
  // ignored there).
  struct RuleMatch {
    std::string_view rule;
    const std::vector<std::string>* tags = nullptr;  // REQUIRED
    std::string_view sha256_hex;  // the file's, when the event knows it: used, not hashed
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
  std::optional<std::string> Allows(const Exec& exec, const RuleMatch* match = nullptr) const;
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // Whether some entry needs the container's pod metadata.
  bool wants_container() const { return wants_container_; }

 private:
  std::vector<Entry> entries_;
  bool wants_container_ = false;
};

}  // namespace driftwatch
