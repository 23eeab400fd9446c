#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The reaping init of a shared PID namespace, entered from a constructor
 * before the Go runtime starts: a Go runtime costs ~13 MB RSS per pod for a
 * loop that only waits; this one touches a few pages beyond libc's.
 *
 * SIGCHLD, SIGTERM and SIGINT are blocked and taken with sigwaitinfo: a
 * blocked signal is queued even for a namespace init (the kernel drops only
 * unblocked default-handled ones), so the daemon's SIGTERM ends the pod as
 * the pause container's would, and a child dying between the waitpid loop
 * and sigwaitinfo leaves its SIGCHLD pending instead of lost. */
static void criserver_podinit_loop(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* Hold no directory of the host busy. */
	if (chdir("/") != 0) {
	}
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0) {
		}
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGTERM || sig == SIGINT)
			_exit(0);
	}
}

/* glibc passes argc/argv to constructors; only "<exe> pod-init" stops here,
 * every other start of the binary pays one strcmp. */
void criserver_podinit(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "pod-init") != 0)
		return;
	criserver_podinit_loop();
}
