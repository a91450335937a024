// lib/file_digest: classification, hashing, and opening names a hostile process controls.
// A FIFO, a device node or a symlink at the name is never opened: inotify (IN_OPEN, which an
// O_PATH open does not raise) says whether anything opened it, and each open runs in a child
// under alarm(), so that an open that blocks (a FIFO without a writer) fails the test instead
// of hanging it.
#include "lib/event/file_digest.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace driftwatch {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/dw-file-digest-test.XXXXXX";
    if (mkdtemp(tmpl)) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

bool WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok;
}

std::string Sha256(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

// Runs `fn` in a child killed after 10 s; its exit code, or -1 if it did not exit (killed by
// the alarm: it blocked).
template <typename Fn>
int InChild(Fn fn) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(10);
    _exit(fn());
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Whether anything opened `path` (not counting O_PATH opens) while `fn` ran, checked in a
// child: 0 nothing opened and the open refused, 1 opened, 2 the open did not refuse, 3 setup.
int OpenRefusedUnopened(const std::string& path) {
  return InChild([&] {
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (in < 0 || inotify_add_watch(in, path.c_str(), IN_OPEN | IN_DONT_FOLLOW) < 0) return 3;
    struct stat st;
    auto fd = OpenRegularAt(AT_FDCWD, path.c_str(), &st);
    char buf[4096];
    ssize_t n = read(in, buf, sizeof buf);
    if (n > 0) return 1;
    if (fd) return 2;
    return 0;
  });
}

TEST(OpenRegularAtTest, OpensARegularFileForBlockingReads) {
  TempDir d;
  ASSERT_FALSE(d.path().empty());
  ASSERT_TRUE(WriteFile(d / "f", "content", 0644));
  struct stat st;
  auto fd = OpenRegularAt(AT_FDCWD, (d / "f").c_str(), &st);
  ASSERT_TRUE(fd.has_value()) << fd.error();
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 7);
  EXPECT_EQ(fcntl(*fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDONLY);
  EXPECT_NE(fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0);
  char buf[16] = {};
  EXPECT_EQ(pread(*fd, buf, sizeof buf, 0), 7);
  EXPECT_STREQ(buf, "content");
  close(*fd);
  // Relative to a directory fd, as the fanotify watcher opens names.
  int dir = open(d.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  auto at = OpenRegularAt(dir, "f", &st);
  ASSERT_TRUE(at.has_value()) << at.error();
  close(*at);
  auto missing = OpenRegularAt(dir, "missing", &st);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message(), "open: No such file or directory");
  close(dir);
}

TEST(OpenRegularAtTest, NeverOpensAFifo) {
  TempDir d;
  ASSERT_EQ(mkfifo((d / "fifo").c_str(), 0644), 0);
  // No writer: an O_RDONLY open without O_NONBLOCK would block until the alarm.
  EXPECT_EQ(OpenRefusedUnopened(d / "fifo"), 0);
}

TEST(OpenRegularAtTest, NeverOpensADeviceNode) {
  TempDir d;
  // What a container with CAP_MKNOD can put at a name: /dev/null's numbers here.
  if (mknod((d / "dev").c_str(), S_IFCHR | 0644, makedev(1, 3)) != 0)
    GTEST_SKIP() << "mknod: " << strerror(errno) << " (needs CAP_MKNOD)";
  EXPECT_EQ(OpenRefusedUnopened(d / "dev"), 0);
}

TEST(OpenRegularAtTest, DoesNotFollowASymlink) {
  TempDir d;
  ASSERT_TRUE(WriteFile(d / "target", "secret", 0644));
  ASSERT_EQ(symlink((d / "target").c_str(), (d / "link").c_str()), 0);
  struct stat st;
  auto fd = OpenRegularAt(AT_FDCWD, (d / "link").c_str(), &st);
  EXPECT_FALSE(fd.has_value());
  EXPECT_TRUE(S_ISLNK(st.st_mode));  // the link itself was looked at, not its target
  // And the target, watched, was not opened through it.
  EXPECT_EQ(InChild([&] {
              int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
              if (in < 0 || inotify_add_watch(in, (d / "target").c_str(), IN_OPEN) < 0) return 3;
              struct stat s;
              auto f = OpenRegularAt(AT_FDCWD, (d / "link").c_str(), &s);
              char buf[4096];
              return read(in, buf, sizeof buf) > 0 ? 1 : f ? 2 : 0;
            }),
            0);
}

// The name swapped for a FIFO after the O_PATH open: the reopen reads the file the name
// named then, never what it names now.
TEST(OpenRegularAtTest, ReopenReadsTheInodeHeldNotTheName) {
  TempDir d;
  ASSERT_TRUE(WriteFile(d / "f", "original", 0755));
  int path_fd = open((d / "f").c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  ASSERT_GE(path_fd, 0);
  struct stat st;
  ASSERT_EQ(fstat(path_fd, &st), 0);
  ASSERT_EQ(mkfifo((d / "fifo").c_str(), 0644), 0);
  ASSERT_EQ(rename((d / "fifo").c_str(), (d / "f").c_str()), 0);
  EXPECT_EQ(InChild([&] {
              auto fd = ReopenRegular(path_fd, st);
              if (!fd) return 2;
              char buf[16] = {};
              return pread(*fd, buf, sizeof buf, 0) == 8 && std::string(buf) == "original" ? 0
                                                                                          : 1;
            }),
            0);
  // A stat that says something else than a regular file is refused before any open.
  struct stat fifo_st = st;
  fifo_st.st_mode = S_IFIFO | 0644;
  auto fifo = ReopenRegular(path_fd, fifo_st);
  ASSERT_FALSE(fifo.has_value());
  EXPECT_EQ(fifo.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(fifo.error().message(), "not a regular file");
  // A stat of another inode: the reopened fd does not match it.
  struct stat other = st;
  other.st_ino += 1;
  auto swapped = ReopenRegular(path_fd, other);
  ASSERT_FALSE(swapped.has_value());
  EXPECT_EQ(swapped.error().message(), "reopened another file");
  close(path_fd);
}

TEST(FileDigestTest, ClassifiesThenHashes) {
  TempDir d;
  const std::string elf = std::string("\x7f" "ELF", 4) + std::string(5000, 'x');
  ASSERT_TRUE(WriteFile(d / "elf", elf, 0644));
  ASSERT_TRUE(WriteFile(d / "script", "#!/bin/sh\n", 0644));
  ASSERT_TRUE(WriteFile(d / "text", "hello", 0644));
  struct stat st;
  auto fd = OpenRegularAt(AT_FDCWD, (d / "elf").c_str(), &st);
  ASSERT_TRUE(fd.has_value());
  FileFacts f = ClassifyFile(*fd, st.st_mode, st.st_size, 1 << 20);
  EXPECT_TRUE(f.elf && f.executable && !f.exec_bit && !f.hashed);
  EXPECT_TRUE(f.wants_hash());
  HashFile(*fd, 1 << 20, &f);
  EXPECT_TRUE(f.hashed);
  EXPECT_EQ(f.sha256, Sha256(elf));
  EXPECT_EQ(InspectFile(*fd, st.st_mode, st.st_size, 1 << 20).sha256, Sha256(elf));
  // Over the cap: classified, never hashed.
  FileFacts capped = ClassifyFile(*fd, st.st_mode, st.st_size, 100);
  EXPECT_TRUE(capped.executable && capped.over_cap && !capped.wants_hash());
  // Grown past the cap since it was classified: the hash stops there.
  FileFacts grown = ClassifyFile(*fd, st.st_mode, 10, 100);
  ASSERT_TRUE(grown.wants_hash());
  HashFile(*fd, 100, &grown);
  EXPECT_TRUE(grown.over_cap && !grown.hashed);
  close(*fd);

  fd = OpenRegularAt(AT_FDCWD, (d / "script").c_str(), &st);
  ASSERT_TRUE(fd.has_value());
  EXPECT_TRUE(ClassifyFile(*fd, st.st_mode, st.st_size, 1 << 20).script);
  close(*fd);
  fd = OpenRegularAt(AT_FDCWD, (d / "text").c_str(), &st);
  ASSERT_TRUE(fd.has_value());
  FileFacts text = ClassifyFile(*fd, st.st_mode, st.st_size, 1 << 20);
  EXPECT_FALSE(text.executable || text.wants_hash());
  close(*fd);
}

}  // namespace
}  // namespace driftwatch
