/*
 * session_io: socket and TLS I/O of one session, and session_io_next, the
 * one place that decides what the session waits for (contract in
 * session_io.h).
 */
#include "server/session_io.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"

#define TLS_RECORD_MAX 16384
#define TLS_SOFT_ERRORS_MAX 8	/* non-fatal alerts in a row, then give up */

void
session_io_init(struct session_io *io, int fd)
{
	memset(io, 0, sizeof *io);
	io->fd = fd;
	io->readable = 1;
	buf_init(&io->in, SESSION_IO_IN_MAX);
	buf_init(&io->out, SESSION_IO_OUT_MAX);
}

void
session_io_event(struct session_io *io, uint32_t events)
{
	if (events & EPOLLIN)
		io->readable = 1;
	/* We never shut our side down before the close, so a hang-up means
	 * the connection is gone (reset), as does an error. */
	if (events & (EPOLLERR | EPOLLHUP))
		io->broken = 1;
}

static int
session_io_tls_pending(const struct session_io *io)
{
	return io->tls_active && gnutls_record_check_pending(io->tls) > 0;
}

size_t
session_io_read(struct session_io *io)
{
	char tmp[TLS_RECORD_MAX];
	size_t total = 0;
	int soft_errors = 0;

	if (io->fd < 0 || io->broken || io->peer_closed || io->handshaking)
		return 0;
	if (!io->readable && !session_io_tls_pending(io))
		return 0;
	if (io->in_off > 0) {
		buf_consume(&io->in, io->in_off);
		io->in_off = 0;
	}
	while (io->in.len < SESSION_IO_IN_MAX) {
		size_t room = SESSION_IO_IN_MAX - io->in.len;
		ssize_t n;

		if (room > sizeof tmp)
			room = sizeof tmp;
		if (io->tls_active) {
			n = gnutls_record_recv(io->tls, tmp, room);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
				io->readable = 0;
				break;
			}
			/* close_notify, or a FIN without it: the end of
			 * input either way (SMTP ends its data explicitly). */
			if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
				io->peer_closed = 1;
				break;
			}
			if (n < 0) {
				/* A non-fatal alert: go on, but not forever. */
				if (!gnutls_error_is_fatal((int)n) &&
				    ++soft_errors < TLS_SOFT_ERRORS_MAX)
					continue;
				io->broken = 1;
				break;
			}
		} else {
			n = recv(io->fd, tmp, room, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				io->readable = 0;
				break;
			}
			if (n < 0) {
				io->broken = 1;
				break;
			}
			if (n == 0) {
				io->peer_closed = 1;
				break;
			}
		}
		buf_append(&io->in, tmp, (size_t)n);
		total += (size_t)n;
		if (!io->tls_active && (size_t)n < room) {
			/* Drained; epoll (level-triggered) says when more comes. */
			io->readable = 0;
			break;
		}
	}
	return total;
}

void
session_io_discard_input(struct session_io *io)
{
	io->in_off = io->in.len;
}

void
session_io_flush(struct session_io *io)
{
	while ((io->out.len > 0 || io->tls_pending) && !io->broken && io->fd >= 0) {
		ssize_t n;

		if (io->tls_active) {
			if (io->tls_pending) {
				/* Resume the record that got E_AGAIN. */
				n = gnutls_record_send(io->tls, NULL, 0);
			} else {
				size_t len = io->out.len < TLS_RECORD_MAX ?
				    io->out.len : TLS_RECORD_MAX;

				n = gnutls_record_send(io->tls, io->out.data, len);
				if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
					io->tls_pending = len;
			}
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				return;
			io->tls_pending = 0;
			if (n < 0) {
				io->broken = 1;
				return;
			}
		} else {
			n = send(io->fd, io->out.data, io->out.len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (n <= 0) {
				io->broken = 1;
				return;
			}
		}
		buf_consume(&io->out, (size_t)n);
	}
}

int
session_io_start_tls(struct session_io *io, struct tls_creds *c)
{
	gnutls_session_t tls = tls_server_new(c, io->fd);

	if (tls == NULL)
		return -1;
	io->tls = tls;
	io->handshaking = 1;
	return 0;
}

int
session_io_handshake(struct session_io *io, const char *peer)
{
	int r;

	/* After STARTTLS the 220 leaves in clear before any TLS byte. */
	if (!io->handshaking || io->broken || io->out.len > 0)
		return 0;
	r = tls_handshake(io->tls);
	if (r == GNUTLS_E_AGAIN)
		return 0;
	if (r < 0) {
		log_info("TLS handshake failed from [%s]: %s", peer, gnutls_strerror(r));
		/* Tell the client why (e.g. protocol_version) rather than
		 * vanish; best effort on a non-blocking socket. */
		gnutls_alert_send_appropriate(io->tls, r);
		io->broken = 1;
		return -1;
	}
	io->handshaking = 0;
	io->tls_active = 1;
	io->readable = 1;
	return 1;
}

enum session_io_next
session_io_next(struct session_io *io, enum session_io_mode mode,
    uint32_t *events_r)
{
	int out_pending = io->out.len > 0 || io->tls_pending;

	*events_r = 0;
	if (io->broken || io->fd < 0)
		return SESSION_IO_END;
	if (io->handshaking) {
		if (out_pending)
			*events_r = EPOLLOUT;
		else
			*events_r = tls_wants_write(io->tls) ? EPOLLOUT : EPOLLIN;
		return SESSION_IO_WAIT;
	}
	if (out_pending)
		*events_r = EPOLLOUT;
	switch (mode) {
	case SESSION_IO_CLOSE:
		return out_pending ? SESSION_IO_WAIT : SESSION_IO_END;
	case SESSION_IO_HELD:
	case SESSION_IO_STAGING:
		/* The commit, job, timer or record coming back calls
		 * again; the peer may have closed its side meanwhile, its
		 * replies are still due. Bounded memory: no read until then. */
		return SESSION_IO_WAIT;
	case SESSION_IO_INPUT:
	default:
		break;
	}
	/* A client that does not read its replies is not read either. */
	if (io->out.len >= SESSION_IO_OUT_HIGH)
		return SESSION_IO_WAIT;
	if (io->in_off < io->in.len)
		return SESSION_IO_RUN;
	if (io->peer_closed)
		return out_pending ? SESSION_IO_WAIT : SESSION_IO_END;
	/* Decrypted bytes inside GnuTLS make no epoll event. */
	if (session_io_tls_pending(io))
		return SESSION_IO_RUN;
	if (io->readable)
		return SESSION_IO_RUN;
	*events_r |= EPOLLIN;
	return SESSION_IO_WAIT;
}

void
session_io_close(struct session_io *io)
{
	if (io->fd < 0)
		return;
	if (io->tls != NULL) {
		if (io->tls_active && !io->broken)
			gnutls_bye(io->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(io->tls);
		io->tls = NULL;
	}
	if (!io->broken) {
		/* Unread input would turn the close into a reset that can
		 * destroy our last reply before the client reads it. */
		shutdown(io->fd, SHUT_WR);
		for (int i = 0; i < 16; i++) {
			char junk[4096];
			if (recv(io->fd, junk, sizeof junk, MSG_DONTWAIT) <= 0)
				break;
		}
	}
	close(io->fd);		/* also leaves the epoll set */
	io->fd = -1;
	io->tls_active = 0;
	io->handshaking = 0;
	buf_free(&io->in);
	buf_free(&io->out);
}
