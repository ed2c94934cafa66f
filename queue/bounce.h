/*
 * bounce: delivery status notifications (RFC 3464 multipart/report, with
 * the DSN extension's rules of RFC 3461): failures (bounces), delay
 * notices and success notices, built as complete messages ready to queue
 * from the null sender.
 *
 * The original is read through a body_reader (lib/body_reader.h), in
 * pieces, and the report goes out through a sink, in pieces, so that a
 * RET=FULL bounce of a large message never holds it whole: the original
 * is read twice (once to choose the MIME boundary and the encoding, once
 * to copy it), its header section alone when only that is returned.
 *
 * Errors: bounce_build fails when the original cannot be read or the
 * sink gives up (allocation failures abort). Threads: reentrant.
 */
#ifndef QUEUE_BOUNCE_H
#define QUEUE_BOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/body_reader.h"
#include "queue/envelope.h"

/* The whole original goes into a failure report with RET=FULL up to this
 * size; a larger one gets its header section only. */
#define BOUNCE_FULL_MAX ((uint64_t)64 << 20)

enum bounce_kind {
	BOUNCE_FAILED,		/* Action: failed */
	BOUNCE_DELAYED,		/* Action: delayed */
	BOUNCE_DELIVERED,	/* Action: delivered (NOTIFY=SUCCESS, local) */
	BOUNCE_RELAYED,		/* Action: relayed (NOTIFY=SUCCESS, passed on
				 * to a server without DSN) */
	BOUNCE_EXPANDED,	/* Action: expanded (NOTIFY=SUCCESS, an alias
				 * of several targets, RFC 3461 5.2.7.3) */
};

/* One recipient to report on. */
struct bounce_rcpt {
	const char *addr;	/* Final-Recipient */
	const char *orcpt;	/* ORCPT as given ("rfc822;a@b"), or NULL */
	const char *status;	/* "5.1.1", "4.4.7", "2.0.0" */
	const char *remote_mta;	/* host name of the remote server, or NULL */
	const char *diag;	/* Diagnostic-Code text, e.g. "smtp; 550 5.1.1
				 * user unknown", or NULL */
	int64_t last_attempt;	/* unix seconds, 0 = none */
};

/* What we know of the original message. */
struct bounce_orig {
	const char *queue_id;	/* text form */
	const char *sender;	/* the envelope sender (the report goes there) */
	const char *envid;	/* ENVID or NULL */
	int ret;		/* DSN_RET_FULL: include the whole message;
				 * else its headers only */
	int64_t arrival;	/* unix seconds */
	const struct body_reader *body;	/* the original message, CRLF;
					 * NULL: none */
	int smtputf8;		/* the original needed SMTPUTF8 */
};

/* Where the report goes: write takes the next piece (borrowed for the
 * call); returns 0, or -1 to stop (bounce_build then fails). */
struct bounce_sink {
	int (*write)(void *arg, const char *p, size_t n);
	void *arg;
};

/*
 * Builds the report from MAILER-DAEMON@hostname to orig->sender about the
 * n recipients: a readable text part, a message/delivery-status part
 * (Reporting-MTA, Original-Envelope-Id, Arrival-Date; per recipient
 * Final-Recipient, Original-Recipient, Action, Status, Remote-MTA,
 * Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until for delays), then
 * the original headers (text/rfc822-headers) or, with RET=FULL, the whole
 * message (message/rfc822), into out (CRLF line ends). Returns 0, or -1
 * when the original could not be read or out refused a piece (what was
 * written then is not a report). With 0, *eightbit_r (if not NULL) says
 * whether the report holds 8-bit data: it must then go with BODY=8BITMIME
 * (RFC 6152 3).
 */
int bounce_build(enum bounce_kind kind, const char *hostname,
    const struct bounce_orig *orig, const struct bounce_rcpt *rcpts, size_t n,
    int64_t retry_until, const struct bounce_sink *out, int *eightbit_r);

#endif
