/*
 * store_internal: what the parts of the store share, and nothing else
 * includes. store.c holds the environment, transactions, errors and room
 * (map growth, reserve, admission); store_read.c the read functions;
 * store_write.c the changes; store_aside.c setting aside what does not
 * decode, and orphans.
 *
 * Every LMDB record operation goes through the s_* wrappers, which count
 * it (store_op_count).
 */
#ifndef QUEUE_STORE_INTERNAL_H
#define QUEUE_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/strcount.h"
#include "queue/store.h"

#define KEY_ID_LEN 8
#define KEY_RCPT_LEN 12
#define KEY_DUE_LEN 20
#define KEY_BAD_MAX 32
#define STORE_RECORD_BUF_MAX (1024 * 1024)	/* encoded records of one message */

struct queue_store {
	MDB_env *env;
	MDB_dbi dbi_msg, dbi_body, dbi_rcpt, dbi_due, dbi_meta, dbi_bad, dbi_live;
	MDB_dbi dbi_stage;
	int rdonly;
	int no_live;		/* read-only queue of schema 1: no `live` */
	int no_stage;		/* read-only queue of schema 1 or 2: no `stage` */
	int lock_fd;		/* daemon.lock (STORE_EXCLUSIVE), or -1 */
	char *dir;
	/* Held shared by every transaction of this process, exclusively to
	 * change the map size (mdb_env_set_mapsize requires that no
	 * transaction is active). */
	pthread_rwlock_t resize_lock;
	_Atomic uint64_t commits;
	_Atomic uint64_t ops;
	atomic_int panicked;
	atomic_int map_full;	/* LMDB said MDB_MAP_FULL since the last growth */
	/* Room: map_size under resize_lock; the rest set at open, except
	 * reserved_to (space_lock). */
	size_t map_size;
	size_t map_max;
	size_t map_limit;	/* map_max + reserve */
	size_t psize;
	size_t disk_reserve;
	pthread_mutex_t space_lock;
	off_t reserved_to;	/* disk blocks allocated up to this offset */
	int64_t full_logged;	/* monotonic ms of the last "queue full" line */
};

struct store_wtxn {
	struct queue_store *s;
	struct store_wtxn *parent;
	MDB_txn *txn;
	int dead;		/* an LMDB error poisoned it: only abort is left */
	int dead_status;
	int freed;		/* an administrative delete freed space */
	/* The mailboxes of message mbox_id as this transaction sees them
	 * (store_rcpt_expand, store_write.c): built by its first expansion
	 * of that message, dropped when a child transaction begins. */
	int mbox_valid;
	queue_id_t mbox_id;
	struct strcount mbox;
};

/* ---- keys (big-endian) ---- */

static inline void
be_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline void
be_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint64_t
be_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static inline uint32_t
be_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static inline MDB_val
key_id(uint8_t k[KEY_ID_LEN], queue_id_t id)
{
	be_put64(k, id);
	return (MDB_val){ KEY_ID_LEN, k };
}

static inline MDB_val
key_rcpt(uint8_t k[KEY_RCPT_LEN], queue_id_t id, uint32_t idx)
{
	be_put64(k, id);
	be_put32(k + 8, idx);
	return (MDB_val){ KEY_RCPT_LEN, k };
}

static inline MDB_val
key_due(uint8_t k[KEY_DUE_LEN], int64_t when, queue_id_t id, uint32_t idx)
{
	be_put64(k, (uint64_t)when);
	be_put64(k + 8, id);
	be_put32(k + 16, idx);
	return (MDB_val){ KEY_DUE_LEN, k };
}

static inline int
key_has_id(const MDB_val *k, queue_id_t id)
{
	uint8_t p[KEY_ID_LEN];

	be_put64(p, id);
	return k->mv_size >= KEY_ID_LEN &&
	    __builtin_memcmp(k->mv_data, p, KEY_ID_LEN) == 0;
}

/* ---- counted LMDB record operations ---- */

static inline void
s_count(struct queue_store *s)
{
	atomic_fetch_add_explicit(&s->ops, 1, memory_order_relaxed);
}

static inline int
s_get(struct queue_store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	s_count(s);
	return mdb_get(txn, dbi, k, v);
}

/* store.c: a fault injected into this call of op (store_fault_set), as
 * an LMDB or errno code; 0 when none. */
int store_fault_hit(enum store_fault_op op);

static inline int
s_put(struct queue_store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v,
    unsigned flags)
{
	int rc;

	s_count(s);
	if ((rc = store_fault_hit(STORE_FAULT_PUT)) != 0)
		return rc;
	return mdb_put(txn, dbi, k, v, flags);
}

static inline int
s_del(struct queue_store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *k)
{
	s_count(s);
	return mdb_del(txn, dbi, k, NULL);
}

static inline int
s_cget(struct queue_store *s, MDB_cursor *c, MDB_val *k, MDB_val *v,
    MDB_cursor_op op)
{
	s_count(s);
	return mdb_cursor_get(c, k, v, op);
}

static inline int
s_cdel(struct queue_store *s, MDB_cursor *c)
{
	s_count(s);
	return mdb_cursor_del(c, 0);
}

/* ---- store.c ---- */

/* An LMDB result as enum store_status (logged unless 0 or expected). */
int store_err(struct queue_store *s, int rc, const char *what);

/* store_err, and t becomes dead after an error that poisons it. */
int wtxn_fail(struct store_wtxn *t, int rc, const char *what);

/* A top-level LMDB transaction holding the resize lock shared (released
 * again on failure). Returns an LMDB code. */
int txn_begin_top(struct queue_store *s, unsigned flags, MDB_txn **txn_r);

int rtxn_begin(struct queue_store *s, MDB_txn **txn_r);
void rtxn_end(struct queue_store *s, MDB_txn **txnp);

/* Put and delete in t (a missing key is fine for wdel). */
int wput(struct store_wtxn *t, MDB_dbi dbi, MDB_val *k, MDB_val *v,
    unsigned flags, const char *what);
int wdel(struct store_wtxn *t, MDB_dbi dbi, MDB_val *k, const char *what);

/* The Room rules for need more bytes of new mail: STORE_OK, or
 * STORE_FULL (t stays usable). */
int store_room(struct store_wtxn *t, uint64_t need);

/* ---- store_aside.c ---- */

/* A record found undecodable under a read transaction, to be set aside
 * once that transaction ended. */
enum bad_kind { BAD_MSG, BAD_RCPT, BAD_DUE };
struct bad_item {
	enum bad_kind kind;
	queue_id_t id;
	uint32_t idx;
	uint8_t key[KEY_BAD_MAX];
	size_t klen;
};
struct bad_list {
	struct bad_item *v;
	size_t n, cap;
};

void bad_add(struct bad_list *bl, enum bad_kind kind, queue_id_t id,
    uint32_t idx, const MDB_val *key);

/* Sets aside what readers found, in one write transaction of its own
 * (after their read transaction ended); frees the list. */
void bad_apply(struct queue_store *s, struct bad_list *bl);

/* "ID" or "ID#idx" for a key, for log lines. */
const char *key_text(const MDB_val *k, char *out, size_t outsize);

/* Moves the record at key of dbi (letter tag) into `bad`. */
int setaside_record(struct store_wtxn *t, MDB_dbi dbi, char tag,
    const MDB_val *key);

/* Recipient idx of message id failed to decode: moves it into bad, drops
 * its due entries and, when the envelope is there, puts a placeholder in
 * its place (RCPT_F_LOST, bounced with a notice pending), so that the
 * sender hears of it and the message is not kept for ever. */
int setaside_rcpt(struct store_wtxn *t, queue_id_t id, uint32_t idx);

/* Sets a whole message aside: envelope, body, recipients, live count;
 * drops its due entries. */
int setaside_msg(struct store_wtxn *t, queue_id_t id);

/* Deletes every due entry of message id (of recipient idx, or all when
 * all_idx): a full scan, only for records whose next_try is unknown. */
int due_purge_scan(struct store_wtxn *t, queue_id_t id, int all_idx,
    uint32_t idx);

/* ---- store_read.c ---- */

/* Is (when, id, idx) a live due entry: the recipient exists, is not done
 * and is due at when? Under any txn. Returns 1 (with its domain, lower
 * case, in dest when dest is not NULL), 0 (stale), -1 (undecodable
 * recipient); an LMDB error goes to *rc_r (0 otherwise). */
int due_is_live(MDB_txn *txn, struct queue_store *s, int64_t when,
    queue_id_t id, uint32_t idx, char *dest, size_t destsize, int *rc_r);

/* ---- store_write.c ---- */

/* Recipient idx of id under t: STORE_OK, STORE_NOTFOUND, or STORE_CORRUPT
 * after setting it aside. */
int rcpt_get(struct store_wtxn *t, queue_id_t id, uint32_t idx,
    struct queue_rcpt *r);
int rcpt_put(struct store_wtxn *t, queue_id_t id, const struct queue_rcpt *r);

/* Recounts the recipients of id that are not done and stores the count
 * (undecodable records count as not done). */
int live_recount(struct store_wtxn *t, queue_id_t id, uint32_t *n_r);

/* Deletes every record of dbi whose key starts with id; *found_r is set
 * when there was one. */
int delete_prefix(struct store_wtxn *t, MDB_dbi dbi, queue_id_t id,
    int *found_r);

/* ---- store_stage.c ---- */

/* Is id staged (its marker in `stage`), under txn? 1, 0, or -1 with the
 * LMDB error in *rc_r. */
int stage_marked(struct queue_store *s, MDB_txn *txn, queue_id_t id,
    int *rc_r);

/* The records 1..staged of id under t are what staging wrote (nothing
 * else of id is in `body`, id is marked): their bytes go to *bytes_r.
 * STORE_OK, STORE_INVALID (missing, extra or bad records, or no
 * marker), or an LMDB failure. */
int stage_verify(struct store_wtxn *t, queue_id_t id, uint32_t staged,
    uint64_t *bytes_r);

/* Drops id's marker (the message is whole now). */
int stage_unmark(struct store_wtxn *t, queue_id_t id);

#endif
