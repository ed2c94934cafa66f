/*
 * scheduler: scans the `due` index for recipients whose time has come,
 * groups them by message and destination into jobs, and queues the jobs
 * for the delivery threads, keeping one job per (message, destination) at
 * a time and at most the limit per destination (scheduler.h).
 *
 * A message whose next hop is at its limit waits in that next hop's
 * queue (first come, first served) and is skipped by the scans; when a
 * job to the next hop ends, and at every full pass for every next hop
 * that has a free slot, waiting messages are taken up until the slots
 * are used or the queue is empty. The counts per destination (id 0) are
 * kept too, for the metrics; the limit counts per next hop (SCHED_HOP).
 */
#include "queue/scheduler.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/record.h"
#include "queue/store.h"

#define SCHED_SCAN_PAGE 256	/* due entries read per read transaction */
#define SCHED_SCAN_MAX 4096	/* due entries planned per pass */
#define SCHED_SCAN_SEEN_MAX 65536 /* due entries looked at per pass */
#define SCHED_BUCKETS 1024
#define SCHED_TICK_MS 1000	/* a full pass at least this often */

/* The id under which the jobs of a next hop are counted (no message has
 * it: ids are never all ones). */
#define SCHED_HOP UINT64_MAX

/* The key under which report jobs of a message are counted. */
static const char sched_report_key[] = "\001report";

/* Counts per key: jobs of (message, destination), or of a destination
 * (id 0). */
struct sched_count {
	queue_id_t id;
	char dest[256];
	unsigned n;
	struct sched_count *next;
};

struct sched_dq;

/* A (message, destination) waiting for a slot of its next hop. */
struct sched_wait {
	queue_id_t id;
	char dest[256];
	int64_t expires;		/* unix s: then it bounces, waiting or
					 * not; 0 = never */
	struct sched_dq *q;		/* its next hop's queue */
	struct sched_wait *next;	/* in its hash chain, by (id, dest) */
	struct sched_wait *qnext;	/* in its next hop's queue */
};

/* The messages waiting for one next hop, oldest first. */
struct sched_dq {
	char dest[256];			/* the next hop */
	struct sched_wait *head, *tail;
	struct sched_dq *next;		/* hash chain */
};

/* A next hop with a free slot: waiting messages may go. */
struct sched_retry {
	char dest[256];			/* the next hop */
	struct sched_retry *next;
};

struct scheduler {
	struct queue_store *st;
	pthread_t thread;
	pthread_mutex_t lock;	/* guards everything below */
	pthread_cond_t wake;	/* the scheduler thread waits here */
	pthread_cond_t ready;	/* delivery threads wait here */
	int woken;
	int stopping;
	unsigned max_per_dest;
	unsigned pool;		/* remote threads, 0 = no bound */
	unsigned lifetime;	/* seconds, 0 = none */
	void (*hop)(const char *dest, char *out, size_t outsize, void *arg);
	void *hop_arg;
	struct sched_job *head, *tail;	/* ready jobs */
	size_t nready;
	size_t in_flight;	/* handed out or ready, not done */
	int full_scan;		/* next pass is a full one (sched_scan) */
	int joined;		/* main thread only */
	struct sched_count *table[SCHED_BUCKETS];
	struct sched_wait *waiting[SCHED_BUCKETS];	/* by (id, dest) */
	struct sched_dq *queues[SCHED_BUCKETS];		/* by next hop */
	struct sched_retry *retry;	/* next hops with a free slot */
	_Atomic uint64_t plan_work;
	/* scheduler thread only */
	struct store_due cursor;	/* incremental passes resume here */
	int have_cursor;
};

static unsigned
sched_hash(queue_id_t id, const char *dest)
{
	uint64_t h = id * 0x9E3779B97F4A7C15ull;

	for (const char *p = dest; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return (unsigned)(h >> 32) % SCHED_BUCKETS;
}

/* The limit per destination. Locked. */
static unsigned
sched_limit(const struct scheduler *s)
{
	unsigned lim = s->max_per_dest;

	if (s->pool > 0 && lim > (s->pool > 1 ? s->pool - 1 : 1))
		lim = s->pool > 1 ? s->pool - 1 : 1;
	return lim;
}

/* The counter of (id, dest); created when create is set. Locked. */
static struct sched_count *
sched_count(struct scheduler *s, queue_id_t id, const char *dest, int create)
{
	unsigned h = sched_hash(id, dest);
	struct sched_count *c;

	for (c = s->table[h]; c; c = c->next)
		if (c->id == id && strcmp(c->dest, dest) == 0)
			return c;
	if (!create)
		return NULL;
	c = xcalloc(1, sizeof *c);
	c->id = id;
	str_copy(c->dest, dest, sizeof c->dest);
	c->next = s->table[h];
	s->table[h] = c;
	return c;
}

static void
sched_count_drop(struct scheduler *s, queue_id_t id, const char *dest)
{
	struct sched_count **cp, *c;

	for (cp = &s->table[sched_hash(id, dest)]; (c = *cp); cp = &c->next) {
		if (c->id != id || strcmp(c->dest, dest) != 0)
			continue;
		if (--c->n == 0) {
			*cp = c->next;
			free(c);
		}
		return;
	}
}

static unsigned
sched_count_get(struct scheduler *s, queue_id_t id, const char *dest)
{
	struct sched_count *c = sched_count(s, id, dest, 0);
	return c ? c->n : 0;
}

/* The counting key of a job. */
static const char *
job_key(const struct sched_job *job)
{
	return job->report ? sched_report_key : job->dest;
}

/* The waiting queue of dest, or NULL. Locked. */
static struct sched_dq *
sched_dq_find(struct scheduler *s, const char *dest)
{
	for (struct sched_dq *q = s->queues[sched_hash(0, dest)]; q; q = q->next)
		if (strcmp(q->dest, dest) == 0)
			return q;
	return NULL;
}

/* Is (id, dest) waiting for a slot? Locked. */
static int
sched_is_waiting(struct scheduler *s, queue_id_t id, const char *dest)
{
	for (struct sched_wait *w = s->waiting[sched_hash(id, dest)]; w;
	    w = w->next)
		if (w->id == id && strcmp(w->dest, dest) == 0)
			return 1;
	return 0;
}

/* Parks (id, dest) until its next hop has a free slot. Locked. */
static void
sched_add_waiting(struct scheduler *s, queue_id_t id, const char *dest,
    const char *hop, int64_t expires)
{
	struct sched_wait *w;
	struct sched_dq *q;
	unsigned h = sched_hash(id, dest);

	if (sched_is_waiting(s, id, dest))
		return;
	if ((q = sched_dq_find(s, hop)) == NULL) {
		unsigned dh = sched_hash(0, hop);
		q = xcalloc(1, sizeof *q);
		str_copy(q->dest, hop, sizeof q->dest);
		q->next = s->queues[dh];
		s->queues[dh] = q;
	}
	w = xcalloc(1, sizeof *w);
	w->id = id;
	str_copy(w->dest, dest, sizeof w->dest);
	w->expires = expires;
	w->q = q;
	w->next = s->waiting[h];
	s->waiting[h] = w;
	if (q->tail)
		q->tail->qnext = w;
	else
		q->head = w;
	q->tail = w;
}

/* Unlinks w (prev: its predecessor in its queue, or NULL) and frees it,
 * with its queue when that is empty. Locked. */
static void
sched_unwait(struct scheduler *s, struct sched_wait *w, struct sched_wait *prev)
{
	struct sched_dq *q = w->q, **qp;
	struct sched_wait **wp;

	if (prev != NULL)
		prev->qnext = w->qnext;
	else
		q->head = w->qnext;
	if (q->tail == w)
		q->tail = prev;
	for (wp = &s->waiting[sched_hash(w->id, w->dest)]; *wp != w;
	    wp = &(*wp)->next)
		;
	*wp = w->next;
	free(w);
	if (q->head == NULL) {
		for (qp = &s->queues[sched_hash(0, q->dest)]; *qp != q;
		    qp = &(*qp)->next)
			;
		*qp = q->next;
		free(q);
	}
}

/* Takes the oldest message waiting for hop off its queue: its id (and
 * its destination into dest), or 0. Locked. */
static queue_id_t
sched_pop_waiting(struct scheduler *s, const char *hop, char *dest,
    size_t destsize)
{
	struct sched_dq *q = sched_dq_find(s, hop);
	queue_id_t id;

	if (q == NULL)
		return 0;
	id = q->head->id;
	str_copy(dest, q->head->dest, destsize);
	sched_unwait(s, q->head, NULL);
	return id;
}

/* The next hop of dest into hop. Locked. */
static void
sched_hop_of(struct scheduler *s, const char *dest, char *hop, size_t hopsize)
{
	if (s->hop != NULL)
		s->hop(dest, hop, hopsize, s->hop_arg);
	else
		str_copy(hop, dest, hopsize);
}

/* Queues a retry for a next hop. Locked. */
static void
sched_add_retry(struct scheduler *s, const char *dest)
{
	struct sched_retry *r;

	for (r = s->retry; r; r = r->next)
		if (strcmp(r->dest, dest) == 0)
			return;
	r = xcalloc(1, sizeof *r);
	str_copy(r->dest, dest, sizeof r->dest);
	r->next = s->retry;
	s->retry = r;
}

static void
sched_dest_of(const char *addr, char *dest, size_t size)
{
	const char *at = strrchr(addr, '@');

	str_copy(dest, at ? at + 1 : "", size);
	str_lower(dest);
}

/* A recipient of a message being planned. */
struct plan_rcpt {
	uint32_t idx;
	const char *dest;	/* lower case, points into dests */
};

static int
plan_cmp(const void *a, const void *b, void *arg)
{
	const struct plan_rcpt *x = a, *y = b;
	int c;

	atomic_fetch_add_explicit((_Atomic uint64_t *)arg, 1,
	    memory_order_relaxed);
	if ((c = strcmp(x->dest, y->dest)) != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Queues a job of message id for rcpts[0..n) (ascending idx). Locked. */
static void
sched_queue_job(struct scheduler *s, queue_id_t id, const char *dest,
    const char *hop, int report, const struct plan_rcpt *rcpts, size_t n)
{
	struct sched_job *job = xcalloc(1, sizeof *job);

	job->id = id;
	job->report = report;
	str_copy(job->dest, report ? "" : dest, sizeof job->dest);
	str_copy(job->hop, report ? "" : hop, sizeof job->hop);
	job->idx = xcalloc(n, sizeof *job->idx);
	for (size_t i = 0; i < n; i++)
		job->idx[i] = rcpts[i].idx;
	job->n = n;
	if (!report) {
		sched_count(s, 0, dest, 1)->n++;
		sched_count(s, SCHED_HOP, job->hop, 1)->n++;
	}
	sched_count(s, id, job_key(job), 1)->n++;
	if (s->tail)
		s->tail->next = job;
	else
		s->head = job;
	s->tail = job;
	s->nready++;
	s->in_flight++;
	pthread_cond_broadcast(&s->ready);
}

/*
 * Makes the jobs of one message from its recipients that are due: one
 * report job for those that need no network, and one job per destination
 * that has neither a job of this message in flight nor waits; a
 * destination at its limit makes the message wait for it. Linear in the
 * recipients (one sort by destination).
 */
static void
sched_plan_message(struct scheduler *s, queue_id_t id, int64_t now)
{
	struct queue_msg msg;
	struct plan_rcpt *rc, *rep;
	char (*dests)[256];
	size_t n = 0, nrep = 0;
	unsigned lifetime;

	if (store_msg_load(s->st, id, &msg) != STORE_OK)
		return;
	pthread_mutex_lock(&s->lock);
	lifetime = s->lifetime;
	pthread_mutex_unlock(&s->lock);
	rc = xcalloc(msg.nrcpts ? msg.nrcpts : 1, sizeof *rc);
	rep = xcalloc(msg.nrcpts ? msg.nrcpts : 1, sizeof *rep);
	dests = xcalloc(msg.nrcpts ? msg.nrcpts : 1, sizeof *dests);
	for (size_t i = 0; i < msg.nrcpts; i++) {
		const struct queue_rcpt *r = &msg.rcpts[i];
		int final = RCPT_IS_FINAL(r->state);

		if (RCPT_IS_DONE(r->state, r->flags) || r->next_try > now)
			continue;
		sched_dest_of(r->addr, dests[i], sizeof dests[i]);
		if (final || (lifetime > 0 &&
		    now >= msg.env.arrival + (int64_t)lifetime)) {
			rep[nrep].idx = r->idx;
			rep[nrep++].dest = dests[i];
			continue;
		}
		rc[n].idx = r->idx;
		rc[n++].dest = dests[i];
	}
	atomic_fetch_add_explicit(&s->plan_work, msg.nrcpts, memory_order_relaxed);
	qsort_r(rc, n, sizeof *rc, plan_cmp, &s->plan_work);
	pthread_mutex_lock(&s->lock);
	if (nrep > 0 && !s->stopping &&
	    sched_count_get(s, id, sched_report_key) == 0) {
		/* Never beside a delivery job that may hold the recipient. */
		size_t k = 0;
		for (size_t i = 0; i < nrep; i++)
			if (sched_count_get(s, id, rep[i].dest) == 0)
				rep[k++] = rep[i];
		if (k > 0)
			sched_queue_job(s, id, "", "", 1, rep, k);
	}
	for (size_t i = 0; i < n && !s->stopping;) {
		const char *dest = rc[i].dest;
		char hop[256];
		size_t j = i;

		while (j < n && strcmp(rc[j].dest, dest) == 0)
			j++;
		atomic_fetch_add_explicit(&s->plan_work, 1, memory_order_relaxed);
		if (sched_count_get(s, id, dest) > 0 ||
		    sched_is_waiting(s, id, dest)) {
			/* busy: the next pass after its job ends */
			i = j;
			continue;
		}
		sched_hop_of(s, dest, hop, sizeof hop);
		if (sched_count_get(s, SCHED_HOP, hop) >= sched_limit(s))
			sched_add_waiting(s, id, dest, hop, lifetime > 0 ?
			    msg.env.arrival + (int64_t)lifetime : 0);
		else
			sched_queue_job(s, id, dest, hop, 0, rc + i, j - i);
		i = j;
	}
	pthread_mutex_unlock(&s->lock);
	free(rc);
	free(rep);
	free(dests);
	queue_msg_free(&msg);
}

/* Gives the free slots of the next hops in the retry list to their
 * waiting messages. Locked on entry and exit. */
static void
sched_take_up_waiting(struct scheduler *s)
{
	struct sched_retry *r = s->retry, *rn;

	s->retry = NULL;
	for (; r; r = rn) {
		rn = r->next;
		/* A message that is gone or busy uses no slot: go on with the
		 * next one until the slots are used or nobody waits. */
		while (!s->stopping && sched_dq_find(s, r->dest) != NULL &&
		    sched_count_get(s, SCHED_HOP, r->dest) < sched_limit(s)) {
			char dest[256];
			queue_id_t id = sched_pop_waiting(s, r->dest, dest,
			    sizeof dest);

			if (sched_count_get(s, id, dest) > 0)
				continue;	/* planned again when its job ends */
			pthread_mutex_unlock(&s->lock);
			sched_plan_message(s, id, time(NULL));
			pthread_mutex_lock(&s->lock);
		}
		free(r);
	}
}

/*
 * The full pass over the waiting: every destination with waiting messages
 * and a free slot gets a retry (a free slot that no job end reported: a
 * raised limit, a job that was never handed out); a waiting message past
 * its expiry stops waiting and is planned now, so that it bounces though
 * its destination stays busy. Locked on entry and exit.
 */
static void
sched_check_waiting(struct scheduler *s)
{
	int64_t now = time(NULL);
	queue_id_t *expired = NULL;
	size_t nexp = 0, cap = 0;

	for (size_t b = 0; b < SCHED_BUCKETS; b++) {
		for (struct sched_dq *q = s->queues[b], *qn; q; q = qn) {
			struct sched_wait *w, *prev = NULL, *wn;

			qn = q->next;	/* q goes when its last entry goes */
			if (sched_count_get(s, SCHED_HOP, q->dest) < sched_limit(s))
				sched_add_retry(s, q->dest);
			for (w = q->head; w; w = wn) {
				wn = w->qnext;
				if (w->expires == 0 || now < w->expires) {
					prev = w;
					continue;
				}
				if (nexp == cap) {
					cap = cap ? cap * 2 : 16;
					expired = xrealloc(expired, cap * sizeof *expired);
				}
				expired[nexp++] = w->id;
				sched_unwait(s, w, prev);
			}
		}
	}
	for (size_t i = 0; i < nexp && !s->stopping; i++) {
		pthread_mutex_unlock(&s->lock);
		sched_plan_message(s, expired[i], now);
		pthread_mutex_lock(&s->lock);
	}
	free(expired);
}

/*
 * One pass over the due index from where the last pass stopped, which is
 * where new mail lands. A full pass (once a second, after a flush) goes
 * on from the beginning when it reaches the end, so that successive full
 * passes cover the whole index however many entries wait at its front: a
 * pass plans at most SCHED_SCAN_MAX entries and looks at most at
 * SCHED_SCAN_SEEN_MAX. A due entry whose (message, destination) has a job
 * in flight or waits costs one hash lookup and is not planned again.
 */
static void
sched_scan(struct scheduler *s, int full)
{
	struct store_due *page = xcalloc(SCHED_SCAN_PAGE, sizeof *page);
	int64_t now = time(NULL);
	size_t seen = 0, planned = 0, n;
	queue_id_t last_planned = 0;
	int wrap = full && s->have_cursor;	/* else it starts at the beginning */

	while (planned < SCHED_SCAN_MAX && seen < SCHED_SCAN_SEEN_MAX) {
		if (store_due_list(s->st, s->have_cursor ? &s->cursor : NULL, now, page,
		    SCHED_SCAN_PAGE, &n) != STORE_OK)
			break;
		for (size_t i = 0; i < n; i++) {
			int busy;

			pthread_mutex_lock(&s->lock);
			busy = s->stopping ||
			    sched_count_get(s, page[i].id, page[i].dest) > 0 ||
			    sched_is_waiting(s, page[i].id, page[i].dest);
			pthread_mutex_unlock(&s->lock);
			if (!busy && page[i].id != last_planned) {
				sched_plan_message(s, page[i].id, now);
				last_planned = page[i].id;
				planned++;
			}
		}
		seen += n;
		if (n > 0) {
			s->cursor = page[n - 1];
			s->have_cursor = 1;
		}
		if (n < SCHED_SCAN_PAGE) {
			/* The end: a full pass goes round once. */
			if (!wrap)
				break;
			wrap = 0;
			s->have_cursor = 0;
		}
	}
	free(page);
}

static int
sched_check_msg(const struct queue_msg *msg, void *arg)
{
	(void)msg;
	(void)arg;
	return 0;
}

static void *
sched_main(void *arg)
{
	struct scheduler *s = arg;
	int64_t next_full = 0;

	pthread_setname_np(pthread_self(), "scheduler");
	/* One read of the whole queue at start: records that no longer
	 * decode are set aside (and logged) now, not found by chance later;
	 * records of messages that are gone are collected. */
	store_foreach_msg(s->st, sched_check_msg, NULL);
	store_collect_orphans(s->st, NULL);
	for (;;) {
		struct timespec until;
		int full;

		pthread_mutex_lock(&s->lock);
		full = s->full_scan || time_mono_ms() >= next_full;
		s->full_scan = 0;
		if (full)
			sched_check_waiting(s);
		sched_take_up_waiting(s);
		pthread_mutex_unlock(&s->lock);
		if (full)
			next_full = time_mono_ms() + SCHED_TICK_MS;
		sched_scan(s, full);

		time_mono_deadline(&until, SCHED_TICK_MS);
		pthread_mutex_lock(&s->lock);
		while (!s->woken && !s->stopping &&
		    pthread_cond_timedwait(&s->wake, &s->lock, &until) == 0)
			;
		s->woken = 0;
		if (s->stopping) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

struct scheduler *
scheduler_start(struct queue_store *st, unsigned max_per_dest)
{
	struct scheduler *s = xcalloc(1, sizeof *s);
	pthread_condattr_t ca;

	s->st = st;
	s->max_per_dest = max_per_dest ? max_per_dest : 1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->ready, NULL);
	if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
		log_error("scheduler: cannot start thread");
		pthread_cond_destroy(&s->wake);
		pthread_cond_destroy(&s->ready);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return NULL;
	}
	return s;
}

void
scheduler_set_limit(struct scheduler *s, unsigned max_per_dest)
{
	pthread_mutex_lock(&s->lock);
	s->max_per_dest = max_per_dest ? max_per_dest : 1;
	s->full_scan = 1;	/* a raised limit frees slots */
	s->woken = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void
scheduler_set_pool(struct scheduler *s, unsigned remote_threads)
{
	pthread_mutex_lock(&s->lock);
	s->pool = remote_threads;
	pthread_mutex_unlock(&s->lock);
}

void
scheduler_set_hop(struct scheduler *s,
    void (*hop)(const char *dest, char *out, size_t outsize, void *arg),
    void *arg)
{
	pthread_mutex_lock(&s->lock);
	s->hop = hop;
	s->hop_arg = arg;
	pthread_mutex_unlock(&s->lock);
}

void
scheduler_set_lifetime(struct scheduler *s, unsigned seconds)
{
	pthread_mutex_lock(&s->lock);
	s->lifetime = seconds;
	pthread_mutex_unlock(&s->lock);
}

void
scheduler_wake(struct scheduler *s)
{
	pthread_mutex_lock(&s->lock);
	s->woken = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void
scheduler_rescan(struct scheduler *s)
{
	pthread_mutex_lock(&s->lock);
	s->woken = 1;
	s->full_scan = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

/* The first ready job accept takes, unlinked; NULL when none. Locked. */
static struct sched_job *
sched_unlink(struct scheduler *s, int (*accept)(const struct sched_job *, void *),
    void *arg)
{
	struct sched_job **jp, *job, *prev = NULL;

	for (jp = &s->head; (job = *jp) != NULL; prev = job, jp = &job->next) {
		if (accept != NULL && !accept(job, arg))
			continue;
		*jp = job->next;
		if (s->tail == job)
			s->tail = prev;
		job->next = NULL;
		s->nready--;
		return job;
	}
	return NULL;
}

struct sched_job *
scheduler_next_job(struct scheduler *s,
    int (*accept)(const struct sched_job *, void *), void *arg)
{
	return scheduler_next_job_unless(s, accept, arg, NULL, NULL);
}

struct sched_job *
scheduler_next_job_unless(struct scheduler *s,
    int (*accept)(const struct sched_job *, void *), void *arg,
    int (*quit)(void *), void *qarg)
{
	struct sched_job *job = NULL;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping && !(quit != NULL && quit(qarg)) &&
	    (job = sched_unlink(s, accept, arg)) == NULL)
		pthread_cond_wait(&s->ready, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return job;
}

void
scheduler_kick(struct scheduler *s)
{
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->ready);
	pthread_mutex_unlock(&s->lock);
}

struct sched_job *
scheduler_take_job(struct scheduler *s,
    int (*accept)(const struct sched_job *, void *), void *arg)
{
	struct sched_job *job = NULL;

	pthread_mutex_lock(&s->lock);
	if (!s->stopping)
		job = sched_unlink(s, accept, arg);
	pthread_mutex_unlock(&s->lock);
	return job;
}

static void
sched_job_free(struct sched_job *job)
{
	free(job->idx);
	free(job);
}

/* A job's counts go. Locked. */
static void
sched_job_uncount(struct scheduler *s, const struct sched_job *job)
{
	if (!job->report) {
		sched_count_drop(s, 0, job->dest);
		sched_count_drop(s, SCHED_HOP, job->hop);
	}
	sched_count_drop(s, job->id, job_key(job));
	s->in_flight--;
}

void
scheduler_job_done(struct scheduler *s, struct sched_job *job)
{
	pthread_mutex_lock(&s->lock);
	sched_job_uncount(s, job);
	if (!job->report && sched_dq_find(s, job->hop) != NULL)
		sched_add_retry(s, job->hop);
	s->woken = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	sched_job_free(job);
}

size_t
scheduler_in_flight(struct scheduler *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->in_flight - s->nready;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Does a rank before b (more jobs, then the name)? */
static int
sched_busier(const struct sched_dest_jobs *a, const struct sched_dest_jobs *b)
{
	return a->jobs > b->jobs || (a->jobs == b->jobs && strcmp(a->dest, b->dest) < 0);
}

size_t
scheduler_busiest(struct scheduler *s, struct sched_dest_jobs *out, size_t max)
{
	size_t n = 0;

	if (max == 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	for (size_t b = 0; b < SCHED_BUCKETS; b++) {
		for (const struct sched_count *c = s->table[b]; c; c = c->next) {
			struct sched_dest_jobs cand;
			size_t i;

			if (c->id != 0 || c->n == 0)
				continue;	/* a (message, destination) count */
			str_copy(cand.dest, c->dest, sizeof cand.dest);
			cand.jobs = c->n;
			if (n == max && !sched_busier(&cand, &out[n - 1]))
				continue;
			/* Insertion into the sorted top list. */
			i = n < max ? n++ : max - 1;
			while (i > 0 && sched_busier(&cand, &out[i - 1])) {
				out[i] = out[i - 1];
				i--;
			}
			out[i] = cand;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

uint64_t
scheduler_plan_work(struct scheduler *s)
{
	return atomic_load(&s->plan_work);
}

void
scheduler_shutdown(struct scheduler *s)
{
	struct sched_job *job, *next;

	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	/* Jobs not started stay due in the queue for the next start. */
	for (job = s->head; job; job = next) {
		next = job->next;
		sched_job_uncount(s, job);
		sched_job_free(job);
	}
	s->head = s->tail = NULL;
	s->nready = 0;
	pthread_cond_broadcast(&s->ready);
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void
scheduler_join(struct scheduler *s)
{
	if (!s->joined)
		pthread_join(s->thread, NULL);
	s->joined = 1;
}

void
scheduler_free(struct scheduler **sp)
{
	struct scheduler *s = *sp;

	*sp = NULL;
	if (s == NULL)
		return;
	scheduler_join(s);
	for (size_t i = 0; i < SCHED_BUCKETS; i++) {
		struct sched_count *c, *next;
		struct sched_wait *w, *wn;
		for (c = s->table[i]; c; c = next) {
			next = c->next;
			free(c);
		}
		for (w = s->waiting[i]; w; w = wn) {
			wn = w->next;
			free(w);
		}
		while (s->queues[i]) {
			struct sched_dq *q = s->queues[i];
			s->queues[i] = q->next;
			free(q);
		}
	}
	while (s->retry) {
		struct sched_retry *r = s->retry;
		s->retry = r->next;
		free(r);
	}
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->ready);
	free(s);
}
