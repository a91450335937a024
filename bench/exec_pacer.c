/* exec_pacer RATE SECONDS PATH [ARGS...]: fork+exec PATH at RATE per second for SECONDS,
 * on an absolute schedule (a late start is not made up by bursts), each child with a last
 * argument "pace-N". Prints the number of execs started. Static, for use in containers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 4) {
		fprintf(stderr, "usage: %s RATE SECONDS PATH [ARGS...]\n", argv[0]);
		return 2;
	}
	double rate = atof(argv[1]), secs = atof(argv[2]);
	if (rate <= 0 || secs <= 0) return 2;
	long total = (long)(rate * secs), period_ns = (long)(1e9 / rate);
	char **args = calloc((size_t)argc, sizeof *args);
	char tag[32];
	for (int i = 3; i < argc; i++) args[i - 3] = argv[i];
	args[argc - 3] = tag;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	long started = 0;
	for (long n = 0; n < total; n++) {
		next.tv_nsec += period_ns;
		while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		snprintf(tag, sizeof tag, "pace-%ld", n);
		pid_t p = fork();
		if (p == 0) {
			execv(args[0], args);
			_exit(127);
		}
		if (p > 0) started++;
		while (waitpid(-1, NULL, WNOHANG) > 0) {}
	}
	while (wait(NULL) > 0) {}
	printf("%ld\n", started);
	return 0;
}
