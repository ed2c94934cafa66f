/*
 * Unit tests of server/offloop: jobs run on pool threads (never on the
 * submitting thread), come back through their sink, one at a time per
 * thread, with a bounded queue; a stop cancels what never started and
 * waits for what runs; a growing pool starts threads while every one is
 * busy, up to its maximum.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "lib/util.h"
#include "server/offloop.h"

struct test_sink {
	struct offloop_sink sink;	/* first */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done, cancelled;
};

struct test_job {
	struct offloop_job job;		/* first */
	pthread_t ran_on;
	int ran;
	pthread_mutex_t *gate;		/* held by the test to keep the job running */
};

static void
sink_post(struct offloop_sink *sink, struct offloop_job *job)
{
	struct test_sink *t = (struct test_sink *)(void *)sink;

	pthread_mutex_lock(&t->lock);
	t->done++;
	if (job->cancelled)
		t->cancelled++;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void
job_run(struct offloop_job *job)
{
	struct test_job *j = (struct test_job *)(void *)job;

	j->ran_on = pthread_self();
	j->ran = 1;
	if (j->gate) {
		pthread_mutex_lock(j->gate);
		pthread_mutex_unlock(j->gate);
	}
}

static void
sink_init(struct test_sink *t)
{
	memset(t, 0, sizeof *t);
	t->sink.post = sink_post;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
}

static void
sink_wait(struct test_sink *t, int n)
{
	pthread_mutex_lock(&t->lock);
	while (t->done < n)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

static void
test_runs_off_thread(void)
{
	struct offloop *p = offloop_start("test", 3, 3, 100);
	struct test_sink sink;
	struct test_job jobs[50];

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	sink_init(&sink);
	memset(jobs, 0, sizeof jobs);
	for (int i = 0; i < 50; i++) {
		jobs[i].job.run = job_run;
		jobs[i].job.sink = &sink.sink;
		CU_ASSERT_EQUAL(offloop_submit(p, &jobs[i].job), 0);
	}
	sink_wait(&sink, 50);
	for (int i = 0; i < 50; i++) {
		CU_ASSERT(jobs[i].ran);
		CU_ASSERT(!pthread_equal(jobs[i].ran_on, pthread_self()));
		CU_ASSERT_EQUAL(jobs[i].job.cancelled, 0);
	}
	CU_ASSERT_EQUAL(sink.cancelled, 0);
	offloop_stop(&p);
	CU_ASSERT_PTR_NULL(p);
}

/* One thread, held busy: the queue takes max_queued more, then refuses;
 * a stop cancels the waiting ones and lets the running one finish. */
static void
test_bounded_and_stop(void)
{
	pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
	struct offloop *p = offloop_start("test", 1, 1, 4);
	struct test_sink sink;
	struct test_job jobs[6];

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	sink_init(&sink);
	memset(jobs, 0, sizeof jobs);
	pthread_mutex_lock(&gate);
	for (int i = 0; i < 6; i++) {
		jobs[i].job.run = job_run;
		jobs[i].job.sink = &sink.sink;
		jobs[i].gate = &gate;
	}
	CU_ASSERT_EQUAL(offloop_submit(p, &jobs[0].job), 0);
	/* wait until the thread took it (it then blocks on the gate) */
	while (offloop_waiting(p) != 0)
		usleep(1000);
	for (int i = 1; i <= 4; i++)
		CU_ASSERT_EQUAL(offloop_submit(p, &jobs[i].job), 0);
	CU_ASSERT_EQUAL(offloop_waiting(p), 4);
	CU_ASSERT_EQUAL(offloop_submit(p, &jobs[5].job), -1);
	pthread_mutex_unlock(&gate);
	offloop_stop(&p);
	/* after the stop every taken job was posted: run or cancelled */
	CU_ASSERT_EQUAL(sink.done, 5);
	CU_ASSERT(jobs[0].ran);
	CU_ASSERT_EQUAL(jobs[0].job.cancelled, 0);
	for (int i = 1; i <= 4; i++)
		CU_ASSERT_EQUAL(jobs[i].ran, !jobs[i].job.cancelled);
	CU_ASSERT_EQUAL(jobs[5].ran, 0);
}

/* Jobs that wait until released, counting how many run at once. */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t held_cond = PTHREAD_COND_INITIALIZER;
static int held_running, held_released;

static void
held_run(struct offloop_job *job)
{
	(void)job;
	pthread_mutex_lock(&held_lock);
	held_running++;
	pthread_cond_broadcast(&held_cond);
	while (!held_released)
		pthread_cond_wait(&held_cond, &held_lock);
	pthread_mutex_unlock(&held_lock);
}

/* Waits (up to 10 s) until n held jobs run at once; their count then. */
static int
held_wait(int n)
{
	struct timespec until;
	int got;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&held_lock);
	while (held_running < n &&
	    pthread_cond_timedwait(&held_cond, &held_lock, &until) == 0)
		;
	got = held_running;
	pthread_mutex_unlock(&held_lock);
	return got;
}

/* Base 2, at most 8: eight jobs that all wait run at once (a fixed pool
 * would run two); a ninth waits for a thread; released, all come back. */
static void
test_grows_to_max(void)
{
	struct offloop *p = offloop_start("test", 2, 8, 100);
	struct test_sink sink;
	struct test_job jobs[9];

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(offloop_threads(p), 2);
	sink_init(&sink);
	memset(jobs, 0, sizeof jobs);
	for (int i = 0; i < 8; i++) {
		jobs[i].job.run = held_run;
		jobs[i].job.sink = &sink.sink;
		CU_ASSERT_EQUAL(offloop_submit(p, &jobs[i].job), 0);
	}
	CU_ASSERT_EQUAL(held_wait(8), 8);
	CU_ASSERT_EQUAL(offloop_threads(p), 8);
	jobs[8].job.run = held_run;
	jobs[8].job.sink = &sink.sink;
	CU_ASSERT_EQUAL(offloop_submit(p, &jobs[8].job), 0);
	CU_ASSERT_EQUAL(offloop_threads(p), 8);
	CU_ASSERT_EQUAL(offloop_waiting(p), 1);
	pthread_mutex_lock(&held_lock);
	held_released = 1;
	pthread_cond_broadcast(&held_cond);
	pthread_mutex_unlock(&held_lock);
	sink_wait(&sink, 9);
	CU_ASSERT_EQUAL(sink.cancelled, 0);
	offloop_stop(&p);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("offloop", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "runs off the thread", test_runs_off_thread) == NULL ||
	    CU_add_test(s, "bounded queue and stop", test_bounded_and_stop) == NULL ||
	    CU_add_test(s, "grows to its maximum", test_grows_to_max) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
