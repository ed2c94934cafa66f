/*
 * relay_conn: socket, TLS and deadline handling of one outbound SMTP
 * connection (see relay_conn.h). Every wait is a poll() bounded by the
 * caller's timeout; sockets are non-blocking throughout.
 */
#include "relay/relay_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/body_reader.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"

/* Input: one partial line (at most a reply line) plus one read. */
#define CONN_READ_CHUNK	 4096
#define CONN_IN_MAX	 (RELAY_REPLY_LINE_MAX + 2 + CONN_READ_CHUNK)
#define CONN_DATA_CHUNK	 65536	/* message bytes encoded per write */

struct relay_conn {
	int fd;
	gnutls_session_t tls;	/* NULL in plaintext */
	struct buf in;
	uint64_t bytes_out;
};

/* Waits for events on fd until deadline (monotonic ms): 1 ready,
 * 0 timed out, -1 error. */
static int
conn_wait(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int64_t left = deadline - time_mono_ms();
		int rc;

		if (left <= 0)
			return 0;
		rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

static void
conn_strerror(int e, char *err, size_t errsize)
{
	char tmp[128];
	const char *m = strerror_r(e, tmp, sizeof tmp);

	/* Postfix's words for the common cases. */
	if (e == ETIMEDOUT)
		m = "Connection timed out";
	if (snprintf(err, errsize, "%s", m) < 0 && errsize > 0)
		err[0] = '\0';
}

/* Connects fd to ss within deadline, then wraps it. */
static int
conn_connect(int fd, const struct sockaddr_storage *ss, socklen_t slen,
    int64_t deadline, struct relay_conn **c_r, char *err, size_t errsize)
{
	struct relay_conn *c;
	int rc, e = 0;

	rc = connect(fd, (const struct sockaddr *)ss, slen);
	if (rc < 0 && errno != EINPROGRESS && errno != EINTR) {
		e = errno;
	} else if (rc < 0) {
		socklen_t elen = sizeof e;
		rc = conn_wait(fd, POLLOUT, deadline);
		if (rc == 0)
			e = ETIMEDOUT;
		else if (rc < 0)
			e = errno;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
			e = errno;
	}
	if (e != 0) {
		conn_strerror(e, err, errsize);
		close(fd);
		return e == ETIMEDOUT ? RELAY_IO_TIMEOUT : RELAY_IO_ERROR;
	}
	c = xcalloc(1, sizeof *c);
	c->fd = fd;
	c->tls = NULL;
	buf_init(&c->in, CONN_IN_MAX);
	*c_r = c;
	return RELAY_IO_OK;
}

int
relay_conn_open(const struct dns_addr *addr, uint16_t port,
    unsigned timeout_ms, struct relay_conn **c_r, char *err, size_t errsize)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	int fd, io;
	int64_t deadline = time_mono_ms() + timeout_ms;

	*c_r = NULL;
	memset(&ss, 0, sizeof ss);
	if (addr->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr->bytes, 4);
		slen = sizeof *sin;
	} else if (addr->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr->bytes, 16);
		slen = sizeof *sin6;
	} else {
		conn_strerror(EAFNOSUPPORT, err, errsize);
		return RELAY_IO_ERROR;
	}
	fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		conn_strerror(errno, err, errsize);
		return RELAY_IO_ERROR;
	}
	io = conn_connect(fd, &ss, slen, deadline, c_r, err, errsize);
	/* Writes are whole commands, groups or data blocks already: no
	 * reason to wait for ACKs of the last one (Nagle). */
	if (io == RELAY_IO_OK)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
	return io;
}

int
relay_conn_open_unix(const char *path, unsigned timeout_ms,
    struct relay_conn **c_r, char *err, size_t errsize)
{
	struct sockaddr_storage ss;
	struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
	int fd;

	*c_r = NULL;
	memset(&ss, 0, sizeof ss);
	if (strlen(path) >= sizeof sun->sun_path) {
		conn_strerror(ENAMETOOLONG, err, errsize);
		return RELAY_IO_ERROR;
	}
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		conn_strerror(errno, err, errsize);
		return RELAY_IO_ERROR;
	}
	return conn_connect(fd, &ss, sizeof *sun, time_mono_ms() + timeout_ms,
	    c_r, err, errsize);
}

void
relay_conn_quit(struct relay_conn **cp, const char *name, unsigned timeout_ms)
{
	struct relay_reply *r;

	if (*cp == NULL)
		return;
	r = xmalloc(sizeof *r);
	log_debug("%s: > QUIT", name);
	if (relay_conn_write(*cp, "QUIT\r\n", 6, timeout_ms) == RELAY_IO_OK)
		(void)relay_conn_read_reply(*cp, r, timeout_ms);
	free(r);
	relay_conn_close(cp);
}

void
relay_conn_close(struct relay_conn **cp)
{
	struct relay_conn *c = *cp;

	if (c == NULL)
		return;
	if (c->tls != NULL) {
		/* Non-blocking: one try at close_notify, no wait for the
		 * peer's (SHUT_WR). */
		(void)gnutls_bye(c->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(c->tls);
	}
	close(c->fd);
	buf_free(&c->in);
	free(c);
	*cp = NULL;
}

/* After EAGAIN: waits until the socket is ready for what the last call
 * needs (with TLS, what GnuTLS asks for; else plain_ev). Returns
 * RELAY_IO_OK to try again, RELAY_IO_TIMEOUT or RELAY_IO_ERROR. */
static int
conn_await(struct relay_conn *c, short plain_ev, int64_t deadline)
{
	short ev = c->tls == NULL ? plain_ev :
	    gnutls_record_get_direction(c->tls) ? POLLOUT : POLLIN;
	int rc = conn_wait(c->fd, ev, deadline);

	return rc > 0 ? RELAY_IO_OK : rc == 0 ? RELAY_IO_TIMEOUT : RELAY_IO_ERROR;
}

int
relay_conn_write(struct relay_conn *c, const void *p, size_t n,
    unsigned timeout_ms)
{
	const char *s = p;
	size_t off = 0;
	int64_t deadline = time_mono_ms() + timeout_ms;

	while (off < n) {
		ssize_t w;
		int rc;

		if (c->tls != NULL) {
			w = gnutls_record_send(c->tls, s + off, n - off);
			if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
				if ((rc = conn_await(c, POLLOUT, deadline)) != RELAY_IO_OK)
					return rc;
				continue;
			}
			if (w < 0)
				return RELAY_IO_EOF;
		} else {
			w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)) {
				if ((rc = conn_await(c, POLLOUT, deadline)) != RELAY_IO_OK)
					return rc;
				continue;
			}
			if (w < 0)
				return (errno == EPIPE || errno == ECONNRESET) ?
				    RELAY_IO_EOF : RELAY_IO_ERROR;
		}
		off += (size_t)w;
		c->bytes_out += (uint64_t)w;
	}
	return RELAY_IO_OK;
}

/* Reads what is there (at least one byte) into c->in before deadline. */
static int
conn_fill(struct relay_conn *c, int64_t deadline)
{
	char tmp[CONN_READ_CHUNK];
	size_t room = c->in.max - c->in.len;

	if (room > sizeof tmp)
		room = sizeof tmp;
	if (room == 0)
		return RELAY_IO_PROTO;	/* cannot happen: the parser bounds lines */
	for (;;) {
		ssize_t r;
		int rc;

		if (c->tls != NULL) {
			r = gnutls_record_recv(c->tls, tmp, room);
			if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
				if ((rc = conn_await(c, POLLIN, deadline)) != RELAY_IO_OK)
					return rc;
				continue;
			}
			if (r < 0)
				return RELAY_IO_EOF;
		} else {
			r = recv(c->fd, tmp, room, 0);
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)) {
				if ((rc = conn_await(c, POLLIN, deadline)) != RELAY_IO_OK)
					return rc;
				continue;
			}
			if (r < 0)
				return RELAY_IO_EOF;
		}
		if (r == 0)
			return RELAY_IO_EOF;
		if (buf_append(&c->in, tmp, (size_t)r) < 0)
			return RELAY_IO_PROTO;
		return RELAY_IO_OK;
	}
}

int
relay_conn_read_reply(struct relay_conn *c, struct relay_reply *r,
    unsigned timeout_ms)
{
	int64_t deadline = time_mono_ms() + timeout_ms;

	relay_reply_init(r);
	/* Each round either parses buffered lines or reads new bytes; the
	 * deadline bounds the reads and the parser bounds the lines. */
	for (;;) {
		if (c->in.len > 0) {
			size_t used;
			int rc = relay_reply_feed(r, c->in.data, c->in.len,
			    &used);

			buf_consume(&c->in, used);
			if (rc == RELAY_REPLY_DONE)
				return RELAY_IO_OK;
			if (rc == RELAY_REPLY_ERROR)
				return RELAY_IO_PROTO;
		}
		int io = conn_fill(c, deadline);
		if (io == RELAY_IO_PROTO && r->error == NULL)
			r->error = "reply too long";
		if (io != RELAY_IO_OK)
			return io;
	}
}

/* The write timeout t, cut to what is left before deadline (at least 1
 * ms, so that a spent budget shows as a timeout). */
static unsigned
conn_ms(unsigned t, int64_t deadline)
{
	int64_t left = deadline - time_mono_ms();

	if (left < 1)
		return 1;
	return (int64_t)t < left ? t : (unsigned)left;
}

int
relay_conn_send_data(struct relay_conn *c, const struct body_reader *r,
    unsigned block_timeout_ms, int64_t deadline)
{
	struct relay_data_enc enc;
	struct buf out;
	int io = RELAY_IO_OK;

	relay_data_enc_init(&enc);
	buf_init(&out, 3 * CONN_DATA_CHUNK + 64);
	if (r->rewind(r->arg) != 0)
		io = RELAY_IO_BODY;
	while (io == RELAY_IO_OK) {
		const char *p;
		size_t len;

		if (r->next(r->arg, &p, &len) != 0) {
			io = RELAY_IO_BODY;
			break;
		}
		if (len == 0)
			break;
		while (io == RELAY_IO_OK && len > 0) {
			size_t n = len < CONN_DATA_CHUNK ? len : CONN_DATA_CHUNK;

			buf_reset(&out);
			if (relay_data_enc_feed(&enc, p, n, &out) < 0)
				io = RELAY_IO_ERROR;	/* cannot happen: out fits 3x */
			else
				io = relay_conn_write(c, out.data, out.len,
				    conn_ms(block_timeout_ms, deadline));
			p += n;
			len -= n;
		}
	}
	if (io == RELAY_IO_OK) {
		buf_reset(&out);
		if (relay_data_enc_finish(&enc, &out) < 0)
			io = RELAY_IO_ERROR;
		else
			io = relay_conn_write(c, out.data, out.len,
			    conn_ms(block_timeout_ms, deadline));
	}
	buf_free(&out);
	return io;
}

int
relay_conn_starttls(struct relay_conn *c,
    gnutls_certificate_credentials_t cred, const char *sni, int tls12,
    unsigned timeout_ms, char *err, size_t errsize)
{
	gnutls_session_t s;
	int64_t deadline = time_mono_ms() + timeout_ms;
	const char *epos;
	int rc;

	/* RFC 3207 5: nothing received before the handshake may be used. */
	buf_reset(&c->in);
	rc = gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (rc < 0)
		goto fail_noinit;
	if ((rc = tls12 ? gnutls_set_default_priority_append(s,
	    "-VERS-TLS1.1:-VERS-TLS1.0", &epos, 0) :
	    gnutls_set_default_priority(s)) < 0 ||
	    (rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred)) < 0)
		goto fail;
	if (sni != NULL && *sni != '\0' && strchr(sni, ':') == NULL &&
	    strspn(sni, "0123456789.") != strlen(sni))
		(void)gnutls_server_name_set(s, GNUTLS_NAME_DNS, sni,
		    strlen(sni));
	gnutls_transport_set_int(s, c->fd);
	/* Bounded: each round waits until the deadline at most, and a round
	 * that is not EAGAIN ends the loop or is a non-fatal alert. */
	for (int rounds = 0; rounds < 10000; rounds++) {
		rc = gnutls_handshake(s);
		if (rc == GNUTLS_E_SUCCESS) {
			c->tls = s;
			return RELAY_IO_OK;
		}
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
			short ev = gnutls_record_get_direction(s) ?
			    POLLOUT : POLLIN;
			int w = conn_wait(c->fd, ev, deadline);
			if (w == 0) {
				gnutls_deinit(s);
				if (snprintf(err, errsize, "handshake timed out") < 0)
					err[0] = '\0';
				return RELAY_IO_TIMEOUT;
			}
			if (w < 0)
				goto fail;
			continue;
		}
		if (gnutls_error_is_fatal(rc))
			goto fail;
	}
fail:
	gnutls_deinit(s);
fail_noinit:
	if (snprintf(err, errsize, "%s", gnutls_strerror(rc)) < 0 && errsize)
		err[0] = '\0';
	return RELAY_IO_ERROR;
}

size_t
relay_conn_buffered(const struct relay_conn *c)
{
	return c->in.len;
}

int
relay_conn_is_tls(const struct relay_conn *c)
{
	return c->tls != NULL;
}

gnutls_session_t
relay_conn_tls_session(const struct relay_conn *c)
{
	return c->tls;
}

void
relay_conn_local_addr(const struct relay_conn *c, char *out, size_t outsize)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	const void *a = NULL;

	if (outsize == 0)
		return;
	out[0] = '\0';
	if (getsockname(c->fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET)
		a = &((const struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
	if (a == NULL || inet_ntop(ss.ss_family, a, out, (socklen_t)outsize) == NULL)
		out[0] = '\0';
}

int
relay_conn_readable(struct relay_conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	if (c->in.len > 0)
		return 1;
	if (c->tls != NULL && gnutls_record_check_pending(c->tls) > 0)
		return 1;
	return poll(&pfd, 1, 0) != 0;
}

uint64_t
relay_conn_bytes_out(const struct relay_conn *c)
{
	return c->bytes_out;
}
