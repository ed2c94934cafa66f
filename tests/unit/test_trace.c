/*
 * test_trace: the message trace (queue/trace.c). Records round-trip and
 * hostile ones are refused; the daemon's writer keeps events of many
 * threads in time order per message and writes them at its stop; mailctl's
 * direct writes land in the same store; the sweep removes a trace only
 * once its message has been gone for the retention, and orphans only past
 * TRACE_ORPHAN_AGE; events past the bounded queue are dropped and counted,
 * never blocking.
 */
#include <CUnit/Basic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/trace.h"

static char dir[64];

struct collect {
	int n;
	struct trace_rec recs[64];
};

static int
collect_fn(const struct trace_rec *r, void *arg)
{
	struct collect *c = arg;

	if (c->n < 64)
		c->recs[c->n] = *r;
	c->n++;
	return 0;
}

static int
count_events(struct trace_db *db, queue_id_t id)
{
	struct collect c = { 0 };

	return trace_db_read(db, id, collect_fn, &c);
}

static void
test_records(void)
{
	uint8_t rec[TRACE_RECORD_MAX + 8];
	struct trace_rec r;
	char longtext[TRACE_TEXT_MAX + 100];
	size_t n;

	n = trace_record_encode("delivery", "to=<a@b> status=sent", rec);
	CU_ASSERT_EQUAL(trace_record_decode(rec, n, &r), 0);
	CU_ASSERT_STRING_EQUAL(r.kind, "delivery");
	CU_ASSERT_STRING_EQUAL(r.text, "to=<a@b> status=sent");
	/* Cut to the maximums. */
	memset(longtext, 'x', sizeof longtext - 1);
	longtext[sizeof longtext - 1] = '\0';
	n = trace_record_encode("a-kind-far-too-long-to-keep", longtext, rec);
	CU_ASSERT(n <= TRACE_RECORD_MAX);
	CU_ASSERT_EQUAL(trace_record_decode(rec, n, &r), 0);
	CU_ASSERT_EQUAL(strlen(r.kind), TRACE_KIND_MAX);
	CU_ASSERT_EQUAL(strlen(r.text), TRACE_TEXT_MAX);
	/* Hostile: truncated, trailing bytes, a bad version, lengths past the
	 * buffer or the maximums, NULs inside. */
	n = trace_record_encode("rcpt", "to=<x@y>", rec);
	for (size_t cut = 0; cut < n; cut++)
		CU_ASSERT_EQUAL(trace_record_decode(rec, cut, &r), -1);
	CU_ASSERT_EQUAL(trace_record_decode(rec, n + 1, &r), -1);
	rec[0] = 9;
	CU_ASSERT_EQUAL(trace_record_decode(rec, n, &r), -1);
	rec[0] = 1;
	rec[1] = 200;
	CU_ASSERT_EQUAL(trace_record_decode(rec, n, &r), -1);
	n = trace_record_encode("rcpt", "to=<x@y>", rec);
	rec[6] = 0xff;
	rec[7] = 0xff;
	CU_ASSERT_EQUAL(trace_record_decode(rec, n, &r), -1);
	n = trace_record_encode("rcpt", "to=<x@y>", rec);
	rec[9] = '\0';
	CU_ASSERT_EQUAL(trace_record_decode(rec, n, &r), -1);
	n = trace_record_encode("rcpt", "to=<x@y>", rec);
	rec[3] = '\0';
	CU_ASSERT_EQUAL(trace_record_decode(rec, n, &r), -1);
}

struct writer_arg {
	queue_id_t id;
	int t;
};

static void *
writer_thread(void *arg)
{
	struct writer_arg *w = arg;

	for (int i = 0; i < 10; i++)
		trace_add(w->id, 0, "rcpt", "thread=%d event=%d", w->t, i);
	return NULL;
}

static void
test_daemon_writer(void)
{
	char err[256];
	struct trace_db *db;
	struct collect c = { 0 };
	queue_id_t id = queue_id_next(), other = queue_id_next();
	int64_t now = trace_now_us() - 10000000;	/* before the threads' */
	pthread_t th[4];
	struct writer_arg wa[4];

	/* No trace started: dropped, never blocking. */
	uint64_t dropped = trace_dropped();
	trace_add(id, 0, "connect", "before the start");
	CU_ASSERT_EQUAL(trace_dropped(), dropped + 1);

	CU_ASSERT_EQUAL_FATAL(trace_start(dir, 3600, err, sizeof err), 0);
	/* Events written later with an earlier time come out in time order. */
	trace_add(id, now + 2000, "queued", "size=10");
	trace_add(id, now, "connect", "client=[127.0.0.1]");
	trace_add(id, now + 1000, "mail", "from=<a@b>");
	trace_add(other, 0, "connect", "someone else");
	for (int t = 0; t < 4; t++) {
		wa[t] = (struct writer_arg){ id, t };
		CU_ASSERT_EQUAL(pthread_create(&th[t], NULL, writer_thread, &wa[t]), 0);
	}
	for (int t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	trace_done(other, time(NULL));
	trace_stop();

	CU_ASSERT_FATAL((db = trace_db_open(dir, 0, err, sizeof err)) != NULL);
	CU_ASSERT_EQUAL(trace_db_read(db, id, collect_fn, &c), 43);
	CU_ASSERT_STRING_EQUAL(c.recs[0].kind, "connect");
	CU_ASSERT_EQUAL(c.recs[0].time_us, now);
	CU_ASSERT_STRING_EQUAL(c.recs[1].kind, "mail");
	CU_ASSERT_STRING_EQUAL(c.recs[2].kind, "queued");
	for (int i = 1; i < c.n && i < 64; i++)
		CU_ASSERT(c.recs[i].time_us >= c.recs[i - 1].time_us);
	CU_ASSERT_EQUAL(count_events(db, other), 1);
	CU_ASSERT_EQUAL(count_events(db, queue_id_next()), 0);
	trace_db_close(&db);
	/* After the stop: dropped again. */
	dropped = trace_dropped();
	trace_add(id, 0, "late", "after the stop");
	CU_ASSERT_EQUAL(trace_dropped(), dropped + 1);
}

struct scan_seen {
	queue_id_t last, from;		/* count the events of ids >= from */
	int n, ours, ordered, stop_at;
};

static int
scan_event(queue_id_t id, const struct trace_rec *r, void *arg)
{
	struct scan_seen *s = arg;

	if (id < s->last || r->kind[0] == '\0')
		s->ordered = 0;
	s->last = id;
	s->ours += id >= s->from;
	return ++s->n == s->stop_at;
}

static void
test_direct_and_sweep(void)
{
	char err[256], missing[128];
	struct trace_db *db;
	queue_id_t gone = queue_id_next(), kept = queue_id_next(), open = queue_id_next();
	int64_t now = time(NULL);

	snprintf(missing, sizeof missing, "%s/none", dir);
	CU_ASSERT_PTR_NULL(trace_db_open(missing, 0, err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no trace recorded"));

	CU_ASSERT_FATAL((db = trace_db_open(dir, 1, err, sizeof err)) != NULL);
	CU_ASSERT_EQUAL(trace_db_write(db, gone, "queued", "size=1", 0), 0);
	CU_ASSERT_EQUAL(trace_db_write(db, gone, "admin", "deleted by mailctl", 1), 0);
	CU_ASSERT_EQUAL(trace_db_write(db, kept, "queued", "size=2", 0), 0);
	CU_ASSERT_EQUAL(trace_db_write(db, open, "queued", "size=3", 0), 0);
	CU_ASSERT_EQUAL(count_events(db, gone), 2);
	/* A scan sees every event, message by message; fn can stop it. */
	{
		/* (the daemon writer's test left events too, of older ids) */
		struct scan_seen all = { 0, gone, 0, 0, 1, 0 }, first = { 0, gone, 0, 0, 1, 1 };

		CU_ASSERT_EQUAL(trace_db_scan(db, scan_event, &all), all.n);
		CU_ASSERT_EQUAL(all.ours, 4);
		CU_ASSERT_EQUAL(all.last, open);
		CU_ASSERT(all.ordered);
		CU_ASSERT_EQUAL(trace_db_scan(db, scan_event, &first), 1);
		CU_ASSERT_EQUAL(first.n, 1);
	}
	/* Within the retention: everything stays. */
	CU_ASSERT_EQUAL(trace_db_sweep(db, now + 100, 3600), 0);
	CU_ASSERT_EQUAL(count_events(db, gone), 2);
	CU_ASSERT_EQUAL(trace_db_write(db, kept, "removed", "left the queue", 1), 0);
	/* Past it: the ended traces go; one never recorded as gone stays
	 * until the orphan age. */
	CU_ASSERT_EQUAL(trace_db_sweep(db, now + 3602, 3600), 0);
	CU_ASSERT_EQUAL(count_events(db, gone), 0);
	CU_ASSERT_EQUAL(count_events(db, kept), 0);
	CU_ASSERT_EQUAL(count_events(db, open), 1);
	CU_ASSERT_EQUAL(trace_db_sweep(db, now + 3600 + TRACE_ORPHAN_AGE + 10, 3600), 0);
	CU_ASSERT_EQUAL(count_events(db, open), 0);
	/* A clock far in the past sweeps nothing it should not. */
	CU_ASSERT_EQUAL(trace_db_write(db, open, "queued", "again", 0), 0);
	CU_ASSERT_EQUAL(trace_db_sweep(db, 5, 3600), 0);
	CU_ASSERT_EQUAL(count_events(db, open), 1);
	trace_db_close(&db);
}

int
main(void)
{
	CU_pSuite suite;
	unsigned failures;
	char cmd[128];

	log_set_level(LOG_LVL_ERROR);
	str_copy(dir, "/tmp/test_trace.XXXXXX", sizeof dir);
	if (mkdtemp(dir) == NULL || CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	suite = CU_add_suite("trace", NULL, NULL);
	if (suite == NULL ||
	    !CU_add_test(suite, "records", test_records) ||
	    !CU_add_test(suite, "daemon writer", test_daemon_writer) ||
	    !CU_add_test(suite, "direct writes and sweep", test_direct_and_sweep)) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return failures ? 1 : 0;
}
