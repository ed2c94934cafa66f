/*
 * tls_store: the outbound TLS state's LMDB environment
 * (relay/tls_store.h).
 */
#include "relay/tls_store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "lib/util.h"

#define SYNC_EVERY_MS 1000

struct tls_store {
	MDB_env *env;
	MDB_dbi dbi[TLS_STORE_NDB];
	unsigned char absent[TLS_STORE_NDB];	/* read-only: a database an older
						 * daemon never made (empty) */
	int rdonly;
	int64_t last_sync_ms;	/* atomic */
	int unsynced;		/* atomic: a commit since the last sync */
};

static const char *const db_names[TLS_STORE_NDB] = { "sts", "rpt", "rpol", "rsent" };

static void
store_warn(const char *what, int rc)
{
	log_warn("tls store: %s: %s", what, mdb_strerror(rc));
}

struct tls_store *
tls_store_open(const char *queue_dir, unsigned flags, char *err, size_t errsize)
{
	struct tls_store *s = xcalloc(1, sizeof *s);
	char dir[4096];
	MDB_txn *txn = NULL;
	int rc, dead = 0;

	s->rdonly = (flags & TLS_STORE_RDONLY) != 0;
	if (snprintf(dir, sizeof dir, "%s/tls", queue_dir) >= (int)sizeof dir) {
		snprintf(err, errsize, "tls store: queue_dir too long");
		free(s);
		return NULL;
	}
	if (!s->rdonly && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errsize, "tls store: %s: %s", dir, strerror(errno));
		free(s);
		return NULL;
	}
	if ((rc = mdb_env_create(&s->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(s->env, TLS_STORE_NDB)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, TLS_STORE_MAP_SIZE)) != 0 ||
	    (rc = mdb_env_open(s->env, dir, MDB_NOTLS | MDB_NOSYNC |
	    (s->rdonly ? MDB_RDONLY : 0), 0600)) != 0)
		goto fail;
	(void)mdb_reader_check(s->env, &dead);
	if ((rc = mdb_txn_begin(s->env, NULL, s->rdonly ? MDB_RDONLY : 0, &txn)) != 0)
		goto fail;
	for (int i = 0; i < TLS_STORE_NDB; i++)
		if ((rc = mdb_dbi_open(txn, db_names[i], s->rdonly ? 0 : MDB_CREATE,
		    &s->dbi[i])) == MDB_NOTFOUND && s->rdonly) {
			s->absent[i] = 1;
		} else if (rc != 0) {
			mdb_txn_abort(txn);
			goto fail;
		}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	if (!s->rdonly)
		(void)mdb_env_sync(s->env, 1);
	s->last_sync_ms = time_mono_ms();
	return s;
fail:
	snprintf(err, errsize, "tls store: %s: %s", dir, mdb_strerror(rc));
	if (s->env != NULL)
		mdb_env_close(s->env);
	free(s);
	return NULL;
}

void
tls_store_close(struct tls_store **sp)
{
	struct tls_store *s = *sp;

	if (s == NULL)
		return;
	if (!s->rdonly)
		(void)mdb_env_sync(s->env, 1);
	mdb_env_close(s->env);
	free(s);
	*sp = NULL;
}

static int
key_ok(size_t klen)
{
	return klen > 0 && klen <= TLS_STORE_KEY_MAX;
}

/* Syncs when forced or when the last sync is over a second old. */
static void
maybe_sync(struct tls_store *s, int force)
{
	int64_t now = time_mono_ms();
	int64_t last = __atomic_load_n(&s->last_sync_ms, __ATOMIC_RELAXED);
	int rc;

	if (!force && now - last < SYNC_EVERY_MS)
		return;
	if (!force && !__atomic_compare_exchange_n(&s->last_sync_ms, &last, now, 0,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return;		/* another thread syncs now */
	__atomic_store_n(&s->unsynced, 0, __ATOMIC_RELAXED);
	if ((rc = mdb_env_sync(s->env, 1)) != 0)
		store_warn("sync", rc);
	if (force)
		__atomic_store_n(&s->last_sync_ms, now, __ATOMIC_RELAXED);
}

void
tls_store_sync_pending(struct tls_store *s)
{
	if (!s->rdonly && __atomic_load_n(&s->unsynced, __ATOMIC_RELAXED))
		maybe_sync(s, 0);
}

/* A write transaction, or -1 (logged). */
static int
wtxn_begin(struct tls_store *s, MDB_txn **txn_r)
{
	int rc = mdb_txn_begin(s->env, NULL, 0, txn_r);

	if (rc != 0) {
		store_warn("begin", rc);
		return -1;
	}
	return 0;
}

/* Commits txn unless rc (the last operation's result) is an error, then
 * syncs as asked: 0, or -1 (logged, txn gone either way). */
static int
wtxn_end(struct tls_store *s, MDB_txn *txn, int rc, const char *what, int sync)
{
	if (rc != 0) {
		mdb_txn_abort(txn);
		store_warn(what, rc);
		return -1;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		store_warn("commit", rc);
		return -1;
	}
	__atomic_store_n(&s->unsynced, 1, __ATOMIC_RELAXED);
	maybe_sync(s, sync);
	return 0;
}

int
tls_store_put(struct tls_store *s, enum tls_store_db db, const void *key,
    size_t klen, const void *val, size_t vlen, int sync)
{
	MDB_txn *txn;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	if (s->rdonly || !key_ok(klen) || wtxn_begin(s, &txn) != 0)
		return -1;
	return wtxn_end(s, txn, mdb_put(txn, s->dbi[db], &k, &v, 0), "put", sync);
}

int
tls_store_get(struct tls_store *s, enum tls_store_db db, const void *key,
    size_t klen, struct buf *val)
{
	MDB_txn *txn;
	MDB_val k = { klen, (void *)key }, v;
	int rc, out;

	buf_reset(val);
	if (!key_ok(klen))
		return -1;
	if (s->absent[db])
		return 1;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
		store_warn("begin", rc);
		return -1;
	}
	rc = mdb_get(txn, s->dbi[db], &k, &v);
	if (rc == 0)
		out = buf_append(val, v.mv_data, v.mv_size) == 0 ? 0 : -1;
	else if (rc == MDB_NOTFOUND)
		out = 1;
	else {
		store_warn("get", rc);
		out = -1;
	}
	mdb_txn_abort(txn);
	return out;
}

int
tls_store_counter(const void *val, size_t vlen, uint64_t *n_r)
{
	const uint8_t *p = val;
	uint64_t n = 0;

	if (vlen != 9 || p[0] != 1)
		return -1;
	for (int i = 1; i < 9; i++)
		n = n << 8 | p[i];
	*n_r = n;
	return 0;
}

int
tls_store_add(struct tls_store *s, enum tls_store_db db, const void *key,
    size_t klen, uint64_t n)
{
	MDB_txn *txn;
	MDB_val k = { klen, (void *)key }, v;
	uint8_t out[9];
	uint64_t cur = 0;
	int rc;

	if (s->rdonly || !key_ok(klen) || wtxn_begin(s, &txn) != 0)
		return -1;
	rc = mdb_get(txn, s->dbi[db], &k, &v);
	if (rc == 0 && tls_store_counter(v.mv_data, v.mv_size, &cur) != 0) {
		log_warn("tls store: a counter of another form is replaced");
		cur = 0;
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		return wtxn_end(s, txn, rc, "get", 0);
	}
	cur += n;
	out[0] = 1;
	for (int i = 0; i < 8; i++)
		out[1 + i] = (uint8_t)(cur >> (56 - 8 * i));
	v = (MDB_val){ sizeof out, out };
	return wtxn_end(s, txn, mdb_put(txn, s->dbi[db], &k, &v, 0), "put", 0);
}

struct copied {
	size_t klen, vlen;
	uint8_t *k, *v;
};

long
tls_store_scan(struct tls_store *s, enum tls_store_db db, const void *prefix,
    size_t plen, size_t max, tls_store_scan_fn *fn, void *ctx)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { plen, (void *)prefix }, v;
	struct copied *recs = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (s->absent[db])
		return 0;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
		store_warn("begin", rc);
		return -1;
	}
	if ((rc = mdb_cursor_open(txn, s->dbi[db], &cur)) != 0) {
		mdb_txn_abort(txn);
		store_warn("cursor", rc);
		return -1;
	}
	rc = plen > 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) :
	    mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0 && (max == 0 || n < max)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			recs = xrealloc(recs, cap * sizeof *recs);
		}
		recs[n].klen = k.mv_size;
		recs[n].vlen = v.mv_size;
		recs[n].k = xmalloc(k.mv_size + 1);
		recs[n].v = xmalloc(v.mv_size + 1);
		memcpy(recs[n].k, k.mv_data, k.mv_size);
		memcpy(recs[n].v, v.mv_data, v.mv_size);
		n++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	for (size_t i = 0; i < n; i++) {
		fn(ctx, recs[i].k, recs[i].klen, recs[i].v, recs[i].vlen);
		free(recs[i].k);
		free(recs[i].v);
	}
	free(recs);
	return (long)n;
}

long
tls_store_delete_before(struct tls_store *s, enum tls_store_db db,
    const void *key, size_t klen)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	long n = 0;
	int rc;

	if (s->rdonly || klen == 0 || wtxn_begin(s, &txn) != 0)
		return -1;
	if ((rc = mdb_cursor_open(txn, s->dbi[db], &cur)) != 0)
		return wtxn_end(s, txn, rc, "cursor", 0);
	/* Always from the first record: the cursor moves on deletion. */
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
		size_t m = k.mv_size < klen ? k.mv_size : klen;
		int c = memcmp(k.mv_data, key, m);
		if (c > 0 || (c == 0 && k.mv_size >= klen))
			break;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		n++;
	}
	mdb_cursor_close(cur);
	if (wtxn_end(s, txn, rc == MDB_NOTFOUND ? 0 : rc, "delete", 1) != 0)
		return -1;
	return n;
}
