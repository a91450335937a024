#include "lib/event/file_digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

namespace driftwatch {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// pread that retries EINTR and short reads; returns bytes read or -errno.
ssize_t ReadAt(int fd, char* buf, size_t len, off_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, buf + got, len - got, off + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(got);
}

}  // namespace

FileFacts ClassifyFile(int fd, mode_t mode, uint64_t size, uint64_t hash_max_bytes) {
  FileFacts f;
  f.exec_bit = (mode & 0111) != 0;
  if (!S_ISREG(mode)) return f;
  char magic[4] = {};
  ssize_t n = ReadAt(fd, magic, sizeof magic, 0);
  if (n < 0) {
    f.error = std::string("read: ") + strerror(static_cast<int>(-n));
    f.executable = f.exec_bit;
    return f;
  }
  f.elf = n == 4 && std::memcmp(magic, "\x7f" "ELF", 4) == 0;
  f.script = n >= 2 && magic[0] == '#' && magic[1] == '!';
  f.executable = f.elf || f.script || f.exec_bit;
  f.over_cap = f.executable && size > hash_max_bytes;
  return f;
}

void HashFile(int fd, uint64_t hash_max_bytes, FileFacts* f) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    f->error = "sha256: OpenSSL digest init failed";
    return;
  }
  // The file may still be growing (another write after the close): hash what is there,
  // up to the cap, and say so through the size the caller reports.
  // Small caps (a small file hashed where it was classified) need no 64 KiB buffer.
  std::vector<char> buf(std::min<uint64_t>(1 << 16, hash_max_bytes + 1));
  off_t off = 0;
  for (;;) {
    ssize_t r = ReadAt(fd, buf.data(), buf.size(), off);
    if (r < 0) {
      f->error = std::string("read: ") + strerror(static_cast<int>(-r));
      return;
    }
    if (r == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(r));
    off += r;
    if (static_cast<uint64_t>(off) > hash_max_bytes) {
      f->over_cap = true;
      return;
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  f->sha256.assign(reinterpret_cast<char*>(md), len);
  f->hashed = true;
}

FileFacts InspectFile(int fd, mode_t mode, uint64_t size, uint64_t hash_max_bytes) {
  FileFacts f = ClassifyFile(fd, mode, size, hash_max_bytes);
  if (f.wants_hash()) HashFile(fd, hash_max_bytes, &f);
  return f;
}

Result<int> ReopenRegular(int path_fd, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return std::unexpected(Error::InvalidInput("not a regular file"));
  char proc_path[32];
  std::snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", path_fd);
  // The magic link opens the inode path_fd holds, whatever its name is now. O_NONBLOCK and
  // O_NOCTTY cost nothing on a regular file and would keep a wrong one harmless; the
  // (dev, ino) check below catches a /proc/self that is not ours.
  int fd = open(proc_path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::unexpected(Error::FromErrno(errno, "reopen"));
  struct stat now;
  if (fstat(fd, &now) != 0) {
    Error err = Error::FromErrno(errno, "fstat");
    close(fd);
    return std::unexpected(std::move(err));
  }
  if (!S_ISREG(now.st_mode) || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
    close(fd);
    return std::unexpected(Error::Io("reopened another file"));
  }
  // Blocking reads from here (a regular file never blocks; a lease break would EAGAIN).
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    Error err = Error::FromErrno(errno, "fcntl");
    close(fd);
    return std::unexpected(std::move(err));
  }
  return fd;
}

Result<int> OpenRegularAt(int dir_fd, const char* name, struct stat* st) {
  int path_fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (path_fd < 0) return std::unexpected(Error::FromErrno(errno, "open"));
  if (fstat(path_fd, st) != 0) {
    Error err = Error::FromErrno(errno, "fstat");
    close(path_fd);
    return std::unexpected(std::move(err));
  }
  auto fd = ReopenRegular(path_fd, *st);
  close(path_fd);
  return fd;
}

std::string HexOf(const std::string& raw) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) return "";
  return HexOf(std::string(reinterpret_cast<const char*>(md), len));
}

}  // namespace driftwatch
