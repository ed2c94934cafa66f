/*
 * record: the versioned byte layout of what the queue stores in LMDB (the
 * envelope of a message, and one recipient with its delivery state), and
 * the in-memory forms the store hands to its readers.
 *
 * Every record starts with a version byte (RECORD_VERSION). Decoding is
 * defensive: every length is checked against the bytes present and a
 * fixed maximum, strings must be free of NUL bytes, enums must be known
 * values and nothing may trail the record. A record that fails any check
 * is refused (-1), never half-decoded; the store then sets it aside.
 *
 * Integers are big-endian. Layout:
 *   envelope (version 2; version 1 has the same fields and is still
 *              read, but its body records are all RECORD_V1_CHUNK_SIZE
 *              bytes but the last, so nchunks follows from size):
 *              u8 version, u8 ret, u32 flags, i64 arrival, u64 size,
 *              u32 nchunks, u32 nrcpts, str sender, str helo,
 *              str client_addr, ostr auth_user, ostr envid
 *              (version 2: the body is nchunks records of 1 to
 *              RECORD_CHUNK_MAX bytes each, any sizes, size bytes in all;
 *              none when size is 0)
 *   recipient (version 2; version 1 ends after diag, with status "" and
 *              no remote_mta, and is still read):
 *              u8 version, u8 state, u8 flags, u32 notify, u32 attempts,
 *              i64 next_try, i64 last_try, str addr, ostr orcpt, str diag,
 *              str status, ostr remote_mta
 * where str is u16 length + bytes and ostr is u8 present (0/1) + str.
 *
 * Ownership: decoded strings are heap copies owned by the output struct;
 * free them with queue_msg_free / queue_rcpt_clear / envelope_free.
 * Errors: encode and decode return 0 or -1 and never abort on bad input.
 * Threads: reentrant.
 */
#ifndef QUEUE_RECORD_H
#define QUEUE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "queue/envelope.h"

#define RECORD_VERSION 2		/* of the envelope record */
#define RECORD_RCPT_VERSION 2		/* of the recipient record */
#define RECORD_STATUS_MAX 15		/* an enhanced status code "5.1.10" */
#define RECORD_STR_MAX 4096		/* any string field, in bytes */
#define RECORD_DIAG_MAX 1024		/* the last diagnostic */
#define RECORD_RCPTS_MAX 100000		/* recipients of one message */
#define RECORD_CHUNK_SIZE (64 * 1024)	/* body bytes per `body` record,
					 * as written by store_put_msg and
					 * staged by sessions (DESIGN.md) */
#define RECORD_CHUNK_MAX (256 * 1024)	/* a `body` record of version 2
					 * holds at most this */
#define RECORD_V1_CHUNK_SIZE (128 * 1024)	/* the fixed records of v1 */
#define RECORD_SIZE_MAX ((uint64_t)1 << 40)	/* sanity bound on a body */

/* The delivery state of one recipient. QUEUED and DEFERRED still need
 * delivery; SENT, BOUNCED and EXPANDED are final. A recipient is done
 * when it is final and no notice about it is pending
 * (RCPT_F_NOTICE_PENDING); every recipient that is not done has exactly
 * one `due` entry, and a message is removed when all its recipients are
 * done. */
enum rcpt_state {
	RCPT_QUEUED = 0,
	RCPT_DEFERRED = 1,
	RCPT_SENT = 2,
	RCPT_BOUNCED = 3,
	RCPT_EXPANDED = 4,	/* an alias: its final targets are recipients
				 * of the message of their own */
};

enum rcpt_flag {
	RCPT_F_DELAY_NOTIFIED = 1,	/* the delay notice was queued */
	RCPT_F_NOTICE_PENDING = 2,	/* a notice about this outcome (failure,
					 * delay, success) is still to be
					 * queued: made from this record */
	RCPT_F_ALIAS_TARGET = 4,	/* a final target of an alias
					 * expansion: delivered as it is */
	RCPT_F_LOST = 8,		/* stands for a record that could not be
					 * read (the address is unknown) */
};
#define RCPT_F_ALL 15u

/* Is a recipient in this state with these flags done (see above)? */
#define RCPT_IS_FINAL(state) ((state) >= RCPT_SENT)
#define RCPT_IS_DONE(state, flags) \
	(RCPT_IS_FINAL(state) && !((flags) & RCPT_F_NOTICE_PENDING))

/* One stored recipient. */
struct queue_rcpt {
	uint32_t idx;		/* position in the message (from the key) */
	char *addr;		/* never empty */
	char *orcpt;		/* or NULL */
	unsigned notify;	/* enum dsn_notify bits, 0 = default */
	enum rcpt_state state;
	unsigned flags;		/* enum rcpt_flag */
	uint32_t attempts;	/* delivery attempts made */
	int64_t next_try;	/* unix seconds; the due time unless final */
	int64_t last_try;	/* unix seconds of the last attempt, 0 = none */
	char *diag;		/* last diagnostic ("" = none), never NULL */
	char *status;		/* enhanced status of the last attempt
				 * ("5.1.1", "" = none), never NULL */
	char *remote_mta;	/* the remote server of the last attempt, or
				 * NULL (local delivery, none reached) */
};

/* One stored message as read back: env holds the envelope fields with
 * env.rcpts == NULL and env.nrcpts the recipient count at arrival; rcpts
 * are the recipient records still stored (final ones included until the
 * whole message is done), in index order. */
struct queue_msg {
	struct envelope env;
	uint64_t size;		/* body bytes */
	uint32_t nchunks;	/* its `body` records */
	struct queue_rcpt *rcpts;
	size_t nrcpts;
};

/* How the body of a message is stored in `body`. */
struct record_body {
	uint64_t size;		/* bytes in all */
	uint32_t nchunks;	/* records, numbered 0 .. nchunks - 1 */
	uint32_t fixed;		/* version 1: every record but the last holds
				 * exactly this many bytes (the last the
				 * rest); 0 (version 2): each holds 1 to
				 * RECORD_CHUNK_MAX bytes */
};

/* Appends the envelope record (version 2) of env (its rcpts are not part
 * of it; only env->nrcpts is) for a body stored as body says (fixed must
 * be 0) to out. Returns 0, or -1 when a field is out of bounds (string
 * too long, no recipient, too many, chunks that cannot hold size bytes)
 * or out is full; out is then left as it was. */
int record_msg_encode(const struct envelope *env, const struct record_body *body,
    struct buf *out);

/* Decodes an envelope record of version 1 or 2 into env_r (id left 0,
 * rcpts NULL) and the body's layout into body_r. Returns 0, or -1
 * (nothing allocated). */
int record_msg_decode(const void *p, size_t n, struct envelope *env_r,
    struct record_body *body_r);

/* The fixed fields of an envelope record without decoding its strings
 * (for scans over the whole queue): arrival, body size and flags (each
 * may be NULL). Returns 0, or -1 when the record is not one that
 * record_msg_decode would take as far as those fields go. */
int record_msg_peek(const void *p, size_t n, int64_t *arrival_r,
    uint64_t *size_r, unsigned *flags_r);

/* Sets the flags of the envelope record p[0..n) in place (either
 * version; everything else stays as it was). Returns 0, or -1 when it is
 * not an envelope record or a flag is unknown. */
int record_msg_set_flags(void *p, size_t n, unsigned flags);

/* Appends the recipient record of r (idx is not stored) to out. Returns 0,
 * or -1 as record_msg_encode (also for an unknown state). */
int record_rcpt_encode(const struct queue_rcpt *r, struct buf *out);

/* Decodes a recipient record into r_r (idx left 0). Returns 0, or -1
 * (nothing allocated). */
int record_rcpt_decode(const void *p, size_t n, struct queue_rcpt *r_r);

/* Number of `body` records of RECORD_CHUNK_SIZE bytes (the last one the
 * rest) for a body of size bytes. */
uint32_t record_body_chunks(uint64_t size);

/* Frees the strings of r and zeroes it. */
void queue_rcpt_clear(struct queue_rcpt *r);

/* Frees everything m holds and zeroes it (m itself is the caller's). */
void queue_msg_free(struct queue_msg *m);

/* "queued", "deferred", "sent", "bounced", "expanded" (or "unknown"). */
const char *rcpt_state_name(enum rcpt_state state);

#endif
