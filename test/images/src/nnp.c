/* nnp: installed setuid root in the nonewprivs image. With no_new_privs the
 * setuid bit is ignored, so the effective uid stays the caller's. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
	printf("Effective uid: %d\n", geteuid());
	return 0;
}
