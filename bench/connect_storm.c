/* connect_storm MODE DURATION_SECONDS: connect() to loopback in a loop for DURATION seconds,
 * then print the number of connect() calls done (stdout) and how they returned (stderr).
 * Modes, each iteration one socket():
 *   tcp       blocking connect to our own listener, accept, close both
 *   nonblock  the same with a non-blocking socket: connect (EINPROGRESS), poll, accept
 *   refused   blocking connect to a loopback port bound but not listening: ECONNREFUSED
 *   udp       SOCK_DGRAM socket, connect (no packet sent), close
 * The listener is served in the same loop (connect, then accept): no second thread that
 * could fall behind, fill the accept queue and make a SYN wait for its 1 s retransmit.
 * Clients close with SO_LINGER 0 (RST), so no TIME_WAIT uses up the ephemeral ports.
 * Built -static to keep its own cost low. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* A TCP socket bound to 127.0.0.1 on a free port; listening if asked. Its address in *a. */
static int loopback_port(int do_listen, struct sockaddr_in *a)
{
	socklen_t len = sizeof(*a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	*a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof(*a)) < 0) die("bind");
	if (do_listen && listen(fd, 1024) < 0) die("listen");
	if (getsockname(fd, (struct sockaddr *)a, &len) < 0) die("getsockname");
	return fd;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s tcp|nonblock|refused|udp DURATION_SECONDS\n", argv[0]);
		return 2;
	}
	const char *mode = argv[1];
	int tcp = !strcmp(mode, "tcp"), nonblock = !strcmp(mode, "nonblock");
	int refused = !strcmp(mode, "refused"), udp = !strcmp(mode, "udp");
	if (!(tcp || nonblock || refused || udp)) {
		fprintf(stderr, "connect_storm: unknown mode %s\n", mode);
		return 2;
	}
	struct sockaddr_in to;
	/* tcp/nonblock: our listener. refused: a port held (bound) but never listened on, so
	 * nobody else can listen there. udp: any port does; use a held one too. */
	int lfd = loopback_port(tcp || nonblock, &to);
	int type = udp ? SOCK_DGRAM : SOCK_STREAM;
	if (nonblock) type |= SOCK_NONBLOCK;
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	unsigned long n = 0, ok = 0, inprogress = 0, refusals = 0;

	double end = now() + atof(argv[2]);
	while (now() < end) {
		int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
		if (fd < 0) die("socket");
		if (!udp && setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)) < 0) die("SO_LINGER");
		int rc = connect(fd, (struct sockaddr *)&to, sizeof(to));
		n++;
		if (rc == 0) {
			ok++;
		} else if (errno == EINPROGRESS && nonblock) {
			inprogress++;
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int err = 0;
			socklen_t len = sizeof(err);
			if (poll(&p, 1, 5000) != 1) die("poll");
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
				errno = err;
				die("connect (completed)");
			}
		} else if (errno == ECONNREFUSED && refused) {
			refusals++;
		} else {
			die("connect");
		}
		if (tcp || nonblock) {
			int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (afd < 0) die("accept4");
			close(afd);
		}
		close(fd);
	}
	printf("%lu\n", n);
	fprintf(stderr, "connect_storm %s: %lu connects: %lu returned 0, %lu EINPROGRESS, %lu ECONNREFUSED\n",
		mode, n, ok, inprogress, refusals);
	return 0;
}
