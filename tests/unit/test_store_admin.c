/*
 * test_store_admin: the administrator's operations on the queue
 * (queue/store_admin.c) and the queue's size for the metrics
 * (queue/store_size.c): hold moves every recipient not done out of the
 * due index's reach and back; an attempt that finishes while a message is
 * held keeps it held, and so do the targets of an alias expanded then; a
 * flush passes held mail over; requeue starts the attempts afresh;
 * bounce leaves notices pending; the body is read back chunk by chunk,
 * and a missing chunk is corruption. Each test works in its own
 * directory under /tmp.
 */
#include <CUnit/Basic.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/record.h"
#include "queue/store.h"

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

struct fixture {
	char dir[64];
	struct queue_store *s;
};

static void
fixture_open(struct fixture *f)
{
	char err[256];

	str_copy(f->dir, "/tmp/test_store_admin.XXXXXX", sizeof f->dir);
	CU_ASSERT_FATAL(mkdtemp(f->dir) != NULL);
	f->s = store_open(f->dir, 64 << 20, 0, err, sizeof err);
	CU_ASSERT_FATAL(f->s != NULL);
}

static void
fixture_close(struct fixture *f)
{
	store_close(&f->s);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A message of n recipients and a body of body_len bytes ('a'+i%26),
 * arrived at arrival, held when held. */
static queue_id_t
put(struct fixture *f, size_t n, size_t body_len, int64_t arrival, int held)
{
	struct envelope env;
	struct store_wtxn *t;
	char *body = xmalloc(body_len + 1);
	queue_id_t id = queue_id_next();

	for (size_t i = 0; i < body_len; i++)
		body[i] = (char)('a' + i % 26);
	memset(&env, 0, sizeof env);
	env.id = id;
	env.arrival = arrival;
	env.sender = xstrdup("s@example.org");
	env.helo = xstrdup("h.example");
	env.client_addr = xstrdup("192.0.2.1");
	env.flags = held ? ENV_HELD : 0;
	env.nrcpts = n;
	env.rcpts = xcalloc(n, sizeof *env.rcpts);
	for (size_t i = 0; i < n; i++) {
		char a[64];
		snprintf(a, sizeof a, "r%zu@example.net", i);
		env.rcpts[i].addr = xstrdup(a);
	}
	CU_ASSERT_FATAL(store_wtxn_begin(f->s, NULL, &t) == STORE_OK);
	CU_ASSERT_FATAL(store_put_msg(t, &env, body, body_len) == STORE_OK);
	CU_ASSERT_FATAL(store_wtxn_commit(&t) == STORE_OK);
	envelope_free(&env);
	free(body);
	return id;
}

/* Due entries up to until. */
static size_t
due_count(struct fixture *f, int64_t until)
{
	struct store_due out[64];
	size_t n = 0;

	CU_ASSERT(store_due_list(f->s, NULL, until, out, 64, &n) == STORE_OK);
	return n;
}

static void
load(struct fixture *f, queue_id_t id, struct queue_msg *m)
{
	CU_ASSERT_FATAL(store_msg_load(f->s, id, m) == STORE_OK);
}

typedef int (*txn_fn)(struct store_wtxn *t, void *arg);

static int
in_txn(struct fixture *f, txn_fn fn, void *arg)
{
	struct store_wtxn *t;
	int st;

	CU_ASSERT_FATAL(store_wtxn_begin(f->s, NULL, &t) == STORE_OK);
	st = fn(t, arg);
	if (st == STORE_OK)
		st = store_wtxn_commit(&t);
	else
		store_wtxn_abort(&t);
	return st;
}

struct hold_arg {
	queue_id_t id;
	int hold;
	int64_t now;
	int changed;
};

static int
do_hold(struct store_wtxn *t, void *arg)
{
	struct hold_arg *h = arg;
	return store_msg_hold(t, h->id, h->hold, h->now, &h->changed);
}

static void
test_hold_release(void)
{
	struct fixture f;
	struct queue_msg m;
	int64_t now = time(NULL);
	struct hold_arg h;
	uint64_t n;

	fixture_open(&f);
	h = (struct hold_arg){ put(&f, 3, 100, now, 0), 1, now, 0 };
	CU_ASSERT_EQUAL(due_count(&f, now), 3);
	CU_ASSERT_EQUAL(in_txn(&f, do_hold, &h), STORE_OK);
	CU_ASSERT_EQUAL(h.changed, 1);
	/* nothing is due, ever: not even at the end of time */
	CU_ASSERT_EQUAL(due_count(&f, STORE_HOLD_TIME - 1), 0);
	load(&f, h.id, &m);
	CU_ASSERT(m.env.flags & ENV_HELD);
	for (size_t i = 0; i < m.nrcpts; i++)
		CU_ASSERT_EQUAL(m.rcpts[i].next_try, STORE_HOLD_TIME);
	queue_msg_free(&m);
	/* a flush passes it over */
	CU_ASSERT_EQUAL(store_flush_all(f.s, now, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(due_count(&f, now), 0);
	/* held again: no change */
	CU_ASSERT_EQUAL(in_txn(&f, do_hold, &h), STORE_OK);
	CU_ASSERT_EQUAL(h.changed, 0);
	h.hold = 0;
	h.now = now + 5;
	CU_ASSERT_EQUAL(in_txn(&f, do_hold, &h), STORE_OK);
	CU_ASSERT_EQUAL(h.changed, 1);
	CU_ASSERT_EQUAL(due_count(&f, now + 4), 0);
	CU_ASSERT_EQUAL(due_count(&f, now + 5), 3);
	load(&f, h.id, &m);
	CU_ASSERT(!(m.env.flags & ENV_HELD));
	queue_msg_free(&m);
	/* unknown ids */
	h.id = 12345;
	CU_ASSERT_EQUAL(in_txn(&f, do_hold, &h), STORE_NOTFOUND);
	fixture_close(&f);
}

struct update_arg {
	queue_id_t id;
	uint32_t idx;
	struct rcpt_update u;
};

static int
do_update(struct store_wtxn *t, void *arg)
{
	struct update_arg *a = arg;
	return store_rcpt_update(t, a->id, a->idx, &a->u, NULL);
}

struct expand_arg {
	queue_id_t id;
	int64_t next_try;
};

static int
do_expand(struct store_wtxn *t, void *arg)
{
	struct expand_arg *a = arg;
	struct store_target tg[2] = { { "t1@example.net", NULL, 0 },
	    { "t2@example.net", NULL, 0 } };
	uint32_t first;

	return store_rcpt_expand(t, a->id, 0, tg, 2, a->next_try, &first, NULL);
}

static void
test_held_outcomes(void)
{
	struct fixture f;
	struct queue_msg m;
	int64_t now = time(NULL);
	queue_id_t id;
	struct update_arg ua;
	struct expand_arg ea;

	fixture_open(&f);
	/* held at arrival (a hold rule) */
	id = put(&f, 3, 10, now, 1);
	CU_ASSERT_EQUAL(due_count(&f, STORE_HOLD_TIME - 1), 0);
	/* an attempt under way when it was held is deferred: still held */
	ua = (struct update_arg){ id, 1, { .state = RCPT_DEFERRED, .next_try = now + 300,
	    .attempt_time = now, .diag = "4.0.0 later", .status = "4.0.0" } };
	CU_ASSERT_EQUAL(in_txn(&f, do_update, &ua), STORE_OK);
	/* one delivered meanwhile: done, out of the index */
	ua = (struct update_arg){ id, 2, { .state = RCPT_SENT, .attempt_time = now,
	    .diag = "ok", .status = "2.0.0" } };
	CU_ASSERT_EQUAL(in_txn(&f, do_update, &ua), STORE_OK);
	/* an alias expanded meanwhile: its targets are held */
	ea = (struct expand_arg){ id, now };
	CU_ASSERT_EQUAL(in_txn(&f, do_expand, &ea), STORE_OK);
	CU_ASSERT_EQUAL(due_count(&f, STORE_HOLD_TIME - 1), 0);
	load(&f, id, &m);
	CU_ASSERT_EQUAL(m.nrcpts, 5);
	CU_ASSERT_EQUAL(m.rcpts[1].state, RCPT_DEFERRED);
	CU_ASSERT_EQUAL(m.rcpts[1].attempts, 1);
	CU_ASSERT_EQUAL(m.rcpts[1].next_try, STORE_HOLD_TIME);
	CU_ASSERT_EQUAL(m.rcpts[3].next_try, STORE_HOLD_TIME);
	CU_ASSERT_EQUAL(m.rcpts[4].next_try, STORE_HOLD_TIME);
	queue_msg_free(&m);
	fixture_close(&f);
}

struct bounce_arg {
	queue_id_t id;
	int64_t now;
	size_t n;
};

static int
do_requeue(struct store_wtxn *t, void *arg)
{
	struct bounce_arg *a = arg;
	return store_msg_requeue(t, a->id, a->now);
}

static int
do_bounce(struct store_wtxn *t, void *arg)
{
	struct bounce_arg *a = arg;
	return store_msg_bounce(t, a->id, a->now, "5.0.0", "by the administrator", &a->n);
}

static void
test_requeue_bounce(void)
{
	struct fixture f;
	struct queue_msg m;
	int64_t now = time(NULL);
	struct update_arg ua;
	struct bounce_arg ba;
	struct hold_arg h;
	queue_id_t id;

	fixture_open(&f);
	id = put(&f, 2, 10, now, 0);
	for (int i = 0; i < 3; i++) {
		ua = (struct update_arg){ id, 0, { .state = RCPT_DEFERRED,
		    .next_try = now + 3600, .attempt_time = now, .diag = "4.0.0 x",
		    .status = "4.0.0" } };
		CU_ASSERT_EQUAL(in_txn(&f, do_update, &ua), STORE_OK);
	}
	h = (struct hold_arg){ id, 1, now, 0 };
	CU_ASSERT_EQUAL(in_txn(&f, do_hold, &h), STORE_OK);
	ba = (struct bounce_arg){ id, now + 10, 0 };
	CU_ASSERT_EQUAL(in_txn(&f, do_requeue, &ba), STORE_OK);
	load(&f, id, &m);
	CU_ASSERT(!(m.env.flags & ENV_HELD));
	CU_ASSERT_EQUAL(m.rcpts[0].attempts, 0);
	CU_ASSERT_EQUAL(m.rcpts[0].next_try, now + 10);
	CU_ASSERT_EQUAL(m.rcpts[1].next_try, now + 10);
	CU_ASSERT_STRING_EQUAL(m.rcpts[0].diag, "4.0.0 x");
	queue_msg_free(&m);
	CU_ASSERT_EQUAL(due_count(&f, now + 10), 2);

	/* bounce: both bounced with a notice pending, due now */
	CU_ASSERT_EQUAL(in_txn(&f, do_hold, &h), STORE_OK);
	CU_ASSERT_EQUAL(in_txn(&f, do_bounce, &ba), STORE_OK);
	CU_ASSERT_EQUAL(ba.n, 2);
	load(&f, id, &m);
	for (size_t i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(m.rcpts[i].state, RCPT_BOUNCED);
		CU_ASSERT(m.rcpts[i].flags & RCPT_F_NOTICE_PENDING);
		CU_ASSERT_STRING_EQUAL(m.rcpts[i].status, "5.0.0");
		CU_ASSERT_EQUAL(m.rcpts[i].next_try, now + 10);
	}
	CU_ASSERT(!(m.env.flags & ENV_HELD));
	queue_msg_free(&m);
	CU_ASSERT_EQUAL(due_count(&f, now + 10), 2);
	/* a delivery under way meanwhile went through: that recipient is
	 * sent, and its failure notice no longer pending */
	ua = (struct update_arg){ id, 0, { .state = RCPT_SENT, .attempt_time = now,
	    .diag = "250 2.0.0 ok", .status = "2.0.0" } };
	CU_ASSERT_EQUAL(in_txn(&f, do_update, &ua), STORE_OK);
	load(&f, id, &m);
	CU_ASSERT_EQUAL(m.rcpts[0].state, RCPT_SENT);
	CU_ASSERT(!(m.rcpts[0].flags & RCPT_F_NOTICE_PENDING));
	CU_ASSERT_EQUAL(m.rcpts[1].state, RCPT_BOUNCED);
	CU_ASSERT(m.rcpts[1].flags & RCPT_F_NOTICE_PENDING);
	queue_msg_free(&m);
	CU_ASSERT_EQUAL(due_count(&f, now + 10), 1);
	/* a failure after it changes nothing (a repeated result) */
	ua = (struct update_arg){ id, 0, { .state = RCPT_BOUNCED, .attempt_time = now,
	    .set_flags = RCPT_F_NOTICE_PENDING, .diag = "550 no", .status = "5.0.0" } };
	CU_ASSERT_EQUAL(in_txn(&f, do_update, &ua), STORE_OK);
	load(&f, id, &m);
	CU_ASSERT_EQUAL(m.rcpts[0].state, RCPT_SENT);
	queue_msg_free(&m);
	/* bounced again: nothing left to bounce */
	CU_ASSERT_EQUAL(in_txn(&f, do_bounce, &ba), STORE_OK);
	CU_ASSERT_EQUAL(ba.n, 0);
	fixture_close(&f);
}

static void
test_hold_all(void)
{
	struct fixture f;
	int64_t now = time(NULL);
	uint64_t n;

	fixture_open(&f);
	for (int i = 0; i < 600; i++)	/* more than one batch */
		put(&f, 1, 10, now, i == 7);
	CU_ASSERT_EQUAL(store_hold_all(f.s, 1, now, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 599);
	CU_ASSERT_EQUAL(due_count(&f, STORE_HOLD_TIME - 1), 0);
	CU_ASSERT_EQUAL(store_hold_all(f.s, 0, now, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 600);
	CU_ASSERT_EQUAL(due_count(&f, now), 64);	/* the page of due_count */
	fixture_close(&f);
}

/* A map full to the last page at open: hold all grows it and holds the
 * batch it had to give up, also when that batch is the last one. */
static void
test_hold_all_full(void)
{
	struct fixture f;
	struct store_limits lim = { 0 };
	int64_t now = time(NULL);
	uint64_t n;
	char err[256];
	int st, k = 0;

	str_copy(f.dir, "/tmp/test_store_admin.XXXXXX", sizeof f.dir);
	CU_ASSERT_FATAL(mkdtemp(f.dir) != NULL);
	lim.map_size = 1;
	lim.map_max = 256 << 20;
	f.s = store_open_limits(f.dir, &lim, 0, err, sizeof err);
	CU_ASSERT_FATAL(f.s != NULL);
	do {	/* new mail until the map is full (new mail does not grow it) */
		struct envelope env;
		struct store_wtxn *t;
		char body[3000];

		memset(body, 'x', sizeof body);
		memset(&env, 0, sizeof env);
		env.id = queue_id_next();
		env.arrival = now;
		env.sender = xstrdup("s@example.org");
		env.helo = xstrdup("h.example");
		env.client_addr = xstrdup("192.0.2.1");
		env.nrcpts = 30;
		env.rcpts = xcalloc(30, sizeof *env.rcpts);
		for (size_t i = 0; i < 30; i++) {
			char a[64];
			snprintf(a, sizeof a, "r%zu@example.net", i);
			env.rcpts[i].addr = xstrdup(a);
		}
		CU_ASSERT_FATAL(store_wtxn_begin(f.s, NULL, &t) == STORE_OK);
		st = store_put_msg(t, &env, body, sizeof body);
		if (st == STORE_OK)
			st = store_wtxn_commit(&t);
		else
			store_wtxn_abort(&t);
		envelope_free(&env);
		k += st == STORE_OK;
	} while (st == STORE_OK && k < 2000);
	CU_ASSERT_FATAL(st == STORE_FULL);
	CU_ASSERT_FATAL(k > 0 && k < 256);	/* one batch (STORE_HOLD_CHUNK), the last */
	CU_ASSERT_EQUAL(store_hold_all(f.s, 1, now, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, (uint64_t)k);
	CU_ASSERT_EQUAL(due_count(&f, STORE_HOLD_TIME - 1), 0);
	fixture_close(&f);
}

struct collect {
	struct buf b;
	size_t calls;
};

static int
collect_chunk(const char *p, size_t n, void *arg)
{
	struct collect *c = arg;

	c->calls++;
	return buf_append(&c->b, p, n) < 0 ? 99 : 0;
}

static void
test_body_chunks(void)
{
	struct fixture f;
	struct collect c;
	struct store_size sz;
	size_t len = 3 * RECORD_CHUNK_SIZE + 17;
	int64_t now = time(NULL);
	queue_id_t id, small;

	fixture_open(&f);
	id = put(&f, 2, len, now - 100, 0);
	small = put(&f, 1, 5, now, 0);
	buf_init(&c.b, 8 * RECORD_CHUNK_SIZE);
	c.calls = 0;
	CU_ASSERT_EQUAL(store_body_foreach(f.s, id, collect_chunk, &c), STORE_OK);
	CU_ASSERT_EQUAL(c.calls, 4);
	CU_ASSERT_EQUAL(c.b.len, len);
	for (size_t i = 0; i < len && i < c.b.len; i++)
		if (c.b.data[i] != (char)('a' + i % 26)) {
			CU_FAIL("body byte");
			break;
		}
	buf_reset(&c.b);
	CU_ASSERT_EQUAL(store_body_foreach(f.s, small, collect_chunk, &c), STORE_OK);
	CU_ASSERT_EQUAL(c.b.len, 5);
	buf_free(&c.b);
	CU_ASSERT_EQUAL(store_body_foreach(f.s, 4242, collect_chunk, &c), STORE_NOTFOUND);
	/* the callback stops it */
	buf_init(&c.b, 1);
	CU_ASSERT_EQUAL(store_body_foreach(f.s, id, collect_chunk, &c), 99);
	buf_free(&c.b);
	/* the size for the metrics: both messages, the oldest arrival */
	CU_ASSERT_EQUAL(store_size_get(f.s, &sz), STORE_OK);
	CU_ASSERT_EQUAL(sz.messages, 2);
	CU_ASSERT_EQUAL(sz.pending, 3);
	CU_ASSERT_EQUAL(sz.bytes, len + 5);
	CU_ASSERT_EQUAL(sz.oldest, now - 100);
	fixture_close(&f);
}

static void
test_size_many(void)
{
	struct fixture f;
	struct store_size sz;
	int64_t now = time(NULL);

	fixture_open(&f);
	CU_ASSERT_EQUAL(store_size_get(f.s, &sz), STORE_OK);
	CU_ASSERT_EQUAL(sz.messages, 0);
	CU_ASSERT_EQUAL(sz.oldest, 0);
	for (int i = 0; i < 5000; i++)	/* more than one batch */
		put(&f, 1, 3, now - i, 0);
	CU_ASSERT_EQUAL(store_size_get(f.s, &sz), STORE_OK);
	CU_ASSERT_EQUAL(sz.messages, 5000);
	CU_ASSERT_EQUAL(sz.bytes, 15000);
	CU_ASSERT_EQUAL(sz.oldest, now - 4999);
	fixture_close(&f);
}

int
main(void)
{
	CU_pSuite suite;
	unsigned failures;

	log_set_level(LOG_LVL_ERROR);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	suite = CU_add_suite("store_admin", NULL, NULL);
	if (suite == NULL ||
	    !CU_add_test(suite, "hold and release", test_hold_release) ||
	    !CU_add_test(suite, "outcomes of a held message", test_held_outcomes) ||
	    !CU_add_test(suite, "requeue and bounce", test_requeue_bounce) ||
	    !CU_add_test(suite, "hold all, release all", test_hold_all) ||
	    !CU_add_test(suite, "hold all, map full", test_hold_all_full) ||
	    !CU_add_test(suite, "body chunks, queue size", test_body_chunks) ||
	    !CU_add_test(suite, "queue size in batches", test_size_many)) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failures ? 1 : 0;
}
