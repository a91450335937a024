/* A do-nothing fanotify permission listener: marks the filesystem holding PATH with
 * FAN_OPEN_EXEC_PERM and allows every exec at once, doing nothing else (no cgroup, no path,
 * no lookup, no poll: a blocking read, then a write and a close per event). It is the
 * prevention benchmark's floor: what holding execs for a user-space verdict costs by
 * itself (the kernel's event, an fd made and closed, two context switches), with a
 * listener that spends nothing on the verdict. Its verdict thread is at SCHED_FIFO 1 when
 * allowed, as the sensor's. Plain libc.
 *
 * Usage: null_perm_listener PATH     (root; SIGTERM or SIGKILL ends it: the kernel allows
 * whatever is pending when the group's fd closes). Prints "marked" once the mark is on. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: null_perm_listener PATH\n");
		return 2;
	}
	int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
	if (fd < 0) {
		fprintf(stderr, "fanotify_init: %s\n", strerror(errno));
		return 1;
	}
	if (fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN_EXEC_PERM, AT_FDCWD,
			  argv[1]) != 0) {
		fprintf(stderr, "fanotify_mark %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	struct sched_param sp = { .sched_priority = 1 };
	if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0)
		fprintf(stderr, "SCHED_FIFO refused (%s): normal priority\n", strerror(errno));
	printf("marked\n");
	fflush(stdout);
	char buf[4096] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	for (;;) {
		ssize_t len = read(fd, buf, sizeof(buf));
		if (len < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "read: %s\n", strerror(errno));
			return 1;
		}
		struct fanotify_event_metadata *md = (struct fanotify_event_metadata *)buf;
		for (; FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len)) {
			if (md->fd < 0)
				continue;
			struct fanotify_response r = { .fd = md->fd, .response = FAN_ALLOW };
			if (write(fd, &r, sizeof(r)) != sizeof(r))
				fprintf(stderr, "write: %s\n", strerror(errno));
			close(md->fd);
		}
	}
}
