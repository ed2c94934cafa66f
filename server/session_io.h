/*
 * session_io: the connection under one inbound SMTP session: the socket,
 * TLS on it (GnuTLS, non-blocking), the input and output buffers, and the
 * one decision of what the session waits for next (session_io_next).
 *
 * The session's state machine parses io->in from io->in_off on, appends
 * its replies to io->out, and after each round asks session_io_next
 * whether it can run again at once, must wait for socket events (maybe
 * none: a commit, an off-loop job or a timer wakes it then), or is over.
 * Every reason to wait is weighed there and nowhere else: bytes decrypted
 * but still inside GnuTLS (which epoll cannot see), output not yet sent
 * (a TLS record that got E_AGAIN included), a session that holds its input
 * (commit or job in flight, or a message whose buffers are all on their
 * way to the queue), room in the input buffer, and a peer that has
 * closed its side (EOF or close_notify): its buffered input is still
 * handled and answered before the session ends.
 *
 * Errors: a failed read or write marks the connection broken (nothing can
 * reach the peer any more); the next session_io_next says END. Nothing
 * here logs above debug level except handshake failures (info).
 * Threads: a session_io belongs to its session's worker thread.
 */
#ifndef SERVER_SESSION_IO_H
#define SERVER_SESSION_IO_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#include "lib/buf.h"
#include "server/tls.h"

#define SESSION_IO_IN_MAX (64 * 1024)	/* received bytes held unparsed */
#define SESSION_IO_OUT_HIGH (64 * 1024)	/* stop parsing while more is unsent */
#define SESSION_IO_OUT_MAX (1024 * 1024)	/* replies queued at most */

struct session_io {
	int fd;				/* -1 once closed */
	gnutls_session_t tls;		/* NULL in clear */
	int tls_active;			/* handshake completed */
	int handshaking;		/* TLS started, handshake not done */
	struct buf in;			/* received; unparsed from in_off on */
	size_t in_off;
	struct buf out;			/* replies not yet sent */
	int peer_closed;		/* EOF or close_notify: no more input */
	int broken;			/* I/O error: nothing more can be sent */
	/* internal */
	size_t tls_pending;		/* length of a record send that got E_AGAIN */
	int readable;			/* input may be waiting in the socket */
	uint32_t watching;		/* epoll interest set now */
};

/* What the state machine does with its input now. */
enum session_io_mode {
	SESSION_IO_INPUT,	/* it parses commands or message content */
	SESSION_IO_HELD,	/* it waits for a commit, a job or a timer;
				 * input stays unread until then */
	SESSION_IO_STAGING,	/* message content is coming, but every
				 * buffer of the message is with the
				 * committer: input stays unread (the
				 * socket's window fills and the client
				 * waits) until one comes back */
	SESSION_IO_CLOSE,	/* send what is queued, then end */
};

/* What the session does next. */
enum session_io_next {
	SESSION_IO_RUN,		/* progress is possible now: run again */
	SESSION_IO_WAIT,	/* wait for the events given (maybe none) */
	SESSION_IO_END,		/* nothing more can happen: close */
};

/* Takes over fd (non-blocking). */
void session_io_init(struct session_io *io, int fd);

/* Notes what epoll reported (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP). An
 * error or hang-up marks the connection broken. */
void session_io_event(struct session_io *io, uint32_t events);

/* Reads what the input buffer has room for, when input may be waiting
 * (an event said so, or TLS holds decrypted bytes). Parsed input (before
 * in_off) is dropped first. Returns the number of bytes added; sets
 * peer_closed at EOF or close_notify, broken on an error. */
size_t session_io_read(struct session_io *io);

/* Drops every unparsed input byte (plaintext pipelined after STARTTLS). */
void session_io_discard_input(struct session_io *io);

/* Sends what it can of io->out. Sets broken when the peer is gone. */
void session_io_flush(struct session_io *io);

/* Starts TLS on the connection with credentials c: at once for implicit
 * TLS, or after STARTTLS once its 220 is queued (the handshake begins
 * when that reply has left in clear). Returns 0, or -1 when no TLS session
 * could be made (nothing changed). */
int session_io_start_tls(struct session_io *io, struct tls_creds *c);

/* Advances a handshake in progress: 1 when it completed just now, 0 when
 * it waits for the socket, -1 when it failed (an alert was sent, logged
 * with peer; the connection is broken). */
int session_io_handshake(struct session_io *io, const char *peer);

/*
 * The decision: given what the state machine does now (mode), tells what
 * comes next and, for SESSION_IO_WAIT, the epoll events to watch in
 * *events_r (0: none; a commit, job or timer will call again).
 */
enum session_io_next session_io_next(struct session_io *io,
    enum session_io_mode mode, uint32_t *events_r);

/* Ends TLS (close_notify, best effort), half-closes, drains a little
 * unread input (so the close is not a reset that destroys our last
 * reply) and closes the socket. Idempotent. Frees the buffers. */
void session_io_close(struct session_io *io);

#endif
