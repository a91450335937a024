/* file_reader PATH SECONDS: opens PATH read-only, reads up to 64 bytes and closes it, in a
 * loop, for SECONDS; prints how many times. Built -static to run inside a busybox container:
 * what one process reading a sensitive file in a loop costs with and without marks. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: file_reader PATH SECONDS\n");
    return 2;
  }
  const double end = now() + atof(argv[2]);
  unsigned long n = 0;
  char buf[64];
  while ((n & 255) != 0 || now() < end) {
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      perror(argv[1]);
      return 1;
    }
    if (read(fd, buf, sizeof buf) < 0) perror("read");
    close(fd);
    ++n;
  }
  printf("%lu\n", n);
  return 0;
}
