// pause: the pod sandbox's process, as Kubernetes' own pause does it. The test harness
// (containerd_env.sh) builds it static into the CRI sandbox_image, so that a pod's sandbox
// runs one exec at start and nothing else: no shell, no periodic exec, no alert of its own.
// It exits 0 on SIGINT or SIGTERM, and reaps whatever is reparented to it (it is the pod's
// PID 1 when the pod shares a PID namespace).
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction sa = {0};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_stop;
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) return 1;
  sa.sa_handler = on_child;
  sa.sa_flags = SA_NOCLDSTOP;
  if (sigaction(SIGCHLD, &sa, NULL) != 0) return 2;
  for (;;) pause();
}
