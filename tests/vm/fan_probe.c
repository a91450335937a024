// fan_probe: which fanotify mark sees a container's exec, on the kernel it runs on.
// Usage: fan_probe mount|filesystem PATH SECONDS
// A FAN_CLASS_CONTENT group with a FAN_OPEN_EXEC_PERM mark (FAN_MARK_MOUNT or
// FAN_MARK_FILESYSTEM) on PATH, for SECONDS: an exec of a file whose path (as its event fd
// reads) holds "-dropped" is denied, everything else allowed; each event is printed as
// "exec-perm PATH allow|deny". "ready" once marked; exit 2 when the mark is refused.
// kernel_vm.sh builds it (gcc -static) for the 6.1 guest, which reports what it saw.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: fan_probe mount|filesystem PATH SECONDS\n");
    return 2;
  }
  unsigned int how = strcmp(argv[1], "mount") == 0 ? FAN_MARK_MOUNT : FAN_MARK_FILESYSTEM;
  int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
  if (fd < 0) {
    printf("fanotify_init: %s\n", strerror(errno));
    return 2;
  }
  if (fanotify_mark(fd, FAN_MARK_ADD | how, FAN_OPEN_EXEC_PERM, AT_FDCWD, argv[2]) != 0) {
    printf("fanotify_mark(%s, %s): %s\n", argv[1], argv[2], strerror(errno));
    return 2;
  }
  printf("ready\n");
  fflush(stdout);
  time_t end = time(NULL) + atoi(argv[3]);
  char buf[8192] __attribute__((aligned(8)));
  while (time(NULL) < end) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) continue;
    for (struct fanotify_event_metadata* m = (struct fanotify_event_metadata*)buf;
         FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
      char link[64], path[4096] = "?";
      snprintf(link, sizeof link, "/proc/self/fd/%d", m->fd);
      ssize_t l = readlink(link, path, sizeof path - 1);
      if (l >= 0) path[l] = 0;
      int deny = strstr(path, "-dropped") != NULL;
      struct fanotify_response r = {m->fd, deny ? FAN_DENY : FAN_ALLOW};
      if (write(fd, &r, sizeof r) != sizeof r) perror("write response");
      printf("exec-perm %s %s\n", path, deny ? "deny" : "allow");
      fflush(stdout);
      close(m->fd);
    }
  }
  return 0;
}
