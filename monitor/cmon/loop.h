/* What the event loop (loop.c) and the control socket (control.c) share. */
#ifndef CMON_LOOP_H
#define CMON_LOOP_H
#include "cmon.h"

enum { K_STREAM = 1, K_SIG, K_LISTEN, K_CLIENT };
enum { P_RUN, P_DRAIN, P_CLOSING, P_LINGER, P_FINAL };

/* In M, on its hot page, rather than on pages of their own: */
#define phase M.phase		/* P_* */
#define did_control M.did_control /* a client came since the last trim */
#define deadline M.deadline	/* ms, CLOCK_MONOTONIC, of the current phase */

/* loop.c */
long long now_ms(void);
void ep_add(int fd, uint32_t ev, int kind, int idx);
void ep_mod(int fd, uint32_t ev, int kind, int idx);
int log_reopen(void);
void stdin_write(const char *p, size_t n);
void stdin_ended(void);
void resize(const unsigned char *p);

/* control.c */
void client_close(int i);
void client_flush(int i);
void reply(int i, const char *err);
void fanout(int frame, const char *p, size_t n);
void client_read(int i);
void accept_clients(void);
#endif
