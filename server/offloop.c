/*
 * offloop: a fixed pool of threads taking jobs from one bounded FIFO
 * (contract in offloop.h).
 */
#include "server/offloop.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

struct offloop {
	char name[32];
	pthread_t *threads;
	unsigned nthreads;
	unsigned max_queued;

	pthread_mutex_t lock;		/* guards the fields below */
	pthread_cond_t cond;
	struct offloop_job *head, *tail;
	unsigned queued;
	int stop;
};

static void *
offloop_main(void *arg)
{
	struct offloop *p = arg;

	for (;;) {
		struct offloop_job *job;

		pthread_mutex_lock(&p->lock);
		while (p->head == NULL && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->head == NULL) {
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
offloop_start(const char *name, unsigned nthreads, unsigned max_queued)
{
	struct offloop *p = xcalloc(1, sizeof *p);

	str_copy(p->name, name, sizeof p->name);
	p->max_queued = max_queued;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->threads = xcalloc(nthreads ? nthreads : 1, sizeof *p->threads);
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&p->threads[i], NULL, offloop_main, p) != 0)
			break;
		p->nthreads++;
	}
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
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	/* Without a thread nothing took the waiting jobs: post them here. */
	while (p->head) {
		struct offloop_job *job = p->head;

		p->head = job->next;
		job->next = NULL;
		job->cancelled = 1;
		job->sink->post(job->sink, job);
	}
	free(p->threads);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}
