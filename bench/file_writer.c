// file_writer DIR COUNT [SIZE]: the write-heavy workload of bench/write_workload.sh.
// Creates DIR, then COUNT times: create DIR/fN, write SIZE bytes (default 4096), close.
// Prints "files=N seconds=S files_per_sec=R" for that timed phase only, then removes the
// files and DIR (untimed). Static (gcc -static) so it runs in any container.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s DIR COUNT [SIZE]\n", argv[0]);
    return 2;
  }
  const char* dir = argv[1];
  long count = strtol(argv[2], NULL, 10);
  long size = argc > 3 ? strtol(argv[3], NULL, 10) : 4096;
  if (count <= 0 || size < 0 || size > (1 << 24)) {
    fprintf(stderr, "file_writer: bad COUNT or SIZE\n");
    return 2;
  }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "file_writer: mkdir %s: %s\n", dir, strerror(errno));
    return 1;
  }
  char* buf = malloc((size_t)size + 1);
  if (!buf) return 1;
  memset(buf, 'x', (size_t)size);
  char path[4096];
  double t0 = now();
  for (long i = 0; i < count; i++) {
    snprintf(path, sizeof path, "%s/f%ld", dir, i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      fprintf(stderr, "file_writer: open %s: %s\n", path, strerror(errno));
      return 1;
    }
    if (size > 0 && write(fd, buf, (size_t)size) != size) {
      fprintf(stderr, "file_writer: write %s: %s\n", path, strerror(errno));
      return 1;
    }
    if (close(fd) != 0) return 1;
  }
  double secs = now() - t0;
  printf("files=%ld seconds=%.6f files_per_sec=%.1f\n", count, secs, (double)count / secs);
  fflush(stdout);
  for (long i = 0; i < count; i++) {
    snprintf(path, sizeof path, "%s/f%ld", dir, i);
    unlink(path);
  }
  rmdir(dir);
  free(buf);
  return 0;
}
