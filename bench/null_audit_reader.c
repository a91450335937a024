/* A do-nothing audit reader: registers as the audit daemon, reads and discards every
 * message until SIGTERM/SIGINT, then unregisters and restores the prior `enabled`.
 * It is the benchmark's baseline: the cost audit itself puts on exec, with a reader that
 * spends nothing. It adds no rules. Plain libc, no libaudit. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/audit.h>
#include <linux/netlink.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* Send one AUDIT_GET/AUDIT_SET request and wait for its ACK or reply. */
static int request(int fd, int type, struct audit_status *s)
{
	struct { struct nlmsghdr h; struct audit_status s; } req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = type,
		       .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK, .nlmsg_seq = 1 },
		.s = *s,
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	char buf[8192];
	for (;;) {  /* AUDIT_GET answers with the status, then an ACK (error 0) */
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) { if (errno == EINTR) continue; return -errno; }
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		if (h->nlmsg_type == NLMSG_ERROR) {
			int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (err || type != AUDIT_GET) return err;
		} else if (h->nlmsg_type == AUDIT_GET && type == AUDIT_GET) {
			memcpy(s, NLMSG_DATA(h), sizeof(*s));
			return 0;
		}  /* anything else (an audit event already queued): ignore */
	}
}

int main(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
	if (fd < 0) { perror("socket"); return 1; }
	/* A big buffer so a burst does not fill the socket and back up into the kernel queue. */
	int rcvbuf = 16 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		perror("SO_RCVBUFFORCE");

	struct audit_status s = { 0 };
	int err = request(fd, AUDIT_GET, &s);
	if (err) { fprintf(stderr, "AUDIT_GET: %s\n", strerror(-err)); return 1; }
	if (s.enabled == 2) { fprintf(stderr, "audit is locked (enabled 2)\n"); return 1; }
	__u32 prior_enabled = s.enabled;

	struct sigaction sa = { .sa_handler = on_signal };  /* no SA_RESTART: recv returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	struct audit_status set = { .mask = AUDIT_STATUS_PID | AUDIT_STATUS_ENABLED,
				    .pid = getpid(), .enabled = 1 };
	err = request(fd, AUDIT_SET, &set);
	if (err) { fprintf(stderr, "AUDIT_SET register: %s\n", strerror(-err)); return 1; }

	static char buf[1 << 16];
	unsigned long msgs = 0;
	while (!stop) {
		if (recv(fd, buf, sizeof(buf), 0) >= 0) msgs++;
		else if (errno != EINTR && errno != ENOBUFS) { perror("recv"); break; }
	}

	struct audit_status unset = { .mask = AUDIT_STATUS_PID | AUDIT_STATUS_ENABLED,
				      .pid = 0, .enabled = prior_enabled };
	err = request(fd, AUDIT_SET, &unset);
	if (err) fprintf(stderr, "AUDIT_SET unregister: %s\n", strerror(-err));
	fprintf(stderr, "null_audit_reader: %lu messages discarded\n", msgs);
	return err ? 1 : 0;
}
