/*
 * tls_store: the durable state of outbound TLS, a small LMDB environment
 * of its own in <queue_dir>/tls/ (beside the queue; the queue's
 * environment belongs to queue/ and is never opened here). Two users:
 *   - the MTA-STS policy cache (relay/mta_sts_cache.c), database "sts";
 *   - the TLS report counters (relay/tls_report.c), databases "rpt" and
 *     "rpol", and what was done about mailing each day's report
 *     (relay/tls_rpt_send.c), database "rsent".
 * Keys and values are the users' byte strings; every value the users
 * write starts with a version byte of their own.
 *
 * Durability: the environment is opened with MDB_NOSYNC and synced by
 * this module: tls_store_put with sync set returns after the data is on
 * disk (policies); tls_store_add syncs at most once a second (report
 * counters: many small writes, each already safe from a crash of the
 * process, the last second of them at risk only from a crash of the
 * machine, as long as tls_store_sync_pending is called about once a
 * second: it syncs the writes the last add left unsynced);
 * tls_store_close syncs.
 *
 * LMDB rules kept here: open once per process (tls_store_open) and share
 * it between threads; MDB_NOTLS, so any thread may call anything; each
 * call begins and ends its own transaction on the calling thread; no
 * callback runs inside a transaction (tls_store_scan copies first).
 * Several processes may open it (mailctl reads with TLS_STORE_RDONLY).
 *
 * Errors: 0 ok, 1 not found (get), -1 failure with a log line at warn
 * level (the caller decides what a missing cache or counter means; TLS
 * state is never worth stopping mail for). Out of memory aborts.
 */
#ifndef RELAY_TLS_STORE_H
#define RELAY_TLS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define TLS_STORE_MAP_SIZE	((size_t)256 << 20)
#define TLS_STORE_KEY_MAX	500	/* LMDB's default key limit is 511 */

enum tls_store_db {
	TLS_STORE_STS = 0,	/* MTA-STS policies by domain */
	TLS_STORE_RPT,		/* report counters */
	TLS_STORE_RPOL,		/* report policy descriptions */
	TLS_STORE_RSENT,	/* reports mailed (relay/tls_rpt_send.c) */
	TLS_STORE_NDB
};

enum tls_store_flag {
	TLS_STORE_RDONLY = 1,
};

struct tls_store;

/* Opens (creating <queue_dir>/tls with mode 0700 unless read-only) the
 * environment. NULL with err filled on failure. */
struct tls_store *tls_store_open(const char *queue_dir, unsigned flags,
    char *err, size_t errsize);
void tls_store_close(struct tls_store **sp);

/* Syncs writes left unsynced when the last sync is a second old or more
 * (the daemon's main loop calls it about once a second). */
void tls_store_sync_pending(struct tls_store *s);

/* Stores val under key (klen 1..TLS_STORE_KEY_MAX); with sync set, on
 * disk when it returns 0. */
int tls_store_put(struct tls_store *s, enum tls_store_db db, const void *key,
    size_t klen, const void *val, size_t vlen, int sync);

/* Copies the value of key into val (reset first): 0, 1 (none) or -1. */
int tls_store_get(struct tls_store *s, enum tls_store_db db, const void *key,
    size_t klen, struct buf *val);

/*
 * Adds n to the counter stored under key (a value of version byte 1 and a
 * big-endian u64, created at 0), in one write transaction. A value of
 * another form is replaced (logged).
 */
int tls_store_add(struct tls_store *s, enum tls_store_db db, const void *key,
    size_t klen, uint64_t n);

/* Decodes a counter value written by tls_store_add: 0 or -1. */
int tls_store_counter(const void *val, size_t vlen, uint64_t *n_r);

typedef void tls_store_scan_fn(void *ctx, const void *key, size_t klen,
    const void *val, size_t vlen);

/*
 * Calls fn for every record whose key starts with prefix (plen may be 0:
 * all), in key order, at most max records (0: no bound) — after copying
 * them out of the read transaction. Returns the number of records, or -1.
 */
long tls_store_scan(struct tls_store *s, enum tls_store_db db,
    const void *prefix, size_t plen, size_t max, tls_store_scan_fn *fn,
    void *ctx);

/* Deletes every record whose key sorts before key (klen > 0). Returns
 * how many, or -1. */
long tls_store_delete_before(struct tls_store *s, enum tls_store_db db,
    const void *key, size_t klen);

#endif
