/*
 * trace: the message trace store and the daemon's trace writer
 * (trace.h).
 */
#include "queue/trace.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define TRACE_VERSION 1
#define TRACE_KEY_LEN 20		/* id, time_us, seq */
#define TRACE_DONE_LEN 16		/* time, id */
#define TRACE_COMMIT_EVERY_MS 1000	/* at most one commit (fsync) this often */
#define TRACE_SWEEP_EVERY_MS 60000
#define TRACE_SWEEP_BATCH 2000		/* messages swept per transaction */
#define TRACE_DROP_LOG_MS 60000

struct trace_db {
	MDB_env *env;
	MDB_dbi ev, done;
	int rdonly;
};

/* An event waiting for the writer. */
struct trace_item {
	struct trace_item *next;
	queue_id_t id;
	int64_t time_us;		/* 0: a done marker at done */
	int64_t done;			/* unix s */
	uint32_t seq;
	size_t len;			/* of rec */
	uint8_t rec[];
};

/* The daemon's trace (one per process). */
static struct {
	pthread_mutex_t lock;		/* guards everything but the atomics */
	pthread_cond_t wake;
	_Atomic int running;		/* written under lock, read without */
	int stopping;
	struct trace_db *db;		/* writer thread only, once running */
	pthread_t thread;
	struct trace_item *head, *tail;
	size_t nitems, nbytes;
	unsigned retention;		/* seconds */
	_Atomic uint64_t dropped;
	_Atomic uint32_t seq;
	int64_t drop_logged;		/* monotonic ms */
	uint64_t drop_logged_count;
} tr = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static void
be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int64_t
trace_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- records ---- */

size_t
trace_record_encode(const char *kind, const char *text, uint8_t *out)
{
	size_t klen = strnlen(kind, TRACE_KIND_MAX);
	size_t tlen = strnlen(text, TRACE_TEXT_MAX);

	out[0] = TRACE_VERSION;
	out[1] = (uint8_t)klen;
	memcpy(out + 2, kind, klen);
	out[2 + klen] = (uint8_t)(tlen >> 8);
	out[3 + klen] = (uint8_t)tlen;
	memcpy(out + 4 + klen, text, tlen);
	return 4 + klen + tlen;
}

int
trace_record_decode(const void *p, size_t n, struct trace_rec *r)
{
	const uint8_t *b = p;
	size_t klen, tlen;

	if (n < 4 || b[0] != TRACE_VERSION || (klen = b[1]) > TRACE_KIND_MAX ||
	    n < 4 + klen)
		return -1;
	tlen = (size_t)b[2 + klen] << 8 | b[3 + klen];
	if (tlen > TRACE_TEXT_MAX || n != 4 + klen + tlen ||
	    memchr(b + 2, '\0', klen) != NULL || memchr(b + 4 + klen, '\0', tlen) != NULL)
		return -1;
	memcpy(r->kind, b + 2, klen);
	r->kind[klen] = '\0';
	memcpy(r->text, b + 4 + klen, tlen);
	r->text[tlen] = '\0';
	return 0;
}

/* ---- the environment ---- */

struct trace_db *
trace_db_open(const char *queue_dir, int writable, char *err, size_t errsize)
{
	struct trace_db *db = xcalloc(1, sizeof *db);
	char dir[4096];
	MDB_txn *txn = NULL;
	struct stat st;
	int rc, dead = 0;

	db->rdonly = !writable;
	if ((size_t)snprintf(dir, sizeof dir, "%s/trace", queue_dir) >= sizeof dir) {
		snprintf(err, errsize, "trace: queue_dir too long");
		free(db);
		return NULL;
	}
	if (db->rdonly && stat(dir, &st) != 0) {
		snprintf(err, errsize, "no trace recorded (%s: %s)", dir, strerror(errno));
		free(db);
		return NULL;
	}
	if (!db->rdonly && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errsize, "trace: %s: %s", dir, strerror(errno));
		free(db);
		return NULL;
	}
	if ((rc = mdb_env_create(&db->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(db->env, 2)) != 0 ||
	    (rc = mdb_env_set_mapsize(db->env, TRACE_MAP_SIZE)) != 0 ||
	    (rc = mdb_env_open(db->env, dir, MDB_NOTLS |
	    (db->rdonly ? MDB_RDONLY : 0), 0600)) != 0)
		goto fail;
	(void)mdb_reader_check(db->env, &dead);
	if ((rc = mdb_txn_begin(db->env, NULL, db->rdonly ? MDB_RDONLY : 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "ev", db->rdonly ? 0 : MDB_CREATE, &db->ev)) != 0 ||
	    (rc = mdb_dbi_open(txn, "done", db->rdonly ? 0 : MDB_CREATE, &db->done)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return db;
fail:
	snprintf(err, errsize, "trace: %s: %s", dir, rc == MDB_NOTFOUND ?
	    "no trace recorded" : mdb_strerror(rc));
	if (db->env != NULL)
		mdb_env_close(db->env);
	free(db);
	return NULL;
}

void
trace_db_close(struct trace_db **dbp)
{
	struct trace_db *db = *dbp;

	*dbp = NULL;
	if (db == NULL)
		return;
	mdb_env_close(db->env);
	free(db);
}

static void
ev_key(uint8_t k[TRACE_KEY_LEN], queue_id_t id, int64_t time_us, uint32_t seq)
{
	be64(k, id);
	be64(k + 8, (uint64_t)time_us);
	k[16] = (uint8_t)(seq >> 24);
	k[17] = (uint8_t)(seq >> 16);
	k[18] = (uint8_t)(seq >> 8);
	k[19] = (uint8_t)seq;
}

/* Puts one item in txn. */
static int
item_put(struct trace_db *db, MDB_txn *txn, const struct trace_item *it)
{
	uint8_t k[TRACE_KEY_LEN];
	MDB_val key, val;

	if (it->time_us == 0) {
		be64(k, (uint64_t)it->done);
		be64(k + 8, it->id);
		key = (MDB_val){ TRACE_DONE_LEN, k };
		val = (MDB_val){ 0, NULL };
		return mdb_put(txn, db->done, &key, &val, 0);
	}
	ev_key(k, it->id, it->time_us, it->seq);
	key = (MDB_val){ TRACE_KEY_LEN, k };
	val = (MDB_val){ it->len, (void *)it->rec };
	return mdb_put(txn, db->ev, &key, &val, 0);
}

/* Deletes the events of id. */
static int
ev_delete(struct trace_db *db, MDB_txn *txn, queue_id_t id)
{
	uint8_t k[8];
	MDB_cursor *c;
	MDB_val key, val;
	int rc;

	if ((rc = mdb_cursor_open(txn, db->ev, &c)) != 0)
		return rc;
	be64(k, id);
	/* Sought again after each delete: a cursor on a deleted last item
	 * has no current item. */
	for (;;) {
		key = (MDB_val){ 8, k };
		rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
		if (rc != 0 || key.mv_size < 8 || memcmp(key.mv_data, k, 8) != 0)
			break;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* A read transaction and a cursor over the events. Returns 0 or an LMDB
 * error (nothing left open). */
static int
trace_cursor_open(struct trace_db *db, MDB_txn **txn, MDB_cursor **c)
{
	int rc;

	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(*txn, db->ev, c)) != 0)
		mdb_txn_abort(*txn);
	return rc;
}

/* The event at key/val (a key of TRACE_KEY_LEN) into r; -1 if it does
 * not decode. */
static int
trace_rec_of(const MDB_val *key, const MDB_val *val, struct trace_rec *r)
{
	if (trace_record_decode(val->mv_data, val->mv_size, r) != 0)
		return -1;
	r->time_us = (int64_t)get_be64((const uint8_t *)key->mv_data + 8);
	return 0;
}

int
trace_db_read(struct trace_db *db, queue_id_t id,
    int (*fn)(const struct trace_rec *r, void *arg), void *arg)
{
	struct trace_rec *recs = NULL, *r;
	size_t n = 0, cap = 0;
	uint8_t k[8];
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val key, val;
	int rc;

	if ((rc = trace_cursor_open(db, &txn, &c)) != 0)
		goto fail;
	be64(k, id);
	key = (MDB_val){ 8, k };
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	    rc == 0 && key.mv_size == TRACE_KEY_LEN && memcmp(key.mv_data, k, 8) == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			recs = xrealloc(recs, cap * sizeof *recs);
		}
		r = &recs[n];
		if (trace_rec_of(&key, &val, r) != 0)
			continue;	/* not ours to judge: skipped */
		n++;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (fn(&recs[i], arg) != 0)
			break;
	free(recs);
	return (int)n;
fail:
	free(recs);
	log_warn("trace: reading: %s", mdb_strerror(rc));
	return -1;
}

long
trace_db_scan(struct trace_db *db,
    int (*fn)(queue_id_t id, const struct trace_rec *r, void *arg), void *arg)
{
	struct trace_rec *r = xmalloc(sizeof *r);
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val key, val;
	long n = 0;
	int rc;

	if ((rc = trace_cursor_open(db, &txn, &c)) != 0)
		goto fail;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != TRACE_KEY_LEN || trace_rec_of(&key, &val, r) != 0)
			continue;	/* not ours to judge: skipped */
		n++;
		if (fn(get_be64(key.mv_data), r, arg) != 0)
			break;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto fail;
	free(r);
	return n;
fail:
	free(r);
	log_warn("trace: reading: %s", mdb_strerror(rc));
	return -1;
}

int
trace_db_write(struct trace_db *db, queue_id_t id, const char *kind,
    const char *text, int done)
{
	struct trace_item *it = xcalloc(1, sizeof *it + TRACE_RECORD_MAX);
	struct trace_item mark = { .id = id, .time_us = 0, .done = time(NULL) };
	MDB_txn *txn;
	int rc;

	it->id = id;
	it->time_us = trace_now_us();
	it->seq = (uint32_t)getpid() << 16 | (atomic_fetch_add(&tr.seq, 1) & 0xffff);
	it->len = trace_record_encode(kind, text, it->rec);
	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) == 0) {
		rc = item_put(db, txn, it);
		if (rc == 0 && done)
			rc = item_put(db, txn, &mark);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	free(it);
	if (rc != 0)
		log_warn("trace: writing: %s", mdb_strerror(rc));
	return rc == 0 ? 0 : -1;
}

/* ---- the writer ---- */

static void
trace_drop(size_t n)
{
	atomic_fetch_add(&tr.dropped, n);
}

/* Writes items in one transaction; on failure they are dropped. */
static void
writer_commit(struct trace_item *items, size_t n)
{
	MDB_txn *txn;
	int rc;

	if (n == 0)
		return;
	if ((rc = mdb_txn_begin(tr.db->env, NULL, 0, &txn)) == 0) {
		for (struct trace_item *it = items; it && rc == 0; it = it->next)
			rc = item_put(tr.db, txn, it);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc != 0) {
		log_warn("trace: %zu events not written: %s", n, mdb_strerror(rc));
		trace_drop(n);
	}
}

int
trace_db_sweep(struct trace_db *db, int64_t now, unsigned retention)
{
	int64_t cutoff = now - (int64_t)retention;
	int64_t orphan_before = now - (int64_t)retention - TRACE_ORPHAN_AGE;
	/* queue ids are microseconds since the epoch (queue_id_next) */
	uint64_t orphan_id = orphan_before > 0 ? (uint64_t)orphan_before * 1000000 : 0;
	size_t n = 0;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val key, val;
	int rc, more = 0;

	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
		goto out;
	if ((rc = mdb_cursor_open(txn, db->done, &c)) == 0) {
		for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
		    rc = mdb_cursor_get(c, &key, &val, MDB_FIRST)) {
			const uint8_t *k = key.mv_data;

			if (key.mv_size == TRACE_DONE_LEN && (int64_t)get_be64(k) >= cutoff)
				break;
			if (n++ == TRACE_SWEEP_BATCH) {
				more = 1;
				break;
			}
			if (key.mv_size == TRACE_DONE_LEN &&
			    (rc = ev_delete(db, txn, get_be64(k + 8))) != 0)
				break;
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
		}
		mdb_cursor_close(c);
	}
	if ((rc == 0 || rc == MDB_NOTFOUND) &&
	    (rc = mdb_cursor_open(txn, db->ev, &c)) == 0) {
		/* the oldest ids come first */
		while (n < TRACE_SWEEP_BATCH &&
		    (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST)) == 0 &&
		    key.mv_size >= 8 && get_be64(key.mv_data) < orphan_id) {
			rc = ev_delete(db, txn, get_be64(key.mv_data));
			n++;
			if (rc != 0)
				break;
		}
		mdb_cursor_close(c);
	}
	if (rc == 0 || rc == MDB_NOTFOUND)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
out:
	if (rc != 0 && rc != MDB_NOTFOUND)
		log_warn("trace: sweeping: %s", mdb_strerror(rc));
	if (rc != 0 && rc != MDB_NOTFOUND)
		return -1;
	return more;
}

static void *
writer_main(void *arg)
{
	int64_t next_sweep = time_mono_ms() + TRACE_SWEEP_EVERY_MS, last_commit = 0;

	(void)arg;
	pthread_setname_np(pthread_self(), "trace");
	pthread_mutex_lock(&tr.lock);
	for (;;) {
		struct trace_item *items, *next;
		size_t n;
		unsigned retention;
		int64_t now = time_mono_ms(), wait_until;

		/* Wait for events (then at most once a second) or the sweep. */
		wait_until = tr.head != NULL ? last_commit + TRACE_COMMIT_EVERY_MS : next_sweep;
		if (wait_until > next_sweep)
			wait_until = next_sweep;
		if (!tr.stopping && now < wait_until) {
			struct timespec until;

			time_mono_deadline(&until, wait_until - now);
			pthread_cond_timedwait(&tr.wake, &tr.lock, &until);
			continue;
		}
		items = tr.head;
		n = tr.nitems;
		tr.head = tr.tail = NULL;
		tr.nitems = tr.nbytes = 0;
		retention = tr.retention;
		pthread_mutex_unlock(&tr.lock);

		writer_commit(items, n);
		for (; items; items = next) {
			next = items->next;
			free(items);
		}
		last_commit = time_mono_ms();
		if (last_commit >= next_sweep) {
			while (trace_db_sweep(tr.db, time(NULL), retention) == 1)
				;
			next_sweep = time_mono_ms() + TRACE_SWEEP_EVERY_MS;
		}
		pthread_mutex_lock(&tr.lock);
		if (tr.stopping && tr.head == NULL)
			break;
	}
	pthread_mutex_unlock(&tr.lock);
	return NULL;
}

int
trace_start(const char *queue_dir, unsigned retention_s, char *err, size_t errsize)
{
	struct trace_db *db = trace_db_open(queue_dir, 1, err, errsize);

	if (db == NULL)
		return -1;
	pthread_mutex_lock(&tr.lock);
	tr.db = db;
	tr.retention = retention_s;
	tr.stopping = 0;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(&tr.wake);
	pthread_cond_init(&tr.wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&tr.thread, NULL, writer_main, NULL) != 0) {
		pthread_mutex_unlock(&tr.lock);
		trace_db_close(&tr.db);
		snprintf(err, errsize, "trace: cannot start its thread");
		return -1;
	}
	tr.running = 1;
	pthread_mutex_unlock(&tr.lock);
	return 0;
}

void
trace_set_retention(unsigned retention_s)
{
	pthread_mutex_lock(&tr.lock);
	tr.retention = retention_s;
	pthread_mutex_unlock(&tr.lock);
}

void
trace_stop(void)
{
	pthread_mutex_lock(&tr.lock);
	if (!tr.running) {
		pthread_mutex_unlock(&tr.lock);
		return;
	}
	tr.stopping = 1;
	pthread_cond_signal(&tr.wake);
	pthread_mutex_unlock(&tr.lock);
	pthread_join(tr.thread, NULL);
	pthread_mutex_lock(&tr.lock);
	tr.running = 0;
	pthread_mutex_unlock(&tr.lock);
	trace_db_close(&tr.db);
}

/* Queues it (taken over); drops it when the queue is full or no trace
 * runs. */
static void
trace_queue(struct trace_item *it)
{
	size_t size = sizeof *it + it->len;
	int64_t now;

	pthread_mutex_lock(&tr.lock);
	if (!tr.running || tr.stopping || tr.nitems >= TRACE_QUEUE_EVENTS ||
	    tr.nbytes + size > TRACE_QUEUE_BYTES) {
		uint64_t dropped = atomic_fetch_add(&tr.dropped, 1) + 1;

		now = time_mono_ms();
		if (tr.running && now - tr.drop_logged >= TRACE_DROP_LOG_MS) {
			log_warn("trace: %" PRIu64 " events dropped (the writer is behind)",
			    dropped - tr.drop_logged_count);
			tr.drop_logged = now;
			tr.drop_logged_count = dropped;
		}
		pthread_mutex_unlock(&tr.lock);
		free(it);
		return;
	}
	if (tr.tail)
		tr.tail->next = it;
	else
		tr.head = it;
	tr.tail = it;
	tr.nitems++;
	tr.nbytes += size;
	if (tr.nitems == 1)
		pthread_cond_signal(&tr.wake);
	pthread_mutex_unlock(&tr.lock);
}

void
trace_add(queue_id_t id, int64_t time_us, const char *kind, const char *fmt, ...)
{
	char text[TRACE_TEXT_MAX + 1];
	struct trace_item *it;
	va_list ap;

	if (!atomic_load_explicit(&tr.running, memory_order_relaxed)) {
		trace_drop(1);
		return;
	}
	va_start(ap, fmt);
	if (vsnprintf(text, sizeof text, fmt, ap) < 0)
		text[0] = '\0';
	va_end(ap);
	it = xcalloc(1, sizeof *it + TRACE_RECORD_MAX);
	it->id = id;
	it->time_us = time_us > 0 ? time_us : trace_now_us();
	it->seq = atomic_fetch_add(&tr.seq, 1);
	it->len = trace_record_encode(kind, text, it->rec);
	trace_queue(it);
}

void
trace_done(queue_id_t id, int64_t when)
{
	struct trace_item *it = xcalloc(1, sizeof *it);

	it->id = id;
	it->done = when;
	trace_queue(it);
}

uint64_t
trace_dropped(void)
{
	return atomic_load(&tr.dropped);
}
