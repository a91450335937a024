#include "lib/event_json.h"

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <ctime>

namespace driftwatch {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

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
    default: return "";
  }
}

void Common(const v1::Event& ev, ObjectWriter* w) {
  w->Str("evt.time", FormatIsoTime(ev.time_ns()));
  if (!ev.id().node().empty()) w->Str("evt.hostname", ev.id().node());
  w->Int("evt.num", static_cast<int64_t>(ev.id().seq()));
}

void ContainerFields(const v1::Event& ev, ObjectWriter* w) {
  const std::string& id = ev.container_id().empty() ? std::string("host") : ev.container_id();
  w->Str("container.id", ShortContainerId(id));
  w->Str("container.full_id", id);
  if (ev.attribution() != v1::ATTRIBUTION_UNSPECIFIED) {
    w->Str("container.attribution", AttributionName(ev.attribution()));
  }
  if (ev.has_audit()) w->Int("audit.serial", static_cast<int64_t>(ev.audit().serial()));
}

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      size_t j = i + 1;  // copy runs of plain ASCII at once
      while (j < s.size()) {
        unsigned char d = static_cast<unsigned char>(s[j]);
        if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
        ++j;
      }
      out->append(s.data() + i, j - i);
      i = j;
      continue;
    }
    switch (c) {
      case '"': out->append("\\\""); ++i; continue;
      case '\\': out->append("\\\\"); ++i; continue;
      case '\n': out->append("\\n"); ++i; continue;
      case '\t': out->append("\\t"); ++i; continue;
      case '\r': out->append("\\r"); ++i; continue;
    }
    if (c < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {  // invalid byte: surrogate escape
      out->append("\\udc");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
      ++i;
    } else {
      out->append(s.data() + i, n);
      i += n;
    }
  }
  out->push_back('"');
}

std::string FormatIsoTime(int64_t time_ns) {
  time_t secs = static_cast<time_t>(time_ns / 1000000000);
  int64_t frac = time_ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  // Events come many to a second: format the date and time once per second.
  thread_local time_t cached_secs = -1;
  thread_local char cached[80];  // room for any int the format could print
  if (secs != cached_secs) {
    struct tm tm;
    gmtime_r(&secs, &tm);
    std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_secs = secs;
  }
  std::string out(cached);
  char digits[9];
  for (int i = 8; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  out.append(digits, 9);
  out.push_back('Z');
  return out;
}

std::string ShortContainerId(const std::string& id) {
  if (id.size() != 64) return id;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return id;
  }
  return id.substr(0, 12);
}

std::string ProcessName(const v1::ProcessExec& e) {
  const std::string& path = e.path();
  bool via_fd = path.rfind("/proc/", 0) == 0 || path.rfind("/dev/fd/", 0) == 0;
  if (!via_fd || e.args_size() == 0 || e.args(0).empty()) return e.comm();
  std::string_view a0 = e.args(0);
  size_t slash = a0.rfind('/');
  if (slash != std::string_view::npos) a0.remove_prefix(slash + 1);
  return std::string(a0.substr(0, 15));  // as the kernel cuts comm
}

std::string CommandLine(const v1::ProcessExec& e) {
  std::string s = ProcessName(e);
  for (int i = 1; i < e.args_size(); ++i) {
    s.push_back(' ');
    s.append(e.args(i));
  }
  return s;
}

bool AppendEventJson(const v1::Event& ev, std::string* out) {
  if (ev.has_exec()) {
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
    w.StrArray("proc.args", e.args(), 1);
    w.StrArray("proc.argv", e.args(), 0);
    w.Str("proc.cmdline", CommandLine(e));
    if (e.args_truncated()) w.Bool("proc.args_truncated", true);
    w.Str("proc.cwd", e.cwd());
    w.Str("proc.tty", e.tty());
    w.Int("proc.sid", e.session() == 4294967295u ? -1 : int64_t{e.session()});
    if (!e.parent_name().empty()) w.Str("proc.pname", e.parent_name());
    w.Int("proc.exe_ino", static_cast<int64_t>(e.exe_inode()));
    w.Str("proc.exe_dev", Dev(e.exe_dev_major(), e.exe_dev_minor()));
    w.Str("proc.exe_mode", Octal(e.exe_mode()));
    w.Bool("proc.is_runtime_plumbing", e.runtime_plumbing());
    w.Int("user.uid", e.uid());
    w.Int("user.euid", e.euid());
    w.Int("user.loginuid", LoginUid(e.auid()));
    if (!e.user_name().empty()) w.Str("user.name", e.user_name());
    w.Int("group.gid", e.gid());
    ContainerFields(ev, &w);
    w.Close();
    return true;
  }
  if (ev.has_chmod()) {
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
    ContainerFields(ev, &w);
    w.Close();
    return true;
  }
  return false;
}

}  // namespace driftwatch
