/*
 * test_queue: unit tests of the durable queue: queue ids, record
 * encoding (round trips and hostile input), the LMDB store (reopen, map
 * full, corrupt records set aside, delete, flush, stats, due index), and
 * the committer (group commit from many threads, results, notify).
 * Each test works in its own mkdtemp directory under /tmp.
 */
#include <CUnit/Basic.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/committer.h"
#include "queue/envelope.h"
#include "queue/record.h"
#include "queue/results.h"
#include "queue/store.h"
#include "tests/unit/body_read.h"
#include "tests/unit/queue_fixture.h"

static int
count_msg_cb(const struct queue_msg *m, void *arg)
{
	size_t *n = arg;

	(void)m;
	(*n)++;
	return 0;
}

static size_t
count_msgs(struct queue_store *s)
{
	size_t n = 0;

	CU_ASSERT(store_foreach_msg(s, count_msg_cb, &n) == STORE_OK);
	return n;
}

/* ---- queue ids ---- */

static void
test_id_format_parse(void)
{
	char out[QUEUE_ID_LEN + 1];
	queue_id_t id, back;
	static const char *const bad[] = {
		"", "0", "123", "00000000000000", "0000000000000", "0005F1a2B3C4D",
		"0005F1A2B3C4G", "0005F1A2B3C4 ", " 005F1A2B3C4D", "0005F1A2B3C4D0",
		"-005F1A2B3C4D", "0x05F1A2B3C4D",
	};

	id = queue_id_next();
	queue_id_format(id, out, sizeof out);
	CU_ASSERT_EQUAL(strlen(out), QUEUE_ID_LEN);
	for (size_t i = 0; i < QUEUE_ID_LEN; i++)
		CU_ASSERT(strchr("0123456789ABCDEF", out[i]) != NULL);
	CU_ASSERT(queue_id_parse(out, &back) == 0);
	CU_ASSERT_EQUAL(back, id);
	CU_ASSERT(queue_id_parse("0005F1A2B3C4D", &back) == 0);
	CU_ASSERT_EQUAL(back, 0x5F1A2B3C4Dull);
	queue_id_format(0x5F1A2B3C4Dull, out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "0005F1A2B3C4D");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CU_ASSERT(queue_id_parse(bad[i], &back) == -1);
	CU_ASSERT(queue_id_parse(NULL, &back) == -1);
}

#define ID_THREADS 8
#define ID_PER_THREAD 20000

struct id_thread {
	queue_id_t *ids;
	int monotonic;
};

static void *
id_thread_main(void *arg)
{
	struct id_thread *t = arg;

	t->monotonic = 1;
	for (size_t i = 0; i < ID_PER_THREAD; i++) {
		t->ids[i] = queue_id_next();
		if (i > 0 && t->ids[i] <= t->ids[i - 1])
			t->monotonic = 0;
	}
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_id_threads(void)
{
	pthread_t th[ID_THREADS];
	struct id_thread t[ID_THREADS];
	queue_id_t *all = xcalloc(ID_THREADS * ID_PER_THREAD, sizeof *all);
	queue_id_t floor, next;

	for (int i = 0; i < ID_THREADS; i++) {
		t[i].ids = all + (size_t)i * ID_PER_THREAD;
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, id_thread_main, &t[i]) == 0);
	}
	for (int i = 0; i < ID_THREADS; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT(t[i].monotonic);
	}
	qsort(all, ID_THREADS * ID_PER_THREAD, sizeof *all, cmp_u64);
	for (size_t i = 1; i < ID_THREADS * ID_PER_THREAD; i++)
		CU_ASSERT_FATAL(all[i] != all[i - 1]);
	free(all);

	/* The floor lifts later ids above it, and never lowers them. */
	floor = queue_id_next() + 5000000000ull;
	queue_id_floor(floor);
	next = queue_id_next();
	CU_ASSERT(next > floor);
	queue_id_floor(1);
	CU_ASSERT(queue_id_next() > next);
}

/* ---- records ---- */

static void
test_record_roundtrip(void)
{
	struct envelope env, back;
	struct queue_rcpt r, rb;
	struct buf b;
	struct record_body lay = { 300000, record_body_chunks(300000), 0 }, got;
	uint8_t *v1;

	make_env(&env, 77, "a@b.example", 3);
	env.auth_user = xstrdup("alice");
	env.envid = xstrdup("QQ314159");
	env.flags = ENV_8BITMIME | ENV_TLS | ENV_NOTICE;
	env.ret = 2;
	buf_init(&b, 1 << 20);
	CU_ASSERT_FATAL(record_msg_encode(&env, &lay, &b) == 0);
	CU_ASSERT(((const uint8_t *)b.data)[0] == RECORD_VERSION);
	CU_ASSERT_FATAL(record_msg_decode(b.data, b.len, &back, &got) == 0);
	CU_ASSERT_EQUAL(got.size, 300000);
	CU_ASSERT_EQUAL(got.nchunks, lay.nchunks);
	CU_ASSERT_EQUAL(got.fixed, 0);
	CU_ASSERT_EQUAL(back.arrival, env.arrival);
	CU_ASSERT_STRING_EQUAL(back.sender, "a@b.example");
	CU_ASSERT_STRING_EQUAL(back.helo, env.helo);
	CU_ASSERT_STRING_EQUAL(back.client_addr, env.client_addr);
	CU_ASSERT_STRING_EQUAL(back.auth_user, "alice");
	CU_ASSERT_STRING_EQUAL(back.envid, "QQ314159");
	CU_ASSERT_EQUAL(back.flags, env.flags);
	CU_ASSERT_EQUAL(back.ret, 2);
	CU_ASSERT_EQUAL(back.nrcpts, 3);
	CU_ASSERT(back.rcpts == NULL);
	envelope_free(&back);

	/* Version 2: any number of records that can hold the size, each 1 to
	 * RECORD_CHUNK_MAX bytes. */
	for (uint32_t n = 0; n < 8; n++) {
		struct record_body l2 = { 300000, n, 0 };
		int ok = n >= 2;	/* 300000 > RECORD_CHUNK_MAX */

		buf_reset(&b);
		CU_ASSERT_EQUAL(record_msg_encode(&env, &l2, &b), ok ? 0 : -1);
		if (ok && record_msg_decode(b.data, b.len, &back, &got) == 0) {
			CU_ASSERT_EQUAL(got.nchunks, n);
			envelope_free(&back);
		}
	}
	/* A queue of today's main (version 1: records of 128 KiB) reads,
	 * with its fixed layout. */
	buf_reset(&b);
	CU_ASSERT_FATAL(record_msg_encode(&env, &lay, &b) == 0);
	v1 = xmalloc(b.len);
	memcpy(v1, b.data, b.len);
	v1[0] = 1;
	v1[22] = v1[23] = v1[24] = 0;
	v1[25] = 3;	/* 300000 bytes in records of 128 KiB */
	CU_ASSERT_FATAL(record_msg_decode(v1, b.len, &back, &got) == 0);
	CU_ASSERT_EQUAL(got.size, 300000);
	CU_ASSERT_EQUAL(got.nchunks, 3);
	CU_ASSERT_EQUAL(got.fixed, RECORD_V1_CHUNK_SIZE);
	envelope_free(&back);
	v1[25] = 5;	/* not what version 1 allows */
	CU_ASSERT(record_msg_decode(v1, b.len, &back, &got) == -1);
	free(v1);

	/* Null sender, absent optional fields. */
	buf_reset(&b);
	free(env.sender);
	env.sender = xstrdup("");
	free(env.auth_user);
	env.auth_user = NULL;
	lay.size = 0;
	lay.nchunks = 0;
	CU_ASSERT_FATAL(record_msg_encode(&env, &lay, &b) == 0);
	CU_ASSERT_FATAL(record_msg_decode(b.data, b.len, &back, &got) == 0);
	CU_ASSERT_STRING_EQUAL(back.sender, "");
	CU_ASSERT(back.auth_user == NULL);
	CU_ASSERT_EQUAL(got.size, 0);
	envelope_free(&back);
	envelope_free(&env);

	memset(&r, 0, sizeof r);
	r.addr = "x@y.example";
	r.orcpt = "rfc822;x@y.example";
	r.notify = 6;
	r.state = RCPT_DEFERRED;
	r.flags = RCPT_F_DELAY_NOTIFIED;
	r.attempts = 3;
	r.next_try = 1700000000;
	r.last_try = 1699999000;
	r.diag = "451 4.3.0 try again";
	buf_reset(&b);
	CU_ASSERT_FATAL(record_rcpt_encode(&r, &b) == 0);
	CU_ASSERT_FATAL(record_rcpt_decode(b.data, b.len, &rb) == 0);
	CU_ASSERT_STRING_EQUAL(rb.addr, r.addr);
	CU_ASSERT_STRING_EQUAL(rb.orcpt, r.orcpt);
	CU_ASSERT_STRING_EQUAL(rb.diag, r.diag);
	CU_ASSERT_EQUAL(rb.notify, 6);
	CU_ASSERT_EQUAL(rb.state, RCPT_DEFERRED);
	CU_ASSERT_EQUAL(rb.flags, RCPT_F_DELAY_NOTIFIED);
	CU_ASSERT_EQUAL(rb.attempts, 3);
	CU_ASSERT_EQUAL(rb.next_try, r.next_try);
	CU_ASSERT_EQUAL(rb.last_try, r.last_try);
	queue_rcpt_clear(&rb);
	buf_free(&b);
	CU_ASSERT_STRING_EQUAL(rcpt_state_name(RCPT_BOUNCED), "bounced");
}

static void
test_record_hostile(void)
{
	struct envelope env, back;
	struct queue_rcpt r, rb;
	struct buf b, rbuf;
	struct record_body size, lay = { 1234, 1, 0 };
	char *big;
	uint8_t *m;

	make_env(&env, 1, "a@b.example", 2);
	buf_init(&b, 1 << 20);
	CU_ASSERT_FATAL(record_msg_encode(&env, &lay, &b) == 0);
	/* Every truncation fails. */
	for (size_t n = 0; n < b.len; n++)
		CU_ASSERT(record_msg_decode(b.data, n, &back, &size) == -1);
	m = xmalloc(b.len + 1);
	memcpy(m, b.data, b.len);
	/* Trailing byte. */
	m[b.len] = 0;
	CU_ASSERT(record_msg_decode(m, b.len + 1, &back, &size) == -1);
	/* Unknown version. */
	m[0] = 99;
	CU_ASSERT(record_msg_decode(m, b.len, &back, &size) == -1);
	m[0] = 0;
	CU_ASSERT(record_msg_decode(m, b.len, &back, &size) == -1);
	m[0] = RECORD_VERSION;
	/* Bad ret, unknown flags. */
	m[1] = 9;
	CU_ASSERT(record_msg_decode(m, b.len, &back, &size) == -1);
	m[1] = 1;
	m[2] = 0x80;
	CU_ASSERT(record_msg_decode(m, b.len, &back, &size) == -1);
	m[2] = 0;
	/* nchunks inconsistent with size (offset 1+1+4+8+8). */
	m[22 + 3] ^= 1;
	CU_ASSERT(record_msg_decode(m, b.len, &back, &size) == -1);
	m[22 + 3] ^= 1;
	/* Zero recipients. */
	memset(m + 26, 0, 4);
	CU_ASSERT(record_msg_decode(m, b.len, &back, &size) == -1);
	memcpy(m, b.data, b.len);
	/* Huge sender length (offset 30). */
	m[30] = 0xFF;
	m[31] = 0xFF;
	CU_ASSERT(record_msg_decode(m, b.len, &back, &size) == -1);
	memcpy(m, b.data, b.len);
	/* NUL inside the sender. */
	m[33] = '\0';
	CU_ASSERT(record_msg_decode(m, b.len, &back, &size) == -1);
	memcpy(m, b.data, b.len);
	CU_ASSERT(record_msg_decode(m, b.len, &back, &size) == 0);
	envelope_free(&back);
	free(m);

	/* Encoding refuses what decoding would refuse. */
	big = xmalloc(RECORD_STR_MAX + 2);
	memset(big, 'a', RECORD_STR_MAX + 1);
	big[RECORD_STR_MAX + 1] = '\0';
	free(env.helo);
	env.helo = big;
	buf_reset(&b);
	lay.size = 10;
	CU_ASSERT(record_msg_encode(&env, &lay, &b) == -1);
	CU_ASSERT_EQUAL(b.len, 0);
	env.nrcpts = 0;
	free(env.helo);
	env.helo = xstrdup("h");
	CU_ASSERT(record_msg_encode(&env, &lay, &b) == -1);
	env.nrcpts = 2;
	lay.fixed = RECORD_V1_CHUNK_SIZE;	/* only version 2 is written */
	CU_ASSERT(record_msg_encode(&env, &lay, &b) == -1);
	env.nrcpts = 2;
	envelope_free(&env);

	memset(&r, 0, sizeof r);
	r.addr = "x@y";
	r.diag = "";
	buf_init(&rbuf, 1 << 16);
	CU_ASSERT_FATAL(record_rcpt_encode(&r, &rbuf) == 0);
	for (size_t n = 0; n < rbuf.len; n++)
		CU_ASSERT(record_rcpt_decode(rbuf.data, n, &rb) == -1);
	m = xmalloc(rbuf.len);
	memcpy(m, rbuf.data, rbuf.len);
	m[1] = 5;	/* state */
	CU_ASSERT(record_rcpt_decode(m, rbuf.len, &rb) == -1);
	m[1] = 0;
	m[2] = 0x10;	/* flags */
	CU_ASSERT(record_rcpt_decode(m, rbuf.len, &rb) == -1);
	m[2] = 0;
	m[11] = 0x80;	/* next_try negative (offset 11..18) */
	CU_ASSERT(record_rcpt_decode(m, rbuf.len, &rb) == -1);
	m[11] = 0;
	CU_ASSERT(record_rcpt_decode(m, rbuf.len, &rb) == 0);
	queue_rcpt_clear(&rb);
	free(m);
	r.addr = "";
	buf_reset(&rbuf);
	CU_ASSERT(record_rcpt_encode(&r, &rbuf) == -1);
	r.addr = "x@y";
	r.state = (enum rcpt_state)7;
	CU_ASSERT(record_rcpt_encode(&r, &rbuf) == -1);
	buf_free(&rbuf);
	/* Junk never decodes into a crash. */
	{
		uint8_t junk[64];
		for (int round = 0; round < 2000; round++) {
			size_t n = (size_t)(round % 64);
			for (size_t i = 0; i < n; i++)
				junk[i] = (uint8_t)(round * 31 + i * 7);
			if (record_msg_decode(junk, n, &back, &size) == 0)
				envelope_free(&back);
			if (record_rcpt_decode(junk, n, &rb) == 0)
				queue_rcpt_clear(&rb);
		}
	}
	buf_free(&b);
}

/* ---- store ---- */

static void
test_store_basic(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct queue_msg m;
	struct store_stats st;
	queue_id_t id1, id2, id3;
	char *body, *want;
	size_t len;

	CU_ASSERT_EQUAL(store_max_id(s), 0);
	id1 = put_direct(s, 2, 100);
	id2 = put_direct(s, 1, 0);
	id3 = put_direct(s, 3, RECORD_CHUNK_SIZE * 2);	/* exact chunks */
	CU_ASSERT_EQUAL(store_max_id(s), id3);
	CU_ASSERT_EQUAL(store_commit_count(s), 3);

	CU_ASSERT_FATAL(store_msg_load(s, id1, &m) == STORE_OK);
	CU_ASSERT_EQUAL(m.env.id, id1);
	CU_ASSERT_EQUAL(m.size, 100);
	CU_ASSERT_EQUAL(m.nrcpts, 2);
	CU_ASSERT_STRING_EQUAL(m.rcpts[1].addr, "rcpt1@example.org");
	CU_ASSERT_STRING_EQUAL(m.rcpts[1].orcpt, "rfc822;orig@example.org");
	CU_ASSERT_EQUAL(m.rcpts[0].notify, 4);
	CU_ASSERT_EQUAL(m.rcpts[1].idx, 1);
	CU_ASSERT_EQUAL(m.rcpts[0].state, RCPT_QUEUED);
	CU_ASSERT_EQUAL(m.rcpts[0].next_try, m.env.arrival);
	queue_msg_free(&m);

	CU_ASSERT(body_read(s, id2, 0, &body, &len) == STORE_OK);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT_STRING_EQUAL(body, "");
	free(body);
	want = gen_body(id3, RECORD_CHUNK_SIZE * 2);
	CU_ASSERT(body_read(s, id3, 0, &body, &len) == STORE_OK);
	CU_ASSERT_EQUAL(len, RECORD_CHUNK_SIZE * 2);
	CU_ASSERT(memcmp(body, want, len) == 0);
	free(body);
	CU_ASSERT(body_read(s, id3, 1000, &body, &len) == STORE_OK);
	CU_ASSERT_EQUAL(len, 1000);
	CU_ASSERT(memcmp(body, want, len) == 0);
	free(body);
	free(want);
	CU_ASSERT(body_read(s, id3 + 1, 0, &body, &len) == STORE_NOTFOUND);
	CU_ASSERT(store_msg_load(s, id3 + 1, &m) == STORE_NOTFOUND);

	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.messages, 3);
	CU_ASSERT_EQUAL(st.recipients, 6);
	CU_ASSERT_EQUAL(st.pending, 6);
	CU_ASSERT_EQUAL(st.received, 3);
	CU_ASSERT_EQUAL(count_msgs(s), 3);

	/* Duplicate id and invalid envelopes leave the txn usable. */
	{
		struct envelope env;
		struct store_wtxn *t;
		make_env(&env, id1, "x@y", 1);
		CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
		CU_ASSERT(store_put_msg(t, &env, "x", 1) == STORE_EXISTS);
		env.id = queue_id_next();
		free(env.rcpts[0].addr);
		env.rcpts[0].addr = xstrdup("");
		CU_ASSERT(store_put_msg(t, &env, "x", 1) == STORE_INVALID);
		free(env.rcpts[0].addr);
		env.rcpts[0].addr = xstrdup("ok@example.org");
		CU_ASSERT(store_put_msg(t, &env, "x", 1) == STORE_OK);
		CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
		CU_ASSERT(t == NULL);
		envelope_free(&env);
	}
	CU_ASSERT_EQUAL(count_msgs(s), 4);

	/* Reopen: same content; read-only sees it too. */
	store_close(&s);
	CU_ASSERT(s == NULL);
	s = open_store(dir, 0, STORE_RDONLY);
	CU_ASSERT_EQUAL(count_msgs(s), 4);
	CU_ASSERT(queue_id_next() > id3);
	{
		struct store_wtxn *t;
		CU_ASSERT(store_wtxn_begin(s, NULL, &t) != STORE_OK);
	}
	store_close(&s);
	tmpdir_remove(&dir);

	/* A read-only open of a missing queue gives an empty one. */
	dir = tmpdir_make();
	{
		char sub[512];
		snprintf(sub, sizeof sub, "%s/a/b", dir);
		s = open_store(sub, 0, STORE_RDONLY);
		CU_ASSERT_EQUAL(count_msgs(s), 0);
		store_close(&s);
	}
	tmpdir_remove(&dir);
}

static int
due_equal(const struct store_due *a, const struct store_due *b)
{
	return a->when == b->when && a->id == b->id && a->idx == b->idx;
}

static void
test_store_delete_flush(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct store_wtxn *t;
	struct store_due due[16], page[2];
	struct store_stats st;
	struct queue_msg m;
	struct rcpt_update u;
	size_t n, total;
	int64_t now = time(NULL);
	queue_id_t a, b, c;
	uint64_t count;
	int removed;

	a = put_direct(s, 3, 10);
	b = put_direct(s, 2, 300 * 1024);
	c = put_direct(s, 1, 10);

	CU_ASSERT(store_due_list(s, NULL, now + 10, due, 16, &n) == STORE_OK);
	CU_ASSERT_EQUAL(n, 6);
	/* Paging gives the same entries. */
	total = 0;
	{
		const struct store_due *after = NULL;
		struct store_due last;
		do {
			CU_ASSERT(store_due_list(s, after, now + 10, page, 2, &n) == STORE_OK);
			for (size_t i = 0; i < n; i++)
				CU_ASSERT(due_equal(&page[i], &due[total + i]));
			total += n;
			if (n > 0) {
				last = page[n - 1];
				after = &last;
			}
		} while (n == 2);
	}
	CU_ASSERT_EQUAL(total, 6);

	/* Defer a's recipients 0 and 1 for an hour. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	memset(&u, 0, sizeof u);
	u.state = RCPT_DEFERRED;
	u.next_try = now + 3600;
	u.attempt_time = now;
	u.diag = "451 4.4.1 no answer";
	CU_ASSERT(store_rcpt_update(t, a, 0, &u, &removed) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 0);
	CU_ASSERT(store_rcpt_update(t, a, 1, &u, &removed) == STORE_OK);
	CU_ASSERT(store_rcpt_update(t, a, 7, &u, &removed) == STORE_NOTFOUND);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);

	CU_ASSERT(store_due_list(s, NULL, now + 10, due, 16, &n) == STORE_OK);
	CU_ASSERT_EQUAL(n, 4);
	CU_ASSERT(store_due_list(s, NULL, INT64_MAX, due, 16, &n) == STORE_OK);
	CU_ASSERT_EQUAL(n, 6);
	CU_ASSERT_EQUAL(due[5].when, now + 3600);
	CU_ASSERT_FATAL(store_msg_load(s, a, &m) == STORE_OK);
	CU_ASSERT_EQUAL(m.rcpts[0].state, RCPT_DEFERRED);
	CU_ASSERT_EQUAL(m.rcpts[0].attempts, 1);
	CU_ASSERT_EQUAL(m.rcpts[0].last_try, now);
	CU_ASSERT_STRING_EQUAL(m.rcpts[0].diag, "451 4.4.1 no answer");
	CU_ASSERT_EQUAL(m.rcpts[2].state, RCPT_QUEUED);
	queue_msg_free(&m);

	/* Flush: both deferred recipients due now; the index stays one
	 * entry per pending recipient. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_flush(t, now, &count) == STORE_OK);
	CU_ASSERT_EQUAL(count, 2);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	CU_ASSERT(store_due_list(s, NULL, now, due, 16, &n) == STORE_OK);
	CU_ASSERT_EQUAL(n, 6);
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.pending, 6);
	CU_ASSERT_EQUAL(st.deferred, 2);

	/* Delete one message: its records and due entries go. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_delete_msg(t, b) == STORE_OK);
	CU_ASSERT(store_delete_msg(t, b) == STORE_NOTFOUND);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	CU_ASSERT(store_msg_load(s, b, &m) == STORE_NOTFOUND);
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.messages, 2);
	CU_ASSERT_EQUAL(st.recipients, 4);
	CU_ASSERT_EQUAL(st.pending, 4);
	CU_ASSERT(store_due_list(s, NULL, INT64_MAX, due, 16, &n) == STORE_OK);
	CU_ASSERT_EQUAL(n, 4);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT(due[i].id == a || due[i].id == c);

	/* An aborted delete changes nothing. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_delete_all(t, &count) == STORE_OK);
	CU_ASSERT_EQUAL(count, 2);
	store_wtxn_abort(&t);
	CU_ASSERT_EQUAL(count_msgs(s), 2);

	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_delete_all(t, &count) == STORE_OK);
	CU_ASSERT(store_counter_add(t, STORE_CTR_REJECTED, 5) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.messages, 0);
	CU_ASSERT_EQUAL(st.recipients, 0);
	CU_ASSERT_EQUAL(st.pending, 0);
	CU_ASSERT_EQUAL(st.received, 3);
	CU_ASSERT_EQUAL(st.rejected, 5);
	CU_ASSERT_EQUAL(count_msgs(s), 0);
	store_close(&s);
	tmpdir_remove(&dir);
}

static void
be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void
test_store_corrupt(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct store_stats st;
	struct store_due due[16];
	struct queue_msg m;
	queue_id_t a, b, c, d;
	uint8_t key[12];
	char *body;
	size_t n, len;

	a = put_direct(s, 2, 10);
	b = put_direct(s, 2, 200 * 1024);
	c = put_direct(s, 3, 10);
	d = put_direct(s, 1, 200 * 1024);
	store_close(&s);

	/* b's envelope: junk. c's recipient 1: a future version. d's second
	 * body chunk: cut short. A junk key in msg. */
	be64(key, b);
	raw_put(dir, "msg", key, 8, "\x01\xff\xff", 3);
	be64(key, c);
	key[8] = key[9] = key[10] = 0;
	key[11] = 1;
	raw_put(dir, "rcpt", key, 12, "\x07garbage", 8);
	be64(key, d);
	key[8] = key[9] = key[10] = 0;
	key[11] = 1;
	raw_put(dir, "body", key, 12, "short", 5);
	raw_put(dir, "msg", "zz", 2, "x", 1);

	/* Read-only: skipped and logged, nothing moved. */
	s = open_store(dir, 0, STORE_RDONLY);
	CU_ASSERT_EQUAL(count_msgs(s), 3);	/* a, c, d */
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.bad, 0);
	store_close(&s);

	s = open_store(dir, 0, 0);
	CU_ASSERT_EQUAL(count_msgs(s), 3);
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	/* b: msg + its body records + 2 rcpts; c: 1 rcpt; the junk key. */
	CU_ASSERT_EQUAL(st.bad, 5 + record_body_chunks(200 * 1024));
	CU_ASSERT_EQUAL(st.messages, 3);
	CU_ASSERT(store_msg_load(s, b, &m) == STORE_NOTFOUND);
	CU_ASSERT_FATAL(store_msg_load(s, c, &m) == STORE_OK);
	/* c#1 was set aside; its envelope is good, so a placeholder stands
	 * in its place: bounced, its notice pending, so that the sender
	 * hears of it and the message still leaves the queue. */
	CU_ASSERT_EQUAL_FATAL(m.nrcpts, 3);
	CU_ASSERT_EQUAL(m.rcpts[1].idx, 1);
	CU_ASSERT_EQUAL(m.rcpts[1].state, RCPT_BOUNCED);
	CU_ASSERT_EQUAL(m.rcpts[1].flags, RCPT_F_LOST | RCPT_F_NOTICE_PENDING);
	CU_ASSERT_STRING_EQUAL(m.rcpts[1].status, "5.3.0");
	CU_ASSERT_EQUAL(m.rcpts[2].idx, 2);
	queue_msg_free(&m);
	/* The due index: b's entries gone, c#1's replaced by the
	 * placeholder's (its notice is due). */
	CU_ASSERT(store_due_list(s, NULL, INT64_MAX, due, 16, &n) == STORE_OK);
	CU_ASSERT_EQUAL(n, 2 + 3 + 1);
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.pending, 6);

	/* d's body is bad: reading it sets d aside. */
	CU_ASSERT(body_read(s, d, 0, &body, &len) == STORE_CORRUPT);
	CU_ASSERT(store_msg_load(s, d, &m) == STORE_NOTFOUND);
	CU_ASSERT_EQUAL(count_msgs(s), 2);
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	/* d: msg + its body records + 1 rcpt */
	CU_ASSERT_EQUAL(st.bad, 7 + 2 * record_body_chunks(200 * 1024));
	CU_ASSERT_EQUAL(st.pending, 5);
	/* Iterating again finds nothing more to set aside. */
	CU_ASSERT_EQUAL(count_msgs(s), 2);
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.bad, 7 + 2 * record_body_chunks(200 * 1024));
	CU_ASSERT(body_read(s, a, 0, &body, &len) == STORE_OK);
	CU_ASSERT_EQUAL(len, 10);
	free(body);
	store_close(&s);

	/* c's envelope goes bad too: its records follow it to bad, and the
	 * placeholder of c#1 does not overwrite the original set aside. */
	be64(key, c);
	raw_put(dir, "msg", key, 8, "\x01\xff\xff", 3);
	s = open_store(dir, 0, 0);
	CU_ASSERT_EQUAL(count_msgs(s), 1);
	store_close(&s);
	{
		uint8_t bk[13] = { 'r' };
		be64(bk + 1, c);
		bk[12] = 1;
		CU_ASSERT(raw_equals(dir, "bad", bk, sizeof bk, "\x07garbage", 8));
	}
	tmpdir_remove(&dir);
}

/* ---- committer ---- */

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t done;
	size_t ok, full, io;
};

static void
waiter_init(struct waiter *w)
{
	memset(w, 0, sizeof *w);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

static void
waiter_note(struct waiter *w, enum commit_status st)
{
	pthread_mutex_lock(&w->lock);
	w->done++;
	if (st == COMMIT_OK)
		w->ok++;
	else if (st == COMMIT_FULL)
		w->full++;
	else
		w->io++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void
waiter_wait(struct waiter *w, size_t n)
{
	pthread_mutex_lock(&w->lock);
	while (w->done < n)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static void
waiter_destroy(struct waiter *w)
{
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
}

/* Per message of the group-commit test. */
struct slot {
	queue_id_t id;
	size_t body_len;
	uint64_t seed;
	int status;
	struct waiter *w;
};

static void
slot_done(struct commit_msg *req, enum commit_status status)
{
	struct slot *sl = req->arg;

	sl->id = req->env.id;
	sl->status = (int)status;
	commit_msg_free(req);
	free(req);
	waiter_note(sl->w, status);
}

#define GC_THREADS 8
#define GC_PER_THREAD 500

struct gc_thread {
	struct committer *c;
	struct slot *slots;
	int tno;
};

static size_t
gc_body_len(int tno, int i)
{
	if (tno == 3 && i == 250)
		return 300 * 1024 + 17;	/* chunked: 3 chunks */
	return (size_t)((tno * 7919 + i * 104729) % 3000);
}

static void *
gc_thread_main(void *arg)
{
	struct gc_thread *g = arg;

	for (int i = 0; i < GC_PER_THREAD; i++) {
		struct slot *sl = &g->slots[i];
		struct commit_msg *req = xcalloc(1, sizeof *req);

		sl->body_len = gc_body_len(g->tno, i);
		sl->seed = (uint64_t)g->tno << 32 | (uint64_t)i;
		/* Half carry an id from the "session", half get one. */
		make_env(&req->env, i % 2 ? queue_id_next() : 0, "s@example.com",
		    (size_t)(1 + i % 3));
		req->body = gen_body(sl->seed, sl->body_len);
		req->body_len = sl->body_len;
		req->done = slot_done;
		req->arg = sl;
		committer_submit(g->c, req);
	}
	return NULL;
}

static atomic_int notify_calls;

static void
count_notify(void *arg)
{
	(void)arg;
	atomic_fetch_add(&notify_calls, 1);
}

static void
test_committer_group(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct committer *c = committer_start(s);
	struct slot *slots = xcalloc(GC_THREADS * GC_PER_THREAD, sizeof *slots);
	struct gc_thread g[GC_THREADS];
	pthread_t th[GC_THREADS];
	struct committer_stats cst;
	struct store_stats st;
	struct waiter w;
	uint64_t commits;
	size_t bad_bodies = 0;

	CU_ASSERT_FATAL(c != NULL);
	waiter_init(&w);
	atomic_store(&notify_calls, 0);
	committer_set_notify(c, count_notify, NULL);
	for (size_t i = 0; i < GC_THREADS * GC_PER_THREAD; i++)
		slots[i].w = &w;
	for (int i = 0; i < GC_THREADS; i++) {
		g[i].c = c;
		g[i].slots = slots + (size_t)i * GC_PER_THREAD;
		g[i].tno = i;
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, gc_thread_main, &g[i]) == 0);
	}
	for (int i = 0; i < GC_THREADS; i++)
		pthread_join(th[i], NULL);
	waiter_wait(&w, GC_THREADS * GC_PER_THREAD);
	CU_ASSERT_EQUAL(w.ok, GC_THREADS * GC_PER_THREAD);
	committer_get_stats(c, &cst);
	committer_stop(&c);
	CU_ASSERT(c == NULL);
	commits = store_commit_count(s);
	CU_ASSERT_EQUAL(cst.messages, GC_THREADS * GC_PER_THREAD);
	CU_ASSERT_EQUAL(cst.commits, commits);
	CU_ASSERT(commits * 4 < GC_THREADS * GC_PER_THREAD);
	CU_ASSERT(atomic_load(&notify_calls) >= 1);
	fprintf(stderr, "\n  group commit: %d messages in %" PRIu64 " commits\n",
	    GC_THREADS * GC_PER_THREAD, commits);

	for (size_t i = 0; i < GC_THREADS * GC_PER_THREAD; i++) {
		struct slot *sl = &slots[i];
		char *body, *want;
		size_t len;

		if (body_read(s, sl->id, 0, &body, &len) != STORE_OK) {
			bad_bodies++;
			continue;
		}
		want = gen_body(sl->seed, sl->body_len);
		if (len != sl->body_len || memcmp(body, want, len) != 0)
			bad_bodies++;
		free(want);
		free(body);
	}
	CU_ASSERT_EQUAL(bad_bodies, 0);
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.messages, GC_THREADS * GC_PER_THREAD);
	CU_ASSERT_EQUAL(st.received, GC_THREADS * GC_PER_THREAD);

	/* Reopen: the same content. */
	store_close(&s);
	s = open_store(dir, 0, 0);
	CU_ASSERT_EQUAL(count_msgs(s), GC_THREADS * GC_PER_THREAD);
	{
		struct slot *sl = &slots[3 * GC_PER_THREAD + 250];
		struct queue_msg m;
		char *body, *want = gen_body(sl->seed, sl->body_len);
		size_t len;

		CU_ASSERT(body_read(s, sl->id, 0, &body, &len) == STORE_OK);
		CU_ASSERT_EQUAL(len, 300 * 1024 + 17);
		CU_ASSERT(len == sl->body_len && memcmp(body, want, len) == 0);
		free(body);
		free(want);
		CU_ASSERT_FATAL(store_msg_load(s, sl->id, &m) == STORE_OK);
		CU_ASSERT_EQUAL(m.size, sl->body_len);
		CU_ASSERT_EQUAL(m.nrcpts, 1 + 250 % 3);
		CU_ASSERT_STRING_EQUAL(m.env.sender, "s@example.com");
		queue_msg_free(&m);
	}
	store_close(&s);
	free(slots);
	waiter_destroy(&w);
	tmpdir_remove(&dir);
}

static void
note_done(struct commit_msg *req, enum commit_status status)
{
	struct waiter *w = req->arg;

	commit_msg_free(req);
	free(req);
	waiter_note(w, status);
}

static enum commit_status
commit_one(struct committer *c, size_t body_len, queue_id_t *id_r)
{
	struct commit_msg *req = xcalloc(1, sizeof *req);
	struct waiter w;
	enum commit_status st;
	queue_id_t id = queue_id_next();

	waiter_init(&w);
	make_env(&req->env, id, "full@example.com", 1);
	req->body = gen_body(1, body_len);
	req->body_len = body_len;
	req->done = note_done;
	req->arg = &w;
	committer_submit(c, req);
	waiter_wait(&w, 1);
	st = w.ok ? COMMIT_OK : w.full ? COMMIT_FULL : COMMIT_IO;
	waiter_destroy(&w);
	if (id_r != NULL)
		*id_r = id;
	return st;
}

static void
test_map_full(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 1 << 20, 0);
	struct committer *c = committer_start(s);
	queue_id_t ids[256];
	size_t n = 0;
	enum commit_status st = COMMIT_OK;
	struct store_wtxn *t, *child;
	struct envelope env;
	queue_id_t small_id;
	char *big;

	CU_ASSERT_FATAL(c != NULL);
	while (n < 256 && (st = commit_one(c, 16 * 1024, &ids[n])) == COMMIT_OK)
		n++;
	CU_ASSERT_EQUAL(st, COMMIT_FULL);
	CU_ASSERT(n > 10);
	/* Still full for a big one, fine for nothing yet; free room. */
	CU_ASSERT_EQUAL(commit_one(c, 200 * 1024, NULL), COMMIT_FULL);
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	for (size_t i = 0; i < n / 2; i++)
		CU_ASSERT(store_delete_msg(t, ids[i]) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	/* The freed space is usable by the very next commit. */
	CU_ASSERT_EQUAL(commit_one(c, 16 * 1024, NULL), COMMIT_OK);
	CU_ASSERT_EQUAL(commit_one(c, 100, NULL), COMMIT_OK);

	/* A batch where one message does not fit: only that one fails.
	 * Holding LMDB's writer lock here makes the committer queue up A, B
	 * and C (in one or two batches; either way B alone fails). */
	{
		struct slot sl[3];
		struct waiter w;
		size_t lens[3] = { 1000, 900 * 1024, 1000 };

		waiter_init(&w);
		CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
		for (int i = 0; i < 3; i++) {
			struct commit_msg *req = xcalloc(1, sizeof *req);
			memset(&sl[i], 0, sizeof sl[i]);
			sl[i].w = &w;
			make_env(&req->env, 0, "mix@example.com", 1);
			req->body = gen_body(3, lens[i]);
			req->body_len = lens[i];
			req->done = slot_done;
			req->arg = &sl[i];
			committer_submit(c, req);
		}
		usleep(50000);
		store_wtxn_abort(&t);
		waiter_wait(&w, 3);
		CU_ASSERT_EQUAL(sl[0].status, COMMIT_OK);
		CU_ASSERT_EQUAL(sl[1].status, COMMIT_FULL);
		CU_ASSERT_EQUAL(sl[2].status, COMMIT_OK);
		waiter_destroy(&w);
	}
	committer_stop(&c);

	/* A nested transaction that does not fit is undone alone. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT_FATAL(store_wtxn_begin(s, t, &child) == STORE_OK);
	make_env(&env, queue_id_next(), "a@b", 1);
	small_id = env.id;
	CU_ASSERT(store_put_msg(child, &env, "small", 5) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&child) == STORE_OK);
	CU_ASSERT_FATAL(store_wtxn_begin(s, t, &child) == STORE_OK);
	big = gen_body(2, 4 << 20);
	env.id = queue_id_next();
	/* Refused for room before anything is written: the transaction
	 * stays usable. */
	CU_ASSERT(store_put_msg(child, &env, big, 4 << 20) == STORE_FULL);
	CU_ASSERT(store_put_msg(child, &env, "x", 1) == STORE_OK);
	store_wtxn_abort(&child);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	free(big);
	{
		struct queue_msg m;
		CU_ASSERT(store_msg_load(s, env.id, &m) == STORE_NOTFOUND);
		CU_ASSERT(store_msg_load(s, small_id, &m) == STORE_OK);
		queue_msg_free(&m);
	}
	envelope_free(&env);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* Results: deferred, sent, bounced; the message goes when all final. */
struct res_wait {
	struct waiter w;
	enum commit_status st;
};

static void
res_done(struct commit_results *req, enum commit_status status)
{
	struct res_wait *rw = req->arg;

	rw->st = status;
	waiter_note(&rw->w, status);
}

static enum commit_status
submit_results(struct committer *c, struct commit_results *req)
{
	struct res_wait rw;

	waiter_init(&rw.w);
	req->done = res_done;
	req->arg = &rw;
	committer_submit_results(c, req);
	waiter_wait(&rw.w, 1);
	waiter_destroy(&rw.w);
	return rw.st;
}

static void
set_result(struct commit_result *r, queue_id_t id, uint32_t idx,
    enum rcpt_state state, int64_t next_try, const char *diag)
{
	memset(r, 0, sizeof *r);
	r->id = id;
	r->idx = idx;
	r->state = state;
	r->next_try = next_try;
	r->attempt_time = time(NULL);
	snprintf(r->diag, sizeof r->diag, "%s", diag);
}

static void
test_committer_results(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct committer *c = committer_start(s);
	struct commit_results req;
	struct store_stats st;
	struct queue_msg m;
	queue_id_t id, bounce_id;
	int64_t now = time(NULL);

	CU_ASSERT_FATAL(c != NULL);
	atomic_store(&notify_calls, 0);
	committer_set_notify(c, count_notify, NULL);
	CU_ASSERT_FATAL(commit_one(c, 500, &id) == COMMIT_OK);
	CU_ASSERT_EQUAL(atomic_load(&notify_calls), 1);
	/* commit_one makes 1 recipient; add a 3-recipient message. */
	{
		struct commit_msg *r = xcalloc(1, sizeof *r);
		struct waiter w;
		waiter_init(&w);
		make_env(&r->env, 0, "sender@example.com", 3);
		r->body = xstrdup("Subject: t\r\n\r\nhi\r\n");
		r->body_len = strlen(r->body);
		r->done = note_done;
		r->arg = &w;
		committer_submit(c, r);
		waiter_wait(&w, 1);
		CU_ASSERT_EQUAL(w.ok, 1);
		waiter_destroy(&w);
		id = store_max_id(s);
	}

	memset(&req, 0, sizeof req);
	req.nresults = 3;
	req.results = xcalloc(3, sizeof *req.results);
	set_result(&req.results[0], id, 0, RCPT_SENT, 0, "250 2.0.0 ok");
	set_result(&req.results[1], id, 1, RCPT_DEFERRED, now + 600,
	    "451 4.3.0 later");
	set_result(&req.results[2], id + 12345, 0, RCPT_SENT, 0, "250 gone");
	CU_ASSERT_EQUAL(submit_results(c, &req), COMMIT_OK);
	CU_ASSERT_EQUAL(req.results[0].status, STORE_OK);
	CU_ASSERT_EQUAL(req.results[1].status, STORE_OK);
	CU_ASSERT_EQUAL(req.results[2].status, STORE_NOTFOUND);
	CU_ASSERT_EQUAL(req.results[0].removed, 0);
	commit_results_free(&req);

	CU_ASSERT_FATAL(store_msg_load(s, id, &m) == STORE_OK);
	CU_ASSERT_EQUAL(m.rcpts[0].state, RCPT_SENT);
	CU_ASSERT_EQUAL(m.rcpts[1].state, RCPT_DEFERRED);
	CU_ASSERT_EQUAL(m.rcpts[1].next_try, now + 600);
	CU_ASSERT_STRING_EQUAL(m.rcpts[1].diag, "451 4.3.0 later");
	CU_ASSERT_EQUAL(m.rcpts[2].state, RCPT_QUEUED);
	queue_msg_free(&m);

	/* Bounce recipient 1, with a bounce message for the sender in the
	 * same batch; a repeated result on the sent one changes nothing. */
	memset(&req, 0, sizeof req);
	req.nresults = 2;
	req.results = xcalloc(2, sizeof *req.results);
	set_result(&req.results[0], id, 1, RCPT_BOUNCED, 0, "550 5.1.1 no user");
	set_result(&req.results[1], id, 0, RCPT_BOUNCED, 0, "dup");
	req.nmsgs = 1;
	req.msgs = xcalloc(1, sizeof *req.msgs);
	make_env(&req.msgs[0].env, 0, "", 1);
	req.msgs[0].env.flags = ENV_NOTICE;
	req.msgs[0].body = xstrdup("Subject: Undelivered Mail\r\n\r\nsorry\r\n");
	req.msgs[0].body_len = strlen(req.msgs[0].body);
	CU_ASSERT_EQUAL(submit_results(c, &req), COMMIT_OK);
	bounce_id = req.msgs[0].env.id;
	CU_ASSERT(bounce_id > id);
	CU_ASSERT_EQUAL(req.results[0].removed, 0);
	commit_results_free(&req);
	CU_ASSERT_EQUAL(atomic_load(&notify_calls), 3);
	CU_ASSERT_FATAL(store_msg_load(s, id, &m) == STORE_OK);
	CU_ASSERT_EQUAL(m.rcpts[0].state, RCPT_SENT);
	CU_ASSERT_STRING_EQUAL(m.rcpts[0].diag, "250 2.0.0 ok");
	CU_ASSERT_EQUAL(m.rcpts[1].state, RCPT_BOUNCED);
	CU_ASSERT_EQUAL(m.rcpts[1].attempts, 2);
	queue_msg_free(&m);
	CU_ASSERT_FATAL(store_msg_load(s, bounce_id, &m) == STORE_OK);
	CU_ASSERT_STRING_EQUAL(m.env.sender, "");
	CU_ASSERT_EQUAL(m.env.flags, ENV_NOTICE);
	queue_msg_free(&m);

	/* The last recipient: the message is removed in the same commit. */
	memset(&req, 0, sizeof req);
	req.nresults = 1;
	req.results = xcalloc(1, sizeof *req.results);
	set_result(&req.results[0], id, 2, RCPT_SENT, 0, "250 ok");
	CU_ASSERT_EQUAL(submit_results(c, &req), COMMIT_OK);
	CU_ASSERT_EQUAL(req.results[0].removed, 1);
	commit_results_free(&req);
	CU_ASSERT(store_msg_load(s, id, &m) == STORE_NOTFOUND);
	{
		char *body;
		size_t len;
		CU_ASSERT(body_read(s, id, 0, &body, &len) == STORE_NOTFOUND);
	}

	/* An invalid new message fails the whole batch: nothing written. */
	memset(&req, 0, sizeof req);
	req.nresults = 1;
	req.results = xcalloc(1, sizeof *req.results);
	set_result(&req.results[0], bounce_id, 0, RCPT_SENT, 0, "250 ok");
	req.nmsgs = 1;
	req.msgs = xcalloc(1, sizeof *req.msgs);
	make_env(&req.msgs[0].env, 0, "", 1);
	req.msgs[0].env.ret = 42;
	CU_ASSERT_EQUAL(submit_results(c, &req), COMMIT_IO);
	commit_results_free(&req);
	CU_ASSERT_FATAL(store_msg_load(s, bounce_id, &m) == STORE_OK);
	CU_ASSERT_EQUAL(m.rcpts[0].state, RCPT_QUEUED);
	queue_msg_free(&m);

	queue_stats_add_rejected(3);
	committer_stop(&c);
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.delivered, 2);
	CU_ASSERT_EQUAL(st.bounced, 1);
	CU_ASSERT_EQUAL(st.deferred, 1);
	CU_ASSERT_EQUAL(st.rejected, 3);
	CU_ASSERT_EQUAL(st.received, 3);
	CU_ASSERT_EQUAL(st.messages, 2);	/* the 1-rcpt one and the bounce */
	CU_ASSERT_EQUAL(st.pending, 2);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* ---- room, expansion, notices, orphans, readers, work ---- */

/* Applies one update directly; returns the store status. */
static int
upd(struct queue_store *s, queue_id_t id, uint32_t idx, enum rcpt_state state,
    unsigned set_flags, int64_t next_try, int *removed_r)
{
	struct rcpt_update u = { .state = state, .next_try = next_try,
	    .attempt_time = time(NULL), .set_flags = set_flags,
	    .clear_flags = RCPT_F_NOTICE_PENDING, .diag = "d", .status = "5.1.1",
	    .remote_mta = "mx.example.org" };
	struct store_wtxn *t;
	int st;

	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	st = store_rcpt_update(t, id, idx, &u, removed_r);
	if (st == STORE_OK)
		st = store_wtxn_commit(&t);
	else
		store_wtxn_abort(&t);
	return st;
}

static size_t
due_count(struct queue_store *s)
{
	struct store_due due[64];
	size_t n = 0;

	CU_ASSERT(store_due_list(s, NULL, INT64_MAX, due, 64, &n) == STORE_OK);
	return n;
}

/* The map grows at run time up to its ceiling; past it new mail is
 * refused, and the reserve above it stays for state changes. */
static void
test_map_grows(void)
{
	char *dir = tmpdir_make();
	struct store_limits lim = { .map_size = 1 << 20, .map_max = 8 << 20 };
	char err[200];
	struct queue_store *s = store_open_limits(dir, &lim, 0, err, sizeof err);
	struct committer *c;
	struct store_space sp;
	queue_id_t ids[128];
	size_t n = 0;
	enum commit_status st = COMMIT_OK;

	CU_ASSERT_FATAL(s != NULL);
	c = committer_start(s);
	CU_ASSERT_FATAL(c != NULL);
	while (n < 128 && (st = commit_one(c, 200 * 1024, &ids[n])) == COMMIT_OK)
		n++;
	CU_ASSERT_EQUAL(st, COMMIT_FULL);
	/* 8 MiB of new mail went in: more than the first map held. */
	CU_ASSERT(n * 200 * 1024 > (4u << 20));
	CU_ASSERT(store_space_get(s, &sp) == STORE_OK);
	CU_ASSERT(sp.map_size > (1u << 20));
	CU_ASSERT(sp.map_size <= sp.map_limit);
	CU_ASSERT_EQUAL(sp.map_max, 8u << 20);
	CU_ASSERT(sp.used <= sp.map_max);
	/* State changes still go in: defer every recipient (each record is
	 * rewritten, so pages are needed), as one facts request. */
	{
		struct commit_results req;
		memset(&req, 0, sizeof req);
		req.facts = 1;
		req.nresults = n;
		req.results = xcalloc(n, sizeof *req.results);
		for (size_t i = 0; i < n; i++) {
			set_result(&req.results[i], ids[i], 0, RCPT_DEFERRED,
			    time(NULL) + 600, "451 4.3.0 later");
			snprintf(req.results[i].diag, sizeof req.results[i].diag,
			    "%0400d", (int)i);	/* a longer record */
		}
		CU_ASSERT_EQUAL(submit_results(c, &req), COMMIT_OK);
		commit_results_free(&req);
	}
	/* New mail: still refused. */
	CU_ASSERT_EQUAL(commit_one(c, 200 * 1024, NULL), COMMIT_FULL);
	committer_stop(&c);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* An alias becomes its targets, each a recipient of its own. */
static void
test_expand(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct store_target tg[3] = {
		{ "a@local.example", "rfc822;team@local.example", 4 },
		{ "b@remote.example", "rfc822;team@local.example", 4 },
		{ "c@local.example", "rfc822;team@local.example", 4 },
	};
	struct store_wtxn *t;
	struct queue_msg m;
	uint32_t first = 0;
	int removed = 0;
	queue_id_t id = put_direct(s, 2, 10);
	int64_t now = time(NULL);

	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_rcpt_expand(t, id, 1, tg, 3, now, &first, NULL) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	CU_ASSERT_EQUAL(first, 2);
	CU_ASSERT_FATAL(store_msg_load(s, id, &m) == STORE_OK);
	CU_ASSERT_EQUAL_FATAL(m.nrcpts, 5);
	CU_ASSERT_EQUAL(m.rcpts[1].state, RCPT_EXPANDED);
	for (size_t i = 2; i < 5; i++) {
		CU_ASSERT_EQUAL(m.rcpts[i].idx, i);
		CU_ASSERT_EQUAL(m.rcpts[i].state, RCPT_QUEUED);
		CU_ASSERT_EQUAL(m.rcpts[i].flags, RCPT_F_ALIAS_TARGET);
		CU_ASSERT_STRING_EQUAL(m.rcpts[i].orcpt, "rfc822;team@local.example");
		CU_ASSERT_EQUAL(m.rcpts[i].notify, 4);
	}
	CU_ASSERT_STRING_EQUAL(m.rcpts[3].addr, "b@remote.example");
	queue_msg_free(&m);
	CU_ASSERT_EQUAL(due_count(s), 4);	/* rcpt 0 and the 3 targets */
	/* An expanded alias cannot be expanded again. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_rcpt_expand(t, id, 1, tg, 1, now, NULL, NULL) == STORE_INVALID);
	store_wtxn_abort(&t);
	/* Each target alone: the message goes with the last one done. */
	CU_ASSERT(upd(s, id, 0, RCPT_SENT, 0, 0, &removed) == STORE_OK);
	CU_ASSERT(upd(s, id, 2, RCPT_SENT, 0, 0, &removed) == STORE_OK);
	CU_ASSERT(upd(s, id, 3, RCPT_DEFERRED, 0, now + 60, &removed) == STORE_OK);
	CU_ASSERT(upd(s, id, 4, RCPT_BOUNCED, 0, 0, &removed) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 0);
	CU_ASSERT(upd(s, id, 3, RCPT_SENT, 0, 0, &removed) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 1);
	CU_ASSERT(store_msg_load(s, id, &m) == STORE_NOTFOUND);
	CU_ASSERT_EQUAL(due_count(s), 0);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* A target the message has already, or that another target repeats, is
 * left out (compared without case): one copy per mailbox. An alias whose
 * every target is there is simply done, and may complete the message. */
static void
test_expand_dups(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct store_target tg[4] = {
		{ "RCPT0@example.ORG", NULL, 0 },	/* recipient 0 */
		{ "new@example.org", NULL, 0 },
		{ "New@Example.org", NULL, 0 },		/* the one before */
		{ "rcpt2@example.org", NULL, 0 },	/* an alias itself */
	};
	struct store_target again[2] = {
		{ "new@example.org", NULL, 0 },
		{ "rcpt0@example.org", NULL, 0 },
	};
	struct store_wtxn *t;
	struct queue_msg m;
	uint32_t first = 0;
	int removed = 0;
	queue_id_t id = put_direct(s, 3, 10);

	/* rcpt2 is expanded first: its record no longer counts. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_rcpt_expand(t, id, 2, &again[0], 1, 0, NULL,
	    &removed) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	/* rcpt 3 is now new@example.org; expanding rcpt1 adds only rcpt2 */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_rcpt_expand(t, id, 1, tg, 4, 0, &first, &removed) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 0);
	CU_ASSERT_EQUAL(first, 4);
	CU_ASSERT_FATAL(store_msg_load(s, id, &m) == STORE_OK);
	CU_ASSERT_EQUAL_FATAL(m.nrcpts, 5);
	CU_ASSERT_STRING_EQUAL(m.rcpts[3].addr, "new@example.org");
	CU_ASSERT_STRING_EQUAL(m.rcpts[4].addr, "rcpt2@example.org");
	CU_ASSERT_EQUAL(m.rcpts[4].state, RCPT_QUEUED);
	queue_msg_free(&m);
	CU_ASSERT_EQUAL(due_count(s), 3);	/* rcpt 0, 3 and 4 */
	/* Done with all but an alias whose targets are all there: the
	 * expansion completes the message. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_rcpt_expand(t, id, 4, again, 2, 0, NULL, &removed) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 0);	/* rcpt 0 and 3 are still to go */
	CU_ASSERT(upd(s, id, 0, RCPT_SENT, 0, 0, &removed) == STORE_OK);
	CU_ASSERT(upd(s, id, 3, RCPT_SENT, 0, 0, &removed) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 1);
	CU_ASSERT(store_msg_load(s, id, &m) == STORE_NOTFOUND);
	CU_ASSERT_EQUAL(due_count(s), 0);

	/* An alias whose only target is there completes the message itself. */
	id = put_direct(s, 2, 10);
	CU_ASSERT(upd(s, id, 0, RCPT_SENT, 0, 0, &removed) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 0);
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_rcpt_expand(t, id, 1, &again[1], 1, 0, NULL,
	    &removed) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 1);
	CU_ASSERT(store_msg_load(s, id, &m) == STORE_NOTFOUND);
	CU_ASSERT_EQUAL(due_count(s), 0);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* A pending notice keeps the recipient (and its message) until it is
 * queued; its due entry brings it back meanwhile. */
static void
test_notice_pending(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct store_wtxn *t;
	struct queue_msg m;
	struct store_due due[4];
	size_t n;
	int removed = 0;
	queue_id_t id = put_direct(s, 1, 10);
	int64_t now = time(NULL);

	CU_ASSERT(upd(s, id, 0, RCPT_BOUNCED, RCPT_F_NOTICE_PENDING, now + 60,
	    &removed) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 0);
	CU_ASSERT_FATAL(store_msg_load(s, id, &m) == STORE_OK);
	CU_ASSERT_EQUAL(m.rcpts[0].state, RCPT_BOUNCED);
	CU_ASSERT_EQUAL(m.rcpts[0].flags, RCPT_F_NOTICE_PENDING);
	CU_ASSERT_STRING_EQUAL(m.rcpts[0].status, "5.1.1");
	CU_ASSERT_STRING_EQUAL(m.rcpts[0].remote_mta, "mx.example.org");
	queue_msg_free(&m);
	CU_ASSERT(store_due_list(s, NULL, INT64_MAX, due, 4, &n) == STORE_OK);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(due[0].when, now + 60);
	/* A repeated result changes nothing. */
	CU_ASSERT(upd(s, id, 0, RCPT_BOUNCED, RCPT_F_NOTICE_PENDING, now + 90,
	    &removed) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 0);
	CU_ASSERT(store_due_list(s, NULL, INT64_MAX, due, 4, &n) == STORE_OK);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(due[0].when, now + 60);
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_rcpt_notice_done(t, id, 0, 0, &removed) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 1);
	CU_ASSERT(store_msg_load(s, id, &m) == STORE_NOTFOUND);
	CU_ASSERT_EQUAL(due_count(s), 0);
	/* A delivery that went through while the recipient was bounced
	 * apart from it (mailctl bounce, its lifetime), before the notice
	 * went out: sent, and no failure notice. */
	id = put_direct(s, 1, 10);
	CU_ASSERT(upd(s, id, 0, RCPT_BOUNCED, RCPT_F_NOTICE_PENDING, now + 60,
	    &removed) == STORE_OK);
	CU_ASSERT(upd(s, id, 0, RCPT_SENT, 0, 0, &removed) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 1);
	CU_ASSERT(store_msg_load(s, id, &m) == STORE_NOTFOUND);
	CU_ASSERT_EQUAL(due_count(s), 0);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* Records of a message that is gone are collected; a queue without live
 * counts (schema 1) still removes its messages when done. */
static void
test_orphans_and_live(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct store_stats st;
	uint8_t key[12];
	uint64_t n = 0;
	int removed = 0;
	queue_id_t id = put_direct(s, 2, 10);

	store_close(&s);
	be64(key, 42);
	key[8] = key[9] = key[10] = key[11] = 0;
	raw_put(dir, "rcpt", key, 12, "\x02junk", 5);
	raw_put(dir, "body", key, 12, "orphan", 6);
	raw_put(dir, "live", key, 8, "\0\0\0\1", 4);
	/* The live count of id goes missing, as in a queue of schema 1. */
	{
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		MDB_val k = { 8, key };
		be64(key, id);
		CU_ASSERT_FATAL(mdb_env_create(&env) == 0);
		mdb_env_set_maxdbs(env, 8);
		CU_ASSERT_FATAL(mdb_env_open(env, dir, MDB_NOTLS, 0600) == 0);
		CU_ASSERT_FATAL(mdb_txn_begin(env, NULL, 0, &txn) == 0);
		CU_ASSERT_FATAL(mdb_dbi_open(txn, "live", 0, &dbi) == 0);
		CU_ASSERT(mdb_del(txn, dbi, &k, NULL) == 0);
		CU_ASSERT(mdb_txn_commit(txn) == 0);
		mdb_env_close(env);
	}
	s = open_store(dir, 0, 0);
	CU_ASSERT(store_collect_orphans(s, &n) == STORE_OK);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT(store_stats_get(s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.bad, 2);		/* the rcpt and body records */
	CU_ASSERT_EQUAL(st.messages, 1);
	CU_ASSERT(store_collect_orphans(s, &n) == STORE_OK);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT(upd(s, id, 0, RCPT_SENT, 0, 0, &removed) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 0);
	CU_ASSERT(upd(s, id, 1, RCPT_SENT, 0, 0, &removed) == STORE_OK);
	CU_ASSERT_EQUAL(removed, 1);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* A process that died inside a read transaction keeps a reader slot,
 * and with it old pages from being reused: it is cleared. The lock file
 * has room for the readers asked for. */
static void
test_readers(void)
{
	char *dir = tmpdir_make();
	struct store_limits lim = { .map_size = 1 << 20, .max_readers = 1000 };
	char err[200], path[300];
	struct queue_store *s = store_open_limits(dir, &lim, 0, err, sizeof err);
	struct stat stt;
	pid_t pid;
	int status;

	CU_ASSERT_FATAL(s != NULL);
	snprintf(path, sizeof path, "%s/lock.mdb", dir);
	CU_ASSERT_FATAL(stat(path, &stt) == 0);
	CU_ASSERT(stt.st_size >= 1000 * 64);
	CU_ASSERT_EQUAL(store_reader_check(s), 0);
	pid = fork();
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *txn;
		if (mdb_env_create(&env) != 0)
			_exit(2);
		mdb_env_set_maxdbs(env, 8);
		if (mdb_env_open(env, dir, MDB_NOTLS | MDB_RDONLY, 0600) != 0 ||
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
			_exit(3);
		_exit(0);	/* dies holding the read transaction */
	}
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT(waitpid(pid, &status, 0) == pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_EQUAL(store_reader_check(s), 1);
	CU_ASSERT_EQUAL(store_reader_check(s), 0);
	store_close(&s);
	tmpdir_remove(&dir);
}

struct facts_slot {
	struct waiter w;
	enum commit_status st;
};

static void
facts_done(struct commit_results *req, enum commit_status status)
{
	struct facts_slot *fs = req->arg;

	fs->st = status;
	waiter_note(&fs->w, status);
}

/* A bad facts request in a batch fails alone: the facts beside it are
 * recorded (a lost fact would make a delivery happen again). */
static void
test_bad_fact_alone(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct committer *c = committer_start(s);
	struct commit_results good, bad;
	struct facts_slot gs, bs;
	struct store_wtxn *t;
	struct queue_msg m;
	queue_id_t id = put_direct(s, 1, 10);

	CU_ASSERT_FATAL(c != NULL);
	waiter_init(&gs.w);
	waiter_init(&bs.w);
	memset(&good, 0, sizeof good);
	good.facts = 1;
	good.nresults = 1;
	good.results = xcalloc(1, sizeof *good.results);
	set_result(&good.results[0], id, 0, RCPT_SENT, 0, "250 ok");
	good.done = facts_done;
	good.arg = &gs;
	memset(&bad, 0, sizeof bad);
	bad.facts = 1;
	bad.nresults = 1;
	bad.results = xcalloc(1, sizeof *bad.results);
	set_result(&bad.results[0], id, 0, (enum rcpt_state)9, 0, "bad state");
	bad.done = facts_done;
	bad.arg = &bs;
	/* Holding LMDB's writer lock makes both wait for one batch. */
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	committer_submit_results(c, &bad);
	committer_submit_results(c, &good);
	usleep(50000);
	store_wtxn_abort(&t);
	waiter_wait(&gs.w, 1);
	waiter_wait(&bs.w, 1);
	CU_ASSERT_EQUAL(gs.st, COMMIT_OK);
	CU_ASSERT_EQUAL(bs.st, COMMIT_IO);
	CU_ASSERT(store_msg_load(s, id, &m) == STORE_NOTFOUND);	/* sent: gone */
	commit_results_free(&good);
	commit_results_free(&bad);
	waiter_destroy(&gs.w);
	waiter_destroy(&bs.w);
	committer_stop(&c);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* LMDB operations of a message of n recipients: put, load, and its
 * recipients finished one request each (the worst case: every recipient
 * in a domain of its own) and all in one request. */
static void
work_for(size_t n, uint64_t *put_r, uint64_t *one_r, uint64_t *each_r)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir, 0, 0);
	struct committer *c = committer_start(s);
	struct commit_results req;
	uint64_t before;
	queue_id_t id;

	CU_ASSERT_FATAL(c != NULL);
	before = store_op_count(s);
	id = put_direct(s, n, 100);
	*put_r = store_op_count(s) - before;

	before = store_op_count(s);
	memset(&req, 0, sizeof req);
	req.facts = 1;
	req.nresults = n;
	req.results = xcalloc(n, sizeof *req.results);
	for (size_t i = 0; i < n; i++)
		set_result(&req.results[i], id, (uint32_t)i, RCPT_SENT, 0, "250 ok");
	CU_ASSERT_EQUAL(submit_results(c, &req), COMMIT_OK);
	CU_ASSERT_EQUAL(req.results[n - 1].removed, 1);
	commit_results_free(&req);
	*one_r = store_op_count(s) - before;

	id = put_direct(s, n, 100);
	before = store_op_count(s);
	for (size_t i = 0; i < n; i++) {
		memset(&req, 0, sizeof req);
		req.facts = 1;
		req.nresults = 1;
		req.results = xcalloc(1, sizeof *req.results);
		set_result(&req.results[0], id, (uint32_t)i, RCPT_SENT, 0, "250 ok");
		CU_ASSERT_EQUAL(submit_results(c, &req), COMMIT_OK);
		commit_results_free(&req);
	}
	*each_r = store_op_count(s) - before;
	CU_ASSERT_EQUAL(count_msgs(s), 0);
	committer_stop(&c);
	store_close(&s);
	tmpdir_remove(&dir);
}

static void
test_linear_work(void)
{
	uint64_t p1, o1, e1, p2, o2, e2;

	work_for(100, &p1, &o1, &e1);
	work_for(1000, &p2, &o2, &e2);
	if (getenv("TEST_QUEUE_VERBOSE"))
		fprintf(stderr, "\n  ops 100: %" PRIu64 " %" PRIu64 " %" PRIu64
		    "; 1000: %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
		    p1, o1, e1, p2, o2, e2);
	/* Ten times the recipients, about ten times the work (quadratic
	 * would be a hundred times). */
	CU_ASSERT(p2 < 12 * p1);
	CU_ASSERT(o2 < 12 * o1);
	CU_ASSERT(e2 < 12 * e1);
}

int
main(void)
{
	CU_pSuite suite;
	unsigned failures;

	log_set_level(getenv("TEST_QUEUE_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	suite = CU_add_suite("queue", NULL, NULL);
	if (suite == NULL ||
	    !CU_add_test(suite, "queue id format and parse", test_id_format_parse) ||
	    !CU_add_test(suite, "queue ids across threads", test_id_threads) ||
	    !CU_add_test(suite, "record round trips", test_record_roundtrip) ||
	    !CU_add_test(suite, "record hostile input", test_record_hostile) ||
	    !CU_add_test(suite, "store basics and reopen", test_store_basic) ||
	    !CU_add_test(suite, "store delete, flush, due", test_store_delete_flush) ||
	    !CU_add_test(suite, "store corrupt records", test_store_corrupt) ||
	    !CU_add_test(suite, "committer group commit", test_committer_group) ||
	    !CU_add_test(suite, "committer map full", test_map_full) ||
	    !CU_add_test(suite, "committer results", test_committer_results) ||
	    !CU_add_test(suite, "map grows to its ceiling", test_map_grows) ||
	    !CU_add_test(suite, "a bad fact fails alone", test_bad_fact_alone) ||
	    !CU_add_test(suite, "alias expansion", test_expand) ||
	    !CU_add_test(suite, "alias expansion without duplicates", test_expand_dups) ||
	    !CU_add_test(suite, "notice pending", test_notice_pending) ||
	    !CU_add_test(suite, "orphans and live counts", test_orphans_and_live) ||
	    !CU_add_test(suite, "stale readers, reader slots", test_readers) ||
	    !CU_add_test(suite, "1,000 recipients: linear work", test_linear_work)) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failures ? 1 : 0;
}
