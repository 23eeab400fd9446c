#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
extern char **environ;

/* criserver_ctor_args stores the process's argv in *out and returns argc,
 * for a constructor given (argc, argv) by glibc or nothing by musl; 0 (and
 * NULL) if they cannot be found. */
int criserver_ctor_args(int argc, char **argv, char ***out)
{
#ifdef __GLIBC__
	*out = argv;
	return argc;
#else
	/* The kernel lays out argc, argv[0..argc-1], NULL, envp[] on the
	 * initial stack and libc points environ at that envp before it runs
	 * constructors; nothing has moved environ yet (only setenv does, and
	 * no constructor calls it; unsetenv works in place). Walking back from
	 * it, the first slot holding its own distance is argc: argv's slots
	 * hold pointers, never such small numbers. argv[0] must then be the
	 * one libc kept as program_invocation_name, else nothing is trusted. */
	(void)argc;
	(void)argv;
	char **env = environ;
	*out = NULL;
	if (env == NULL || env[-1] != NULL)
		return 0;
	for (long n = 0;; n++) {
		if ((long)env[-n - 2] != n)
			continue;
		char **av = env - n - 1;
		if (n < 1 || av[0] != program_invocation_name)
			return 0;
		*out = av;
		return (int)n;
	}
#endif
}
