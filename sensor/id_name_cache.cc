#include "sensor/id_name_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "lib/event/exe_file.h"

namespace driftwatch::sensor {
namespace {

int64_t Ns(const struct timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; }

}  // namespace

IdNameCache::Names IdNameCache::Get(const std::string& key, const std::function<int()>& open_root,
                                    int64_t now_ns) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= max_keys_) entries_.clear();
    it = entries_.emplace(key, Entry{}).first;
  }
  Entry& e = it->second;
  if (e.checked_ns == 0 || now_ns - e.checked_ns >= recheck_ns_) {
    e.checked_ns = now_ns;
    int root = open_root();
    if (root < 0) {
      e.passwd.ok = e.group.ok = false;
    } else {
      Refresh(root, "/etc/passwd", &e.passwd);
      Refresh(root, "/etc/group", &e.group);
      close(root);
    }
  }
  return Names{e.passwd.ok ? &e.passwd.names : nullptr, e.group.ok ? &e.group.names : nullptr};
}

void IdNameCache::Refresh(int root, const char* path, File* f) {
  int pfd = OpenInRoot(root, path);
  struct stat st;
  if (pfd < 0 || fstat(pfd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (pfd >= 0) {
      close(pfd);
      ++stats_.refused;
    }
    *f = File{};
    return;
  }
  if (f->ok && f->dev == st.st_dev && f->ino == st.st_ino && f->size == st.st_size &&
      f->mtime_ns == Ns(st.st_mtim) && f->ctime_ns == Ns(st.st_ctim)) {
    close(pfd);
    return;
  }
  // Reopen the O_PATH fd for reading: the same inode, not the path again (which may have
  // been swapped since). O_NONBLOCK: it was a regular file, but never wait on anything.
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", pfd);
  int fd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  close(pfd);
  struct stat st2;
  if (fd < 0 || fstat(fd, &st2) != 0 || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev ||
      !S_ISREG(st2.st_mode)) {
    if (fd >= 0) close(fd);
    ++stats_.refused;
    *f = File{};
    return;
  }
  std::string text;
  text.resize(kMaxIdFileBytes + 1);
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  // A file past the cap is not cut short at an arbitrary line: it names no one.
  if (got > kMaxIdFileBytes) {
    ++stats_.refused;
    *f = File{};
    return;
  }
  text.resize(got);
  ++stats_.reads;
  f->ok = true;
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->size = st.st_size;
  f->mtime_ns = Ns(st.st_mtim);
  f->ctime_ns = Ns(st.st_ctim);
  f->names = ParseIdNames(text);
}

}  // namespace driftwatch::sensor
