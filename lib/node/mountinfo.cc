#include "lib/node/mountinfo.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lib/node/procfs.h"

namespace driftwatch {
namespace {

// Undoes the kernel's octal escapes (\ooo); any other backslash is kept as is.
std::string DecodeOctal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    auto oct = [](char c) { return c >= '0' && c <= '7'; };
    if (s[i] == '\\' && i + 3 < s.size() && oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
      out.push_back(static_cast<char>(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) |
                                      (s[i + 3] - '0')));
      i += 3;
      continue;
    }
    out.push_back(s[i]);
  }
  return out;
}

// Overlay's escape inside an option value: "\x" stands for x.
std::string UnescapeOverlay(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) ++i;
    out.push_back(s[i]);
  }
  return out;
}

// lowerdir=: layers split on unescaped ':'; "::" starts the data-only layers, which are not
// visible by path and so are left out.
std::vector<std::string> SplitLowerdir(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      cur.push_back(s[++i]);
    } else if (c == ':') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
      if (i + 1 < s.size() && s[i + 1] == ':') return out;
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

template <typename T>
bool ParseNum(std::string_view s, T* v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}

// One line; an error string ("" when fine).
std::string ParseLine(std::string_view line, MountEntry* e) {
  std::vector<std::string_view> f;
  size_t pos = 0;
  while (true) {
    size_t sp = line.find(' ', pos);
    f.push_back(line.substr(pos, sp == std::string_view::npos ? sp : sp - pos));
    if (sp == std::string_view::npos) break;
    pos = sp + 1;
  }
  size_t sep = 0;
  for (size_t i = 6; i < f.size(); ++i) {
    if (f[i] == "-") {
      sep = i;
      break;
    }
  }
  if (sep == 0) return "no ' - ' separator after the optional fields";
  if (f.size() < sep + 4) return "fewer than 3 fields after ' - '";
  if (!ParseNum(f[0], &e->id) || !ParseNum(f[1], &e->parent)) return "bad mount or parent id";
  size_t colon = f[2].find(':');
  if (colon == std::string_view::npos || !ParseNum(f[2].substr(0, colon), &e->major) ||
      !ParseNum(f[2].substr(colon + 1), &e->minor)) {
    return "bad major:minor '" + std::string(f[2]) + "'";
  }
  if (f[3].empty() || f[4].empty()) return "empty root or mount point";
  e->root = DecodeOctal(f[3]);
  e->mount_point = DecodeOctal(f[4]);
  e->options = std::string(f[5]);
  e->fstype = std::string(f[sep + 1]);
  e->source = DecodeOctal(f[sep + 2]);
  e->super_options = std::string(f[sep + 3]);
  return "";
}

}  // namespace

std::vector<std::string> SplitLowerdirOption(std::string_view value) {
  return SplitLowerdir(value);
}

std::vector<MountEntry> ParseMountinfo(std::string_view text, std::string* err) {
  std::vector<MountEntry> out;
  if (err) err->clear();
  size_t pos = 0;
  uint64_t n = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++n;
    if (line.empty()) continue;
    MountEntry e;
    std::string why = ParseLine(line, &e);
    if (!why.empty()) {
      if (err) *err = "line " + std::to_string(n) + ": " + why;
      return out;
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::optional<OverlayRoot> OverlayFromMount(const MountEntry& m) {
  if (m.fstype != "overlay") return std::nullopt;
  OverlayRoot o;
  o.dev_major = m.major;
  o.dev_minor = m.minor;
  o.mount_id = m.id;
  bool ro = false;
  // Options are split on raw ',' first: a ',' inside a value is printed as \054.
  std::string_view s = m.super_options;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string_view::npos) comma = s.size();
    std::string_view opt = s.substr(pos, comma - pos);
    pos = comma + 1;
    size_t eq = opt.find('=');
    std::string_view key = opt.substr(0, eq);
    std::string value = eq == std::string_view::npos ? "" : DecodeOctal(opt.substr(eq + 1));
    if (key == "ro") {
      ro = true;
    } else if (key == "lowerdir") {
      for (std::string& l : SplitLowerdir(value)) o.lowerdirs.push_back(std::move(l));
    } else if (key == "lowerdir+") {
      // One layer per option, the path verbatim (fsconfig takes no overlay escapes).
      if (!value.empty()) o.lowerdirs.push_back(std::move(value));
    } else if (key == "upperdir") {
      o.upperdir = UnescapeOverlay(value);
    } else if (key == "workdir") {
      o.workdir = UnescapeOverlay(value);
    }
    // datadir+ (data-only layers) is left out, like lowerdir's "::" part.
  }
  if (o.lowerdirs.empty() && o.upperdir.empty()) return std::nullopt;
  std::string_view mo = m.options;
  if (mo == "ro" || mo.starts_with("ro,")) ro = true;
  o.read_only = ro || o.upperdir.empty();
  return o;
}

Result<OverlayRoot> RootOverlayOfPid(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/mountinfo";
  std::ifstream in(path);
  if (!in) {
    int e = errno;
    if (e == ENOENT)
      return std::unexpected(Error::NotFound("no such process: " + std::to_string(pid)));
    return std::unexpected(Error::FromErrno(e, "cannot read " + path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  // A zombie (or a process past exit_fs) has no mount namespace left: the file reads empty.
  if (text.empty()) {
    return std::unexpected(Error::NotFound("process " + std::to_string(pid) +
                                           " has no mount table (exiting or a zombie)"));
  }
  std::string err;
  std::vector<MountEntry> mounts = ParseMountinfo(text, &err);
  if (!err.empty()) return std::unexpected(Error::InvalidInput(path + ": " + err));
  const MountEntry* root = nullptr;
  for (const MountEntry& m : mounts) {
    if (m.mount_point == "/") root = &m;  // the last one stacked at "/" is what it sees
  }
  if (!root) return std::unexpected(Error::NotFound(path + ": nothing mounted at /"));
  auto o = OverlayFromMount(*root);
  if (!o) {
    return std::unexpected(Error::NotFound("root of process " + std::to_string(pid) +
                                           " is not an overlay (" + root->fstype + " " +
                                           root->source + ")"));
  }
  return *o;
}

std::optional<OverlayRoot> RuntimeRootOverlay(const std::vector<MountEntry>& mounts,
                                              std::string_view id, std::string_view root_path) {
  if (id.empty() || id.find('/') != std::string_view::npos) return std::nullopt;
  std::string_view root = root_path.empty() ? "rootfs" : root_path;
  while (root.size() > 1 && root.back() == '/') root.remove_suffix(1);
  const bool absolute = root.starts_with("/");
  std::string want;  // the mount point (absolute), or how it ends (relative)
  if (absolute) {
    want = root;
  } else {
    while (root.starts_with("./")) root.remove_prefix(2);
    if (root.empty() || root == "." || root == ".." || root.starts_with("../") ||
        root.find("/../") != std::string_view::npos || root.ends_with("/.."))
      return std::nullopt;
    want.append("/").append(id).append("/").append(root);
  }
  const MountEntry* hit = nullptr;
  for (const MountEntry& m : mounts) {
    if (absolute ? m.mount_point == want : m.mount_point.ends_with(want))
      hit = &m;  // the last one stacked there is what the container gets
  }
  if (hit == nullptr) return std::nullopt;
  return OverlayFromMount(*hit);
}

std::optional<std::string> GetXattrAt(int dirfd, const char* name, const char* key) {
  // No l*xattr variant takes a dirfd; /proc/self/fd/N/<name> resolves the directory by fd
  // and lgetxattr leaves a symlink at <name> alone.
  std::string p = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
  char buf[256];
  ssize_t n = lgetxattr(p.c_str(), key, buf, sizeof(buf));
  if (n < 0) {
    if (errno != ERANGE) return std::nullopt;
    return std::string();  // present but long: callers only compare short values
  }
  return std::string(buf, static_cast<size_t>(n));
}

bool IsOverlayWhiteout(int dirfd, const char* name, const struct stat& st) {
  if (S_ISCHR(st.st_mode)) return major(st.st_rdev) == 0 && minor(st.st_rdev) == 0;
  // xattr whiteouts (kernel 6.7+, used where mknod is not possible, e.g. nested overlays).
  if (S_ISREG(st.st_mode) && st.st_size == 0) {
    return GetXattrAt(dirfd, name, "trusted.overlay.whiteout").has_value() ||
           GetXattrAt(dirfd, name, "user.overlay.whiteout").has_value();
  }
  return false;
}

bool IsInUpperLayer(const std::string& upperdir, std::string_view path) {
  if (upperdir.empty()) return false;
  int dir = open(upperdir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return false;
  bool in_upper = IsInUpperLayerAt(dir, path);
  close(dir);
  return in_upper;
}

int OpenParentBeneath(int dir_fd, std::string_view path, bool same_mount, std::string* last) {
  if (dir_fd < 0 || path.empty() || path[0] != '/') return -1;
  // The parent's components joined by '/' (without "." and empty ones), and the last: no
  // heap for the usual short path (this runs for every exec in a container).
  std::string parent;
  std::string_view prev;  // the component before the current one, not yet in `parent`
  bool any = false;
  for (size_t pos = 1; pos <= path.size();) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    std::string_view c = path.substr(pos, next - pos);
    pos = next + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") return -1;
    if (any) {
      if (!parent.empty()) parent += '/';
      parent += prev;
    }
    prev = c;
    any = true;
  }
  if (!any) return -1;  // "/" itself
  last->assign(prev);
  if (parent.empty()) return dir_fd;
  // One walk, no symlink followed (a container's symlink could name any host path, an
  // automounter's included), none of ".." (there is none): as the per-component O_NOFOLLOW
  // walk below, which serves kernels before 5.6.
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  if (same_mount) how.resolve |= RESOLVE_NO_XDEV;
  int dir = static_cast<int>(syscall(SYS_openat2, dir_fd, parent.c_str(), &how, sizeof how));
  if (dir >= 0 || errno != ENOSYS) return dir;
  dir = dir_fd;
  for (size_t pos = 0; pos < parent.size();) {
    size_t next = parent.find('/', pos);
    if (next == std::string::npos) next = parent.size();
    // O_NOFOLLOW|O_DIRECTORY: a symlink or non-directory stops the walk.
    int fd = openat(dir, parent.substr(pos, next - pos).c_str(),
                    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir != dir_fd) close(dir);
    if (fd < 0) return -1;
    dir = fd;
    pos = next + 1;
  }
  return dir;
}

bool StatBeneath(int dir_fd, std::string_view path, bool same_mount, struct stat* st) {
  std::string last;
  const int dir = OpenParentBeneath(dir_fd, path, same_mount, &last);
  if (dir < 0) return false;
  const bool ok = fstatat(dir, last.c_str(), st, AT_SYMLINK_NOFOLLOW) == 0;
  if (dir != dir_fd) close(dir);
  return ok;
}

bool StatBeneath(const std::string& dir, std::string_view path, bool same_mount,
                 struct stat* st) {
  const int fd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = StatBeneath(fd, path, same_mount, st);
  close(fd);
  return ok;
}

bool IsInUpperLayerAt(int upper_fd, std::string_view path) {
  std::string last;
  const int dir = OpenParentBeneath(upper_fd, path, /*same_mount=*/true, &last);
  if (dir < 0) return false;  // "/" itself too: the upper root always exists
  struct stat st;
  bool in_upper = fstatat(dir, last.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                  !IsOverlayWhiteout(dir, last.c_str(), st);
  if (dir != upper_fd) close(dir);
  return in_upper;
}

std::set<std::string> MountPointsOfPid(pid_t pid) {
  std::set<std::string> out;
  std::string text, err;
  if (!ReadSmallFile("/proc/" + std::to_string(pid) + "/mountinfo", &text)) return out;
  for (const auto& m : ParseMountinfo(text, &err))
    if (m.mount_point != "/") out.insert(m.mount_point);
  return out;
}

}  // namespace driftwatch
