/* nb_connect IP PORT: one non-blocking TCP connect (what Go, Node and Java clients do), then
 * exit without waiting for it; prints the connect's result. Built -static to run in a
 * busybox container. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: nb_connect IP PORT\n");
    return 2;
  }
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
    fprintf(stderr, "nb_connect: %s: not an IPv4 address\n", argv[1]);
    return 2;
  }
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) {
    perror("socket");
    return 1;
  }
  int rc = connect(s, (struct sockaddr*)&a, sizeof a);
  printf("connect: %s\n", rc == 0 ? "0" : strerror(errno));
  close(s);
  return 0;
}
