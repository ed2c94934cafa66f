/*
 * endpoint: filter daemon addresses and deadline-bounded socket I/O (see
 * endpoint.h).
 */
#include "filter/endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/util.h"

static int
endpoint_fail(char *err, size_t errsize, const char *why, const char *s)
{
	if (errsize > 0 && snprintf(err, errsize, "%s: %s", why, s) < 0)
		err[0] = '\0';
	return -1;
}

int
filter_endpoint_parse(const char *s, struct filter_endpoint *ep,
    char *err, size_t errsize)
{
	memset(ep, 0, sizeof *ep);
	if (str_copy(ep->text, s, sizeof ep->text) != 0)
		return endpoint_fail(err, errsize, "endpoint too long", s);
	if (strncmp(s, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ep->addr;
		const char *path = s + 5;

		if (path[0] != '/')
			return endpoint_fail(err, errsize,
			    "unix: needs an absolute path", s);
		if (strlen(path) >= sizeof sun->sun_path)
			return endpoint_fail(err, errsize, "socket path too long", s);
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, path, strlen(path) + 1);
		ep->family = AF_UNIX;
		ep->addrlen = sizeof *sun;
		return 0;
	}
	if (strncmp(s, "inet:", 5) == 0) {
		char host[64];
		const char *h = s + 5, *colon, *portp;
		char *end;
		unsigned long port;
		size_t hlen;

		if (h[0] == '[') {
			const char *close = strchr(h, ']');
			if (close == NULL || close[1] != ':')
				return endpoint_fail(err, errsize,
				    "expected inet:[IPv6]:port", s);
			h++;
			hlen = (size_t)(close - h);
			portp = close + 2;
		} else {
			colon = strrchr(h, ':');
			if (colon == NULL)
				return endpoint_fail(err, errsize,
				    "expected inet:host:port", s);
			hlen = (size_t)(colon - h);
			portp = colon + 1;
		}
		if (hlen == 0 || hlen >= sizeof host)
			return endpoint_fail(err, errsize, "bad host", s);
		memcpy(host, h, hlen);
		host[hlen] = '\0';
		errno = 0;
		port = strtoul(portp, &end, 10);
		if (portp[0] < '0' || portp[0] > '9' || *end != '\0' ||
		    errno != 0 || port == 0 || port > 65535)
			return endpoint_fail(err, errsize, "bad port", s);
		if (strcmp(host, "localhost") == 0)
			str_copy(host, "127.0.0.1", sizeof host);
		{
			struct sockaddr_in *sin = (struct sockaddr_in *)&ep->addr;
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ep->addr;

			if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
				sin->sin_family = AF_INET;
				sin->sin_port = htons((uint16_t)port);
				ep->family = AF_INET;
				ep->addrlen = sizeof *sin;
				return 0;
			}
			memset(&ep->addr, 0, sizeof ep->addr);
			if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
				sin6->sin6_family = AF_INET6;
				sin6->sin6_port = htons((uint16_t)port);
				ep->family = AF_INET6;
				ep->addrlen = sizeof *sin6;
				return 0;
			}
		}
		return endpoint_fail(err, errsize,
		    "host must be an IP address or localhost", s);
	}
	return endpoint_fail(err, errsize, "expected unix:/path or inet:host:port", s);
}

/* Readable once filter_stop_all was called (an eventfd; -1 if none could
 * be made: then waits end only at their deadlines). */
static pthread_once_t endpoint_once = PTHREAD_ONCE_INIT;
static int endpoint_stop_fd = -1;

static void
endpoint_init(void)
{
	endpoint_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

void
filter_stop_all(void)
{
	uint64_t one = 1;

	pthread_once(&endpoint_once, endpoint_init);
	if (endpoint_stop_fd >= 0 && write(endpoint_stop_fd, &one, sizeof one) < 0)
		return;	/* the counter is set already */
}

int
filter_wait(int fd, short events, int64_t deadline)
{
	pthread_once(&endpoint_once, endpoint_init);
	for (;;) {
		struct pollfd pfd[2] = { { .fd = fd, .events = events },
			{ .fd = endpoint_stop_fd, .events = POLLIN } };
		int64_t left = deadline - time_mono_ms();
		int rc;

		if (left <= 0)
			return 0;
		rc = poll(pfd, endpoint_stop_fd >= 0 ? 2 : 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0 && (pfd[1].revents & POLLIN)) {
			errno = ECANCELED;
			return -1;
		}
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

int
filter_connect_start(const struct filter_endpoint *ep, int *pending_r)
{
	int fd, rc, e;

	*pending_r = 0;
	fd = socket(ep->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	rc = connect(fd, (const struct sockaddr *)&ep->addr, ep->addrlen);
	if (rc < 0 && errno != EINPROGRESS && errno != EINTR &&
	    errno != EAGAIN) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	*pending_r = rc < 0;
	if (rc == 0 && ep->family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
	return fd;
}

int
filter_connect_finish(int fd, int family)
{
	int e = 0;
	socklen_t elen = sizeof e;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
		return -1;
	if (e != 0) {
		errno = e;
		return -1;
	}
	if (family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
	return 0;
}

int
filter_connect(const struct filter_endpoint *ep, int64_t deadline)
{
	int pending, fd = filter_connect_start(ep, &pending), rc, e;

	if (fd < 0 || !pending)
		return fd;
	rc = filter_wait(fd, POLLOUT, deadline);
	if (rc > 0 && filter_connect_finish(fd, ep->family) == 0)
		return fd;
	e = rc == 0 ? ETIMEDOUT : errno;
	close(fd);
	errno = e;
	return -1;
}

int
filter_write_all(int fd, const void *p, size_t n, int64_t deadline)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w > 0) {
			c += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = filter_wait(fd, POLLOUT, deadline);
			if (rc == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			if (rc < 0)
				return -1;
			continue;
		}
		if (w == 0)
			errno = EPIPE;
		return -1;
	}
	return 0;
}

ssize_t
filter_read_some(int fd, void *p, size_t n, int64_t deadline)
{
	for (;;) {
		ssize_t r = recv(fd, p, n, 0);

		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int rc = filter_wait(fd, POLLIN, deadline);
			if (rc == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			if (rc < 0)
				return -1;
			continue;
		}
		return -1;
	}
}

int
filter_conn_idle_ok(int fd)
{
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}
