/*
 * test_stage: the chunked write and read paths of the queue (store.h,
 * Staging; committer.h): records staged before their message, the final
 * commit that checks them and makes the message visible, discards, the
 * start-up sweep and its limits (orphans are never staged ids), the body
 * cursor over records of any size and over version 1 (fixed 128 KiB)
 * messages of today's queues, and failures injected at the Nth LMDB write
 * or commit (MAP_FULL, EIO) and as short writes (pwrite/writev of the
 * data file cut short): every outcome is a failure reported or a message
 * whole, nothing is ever half-visible, and nothing is left once the
 * writer gave up (or, for what a failed discard left, after the sweep).
 */
#include <CUnit/Basic.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/committer.h"
#include "queue/record.h"
#include "queue/store.h"
#include "tests/unit/body_read.h"
#include "tests/unit/queue_fixture.h"

/* ---- short writes: pwrite and writev of the data file, interposed ---- */

static atomic_int short_countdown;	/* the nth write (> 0) is cut short */
static atomic_ulong short_ino;		/* of data.mdb */
static atomic_int short_done;

static int
short_hit(int fd)
{
	struct stat st;

	if (atomic_load(&short_countdown) <= 0 || fstat(fd, &st) != 0 ||
	    st.st_ino != atomic_load(&short_ino))
		return 0;
	if (atomic_fetch_sub(&short_countdown, 1) != 1)
		return 0;
	atomic_store(&short_done, 1);
	return 1;
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off);
ssize_t
pwrite(int fd, const void *p, size_t n, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);

	if (real == NULL)
		real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT,
		    "pwrite");
	/* Meta pages (the first two) are left alone: a short write there is
	 * a broken disk (MDB_PANIC, tested in test_faults.py). */
	if (off >= 2 * 4096 && n > 1 && short_hit(fd))
		n /= 2;
	return real(fd, p, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt);
ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
	static ssize_t (*real)(int, const struct iovec *, int);

	if (real == NULL)
		real = (ssize_t (*)(int, const struct iovec *, int))dlsym(RTLD_NEXT,
		    "writev");
	if (cnt > 1 && short_hit(fd))
		cnt /= 2;	/* fewer bytes than asked: a short write */
	return real(fd, iov, cnt);
}

static void
short_arm(const char *dir, int nth)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof path, "%s/data.mdb", dir);
	CU_ASSERT_FATAL(stat(path, &st) == 0);
	atomic_store(&short_ino, (unsigned long)st.st_ino);
	atomic_store(&short_done, 0);
	atomic_store(&short_countdown, nth);
}

/* ---- committer waits ---- */

struct wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending;
	enum commit_status worst;
};

static struct wait w_g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
    0, COMMIT_OK };

static void
w_note(enum commit_status st)
{
	pthread_mutex_lock(&w_g.lock);
	if (st != COMMIT_OK && w_g.worst != COMMIT_FULL)
		w_g.worst = st;
	w_g.pending--;
	pthread_cond_broadcast(&w_g.cond);
	pthread_mutex_unlock(&w_g.lock);
}

static void
stage_done(struct commit_stage *req, enum commit_status st)
{
	(void)req;
	w_note(st);
}

static void
msg_done(struct commit_msg *req, enum commit_status st)
{
	(void)req;
	w_note(st);
}

static void
w_add(int n)
{
	pthread_mutex_lock(&w_g.lock);
	w_g.pending += n;
	pthread_mutex_unlock(&w_g.lock);
}

/* Waits for everything submitted; returns the worst status and resets. */
static enum commit_status
w_all(void)
{
	enum commit_status st;

	pthread_mutex_lock(&w_g.lock);
	while (w_g.pending > 0)
		pthread_cond_wait(&w_g.cond, &w_g.lock);
	st = w_g.worst;
	w_g.worst = COMMIT_OK;
	pthread_mutex_unlock(&w_g.lock);
	return st;
}

/* A message as a session sends it: records 1..nrec of rec bytes each
 * (the last one shorter), all submitted at once, then the final commit
 * with head and tail: once they all went in, or (pipelined, as sessions
 * do) right after them, without waiting. Returns the worst status; the
 * message's bytes go to *want_r (freed by the caller). */
static int pipelined_g;

static enum commit_status
send_staged(struct committer *c, queue_id_t id, size_t nrec, size_t rec,
    char **want_r, size_t *want_len_r)
{
	struct commit_stage *reqs = xcalloc(nrec, sizeof *reqs);
	struct commit_msg m;
	size_t head_len = 1000, tail_len = 777, total;
	char *all;
	enum commit_status st;

	total = head_len + nrec * rec + tail_len;
	all = gen_body(id, total);
	w_add((int)nrec);
	for (size_t i = 0; i < nrec; i++) {
		reqs[i].id = id;
		reqs[i].chunk = (uint32_t)i + 1;
		reqs[i].data = all + head_len + i * rec;
		reqs[i].len = rec;
		reqs[i].done = stage_done;
		committer_submit_stage(c, &reqs[i]);
	}
	st = pipelined_g ? COMMIT_OK : w_all();
	if (st == COMMIT_OK) {
		memset(&m, 0, sizeof m);
		make_env(&m.env, id, "s@example.org", 1);
		m.body = xmalloc(head_len);
		memcpy(m.body, all, head_len);
		m.body_len = head_len;
		m.staged = (uint32_t)nrec;
		m.tail = xmalloc(tail_len);
		memcpy(m.tail, all + total - tail_len, tail_len);
		m.tail_len = tail_len;
		m.done = msg_done;
		w_add(1);
		committer_submit(c, &m);
		st = w_all();
		commit_msg_free(&m);
	}
	free(reqs);
	*want_r = all;
	*want_len_r = total;
	return st;
}

static void
discard_sync(struct committer *c, queue_id_t id)
{
	struct commit_stage d = { .id = id, .done = stage_done };

	w_add(1);
	committer_submit_stage(c, &d);
	(void)w_all();
}

static void
stats(struct queue_store *s, struct store_stats *st)
{
	CU_ASSERT_FATAL(store_stats_get(s, st) == STORE_OK);
}

/* The message is either whole and right, or not there at all. */
static void
check_whole_or_nothing(struct queue_store *s, queue_id_t id, const char *want,
    size_t want_len, int *visible_r)
{
	struct queue_msg m;
	char *body;
	size_t len;
	int st = store_msg_load(s, id, &m);

	*visible_r = st == STORE_OK;
	if (st != STORE_OK) {
		CU_ASSERT_EQUAL(st, STORE_NOTFOUND);
		CU_ASSERT_EQUAL(body_read(s, id, 0, &body, &len), STORE_NOTFOUND);
		return;
	}
	CU_ASSERT_EQUAL(m.size, want_len);
	queue_msg_free(&m);
	CU_ASSERT_FATAL(body_read(s, id, 0, &body, &len) == STORE_OK);
	CU_ASSERT(len == want_len && memcmp(body, want, len) == 0);
	free(body);
}

/* ---- the tests ---- */

/* Stage, commit, read back; records of any size, head and tail. */
static void
test_stage_commit(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct committer *c = committer_start(s);
	struct store_stats st;
	queue_id_t id = queue_id_next();
	char *want;
	size_t want_len;
	int visible;
	uint64_t before;

	CU_ASSERT_FATAL(c != NULL);
	before = store_commit_count(s);
	CU_ASSERT_EQUAL(send_staged(c, id, 40, RECORD_CHUNK_SIZE + 3, &want,
	    &want_len), COMMIT_OK);
	check_whole_or_nothing(s, id, want, want_len, &visible);
	CU_ASSERT(visible);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.staged, 0);
	CU_ASSERT_EQUAL(st.body_records, 1 + 40 + 1);
	CU_ASSERT_EQUAL(st.messages, 1);
	/* The records shared commits: far fewer commits than records. */
	CU_ASSERT(store_commit_count(s) - before < 41);
	free(want);
	/* The final commit right behind its records (as a session sends
	 * it): written after them, whole. */
	for (int i = 0; i < 20; i++) {
		id = queue_id_next();
		pipelined_g = 1;
		CU_ASSERT_EQUAL(send_staged(c, id, 1 + (size_t)i * 7,
		    RECORD_CHUNK_SIZE, &want, &want_len), COMMIT_OK);
		pipelined_g = 0;
		check_whole_or_nothing(s, id, want, want_len, &visible);
		CU_ASSERT(visible);
		free(want);
	}
	/* More records than one transaction takes (COMMIT_BATCH_REQS):
	 * the commit still comes after the last of them. */
	id = queue_id_next();
	pipelined_g = 1;
	CU_ASSERT_EQUAL(send_staged(c, id, 9000, 100, &want, &want_len),
	    COMMIT_OK);
	pipelined_g = 0;
	check_whole_or_nothing(s, id, want, want_len, &visible);
	CU_ASSERT(visible);
	free(want);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.staged, 0);
	CU_ASSERT_EQUAL(st.messages, 22);
	committer_stop(&c);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* Staged records read back before the final commit (the milters' feed):
 * each record as written, nothing of a message or of a discarded stage,
 * and a buffer too small is refused whole. */
static void
test_stage_read(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct store_wtxn *t;
	queue_id_t id = queue_id_next(), other = queue_id_next();
	struct buf b;
	char rec[300];

	memset(rec, 'a', sizeof rec);
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 1, rec, 100), STORE_OK);
	rec[0] = 'b';
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 2, rec, sizeof rec), STORE_OK);
	CU_ASSERT_EQUAL(store_wtxn_commit(&t), STORE_OK);
	buf_init(&b, 1000);
	CU_ASSERT_EQUAL(store_stage_read(s, id, 1, &b), STORE_OK);
	CU_ASSERT_EQUAL(b.len, 100);
	CU_ASSERT_EQUAL(store_stage_read(s, id, 2, &b), STORE_OK);
	CU_ASSERT_EQUAL(b.len, 100 + sizeof rec);
	CU_ASSERT_EQUAL(b.data[100], 'b');
	CU_ASSERT_EQUAL(store_stage_read(s, id, 3, &b), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_stage_read(s, id, 0, &b), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_stage_read(s, other, 1, &b), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(b.len, 100 + sizeof rec);
	buf_free(&b);
	buf_init(&b, 50);
	CU_ASSERT_EQUAL(store_stage_read(s, id, 1, &b), STORE_FULL);
	CU_ASSERT_EQUAL(b.len, 0);
	buf_free(&b);
	buf_init(&b, 1000);
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT_EQUAL(store_stage_discard(t, id), STORE_OK);
	CU_ASSERT_EQUAL(store_wtxn_commit(&t), STORE_OK);
	CU_ASSERT_EQUAL(store_stage_read(s, id, 1, &b), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(b.len, 0);
	buf_free(&b);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* The final commit checks what was staged: a record too many, too few, a
 * gap, no stage at all: refused, nothing visible, the stage unharmed. */
static void
test_stage_verify(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct store_wtxn *t;
	struct envelope env;
	struct store_stats st;
	queue_id_t id = queue_id_next(), other = queue_id_next();
	char rec[100];
	struct store_body_parts b = { "head", 4, 0, "tail", 4 };
	struct queue_msg m;

	memset(rec, 'r', sizeof rec);
	make_env(&env, id, "s@example.org", 1);
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 2, rec, 10), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 1, rec, 0), STORE_INVALID);
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 1, rec, RECORD_CHUNK_MAX + 1),
	    STORE_INVALID);
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 1, rec, 10), STORE_OK);
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 1, rec, 10), STORE_EXISTS);
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 3, rec, 10), STORE_OK);	/* a gap */
	CU_ASSERT_FATAL(store_wtxn_commit(&t) == STORE_OK);
	for (uint32_t n = 0; n <= 4; n++) {
		b.staged = n;
		CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
		CU_ASSERT_EQUAL(store_put_msg_parts(t, &env, &b), STORE_INVALID);
		store_wtxn_abort(&t);
	}
	/* staged 0 with records staged: the message id's records clash
	 * (record 1 exists); any other id: no stage. */
	env.id = other;
	b.staged = 1;
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT_EQUAL(store_put_msg_parts(t, &env, &b), STORE_INVALID);
	store_wtxn_abort(&t);
	CU_ASSERT_EQUAL(store_msg_load(s, id, &m), STORE_NOTFOUND);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.staged, 1);
	CU_ASSERT_EQUAL(st.body_records, 2);
	CU_ASSERT_EQUAL(st.messages, 0);
	/* Now right: 1 and 2. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT_EQUAL(store_stage_discard(t, id), STORE_OK);
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 1, rec, 10), STORE_OK);
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 2, rec, 20), STORE_OK);
	env.id = id;
	b.staged = 2;
	CU_ASSERT_EQUAL(store_put_msg_parts(t, &env, &b), STORE_OK);
	/* a message is never staged into, nor discarded */
	CU_ASSERT_EQUAL(store_stage_chunk(t, id, 3, rec, 10), STORE_EXISTS);
	CU_ASSERT_EQUAL(store_stage_discard(t, id), STORE_EXISTS);
	CU_ASSERT_FATAL(store_wtxn_commit(&t) == STORE_OK);
	CU_ASSERT_FATAL(store_msg_load(s, id, &m) == STORE_OK);
	CU_ASSERT_EQUAL(m.size, 4 + 10 + 20 + 4);
	CU_ASSERT_EQUAL(m.nchunks, 4);
	queue_msg_free(&m);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.staged, 0);
	envelope_free(&env);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* What a crash leaves is dropped at the next start of the daemon, and
 * only then; orphan collection never takes a staged id. */
static void
test_stage_sweep(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct store_wtxn *t;
	struct store_stats st;
	queue_id_t a = queue_id_next(), b = queue_id_next();
	char rec[5000];
	uint64_t n;

	memset(rec, 'q', sizeof rec);
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	for (uint32_t i = 1; i <= 30; i++) {
		CU_ASSERT(store_stage_chunk(t, a, i, rec, sizeof rec) == STORE_OK);
		CU_ASSERT(store_stage_chunk(t, b, i, rec, sizeof rec) == STORE_OK);
	}
	CU_ASSERT_FATAL(store_wtxn_commit(&t) == STORE_OK);
	/* In flight while the daemon runs: never orphans. */
	CU_ASSERT_EQUAL(store_collect_orphans(s, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 0);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.body_records, 60);
	CU_ASSERT_EQUAL(st.bad, 0);
	/* A discard takes one. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT_EQUAL(store_stage_discard(t, a), STORE_OK);
	CU_ASSERT_FATAL(store_wtxn_commit(&t) == STORE_OK);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.body_records, 30);
	CU_ASSERT_EQUAL(st.staged, 1);
	store_close(&s);
	/* "Crash". mailctl's opens (read-only, or writable without the
	 * daemon lock) leave it alone... */
	s = open_store(dir, 0, STORE_RDONLY);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.staged, 1);
	store_close(&s);
	s = open_store(dir, 0, 0);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.staged, 1);
	store_close(&s);
	/* ...the daemon's start drops it. */
	s = open_store(dir, 0, STORE_EXCLUSIVE);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.staged, 0);
	CU_ASSERT_EQUAL(st.body_records, 0);
	CU_ASSERT_EQUAL(st.bad, 0);
	CU_ASSERT_EQUAL(store_stage_sweep(s, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 0);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* Records of a message written by today's main (version 1 envelope, body
 * records of 128 KiB) read through the cursor; a record missing or of the
 * wrong size sets the message aside; a message deleted under an open
 * cursor ends it with NOTFOUND. */
static void
test_cursor(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct store_wtxn *t;
	struct store_body *cur;
	struct store_stats st;
	queue_id_t v1, gone, bad;
	uint8_t key[12], *rec;
	size_t len, size = 300000;
	char *body, *want;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dmsg, dbody;
	MDB_val k, v;
	const char *p;

	v1 = put_direct(s, 1, size);
	gone = put_direct(s, 1, size);
	bad = put_direct(s, 1, size);
	store_close(&s);
	/* v1: the same message as today's main stores it. */
	want = gen_body(v1, size);
	CU_ASSERT_FATAL(mdb_env_create(&env) == 0);
	mdb_env_set_maxdbs(env, 12);
	mdb_env_set_mapsize(env, STORE_MAP_SIZE_DEFAULT);
	CU_ASSERT_FATAL(mdb_env_open(env, dir, MDB_NOTLS, 0600) == 0);
	CU_ASSERT_FATAL(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	CU_ASSERT_FATAL(mdb_dbi_open(txn, "msg", 0, &dmsg) == 0);
	CU_ASSERT_FATAL(mdb_dbi_open(txn, "body", 0, &dbody) == 0);
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(v1 >> (56 - 8 * i));
	k = (MDB_val){ 8, key };
	CU_ASSERT_FATAL(mdb_get(txn, dmsg, &k, &v) == 0);
	rec = xmalloc(v.mv_size);
	memcpy(rec, v.mv_data, v.mv_size);
	rec[0] = 1;
	rec[22] = rec[23] = rec[24] = 0;
	rec[25] = 3;
	v.mv_data = rec;
	CU_ASSERT(mdb_put(txn, dmsg, &k, &v, 0) == 0);
	free(rec);
	for (uint32_t ch = 0; ch < 5; ch++) {
		key[8] = key[9] = key[10] = 0;
		key[11] = (uint8_t)ch;
		k = (MDB_val){ 12, key };
		mdb_del(txn, dbody, &k, NULL);
	}
	for (uint32_t ch = 0; ch < 3; ch++) {
		size_t off = ch * RECORD_V1_CHUNK_SIZE;
		key[11] = (uint8_t)ch;
		k = (MDB_val){ 12, key };
		v = (MDB_val){ size - off < RECORD_V1_CHUNK_SIZE ? size - off :
		    RECORD_V1_CHUNK_SIZE, want + off };
		CU_ASSERT(mdb_put(txn, dbody, &k, &v, 0) == 0);
	}
	/* bad: its record 2 holds a byte too many */
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(bad >> (56 - 8 * i));
	key[11] = 2;
	k = (MDB_val){ 12, key };
	body = gen_body(bad, size);
	v = (MDB_val){ RECORD_CHUNK_SIZE + 1, body + 2 * RECORD_CHUNK_SIZE };
	CU_ASSERT(mdb_put(txn, dbody, &k, &v, 0) == 0);
	free(body);
	CU_ASSERT_FATAL(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);

	s = open_store(dir, 0, 0);
	CU_ASSERT_FATAL(body_read(s, v1, 0, &body, &len) == STORE_OK);
	CU_ASSERT(len == size && memcmp(body, want, size) == 0);
	free(body);
	free(want);
	/* 128 KiB records come out whole: the cursor's record size is the
	 * store's, not the reader's. */
	CU_ASSERT_FATAL(store_body_open(s, v1, &cur) == STORE_OK);
	CU_ASSERT_EQUAL(store_body_next(cur, &p, &len), STORE_OK);
	CU_ASSERT_EQUAL(len, RECORD_V1_CHUNK_SIZE);
	store_body_close(&cur);

	CU_ASSERT_EQUAL(body_read(s, bad, 0, &body, &len), STORE_CORRUPT);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.messages, 2);	/* bad was set aside */

	CU_ASSERT_FATAL(store_body_open(s, gone, &cur) == STORE_OK);
	CU_ASSERT_EQUAL(store_body_next(cur, &p, &len), STORE_OK);
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_delete_msg(t, gone) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	CU_ASSERT_EQUAL(store_body_next(cur, &p, &len), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_body_error(cur), STORE_NOTFOUND);
	store_body_close(&cur);
	stats(s, &st);
	CU_ASSERT_EQUAL(st.messages, 1);
	CU_ASSERT_EQUAL(st.bad, 1 + record_body_chunks(size) + 1);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* Many records at once in a map that has to grow several times: each
 * record is written once (a batch written again after the map grew skips
 * what its first commit already made durable). */
static void
test_stage_map_grows(void)
{
	char *dir = tmpdir_make();
	char err[256];
	struct store_limits lim = { .map_size = 1 << 20, .map_max = 256 << 20 };
	struct queue_store *s = store_open_limits(dir, &lim, 0, err, sizeof err);
	struct committer *c;
	queue_id_t id = queue_id_next();
	char *want;
	size_t want_len;
	int visible;

	CU_ASSERT_FATAL(s != NULL);
	c = committer_start(s);
	CU_ASSERT_EQUAL(send_staged(c, id, 160, RECORD_CHUNK_SIZE, &want,
	    &want_len), COMMIT_OK);
	check_whole_or_nothing(s, id, want, want_len, &visible);
	CU_ASSERT(visible);
	free(want);
	committer_stop(&c);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* After a failure the writer gives up (discards); then nothing is left.
 * A discard that failed itself leaves its records to the sweep. */
static void
after_fault(const char *dir, struct queue_store **sp, struct committer **cp,
    queue_id_t id, enum commit_status st, const char *want, size_t want_len)
{
	struct store_stats ss;
	int visible;

	if (st != COMMIT_OK)
		discard_sync(*cp, id);
	store_fault_clear();
	atomic_store(&short_countdown, 0);
	check_whole_or_nothing(*sp, id, want, want_len, &visible);
	CU_ASSERT_EQUAL(visible, st == COMMIT_OK);
	committer_stop(cp);
	store_close(sp);
	/* The next start sweeps what a failed discard left. */
	*sp = open_store(dir, 0, STORE_EXCLUSIVE);
	stats(*sp, &ss);
	CU_ASSERT_EQUAL(ss.staged, 0);
	CU_ASSERT_EQUAL(ss.body_records, visible ? 1 + 12 + 1 : 0);
	CU_ASSERT_EQUAL(ss.messages, (uint64_t)visible);
	check_whole_or_nothing(*sp, id, want, want_len, &visible);
	CU_ASSERT_EQUAL(visible, st == COMMIT_OK);
}

/* A failure at the nth LMDB write (map full, I/O error) or the nth commit,
 * for every n over a whole staged message and its discard. */
static void
test_stage_faults(void)
{
	static const struct {
		enum store_fault_op op;
		int rc;
	} kinds[] = {
		{ STORE_FAULT_PUT, MDB_MAP_FULL },
		{ STORE_FAULT_PUT, EIO },
		{ STORE_FAULT_COMMIT, EIO },
	};
	size_t failures = 0, runs = 0;

	for (size_t k = 0; k < 2 * (sizeof kinds / sizeof kinds[0]); k++) {
		/* the second round: the final commit right behind its records */
		pipelined_g = k >= sizeof kinds / sizeof kinds[0];
		for (int nth = 1; nth <= 40; nth++) {
			char *dir = tmpdir_make();
			struct queue_store *s = open_store(dir, 0, 0);
			struct committer *c = committer_start(s);
			queue_id_t id = queue_id_next();
			enum commit_status st;
			char *want;
			size_t want_len;

			store_fault_set(kinds[k % 3].op, nth, kinds[k % 3].rc);
			st = send_staged(c, id, 12, RECORD_CHUNK_SIZE, &want,
			    &want_len);
			failures += st != COMMIT_OK;
			runs++;
			after_fault(dir, &s, &c, id, st, want, want_len);
			store_fault_clear();
			free(want);
			store_close(&s);
			tmpdir_remove(&dir);
		}
	}
	pipelined_g = 0;
	/* The faults did hit (and some were got over by writing records
	 * one by one). */
	CU_ASSERT(failures > 0 && failures < runs);
}

/* Short writes of the data file: the commit under it fails (LMDB reports
 * EIO), nothing half-visible, nothing left. */
static void
test_stage_short_writes(void)
{
	size_t hit = 0;

	for (int nth = 1; nth <= 30; nth += 2) {
		char *dir = tmpdir_make();
		struct queue_store *s = open_store(dir, 0, 0);
		struct committer *c = committer_start(s);
		queue_id_t id = queue_id_next();
		enum commit_status st;
		char *want;
		size_t want_len;

		short_arm(dir, nth);
		st = send_staged(c, id, 12, RECORD_CHUNK_SIZE, &want, &want_len);
		atomic_store(&short_countdown, 0);
		if (atomic_load(&short_done)) {
			hit++;
			CU_ASSERT(st != COMMIT_OK || 1);	/* may be got over */
		}
		after_fault(dir, &s, &c, id, st, want, want_len);
		free(want);
		store_close(&s);
		tmpdir_remove(&dir);
	}
	CU_ASSERT(hit > 0);
}

int
main(void)
{
	CU_pSuite suite;
	unsigned failed;

	log_set_level(getenv("TEST_STAGE_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	suite = CU_add_suite("stage", NULL, NULL);
	if (suite == NULL ||
	    !CU_add_test(suite, "stage, commit, read back", test_stage_commit) ||
	    !CU_add_test(suite, "the final commit checks the stage", test_stage_verify) ||
	    !CU_add_test(suite, "staged records read back", test_stage_read) ||
	    !CU_add_test(suite, "sweep at start, never orphans", test_stage_sweep) ||
	    !CU_add_test(suite, "body cursor: v1, corrupt, deleted", test_cursor) ||
	    !CU_add_test(suite, "records once while the map grows", test_stage_map_grows) ||
	    !CU_add_test(suite, "faults at the nth write or commit", test_stage_faults) ||
	    !CU_add_test(suite, "short writes", test_stage_short_writes)) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed != 0 ? 1 : 0;
}
