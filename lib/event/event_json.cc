#include "lib/event/event_json.h"

#include <charconv>
#include <cinttypes>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/event/event_view.h"
#include "lib/event/file_digest.h"

namespace driftwatch {
namespace {

class ObjectWriter {
 public:
  explicit ObjectWriter(std::string* out) : out_(out) { out_->push_back('{'); }
  void Close() { out_->push_back('}'); }

  // Keys are our own field names: plain ASCII, nothing to escape.
  void Key(std::string_view k) {
    out_->append(first_ ? "\"" : ",\"");
    first_ = false;
    out_->append(k);
    out_->append("\":");
  }
  void Str(std::string_view k, std::string_view v) {
    Key(k);
    AppendJsonString(v, out_);
  }
  void Int(std::string_view k, int64_t v) {
    Key(k);
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_->append(buf, static_cast<size_t>(r.ptr - buf));
  }
  void Bool(std::string_view k, bool v) {
    Key(k);
    out_->append(v ? "true" : "false");
  }
  void StrArray(std::string_view k, const google::protobuf::RepeatedPtrField<std::string>& v,
                int from) {
    Key(k);
    out_->push_back('[');
    for (int i = from; i < v.size(); ++i) {
      if (i > from) out_->push_back(',');
      AppendJsonString(v[i], out_);
    }
    out_->push_back(']');
  }

 private:
  std::string* out_;
  bool first_ = true;
};

int64_t LoginUid(uint32_t auid) { return auid == 4294967295u ? -1 : int64_t{auid}; }

std::string Octal(uint32_t mode) {
  char buf[16] = {'0'};
  auto r = std::to_chars(buf + 1, buf + sizeof buf, mode, 8);
  return std::string(buf, r.ptr);
}

// "fe:00", as audit PATH records print a device.
std::string Dev(uint32_t major, uint32_t minor) {
  char buf[24];
  char* p = buf;
  if (major < 16) *p++ = '0';
  p = std::to_chars(p, buf + 10, major, 16).ptr;
  *p++ = ':';
  if (minor < 16) *p++ = '0';
  p = std::to_chars(p, buf + sizeof buf, minor, 16).ptr;
  return std::string(buf, p);
}

const char* AttributionName(v1::Attribution a) {
  switch (a) {
    case v1::ATTRIBUTION_CGROUP: return "cgroup";
    case v1::ATTRIBUTION_PARENT: return "parent";
    case v1::ATTRIBUTION_DEVICE: return "device";
    case v1::ATTRIBUTION_PROCESS_TREE: return "process_tree";
    case v1::ATTRIBUTION_UNKNOWN: return "unknown";
    case v1::ATTRIBUTION_OVERLAY: return "overlay";
    default: return "";
  }
}

// The sensor's look at exe_file, as "proc.exe_file.stat" says it.
const char* ExeFileStatName(v1::ExeFileStat s) {
  switch (s) {
    case v1::EXE_FILE_STAT_OK: return "ok";
    case v1::EXE_FILE_STAT_NO_ROOT: return "no_root";
    case v1::EXE_FILE_STAT_NOT_FOUND: return "not_found";
    case v1::EXE_FILE_STAT_NOT_REGULAR: return "not_regular";
    case v1::EXE_FILE_STAT_CHANGED: return "changed";
    case v1::EXE_FILE_STAT_FAILED: return "failed";
    default: return nullptr;
  }
}

void Common(const v1::Event& ev, ObjectWriter* w) {
  w->Str("evt.time", FormatIsoTime(ev.time_ns()));
  if (!ev.id().node().empty()) w->Str("evt.hostname", ev.id().node());
  w->Int("evt.num", static_cast<int64_t>(ev.id().seq()));
  // With evt.hostname and evt.num, the event's identity: which sensor run numbered it.
  if (ev.id().sensor_start_ns() != 0)
    w->Str("sensor.run", ev.id().boot_id() + "/" + std::to_string(ev.id().sensor_start_ns()));
}

// The container's own fields (Falco's container.* and k8s.*), from what the sensor knows.
void ContainerInfoFields(const v1::ContainerInfo& c, ObjectWriter* w) {
  if (!c.name().empty()) w->Str("container.name", c.name());
  if (!c.image().empty()) w->Str("container.image", c.image());
  if (!c.image_repository().empty()) w->Str("container.image.repository", c.image_repository());
  if (!c.image_tag().empty()) w->Str("container.image.tag", c.image_tag());
  if (!c.image_digest().empty()) w->Str("container.image.digest", c.image_digest());
  if (!c.image_ref().empty()) w->Str("container.image.id", c.image_ref());
  if (!c.runtime().empty()) w->Str("container.type", c.runtime());
  w->Bool("container.privileged", c.privileged());
  if (!c.pod_name().empty()) w->Str("k8s.pod.name", c.pod_name());
  if (!c.pod_namespace().empty()) w->Str("k8s.ns.name", c.pod_namespace());
  if (!c.pod_uid().empty()) w->Str("k8s.pod.uid", c.pod_uid());
}

void ContainerFields(const v1::Event& ev, const v1::ContainerInfo* info, ObjectWriter* w) {
  std::string_view id = ev.container_id().empty() ? std::string_view("host") : ev.container_id();
  w->Str("container.id", ShortContainerIdView(id));
  w->Str("container.full_id", id);
  if (ev.attribution() != v1::ATTRIBUTION_UNSPECIFIED) {
    w->Str("container.attribution", AttributionName(ev.attribution()));
  }
  if (info) ContainerInfoFields(*info, w);
  if (ev.has_audit()) w->Int("audit.serial", static_cast<int64_t>(ev.audit().serial()));
}

// fd.directory and fd.filename of a path, as Falco splits fd.name.
std::pair<std::string_view, std::string_view> SplitPath(std::string_view p) {
  size_t slash = p.rfind('/');
  if (slash == std::string_view::npos) return {"", p};
  return {slash == 0 ? p.substr(0, 1) : p.substr(0, slash), p.substr(slash + 1)};
}

}  // namespace

std::string_view ShortContainerIdView(std::string_view id) {
  if (id.size() != 64) return id;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return id;
  }
  return id.substr(0, 12);
}

std::string ShortContainerId(const std::string& id) { return std::string(ShortContainerIdView(id)); }

std::string_view Basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view ProcessName(const v1::ProcessExec& e) {
  const std::string& path = e.path();
  bool via_fd = path.starts_with("/proc/") || path.starts_with("/dev/fd/");
  if (!via_fd || e.args_size() == 0 || e.args(0).empty()) return e.comm();
  return Basename(e.args(0)).substr(0, 15);  // as the kernel cuts comm
}

std::string CommandLine(const v1::ProcessExec& e) {
  std::string s(ProcessName(e));
  for (int i = 1; i < e.args_size(); ++i) {
    s.push_back(' ');
    s.append(e.args(i));
  }
  if (e.args_capped()) s.append("...");
  return s;
}

bool AppendEventJson(const v1::Event& ev, std::string* out) {
  return AppendEventJson(ev, nullptr, out);
}

bool AppendEventJson(const v1::Event& ev, const v1::ContainerInfo* info, std::string* out) {
  const Kind kind = KindOf(ev);
  if (kind == Kind::kExec) {
    const v1::ProcessExec& e = ev.exec();
    ObjectWriter w(out);
    Common(ev, &w);
    w.Str("evt.type", e.syscall());
    w.Str("evt.res", e.success() ? "SUCCESS" : (e.errno_name().empty() ? std::to_string(e.exit())
                                                                         : e.errno_name()));
    w.Int("evt.rawres", e.exit());
    w.Str("evt.arg.filename", e.path());
    w.Int("proc.pid", e.pid());
    w.Int("proc.ppid", e.ppid());
    w.Str("proc.name", ProcessName(e));
    w.Str("proc.exe", e.args_size() > 0 ? e.args(0) : e.exe());
    w.Str("proc.exepath", e.exe());
    w.Str("proc.exe_file", e.exe_file().empty() ? e.exe() : e.exe_file());
    if (e.exe_file_inode() != 0) {
      w.Int("proc.exe_file.ino", static_cast<int64_t>(e.exe_file_inode()));
      w.Str("proc.exe_file.dev", Dev(e.exe_file_dev_major(), e.exe_file_dev_minor()));
    }
    if (const char* stat = ExeFileStatName(e.exe_file_stat())) w.Str("proc.exe_file.stat", stat);
    if (e.has_is_exe_from_memfd()) w.Bool("proc.is_exe_from_memfd", e.is_exe_from_memfd());
    w.StrArray("proc.args", e.args(), 1);
    w.StrArray("proc.argv", e.args(), 0);
    w.Str("proc.cmdline", CommandLine(e));
    // Where proc.argv may hold fewer arguments than the process has, argc says how many.
    if (e.args_truncated()) w.Bool("proc.args_truncated", true);
    if (e.args_capped()) {
      w.Bool("proc.args_capped", true);
      w.Int("proc.args_dropped_bytes", static_cast<int64_t>(e.args_dropped_bytes()));
    }
    if (e.args_truncated() || e.args_capped()) w.Int("proc.argc", e.argc());
    w.Str("proc.cwd", e.cwd());
    w.Str("proc.tty", e.tty());
    w.Int("proc.sid", e.session() == 4294967295u ? -1 : int64_t{e.session()});
    if (!e.parent_name().empty()) w.Str("proc.pname", e.parent_name());
    w.Int("proc.exe_ino", static_cast<int64_t>(e.exe_inode()));
    w.Str("proc.exe_dev", Dev(e.exe_dev_major(), e.exe_dev_minor()));
    w.Str("proc.exe_mode", Octal(e.exe_mode()));
    w.Bool("proc.is_runtime_plumbing", e.runtime_plumbing());
    if (e.has_is_exe_upper_layer()) w.Bool("proc.is_exe_upper_layer", e.is_exe_upper_layer());
    w.Int("user.uid", e.uid());
    w.Int("user.euid", e.euid());
    w.Int("user.loginuid", LoginUid(e.auid()));
    if (!e.user_name().empty()) w.Str("user.name", e.user_name());
    w.Int("group.gid", e.gid());
    ContainerFields(ev, info, &w);
    w.Close();
    return true;
  }
  if (kind == Kind::kChmod) {
    const v1::Chmod& c = ev.chmod();
    ObjectWriter w(out);
    Common(ev, &w);
    w.Str("evt.type", c.syscall());
    w.Str("evt.res", c.success() ? "SUCCESS" : (c.errno_name().empty() ? std::to_string(c.exit())
                                                                         : c.errno_name()));
    w.Int("evt.rawres", c.exit());
    w.Str("evt.arg.mode", Octal(c.new_mode()));
    w.Str("fd.name", c.path());
    w.Str("fd.typechar", "f");
    w.Bool("evt.arg.adds_exec", c.adds_exec());
    w.Int("proc.pid", c.pid());
    w.Int("proc.ppid", c.ppid());
    w.Str("proc.name", c.comm());
    w.Str("proc.exepath", c.exe());
    w.Str("proc.cwd", c.cwd());
    w.Str("proc.tty", c.tty());
    if (!c.parent_name().empty()) w.Str("proc.pname", c.parent_name());
    w.Int("user.uid", c.uid());
    w.Int("user.loginuid", LoginUid(c.auid()));
    ContainerFields(ev, info, &w);
    w.Close();
    return true;
  }
  if (kind == Kind::kWrite) {
    const v1::FileWrite& f = ev.write();
    ObjectWriter w(out);
    Common(ev, &w);
    w.Str("evt.type", f.kind());
    w.Str("fd.name", f.path());
    auto [dir, file] = SplitPath(f.path());
    w.Str("fd.directory", dir);
    w.Str("fd.filename", file);
    w.Str("fd.typechar", "f");
    if (!f.old_path().empty()) w.Str("fd.oldname", f.old_path());
    w.Int("fd.ino", static_cast<int64_t>(f.inode()));
    w.Str("fd.dev", Dev(f.dev_major(), f.dev_minor()));
    w.Int("fd.size", static_cast<int64_t>(f.size()));
    w.Str("fd.mode", Octal(f.mode()));
    w.Bool("fd.is_executable", f.executable());
    if (!f.sha256().empty()) w.Str("fd.sha256", HexOf(f.sha256()));
    if (!f.upper_path().empty()) w.Str("fd.upper_path", f.upper_path());
    w.Int("proc.pid", f.pid());
    w.Str("proc.name", f.comm());
    w.Str("proc.exepath", f.exe());
    ContainerFields(ev, info, &w);
    w.Close();
    return true;
  }
  if (kind == Kind::kContainer) {
    const v1::ContainerInfo& c = ev.container();
    ObjectWriter w(out);
    Common(ev, &w);
    w.Str("evt.type", "container");
    w.Str("container.id", ShortContainerIdView(c.id()));
    w.Str("container.full_id", c.id());
    w.Str("container.state", c.state());
    w.Str("container.source", c.source());
    ContainerInfoFields(c, &w);
    if (c.start_time_ns() != 0) w.Str("container.start_time", FormatIsoTime(c.start_time_ns()));
    w.Int("container.pid", c.init_pid());
    w.Str("container.rootfs_dev", Dev(c.rootfs_dev_major(), c.rootfs_dev_minor()));
    w.Str("container.upperdir", c.upperdir());
    w.Bool("container.read_only_rootfs", c.read_only_rootfs());
    w.Str("container.cgroup", c.cgroup_path());
    w.Close();
    return true;
  }
  if (kind == Kind::kStatus) {
    const v1::SensorStatus& st = ev.status();
    ObjectWriter w(out);
    Common(ev, &w);
    w.Str("evt.type", "sensor_status");
    w.Str("sensor.audit_mode", st.audit_mode());
    w.Str("sensor.fanotify_mode", st.fanotify_mode());
    w.Int("sensor.kernel_lost", static_cast<int64_t>(st.kernel_lost()));
    w.Int("sensor.socket_enobufs", static_cast<int64_t>(st.socket_enobufs()));
    w.Int("sensor.queue_drops", static_cast<int64_t>(st.queue_drops()));
    w.Int("sensor.reassembly_evictions", static_cast<int64_t>(st.reassembly_evictions()));
    w.Int("sensor.fanotify_overflows", static_cast<int64_t>(st.fanotify_overflows()));
    w.Int("sensor.fanotify_events", static_cast<int64_t>(st.fanotify_events()));
    w.Int("sensor.containers", st.containers());
    w.Bool("sensor.final", st.final());
    w.Close();
    return true;
  }
  return false;
}

}  // namespace driftwatch
