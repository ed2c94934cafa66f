/*
 * store: the queue's LMDB environment (see store.h for the schema and the
 * threading rules). Every LMDB call goes through a few wrappers here that
 * map errors to enum store_status, retry a transaction start after another
 * process grew the map (MDB_MAP_RESIZED), and keep a write transaction
 * that hit an error from being used again. Records that fail to decode
 * are collected while reading and set aside into `bad` afterwards.
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
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"

#define STORE_MAX_DBS 8
#define STORE_RECORD_BUF_MAX (1024 * 1024)	/* encoded records of one message */
#define STORE_LIST_BATCH 64			/* messages per read txn */
#define KEY_ID_LEN 8
#define KEY_RCPT_LEN 12
#define KEY_DUE_LEN 20
#define KEY_BAD_MAX 32

struct queue_store {
	MDB_env *env;
	MDB_dbi dbi_msg, dbi_body, dbi_rcpt, dbi_due, dbi_meta, dbi_bad;
	int rdonly;
	int lock_fd;		/* daemon.lock (STORE_EXCLUSIVE), or -1 */
	/* Held shared by every transaction of this process, exclusively to
	 * adopt a map grown by another process (mdb_env_set_mapsize requires
	 * that no transaction is active). */
	pthread_rwlock_t resize_lock;
	_Atomic uint64_t commits;
};

struct store_wtxn {
	struct queue_store *s;
	struct store_wtxn *parent;
	MDB_txn *txn;
	int dead;		/* an LMDB error poisoned it: only abort is left */
	int dead_status;
	int freed;		/* an administrative delete freed space */
};

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

static const char *const store_counter_names[STORE_CTR_COUNT] = {
	"received", "delivered", "deferred", "bounced", "rejected",
};

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
	}
	return "unknown error";
}

/* ---- keys ---- */

static void
be_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void
be_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint64_t
be_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t
be_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static MDB_val
key_id(uint8_t k[KEY_ID_LEN], queue_id_t id)
{
	be_put64(k, id);
	return (MDB_val){ KEY_ID_LEN, k };
}

static MDB_val
key_rcpt(uint8_t k[KEY_RCPT_LEN], queue_id_t id, uint32_t idx)
{
	be_put64(k, id);
	be_put32(k + 8, idx);
	return (MDB_val){ KEY_RCPT_LEN, k };
}

static MDB_val
key_due(uint8_t k[KEY_DUE_LEN], int64_t when, queue_id_t id, uint32_t idx)
{
	be_put64(k, (uint64_t)when);
	be_put64(k + 8, id);
	be_put32(k + 16, idx);
	return (MDB_val){ KEY_DUE_LEN, k };
}

static int
key_has_id(const MDB_val *k, queue_id_t id)
{
	uint8_t p[KEY_ID_LEN];

	be_put64(p, id);
	return k->mv_size >= KEY_ID_LEN && memcmp(k->mv_data, p, KEY_ID_LEN) == 0;
}

/* ---- errors and transactions ---- */

static int
store_err(int rc, const char *what)
{
	switch (rc) {
	case 0:
		return STORE_OK;
	case MDB_NOTFOUND:
		return STORE_NOTFOUND;
	case MDB_KEYEXIST:
		return STORE_EXISTS;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
	case ENOSPC:
	case EDQUOT:
		log_warn("queue: %s: %s", what, mdb_strerror(rc));
		return STORE_FULL;
	default:
		log_error("queue: %s: %s", what, mdb_strerror(rc));
		return STORE_IO;
	}
}

/* Marks t dead after an error that LMDB leaves the txn unusable for. */
static int
wtxn_fail(struct store_wtxn *t, int rc, const char *what)
{
	int st = store_err(rc, what);

	if (st == STORE_FULL || st == STORE_IO) {
		t->dead = 1;
		t->dead_status = st;
	}
	return st;
}

static void
store_adopt_map_size(struct queue_store *s)
{
	int rc;

	pthread_rwlock_wrlock(&s->resize_lock);
	rc = mdb_env_set_mapsize(s->env, 0);
	pthread_rwlock_unlock(&s->resize_lock);
	if (rc != 0)
		log_error("queue: adopting the grown map size: %s", mdb_strerror(rc));
	else
		log_info("queue: map grown by another process; adopted its size");
}

/* Begins a top-level txn holding the resize lock shared; on failure the
 * lock is released. */
static int
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

static int
rtxn_begin(struct queue_store *s, MDB_txn **txn_r)
{
	int rc = txn_begin_top(s, MDB_RDONLY, txn_r);

	return rc == 0 ? STORE_OK : store_err(rc, "read transaction");
}

static void
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
		rc = mdb_txn_begin(s->env, parent->txn, 0, &txn);
	} else {
		rc = txn_begin_top(s, 0, &txn);
	}
	if (rc != 0)
		return store_err(rc, "write transaction");
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
	if (mdb_get(txn, s->dbi_meta, &k, &v) == 0 && v.mv_size == 8)
		gen = be_get64(v.mv_data);
	be_put64(nb, gen + 1);
	v = (MDB_val){ sizeof nb, nb };
	rc = mdb_put(txn, s->dbi_meta, &k, &v, 0);
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

int
store_wtxn_commit(struct store_wtxn **txnp)
{
	struct store_wtxn *t = *txnp;
	int rc, st;

	if (t == NULL)
		return STORE_IO;
	if (t->dead) {
		st = t->dead_status;
		mdb_txn_abort(t->txn);
		wtxn_release(txnp);
		return st;
	}
	rc = mdb_txn_commit(t->txn);	/* frees the txn even when it fails */
	st = rc == 0 ? STORE_OK : store_err(rc, "commit");
	if (st == STORE_OK && t->parent == NULL)
		atomic_fetch_add(&t->s->commits, 1);
	if (rc != 0 && t->parent != NULL) {
		t->parent->dead = 1;	/* LMDB poisons the parent too */
		t->parent->dead_status = st;
	}
	if (st == STORE_OK && t->parent != NULL)
		t->parent->freed |= t->freed;
	if (st == STORE_OK && t->parent == NULL && t->freed) {
		struct queue_store *s = t->s;
		wtxn_release(txnp);
		store_bump(s);
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
	if (rc == MDB_NOTFOUND && !s->rdonly) {
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

struct queue_store *
store_open(const char *dir, size_t map_size, unsigned flags, char *err,
    size_t errsize)
{
	struct queue_store *s;
	char path[4096];
	struct stat st;
	int rc, dead = 0;

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
			s = store_open(dir, map_size, flags & ~(unsigned)STORE_RDONLY,
			    err, errsize);
			if (s == NULL)
				return NULL;
			store_close(&s);
		}
	}
	s = xcalloc(1, sizeof *s);
	s->rdonly = (flags & STORE_RDONLY) != 0;
	s->lock_fd = -1;
	if ((flags & STORE_EXCLUSIVE) != 0 &&
	    (s->lock_fd = daemon_lock(dir, err, errsize)) < 0) {
		free(s);
		return NULL;
	}
	pthread_rwlock_init(&s->resize_lock, NULL);
	if ((rc = mdb_env_create(&s->env)) != 0) {
		snprintf(err, errsize, "lmdb: %s", mdb_strerror(rc));
		s->env = NULL;
		goto fail;
	}
	mdb_env_set_maxdbs(s->env, STORE_MAX_DBS);
	mdb_env_set_mapsize(s->env, map_size ? map_size : STORE_MAP_SIZE_DEFAULT);
	rc = mdb_env_open(s->env, dir, MDB_NOTLS | (s->rdonly ? MDB_RDONLY : 0),
	    0600);
	if (rc != 0) {
		snprintf(err, errsize, "%s: cannot open the queue: %s", dir,
		    mdb_strerror(rc));
		goto fail;
	}
	if (mdb_reader_check(s->env, &dead) == 0 && dead > 0)
		log_warn("queue: cleared %d stale reader slot(s)", dead);
	if (open_dbis(s, err, errsize) != 0)
		goto fail;
	queue_id_floor(store_max_id(s));
	return s;
fail:
	if (s->env != NULL)
		mdb_env_close(s->env);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_rwlock_destroy(&s->resize_lock);
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
	free(s);
	*sp = NULL;
}

uint64_t
store_commit_count(struct queue_store *s)
{
	return atomic_load(&s->commits);
}

queue_id_t
store_max_id(struct queue_store *s)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	queue_id_t id = 0;
	int rc;

	if (rtxn_begin(s, &txn) != STORE_OK)
		return 0;
	rc = mdb_cursor_open(txn, s->dbi_msg, &c);
	if (rc == 0) {
		/* Skip over junk keys of another length (they are set aside
		 * when met by the readers). */
		rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
		while (rc == 0 && k.mv_size != KEY_ID_LEN)
			rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
		if (rc == 0)
			id = be_get64(k.mv_data);
		mdb_cursor_close(c);
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		store_err(rc, "reading the largest queue id");
	rtxn_end(s, &txn);
	return id;
}

/* ---- setting corrupt records aside ---- */

static void
bad_add(struct bad_list *bl, enum bad_kind kind, queue_id_t id, uint32_t idx,
    const MDB_val *key)
{
	struct bad_item *b;

	if (bl->n == bl->cap) {
		bl->cap = bl->cap ? bl->cap * 2 : 8;
		bl->v = xrealloc(bl->v, bl->cap * sizeof *bl->v);
	}
	b = &bl->v[bl->n++];
	memset(b, 0, sizeof *b);
	b->kind = kind;
	b->id = id;
	b->idx = idx;
	if (key != NULL) {
		b->klen = key->mv_size < KEY_BAD_MAX ? key->mv_size : KEY_BAD_MAX;
		memcpy(b->key, key->mv_data, b->klen);
	}
}

static const char *
key_text(const MDB_val *k, char *out, size_t outsize)
{
	char id[QUEUE_ID_LEN + 1];

	if (k->mv_size == KEY_ID_LEN)
		snprintf(out, outsize, "%s", queue_id_format(be_get64(k->mv_data),
		    id, sizeof id));
	else if (k->mv_size == KEY_RCPT_LEN)
		snprintf(out, outsize, "%s#%" PRIu32, queue_id_format(
		    be_get64(k->mv_data), id, sizeof id),
		    be_get32((const uint8_t *)k->mv_data + 8));
	else
		snprintf(out, outsize, "(key of %zu bytes)", k->mv_size);
	return out;
}

/* Moves the record at key of dbi (letter tag) into `bad`. */
static int
setaside_record(struct store_wtxn *t, MDB_dbi dbi, char tag, const MDB_val *key)
{
	uint8_t bk[1 + 511];
	MDB_val v, bkey;
	char txt[64];
	int rc;

	if (key->mv_size > sizeof bk - 1)
		return STORE_INVALID;
	rc = mdb_get(t->txn, dbi, (MDB_val *)key, &v);
	if (rc == MDB_NOTFOUND)
		return STORE_OK;
	if (rc != 0)
		return wtxn_fail(t, rc, "set aside: read");
	bk[0] = (uint8_t)tag;
	memcpy(bk + 1, key->mv_data, key->mv_size);
	bkey = (MDB_val){ key->mv_size + 1, bk };
	if ((rc = mdb_put(t->txn, t->s->dbi_bad, &bkey, &v, 0)) != 0 ||
	    (rc = mdb_del(t->txn, dbi, (MDB_val *)key, NULL)) != 0)
		return wtxn_fail(t, rc, "set aside");
	log_warn("queue: %c/%s: record set aside (moved to bad)",
	    tag, key_text(key, txt, sizeof txt));
	return STORE_OK;
}

/* Deletes every due entry of message id (recipient idx, or all when
 * all_idx): a full scan, only for records whose next_try is unknown. */
static int
due_purge_scan(struct store_wtxn *t, queue_id_t id, int all_idx, uint32_t idx)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi_due, &c)) != 0)
		return wtxn_fail(t, rc, "due scan");
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		const uint8_t *p = k.mv_data;
		if (k.mv_size == KEY_DUE_LEN && be_get64(p + 8) == id &&
		    (all_idx || be_get32(p + 16) == idx)) {
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
			/* After a delete MDB_NEXT yields the following entry. */
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? STORE_OK : wtxn_fail(t, rc, "due scan");
}

/* Moves every record of dbi whose key starts with id into `bad`. */
static int
setaside_prefix(struct store_wtxn *t, MDB_dbi dbi, char tag, queue_id_t id)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	int rc, st;

	for (;;) {
		if ((rc = mdb_cursor_open(t->txn, dbi, &c)) != 0)
			return wtxn_fail(t, rc, "set aside");
		k = key_id(kb, id);
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && !key_has_id(&k, id))
			rc = MDB_NOTFOUND;
		if (rc != 0) {
			mdb_cursor_close(c);
			return rc == MDB_NOTFOUND ? STORE_OK :
			    wtxn_fail(t, rc, "set aside");
		}
		uint8_t copy[KEY_BAD_MAX];
		MDB_val ck = { k.mv_size < sizeof copy ? k.mv_size : sizeof copy, copy };
		memcpy(copy, k.mv_data, ck.mv_size);
		mdb_cursor_close(c);
		if (ck.mv_size != k.mv_size)
			return STORE_INVALID;
		if ((st = setaside_record(t, dbi, tag, &ck)) != STORE_OK)
			return st;
	}
}

/* Sets a whole message aside: envelope, body chunks, recipients; drops
 * its due entries. */
static int
setaside_msg(struct store_wtxn *t, queue_id_t id)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_val k = key_id(kb, id);
	int st;

	if ((st = setaside_record(t, t->s->dbi_msg, 'm', &k)) != STORE_OK ||
	    (st = setaside_prefix(t, t->s->dbi_body, 'b', id)) != STORE_OK ||
	    (st = setaside_prefix(t, t->s->dbi_rcpt, 'r', id)) != STORE_OK)
		return st;
	return due_purge_scan(t, id, 1, 0);
}

static int due_is_live(MDB_txn *txn, struct queue_store *s, int64_t when,
    queue_id_t id, uint32_t idx, int *rc_r);

/* Sets aside what readers found, in one write txn of its own (after
 * their read txn ended), checking again that each still fails. */
static void
bad_apply(struct queue_store *s, struct bad_list *bl)
{
	struct store_wtxn *t;
	int st = STORE_OK;

	if (bl->n == 0)
		goto out;
	if (s->rdonly) {
		log_warn("queue: %zu undecodable record(s) skipped (read-only)",
		    bl->n);
		goto out;
	}
	if (store_wtxn_begin(s, NULL, &t) != STORE_OK)
		goto out;
	for (size_t i = 0; i < bl->n && st == STORE_OK; i++) {
		struct bad_item *b = &bl->v[i];
		MDB_val k = { b->klen, b->key }, v;
		struct queue_rcpt rc;
		int rcode, grc;

		switch (b->kind) {
		case BAD_MSG:
			/* The envelope or the body was bad: the whole message
			 * goes aside together (ids are never reused). */
			rcode = mdb_get(t->txn, s->dbi_msg, &k, &v);
			if (rcode == 0 && k.mv_size == KEY_ID_LEN)
				st = setaside_msg(t, b->id);
			else if (rcode == 0)
				st = setaside_record(t, s->dbi_msg, 'm', &k);
			break;
		case BAD_RCPT:
			rcode = mdb_get(t->txn, s->dbi_rcpt, &k, &v);
			if (rcode != 0)
				break;
			if (k.mv_size == KEY_RCPT_LEN &&
			    record_rcpt_decode(v.mv_data, v.mv_size, &rc) == 0) {
				queue_rcpt_clear(&rc);
				break;
			}
			st = setaside_record(t, s->dbi_rcpt, 'r', &k);
			if (st == STORE_OK && k.mv_size == KEY_RCPT_LEN)
				st = due_purge_scan(t, b->id, 0, b->idx);
			break;
		case BAD_DUE:
			if (k.mv_size == KEY_DUE_LEN && due_is_live(t->txn, s,
			    (int64_t)be_get64(b->key), be_get64(b->key + 8),
			    be_get32(b->key + 16), &grc) == 1)
				break;	/* made live again meanwhile */
			rcode = mdb_del(t->txn, s->dbi_due, &k, NULL);
			if (rcode != 0 && rcode != MDB_NOTFOUND)
				st = wtxn_fail(t, rcode, "dropping a stale due entry");
			break;
		}
	}
	if (st == STORE_OK)
		store_wtxn_commit(&t);
	else
		store_wtxn_abort(&t);
out:
	free(bl->v);
	memset(bl, 0, sizeof *bl);
}

/* ---- reading ---- */

/* Reads the recipients of id into m (under txn); undecodable ones go to
 * bl. */
static int
read_rcpts(struct queue_store *s, MDB_txn *txn, queue_id_t id,
    struct queue_msg *m, struct bad_list *bl)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	size_t cap = 0;
	int rc;

	if ((rc = mdb_cursor_open(txn, s->dbi_rcpt, &c)) != 0)
		return store_err(rc, "reading recipients");
	k = key_rcpt(kb, id, 0);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	    rc == 0 && key_has_id(&k, id);
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct queue_rcpt r;
		uint32_t idx = k.mv_size == KEY_RCPT_LEN ?
		    be_get32((const uint8_t *)k.mv_data + 8) : 0;
		char txt[64];

		if (k.mv_size != KEY_RCPT_LEN ||
		    record_rcpt_decode(v.mv_data, v.mv_size, &r) != 0) {
			log_warn("queue: r/%s: recipient record fails to decode",
			    key_text(&k, txt, sizeof txt));
			bad_add(bl, BAD_RCPT, id, idx, &k);
			continue;
		}
		r.idx = idx;
		if (m->nrcpts == cap) {
			cap = cap ? cap * 2 : 4;
			m->rcpts = xrealloc(m->rcpts, cap * sizeof *m->rcpts);
		}
		m->rcpts[m->nrcpts++] = r;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? STORE_OK :
	    store_err(rc, "reading recipients");
}

/* Decodes the message at (k, v) with its recipients into m. */
static int
read_msg(struct queue_store *s, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct queue_msg *m, struct bad_list *bl)
{
	char txt[64];
	int st;

	memset(m, 0, sizeof *m);
	if (k->mv_size != KEY_ID_LEN ||
	    record_msg_decode(v->mv_data, v->mv_size, &m->env, &m->size) != 0) {
		log_warn("queue: m/%s: envelope record fails to decode",
		    key_text(k, txt, sizeof txt));
		bad_add(bl, BAD_MSG, k->mv_size == KEY_ID_LEN ?
		    be_get64(k->mv_data) : 0, 0, k);
		return STORE_CORRUPT;
	}
	m->env.id = be_get64(k->mv_data);
	st = read_rcpts(s, txn, m->env.id, m, bl);
	if (st != STORE_OK)
		queue_msg_free(m);
	return st;
}

int
store_msg_load(struct queue_store *s, queue_id_t id, struct queue_msg *msg_r)
{
	struct bad_list bl = { 0 };
	uint8_t kb[KEY_ID_LEN];
	MDB_txn *txn;
	MDB_val k = key_id(kb, id), v;
	int st, rc;

	memset(msg_r, 0, sizeof *msg_r);
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	rc = mdb_get(txn, s->dbi_msg, &k, &v);
	if (rc == 0)
		st = read_msg(s, txn, &k, &v, msg_r, &bl);
	else
		st = store_err(rc, "reading a message");
	rtxn_end(s, &txn);
	bad_apply(s, &bl);
	return st;
}

int
store_body_read(struct queue_store *s, queue_id_t id, size_t limit,
    char **body_r, size_t *len_r)
{
	struct bad_list bl = { 0 };
	uint8_t kb[KEY_RCPT_LEN];
	struct envelope env;
	struct buf out;
	MDB_txn *txn;
	MDB_cursor *c = NULL;
	MDB_val k = key_id(kb, id), v;
	uint64_t size = 0, want;
	uint32_t chunk = 0;
	int st, rc;

	*body_r = NULL;
	*len_r = 0;
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	rc = mdb_get(txn, s->dbi_msg, &k, &v);
	if (rc != 0) {
		st = store_err(rc, "reading a message");
		goto done;
	}
	if (record_msg_decode(v.mv_data, v.mv_size, &env, &size) != 0) {
		st = STORE_CORRUPT;
		goto corrupt;
	}
	envelope_free(&env);
	want = limit != 0 && limit < size ? limit : size;
	/* Grows with the chunks actually present, never by the size the
	 * record claims. */
	buf_init(&out, (size_t)want);
	if ((rc = mdb_cursor_open(txn, s->dbi_body, &c)) != 0) {
		st = store_err(rc, "reading a body");
		goto done;
	}
	k = key_rcpt(kb, id, 0);
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (out.len < want) {
		uint64_t expect = size - (uint64_t)chunk * RECORD_CHUNK_SIZE;
		size_t take;

		if (expect > RECORD_CHUNK_SIZE)
			expect = RECORD_CHUNK_SIZE;
		if (rc != 0 || !key_has_id(&k, id) || k.mv_size != KEY_RCPT_LEN ||
		    be_get32((const uint8_t *)k.mv_data + 8) != chunk ||
		    v.mv_size != expect) {
			if (rc != 0 && rc != MDB_NOTFOUND) {
				st = store_err(rc, "reading a body");
				buf_free(&out);
				goto done;
			}
			st = STORE_CORRUPT;
			buf_free(&out);
			goto corrupt;
		}
		take = want - out.len < v.mv_size ? (size_t)(want - out.len) :
		    v.mv_size;
		buf_append(&out, v.mv_data, take);
		chunk++;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	if (out.data == NULL) {
		*body_r = xstrdup("");
		*len_r = 0;
	} else {
		*body_r = buf_steal(&out, len_r);
	}
	st = STORE_OK;
	goto done;
corrupt:
	{
		char idtxt[QUEUE_ID_LEN + 1];
		log_warn("queue: %s: message body or envelope fails to decode",
		    queue_id_format(id, idtxt, sizeof idtxt));
		k = key_id(kb, id);
		bad_add(&bl, BAD_MSG, id, 0, &k);
	}
done:
	if (c != NULL)
		mdb_cursor_close(c);
	rtxn_end(s, &txn);
	bad_apply(s, &bl);
	return st;
}

int
store_foreach_msg(struct queue_store *s, store_msg_fn fn, void *arg)
{
	struct queue_msg batch[STORE_LIST_BATCH];
	queue_id_t next = 0;

	for (;;) {
		struct bad_list bl = { 0 };
		uint8_t kb[KEY_ID_LEN];
		MDB_txn *txn;
		MDB_cursor *c;
		MDB_val k, v;
		size_t n = 0;
		int st, rc, more = 0, ret = 0;

		if ((st = rtxn_begin(s, &txn)) != STORE_OK)
			return st;
		if ((rc = mdb_cursor_open(txn, s->dbi_msg, &c)) != 0) {
			rtxn_end(s, &txn);
			return store_err(rc, "listing messages");
		}
		k = key_id(kb, next);
		for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
		    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			if (n == STORE_LIST_BATCH) {
				more = 1;
				break;
			}
			if (k.mv_size == KEY_ID_LEN)
				next = be_get64(k.mv_data) + 1;
			st = read_msg(s, txn, &k, &v, &batch[n], &bl);
			if (st == STORE_OK)
				n++;
			else if (st != STORE_CORRUPT)
				break;
		}
		mdb_cursor_close(c);
		rtxn_end(s, &txn);
		bad_apply(s, &bl);
		if (rc != 0 && rc != MDB_NOTFOUND) {
			st = store_err(rc, "listing messages");
			more = 0;
			ret = st;
		} else if (st != STORE_OK && st != STORE_CORRUPT) {
			more = 0;
			ret = st;
		}
		for (size_t i = 0; i < n; i++) {
			if (ret == 0)
				ret = fn(&batch[i], arg);
			queue_msg_free(&batch[i]);
		}
		if (ret != 0)
			return ret;
		if (!more)
			return STORE_OK;
	}
}

/* Is (when, id, idx) a live due entry: the recipient exists, still needs
 * delivery and is due at when? Under any txn. Returns 1, 0 (stale), -1
 * (undecodable recipient), or an LMDB error < -1 via *rc_r. */
static int
due_is_live(MDB_txn *txn, struct queue_store *s, int64_t when, queue_id_t id,
    uint32_t idx, int *rc_r)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_val k = key_rcpt(kb, id, idx), v;
	struct queue_rcpt r;
	int live;

	*rc_r = mdb_get(txn, s->dbi_rcpt, &k, &v);
	if (*rc_r == MDB_NOTFOUND) {
		*rc_r = 0;
		return 0;
	}
	if (*rc_r != 0)
		return 0;
	if (record_rcpt_decode(v.mv_data, v.mv_size, &r) != 0)
		return -1;
	live = (r.state == RCPT_QUEUED || r.state == RCPT_DEFERRED) &&
	    r.next_try == when;
	queue_rcpt_clear(&r);
	return live;
}

int
store_due_list(struct queue_store *s, const struct store_due *after,
    int64_t until, struct store_due *out, size_t max, size_t *n_r)
{
	struct bad_list bl = { 0 };
	uint8_t kb[KEY_DUE_LEN];
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	int st, rc;

	*n_r = 0;
	if (max == 0)
		return STORE_OK;
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	if ((rc = mdb_cursor_open(txn, s->dbi_due, &c)) != 0) {
		rtxn_end(s, &txn);
		return store_err(rc, "listing due recipients");
	}
	if (after != NULL) {
		k = key_due(kb, after->when, after->id, after->idx);
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == KEY_DUE_LEN &&
		    memcmp(k.mv_data, kb, KEY_DUE_LEN) == 0)
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	}
	for (; rc == 0 && *n_r < max; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *p = k.mv_data;
		int64_t when;
		queue_id_t id;
		uint32_t idx;
		int live, grc;

		if (k.mv_size != KEY_DUE_LEN) {
			bad_add(&bl, BAD_DUE, 0, 0, &k);
			continue;
		}
		when = (int64_t)be_get64(p);
		if (when > until || when < 0)
			break;
		id = be_get64(p + 8);
		idx = be_get32(p + 16);
		live = due_is_live(txn, s, when, id, idx, &grc);
		if (grc != 0) {
			rc = grc;
			break;
		}
		if (live == 1) {
			out[*n_r].when = when;
			out[*n_r].id = id;
			out[*n_r].idx = idx;
			(*n_r)++;
			continue;
		}
		if (live < 0) {
			uint8_t rk[KEY_RCPT_LEN];
			MDB_val rkey = key_rcpt(rk, id, idx);
			bad_add(&bl, BAD_RCPT, id, idx, &rkey);
		}
		bad_add(&bl, BAD_DUE, id, idx, &k);
	}
	mdb_cursor_close(c);
	rtxn_end(s, &txn);
	if (bl.n > 0)
		log_warn("queue: %zu stale or bad due entries found", bl.n);
	bad_apply(s, &bl);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_err(rc, "listing due recipients");
	return STORE_OK;
}

static uint64_t
dbi_entries(MDB_txn *txn, MDB_dbi dbi, int *rc_r)
{
	MDB_stat ms;
	int rc = mdb_stat(txn, dbi, &ms);

	if (rc != 0) {
		*rc_r = rc;
		return 0;
	}
	return ms.ms_entries;
}

static uint64_t
meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name)
{
	MDB_val k = { strlen(name), (void *)name }, v;

	if (mdb_get(txn, dbi, &k, &v) != 0 || v.mv_size != 8)
		return 0;
	return be_get64(v.mv_data);
}

int
store_stats_get(struct queue_store *s, struct store_stats *st_r)
{
	MDB_txn *txn;
	int st, rc = 0;

	memset(st_r, 0, sizeof *st_r);
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	st_r->received = meta_get_u64(txn, s->dbi_meta, "received");
	st_r->delivered = meta_get_u64(txn, s->dbi_meta, "delivered");
	st_r->deferred = meta_get_u64(txn, s->dbi_meta, "deferred");
	st_r->bounced = meta_get_u64(txn, s->dbi_meta, "bounced");
	st_r->rejected = meta_get_u64(txn, s->dbi_meta, "rejected");
	st_r->messages = dbi_entries(txn, s->dbi_msg, &rc);
	st_r->recipients = dbi_entries(txn, s->dbi_rcpt, &rc);
	st_r->pending = dbi_entries(txn, s->dbi_due, &rc);
	st_r->bad = dbi_entries(txn, s->dbi_bad, &rc);
	rtxn_end(s, &txn);
	return rc == 0 ? STORE_OK : store_err(rc, "reading stats");
}

/* ---- writing ---- */

static int
wput(struct store_wtxn *t, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned flags,
    const char *what)
{
	int rc;

	if (t->dead)
		return t->dead_status;
	rc = mdb_put(t->txn, dbi, k, v, flags);
	return rc == 0 ? STORE_OK : wtxn_fail(t, rc, what);
}

/* Deletes k from dbi; a missing key is fine. */
static int
wdel(struct store_wtxn *t, MDB_dbi dbi, MDB_val *k, const char *what)
{
	int rc;

	if (t->dead)
		return t->dead_status;
	rc = mdb_del(t->txn, dbi, k, NULL);
	return rc == 0 || rc == MDB_NOTFOUND ? STORE_OK : wtxn_fail(t, rc, what);
}

int
store_counter_add(struct store_wtxn *t, enum store_counter c, uint64_t n)
{
	const char *name;
	MDB_val k, v;
	uint8_t nb[8];
	uint64_t cur = 0;
	int rc;

	if ((unsigned)c >= STORE_CTR_COUNT)
		return STORE_INVALID;
	if (t->dead)
		return t->dead_status;
	if (n == 0)
		return STORE_OK;
	name = store_counter_names[c];
	k = (MDB_val){ strlen(name), (void *)name };
	rc = mdb_get(t->txn, t->s->dbi_meta, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		cur = be_get64(v.mv_data);
	else if (rc == 0 && setaside_record(t, t->s->dbi_meta, 'M', &k) != STORE_OK)
		return t->dead ? t->dead_status : STORE_IO;
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc, "reading a counter");
	be_put64(nb, cur + n);
	v = (MDB_val){ sizeof nb, nb };
	return wput(t, t->s->dbi_meta, &k, &v, 0, "writing a counter");
}

int
store_put_msg(struct store_wtxn *t, const struct envelope *env,
    const char *body, size_t body_len)
{
	struct queue_store *s = t->s;
	struct buf mrec, rrec;
	size_t *roff = NULL;
	uint8_t kb[KEY_DUE_LEN];
	MDB_val k, v;
	int st = STORE_OK, rc;

	if (t->dead)
		return t->dead_status;
	if (env->id == 0 || env->nrcpts == 0 || env->rcpts == NULL ||
	    (body == NULL && body_len > 0))
		return STORE_INVALID;
	buf_init(&mrec, STORE_RECORD_BUF_MAX);
	buf_init(&rrec, (size_t)STORE_RECORD_BUF_MAX * 16);
	if (record_msg_encode(env, body_len, &mrec) != 0) {
		st = STORE_INVALID;
		goto out;
	}
	roff = xcalloc(env->nrcpts + 1, sizeof *roff);
	for (size_t i = 0; i < env->nrcpts; i++) {
		struct queue_rcpt r = {
			.addr = env->rcpts[i].addr,
			.orcpt = env->rcpts[i].orcpt,
			.notify = env->rcpts[i].notify,
			.state = RCPT_QUEUED,
			.next_try = env->arrival,
			.diag = "",
		};
		roff[i] = rrec.len;
		if (record_rcpt_encode(&r, &rrec) != 0) {
			st = STORE_INVALID;
			goto out;
		}
	}
	roff[env->nrcpts] = rrec.len;
	k = key_id(kb, env->id);
	rc = mdb_get(t->txn, s->dbi_msg, &k, &v);
	if (rc == 0) {
		st = STORE_EXISTS;
		goto out;
	}
	if (rc != MDB_NOTFOUND) {
		st = wtxn_fail(t, rc, "checking a queue id");
		goto out;
	}
	v = (MDB_val){ mrec.len, mrec.data };
	if ((st = wput(t, s->dbi_msg, &k, &v, MDB_NOOVERWRITE, "writing an envelope")))
		goto out;
	for (uint32_t ch = 0; (size_t)ch * RECORD_CHUNK_SIZE < body_len; ch++) {
		size_t off = (size_t)ch * RECORD_CHUNK_SIZE;
		size_t n = body_len - off < RECORD_CHUNK_SIZE ? body_len - off :
		    RECORD_CHUNK_SIZE;
		k = key_rcpt(kb, env->id, ch);
		v = (MDB_val){ n, (void *)(body + off) };
		if ((st = wput(t, s->dbi_body, &k, &v, 0, "writing a body")))
			goto out;
	}
	for (size_t i = 0; i < env->nrcpts; i++) {
		k = key_rcpt(kb, env->id, (uint32_t)i);
		v = (MDB_val){ roff[i + 1] - roff[i], rrec.data + roff[i] };
		if ((st = wput(t, s->dbi_rcpt, &k, &v, 0, "writing a recipient")))
			goto out;
		k = key_due(kb, env->arrival, env->id, (uint32_t)i);
		v = (MDB_val){ 0, NULL };
		if ((st = wput(t, s->dbi_due, &k, &v, 0, "writing a due entry")))
			goto out;
	}
	st = store_counter_add(t, STORE_CTR_RECEIVED, 1);
out:
	free(roff);
	buf_free(&mrec);
	buf_free(&rrec);
	return st;
}

/* Deletes every record of dbi whose key starts with id; *found_r is set
 * when there was one. */
static int
delete_prefix(struct store_wtxn *t, MDB_dbi dbi, queue_id_t id, int *found_r)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if (t->dead)
		return t->dead_status;
	if ((rc = mdb_cursor_open(t->txn, dbi, &c)) != 0)
		return wtxn_fail(t, rc, "deleting");
	k = key_id(kb, id);
	/* Re-seek after each delete: simple and safe at page boundaries. */
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)) == 0 &&
	    key_has_id(&k, id)) {
		*found_r = 1;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		k = key_id(kb, id);
	}
	mdb_cursor_close(c);
	if (rc == 0 || rc == MDB_NOTFOUND)
		return STORE_OK;
	return wtxn_fail(t, rc, "deleting");
}

/* Removes the due entries of id's recipients (read from their records;
 * a full scan when one does not decode). */
static int
delete_dues_of(struct store_wtxn *t, queue_id_t id)
{
	uint8_t kb[KEY_RCPT_LEN], dk[KEY_DUE_LEN];
	struct { int64_t when; uint32_t idx; } *dues = NULL;
	size_t n = 0, cap = 0;
	MDB_cursor *c;
	MDB_val k, v;
	int rc, st = STORE_OK, scan = 0;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi_rcpt, &c)) != 0)
		return wtxn_fail(t, rc, "deleting");
	k = key_rcpt(kb, id, 0);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	    rc == 0 && key_has_id(&k, id);
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct queue_rcpt r;

		if (k.mv_size != KEY_RCPT_LEN ||
		    record_rcpt_decode(v.mv_data, v.mv_size, &r) != 0) {
			scan = 1;
			continue;
		}
		if (r.state == RCPT_QUEUED || r.state == RCPT_DEFERRED) {
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				dues = xrealloc(dues, cap * sizeof *dues);
			}
			dues[n].when = r.next_try;
			dues[n].idx = be_get32((const uint8_t *)k.mv_data + 8);
			n++;
		}
		queue_rcpt_clear(&r);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		st = wtxn_fail(t, rc, "deleting");
	for (size_t i = 0; i < n && st == STORE_OK; i++) {
		k = key_due(dk, dues[i].when, id, dues[i].idx);
		st = wdel(t, t->s->dbi_due, &k, "deleting a due entry");
	}
	free(dues);
	if (st == STORE_OK && scan)
		st = due_purge_scan(t, id, 1, 0);
	return st;
}

static int
delete_msg(struct store_wtxn *t, queue_id_t id)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_val k = key_id(kb, id);
	int st, found = 0, rc;

	if (t->dead)
		return t->dead_status;
	rc = mdb_del(t->txn, t->s->dbi_msg, &k, NULL);
	if (rc == 0)
		found = 1;
	else if (rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc, "deleting an envelope");
	if ((st = delete_dues_of(t, id)) != STORE_OK ||
	    (st = delete_prefix(t, t->s->dbi_rcpt, id, &found)) != STORE_OK ||
	    (st = delete_prefix(t, t->s->dbi_body, id, &found)) != STORE_OK)
		return st;
	return found ? STORE_OK : STORE_NOTFOUND;
}

int
store_delete_msg(struct store_wtxn *t, queue_id_t id)
{
	int st = delete_msg(t, id);

	if (st == STORE_OK)
		t->freed = 1;
	return st;
}

int
store_delete_all(struct store_wtxn *t, uint64_t *count_r)
{
	struct queue_store *s = t->s;
	MDB_dbi dbis[] = { s->dbi_msg, s->dbi_body, s->dbi_rcpt, s->dbi_due };
	int rc = 0;
	uint64_t n;

	if (t->dead)
		return t->dead_status;
	n = dbi_entries(t->txn, s->dbi_msg, &rc);
	if (rc != 0)
		return wtxn_fail(t, rc, "counting messages");
	for (size_t i = 0; i < sizeof dbis / sizeof dbis[0]; i++)
		if ((rc = mdb_drop(t->txn, dbis[i], 0)) != 0)
			return wtxn_fail(t, rc, "deleting all messages");
	if (count_r != NULL)
		*count_r = n;
	t->freed = 1;
	return STORE_OK;
}

/* Reads recipient (id, idx) into r under t: STORE_OK, STORE_NOTFOUND, or
 * STORE_CORRUPT after setting it aside. */
static int
rcpt_get(struct store_wtxn *t, queue_id_t id, uint32_t idx, struct queue_rcpt *r)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_val k = key_rcpt(kb, id, idx), v;
	int rc, st;

	rc = mdb_get(t->txn, t->s->dbi_rcpt, &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND :
		    wtxn_fail(t, rc, "reading a recipient");
	if (record_rcpt_decode(v.mv_data, v.mv_size, r) == 0) {
		r->idx = idx;
		return STORE_OK;
	}
	if ((st = setaside_record(t, t->s->dbi_rcpt, 'r', &k)) != STORE_OK ||
	    (st = due_purge_scan(t, id, 0, idx)) != STORE_OK)
		return st;
	return STORE_CORRUPT;
}

static int
rcpt_put(struct store_wtxn *t, queue_id_t id, const struct queue_rcpt *r)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_val k = key_rcpt(kb, id, r->idx), v;
	struct buf b;
	int st;

	buf_init(&b, STORE_RECORD_BUF_MAX);
	if (record_rcpt_encode(r, &b) != 0) {
		buf_free(&b);
		return STORE_INVALID;
	}
	v = (MDB_val){ b.len, b.data };
	st = wput(t, t->s->dbi_rcpt, &k, &v, 0, "writing a recipient");
	buf_free(&b);
	return st;
}

/* Are all recipients of id final? Undecodable ones are set aside first.
 * Returns 1, 0, or -1 (error in *st_r). */
static int
all_final(struct store_wtxn *t, queue_id_t id, int *st_r)
{
	uint8_t kb[KEY_RCPT_LEN];
	uint32_t *badidx = NULL;
	size_t nbad = 0;
	MDB_cursor *c;
	MDB_val k, v;
	int rc, result = 1;

	*st_r = STORE_OK;
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi_rcpt, &c)) != 0) {
		*st_r = wtxn_fail(t, rc, "reading recipients");
		return -1;
	}
	k = key_rcpt(kb, id, 0);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	    rc == 0 && key_has_id(&k, id);
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct queue_rcpt r;

		if (k.mv_size != KEY_RCPT_LEN ||
		    record_rcpt_decode(v.mv_data, v.mv_size, &r) != 0) {
			if (k.mv_size == KEY_RCPT_LEN) {
				badidx = xrealloc(badidx, (nbad + 1) * sizeof *badidx);
				badidx[nbad++] = be_get32((const uint8_t *)k.mv_data + 8);
			}
			continue;
		}
		if (r.state == RCPT_QUEUED || r.state == RCPT_DEFERRED)
			result = 0;
		queue_rcpt_clear(&r);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		*st_r = wtxn_fail(t, rc, "reading recipients");
		result = -1;
	}
	for (size_t i = 0; i < nbad && result >= 0; i++) {
		struct queue_rcpt r;
		int st = rcpt_get(t, id, badidx[i], &r);	/* sets it aside */
		if (st == STORE_OK)
			queue_rcpt_clear(&r);
		else if (st != STORE_CORRUPT && st != STORE_NOTFOUND) {
			*st_r = st;
			result = -1;
		}
	}
	free(badidx);
	return result;
}

int
store_rcpt_update(struct store_wtxn *t, queue_id_t id, uint32_t idx,
    const struct rcpt_update *u, int *removed_r)
{
	struct queue_rcpt r;
	uint8_t kb[KEY_DUE_LEN];
	MDB_val k, v;
	char *diag = NULL;
	int st, fin;

	if (removed_r != NULL)
		*removed_r = 0;
	if (t->dead)
		return t->dead_status;
	if ((unsigned)u->state > RCPT_BOUNCED || u->next_try < 0 ||
	    u->attempt_time < 0 || (u->set_flags & ~RCPT_F_ALL) != 0)
		return STORE_INVALID;
	if ((st = rcpt_get(t, id, idx, &r)) != STORE_OK)
		return st;
	if (r.state == RCPT_SENT || r.state == RCPT_BOUNCED) {
		queue_rcpt_clear(&r);
		return STORE_OK;
	}
	k = key_due(kb, r.next_try, id, idx);
	if ((st = wdel(t, t->s->dbi_due, &k, "deleting a due entry")) != STORE_OK)
		goto out;
	r.state = u->state;
	r.flags |= u->set_flags;
	if (u->attempt_time > 0) {
		r.attempts++;
		r.last_try = u->attempt_time;
	}
	if (u->diag != NULL) {
		diag = xstrndup(u->diag, RECORD_DIAG_MAX - 1);
		free(r.diag);
		r.diag = diag;
	}
	fin = r.state == RCPT_SENT || r.state == RCPT_BOUNCED;
	if (!fin)
		r.next_try = u->next_try;
	if ((st = rcpt_put(t, id, &r)) != STORE_OK)
		goto out;
	if (!fin) {
		k = key_due(kb, r.next_try, id, idx);
		v = (MDB_val){ 0, NULL };
		if ((st = wput(t, t->s->dbi_due, &k, &v, 0, "writing a due entry")))
			goto out;
	}
	if (r.state == RCPT_SENT)
		st = store_counter_add(t, STORE_CTR_DELIVERED, 1);
	else if (r.state == RCPT_BOUNCED)
		st = store_counter_add(t, STORE_CTR_BOUNCED, 1);
	else if (r.state == RCPT_DEFERRED)
		st = store_counter_add(t, STORE_CTR_DEFERRED, 1);
	if (st != STORE_OK || !fin)
		goto out;
	fin = all_final(t, id, &st);
	if (fin == 1) {
		st = delete_msg(t, id);
		if (st == STORE_NOTFOUND)
			st = STORE_OK;
		if (st == STORE_OK && removed_r != NULL)
			*removed_r = 1;
	}
out:
	queue_rcpt_clear(&r);
	return st;
}

int
store_flush(struct store_wtxn *t, int64_t now, uint64_t *count_r)
{
	struct store_due *list = NULL;
	size_t n = 0, cap = 0;
	uint8_t kb[KEY_DUE_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t moved = 0;
	int rc, st = STORE_OK;

	if (count_r != NULL)
		*count_r = 0;
	if (t->dead)
		return t->dead_status;
	if (now < 0 || now == INT64_MAX)
		return STORE_INVALID;
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi_due, &c)) != 0)
		return wtxn_fail(t, rc, "flush");
	k = key_due(kb, now + 1, 0, 0);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *p = k.mv_data;

		if (k.mv_size != KEY_DUE_LEN)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			list = xrealloc(list, cap * sizeof *list);
		}
		list[n].when = (int64_t)be_get64(p);
		list[n].id = be_get64(p + 8);
		list[n].idx = be_get32(p + 16);
		n++;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		st = wtxn_fail(t, rc, "flush");
	for (size_t i = 0; i < n && st == STORE_OK; i++) {
		struct queue_rcpt r;
		int live;

		k = key_due(kb, list[i].when, list[i].id, list[i].idx);
		if ((st = wdel(t, t->s->dbi_due, &k, "flush")) != STORE_OK)
			break;
		st = rcpt_get(t, list[i].id, list[i].idx, &r);
		if (st == STORE_NOTFOUND || st == STORE_CORRUPT) {
			st = STORE_OK;	/* a stale entry: dropped above */
			continue;
		}
		if (st != STORE_OK)
			break;
		live = (r.state == RCPT_QUEUED || r.state == RCPT_DEFERRED) &&
		    r.next_try == list[i].when;
		if (live) {
			r.next_try = now;
			st = rcpt_put(t, list[i].id, &r);
			k = key_due(kb, now, list[i].id, list[i].idx);
			v = (MDB_val){ 0, NULL };
			if (st == STORE_OK)
				st = wput(t, t->s->dbi_due, &k, &v, 0, "flush");
			moved++;
		}
		queue_rcpt_clear(&r);
	}
	free(list);
	if (st == STORE_OK && count_r != NULL)
		*count_r = moved;
	return st;
}
