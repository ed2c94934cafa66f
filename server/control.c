/*
 * control: the daemon's control socket (control.h).
 */
#include "server/control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

struct control {
	int fd;			/* the listening socket */
	int stop_pipe[2];	/* written to stop the thread */
	char path[sizeof ((struct sockaddr_un *)0)->sun_path];
	control_handler *fn;
	void *arg;
	pthread_t thread;
};

/* n without the line end (LF or CRLF) of p[0..n). */
static size_t
line_len(const char *p, size_t n)
{
	if (n > 0 && p[n - 1] == '\n')
		n--;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

enum control_request
control_parse_request(const char *p, size_t n)
{
	static const struct {
		const char *text;
		enum control_request req;
	} reqs[] = {
		{ "sessions", CONTROL_SESSIONS },
		{ "sessions json", CONTROL_SESSIONS_JSON },
	};
	char arg[CONTROL_ARG_MAX];

	n = line_len(p, n);
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
		if (strlen(reqs[i].text) == n && memcmp(reqs[i].text, p, n) == 0)
			return reqs[i].req;
	control_parse_arg(p, n, arg);
	return arg[0] != '\0' ? CONTROL_TLS_REPORT_SEND : CONTROL_BAD;
}

#define SEND_PREFIX "tls-report send "

void
control_parse_arg(const char *p, size_t n, char arg[CONTROL_ARG_MAX])
{
	static const char word[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-_";
	size_t pl = strlen(SEND_PREFIX), w1, w2;

	arg[0] = '\0';
	n = line_len(p, n);
	if (n <= pl || n - pl >= CONTROL_ARG_MAX || memcmp(p, SEND_PREFIX, pl) != 0)
		return;
	p += pl;
	n -= pl;
	/* Exactly two words: the span stops at anything else, a NUL too. */
	for (w1 = 0; w1 < n && strchr(word, p[w1]) != NULL && p[w1] != '\0'; w1++)
		;
	if (w1 == 0 || w1 + 1 >= n || p[w1] != ' ')
		return;
	for (w2 = w1 + 1; w2 < n && strchr(word, p[w2]) != NULL && p[w2] != '\0'; w2++)
		;
	if (w2 != n)
		return;
	memcpy(arg, p, n);
	arg[n] = '\0';
}

static int
control_path(const char *queue_dir, char *out, size_t outsize, char *err, size_t errsize)
{
	if ((size_t)snprintf(out, outsize, "%s/%s", queue_dir, CONTROL_SOCKET) >= outsize) {
		snprintf(err, errsize, "control socket: %s/%s: path too long for a "
		    "Unix socket", queue_dir, CONTROL_SOCKET);
		return -1;
	}
	return 0;
}

/* Waits until fd is ready for events or the deadline (monotonic ms)
 * passes. Returns 1 ready, 0 timed out, -1 error. */
static int
control_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left = deadline - time_mono_ms();
	int rc;

	if (left <= 0)
		return 0;
	rc = poll(&p, 1, (int)left);
	return rc < 0 && errno == EINTR ? 0 : rc;
}

/* Writes all of p to fd by the deadline. Returns 0 or -1. */
static int
control_send(int fd, const char *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t w;

		if (control_wait(fd, POLLOUT, deadline) <= 0)
			return -1;
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One client: its request line, the answer, close. */
static void
control_serve(struct control *c, int fd)
{
	int64_t deadline = time_mono_ms() + CONTROL_TIMEOUT_MS;
	char req[CONTROL_REQUEST_MAX], arg[CONTROL_ARG_MAX];
	size_t n = 0;
	enum control_request r = CONTROL_BAD;
	char *answer = NULL;
	size_t alen = 0;
	FILE *out;

	while (n < sizeof req && memchr(req, '\n', n) == NULL) {
		ssize_t got;

		if (control_wait(fd, POLLIN, deadline) <= 0)
			break;
		got = recv(fd, req + n, sizeof req - n, MSG_DONTWAIT);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	if (memchr(req, '\n', n) != NULL)
		r = control_parse_request(req, n);
	if (r == CONTROL_BAD) {
		log_debug("control: unknown request");
		(void)control_send(fd, "error: unknown request\n", 23, deadline);
		return;
	}
	if ((out = open_memstream(&answer, &alen)) == NULL) {
		(void)control_send(fd, "error: out of memory\n", 21, deadline);
		return;
	}
	control_parse_arg(req, n, arg);
	c->fn(r, arg, out, c->arg);
	if (fclose(out) != 0 || alen > CONTROL_ANSWER_MAX)
		(void)control_send(fd, "error: the answer is too large\n", 31, deadline);
	else if (control_send(fd, answer, alen, deadline) < 0)
		log_debug("control: the client went away");
	free(answer);
}

static void *
control_main(void *arg)
{
	struct control *c = arg;

	pthread_setname_np(pthread_self(), "control");
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->fd, .events = POLLIN },
			{ .fd = c->stop_pipe[0], .events = POLLIN },
		};
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("control: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if ((fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		control_serve(c, fd);
		close(fd);
	}
	return NULL;
}

struct control *
control_start(const char *queue_dir, control_handler *fn, void *arg, char *err,
    size_t errsize)
{
	struct control *c = xcalloc(1, sizeof *c);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old;

	c->fd = c->stop_pipe[0] = c->stop_pipe[1] = -1;
	c->fn = fn;
	c->arg = arg;
	if (control_path(queue_dir, c->path, sizeof c->path, err, errsize) < 0)
		goto fail;
	str_copy(sun.sun_path, c->path, sizeof sun.sun_path);
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    pipe2(c->stop_pipe, O_CLOEXEC) != 0) {
		snprintf(err, errsize, "control socket: %s", strerror(errno));
		goto fail;
	}
	/* A socket left by a daemon that died; the queue's lock guarantees
	 * that no other daemon runs on this queue_dir. */
	(void)unlink(c->path);
	old = umask(0077);
	if (bind(c->fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		umask(old);
		snprintf(err, errsize, "control socket %s: %s", c->path, strerror(errno));
		goto fail;
	}
	umask(old);
	if (listen(c->fd, 8) != 0 || pthread_create(&c->thread, NULL, control_main, c) != 0) {
		snprintf(err, errsize, "control socket %s: cannot listen", c->path);
		(void)unlink(c->path);
		goto fail;
	}
	return c;
fail:
	if (c->fd >= 0)
		close(c->fd);
	if (c->stop_pipe[0] >= 0) {
		close(c->stop_pipe[0]);
		close(c->stop_pipe[1]);
	}
	free(c);
	return NULL;
}

void
control_stop(struct control **cp)
{
	struct control *c = *cp;
	ssize_t w;

	*cp = NULL;
	if (c == NULL)
		return;
	w = write(c->stop_pipe[1], "x", 1);
	(void)w;
	pthread_join(c->thread, NULL);
	(void)unlink(c->path);
	close(c->fd);
	close(c->stop_pipe[0]);
	close(c->stop_pipe[1]);
	free(c);
}

int
control_ask(const char *queue_dir, const char *req, FILE *out, char *err, size_t errsize)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int64_t deadline = time_mono_ms() + 2 * CONTROL_TIMEOUT_MS;
	char line[CONTROL_REQUEST_MAX], buf[65536];
	size_t total = 0;
	int fd, n;

	if (control_path(queue_dir, sun.sun_path, sizeof sun.sun_path, err, errsize) < 0)
		return -1;
	n = snprintf(line, sizeof line, "%s\n", req);
	if (n < 0 || (size_t)n >= sizeof line) {
		snprintf(err, errsize, "request too long");
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		snprintf(err, errsize, "%s: %s (is the daemon running?)", sun.sun_path,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (control_send(fd, line, (size_t)n, deadline) < 0) {
		snprintf(err, errsize, "%s: cannot send the request", sun.sun_path);
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t got;

		if (control_wait(fd, POLLIN, deadline) <= 0) {
			snprintf(err, errsize, "%s: no answer in time", sun.sun_path);
			close(fd);
			return -1;
		}
		got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got <= 0)
			break;
		if (total == 0 && got >= 7 && memcmp(buf, "error: ", 7) == 0) {
			const char *nl = memchr(buf + 7, '\n', (size_t)got - 7);
			int len = nl ? (int)(nl - (buf + 7)) : (int)(got - 7);

			snprintf(err, errsize, "the daemon says: %.*s", len, buf + 7);
			close(fd);
			return -1;
		}
		if ((total += (size_t)got) > CONTROL_ANSWER_MAX) {
			snprintf(err, errsize, "%s: the answer is too large", sun.sun_path);
			close(fd);
			return -1;
		}
		fwrite(buf, 1, (size_t)got, out);
	}
	close(fd);
	return 0;
}
