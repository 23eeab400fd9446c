/* webserver: the nginx and httpd stand-ins of the test images.
 *
 * Installed as /usr/sbin/nginx and /usr/local/apache2/bin/httpd; the name it
 * was executed under picks the flavour. Like the real servers it runs a
 * master that stays PID 1 and a worker that serves, because critest looks at
 * them: the ContainerPID spec greps /proc/1/cmdline for "master process",
 * the HostPID spec compares /var/run/nginx.pid with `pidof nginx`, the
 * multi-container spec looks for "httpd" in the httpd container's log.
 * The port comes from the image's config file ("listen N;" in nginx's
 * conf.d/default.conf, "Listen N" in httpd.conf), so hostnet-nginx differs
 * from nginx only by that file, as upstream. It serves static files with
 * HTTP/1.0 semantics and exits 0 on SIGTERM, SIGINT and SIGQUIT. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int nginx; /* else httpd */
static const char *docroot;
static volatile pid_t worker;
static volatile sig_atomic_t stopping;

static int conf_port(const char *path, const char *key, int def) {
	FILE *f = fopen(path, "r");
	if (!f)
		return def;
	char line[512];
	int port = def;
	size_t n = strlen(key);
	while (fgets(line, sizeof line, f)) {
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '#' || strncmp(p, key, n) != 0 || !isspace((unsigned char)p[n]))
			continue;
		p += n;
		while (*p && !isdigit((unsigned char)*p))
			p++;
		if (*p) {
			port = atoi(p);
			break;
		}
	}
	fclose(f);
	return port;
}

static int listen_on(int port) {
	int one = 1, zero = 0;
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
		if (bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0 && listen(fd, 128) == 0)
			return fd;
		close(fd);
	}
	/* No IPv6 in this network namespace: IPv4 only. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a4, sizeof a4) != 0 || listen(fd, 128) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void respond(int c, int code, const char *reason, const char *body, size_t len) {
	char hdr[256];
	int n = snprintf(hdr, sizeof hdr,
	                 "HTTP/1.0 %d %s\r\nServer: %s\r\nContent-Type: text/html\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                 code, reason, nginx ? "nginx/1.14.2" : "Apache/2.4.39 (Unix)", len);
	if (write(c, hdr, n) < 0)
		return;
	while (len > 0) {
		ssize_t w = write(c, body, len);
		if (w <= 0)
			return;
		body += w;
		len -= w;
	}
}

static void serve(int c) {
	struct timeval tv = {.tv_sec = 10};
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char req[8192];
	size_t got = 0;
	while (got < sizeof req - 1) {
		ssize_t r = read(c, req + got, sizeof req - 1 - got);
		if (r <= 0)
			break;
		got += r;
		req[got] = 0;
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	req[got] = 0;
	char method[16] = "", path[4096] = "";
	if (sscanf(req, "%15s %4095s", method, path) != 2) {
		respond(c, 400, "Bad Request", "bad request\n", 12);
		return;
	}
	int code = 200;
	char file[4200];
	char *q = strchr(path, '?');
	if (q)
		*q = 0;
	snprintf(file, sizeof file, "%s%s%s", docroot, path, path[strlen(path) - 1] == '/' ? "index.html" : "");
	char *body = NULL;
	size_t len = 0;
	int fd = -1;
	struct stat st;
	if (path[0] != '/' || strstr(path, "..") || (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !(body = malloc(st.st_size + 1))) {
		code = 404;
	} else {
		len = read(fd, body, st.st_size) == st.st_size ? (size_t)st.st_size : 0;
	}
	if (fd >= 0)
		close(fd);
	if (code == 404)
		respond(c, 404, "Not Found", "<html><body><h1>404 Not Found</h1></body></html>\n", 50);
	else
		respond(c, 200, "OK", strcmp(method, "HEAD") == 0 ? "" : body, strcmp(method, "HEAD") == 0 ? 0 : len);
	free(body);
	time_t now = time(NULL);
	char ts[64];
	strftime(ts, sizeof ts, "%d/%b/%Y:%H:%M:%S +0000", gmtime(&now));
	printf("- - - [%s] \"%s %s\" %d %zu\n", ts, method, path, code, len);
	fflush(stdout);
}

static void work(int lfd, char **argv, size_t title_room) {
	if (nginx && title_room > 0) {
		/* Retitle in place, as nginx does: cmdline becomes "nginx: worker process". */
		memset(argv[0], 0, title_room);
		strncpy(argv[0], "nginx: worker process", title_room - 1);
	}
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	signal(SIGCHLD, SIG_IGN); /* connection children are auto-reaped */
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			perror("accept");
			_exit(1);
		}
		pid_t p = fork();
		if (p == 0) {
			serve(c);
			_exit(0);
		}
		close(c);
	}
}

static void on_stop(int sig) {
	stopping = 1;
	if (worker > 0)
		kill(worker, SIGTERM);
}

int main(int argc, char **argv) {
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0) {
		perror("readlink /proc/self/exe");
		return 1;
	}
	self[n] = 0;
	const char *name = basename(strdup(self));
	nginx = strcmp(name, "httpd") != 0;
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (nginx && strncmp(argv[0], "nginx: ", 7) != 0) {
		/* Re-exec under the master's title so that /proc/1/cmdline reads
		 * "nginx: master process nginx -g daemon off;" from the start, and
		 * comm stays "nginx" (pidof matches on it). */
		char title[4096] = "nginx: master process";
		for (int i = 0; i < argc; i++) {
			strncat(title, " ", sizeof title - strlen(title) - 1);
			strncat(title, argv[i], sizeof title - strlen(title) - 1);
		}
		char *nargv[] = {title, NULL};
		execv(self, nargv);
		perror("re-exec");
		return 1;
	}

	int port;
	if (nginx) {
		docroot = "/usr/share/nginx/html";
		port = conf_port("/etc/nginx/conf.d/default.conf", "listen", 80);
	} else {
		docroot = "/usr/local/apache2/htdocs";
		port = conf_port("/usr/local/apache2/conf/httpd.conf", "Listen", 80);
		fprintf(stderr, "AH00558: httpd: Could not reliably determine the server's fully qualified "
		                "domain name. Set the 'ServerName' directive globally to suppress this message\n");
	}
	int lfd = listen_on(port);
	if (lfd < 0) {
		fprintf(stderr, "%s: bind port %d: %s\n", name, port, strerror(errno));
		return 1;
	}
	if (nginx) {
		mkdir("/var/run", 0755);
		FILE *pf = fopen("/var/run/nginx.pid", "w");
		if (pf) {
			fprintf(pf, "%d\n", getpid());
			fclose(pf);
		}
	} else {
		fprintf(stderr, "[mpm_event:notice] AH00489: Apache/2.4.39 (Unix) configured -- resuming normal operations\n");
		fprintf(stderr, "[core:notice] AH00094: Command line: 'httpd -D FOREGROUND'\n");
	}

	size_t title_room = 0;
	for (int i = 0; i < argc; i++)
		title_room += strlen(argv[i]) + 1;

	struct sigaction sa = {0};
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	while (!stopping) {
		pid_t p = fork();
		if (p < 0) {
			perror("fork");
			return 1;
		}
		if (p == 0)
			work(lfd, argv, title_room);
		worker = p;
		if (stopping)
			kill(p, SIGTERM);
		/* As PID 1 the master also reaps whatever gets reparented to it. */
		for (;;) {
			pid_t w = wait(NULL);
			if (w == p || (w < 0 && errno == ECHILD))
				break;
		}
		worker = 0;
		if (!stopping)
			sleep(1); /* respawn a crashed worker, not in a tight loop */
	}
	if (nginx)
		unlink("/var/run/nginx.pid");
	return 0;
}
