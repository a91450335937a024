/* fd_exec: runs a program by file descriptor, as fileless malware does, for the exec
 * tests (tests/integration/exec_file_test.sh). Built static in the test (gcc -static), so
 * it runs in a busybox image.
 *
 *   fd_exec memfd NAME SRC ARGV0 [ARGS...]   copy SRC into memfd_create(NAME), execveat it
 *   fd_exec fd PATH ARGV0 [ARGS...]          open PATH, execveat(fd, "", AT_EMPTY_PATH)
 *   fd_exec fd-unlinked PATH ARGV0 [ARGS...] the same, PATH unlinked before the exec
 *   fd_exec proc-fd PATH ARGV0 [ARGS...]     open PATH, execve("/proc/self/fd/N")
 *   fd_exec memfd-loader NAME SRC LOADER [ARGS...]
 *                                            copy SRC into memfd_create(NAME) and run it
 *                                            with the dynamic loader: LOADER /proc/self/fd/N
 *
 * Exit 127 with a message when a step fails (the exec never returns on success). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char** environ;

static int fail(const char* what) {
  fprintf(stderr, "fd_exec: %s: %s\n", what, strerror(errno));
  return 127;
}

static int exec_fd(int fd, char** argv) {
  syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
  return fail("execveat");
}

/* A memfd named NAME holding a copy of SRC; -1 after a message on failure. */
static int memfd_copy(const char* name, const char* src_path, unsigned flags) {
  int src = open(src_path, O_RDONLY | O_CLOEXEC);
  if (src < 0) return fail(src_path), -1;
  int fd = (int)syscall(SYS_memfd_create, name, flags);
  if (fd < 0) return fail("memfd_create"), -1;
  char buf[65536];
  ssize_t n;
  while ((n = read(src, buf, sizeof buf)) > 0) {
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      if (w < 0) return fail("write"), -1;
      off += w;
    }
  }
  if (n < 0) return fail("read"), -1;
  close(src);
  return fd;
}

int main(int argc, char** argv) {
  if (argc >= 5 && strcmp(argv[1], "memfd") == 0) {
    int fd = memfd_copy(argv[2], argv[3], MFD_CLOEXEC);
    return fd < 0 ? 127 : exec_fd(fd, argv + 4);
  }
  if (argc >= 5 && strcmp(argv[1], "memfd-loader") == 0) {
    int fd = memfd_copy(argv[2], argv[3], 0); /* the loader opens it after the exec */
    if (fd < 0) return 127;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char* args[64] = {argv[4], path};
    for (int i = 5, j = 2; i < argc && j < 63; ++i, ++j) args[j] = argv[i];
    execve(argv[4], args, environ);
    return fail(argv[4]);
  }
  if (argc >= 4 && (strcmp(argv[1], "fd") == 0 || strcmp(argv[1], "fd-unlinked") == 0)) {
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(argv[2]);
    if (argv[1][2] == '-' && unlink(argv[2]) != 0) return fail("unlink");
    return exec_fd(fd, argv + 3);
  }
  if (argc >= 4 && strcmp(argv[1], "proc-fd") == 0) {
    int fd = open(argv[2], O_RDONLY); /* not close-on-exec: the path must still open */
    if (fd < 0) return fail(argv[2]);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    execve(path, argv + 3, environ);
    return fail("execve");
  }
  fprintf(stderr,
          "usage: fd_exec memfd NAME SRC ARGV0 [ARGS...] | fd|fd-unlinked|proc-fd PATH ARGV0 "
          "[ARGS...] | memfd-loader NAME SRC LOADER [ARGS...]\n");
  return 2;
}
