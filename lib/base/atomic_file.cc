#include "lib/base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace driftwatch {

Result<> WriteFileAtomic(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return std::unexpected(Error::FromErrno(errno, tmp));
  auto fail = [&](int e, const std::string& what) -> Result<> {
    close(fd);
    unlink(tmp.c_str());
    return std::unexpected(Error::FromErrno(e, what));
  };
  // An existing PATH.tmp keeps its mode through O_CREAT.
  if (fchmod(fd, 0600) != 0) return fail(errno, tmp + ": fchmod");
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(n < 0 ? errno : EIO, tmp);
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return fail(errno, tmp + ": fsync");
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    unlink(tmp.c_str());
    return std::unexpected(Error::FromErrno(e, path));
  }
  // The rename itself survives a crash once the directory is on disk.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  return {};
}

}  // namespace driftwatch
