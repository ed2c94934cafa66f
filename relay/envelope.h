/*
 * envelope: the envelope of one transaction -- MAIL, one RCPT per
 * recipient, DATA -- sent over a greeted connection, the one way both
 * outbound clients do it (relay/relay.c for SMTP, relay/lmtp.c for LMTP).
 *
 * The commands go out in groups: at most RELAY_ENV_WINDOW of them when
 * the server offers PIPELINING (RFC 2920; an LMTP server must take it,
 * RFC 2033 4.1), else one. The next group goes out once every reply of
 * the last is in, and never after a MAIL that was not accepted; DATA is
 * not sent when no RCPT was accepted. A DATA sent in the same group as a
 * MAIL or RCPTs that then failed may still have been answered 354: the
 * caller ends that empty message (data_code says so).
 *
 * The caller builds each line, writes and reads on its own connection
 * (the timeouts given here, cut to its own deadline; the replies logged
 * and its state kept there) and judges each reply; the lines sent are
 * logged here (debug). The outcome is in the struct.
 * Lines must be one command without CRLF, at most line_max bytes: one
 * with CR or LF, or an empty one, is refused (RELAY_IO_ERROR, logged as
 * a bug: the parts were checked before). Threads: the caller's; nothing
 * shared. Out of memory aborts (lib/util.h).
 */
#ifndef RELAY_ENVELOPE_H
#define RELAY_ENVELOPE_H

#include <stddef.h>

#include "lib/buf.h"
#include "relay/relay_proto.h"

#define RELAY_ENV_WINDOW	100	/* commands per group with PIPELINING */

/* The commands, as the callbacks see them: a recipient is its index. */
enum { RELAY_ENV_MAIL = -1, RELAY_ENV_DATA = -2 };

#define RELAY_ENV_STOPPED	(-1)	/* judge said stop */

/* The caller's side: each callback gets relay_envelope.arg. */
struct relay_envelope_ops {
	/* The line of command cmd into line (reset before). */
	void (*build)(void *arg, long cmd, struct buf *line);
	/* Writes a group; reads the reply to cmd into *reply; each within
	 * timeout_ms (the caller may cut it to its own deadline) and returns
	 * a RELAY_IO_* code (relay/relay_conn.h). */
	int (*write)(void *arg, const char *p, size_t n, unsigned timeout_ms);
	int (*read)(void *arg, long cmd, unsigned timeout_ms);
	/* Judges the reply to cmd just read into *reply. A RCPT's (asked
	 * only while MAIL stands accepted): 1 accepted, 0 refused (the
	 * callback records why), -1 stop here (a 421). MAIL's and DATA's:
	 * 0 (their codes are kept below), or -1 stop here. */
	int (*judge)(void *arg, long cmd);
};

struct relay_envelope {
	/* Set by the caller. */
	const struct relay_envelope_ops *ops;
	void *arg;
	size_t window;			/* RELAY_ENV_WINDOW or 1 */
	size_t line_max;
	const struct relay_reply *reply;	/* where read() puts a reply */
	const char *peer;		/* "relay 192.0.2.1": debug logs */
	unsigned command_timeout_ms;	/* each write, each reply but DATA's */
	unsigned data_init_timeout_ms;	/* the reply to DATA */

	/* The outcome. */
	int mail_code;			/* 0: no reply */
	int data_code;			/* 0: DATA unanswered or not sent */
	int data_sent;
	size_t nacc;			/* recipients accepted */
	long at;			/* the command of a failure */
};

/*
 * Sends MAIL, RCPT for each of rcpts[0..n-1] (indexes for build and
 * rcpt), DATA. Returns RELAY_IO_OK when every reply due came in (the
 * codes tell the rest), RELAY_ENV_STOPPED when judge said stop, or the
 * RELAY_IO_* code of the write or read that failed (e->at names the
 * command: its group may have been sent in part).
 */
int relay_envelope_run(struct relay_envelope *e, const size_t *rcpts, size_t n);

#endif
