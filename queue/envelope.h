/*
 * envelope: what the queue keeps about a message besides its bytes, as
 * handed from a session to the committer, and queue ids.
 *
 * Ownership: every pointer in these structs is owned by the struct
 * (heap strings); envelope_free releases them.
 * Threads: plain data; queue_id_next is thread-safe.
 */
#ifndef QUEUE_ENVELOPE_H
#define QUEUE_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

/* Queue ids: unique, sortable by time, printed as 13 upper-case hex
 * digits (microseconds since the epoch, made strictly increasing). */
#define QUEUE_ID_LEN 13
typedef uint64_t queue_id_t;

/* The next id; never repeats within a process, and never goes below
 * queue_id_floor's argument. */
queue_id_t queue_id_next(void);

/* Makes every later id greater than floor (called at open with the
 * largest id in the queue, so ids stay unique across restarts). */
void queue_id_floor(queue_id_t floor);

/* Text form into out (size > QUEUE_ID_LEN); returns out. */
char *queue_id_format(queue_id_t id, char *out, size_t outsize);

/* Parses the text form; returns 0, or -1. */
int queue_id_parse(const char *s, queue_id_t *id_r);

/* DSN parameters (RFC 3461) as stored with the envelope. */
enum dsn_notify {
	DSN_NOTIFY_NEVER = 1, DSN_NOTIFY_SUCCESS = 2,
	DSN_NOTIFY_FAILURE = 4, DSN_NOTIFY_DELAY = 8,
};
enum dsn_ret { DSN_RET_UNSET = 0, DSN_RET_FULL = 1, DSN_RET_HDRS = 2 };

enum envelope_flag {
	ENV_8BITMIME = 1,	/* BODY=8BITMIME */
	ENV_SMTPUTF8 = 2,	/* SMTPUTF8 given */
	ENV_TLS = 4,		/* received over TLS */
	ENV_NOTICE = 8,		/* a bounce or notice we made: no bounce of it */
	ENV_REQUIRETLS = 16,	/* MAIL FROM ... REQUIRETLS (RFC 8689): relay
				 * only over authenticated TLS, with it */
	ENV_HELD = 0x100,	/* on hold: never delivered nor expired while
				 * held (store.h, STORE_HOLD_TIME) */
};

struct envelope_rcpt {
	char *addr;		/* as given at RCPT, without <> */
	char *orcpt;		/* ORCPT "type;addr", or NULL */
	unsigned notify;	/* enum dsn_notify bits, 0 = default */
};

struct envelope {
	queue_id_t id;
	int64_t arrival;	/* unix seconds */
	char *sender;		/* "" for the null path */
	char *helo;		/* EHLO/HELO name */
	char *client_addr;	/* numeric */
	char *auth_user;	/* or NULL */
	char *envid;		/* DSN ENVID, or NULL */
	int ret;		/* enum dsn_ret */
	unsigned flags;		/* enum envelope_flag */
	struct envelope_rcpt *rcpts;
	size_t nrcpts;
};

void envelope_free(struct envelope *env);

#endif
