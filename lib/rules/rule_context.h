// rule_context: everything a rule condition or output can read about one event. The
// correlation stage (lib/correlation.*) fills it from its per-node, per-container state;
// the field registry (lib/rule_fields*) reads it. Plain data, no behaviour.
//
// Thread-safety: none needed; a context lives for one evaluation on one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "driftwatch/v1/event.pb.h"

namespace driftwatch {

// One ancestor of the event's process, as far as the log or stream showed it.
struct ProcessInfo {
  uint32_t pid = 0;
  std::string name;     // Falco's proc.name rules (lib/event/event_json.h ProcessName)
  std::string exepath;
  std::string cmdline;
  // Where its executable came from: the image (lower layer), the container's upper layer
  // (written since it started), or unknown (an offline log, a process seen only by name).
  enum class Origin : uint8_t { kUnknown, kImage, kUpper } origin = Origin::kUnknown;
  std::string exe_file;  // the file it runs (its proc.exe_file): a script, not its shell
  std::string exe = {};  // its proc.exe: argv[0] of its exec; empty when unknown
  int64_t start_ns = 0;  // when it started (its fork), ns since the epoch, as the sensor read
                         // it at its exec; 0 unknown (offline logs, a process gone first)
};

// What correlation knows about the executable of an exec event (or the file of a write).
struct FileHistory {
  bool written_at_runtime = false;  // a write event in the same container created/changed it
  int64_t written_ns = 0;
  std::string writer_name;          // proc.name of the writer
  uint32_t writer_pid = 0;
  std::string writer_exepath;
  std::string sha256;               // hex, when the write event hashed it
  bool chmod_exec = false;          // a chmod that added an exec bit was seen
  int64_t chmod_ns = 0;
  std::string chmod_by;             // proc.name of the chmod's process
};

// The event's container against the approved-images policy (lib/image_policy.*).
struct ImageVerdict {
  bool checked = false;          // a policy is loaded
  bool approved = false;         // the image's digest (or image id) is in the policy
  bool mutable_tag = false;      // referenced by tag, not pinned by digest
  std::string reason;            // why not approved, readable
  bool writable_rootfs = false;  // posture: the runtime or overlay says the rootfs is writable
};

// The event against its image's learned baseline (lib/detect/baseline.h); the collector
// sets it, offline analysis never does.
struct BaselineVerdict {
  enum class State : uint8_t { kNone, kLearning, kEnforcing, kFull } state = State::kNone;
  bool unexpected = false;  // enforcing, and the item is new: the first time only
  std::string_view kind;    // "process", "connection", "listener"
  std::string item;         // "/usr/bin/curl", "10.0.0.5:443", "8080"
  std::string image;        // the baseline's image (digest, image id or name)
};

struct RuleContext {
  const v1::Event* event = nullptr;                // REQUIRED
  const v1::ContainerInfo* container = nullptr;    // null: unknown (or host)
  // Ancestors, parent first: lineage[0] is proc.pname / proc.aname[1], lineage[1] is
  // proc.aname[2], ... Empty when unknown.
  std::vector<ProcessInfo> lineage;
  FileHistory file;              // exec: its executable; write/chmod: the file
  ImageVerdict image;
  int64_t container_start_ns = 0;
  std::string container_entrypoint;  // exepath of the container's first process, if seen
  BaselineVerdict baseline;
  // Owners of what `event` and `container` point to when the correlation stage provides
  // them (re-evaluated events, container infos): such a context stays valid on its own.
  std::shared_ptr<const v1::Event> event_owner;
  std::shared_ptr<const v1::ContainerInfo> container_owner;
};

}  // namespace driftwatch
