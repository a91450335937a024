/* spawner DURATION_SECONDS PATH: vfork+execve+waitpid PATH in a loop for DURATION
 * seconds, then print the number of execs done. Built -static to keep its own cost low. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s DURATION_SECONDS PATH\n", argv[0]);
		return 2;
	}
	double end = now() + atof(argv[1]);
	char *child_argv[] = { argv[2], NULL };
	char *child_envp[] = { NULL };
	unsigned long n = 0;

	while (now() < end) {
		pid_t pid = vfork(); /* vfork: no page-table copy, so we time exec, not fork */
		if (pid < 0) { perror("vfork"); return 1; }
		if (pid == 0) {
			execve(argv[2], child_argv, child_envp);
			_exit(127);
		}
		int st;
		if (waitpid(pid, &st, 0) < 0) { perror("waitpid"); return 1; }
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "child failed (status %d)\n", st);
			return 1;
		}
		n++;
	}
	printf("%lu\n", n);
	return 0;
}
