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
 * Memory is bounded (DESIGN.md, the queue): with a stager, the message is
 * cut into records as it arrives. The first buffer (our Received header,
 * the client's header section and the start of the body) fills up to
 * SMTP_MESSAGE_CHUNK bytes; a message that fits in it is never staged
 * and goes to the queue in one commit. Once it is full, its header part
 * is kept as record 0 (the head, until the end of data: checks and the
 * submission headers work there) and everything after it goes out in
 * records of about SMTP_MESSAGE_CHUNK bytes, each handed to the stager
 * as soon as it is full, while the next one fills. A message holds one
 * body buffer of its own, and up to SMTP_MESSAGE_INFLIGHT more with the
 * committer while the stager's reserve() lets it (the global cap); when
 * every buffer is out, smtp_message_blocked says so and no input is
 * taken until one comes back (smtp_message_staged). A header section
 * longer than the first buffer is kept whole there as record 0 and
 * scanned on in the records after it; the submission headers then go
 * right after our Received header.
 * Without a stager (tests, fuzzing) the message stays in one buffer.
 *
 * Limits: at most info->max_size content bytes (then 552 at the end); the
 * header facts are kept in fixed-size state; memory as said above.
 * Errors: smtp_message_finish gives the reply for a refused message; a
 * record the committer refused makes smtp_message_status say so.
 * Threads: a message belongs to one session (one thread); the stager's
 * callbacks are called on it.
 */
#ifndef SERVER_SMTP_MESSAGE_H
#define SERVER_SMTP_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "queue/committer.h"
#include "queue/envelope.h"
#include "queue/record.h"
#include "server/smtp_parser.h"

/* Received fields allowed, ours included, as Postfix's hopcount_limit. */
#define SMTP_MESSAGE_MAX_HOPS 50

/* The record size staged, the room of one buffer (a record, our headers
 * and the data parser's slack), records of one message with the committer
 * at once at most, and what a message reserves when it starts: its first
 * buffer (the head) and one body buffer. */
#define SMTP_MESSAGE_CHUNK RECORD_CHUNK_SIZE
#define SMTP_MESSAGE_BUF (SMTP_MESSAGE_CHUNK + 4096)
#define SMTP_MESSAGE_INFLIGHT 8
/* Past SMTP_MESSAGE_INFLIGHT, up to SMTP_MESSAGE_DEEP records of one
 * message may be with the committer while every message together holds
 * less than SMTP_MESSAGE_DEEP_TOTAL bytes (the stager's reserve_deep): a
 * few large messages keep the disk busy through each commit's fsync, many
 * stay at the shallow depth. */
#define SMTP_MESSAGE_DEEP 32
#define SMTP_MESSAGE_DEEP_TOTAL ((size_t)8 << 20)
#define SMTP_MESSAGE_BASE (2 * (size_t)SMTP_MESSAGE_BUF)
/* Room the head keeps for fields put on top at the end of data
 * (Authentication-Results, DKIM-Signature, PREPEND), past its buffer;
 * memory only when used. */
#define SMTP_MESSAGE_TOP_ROOM 16384

struct smtp_message;
struct smtp_message_rec;	/* a body record on its way to the queue */

/* Where the records go (the session: the committer and the global cap). */
struct smtp_message_stager {
	/* Stage record chunk (1, 2, ...) of m: data[0..len) stays valid until
	 * smtp_message_staged(m, rec, ...) is called for it. */
	void (*stage)(void *arg, struct smtp_message *m,
	    struct smtp_message_rec *rec, uint32_t chunk, const char *data,
	    size_t len);
	/* May m take bytes more memory? 1: taken (give it back with
	 * release), 0: not now. */
	int (*reserve)(void *arg, size_t bytes);
	/* As reserve, for a buffer past SMTP_MESSAGE_INFLIGHT: taken only
	 * while the total stays within SMTP_MESSAGE_DEEP_TOTAL. Optional
	 * (NULL: no buffer past it). Given back with release. */
	int (*reserve_deep)(void *arg, size_t bytes);
	void (*release)(void *arg, size_t bytes);
	void *arg;
};

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
	const struct smtp_message_stager *stager;	/* optional (borrowed) */
	/* Optional: sees the client's content once, in order, as it is
	 * taken (dot-stuffing undone; our own headers not included): what
	 * DKIM signs or verifies as the message streams in. */
	void (*tap)(void *arg, const char *p, size_t n);
	void *tap_arg;
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

/* The message for the queue (commit_msg): record 0 (or, with nothing
 * staged, the whole start of the message), the records staged, the
 * bytes after them; heap buffers the caller frees. reserved: the bytes
 * of the stager's reserve the caller now holds for them (release them
 * once they are freed). */
struct smtp_message_parts {
	char *head;
	size_t head_len;
	uint32_t staged;
	char *tail;		/* NULL when none */
	size_t tail_len;
	uint64_t size;		/* the whole message's bytes */
	size_t reserved;
};

/* Starts a message: the Received header is written. With a stager, first
 * reserves SMTP_MESSAGE_BASE bytes; NULL when it refuses (too much data
 * in flight: the caller replies 451 4.3.2). */
struct smtp_message *smtp_message_new(const struct smtp_message_info *info);

/*
 * Takes content bytes. DATA: consumes up to and including the end of data
 * (CRLF.CRLF) and sets *done_r then; bytes after it are left to the
 * caller. BDAT: consumes in (exactly the chunk's bytes). Either stops
 * early when every buffer is with the committer (smtp_message_blocked).
 * Full records are handed to the stager on the way. Returns the bytes
 * consumed.
 */
size_t smtp_message_feed(struct smtp_message *m, const char *in, size_t len,
    int *done_r);

/* 1 when m takes no input until a record comes back. */
int smtp_message_blocked(const struct smtp_message *m);

/* Record rec came back from the committer with status. */
void smtp_message_staged(struct smtp_message *m, struct smtp_message_rec *rec,
    enum commit_status status);

/* The queue id the message was started with. */
queue_id_t smtp_message_id(const struct smtp_message *m);

/* Records with the committer now, and records staged in all. */
unsigned smtp_message_inflight(const struct smtp_message *m);
uint32_t smtp_message_staged_count(const struct smtp_message *m);

/* COMMIT_OK, or the first failure of a record (once that happened,
 * content is still taken to the end but no longer kept). */
enum commit_status smtp_message_status(const struct smtp_message *m);

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

/* The header fields the message got for submission (Date, Message-ID;
 * whole fields with CRLF), "" when none. After smtp_message_finish. */
const char *smtp_message_added_fields(const struct smtp_message *m);

/* The client's header section as kept in record 0 (after our Received
 * and any prepended field, before the submission fields and the empty
 * line): 0 with *p and *len, or -1 when it is longer than record 0.
 * After smtp_message_finish returned 0. */
int smtp_message_header(const struct smtp_message *m, const char **p,
    size_t *len);

/* Puts h[0..len) in place of what smtp_message_header gives (whole
 * fields with CRLF): how Authentication-Results fields claiming our
 * authserv-id are removed. Returns 0, or -1 when it does not fit or the
 * header section is not in record 0 (the message is unchanged). */
int smtp_message_replace_header(struct smtp_message *m, const char *h,
    size_t len);

/* The whole header section as record 0 holds it, from its first byte
 * (fields put on top, our Received header, the client's fields, the
 * submission fields) to the line that ends it (the empty line, not
 * included): what the milters see and change. 0 with *p and *len, or -1
 * when it is not all in record 0. After smtp_message_finish returned 0. */
int smtp_message_head_fields(const struct smtp_message *m, const char **p,
    size_t *len);

/* Puts h[0..len) (whole fields with CRLF) in place of what
 * smtp_message_head_fields gives. Returns 0, or -1 when it does not fit
 * or the section is not in record 0 (the message is unchanged). */
int smtp_message_replace_head_fields(struct smtp_message *m, const char *h,
    size_t len);

/* Replaces the body (everything after the header section) with the empty
 * line and body[0..len): record 0 then holds the whole message, and
 * what was staged or buffered after it is no longer the message's. Nothing
 * may be in flight. Returns the number of records staged before (the
 * caller discards them: they are the queue's, under the message's id),
 * -1 when the header section is not in record 0, or -2 when the stager's
 * reserve refuses the new body's len bytes (too much data in flight: the
 * caller replies 451 4.3.2); unchanged then. The new body's bytes stay
 * reserved with record 0 (smtp_message_take's reserved). */
long smtp_message_replace_body(struct smtp_message *m, const char *body,
    size_t len);

/* The message's bytes as they stand, borrowed (valid until m changes;
 * reserved is 0; free nothing): record 0, the records staged, the bytes
 * after them. After smtp_message_finish returned 0. */
void smtp_message_peek(const struct smtp_message *m,
    struct smtp_message_parts *p);

/* The facts learned so far. */
const struct smtp_message_facts *smtp_message_facts(const struct smtp_message *m);

/* Hands the message's bytes (CRLF line ends) over; only after
 * smtp_message_finish returned 0, with the status COMMIT_OK. Records
 * still with the committer stay m's: free m once they are back. */
void smtp_message_take(struct smtp_message *m, struct smtp_message_parts *p);

/* Frees m (nothing may be in flight) and gives back its reserve; sets
 * *mp to NULL. NULL is fine. What it staged stays staged: discarding it
 * is the caller's. */
void smtp_message_free(struct smtp_message **mp);

#endif
