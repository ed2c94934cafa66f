/*
 * endpoint: where a filter daemon listens ("unix:/path", "inet:host:port")
 * and the blocking, deadline-bounded socket I/O that the milter, policy and
 * Dovecot SASL clients share.
 *
 * An endpoint names a numeric address only: "inet:127.0.0.1:8891",
 * "inet:[::1]:8891" (IPv6 in brackets) or "inet:localhost:8891" (taken as
 * 127.0.0.1). No name is ever looked up,
 * so no DNS query leaves for a filter (every lookup goes to dns_server).
 *
 * Every wait is a poll() bounded by a deadline on CLOCK_MONOTONIC in
 * milliseconds (lib/util.h time_mono_ms); sockets are non-blocking and
 * close-on-exec; writes use MSG_NOSIGNAL, so a peer that went away gives
 * EPIPE, never SIGPIPE.
 *
 * Errors: functions return -1 and set errno (ETIMEDOUT when the deadline
 * passed, ECANCELED after filter_stop_all); nothing is logged here.
 * Threads: reentrant; a socket belongs to one thread at a time. The calls
 * block up to their deadline: call them from a pool thread, never from a
 * session worker's event loop.
 */
#ifndef FILTER_ENDPOINT_H
#define FILTER_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define FILTER_ENDPOINT_TEXT_MAX 128	/* the configured text, kept for logs */

struct filter_endpoint {
	int family;			/* AF_UNIX, AF_INET or AF_INET6 */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[FILTER_ENDPOINT_TEXT_MAX];	/* as configured */
};

/*
 * Parses "unix:/absolute/path" (at most 107 bytes of path) or
 * "inet:ADDR:PORT" with ADDR an IPv4 literal, "[IPv6]" or "localhost" and
 * PORT 1..65535. Returns 0, or -1 with a reason in err (always
 * NUL-terminated when errsize > 0).
 */
int filter_endpoint_parse(const char *s, struct filter_endpoint *ep,
    char *err, size_t errsize);

/* Connects to ep, waiting until deadline. Returns the socket (non-blocking;
 * TCP_NODELAY on TCP), or -1 with errno (ETIMEDOUT, ECONNREFUSED, ENOENT
 * for a missing Unix socket, ...). */
int filter_connect(const struct filter_endpoint *ep, int64_t deadline);

/* The same in two steps, for an event loop: filter_connect_start never
 * waits; it returns the socket (or -1 with errno) and sets *pending_r
 * when the connect is still under way: once the socket is writable,
 * filter_connect_finish(fd, ep->family) says how it went (0, or -1 with
 * errno; the caller closes fd). */
int filter_connect_start(const struct filter_endpoint *ep, int *pending_r);
int filter_connect_finish(int fd, int family);
/* Writes all n bytes of p, waiting until deadline. Returns 0, or -1 with
 * errno (ETIMEDOUT, EPIPE, ...); part of p may have been written. */
int filter_write_all(int fd, const void *p, size_t n, int64_t deadline);

/* Reads at most n (> 0) bytes into p, waiting until deadline for the first
 * byte. Returns the count read, 0 at end of stream, or -1 with errno
 * (ETIMEDOUT, ECONNRESET, ...). */
ssize_t filter_read_some(int fd, void *p, size_t n, int64_t deadline);

/* Waits for events (POLLIN, POLLOUT) on fd until deadline: 1 ready, 0
 * timed out, -1 error (ECANCELED: filter_stop_all). */
int filter_wait(int fd, short events, int64_t deadline);
/* Is fd's peer still there with nothing unread: 1 yes, 0 it closed or sent
 * something unasked (the connection must not be reused). Does not wait. */
int filter_conn_idle_ok(int fd);

/* The daemon stops: every wait above, in any thread, now and later, ends
 * at once with -1 and errno ECANCELED (the clients then answer their
 * default action or temporary failure), so no pool thread waits out a
 * hung filter daemon's timeout at shutdown. Irreversible; any thread. */
void filter_stop_all(void);

#endif
