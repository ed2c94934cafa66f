/*
 * ratelimit: per-client and per-account rate limits, the job of Postfix's
 * anvil. Each call counts one event and answers whether it is within the
 * limits; the session turns a refusal into the 4.7.x reply that
 * ratelimit_reply gives, logs it, and counts it in the metrics
 * (ratelimit_metric_reason).
 *
 * Clients are keyed by network as every per-address limit is
 * (connlimit_key): an IPv4 address (/32; v4-mapped IPv6 counts as IPv4)
 * or an IPv6 /64, since one IPv6 host has a whole /64 to pick addresses
 * from. Per client and per `window` seconds:
 *  - connections (at connect),
 *  - messages (at MAIL),
 *  - recipients (at RCPT),
 *  - unknown recipients (after a 550 5.1.1): once a client has had
 *    `unknown_recipients` of them in a window, every further RCPT is
 *    refused until its rate falls (a directory-harvest defence).
 * The client windows slide: the count is the current fixed window's plus
 * the previous window's weighted by how much of it still overlaps the
 * last `window` seconds, so there is no burst at window edges. Every
 * attempt counts, refused ones too: a client that keeps hammering stays
 * refused until it slows down.
 *
 * Authenticated accounts: messages and distinct recipients per day (a
 * fixed window of 24 hours from the account's first event), so that a
 * stolen password cannot send a million messages. Only what is allowed
 * counts. Distinct recipients are remembered as 64-bit keyed hashes, at
 * most `account_recipients` per account.
 *
 * A limit of 0 is no limit. Counts live in memory only (a restart starts
 * them afresh) in two tables of fixed size (server/addrtable.h): when a
 * table is full the least recently seen client or account is forgotten.
 * Memory: about 90 bytes per client; per account about 70 bytes plus 16
 * bytes per distinct recipient it has had today.
 *
 * Whom to exempt (relay_networks, loopback) is the caller's decision.
 * Times are CLOCK_MONOTONIC milliseconds passed in (time_mono_ms()), so
 * tests control the clock.
 *
 * Errors: out of memory aborts; a client address of another family is
 * always allowed. Threads: every function may be called from any thread
 * (the acceptor at connect, session workers later), except ratelimit_free.
 * Each call takes one mutex of one shard for a few hundred nanoseconds.
 */
#ifndef SERVER_RATELIMIT_H
#define SERVER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ratelimit_limits {
	unsigned window;		/* seconds of the client rates, >= 1 */
	unsigned connections;		/* per client per window */
	unsigned messages;		/* per client per window */
	unsigned recipients;		/* per client per window */
	unsigned unknown_recipients;	/* per client per window */
	unsigned account_messages;	/* per account per day */
	unsigned account_recipients;	/* distinct, per account per day */
};

/* Answers; RATELIMIT_OK is 0, the others name the limit passed. */
enum ratelimit_verdict {
	RATELIMIT_OK = 0,
	RATELIMIT_CONNECTIONS,
	RATELIMIT_MESSAGES,
	RATELIMIT_RECIPIENTS,
	RATELIMIT_UNKNOWN_RECIPIENTS,
	RATELIMIT_ACCOUNT_MESSAGES,
	RATELIMIT_ACCOUNT_RECIPIENTS,
};

#define RATELIMIT_ACCOUNT_RECIPIENTS_MAX 1000000	/* bound of account_recipients */
#define RATELIMIT_NAME_MAX 320				/* bytes of an account name */

struct ratelimit;

/* Tables for max_clients clients and max_accounts accounts (each at
 * least 1, at most ADDRTABLE_MAX_ENTRIES) with limits l (copied; window
 * 0 counts as 1; account_recipients capped at the bound above). */
struct ratelimit *ratelimit_new(size_t max_clients, size_t max_accounts,
    const struct ratelimit_limits *l);

/* Frees everything; sets *rp to NULL. NULL is fine. */
void ratelimit_free(struct ratelimit **rp);

/* New limits (a reload); counts are kept. Calls running at the same time
 * may see old and new limits mixed for that one call. */
void ratelimit_set_limits(struct ratelimit *r, const struct ratelimit_limits *l);

/* A connection from sa at now_ms: RATELIMIT_OK or RATELIMIT_CONNECTIONS. */
int ratelimit_connect(struct ratelimit *r, const struct sockaddr *sa, int64_t now_ms);

/* A MAIL from sa: RATELIMIT_OK or RATELIMIT_MESSAGES. */
int ratelimit_message(struct ratelimit *r, const struct sockaddr *sa, int64_t now_ms);

/* A RCPT from sa: RATELIMIT_OK, RATELIMIT_RECIPIENTS, or
 * RATELIMIT_UNKNOWN_RECIPIENTS when the client has used up its unknown
 * recipients for now. */
int ratelimit_recipient(struct ratelimit *r, const struct sockaddr *sa, int64_t now_ms);

/* Counts an unknown recipient of sa (after refusing it with 5.1.1).
 * Returns RATELIMIT_UNKNOWN_RECIPIENTS when the client has now reached
 * its limit (the next RCPT will be refused), else RATELIMIT_OK. */
int ratelimit_unknown_recipient(struct ratelimit *r, const struct sockaddr *sa,
    int64_t now_ms);

/* A message submitted by account (NUL-terminated, at most
 * RATELIMIT_NAME_MAX bytes used, already in canonical case): counts it
 * and returns RATELIMIT_OK, or RATELIMIT_ACCOUNT_MESSAGES (not counted). */
int ratelimit_account_message(struct ratelimit *r, const char *account, int64_t now_ms);

/* A recipient of a message by account: RATELIMIT_OK when it was already
 * among today's recipients or there is room for one more (it is then
 * remembered), else RATELIMIT_ACCOUNT_RECIPIENTS. rcpt is compared as
 * bytes (normalise first). */
int ratelimit_account_recipient(struct ratelimit *r, const char *account,
    const char *rcpt, int64_t now_ms);

/* Clients and accounts tracked now (for tests and stats). */
size_t ratelimit_clients(struct ratelimit *r);
size_t ratelimit_accounts(struct ratelimit *r);

/* "connection rate", "message rate", ... for logs (static strings). */
const char *ratelimit_verdict_text(int verdict);

/* The reply for a refusal, with its code and enhanced code (static
 * strings, no CRLF): 421 4.7.0 for connections (then close), 451 4.7.1
 * at MAIL, 452 4.7.1 or 450 4.7.1 at RCPT. "" for RATELIMIT_OK. */
const char *ratelimit_reply(int verdict);

/* The metrics reason (enum metric_reason, lib/metrics.h) of a refusal. */
unsigned ratelimit_metric_reason(int verdict);

#endif
