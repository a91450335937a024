#include "lib/event/exe_file.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace driftwatch {

std::string JoinPath(std::string_view path, std::string_view cwd) {
  if (path.empty()) return "";
  std::string joined;
  if (path.front() != '/') {
    joined.assign(cwd.empty() ? std::string_view("/") : cwd);
    joined.push_back('/');
  }
  joined.append(path);
  std::vector<std::string_view> parts;
  std::string_view s = joined;
  while (!s.empty()) {
    size_t slash = s.find('/');
    std::string_view part = s.substr(0, slash);
    s = slash == std::string_view::npos ? std::string_view() : s.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (std::string_view p : parts) {
    out.push_back('/');
    out.append(p);
  }
  return out.empty() ? "/" : out;
}

bool IsDynamicLoaderName(std::string_view b) {
  return b.find(".so") != std::string_view::npos &&
         (b.starts_with("ld-") || b.starts_with("ld.") || b.starts_with("ld64."));
}

constexpr std::string_view kDeleted = " (deleted)";

bool IsDeletedExe(std::string_view exe) { return exe.ends_with(kDeleted); }

std::string_view DeletedExePath(std::string_view exe) {
  return IsDeletedExe(exe) ? exe.substr(0, exe.size() - kDeleted.size()) : std::string_view();
}

bool IsMemfdExe(std::string_view exe) {
  // The kernel names a memfd's dentry "memfd:NAME" and it has no other link.
  return exe.starts_with("/memfd:") && IsDeletedExe(exe);
}

std::optional<LoaderProgram> ProgramOfLoader(
    std::string_view loader_basename, const google::protobuf::RepeatedPtrField<std::string>& argv) {
  const bool musl = loader_basename.find("musl") != std::string_view::npos;
  LoaderProgram out;
  int i = 1;
  while (i < argv.size()) {
    std::string_view w = argv[i];
    if (!w.starts_with("--")) break;
    ++i;
    if (w == "--") break;
    std::string_view opt = w.substr(2), value;
    bool has_value = false;
    if (musl) {
      // musl: --library-path, --preload and --argv0, with "=VALUE" or the next word.
      size_t eq = opt.find('=');
      std::string_view key = opt.substr(0, eq);
      if (key == "library-path" || key == "preload" || key == "argv0") {
        if (eq != std::string_view::npos) {
          value = opt.substr(eq + 1);
          has_value = true;
        } else if (i < argv.size()) {
          value = argv[i++];
          has_value = true;
        }
      }
      opt = key;
    } else if (opt == "library-path" || opt == "preload" || opt == "argv0" ||
               opt == "inhibit-rpath" || opt == "audit" || opt == "glibc-hwcaps-prepend" ||
               opt == "glibc-hwcaps-mask") {
      // glibc: the value is always the next word ("--opt=VALUE" is refused).
      if (i < argv.size()) {
        value = argv[i++];
        has_value = true;
      }
    }
    if (has_value && opt == "library-path") {
      while (!value.empty()) {  // ':' or ';' separated, as LD_LIBRARY_PATH
        size_t sep = value.find_first_of(":;");
        std::string_view dir = value.substr(0, sep);
        if (!dir.empty()) out.library_path.emplace_back(dir);
        value = sep == std::string_view::npos ? std::string_view() : value.substr(sep + 1);
      }
    }
  }
  if (i >= argv.size() || argv[i].empty()) return std::nullopt;
  out.name = argv[i];
  out.searched = !musl && out.name.find('/') == std::string::npos;
  return out;
}

std::vector<std::string> LoaderDefaultDirs(std::string_view arch) {
  std::string_view triple;
  if (arch == "x86_64") triple = "x86_64-linux-gnu";
  else if (arch == "aarch64") triple = "aarch64-linux-gnu";
  else if (arch == "i386") triple = "i386-linux-gnu";
  else if (arch == "arm") triple = "arm-linux-gnueabihf";
  else if (arch == "ppc64le") triple = "powerpc64le-linux-gnu";
  else if (arch == "riscv64") triple = "riscv64-linux-gnu";
  else if (arch == "s390x") triple = "s390x-linux-gnu";
  std::vector<std::string> dirs;
  // ld.so.cache's usual directories first (Debian's ld.so.conf), then the trusted ones.
  for (std::string_view d : {"/usr/local/lib", "/lib", "/usr/lib"}) {
    if (!triple.empty()) dirs.push_back(std::string(d) + "/" + std::string(triple));
    if (d == "/usr/local/lib") dirs.emplace_back(d);
  }
  for (std::string_view d : {"/lib64", "/usr/lib64", "/lib", "/usr/lib"}) dirs.emplace_back(d);
  return dirs;
}

int OpenInRoot(int root, const std::string& path) {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, root, path.c_str(), &how, sizeof how));
  if (fd >= 0 || errno != ENOSYS) return fd;
  return OpenInRootNoSymlinks(root, path);
}

int OpenInRootNoSymlinks(int root, const std::string& path) {
  int dir = fcntl(root, F_DUPFD_CLOEXEC, 0);
  size_t pos = 0;
  while (dir >= 0) {
    pos = path.find_first_not_of('/', pos);
    if (pos == std::string::npos) return dir;
    size_t end = path.find('/', pos);
    std::string part = path.substr(pos, end - pos);
    pos = end;
    int next = -1;
    if (part == "." || part == "..") {
      errno = EACCES;  // never above the root; JoinPath leaves none anyway
    } else {
      next = openat(dir, part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      struct stat st;
      if (next >= 0 && fstat(next, &st) == 0 && S_ISLNK(st.st_mode)) {
        close(next);
        next = -1;
        errno = ELOOP;
      }
    }
    int saved = errno;
    close(dir);
    errno = saved;
    dir = next;
  }
  return -1;
}

}  // namespace driftwatch
