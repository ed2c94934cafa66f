/*
 * offloop: a pool of threads taking jobs from one bounded FIFO, grown on
 * demand up to its maximum (contract in offloop.h).
 */
#include "server/offloop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"

struct offloop {
	char name[32];
	unsigned base, max;		/* threads kept; threads at most */
	unsigned max_queued;

	pthread_mutex_t lock;		/* guards the fields below */
	pthread_cond_t cond;		/* a job queued, or the stop */
	pthread_cond_t gone;		/* a thread ended */
	struct offloop_job *head, *tail;
	unsigned queued;
	unsigned nthreads;		/* alive (detached) */
	unsigned idle;			/* waiting for a job */
	int stop;
	int warned;			/* the maximum was reached (logged once) */
};

static void *offloop_main(void *arg);

/* With p->lock held: one more thread; -1 when it cannot start. */
static int
offloop_grow(struct offloop *p)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, offloop_main, p);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		return -1;
	p->nthreads++;
	return 0;
}

/* With p->lock held: waits for a job; 0 when one is there (or the stop),
 * -1 when this thread is past the base and was idle long enough to go. */
static int
offloop_wait(struct offloop *p)
{
	struct timespec until;
	int timed = 0;

	p->idle++;
	while (p->head == NULL && !p->stop) {
		if (p->nthreads <= p->base) {
			pthread_cond_wait(&p->cond, &p->lock);
			timed = 0;
			continue;
		}
		if (!timed) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += OFFLOOP_IDLE_SECONDS;
			timed = 1;
		}
		if (pthread_cond_timedwait(&p->cond, &p->lock, &until) == ETIMEDOUT &&
		    p->head == NULL && !p->stop && p->nthreads > p->base) {
			p->idle--;
			return -1;
		}
	}
	p->idle--;
	return 0;
}

static void *
offloop_main(void *arg)
{
	struct offloop *p = arg;

	pthread_setname_np(pthread_self(), p->name);	/* "filter", "lookup"... */
	for (;;) {
		struct offloop_job *job;

		pthread_mutex_lock(&p->lock);
		if (offloop_wait(p) < 0 || p->head == NULL) {
			/* Idle past the base, or stopping with nothing left. */
			p->nthreads--;
			pthread_cond_broadcast(&p->gone);
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		job = p->head;
		p->head = job->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->queued--;
		/* Jobs still waiting at stop are cancelled, not run. */
		job->cancelled = p->stop;
		pthread_mutex_unlock(&p->lock);
		job->next = NULL;
		if (!job->cancelled)
			job->run(job);
		job->sink->post(job->sink, job);
	}
}

struct offloop *
offloop_start(const char *name, unsigned nthreads, unsigned max_threads,
    unsigned max_queued)
{
	struct offloop *p = xcalloc(1, sizeof *p);

	str_copy(p->name, name, sizeof p->name);
	p->base = nthreads ? nthreads : 1;
	p->max = max_threads > p->base ? max_threads : p->base;
	p->max_queued = max_queued;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	pthread_cond_init(&p->gone, NULL);
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->base; i++)
		if (offloop_grow(p) < 0)
			break;
	pthread_mutex_unlock(&p->lock);
	if (p->nthreads == 0) {
		log_error("%s pool: cannot start a thread", name);
		offloop_stop(&p);
		return NULL;
	}
	return p;
}

int
offloop_submit(struct offloop *p, struct offloop_job *job)
{
	int r = -1;

	job->cancelled = 0;
	job->next = NULL;
	pthread_mutex_lock(&p->lock);
	if (!p->stop && p->queued < p->max_queued) {
		if (p->tail)
			p->tail->next = job;
		else
			p->head = job;
		p->tail = job;
		p->queued++;
		/* Every thread busy: one more, so that a job never waits
		 * behind slow ones while the pool may grow. */
		if (p->queued > p->idle && p->nthreads < p->max &&
		    offloop_grow(p) < 0 && !p->warned) {
			p->warned = 1;
			log_warn("%s pool: cannot start a thread past %u", p->name,
			    p->nthreads);
		} else if (p->queued > p->idle && p->nthreads == p->max &&
		    p->max > p->base && !p->warned) {
			p->warned = 1;
			log_warn("%s pool: all %u threads busy; jobs wait for one",
			    p->name, p->max);
		}
		pthread_cond_signal(&p->cond);
		r = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

unsigned
offloop_waiting(struct offloop *p)
{
	unsigned n;

	pthread_mutex_lock(&p->lock);
	n = p->queued;
	pthread_mutex_unlock(&p->lock);
	return n;
}

unsigned
offloop_threads(struct offloop *p)
{
	unsigned n;

	pthread_mutex_lock(&p->lock);
	n = p->nthreads;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void
offloop_stop(struct offloop **pp)
{
	struct offloop *p = *pp;

	*pp = NULL;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->cond);
	while (p->nthreads > 0)
		pthread_cond_wait(&p->gone, &p->lock);
	pthread_mutex_unlock(&p->lock);
	/* Without a thread nothing took the waiting jobs: post them here. */
	while (p->head) {
		struct offloop_job *job = p->head;

		p->head = job->next;
		job->next = NULL;
		job->cancelled = 1;
		job->sink->post(job->sink, job);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	pthread_cond_destroy(&p->gone);
	free(p);
}
