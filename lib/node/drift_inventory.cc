#include "lib/node/drift_inventory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "lib/event/file_digest.h"

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

// Appends the names in a directory (no "." or "..") to `names`, each counted in
// `t->entries_examined`; at `max_entries` reading stops and `t->entries` is set. False
// with errno set on failure.
bool ListDir(int dirfd, uint64_t max_entries, InventoryTruncation* t,
             std::vector<std::string>* names) {
  int dup_fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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
    if (t->entries_examined >= max_entries) {
      t->entries = true;
      break;
    }
    ++t->entries_examined;
    names->emplace_back(de->d_name);
    errno = 0;
  }
  int e = errno;
  closedir(d);
  errno = e;
  return e == 0;
}

// The walk, depth first, with an explicit stack: one Frame per directory being read, from
// the upper root down to the current one. A frame holds its directory's fd (and the same
// directory in each lower layer that shows through), so every open below it is relative to
// an fd and nothing is looked up by path.
class Walker {
 public:
  Walker(dev_t upper_dev, const InventoryOptions& opt, std::vector<DriftEntry>* out,
         InventoryTruncation* t)
      : upper_dev_(upper_dev), opt_(opt), out_(out), t_(t) {}

  // Walks the upper root. False: error() says why.
  bool Walk(Fd upper, std::vector<Fd> lowers) {
    std::vector<Frame> stack;
    stack.push_back(Frame{std::move(upper), "", std::move(lowers), false, 0, {}, 0});
    if (!List(&stack.back())) return false;
    while (!stack.empty() && !Stopped()) {
      Frame& f = stack.back();
      if (f.next == f.names.size()) {
        if (f.replaced && !ListHiddenLowers(f)) return false;
        stack.pop_back();
        continue;
      }
      std::optional<Frame> child;
      const std::string name = f.names[f.next++];  // names stay: ListHiddenLowers
      if (!Entry(f, name, &child)) return false;
      if (child) stack.push_back(std::move(*child));  // `f` is stale from here
    }
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  struct Frame {
    Fd upper;
    std::string rel;  // container path, "" for the root
    // The same directory in each lower layer that shows through, topmost first.
    std::vector<Fd> lowers;
    // An opaque directory at or above this one hides the lowers: lower entries without an
    // upper counterpart are deleted.
    bool replaced = false;
    uint32_t depth = 0;  // levels below the root
    std::vector<std::string> names;  // the upper directory's, read once
    size_t next = 0;                 // the next name to look at
  };

  static std::string Shown(const std::string& rel) { return rel.empty() ? "/" : rel; }

  // The path-bytes cap stops the walk at once. The entry cap stops reading directories
  // (ListDir reads no more names): the names read so far are still looked at.
  bool Stopped() const { return t_->path_bytes; }

  bool List(Frame* f) {
    if (ListDir(f->upper.get(), opt_.max_entries, t_, &f->names)) return true;
    if (errno == ENOENT) return true;  // removed while we walk
    error_ = Errno("reading upper directory " + Shown(f->rel));
    return false;
  }

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

  // Lists an entry; false (and the walk stops) when its path would go over max_path_bytes.
  bool Add(std::string path, DriftKind kind, const struct stat& st) {
    if (path.size() > opt_.max_path_bytes - t_->path_bytes_listed) {
      t_->path_bytes = true;
      return false;
    }
    t_->path_bytes_listed += path.size();
    DriftEntry e;
    e.path = std::move(path);
    e.kind = kind;
    e.type = TypeChar(st.st_mode);
    e.size = static_cast<uint64_t>(st.st_size);
    e.mode = st.st_mode & 07777;
    out_->push_back(std::move(e));
    return true;
  }

  // One name of `f`'s upper directory; a directory to walk next comes back in `child`.
  bool Entry(const Frame& f, const std::string& name, std::optional<Frame>* child) {
    const int upper = f.upper.get();
    const char* n = name.c_str();
    std::string path = f.rel + "/" + name;
    struct stat st;
    if (fstatat(upper, n, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return true;
      error_ = Errno("stat " + path + " in the upper layer");
      return false;
    }
    if (st.st_dev != upper_dev_) return true;  // something mounted inside the upper layer
    std::optional<struct stat> lower = LowerLookup(f.lowers, n);

    if (IsOverlayWhiteout(upper, n, st)) {
      // Under an opaque directory a whiteout hides nothing (the lowers already are).
      if (lower && !f.replaced) Add(path, DriftKind::kDeleted, *lower);
      return true;
    }

    if (S_ISDIR(st.st_mode)) return Directory(f, name, std::move(path), st, lower, child);

    if (!Add(path, lower ? DriftKind::kModified : DriftKind::kAdded, st)) return true;
    if (S_ISREG(st.st_mode)) Inspect(upper, n, st, path, &out_->back());
    return true;
  }

  bool Directory(const Frame& f, const std::string& name, std::string path,
                 const struct stat& st, const std::optional<struct stat>& lower,
                 std::optional<Frame>* child) {
    const int upper = f.upper.get();
    const char* n = name.c_str();
    const bool opaque = IsOpaqueDir(upper, n);
    const bool enter = f.depth < opt_.max_depth;
    Fd fd;
    if (enter) {
      fd = Fd(openat(upper, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (fd.get() < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return true;  // gone or replaced meanwhile
        error_ = Errno("opening upper directory " + path);
        return false;
      }
      struct stat now;
      if (fstat(fd.get(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
        return true;  // replaced since it was listed: as if gone
      }
    }
    std::vector<Fd> child_lowers;
    if (enter && lower && S_ISDIR(lower->st_mode) && !ChildLowers(f.lowers, n, &child_lowers)) {
      return false;
    }
    if (!lower) {
      if (!Add(path, DriftKind::kAdded, st)) return true;
    } else if (!S_ISDIR(lower->st_mode) || opaque || (lower->st_mode != st.st_mode) ||
               lower->st_uid != st.st_uid || lower->st_gid != st.st_gid) {
      if (!Add(path, DriftKind::kModified, st)) return true;
      out_->back().opaque_dir = opaque && S_ISDIR(lower->st_mode);
    }
    // else: copied up only because something below changed.
    if (!enter) {
      t_->depth = true;
      if (t_->dirs_not_entered++ == 0) t_->first_not_entered = path;
      return true;
    }
    Frame c{std::move(fd), std::move(path), std::move(child_lowers), f.replaced || opaque,
            f.depth + 1, {}, 0};
    if (!List(&c)) return false;
    *child = std::move(c);
    return true;
  }

  // Hashes a regular file without ever opening anything else: the container can replace
  // the name between the listing and here (a FIFO would block a read open, a device node's
  // open has side effects). O_PATH opens nothing: fstat says what the name is now.
  void Inspect(int upper, const char* n, const struct stat& listed, const std::string& path,
               DriftEntry* e) {
    e->executable = (listed.st_mode & 0111) != 0;  // unless the content says more, below
    if (opt_.before_open) opt_.before_open(path);
    Fd pathfd(openat(upper, n, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (pathfd.get() < 0 || fstat(pathfd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_dev != listed.st_dev || st.st_ino != listed.st_ino) {
      return;  // gone, unreadable or replaced since it was listed: listed, not hashed
    }
    // O_NONBLOCK: never wait on a lease; O_NOATIME: leave no trace (may be refused).
    const std::string proc = "/proc/self/fd/" + std::to_string(pathfd.get());
    const int flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
    Fd fd(open(proc.c_str(), flags | O_NOATIME));
    if (fd.get() < 0 && errno == EPERM) fd = Fd(open(proc.c_str(), flags));
    struct stat again;
    if (fd.get() < 0 || fstat(fd.get(), &again) != 0 || !S_ISREG(again.st_mode) ||
        again.st_dev != st.st_dev || again.st_ino != st.st_ino) {
      return;
    }
    // Data only in a lower layer (metadata-only copy-up): nothing of the container's to
    // hash; the x bits say whether it is executable.
    for (const char* key : {"trusted.overlay.metacopy", "user.overlay.metacopy"}) {
      if (fgetxattr(fd.get(), key, nullptr, 0) >= 0) return;
    }
    FileFacts facts = InspectFile(fd.get(), again.st_mode,
                                  static_cast<uint64_t>(again.st_size), opt_.hash_max_bytes);
    e->executable = facts.executable;
    if (facts.hashed) e->sha256_hex = HexOf(facts.sha256);
  }

  // Under an opaque directory: what the lowers hold that the upper does not is deleted.
  bool ListHiddenLowers(const Frame& f) {
    std::set<std::string> seen(f.names.begin(), f.names.end());
    for (const Fd& l : f.lowers) {
      std::vector<std::string> names;
      if (!ListDir(l.get(), opt_.max_entries, t_, &names)) {
        error_ = Errno("reading lower directory " + Shown(f.rel));
        return false;
      }
      for (const std::string& name : names) {
        if (!seen.insert(name).second) continue;
        struct stat st;
        if (fstatat(l.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (IsOverlayWhiteout(l.get(), name.c_str(), st)) continue;  // hides lower ones too
        if (!Add(f.rel + "/" + name, DriftKind::kDeleted, st)) return true;
      }
      if (Stopped()) return true;
    }
    return true;
  }

  const dev_t upper_dev_;
  const InventoryOptions& opt_;
  std::vector<DriftEntry>* out_;
  InventoryTruncation* t_;
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

std::string TruncationText(const InventoryTruncation& t) {
  if (!t.truncated()) return "";
  std::string s = "incomplete: ";
  auto add = [&s](const std::string& part) {
    if (s.back() != ' ') s += "; ";
    s += part;
  };
  if (t.entries) {
    add("the walk stopped at the entry cap (" + std::to_string(t.entries_examined) +
        " entries examined, cap " + std::to_string(t.max_entries) + ")");
  }
  if (t.path_bytes) {
    add("the walk stopped at the path-bytes cap (" + std::to_string(t.path_bytes_listed) +
        " bytes of paths listed, cap " + std::to_string(t.max_path_bytes) + ")");
  }
  if (t.depth) {
    add(std::to_string(t.dirs_not_entered) + " director" +
        (t.dirs_not_entered == 1 ? "y" : "ies") + " below the depth cap (" +
        std::to_string(t.max_depth) + " levels) not entered, the first " +
        t.first_not_entered);
  }
  return s;
}

Result<DriftInventoryResult> DriftInventory(const OverlayRoot& root, const InventoryOptions& opt) {
  if (root.upperdir.empty())
    return std::unexpected(Error::NotFound("overlay has no upper layer (read-only)"));
  Fd upper(open(root.upperdir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (upper.get() < 0)
    return std::unexpected(Error::FromErrno(errno, "opening upperdir " + root.upperdir));
  struct stat st;
  if (fstat(upper.get(), &st) != 0)
    return std::unexpected(Error::FromErrno(errno, "stat " + root.upperdir));
  std::vector<Fd> lowers;
  for (const std::string& l : root.lowerdirs) {
    if (l.empty() || l[0] != '/') {
      return std::unexpected(Error::InvalidInput("lowerdir '" + l + "' is not an absolute path"));
    }
    Fd fd(open(l.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return std::unexpected(Error::FromErrno(errno, "opening lowerdir " + l));
    lowers.push_back(std::move(fd));
  }
  DriftInventoryResult r;
  r.truncation.max_depth = opt.max_depth;
  r.truncation.max_entries = opt.max_entries;
  r.truncation.max_path_bytes = opt.max_path_bytes;
  Walker w(st.st_dev, opt, &r.entries, &r.truncation);
  if (!w.Walk(std::move(upper), std::move(lowers))) return std::unexpected(Error::Io(w.error()));
  std::sort(r.entries.begin(), r.entries.end(),
            [](const DriftEntry& a, const DriftEntry& b) { return a.path < b.path; });
  return r;
}

size_t DropMountTargets(std::vector<DriftEntry>* entries,
                        const std::set<std::string>& mount_points) {
  return std::erase_if(*entries, [&](const DriftEntry& e) {
    return e.kind == DriftKind::kAdded && mount_points.count(e.path) != 0;
  });
}

}  // namespace driftwatch
