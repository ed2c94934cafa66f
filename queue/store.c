/*
 * store: the queue's LMDB environment (see store.h for the schema, the
 * room rules and the threading rules): open and close, transactions,
 * errors, and room (map growth, the reserve, admission of new mail, the
 * disk blocks kept past the data). The read functions are in
 * store_read.c, the changes in store_write.c, setting aside in
 * store_aside.c.
 *
 * Every LMDB call goes through a few wrappers that map errors to enum
 * store_status, retry a transaction start after another process grew the
 * map (MDB_MAP_RESIZED), and keep a write transaction that hit an error
 * from being used again.
 */
#include "queue/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/store_internal.h"

#define STORE_MAX_DBS 12
#define STORE_MAP_MIN ((size_t)1 << 20)
#define STORE_RESERVE_MIN ((size_t)1 << 20)
#define STORE_RESERVE_MAX ((size_t)256 << 20)
#define STORE_DISK_RESERVE_MIN ((size_t)256 << 10)
#define STORE_DISK_RESERVE_MAX ((size_t)16 << 20)
#define STORE_FULL_LOG_MS 10000	/* "queue full" at most this often */

const char *
store_status_text(int status)
{
	switch (status) {
	case STORE_OK:
		return "ok";
	case STORE_NOTFOUND:
		return "not found";
	case STORE_FULL:
		return "queue full (map or disk)";
	case STORE_IO:
		return "queue I/O error";
	case STORE_CORRUPT:
		return "corrupt record set aside";
	case STORE_INVALID:
		return "invalid data";
	case STORE_EXISTS:
		return "queue id already in use";
	case STORE_PANIC:
		return "queue environment broken (MDB_PANIC)";
	}
	return "unknown error";
}

/* ---- fault injection (tests) ---- */

static atomic_int store_fault_countdown[STORE_FAULT_NOPS];
static atomic_int store_fault_rc[STORE_FAULT_NOPS];

void
store_fault_set(enum store_fault_op op, int nth, int rc)
{
	if ((int)op < 0 || op >= STORE_FAULT_NOPS)
		return;
	atomic_store(&store_fault_rc[op], rc);
	atomic_store(&store_fault_countdown[op], nth > 0 ? nth : 0);
}

void
store_fault_clear(void)
{
	for (int i = 0; i < STORE_FAULT_NOPS; i++)
		atomic_store(&store_fault_countdown[i], 0);
}

int
store_fault_hit(enum store_fault_op op)
{
	if (atomic_load_explicit(&store_fault_countdown[op],
	    memory_order_relaxed) <= 0)
		return 0;
	if (atomic_fetch_sub(&store_fault_countdown[op], 1) != 1)
		return 0;
	return atomic_load(&store_fault_rc[op]);
}

/* ---- errors and transactions ---- */

/* Is the file system under the queue (nearly) full? Then an EIO from a
 * short write is a full disk (LMDB reports a short write as EIO). */
static int
disk_low(struct queue_store *s)
{
	struct statvfs vs;

	if (s->dir == NULL || statvfs(s->dir, &vs) != 0)
		return 0;
	return (uint64_t)vs.f_bavail * vs.f_frsize <
	    (s->disk_reserve > STORE_RESERVE_MIN ? s->disk_reserve :
	    STORE_RESERVE_MIN);
}

/* Logs a full queue, at most once every STORE_FULL_LOG_MS. */
static void
log_full(struct queue_store *s, const char *what, const char *why)
{
	int64_t now = time_mono_ms();
	int say;

	pthread_mutex_lock(&s->space_lock);
	say = s->full_logged == 0 || now - s->full_logged >= STORE_FULL_LOG_MS;
	if (say)
		s->full_logged = now;
	pthread_mutex_unlock(&s->space_lock);
	if (say)
		log_warn("queue: %s: %s", what, why);
}

int
store_err(struct queue_store *s, int rc, const char *what)
{
	switch (rc) {
	case 0:
		return STORE_OK;
	case MDB_NOTFOUND:
		return STORE_NOTFOUND;
	case MDB_KEYEXIST:
		return STORE_EXISTS;
	case MDB_MAP_FULL:
		atomic_store(&s->map_full, 1);
		log_full(s, what, mdb_strerror(rc));
		return STORE_FULL;
	case MDB_TXN_FULL:
	case ENOSPC:
	case EDQUOT:
		log_full(s, what, mdb_strerror(rc));
		return STORE_FULL;
	case EIO:
		if (disk_low(s)) {
			log_full(s, what, "the file system under queue_dir is full");
			return STORE_FULL;
		}
		log_error("queue: %s: %s", what, mdb_strerror(rc));
		return STORE_IO;
	case MDB_PANIC:
		if (atomic_exchange(&s->panicked, 1) == 0)
			log_error("queue: %s: %s: the queue environment is broken; "
			    "the server must be restarted", what, mdb_strerror(rc));
		return STORE_PANIC;
	default:
		log_error("queue: %s: %s", what, mdb_strerror(rc));
		return STORE_IO;
	}
}

int
wtxn_fail(struct store_wtxn *t, int rc, const char *what)
{
	int st = store_err(t->s, rc, what);

	if (st == STORE_FULL || st == STORE_IO || st == STORE_PANIC) {
		t->dead = 1;
		t->dead_status = st;
	}
	return st;
}

static void
store_adopt_map_size(struct queue_store *s)
{
	MDB_envinfo info;
	int rc;

	pthread_rwlock_wrlock(&s->resize_lock);
	rc = mdb_env_set_mapsize(s->env, 0);
	if (rc == 0 && mdb_env_info(s->env, &info) == 0)
		s->map_size = info.me_mapsize;
	pthread_rwlock_unlock(&s->resize_lock);
	if (rc != 0)
		log_error("queue: adopting the grown map size: %s", mdb_strerror(rc));
	else
		log_info("queue: map grown by another process; adopted its size");
}

int
txn_begin_top(struct queue_store *s, unsigned flags, MDB_txn **txn_r)
{
	int rc;

	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&s->resize_lock);
		rc = mdb_txn_begin(s->env, NULL, flags, txn_r);
		if (rc == 0)
			return 0;
		pthread_rwlock_unlock(&s->resize_lock);
		if (rc != MDB_MAP_RESIZED || tries > 0)
			return rc;
		store_adopt_map_size(s);
	}
}

int
rtxn_begin(struct queue_store *s, MDB_txn **txn_r)
{
	int rc = txn_begin_top(s, MDB_RDONLY, txn_r);

	return rc == 0 ? STORE_OK : store_err(s, rc, "read transaction");
}

void
rtxn_end(struct queue_store *s, MDB_txn **txnp)
{
	if (*txnp == NULL)
		return;
	mdb_txn_abort(*txnp);
	*txnp = NULL;
	pthread_rwlock_unlock(&s->resize_lock);
}

int
store_wtxn_begin(struct queue_store *s, struct store_wtxn *parent,
    struct store_wtxn **txn_r)
{
	struct store_wtxn *t;
	MDB_txn *txn;
	int rc;

	*txn_r = NULL;
	if (s->rdonly) {
		log_error("queue: write transaction on a read-only store");
		return STORE_IO;
	}
	if (parent != NULL) {
		if (parent->dead)
			return parent->dead_status;
		/* The child may change what the parent's view holds. */
		parent->mbox_valid = 0;
		strcount_free(&parent->mbox);
		rc = mdb_txn_begin(s->env, parent->txn, 0, &txn);
	} else {
		rc = txn_begin_top(s, 0, &txn);
	}
	if (rc != 0)
		return store_err(s, rc, "write transaction");
	t = xcalloc(1, sizeof *t);
	t->s = s;
	t->parent = parent;
	t->txn = txn;
	*txn_r = t;
	return STORE_OK;
}

static void
wtxn_release(struct store_wtxn **txnp)
{
	struct store_wtxn *t = *txnp;

	if (t->parent == NULL)
		pthread_rwlock_unlock(&t->s->resize_lock);
	strcount_free(&t->mbox);
	free(t);
	*txnp = NULL;
}

/*
 * LMDB reuses the pages a transaction freed only when two more commits
 * have passed (a reader may still use the snapshot before it). When an
 * administrator frees space in a full map, every later commit could fail
 * before any succeeds, so the space would never come back: this tiny
 * commit right after the delete makes it usable for the next writer.
 */
static void
store_bump(struct queue_store *s)
{
	static const char name[] = "generation";
	MDB_val k = { sizeof name - 1, (void *)name }, v;
	uint8_t nb[8];
	uint64_t gen = 0;
	MDB_txn *txn;
	int rc;

	if ((rc = txn_begin_top(s, 0, &txn)) != 0) {
		log_warn("queue: after a delete: %s", mdb_strerror(rc));
		return;
	}
	if (s_get(s, txn, s->dbi_meta, &k, &v) == 0 && v.mv_size == 8)
		gen = be_get64(v.mv_data);
	be_put64(nb, gen + 1);
	v = (MDB_val){ sizeof nb, nb };
	rc = s_put(s, txn, s->dbi_meta, &k, &v, 0);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->resize_lock);
	if (rc != 0)
		log_warn("queue: after a delete: %s", mdb_strerror(rc));
	else
		atomic_fetch_add(&s->commits, 1);
}

/* Keeps disk_reserve bytes of blocks allocated past the end of the data
 * (FALLOC_FL_KEEP_SIZE: the file does not grow, LMDB does not notice),
 * so that state changes can be written when the file system is full. */
static void
keep_disk_reserve(struct queue_store *s)
{
	MDB_envinfo info;
	off_t end;
	int fd, rc = 0;

	if (s->rdonly || s->disk_reserve == 0 || mdb_env_info(s->env, &info) != 0 ||
	    mdb_env_get_fd(s->env, &fd) != 0)
		return;
	end = (off_t)((info.me_last_pgno + 1) * s->psize);
	pthread_mutex_lock(&s->space_lock);
	if (s->reserved_to < end + (off_t)s->disk_reserve / 2) {
		rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, end, (off_t)s->disk_reserve);
		if (rc == 0)
			s->reserved_to = end + (off_t)s->disk_reserve;
	}
	pthread_mutex_unlock(&s->space_lock);
	if (rc != 0 && errno != EOPNOTSUPP)
		log_full(s, "keeping a reserve on the disk", strerror(errno));
}

int
store_wtxn_commit(struct store_wtxn **txnp)
{
	struct store_wtxn *t = *txnp;
	struct queue_store *s;
	int rc, st;

	if (t == NULL)
		return STORE_IO;
	s = t->s;
	if (t->dead) {
		st = t->dead_status;
		mdb_txn_abort(t->txn);
		wtxn_release(txnp);
		return st;
	}
	if (t->parent == NULL && (rc = store_fault_hit(STORE_FAULT_COMMIT)) != 0)
		mdb_txn_abort(t->txn);
	else
		rc = mdb_txn_commit(t->txn);	/* frees the txn even when it fails */
	st = rc == 0 ? STORE_OK : store_err(s, rc, "commit");
	if (st == STORE_OK && t->parent == NULL)
		atomic_fetch_add(&s->commits, 1);
	if (rc != 0 && t->parent != NULL) {
		t->parent->dead = 1;	/* LMDB poisons the parent too */
		t->parent->dead_status = st;
	}
	if (st == STORE_OK && t->parent != NULL)
		t->parent->freed |= t->freed;
	if (st == STORE_OK && t->parent == NULL) {
		int freed = t->freed;
		wtxn_release(txnp);
		if (freed)
			store_bump(s);
		keep_disk_reserve(s);
		return st;
	}
	wtxn_release(txnp);
	return st;
}

void
store_wtxn_abort(struct store_wtxn **txnp)
{
	if (txnp == NULL || *txnp == NULL)
		return;
	mdb_txn_abort((*txnp)->txn);
	wtxn_release(txnp);
}

int
wput(struct store_wtxn *t, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned flags,
    const char *what)
{
	int rc;

	if (t->dead)
		return t->dead_status;
	rc = s_put(t->s, t->txn, dbi, k, v, flags);
	return rc == 0 ? STORE_OK : wtxn_fail(t, rc, what);
}

int
wdel(struct store_wtxn *t, MDB_dbi dbi, MDB_val *k, const char *what)
{
	int rc;

	if (t->dead)
		return t->dead_status;
	rc = s_del(t->s, t->txn, dbi, k);
	return rc == 0 || rc == MDB_NOTFOUND ? STORE_OK : wtxn_fail(t, rc, what);
}

/* ---- room ---- */

/* Pages in use by t's view of the data: every database, the freelist's
 * own pages and the two meta pages (free pages are not counted). */
static int
used_pages(struct store_wtxn *t, uint64_t *pages_r)
{
	struct queue_store *s = t->s;
	MDB_dbi dbis[11] = { 0, 1, s->dbi_msg, s->dbi_body, s->dbi_rcpt,
	    s->dbi_due, s->dbi_meta, s->dbi_bad };
	size_t ndbis = 8;
	uint64_t n = 2;

	if (!s->no_live)
		dbis[ndbis++] = s->dbi_live;
	if (!s->no_stage)
		dbis[ndbis++] = s->dbi_stage;
	for (size_t i = 0; i < ndbis; i++) {
		MDB_stat ms;
		int rc = mdb_stat(t->txn, dbis[i], &ms);

		if (rc != 0)
			return wtxn_fail(t, rc, "measuring the queue");
		n += ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
	}
	*pages_r = n;
	return STORE_OK;
}

int
store_room(struct store_wtxn *t, uint64_t need)
{
	struct queue_store *s = t->s;
	struct statvfs vs;
	struct stat fst;
	uint64_t pages, used, in_file_free = 0, beyond;
	int fd, st;

	if (t->dead)
		return t->dead_status;
	if ((st = used_pages(t, &pages)) != STORE_OK)
		return st;
	used = pages * s->psize;
	if (used + need > s->map_max) {
		log_full(s, "new mail refused", "the queue reached queue_map_max");
		return STORE_FULL;
	}
	if (s->dir == NULL || statvfs(s->dir, &vs) != 0 ||
	    mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &fst) != 0)
		return STORE_OK;
	/* Free pages inside the file, blocks allocated past its end and the
	 * free space of the file system together must hold the message and
	 * still the reserve. */
	if ((uint64_t)fst.st_size > used)
		in_file_free = (uint64_t)fst.st_size - used;
	pthread_mutex_lock(&s->space_lock);
	beyond = s->reserved_to > fst.st_size ?
	    (uint64_t)(s->reserved_to - fst.st_size) : 0;
	pthread_mutex_unlock(&s->space_lock);
	if (in_file_free + beyond + (uint64_t)vs.f_bavail * vs.f_frsize <
	    need + s->disk_reserve) {
		log_full(s, "new mail refused",
		    "the file system under queue_dir is full");
		return STORE_FULL;
	}
	return STORE_OK;
}

int
store_grow(struct queue_store *s)
{
	size_t want;
	int rc = 0, grown = 0;

	if (s->rdonly || !atomic_exchange(&s->map_full, 0))
		return 0;
	pthread_rwlock_wrlock(&s->resize_lock);
	want = s->map_size < s->map_limit / 2 ? s->map_size * 2 : s->map_limit;
	if (want > s->map_size) {
		rc = mdb_env_set_mapsize(s->env, want);
		if (rc == 0) {
			s->map_size = want;
			grown = 1;
		}
	}
	pthread_rwlock_unlock(&s->resize_lock);
	if (rc != 0)
		log_error("queue: growing the map: %s", mdb_strerror(rc));
	else if (grown)
		log_info("queue: map grown to %zu MiB (new mail up to %zu MiB)",
		    want >> 20, s->map_max >> 20);
	return grown;
}

int
store_reader_check(struct queue_store *s)
{
	int dead = 0, rc = mdb_reader_check(s->env, &dead);

	if (rc != 0) {
		store_err(s, rc, "checking reader slots");
		return -1;
	}
	if (dead > 0)
		log_warn("queue: cleared %d stale reader slot(s)", dead);
	return dead;
}

int
store_space_get(struct queue_store *s, struct store_space *sp_r)
{
	struct store_wtxn t = { .s = s };
	uint64_t pages = 0;
	int st;

	memset(sp_r, 0, sizeof *sp_r);
	if ((st = rtxn_begin(s, &t.txn)) != STORE_OK)
		return st;
	st = used_pages(&t, &pages);
	rtxn_end(s, &t.txn);
	pthread_rwlock_rdlock(&s->resize_lock);
	sp_r->map_size = s->map_size;
	pthread_rwlock_unlock(&s->resize_lock);
	sp_r->map_max = s->map_max;
	sp_r->map_limit = s->map_limit;
	sp_r->used = (size_t)(pages * s->psize);
	sp_r->disk_reserve = s->disk_reserve;
	return st == STORE_OK ? STORE_OK : STORE_IO;
}

uint64_t
store_commit_count(struct queue_store *s)
{
	return atomic_load(&s->commits);
}

uint64_t
store_op_count(struct queue_store *s)
{
	return atomic_load_explicit(&s->ops, memory_order_relaxed);
}

int
store_panicked(struct queue_store *s)
{
	return atomic_load(&s->panicked);
}

/* ---- open and close ---- */

static int
mkdir_p(const char *dir)
{
	char *path;
	int rc = 0;

	if (dir[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	path = xstrdup(dir);
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char save = *p;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			rc = -1;
			break;
		}
		*p = save;
		if (save == '\0')
			break;
	}
	free(path);
	return rc;
}

static int
open_dbis(struct queue_store *s, char *err, size_t errsize)
{
	static const struct {
		const char *name;
		size_t off;
	} dbs[] = {
		{ "msg", offsetof(struct queue_store, dbi_msg) },
		{ "body", offsetof(struct queue_store, dbi_body) },
		{ "rcpt", offsetof(struct queue_store, dbi_rcpt) },
		{ "due", offsetof(struct queue_store, dbi_due) },
		{ "meta", offsetof(struct queue_store, dbi_meta) },
		{ "bad", offsetof(struct queue_store, dbi_bad) },
		{ "live", offsetof(struct queue_store, dbi_live) },
		{ "stage", offsetof(struct queue_store, dbi_stage) },
	};
	MDB_txn *txn;
	MDB_val k = { 6, (void *)"schema" }, v;
	uint8_t ver[4];
	int rc;

	rc = mdb_txn_begin(s->env, NULL, s->rdonly ? MDB_RDONLY : 0, &txn);
	if (rc != 0) {
		snprintf(err, errsize, "cannot begin a transaction: %s",
		    mdb_strerror(rc));
		return -1;
	}
	for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)s + dbs[i].off);
		rc = mdb_dbi_open(txn, dbs[i].name, s->rdonly ? 0 : MDB_CREATE, dbi);
		if (rc == MDB_NOTFOUND && s->rdonly && dbi == &s->dbi_live) {
			/* A queue of schema 1, read only: readers need no
			 * live counts. */
			s->no_live = 1;
			continue;
		}
		if (rc == MDB_NOTFOUND && s->rdonly && dbi == &s->dbi_stage) {
			/* Schema 1 or 2, read only: nothing is staged. */
			s->no_stage = 1;
			continue;
		}
		if (rc != 0) {
			snprintf(err, errsize, "cannot open database %s: %s",
			    dbs[i].name, mdb_strerror(rc));
			mdb_txn_abort(txn);
			return -1;
		}
	}
	rc = mdb_get(txn, s->dbi_meta, &k, &v);
	if (rc == 0 && (v.mv_size != 4 ||
	    be_get32(v.mv_data) > STORE_SCHEMA_VERSION)) {
		snprintf(err, errsize, "queue schema %" PRIu32 " is not supported "
		    "by this program (%d)", v.mv_size == 4 ? be_get32(v.mv_data) : 0,
		    STORE_SCHEMA_VERSION);
		mdb_txn_abort(txn);
		return -1;
	}
	if ((rc == MDB_NOTFOUND || (rc == 0 &&
	    be_get32(v.mv_data) < STORE_SCHEMA_VERSION)) && !s->rdonly) {
		/* New, or schema 1 (no live counts: they are made as
		 * needed; recipient records of version 1 are read) or 2
		 * (envelope records of version 1 are read). */
		be_put32(ver, STORE_SCHEMA_VERSION);
		v = (MDB_val){ sizeof ver, ver };
		rc = mdb_put(txn, s->dbi_meta, &k, &v, 0);
	} else if (rc == MDB_NOTFOUND) {
		rc = 0;
	}
	/* Committing (even a read txn) keeps the database handles open. */
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (rc != 0) {
		snprintf(err, errsize, "cannot initialise the queue: %s",
		    mdb_strerror(rc));
		return -1;
	}
	return 0;
}

/* Takes <dir>/daemon.lock exclusively and writes our pid into it.
 * Returns the descriptor, or -1 with a message in err. */
static int
daemon_lock(const char *dir, char *err, size_t errsize)
{
	char path[4096], pid[32];
	int fd, n;

	if (snprintf(path, sizeof path, "%s/daemon.lock", dir) >= (int)sizeof path) {
		snprintf(err, errsize, "%s: path too long", dir);
		return -1;
	}
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		n = (int)read(fd, pid, sizeof pid - 1);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (e == EWOULDBLOCK)
			snprintf(err, errsize, "%s is in use by another mailserver "
			    "(pid %s); only one daemon may run on a queue",
			    dir, pid[0] ? pid : "unknown");
		else
			snprintf(err, errsize, "%s: %s", path, strerror(e));
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("queue: %s: cannot write the pid", path);
	return fd;
}

/* Room figures: the reserve above map_max, and the disk reserve. */
static void
space_init(struct queue_store *s, const struct store_limits *lim)
{
	struct statvfs vs;
	size_t r;

	s->map_max = lim->map_max > s->map_size ? lim->map_max : s->map_size;
	r = s->map_max / 8;
	r = r < STORE_RESERVE_MIN ? STORE_RESERVE_MIN :
	    r > STORE_RESERVE_MAX ? STORE_RESERVE_MAX : r;
	s->map_limit = s->map_max + r;
	if (s->map_limit < s->map_size)
		s->map_limit = s->map_size;
	s->disk_reserve = 0;
	if (!s->rdonly && statvfs(s->dir, &vs) == 0) {
		uint64_t total = (uint64_t)vs.f_blocks * vs.f_frsize / 16;
		total = total < STORE_DISK_RESERVE_MIN ? STORE_DISK_RESERVE_MIN :
		    total > STORE_DISK_RESERVE_MAX ? STORE_DISK_RESERVE_MAX : total;
		s->disk_reserve = (size_t)(total < r ? total : r);
	}
}

struct queue_store *
store_open(const char *dir, size_t map_size, unsigned flags, char *err,
    size_t errsize)
{
	struct store_limits lim = { .map_size = map_size };

	return store_open_limits(dir, &lim, flags, err, errsize);
}

struct queue_store *
store_open_limits(const char *dir, const struct store_limits *limp,
    unsigned flags, char *err, size_t errsize)
{
	struct store_limits lim = { 0 };
	struct queue_store *s;
	MDB_envinfo info;
	MDB_stat est;
	char path[4096];
	struct stat st;
	int rc, dead = 0;
	size_t want;

	if (limp != NULL)
		lim = *limp;
	if (lim.map_size == 0)
		lim.map_size = STORE_MAP_SIZE_DEFAULT;
	if (lim.map_size < STORE_MAP_MIN)
		lim.map_size = STORE_MAP_MIN;
	if (mkdir_p(dir) != 0) {
		snprintf(err, errsize, "%s: cannot create: %s", dir, strerror(errno));
		return NULL;
	}
	if ((flags & STORE_RDONLY) != 0) {
		/* A read-only open needs the files: make an empty queue. */
		if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path) {
			snprintf(err, errsize, "%s: path too long", dir);
			return NULL;
		}
		if (stat(path, &st) != 0 && errno == ENOENT) {
			s = store_open_limits(dir, &lim,
			    flags & ~(unsigned)(STORE_RDONLY | STORE_EXCLUSIVE),
			    err, errsize);
			if (s == NULL)
				return NULL;
			store_close(&s);
		}
	}
	s = xcalloc(1, sizeof *s);
	s->rdonly = (flags & STORE_RDONLY) != 0;
	s->lock_fd = -1;
	s->dir = xstrdup(dir);
	if ((flags & STORE_EXCLUSIVE) != 0 &&
	    (s->lock_fd = daemon_lock(dir, err, errsize)) < 0) {
		free(s->dir);
		free(s);
		return NULL;
	}
	pthread_rwlock_init(&s->resize_lock, NULL);
	pthread_mutex_init(&s->space_lock, NULL);
	if ((rc = mdb_env_create(&s->env)) != 0) {
		snprintf(err, errsize, "lmdb: %s", mdb_strerror(rc));
		s->env = NULL;
		goto fail;
	}
	mdb_env_set_maxdbs(s->env, STORE_MAX_DBS);
	if (lim.max_readers > 0)
		mdb_env_set_maxreaders(s->env, lim.max_readers);
	/* No map size before the open: the file's own (it may have grown);
	 * then at least what was asked for. */
	rc = mdb_env_open(s->env, dir, MDB_NOTLS | (s->rdonly ? MDB_RDONLY : 0),
	    0600);
	if (rc != 0) {
		snprintf(err, errsize, "%s: cannot open the queue: %s", dir,
		    mdb_strerror(rc));
		goto fail;
	}
	mdb_env_info(s->env, &info);
	mdb_env_stat(s->env, &est);
	s->psize = est.ms_psize;
	want = info.me_mapsize > lim.map_size ? info.me_mapsize : lim.map_size;
	if (want != info.me_mapsize &&
	    (rc = mdb_env_set_mapsize(s->env, want)) != 0) {
		snprintf(err, errsize, "%s: cannot size the queue map: %s", dir,
		    mdb_strerror(rc));
		goto fail;
	}
	s->map_size = want;
	space_init(s, &lim);
	if (mdb_reader_check(s->env, &dead) == 0 && dead > 0)
		log_warn("queue: cleared %d stale reader slot(s)", dead);
	if (open_dbis(s, err, errsize) != 0)
		goto fail;
	keep_disk_reserve(s);
	queue_id_floor(store_max_id(s));
	/* Before the daemon lets anyone stage: what a crash left goes. */
	if ((flags & STORE_EXCLUSIVE) != 0 && !s->rdonly &&
	    (rc = store_stage_sweep(s, NULL)) != STORE_OK) {
		snprintf(err, errsize, "%s: cannot drop what staging left: %s",
		    dir, store_status_text(rc));
		goto fail;
	}
	return s;
fail:
	if (s->env != NULL)
		mdb_env_close(s->env);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_rwlock_destroy(&s->resize_lock);
	pthread_mutex_destroy(&s->space_lock);
	free(s->dir);
	free(s);
	return NULL;
}

void
store_close(struct queue_store **sp)
{
	struct queue_store *s = *sp;

	if (s == NULL)
		return;
	mdb_env_close(s->env);
	if (s->lock_fd >= 0)
		close(s->lock_fd);	/* releases the daemon lock */
	pthread_rwlock_destroy(&s->resize_lock);
	pthread_mutex_destroy(&s->space_lock);
	free(s->dir);
	free(s);
	*sp = NULL;
}
