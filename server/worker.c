/*
 * worker: one epoll loop running many sessions. New connections and
 * commit results arrive through mutex-guarded mailboxes and an eventfd;
 * deadlines are checked once a second over the session table. A retired
 * worker's thread ends when nothing can reach it any more (worker.h).
 */
#include "server/worker.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/connlimit.h"
#include "server/smtp_session.h"

struct worker_conn {
	int fd;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	enum listen_kind kind;
	struct worker_conn *next;
};

struct worker_done {
	struct smtp_session *s;
	enum commit_status status;
	struct commit_stage *stage;	/* a record's result, or NULL: a commit's */
	struct worker_done *next;
};

struct worker {
	int index;
	pthread_t thread;
	int epfd;
	int evfd;
	struct committer *committer;
	struct worker_pools pools;
	struct offloop_sink sink;	/* worker_post_job finds w from it */

	pthread_mutex_t lock;		/* guards the mailboxes and flags below */
	struct worker_conn *conns;
	struct worker_done *dones;
	struct offloop_job *jobs, *jobs_tail;	/* finished off-loop jobs, in order */
	int drain;
	int stop;
	int retired;			/* no new connection comes; end when empty */
	int ended;			/* the thread left its loop */
	int halted;			/* main thread: the thread was joined */
	struct worker_describe_req *describe;	/* asked, not yet answered */
	pthread_cond_t described;	/* signalled when it was answered */

	/* worker thread only */
	struct smtp_session **sessions;
	size_t nsessions, capsessions;
	struct smtp_session **ready;	/* to run again, without waiting */
	size_t nready, capready;
	/* Sessions ended while the loop handles a batch of events: freed
	 * after it (a later event of the batch may name one). */
	struct smtp_session **dead;
	size_t ndead, capdead;
	int in_batch;
	int draining;
	int64_t next_tick;		/* when deadlines are checked next */
	atomic_uint count;
	/* Off-loop jobs submitted and not yet posted back: raised by the
	 * worker's thread, lowered by the poster under the lock. */
	atomic_uint jobs_out;
};

/* The eventfd's epoll tag; sessions are tagged by their own pointer, and
 * a session's other sockets (worker_watch_aux) by it with the low bit set
 * (sessions are malloc'd: aligned). */
static char worker_wake_tag;
#define WORKER_AUX_BIT ((uintptr_t)1)

/* Called with w->lock held by every thread but w's own: once the lock is
 * let go, the poster is done with w (worker.h, lifetime). */
static void
worker_wake(struct worker *w)
{
	uint64_t one = 1;
	ssize_t r = write(w->evfd, &one, sizeof one);
	(void)r;
}

static void
worker_add_session(struct worker *w, struct smtp_session *s)
{
	if (w->nsessions == w->capsessions) {
		w->capsessions = w->capsessions ? w->capsessions * 2 : 256;
		w->sessions = xrealloc(w->sessions,
		    w->capsessions * sizeof *w->sessions);
	}
	*smtp_session_slot(s) = w->nsessions;
	w->sessions[w->nsessions++] = s;
	atomic_store(&w->count, (unsigned)w->nsessions);
}

/* Removes s from the sessions to run again. */
static void
worker_unready(struct worker *w, struct smtp_session *s)
{
	for (size_t k = 0; k < w->nready; k++) {
		if (w->ready[k] == s) {
			memmove(w->ready + k, w->ready + k + 1,
			    (w->nready - k - 1) * sizeof *w->ready);
			w->nready--;
			return;
		}
	}
}

/* Ends s: freed now, or once its commit result arrived. */
static void
worker_end_session(struct worker *w, struct smtp_session *s)
{
	size_t i = *smtp_session_slot(s);

	if (i == SIZE_MAX)
		return;		/* ended in this batch already */
	worker_unready(w, s);
	if (!smtp_session_can_free(s))
		return;		/* freed from worker_take_dones */
	w->sessions[i] = w->sessions[--w->nsessions];
	*smtp_session_slot(w->sessions[i]) = i;
	atomic_store(&w->count, (unsigned)w->nsessions);
	if (w->in_batch) {
		/* Its sockets close now; the session itself after the batch. */
		smtp_session_abort(s);
		*smtp_session_slot(s) = SIZE_MAX;
		if (w->ndead == w->capdead) {
			w->capdead = w->capdead ? w->capdead * 2 : 16;
			w->dead = xrealloc(w->dead, w->capdead * sizeof *w->dead);
		}
		w->dead[w->ndead++] = s;
		return;
	}
	smtp_session_free(&s);
}

/* Frees the sessions that ended during the batch of events. */
static void
worker_free_dead(struct worker *w)
{
	for (size_t k = 0; k < w->ndead; k++)
		smtp_session_free(&w->dead[k]);
	w->ndead = 0;
}

/* A connection no session will serve: told to come back, closed. */
static void
worker_refuse_conn(struct worker_conn *c)
{
	static const char msg[] = "421 4.3.2 Server shutting down\r\n";
	ssize_t r = write(c->fd, msg, sizeof msg - 1);

	(void)r;
	close(c->fd);
	connlimit_release((struct sockaddr *)&c->peer);
}

static void
worker_take_conns(struct worker *w)
{
	struct worker_conn *c, *next;

	pthread_mutex_lock(&w->lock);
	c = w->conns;
	w->conns = NULL;
	pthread_mutex_unlock(&w->lock);
	for (; c; c = next) {
		struct smtp_session *s;

		next = c->next;
		if (w->draining) {
			worker_refuse_conn(c);
		} else {
			s = smtp_session_new(w, c->fd, (struct sockaddr *)&c->peer,
			    c->peerlen, c->kind);
			if (s != NULL)
				worker_add_session(w, s);
		}
		free(c);
	}
}

static void
worker_take_dones(struct worker *w)
{
	struct worker_done *d, *next;

	pthread_mutex_lock(&w->lock);
	d = w->dones;
	w->dones = NULL;
	if (w->drain)
		w->draining = 1;
	pthread_mutex_unlock(&w->lock);
	/* In the order posted: a message's staged records come back before
	 * the commit that made it visible (smtp_session_int.h). */
	{
		struct worker_done *rev = NULL;

		for (; d; d = next) {
			next = d->next;
			d->next = rev;
			rev = d;
		}
		d = rev;
	}
	for (; d; d = next) {
		int rc;

		next = d->next;
		if (d->stage != NULL)
			rc = smtp_session_stage_done(d->s, d->stage, d->status);
		else
			rc = smtp_session_commit_done(d->s, d->status);
		if (rc < 0)
			worker_end_session(w, d->s);
		free(d);
	}
}

static void
worker_take_jobs(struct worker *w)
{
	struct offloop_job *j, *next;

	pthread_mutex_lock(&w->lock);
	j = w->jobs;
	w->jobs = w->jobs_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	for (; j; j = next) {
		struct smtp_session *s = NULL;

		next = j->next;
		if (smtp_session_job_done(j, &s) < 0)
			worker_end_session(w, s);
	}
}

/* The worker whose sink this is. */
static struct worker *
worker_of_sink(struct offloop_sink *sink)
{
	return (struct worker *)(void *)((char *)sink - offsetof(struct worker, sink));
}

static void
worker_post_job(struct offloop_sink *sink, struct offloop_job *job)
{
	struct worker *w = worker_of_sink(sink);

	job->next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->jobs_tail)
		w->jobs_tail->next = job;
	else
		w->jobs = job;
	w->jobs_tail = job;
	atomic_fetch_sub(&w->jobs_out, 1);
	worker_wake(w);
	pthread_mutex_unlock(&w->lock);
}

/* A worker_describe waiting for the worker's thread. */
struct worker_describe_req {
	FILE *f;
	int json;
	size_t first;			/* sessions already written before */
	size_t n;
	int done;
};

static void
worker_take_describe(struct worker *w)
{
	struct worker_describe_req *req;

	pthread_mutex_lock(&w->lock);
	req = w->describe;
	w->describe = NULL;
	pthread_mutex_unlock(&w->lock);
	if (req == NULL)
		return;
	for (size_t i = 0; i < w->nsessions; i++)
		smtp_session_describe(w->sessions[i], req->f, req->json,
		    req->first + req->n++ == 0);
	pthread_mutex_lock(&w->lock);
	req->done = 1;
	pthread_cond_broadcast(&w->described);
	pthread_mutex_unlock(&w->lock);
}

static void
worker_drain_all(struct worker *w)
{
	for (size_t i = w->nsessions; i-- > 0;) {
		struct smtp_session *s = w->sessions[i];
		if (smtp_session_drain(s) < 0)
			worker_end_session(w, s);
	}
}

static void
worker_tick(struct worker *w, int64_t now)
{
	for (size_t i = w->nsessions; i-- > 0;) {
		struct smtp_session *s = w->sessions[i];
		if (smtp_session_tick(s, now) < 0)
			worker_end_session(w, s);
	}
}

/* Runs the sessions that gave up their turn, in order; each may queue
 * itself again for the next pass. */
static void
worker_take_ready(struct worker *w)
{
	size_t n = w->nready;

	for (size_t k = 0; k < n && w->nready > 0; k++) {
		struct smtp_session *s = w->ready[0];

		worker_unready(w, s);
		if (smtp_session_resume(s) < 0)
			worker_end_session(w, s);
	}
}

/* With w->lock held: a retired w can end, nothing can reach it any more
 * (worker.h): no session, no job out, empty mailboxes. */
static int
worker_empty(struct worker *w)
{
	return w->nsessions == 0 && atomic_load(&w->jobs_out) == 0 &&
	    w->conns == NULL && w->dones == NULL && w->jobs == NULL;
}

/* The thread leaves its loop: a describe waiting, or asked later, gets
 * the sessions it has, none if it was retired. When the loop failed
 * (broken), its sessions lose their connections now, as a crashed
 * process's would: none is left waiting for a loop that is gone (a
 * message not yet answered is sent again by its client; results still
 * in flight are taken in worker_stop). */
static void
worker_exit(struct worker *w, int broken)
{
	struct worker_conn *c, *next;

	if (broken && w->nsessions > 0) {
		log_error("worker %d: closing its %zu sessions", w->index,
		    w->nsessions);
		for (size_t i = 0; i < w->nsessions; i++)
			smtp_session_abort(w->sessions[i]);
		atomic_store(&w->count, 0);	/* none is served any more */
	}

	pthread_mutex_lock(&w->lock);
	w->ended = 1;
	if (w->describe != NULL) {
		w->describe->done = 1;
		w->describe = NULL;
		pthread_cond_broadcast(&w->described);
	}
	c = w->conns;
	w->conns = NULL;
	pthread_mutex_unlock(&w->lock);
	/* Handed over and never taken: no loop is left to serve them. */
	for (; c; c = next) {
		next = c->next;
		worker_refuse_conn(c);
		free(c);
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];
	int was_draining = 0, retired_out = 0, broken = 0;
	char name[16];

	snprintf(name, sizeof name, "worker%d", w->index);
	pthread_setname_np(pthread_self(), name);
	w->next_tick = time_mono_ms() + 1000;
	for (;;) {
		int64_t now = time_mono_ms();
		int timeout = w->next_tick > now ? (int)(w->next_tick - now) : 0;
		int n = epoll_wait(w->epfd, evs, 256, w->nready ? 0 : timeout);
		int stop;

		if (n < 0 && errno != EINTR) {
			log_error("worker %d: epoll_wait: %s", w->index, strerror(errno));
			broken = 1;
			break;
		}
		w->in_batch = 1;
		for (int i = 0; i < n; i++) {
			uintptr_t tag = (uintptr_t)evs[i].data.ptr;
			struct smtp_session *s;
			int rc;

			if (evs[i].data.ptr == &worker_wake_tag) {
				uint64_t v;
				ssize_t r = read(w->evfd, &v, sizeof v);
				(void)r;
				continue;
			}
			s = (struct smtp_session *)(tag & ~WORKER_AUX_BIT);
			if (*smtp_session_slot(s) == SIZE_MAX)
				continue;	/* ended earlier in this batch */
			rc = (tag & WORKER_AUX_BIT) ? smtp_session_aux_event(s, evs[i].events) :
			    smtp_session_event(s, evs[i].events);
			if (rc < 0)
				worker_end_session(w, s);
		}
		w->in_batch = 0;
		worker_free_dead(w);
		worker_take_ready(w);
		worker_take_jobs(w);
		worker_take_dones(w);
		worker_take_conns(w);
		worker_take_describe(w);
		if (w->draining && !was_draining) {
			was_draining = 1;
			worker_drain_all(w);
		}
		now = time_mono_ms();
		if (now >= w->next_tick) {
			w->next_tick = now + 1000;
			worker_tick(w, now);
		}
		pthread_mutex_lock(&w->lock);
		stop = w->stop;
		retired_out = !stop && w->retired && worker_empty(w);
		pthread_mutex_unlock(&w->lock);
		if (stop || retired_out)
			break;
	}
	if (retired_out)
		log_info("session worker %d: retired; its last session ended", w->index);
	worker_exit(w, broken);
	return NULL;
}

struct worker *
worker_start(int index, struct committer *c, const struct worker_pools *pools)
{
	struct worker *w = xcalloc(1, sizeof *w);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &worker_wake_tag };

	w->index = index;
	w->committer = c;
	if (pools)
		w->pools = *pools;
	w->sink.post = worker_post_job;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->described, NULL);
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->epfd < 0 || w->evfd < 0 ||
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) < 0 ||
	    pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		log_error("worker %d: cannot start: %s", index, strerror(errno));
		if (w->epfd >= 0)
			close(w->epfd);
		if (w->evfd >= 0)
			close(w->evfd);
		free(w);
		return NULL;
	}
	return w;
}

int
worker_add_conn(struct worker *w, int fd, const struct sockaddr *peer,
    socklen_t peerlen, enum listen_kind kind)
{
	struct worker_conn *c = xcalloc(1, sizeof *c);

	c->fd = fd;
	memcpy(&c->peer, peer, peerlen);
	c->peerlen = peerlen;
	c->kind = kind;
	pthread_mutex_lock(&w->lock);
	if (w->ended) {
		pthread_mutex_unlock(&w->lock);
		free(c);
		return -1;
	}
	c->next = w->conns;
	w->conns = c;
	worker_wake(w);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

void
worker_post_commit(struct worker *w, struct smtp_session *s,
    enum commit_status status)
{
	struct worker_done *d = xcalloc(1, sizeof *d);

	d->s = s;
	d->status = status;
	pthread_mutex_lock(&w->lock);
	d->next = w->dones;
	w->dones = d;
	worker_wake(w);
	pthread_mutex_unlock(&w->lock);
}

size_t
worker_describe(struct worker *w, FILE *f, int json, size_t first)
{
	struct worker_describe_req req = { f, json, first, 0, 0 };

	pthread_mutex_lock(&w->lock);
	if (w->ended) {
		pthread_mutex_unlock(&w->lock);
		return 0;
	}
	w->describe = &req;
	worker_wake(w);
	while (!req.done)
		pthread_cond_wait(&w->described, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return req.n;
}

void
worker_post_stage(struct worker *w, struct smtp_session *s,
    struct commit_stage *req, enum commit_status status)
{
	struct worker_done *d = xcalloc(1, sizeof *d);

	d->s = s;
	d->status = status;
	d->stage = req;
	pthread_mutex_lock(&w->lock);
	d->next = w->dones;
	w->dones = d;
	worker_wake(w);
	pthread_mutex_unlock(&w->lock);
}

void
worker_drain(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->drain = 1;
	worker_wake(w);
	pthread_mutex_unlock(&w->lock);
}

void
worker_retire(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->retired = 1;
	worker_wake(w);
	pthread_mutex_unlock(&w->lock);
}

int
worker_ended(struct worker *w)
{
	int ended;

	pthread_mutex_lock(&w->lock);
	ended = w->ended;
	pthread_mutex_unlock(&w->lock);
	return ended;
}

unsigned
worker_sessions(struct worker *w)
{
	return atomic_load(&w->count);
}

void
worker_halt(struct worker *w)
{
	if (w->halted)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	worker_wake(w);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	w->halted = 1;
}

void
worker_stop(struct worker **wp)
{
	struct worker *w = *wp;
	struct worker_conn *c, *cn;

	*wp = NULL;
	if (w == NULL)
		return;
	worker_halt(w);
	/* Commits still in flight were answered by the stopped committer,
	 * and off-loop jobs were posted by the stopped pools (main halts the
	 * workers, then stops those). The sessions only take their results
	 * back now: none goes on, none submits anything. */
	for (size_t i = 0; i < w->nsessions; i++)
		smtp_session_abort(w->sessions[i]);
	worker_take_jobs(w);
	worker_take_dones(w);
	for (size_t i = 0; i < w->nsessions; i++)
		smtp_session_free(&w->sessions[i]);
	for (c = w->conns; c; c = cn) {
		cn = c->next;
		close(c->fd);
		connlimit_release((struct sockaddr *)&c->peer);
		free(c);
	}
	free(w->sessions);
	free(w->ready);
	free(w->dead);
	close(w->epfd);
	close(w->evfd);
	pthread_cond_destroy(&w->described);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

struct committer *
worker_committer(struct worker *w)
{
	return w->committer;
}

const struct worker_pools *
worker_pools(struct worker *w)
{
	return &w->pools;
}

int
worker_submit_job(struct worker *w, struct offloop *pool, struct offloop_job *job)
{
	if (w->halted)
		return -1;	/* the pools are gone (worker_stop) */
	job->sink = &w->sink;
	/* Counted before it can come back: a pool thread may post it before
	 * offloop_submit returns. */
	atomic_fetch_add(&w->jobs_out, 1);
	if (offloop_submit(pool, job) == 0)
		return 0;
	atomic_fetch_sub(&w->jobs_out, 1);
	return -1;
}

void
worker_timer_hint(struct worker *w, int64_t when)
{
	if (when < w->next_tick)
		w->next_tick = when;
}

void
worker_run_again(struct worker *w, struct smtp_session *s)
{
	for (size_t k = 0; k < w->nready; k++)
		if (w->ready[k] == s)
			return;
	if (w->nready == w->capready) {
		w->capready = w->capready ? w->capready * 2 : 64;
		w->ready = xrealloc(w->ready, w->capready * sizeof *w->ready);
	}
	w->ready[w->nready++] = s;
}

void
worker_watch_aux(struct worker *w, struct smtp_session *s, int fd,
    uint32_t events)
{
	struct epoll_event ev = { .events = events,
		.data.ptr = (void *)((uintptr_t)s | WORKER_AUX_BIT) };

	if (events == 0) {
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, &ev);
		return;
	}
	/* Mostly new here (taken out at the end of each stage). */
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno == EEXIST)
		epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void
worker_watch(struct worker *w, struct smtp_session *s, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };

	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
		epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
}
