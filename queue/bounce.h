/*
 * bounce: delivery status notifications (RFC 3464 multipart/report, with
 * the DSN extension's rules of RFC 3461): failures (bounces), delay
 * notices and success notices, built as complete messages ready to queue
 * from the null sender.
 *
 * Ownership: bounce_build returns a heap body (CRLF line ends) the caller
 * frees. Errors: none beyond allocation (which aborts).
 * Threads: reentrant.
 */
#ifndef QUEUE_BOUNCE_H
#define QUEUE_BOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"

enum bounce_kind {
	BOUNCE_FAILED,		/* Action: failed */
	BOUNCE_DELAYED,		/* Action: delayed */
	BOUNCE_DELIVERED,	/* Action: delivered (NOTIFY=SUCCESS, local) */
	BOUNCE_RELAYED,		/* Action: relayed (NOTIFY=SUCCESS, passed on
				 * to a server without DSN) */
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
	const char *body;	/* the original message, CRLF */
	size_t body_len;
	int smtputf8;		/* the original needed SMTPUTF8 */
};

/*
 * Builds the report from MAILER-DAEMON@hostname to orig->sender about the
 * n recipients: a readable text part, a message/delivery-status part
 * (Reporting-MTA, Original-Envelope-Id, Arrival-Date; per recipient
 * Final-Recipient, Original-Recipient, Action, Status, Remote-MTA,
 * Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until for delays), then
 * the original headers (text/rfc822-headers) or, with RET=FULL, the whole
 * message (message/rfc822). Returns the body; *len_r its length.
 */
char *bounce_build(enum bounce_kind kind, const char *hostname,
    const struct bounce_orig *orig, const struct bounce_rcpt *rcpts, size_t n,
    int64_t retry_until, size_t *len_r);

#endif
