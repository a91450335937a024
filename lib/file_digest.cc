#include "lib/file_digest.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
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

FileFacts InspectFile(int fd, mode_t mode, uint64_t size, uint64_t hash_max_bytes) {
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
  if (!f.executable) return f;
  if (size > hash_max_bytes) {
    f.over_cap = true;
    return f;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    f.error = "sha256: OpenSSL digest init failed";
    return f;
  }
  // The file may still be growing (another write after the close): hash what is there,
  // up to the cap, and say so through the size the caller reports.
  std::vector<char> buf(1 << 16);
  off_t off = 0;
  for (;;) {
    ssize_t r = ReadAt(fd, buf.data(), buf.size(), off);
    if (r < 0) {
      f.error = std::string("read: ") + strerror(static_cast<int>(-r));
      return f;
    }
    if (r == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(r));
    off += r;
    if (static_cast<uint64_t>(off) > hash_max_bytes) {
      f.over_cap = true;
      return f;
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  f.sha256.assign(reinterpret_cast<char*>(md), len);
  f.hashed = true;
  return f;
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

}  // namespace driftwatch
