#include "lib/drift_inventory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "lib/file_digest.h"

namespace driftwatch {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

char TypeChar(mode_t m) {
  if (S_ISREG(m)) return 'f';
  if (S_ISDIR(m)) return 'd';
  if (S_ISLNK(m)) return 'l';
  if (S_ISCHR(m)) return 'c';
  if (S_ISBLK(m)) return 'b';
  if (S_ISFIFO(m)) return 'p';
  if (S_ISSOCK(m)) return 's';
  return '?';
}

bool IsOpaqueDir(int dirfd, const char* name) {
  for (const char* key : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    if (GetXattrAt(dirfd, name, key) == "y") return true;
  }
  return false;
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Names in a directory (no "." or ".."); false with errno set on failure.
bool ListDir(int dirfd, std::vector<std::string>* names) {
  int dup_fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup_fd < 0) return false;
  DIR* d = fdopendir(dup_fd);
  if (!d) {
    int e = errno;
    close(dup_fd);
    errno = e;
    return false;
  }
  errno = 0;
  while (struct dirent* de = readdir(d)) {
    if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
    names->emplace_back(de->d_name);
  }
  int e = errno;
  closedir(d);
  errno = e;
  return e == 0;
}

class Walker {
 public:
  Walker(dev_t upper_dev, uint64_t hash_max, std::vector<DriftEntry>* out)
      : upper_dev_(upper_dev), hash_max_(hash_max), out_(out) {}

  // Walks upper directory `upper` (container path `rel`, "" for the root). `lowers` are
  // the same directory in each lower layer that shows through, topmost first. `replaced`:
  // an opaque directory at or above this one hides the lowers, so lower entries without an
  // upper counterpart are deleted.
  bool Walk(int upper, const std::string& rel, const std::vector<Fd>& lowers, bool replaced) {
    std::vector<std::string> names;
    if (!ListDir(upper, &names)) {
      if (errno == ENOENT) return true;  // removed while we walk
      error_ = Errno("reading upper directory " + Shown(rel));
      return false;
    }
    for (const std::string& name : names) {
      if (!Entry(upper, rel, name, lowers, replaced)) return false;
    }
    if (replaced) return ListHiddenLowers(rel, lowers, {names.begin(), names.end()});
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  static std::string Shown(const std::string& rel) { return rel.empty() ? "/" : rel; }

  // The entry `name` as the lower layers alone would show it; nullopt if none has it.
  static std::optional<struct stat> LowerLookup(const std::vector<Fd>& lowers,
                                                const char* name) {
    for (const Fd& l : lowers) {
      struct stat st;
      if (fstatat(l.get(), name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (IsOverlayWhiteout(l.get(), name, st)) return std::nullopt;  // deleted in a layer
      return st;
    }
    return std::nullopt;
  }

  // The lower directories `name` merges, topmost first, stopping where a layer has a
  // whiteout, a non-directory or an opaque directory there (layers below are hidden).
  bool ChildLowers(const std::vector<Fd>& lowers, const char* name, std::vector<Fd>* out) {
    for (const Fd& l : lowers) {
      struct stat st;
      if (fstatat(l.get(), name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (!S_ISDIR(st.st_mode)) return true;
      int fd = openat(l.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        error_ = Errno(std::string("opening lower directory ") + name);
        return false;
      }
      out->emplace_back(fd);
      if (IsOpaqueDir(l.get(), name)) return true;
    }
    return true;
  }

  void Add(std::string path, DriftKind kind, const struct stat& st) {
    DriftEntry e;
    e.path = std::move(path);
    e.kind = kind;
    e.type = TypeChar(st.st_mode);
    e.size = static_cast<uint64_t>(st.st_size);
    e.mode = st.st_mode & 07777;
    out_->push_back(std::move(e));
  }

  bool Entry(int upper, const std::string& rel, const std::string& name,
             const std::vector<Fd>& lowers, bool replaced) {
    const char* n = name.c_str();
    std::string path = rel + "/" + name;
    struct stat st;
    if (fstatat(upper, n, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return true;
      error_ = Errno("stat " + path + " in the upper layer");
      return false;
    }
    if (st.st_dev != upper_dev_) return true;  // something mounted inside the upper layer
    std::optional<struct stat> lower = LowerLookup(lowers, n);

    if (IsOverlayWhiteout(upper, n, st)) {
      // Under an opaque directory a whiteout hides nothing (the lowers already are).
      if (lower && !replaced) Add(path, DriftKind::kDeleted, *lower);
      return true;
    }

    if (S_ISDIR(st.st_mode)) {
      bool opaque = IsOpaqueDir(upper, n);
      Fd child(openat(upper, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (child.get() < 0) {
        if (errno == ENOENT) return true;
        error_ = Errno("opening upper directory " + path);
        return false;
      }
      std::vector<Fd> child_lowers;
      if (lower && S_ISDIR(lower->st_mode) && !ChildLowers(lowers, n, &child_lowers)) {
        return false;
      }
      if (!lower) {
        Add(path, DriftKind::kAdded, st);
      } else if (!S_ISDIR(lower->st_mode) || opaque || (lower->st_mode != st.st_mode) ||
                 lower->st_uid != st.st_uid || lower->st_gid != st.st_gid) {
        Add(path, DriftKind::kModified, st);
        out_->back().opaque_dir = opaque && S_ISDIR(lower->st_mode);
      }
      // else: copied up only because something below changed.
      return Walk(child.get(), path, child_lowers, replaced || opaque);
    }

    Add(path, lower ? DriftKind::kModified : DriftKind::kAdded, st);
    if (S_ISREG(st.st_mode)) return Inspect(upper, n, st, &out_->back());
    return true;
  }

  bool Inspect(int upper, const char* n, const struct stat& st, DriftEntry* e) {
    // Data only in a lower layer (metadata-only copy-up): nothing of the container's to
    // hash; the x bits still say whether it is executable.
    if (GetXattrAt(upper, n, "trusted.overlay.metacopy") ||
        GetXattrAt(upper, n, "user.overlay.metacopy")) {
      e->executable = (st.st_mode & 0111) != 0;
      return true;
    }
    // O_NONBLOCK: never wait on a lease; O_NOATIME: leave no trace (may be refused).
    int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    Fd fd(openat(upper, n, flags | O_NOATIME));
    if (fd.get() < 0 && errno == EPERM) fd = Fd(openat(upper, n, flags));
    if (fd.get() < 0) {
      if (errno == ENOENT) return true;
      e->executable = (st.st_mode & 0111) != 0;
      return true;  // unreadable: listed, not hashed
    }
    FileFacts facts = InspectFile(fd.get(), st.st_mode, static_cast<uint64_t>(st.st_size),
                                  hash_max_);
    e->executable = facts.executable;
    if (facts.hashed) e->sha256_hex = HexOf(facts.sha256);
    return true;
  }

  // Under an opaque directory: what the lowers hold that the upper does not is deleted.
  bool ListHiddenLowers(const std::string& rel, const std::vector<Fd>& lowers,
                        const std::set<std::string>& in_upper) {
    std::set<std::string> seen = in_upper;
    for (const Fd& l : lowers) {
      std::vector<std::string> names;
      if (!ListDir(l.get(), &names)) {
        error_ = Errno("reading lower directory " + Shown(rel));
        return false;
      }
      for (const std::string& name : names) {
        if (!seen.insert(name).second) continue;
        struct stat st;
        if (fstatat(l.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (IsOverlayWhiteout(l.get(), name.c_str(), st)) continue;  // hides lower ones too
        Add(rel + "/" + name, DriftKind::kDeleted, st);
      }
    }
    return true;
  }

  dev_t upper_dev_;
  uint64_t hash_max_;
  std::vector<DriftEntry>* out_;
  std::string error_;
};

}  // namespace

const char* DriftKindName(DriftKind k) {
  switch (k) {
    case DriftKind::kAdded:
      return "added";
    case DriftKind::kModified:
      return "modified";
    case DriftKind::kDeleted:
      return "deleted";
  }
  return "?";
}

std::expected<std::vector<DriftEntry>, std::string> DriftInventory(const OverlayRoot& root,
                                                                   uint64_t hash_max_bytes) {
  if (root.upperdir.empty()) return std::unexpected("overlay has no upper layer (read-only)");
  Fd upper(open(root.upperdir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (upper.get() < 0) return std::unexpected(Errno("opening upperdir " + root.upperdir));
  struct stat st;
  if (fstat(upper.get(), &st) != 0) return std::unexpected(Errno("stat " + root.upperdir));
  std::vector<Fd> lowers;
  for (const std::string& l : root.lowerdirs) {
    if (l.empty() || l[0] != '/') {
      return std::unexpected("lowerdir '" + l + "' is not an absolute path");
    }
    Fd fd(open(l.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return std::unexpected(Errno("opening lowerdir " + l));
    lowers.push_back(std::move(fd));
  }
  std::vector<DriftEntry> out;
  Walker w(st.st_dev, hash_max_bytes, &out);
  if (!w.Walk(upper.get(), "", lowers, false)) return std::unexpected(w.error());
  std::sort(out.begin(), out.end(),
            [](const DriftEntry& a, const DriftEntry& b) { return a.path < b.path; });
  return out;
}

size_t DropMountTargets(std::vector<DriftEntry>* entries,
                        const std::set<std::string>& mount_points) {
  return std::erase_if(*entries, [&](const DriftEntry& e) {
    return e.kind == DriftKind::kAdded && mount_points.count(e.path) != 0;
  });
}

}  // namespace driftwatch
