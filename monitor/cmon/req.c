/* The control protocol's two JSON shapes, parsed and written by hand: a
 * request is one flat object of the keys monitor.Request has (anything else
 * is refused, never guessed at), a reply is monitor.Reply. */
#include "cmon.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct parser {
	const char *p, *end;
};

static void ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n'))
		ps->p++;
}

static int lit(struct parser *ps, char c)
{
	ws(ps);
	if (ps->p < ps->end && *ps->p == c) {
		ps->p++;
		return 1;
	}
	return 0;
}

/* str reads a string without escapes (no key or op needs one). */
static int str(struct parser *ps, char *dst, size_t n)
{
	if (!lit(ps, '"'))
		return 0;
	size_t o = 0;
	while (ps->p < ps->end && *ps->p != '"') {
		unsigned char c = (unsigned char)*ps->p++;
		if (c == '\\' || c < 0x20 || o + 1 >= n)
			return 0;
		dst[o++] = (char)c;
	}
	dst[o] = 0;
	return lit(ps, '"');
}

static int num(struct parser *ps, long *v)
{
	ws(ps);
	int neg = 0, digits = 0;
	long x = 0;
	if (ps->p < ps->end && *ps->p == '-') {
		neg = 1;
		ps->p++;
	}
	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
		if (x > 100000000)
			return 0;
		x = x * 10 + (*ps->p++ - '0');
		digits++;
	}
	*v = neg ? -x : x;
	return digits > 0;
}

static int boolean(struct parser *ps, int *v)
{
	ws(ps);
	size_t left = (size_t)(ps->end - ps->p);
	if (left >= 4 && !memcmp(ps->p, "true", 4)) {
		ps->p += 4;
		*v = 1;
		return 1;
	}
	if (left >= 5 && !memcmp(ps->p, "false", 5)) {
		ps->p += 5;
		*v = 0;
		return 1;
	}
	return 0;
}

int parse_request(const char *line, size_t n, struct request *r, char *err, size_t errn)
{
	struct parser ps = {line, line + n};
	memset(r, 0, sizeof *r);
	if (!lit(&ps, '{'))
		goto bad;
	if (!lit(&ps, '}')) {
		do {
			char key[16];
			if (!str(&ps, key, sizeof key) || !lit(&ps, ':'))
				goto bad;
			int ok;
			if (!strcmp(key, "op"))
				ok = str(&ps, r->op, sizeof r->op);
			else if (!strcmp(key, "signal"))
				ok = num(&ps, &r->signal) && r->signal >= 0 && r->signal <= 64;
			else if (!strcmp(key, "all"))
				ok = boolean(&ps, &r->all);
			else if (!strcmp(key, "stdin"))
				ok = boolean(&ps, &r->want_stdin);
			else {
				snprintf(err, errn, "bad request: unknown key %.16s", key);
				return -1;
			}
			if (!ok)
				goto bad;
		} while (lit(&ps, ','));
		if (!lit(&ps, '}'))
			goto bad;
	}
	ws(&ps);
	if (ps.p != ps.end)
		goto bad;
	return 0;
bad:
	snprintf(err, errn, "bad request: not a control request at byte %d", (int)(ps.p - line));
	return -1;
}

size_t format_reply(char *dst, size_t n, const char *error)
{
	char esc[600];
	size_t k = 0;
	k += (size_t)snprintf(dst + k, n - k, "{");
	if (error && error[0]) {
		jsonesc(esc, sizeof esc, error);
		k += (size_t)snprintf(dst + k, n - k, "\"error\":\"%s\",", esc);
	}
	if (M.init > 0)
		k += (size_t)snprintf(dst + k, n - k, "\"pid\":%d,", M.init);
	k += (size_t)snprintf(dst + k, n - k, "\"monitor\":%d", getpid());
	if (M.started)
		k += (size_t)snprintf(dst + k, n - k, ",\"started\":true");
	if (M.recorded) {
		const struct exitrec *e = &M.exit;
		k += (size_t)snprintf(dst + k, n - k, ",\"exit\":{\"code\":%d", e->code);
		if (e->signal)
			k += (size_t)snprintf(dst + k, n - k, ",\"signal\":%d", e->signal);
		k += (size_t)snprintf(dst + k, n - k, ",\"exited_at\":\"%s\"", e->exited_at);
		if (e->oom_killed)
			k += (size_t)snprintf(dst + k, n - k, ",\"oom_killed\":true");
		if (e->message[0]) {
			jsonesc(esc, sizeof esc, e->message);
			k += (size_t)snprintf(dst + k, n - k, ",\"message\":\"%s\"", esc);
		}
		k += (size_t)snprintf(dst + k, n - k, "}");
	}
	k += (size_t)snprintf(dst + k, n - k, "}\n");
	return k;
}
