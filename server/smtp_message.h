/*
 * smtp_message: assembly of one inbound message, from the DATA or first
 * BDAT command to the end of data: our Received header (RFC 5321 4.4),
 * the content as it arrives (through smtp_data_parser: dot-stuffing
 * undone, bare CR/LF and NUL caught), the end-of-data checks, and for
 * message submission (RFC 6409 8.2, 8.3) the Date and Message-ID that a
 * message lacks.
 *
 * The content is taken in pieces as the client sends it and scanned once,
 * as it passes: the facts the end-of-data checks need (the Received fields
 * for the hop limit, whether Date and Message-ID exist, where the header
 * section ends) are known by then without a second look at the bytes, and
 * the submission headers go in at the end of the header section as soon
 * as that end passes. So a message need not be whole in memory to be
 * checked; the bytes before the scan point are final.
 *
 * Limits: at most info->max_size content bytes (then 552 at the end); the
 * header facts are kept in fixed-size state.
 * Errors: smtp_message_finish gives the reply for a refused message.
 * Threads: a message belongs to one session (one thread).
 */
#ifndef SERVER_SMTP_MESSAGE_H
#define SERVER_SMTP_MESSAGE_H

#include <stddef.h>
#include <time.h>

#include "queue/envelope.h"
#include "server/smtp_parser.h"

/* Received fields allowed, ours included, as Postfix's hopcount_limit. */
#define SMTP_MESSAGE_MAX_HOPS 50

/* What the Received header says and how the content is read. The strings
 * are copied; NULL where marked optional. */
struct smtp_message_info {
	queue_id_t id;
	const char *helo;		/* the EHLO/HELO name */
	const char *client_ip;		/* numeric, "::1" or "192.0.2.1" */
	const char *client_name;	/* forward-confirmed name; optional */
	const char *hostname;		/* our name */
	const char *protocol;		/* "ESMTPSA" etc. (RFC 3848) */
	const char *tls;		/* TLS description; optional */
	const char *rcpt;		/* the only recipient; optional */
	int submission;			/* add a missing Date and Message-ID */
	size_t max_size;		/* content bytes allowed */
	enum smtp_data_mode mode;	/* DATA (dot-stuffed) or BDAT */
	time_t now;			/* for the dates written */
};

/* What the scan has learned so far. */
struct smtp_message_facts {
	unsigned received;	/* Received fields of the header section, ours too */
	int has_date;
	int has_message_id;
	int header_done;	/* the end of the header section went by */
	size_t header_end;	/* where it ends: offset in the message bytes */
	size_t content;		/* content bytes taken (after unstuffing) */
};

struct smtp_message;

/* Starts a message: the Received header is written. */
struct smtp_message *smtp_message_new(const struct smtp_message_info *info);

/*
 * Takes content bytes. DATA: consumes up to and including the end of data
 * (CRLF.CRLF) and sets *done_r then; bytes after it are left to the
 * caller. BDAT: consumes all of in (exactly the chunk's bytes). Returns
 * the bytes consumed.
 */
size_t smtp_message_feed(struct smtp_message *m, const char *in, size_t len,
    int *done_r);

/*
 * End of data (after *done_r, or at BDAT LAST): runs the checks. Returns
 * 0 when the message may be committed, or -1 with the reply to send
 * (e.g. "552 5.3.4 ...", without CRLF) in reply.
 */
int smtp_message_finish(struct smtp_message *m, char *reply, size_t replysize);

/* Puts lines (whole header fields, each ending in CRLF) on top of the
 * message, above our Received header, in their order: what a policy
 * service's PREPEND asks for. After smtp_message_finish returned 0.
 * Returns 0, or -1 when they do not fit (the message is unchanged). */
int smtp_message_prepend(struct smtp_message *m, const char *lines);

/* The facts learned so far. */
const struct smtp_message_facts *smtp_message_facts(const struct smtp_message *m);

/* Hands the message bytes (CRLF line ends) to the caller, who free()s
 * them; only after smtp_message_finish returned 0. */
char *smtp_message_take(struct smtp_message *m, size_t *len_r);

/* Frees m; sets *mp to NULL. NULL is fine. */
void smtp_message_free(struct smtp_message **mp);

#endif
