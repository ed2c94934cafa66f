/*
 * test_scheduler: the scheduler (queue/scheduler.h) over a real store,
 * with the test playing the delivery threads.
 *  - A waiting message whose slot goes to a message that is gone or busy
 *    is not left behind.
 *  - Destinations with one next hop (scheduler_set_hop) share its limit.
 *  - Nothing is stranded, as an invariant: while simulated deliveries
 *    succeed, defer, hang and vanish at random, every recipient that has
 *    been due for longer than a pass is in a job or waits for a
 *    destination that has no free slot (or is taken within 5 s: a
 *    starved worker may be late), and the queue drains.
 *  - Planning a message of 1,000 recipients costs linear work.
 * Each test works in its own mkdtemp directory under /tmp; every wait is
 * bounded.
 */
#include <CUnit/Basic.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/record.h"
#include "queue/scheduler.h"
#include "queue/store.h"

#define WAIT_MS 10000

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static char *
tmpdir_make(void)
{
	char tmpl[] = "/tmp/test_scheduler.XXXXXX";
	char *d = mkdtemp(tmpl);

	CU_ASSERT_FATAL(d != NULL);
	return xstrdup(d);
}

static void
tmpdir_remove(char **dp)
{
	nftw(*dp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(*dp);
	*dp = NULL;
}

static struct queue_store *
open_store(const char *dir)
{
	char err[256];
	struct queue_store *s = store_open(dir, 0, 0, err, sizeof err);

	CU_ASSERT_FATAL(s != NULL);
	return s;
}

/* A message to the given addresses. */
static queue_id_t
put(struct queue_store *s, const char *const *addrs, size_t n)
{
	struct envelope env;
	struct store_wtxn *t;
	queue_id_t id = queue_id_next();

	memset(&env, 0, sizeof env);
	env.id = id;
	env.arrival = time(NULL);
	env.sender = xstrdup("sender@example.org");
	env.helo = xstrdup("client.example");
	env.client_addr = xstrdup("192.0.2.1");
	env.nrcpts = n;
	env.rcpts = xcalloc(n, sizeof *env.rcpts);
	for (size_t i = 0; i < n; i++)
		env.rcpts[i].addr = xstrdup(addrs[i]);
	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_put_msg(t, &env, "x\r\n", 3) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	envelope_free(&env);
	return id;
}

/* n messages to addr, in one transaction. */
static void
put_many(struct queue_store *s, const char *addr, size_t n)
{
	struct store_wtxn *t;

	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	for (size_t i = 0; i < n; i++) {
		struct envelope env;

		memset(&env, 0, sizeof env);
		env.id = queue_id_next();
		env.arrival = time(NULL);
		env.sender = xstrdup("sender@example.org");
		env.helo = xstrdup("client.example");
		env.client_addr = xstrdup("192.0.2.1");
		env.nrcpts = 1;
		env.rcpts = xcalloc(1, sizeof *env.rcpts);
		env.rcpts[0].addr = xstrdup(addr);
		CU_ASSERT(store_put_msg(t, &env, "x\r\n", 3) == STORE_OK);
		envelope_free(&env);
	}
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
}

static void
set_state(struct queue_store *s, queue_id_t id, uint32_t idx,
    enum rcpt_state state, int64_t next_try)
{
	struct rcpt_update u = { .state = state, .next_try = next_try,
	    .attempt_time = time(NULL) };
	struct store_wtxn *t;

	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	if (store_rcpt_update(t, id, idx, &u, NULL) == STORE_OK) {
		CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
	} else {
		store_wtxn_abort(&t);	/* gone meanwhile */
	}
}

static void
delete_msg(struct queue_store *s, queue_id_t id)
{
	struct store_wtxn *t;

	CU_ASSERT_FATAL(store_wtxn_begin(s, NULL, &t) == STORE_OK);
	CU_ASSERT(store_delete_msg(t, id) == STORE_OK);
	CU_ASSERT(store_wtxn_commit(&t) == STORE_OK);
}

/* Polls for a ready job for (id or any), up to WAIT_MS. */
static struct sched_job *
wait_job(struct scheduler *sc, int ms)
{
	int64_t end = time_mono_ms() + ms;

	for (;;) {
		struct sched_job *j = scheduler_take_job(sc, NULL, NULL);
		if (j != NULL || time_mono_ms() >= end)
			return j;
		usleep(5000);
	}
}

/* A waiting message whose turn goes to a message that was deleted
 * meanwhile, or to one with a job in flight, still gets the slot after
 * them: the free slot is not lost. */
static void
test_slot_not_lost(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir);
	static const char *const one[] = { "u@d.example" };
	static const char *const two[] = { "u@d.example", "v@e.example" };
	struct scheduler *sc;
	struct sched_job *j1, *j, *je;
	queue_id_t m1, m2, m3, m4;

	m1 = put(s, one, 1);
	sc = scheduler_start(s, 1);
	CU_ASSERT_FATAL(sc != NULL);
	j1 = wait_job(sc, WAIT_MS);
	CU_ASSERT_FATAL(j1 != NULL);
	CU_ASSERT_EQUAL(j1->id, m1);
	/* m2 (d and e): its e job goes out, d waits; m3 and m4 wait. */
	m2 = put(s, two, 2);
	scheduler_wake(sc);
	je = wait_job(sc, WAIT_MS);
	CU_ASSERT_FATAL(je != NULL);
	CU_ASSERT_EQUAL(je->id, m2);
	CU_ASSERT_STRING_EQUAL(je->dest, "e.example");
	m3 = put(s, one, 1);
	m4 = put(s, one, 1);
	scheduler_wake(sc);
	CU_ASSERT_PTR_NULL(wait_job(sc, 300));
	/* m3 goes away; m1 is done: the slot passes m2 (whose e job is
	 * still out, but whose d recipient may go) and m3 (gone). */
	delete_msg(s, m3);
	set_state(s, m1, 0, RCPT_SENT, 0);
	scheduler_job_done(sc, j1);
	j = wait_job(sc, WAIT_MS);
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT_EQUAL(j->id, m2);
	CU_ASSERT_STRING_EQUAL(j->dest, "d.example");
	set_state(s, m2, 0, RCPT_SENT, 0);
	scheduler_job_done(sc, j);
	set_state(s, m2, 1, RCPT_SENT, 0);
	scheduler_job_done(sc, je);
	j = wait_job(sc, WAIT_MS);
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT_EQUAL(j->id, m4);
	set_state(s, m4, 0, RCPT_SENT, 0);
	scheduler_job_done(sc, j);
	scheduler_shutdown(sc);
	scheduler_free(&sc);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* More messages wait for a hung destination than one pass looks at:
 * a message for another destination behind them is still planned, with
 * no wake-up (full passes go on where the last one stopped). */
static void
test_backlog_does_not_hide_due_mail(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir);
	static const char *const fast[] = { "u@fast.example" };
	struct scheduler *sc;
	struct sched_job *slow = NULL, *found = NULL;
	queue_id_t m;
	int64_t end;

	put_many(s, "u@slow.example", 5000);
	m = put(s, fast, 1);
	sc = scheduler_start(s, 1);
	CU_ASSERT_FATAL(sc != NULL);
	end = time_mono_ms() + WAIT_MS;
	while (found == NULL && time_mono_ms() < end) {
		struct sched_job *j = scheduler_take_job(sc, NULL, NULL);
		if (j == NULL)
			usleep(5000);
		else if (strcmp(j->dest, "fast.example") == 0)
			found = j;
		else if (slow == NULL)
			slow = j;	/* hangs: never done until the end */
		else
			CU_FAIL("two jobs at once for a destination of limit 1");
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(found);
	CU_ASSERT_EQUAL(found->id, m);
	set_state(s, m, 0, RCPT_SENT, 0);
	scheduler_job_done(sc, found);
	if (slow != NULL)
		scheduler_job_done(sc, slow);
	scheduler_shutdown(sc);
	scheduler_free(&sc);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* Every destination but c.example goes through one host. */
static void
one_gateway(const char *dest, char *out, size_t outsize, void *arg)
{
	(void)arg;
	snprintf(out, outsize, "%s", strcmp(dest, "c.example") == 0 ? dest :
	    "[gw.example]:25");
}

/* Destinations with one next hop share its limit: with limit 1, a's job
 * holds the gateway, b's waits for it; c (another hop) goes at once. */
static void
test_hop_shared_limit(void)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir);
	static const char *const a[] = { "u@a.example" };
	static const char *const b[] = { "u@b.example" };
	static const char *const c[] = { "u@c.example" };
	struct scheduler *sc;
	struct sched_job *ja, *jc, *jb;
	queue_id_t ma, mb, mc;

	sc = scheduler_start(s, 1);
	CU_ASSERT_FATAL(sc != NULL);
	scheduler_set_hop(sc, one_gateway, NULL);
	ma = put(s, a, 1);
	scheduler_wake(sc);
	ja = wait_job(sc, WAIT_MS);
	CU_ASSERT_FATAL(ja != NULL);
	CU_ASSERT_EQUAL(ja->id, ma);
	mb = put(s, b, 1);
	mc = put(s, c, 1);
	scheduler_wake(sc);
	jc = wait_job(sc, WAIT_MS);
	CU_ASSERT_FATAL(jc != NULL);
	CU_ASSERT_EQUAL(jc->id, mc);
	CU_ASSERT_PTR_NULL(wait_job(sc, 300));	/* b waits for the gateway */
	set_state(s, ma, 0, RCPT_SENT, 0);
	scheduler_job_done(sc, ja);
	jb = wait_job(sc, WAIT_MS);
	CU_ASSERT_FATAL(jb != NULL);
	CU_ASSERT_EQUAL(jb->id, mb);
	CU_ASSERT_STRING_EQUAL(jb->dest, "b.example");
	set_state(s, mb, 0, RCPT_SENT, 0);
	scheduler_job_done(sc, jb);
	set_state(s, mc, 0, RCPT_SENT, 0);
	scheduler_job_done(sc, jc);
	scheduler_set_hop(sc, NULL, NULL);
	scheduler_shutdown(sc);
	scheduler_free(&sc);
	store_close(&s);
	tmpdir_remove(&dir);
}

/* ---- nothing stranded, as an invariant ---- */

#define SIM_MSGS 150
#define SIM_DESTS 5
#define SIM_LIMIT 2
#define SIM_WORKERS 4

struct sim {
	struct queue_store *s;
	struct scheduler *sc;
	pthread_mutex_t mu;		/* guards the in-flight view below */
	struct sched_job *held[SIM_WORKERS * 2];
	unsigned per_dest[SIM_DESTS];
	atomic_int stop;
	atomic_int jobs;
};

static unsigned
sim_dest(const char *dest)
{
	return (unsigned)(dest[1] - '0') % SIM_DESTS;
}

static uint32_t
sim_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void *
sim_worker(void *arg)
{
	struct sim *sm = arg;
	uint32_t rnd = (uint32_t)(uintptr_t)pthread_self() | 1;

	while (!atomic_load(&sm->stop)) {
		struct sched_job *j = scheduler_take_job(sm->sc, NULL, NULL);
		size_t slot;
		unsigned d;

		if (j == NULL) {
			usleep(2000);
			continue;
		}
		atomic_fetch_add(&sm->jobs, 1);
		d = sim_dest(j->dest);
		pthread_mutex_lock(&sm->mu);
		for (slot = 0; sm->held[slot] != NULL; slot++)
			;
		sm->held[slot] = j;
		sm->per_dest[d]++;
		pthread_mutex_unlock(&sm->mu);
		switch (sim_rand(&rnd) % 10) {
		case 0:		/* the message vanishes (mailctl delete) */
		{
			struct store_wtxn *t;
			if (store_wtxn_begin(sm->s, NULL, &t) == STORE_OK) {
				(void)store_delete_msg(t, j->id);
				store_wtxn_commit(&t);
			}
			break;
		}
		case 1:
		case 2:		/* deferred, due again soon */
			for (size_t i = 0; i < j->n; i++)
				set_state(sm->s, j->id, j->idx[i], RCPT_DEFERRED,
				    time(NULL) + 1);
			break;
		case 3:		/* a slow attempt */
			usleep(50000);
			/* FALLTHROUGH */
		default:
			for (size_t i = 0; i < j->n; i++)
				set_state(sm->s, j->id, j->idx[i], RCPT_SENT, 0);
			break;
		}
		pthread_mutex_lock(&sm->mu);
		sm->held[slot] = NULL;
		sm->per_dest[d]--;
		pthread_mutex_unlock(&sm->mu);
		scheduler_job_done(sm->sc, j);
	}
	return NULL;
}

/* A recipient seen stranded, and in how many checks in a row. A ready job
 * may wait a while for a worker the machine starves (ThreadSanitizer on
 * a loaded host); one the scheduler lost stays stranded for good. */
#define SIM_STREAK 25		/* checks, 200 ms apart: 5 s */
struct sim_seen {
	queue_id_t id;
	uint32_t idx;
	unsigned streak;
};

static unsigned
sim_streak(const struct sim_seen *prev, size_t nprev, queue_id_t id,
    uint32_t idx)
{
	for (size_t i = 0; i < nprev; i++)
		if (prev[i].id == id && prev[i].idx == idx)
			return prev[i].streak;
	return 0;
}

/* Is (id, dest) in a job the workers hold? Locked. */
static int
sim_holds(struct sim *sm, queue_id_t id, const char *dest)
{
	for (size_t i = 0; i < SIM_WORKERS * 2; i++)
		if (sm->held[i] != NULL && sm->held[i]->id == id &&
		    strcmp(sm->held[i]->dest, dest) == 0)
			return 1;
	return 0;
}

static void
test_nothing_stranded(void)
{
	char *dir = tmpdir_make();
	struct sim sm;
	pthread_t w[SIM_WORKERS];
	struct store_due *due = xcalloc(4096, sizeof *due);
	struct sim_seen *seen = xcalloc(4096, sizeof *seen);
	struct sim_seen *next = xcalloc(4096, sizeof *next);
	size_t nseen = 0;
	struct store_stats st;
	uint32_t rnd = 12345;
	int64_t end;
	unsigned violations = 0, checks = 0;

	memset(&sm, 0, sizeof sm);
	sm.s = open_store(dir);
	pthread_mutex_init(&sm.mu, NULL);
	for (int i = 0; i < SIM_MSGS; i++) {
		char a[3][64];
		const char *addrs[3];
		size_t n = 1 + sim_rand(&rnd) % 3;
		for (size_t k = 0; k < n; k++) {
			snprintf(a[k], sizeof a[k], "u%zu@d%u.example", k,
			    (unsigned)(sim_rand(&rnd) % SIM_DESTS));
			addrs[k] = a[k];
		}
		put(sm.s, addrs, n);
	}
	sm.sc = scheduler_start(sm.s, SIM_LIMIT);
	CU_ASSERT_FATAL(sm.sc != NULL);
	for (int i = 0; i < SIM_WORKERS; i++)
		pthread_create(&w[i], NULL, sim_worker, &sm);
	end = time_mono_ms() + 60000;
	while (time_mono_ms() < end) {
		size_t n = 0;
		int64_t now = time(NULL);

		CU_ASSERT(store_stats_get(sm.s, &st) == STORE_OK);
		if (st.messages == 0)
			break;
		/* An administrator deletes a message now and then: often one
		 * that waits for its destination. */
		CU_ASSERT(store_due_list(sm.s, NULL, INT64_MAX, due, 4096, &n) ==
		    STORE_OK);
		if (n > 0 && sim_rand(&rnd) % 2 == 0) {
			queue_id_t victim = due[sim_rand(&rnd) % n].id;
			struct store_wtxn *t;
			pthread_mutex_lock(&sm.mu);
			int held = 0;
			for (size_t i = 0; i < SIM_WORKERS * 2; i++)
				held |= sm.held[i] != NULL && sm.held[i]->id == victim;
			pthread_mutex_unlock(&sm.mu);
			if (!held && store_wtxn_begin(sm.s, NULL, &t) == STORE_OK) {
				(void)store_delete_msg(t, victim);
				store_wtxn_commit(&t);
			}
		}
		n = 0;
		/* Due for more than two passes: in a job, or its destination
		 * has no free slot; else stranded, and a violation once it
		 * stays so for SIM_STREAK checks in a row. */
		CU_ASSERT(store_due_list(sm.s, NULL, now - 3, due, 4096, &n) ==
		    STORE_OK);
		size_t nnext = 0;
		pthread_mutex_lock(&sm.mu);
		for (size_t i = 0; i < n; i++) {
			checks++;
			if (sim_holds(&sm, due[i].id, due[i].dest) ||
			    sm.per_dest[sim_dest(due[i].dest)] >= SIM_LIMIT)
				continue;
			next[nnext].id = due[i].id;
			next[nnext].idx = due[i].idx;
			next[nnext].streak = sim_streak(seen, nseen, due[i].id,
			    due[i].idx) + 1;
			if (next[nnext].streak == SIM_STREAK)
				violations++;
			nnext++;
		}
		pthread_mutex_unlock(&sm.mu);
		memcpy(seen, next, nnext * sizeof *seen);
		nseen = nnext;
		usleep(200000);
	}
	atomic_store(&sm.stop, 1);
	for (int i = 0; i < SIM_WORKERS; i++)
		pthread_join(w[i], NULL);
	CU_ASSERT(store_stats_get(sm.s, &st) == STORE_OK);
	CU_ASSERT_EQUAL(st.messages, 0);	/* it drained */
	CU_ASSERT_EQUAL(violations, 0);
	if (violations)
		fprintf(stderr, "\n  %u of %u checks found a stranded recipient\n",
		    violations, checks);
	CU_ASSERT(atomic_load(&sm.jobs) >= SIM_MSGS);
	scheduler_shutdown(sm.sc);
	scheduler_free(&sm.sc);
	pthread_mutex_destroy(&sm.mu);
	store_close(&sm.s);
	free(due);
	free(seen);
	free(next);
	tmpdir_remove(&dir);
}

/* ---- work ---- */

static uint64_t
plan_work_for(size_t n, int one_domain)
{
	char *dir = tmpdir_make();
	struct queue_store *s = open_store(dir);
	char (*a)[64] = xcalloc(n, sizeof *a);
	const char **addrs = xcalloc(n, sizeof *addrs);
	struct scheduler *sc;
	struct sched_job *j;
	size_t got = 0;
	uint64_t work;

	for (size_t i = 0; i < n; i++) {
		snprintf(a[i], sizeof a[i], "u%zu@d%zu.example", i,
		    one_domain ? 0 : i);
		addrs[i] = a[i];
	}
	put(s, addrs, n);
	sc = scheduler_start(s, 100000);
	CU_ASSERT_FATAL(sc != NULL);
	while (got < n && (j = wait_job(sc, WAIT_MS)) != NULL) {
		got += j->n;
		for (size_t i = 1; i < j->n; i++)
			CU_ASSERT(j->idx[i - 1] < j->idx[i]);
		scheduler_job_done(sc, j);	/* not recorded: stays due */
		if (got == n)
			break;
	}
	CU_ASSERT_EQUAL(got, n);
	work = scheduler_plan_work(sc);
	scheduler_shutdown(sc);
	scheduler_free(&sc);
	store_close(&s);
	free(a);
	free(addrs);
	tmpdir_remove(&dir);
	return work;
}

/* Planning a message of 1,000 recipients, in 1,000 domains or in one:
 * about ten times the work of 100 (n log n), not a hundred times. */
static void
test_plan_linear(void)
{
	uint64_t a = plan_work_for(100, 0), b = plan_work_for(1000, 0);
	uint64_t c = plan_work_for(100, 1), d = plan_work_for(1000, 1);

	if (getenv("TEST_SCHED_VERBOSE"))
		fprintf(stderr, "\n  plan work: %llu %llu, one domain %llu %llu\n",
		    (unsigned long long)a, (unsigned long long)b,
		    (unsigned long long)c, (unsigned long long)d);
	CU_ASSERT(a > 0 && c > 0);
	CU_ASSERT(b < 20 * a);
	CU_ASSERT(d < 20 * c);
}

int
main(void)
{
	CU_pSuite suite;
	unsigned failures;

	log_set_level(getenv("TEST_SCHED_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	suite = CU_add_suite("scheduler", NULL, NULL);
	if (suite == NULL ||
	    !CU_add_test(suite, "a free slot is not lost", test_slot_not_lost) ||
	    !CU_add_test(suite, "one next hop, one limit", test_hop_shared_limit) ||
	    !CU_add_test(suite, "nothing stranded (invariant)", test_nothing_stranded) ||
	    !CU_add_test(suite, "a backlog does not hide due mail",
	    test_backlog_does_not_hide_due_mail) ||
	    !CU_add_test(suite, "1,000 recipients: linear planning", test_plan_linear)) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failures ? 1 : 0;
}
