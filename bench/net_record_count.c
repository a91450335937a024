/* net_record_count KEY: a counting audit reader. Registers as the audit daemon like
 * null_audit_reader, and counts the SYSCALL records that carry key="KEY", by syscall number
 * and result (the exit value when negative, an errno; 0 for any success). On SIGTERM/SIGINT
 * it unregisters, restores the prior `enabled` and prints one line per (syscall, result):
 *   syscall=42 exit=-115 count=37726
 * It adds no rules. Plain libc, no libaudit. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/audit.h>
#include <linux/netlink.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* Send one AUDIT_GET/AUDIT_SET request and wait for its ACK or reply (as null_audit_reader). */
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
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) { if (errno == EINTR) continue; return -errno; }
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		if (h->nlmsg_type == NLMSG_ERROR) {
			int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (err || type != AUDIT_GET) return err;
		} else if (h->nlmsg_type == AUDIT_GET && type == AUDIT_GET) {
			memcpy(s, NLMSG_DATA(h), sizeof(*s));
			return 0;
		}
	}
}

static struct { long syscall, exit; unsigned long count; } tally[256];
static int ntally;

static void count(long syscall, long exit)
{
	for (int i = 0; i < ntally; i++)
		if (tally[i].syscall == syscall && tally[i].exit == exit) { tally[i].count++; return; }
	if (ntally < (int)(sizeof(tally) / sizeof(tally[0])))
		tally[ntally++] = (typeof(tally[0])){ syscall, exit, 1 };
}

static long field(const char *text, const char *name) /* name like " syscall=" */
{
	const char *p = strstr(text, name);
	return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

int main(int argc, char **argv)
{
	if (argc != 2) { fprintf(stderr, "usage: %s KEY\n", argv[0]); return 2; }
	char key[128];
	snprintf(key, sizeof(key), " key=\"%s\"", argv[1]);

	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
	if (fd < 0) { perror("socket"); return 1; }
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
	while (!stop) {
		/* One record per datagram; its text follows the netlink header. */
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n < 0) {
			if (errno != EINTR && errno != ENOBUFS) { perror("recv"); break; }
			continue;
		}
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		if (n < NLMSG_HDRLEN || h->nlmsg_type != AUDIT_SYSCALL) continue;
		buf[n] = 0;
		const char *text = buf + NLMSG_HDRLEN;
		if (!strstr(text, key)) continue;
		long exit = field(text, " exit=");
		count(field(text, " syscall="), exit < 0 ? exit : 0);
	}

	struct audit_status unset = { .mask = AUDIT_STATUS_PID | AUDIT_STATUS_ENABLED,
				      .pid = 0, .enabled = prior_enabled };
	err = request(fd, AUDIT_SET, &unset);
	if (err) fprintf(stderr, "AUDIT_SET unregister: %s\n", strerror(-err));
	for (int i = 0; i < ntally; i++)
		printf("syscall=%ld exit=%ld count=%lu\n", tally[i].syscall, tally[i].exit, tally[i].count);
	return err ? 1 : 0;
}
