/*
 * scheduler: scans the `due` index for recipients whose time has come,
 * groups them by message and destination into jobs, and queues the jobs
 * for the delivery threads, keeping one job per message at a time and at
 * most max_per_dest jobs per destination.
 */
#include "queue/scheduler.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/record.h"
#include "queue/store.h"

#define SCHED_SCAN_PAGE 256	/* due entries read per read transaction */
#define SCHED_SCAN_MAX 4096	/* due entries looked at per pass */
#define SCHED_BUCKETS 1024

/* Counts per key: message ids in flight and jobs per destination. */
struct sched_count {
	queue_id_t id;		/* message key, or 0 for a destination key */
	char dest[256];
	unsigned n;
	struct sched_count *next;
};

/* A message left waiting because its destination was at its limit: it is
 * skipped by scans, and taken up again, first come first served, when a
 * job to that destination ends. */
struct sched_wait {
	queue_id_t id;
	struct sched_wait *next;	/* in its id hash chain */
	struct sched_wait *qnext;	/* in its destination's queue */
};

/* The messages waiting for one destination, oldest first. */
struct sched_dq {
	char dest[256];
	struct sched_wait *head, *tail;
	struct sched_dq *next;		/* hash chain */
};

/* A destination whose job ended: one waiting message may go. */
struct sched_retry {
	char dest[256];
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
	struct sched_job *head, *tail;	/* ready jobs */
	size_t nready;
	size_t in_flight;	/* handed out, not done */
	int full_scan;		/* next pass starts at the beginning */
	int joined;		/* main thread only */
	struct sched_count *table[SCHED_BUCKETS];
	struct sched_wait *waiting[SCHED_BUCKETS];	/* by message id */
	struct sched_dq *queues[SCHED_BUCKETS];		/* by destination */
	struct sched_retry *retry;	/* destinations with a free slot */
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

static unsigned
sched_id_hash(queue_id_t id)
{
	return (unsigned)((id * 0x9E3779B97F4A7C15ull) >> 40) % SCHED_BUCKETS;
}

/* Is message id waiting for a slot? Locked. */
static int
sched_is_waiting(struct scheduler *s, queue_id_t id)
{
	for (struct sched_wait *w = s->waiting[sched_id_hash(id)]; w; w = w->next)
		if (w->id == id)
			return 1;
	return 0;
}

static unsigned
sched_dest_hash(const char *dest)
{
	return sched_hash(0, dest);
}

/* The waiting queue of dest, or NULL. Locked. */
static struct sched_dq *
sched_dq_find(struct scheduler *s, const char *dest)
{
	for (struct sched_dq *q = s->queues[sched_dest_hash(dest)]; q; q = q->next)
		if (strcmp(q->dest, dest) == 0)
			return q;
	return NULL;
}

/* Does any message wait for dest? Locked. */
static int
sched_has_waiting(struct scheduler *s, const char *dest)
{
	return sched_dq_find(s, dest) != NULL;
}

/* Parks message id until dest has a free slot. Locked. */
static void
sched_add_waiting(struct scheduler *s, queue_id_t id, const char *dest)
{
	struct sched_wait *w;
	struct sched_dq *q;
	unsigned h = sched_id_hash(id);

	if (sched_is_waiting(s, id))
		return;
	if ((q = sched_dq_find(s, dest)) == NULL) {
		unsigned dh = sched_dest_hash(dest);
		q = xcalloc(1, sizeof *q);
		str_copy(q->dest, dest, sizeof q->dest);
		q->next = s->queues[dh];
		s->queues[dh] = q;
	}
	w = xcalloc(1, sizeof *w);
	w->id = id;
	w->next = s->waiting[h];
	s->waiting[h] = w;
	if (q->tail)
		q->tail->qnext = w;
	else
		q->head = w;
	q->tail = w;
}

/* Takes the oldest message waiting for dest off its queue: its id, or 0.
 * Locked. */
static queue_id_t
sched_pop_waiting(struct scheduler *s, const char *dest)
{
	struct sched_dq *q = sched_dq_find(s, dest), **qp;
	struct sched_wait *w, **wp;
	queue_id_t id;

	if (q == NULL)
		return 0;
	w = q->head;
	q->head = w->qnext;
	if (q->head == NULL) {
		for (qp = &s->queues[sched_dest_hash(dest)]; *qp != q; qp = &(*qp)->next)
			;
		*qp = q->next;
		free(q);
	}
	for (wp = &s->waiting[sched_id_hash(w->id)]; *wp != w; wp = &(*wp)->next)
		;
	*wp = w->next;
	id = w->id;
	free(w);
	return id;
}

static void
sched_dest_of(const char *addr, char *dest, size_t size)
{
	const char *at = strrchr(addr, '@');

	str_copy(dest, at ? at + 1 : "", size);
	str_lower(dest);
}

/* Makes the jobs of one message from its recipients that are due. */
static void
sched_plan_message(struct scheduler *s, queue_id_t id, int64_t now)
{
	struct queue_msg msg;
	char dest[256];
	uint8_t *taken;

	if (store_msg_load(s->st, id, &msg) != STORE_OK)
		return;
	taken = xcalloc(msg.nrcpts ? msg.nrcpts : 1, 1);
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < msg.nrcpts; i++) {
		struct sched_job *job;

		if (taken[i] || msg.rcpts[i].state >= RCPT_SENT ||
		    msg.rcpts[i].next_try > now)
			continue;
		sched_dest_of(msg.rcpts[i].addr, dest, sizeof dest);
		if (sched_count_get(s, 0, dest) >= s->max_per_dest) {
			sched_add_waiting(s, id, dest);
			continue;
		}
		job = xcalloc(1, sizeof *job);
		job->id = id;
		str_copy(job->dest, dest, sizeof job->dest);
		job->idx = xcalloc(msg.nrcpts, sizeof *job->idx);
		for (size_t j = i; j < msg.nrcpts; j++) {
			char d2[256];

			if (taken[j] || msg.rcpts[j].state >= RCPT_SENT ||
			    msg.rcpts[j].next_try > now)
				continue;
			sched_dest_of(msg.rcpts[j].addr, d2, sizeof d2);
			if (strcmp(d2, dest) != 0)
				continue;
			taken[j] = 1;
			job->idx[job->n++] = msg.rcpts[j].idx;
		}
		sched_count(s, 0, dest, 1)->n++;
		sched_count(s, id, "", 1)->n++;
		if (s->tail)
			s->tail->next = job;
		else
			s->head = job;
		s->tail = job;
		s->nready++;
		s->in_flight++;
		pthread_cond_signal(&s->ready);
	}
	pthread_mutex_unlock(&s->lock);
	free(taken);
	queue_msg_free(&msg);
}

/*
 * One pass over the due index: from the beginning (once a second, after a
 * flush, when a destination got a free slot), else from where the last pass
 * stopped, which is where new mail lands. Messages with a job in flight or
 * waiting for a slot cost one hash lookup.
 */
static void
sched_scan(struct scheduler *s, int full)
{
	struct store_due page[SCHED_SCAN_PAGE];
	int64_t now = time(NULL);
	size_t seen = 0, n;
	queue_id_t last_planned = 0;

	if (full)
		s->have_cursor = 0;
	while (seen < SCHED_SCAN_MAX) {
		if (store_due_list(s->st, s->have_cursor ? &s->cursor : NULL, now, page,
		    SCHED_SCAN_PAGE, &n) != STORE_OK || n == 0)
			return;
		for (size_t i = 0; i < n; i++) {
			int busy;

			pthread_mutex_lock(&s->lock);
			busy = s->stopping || sched_count_get(s, page[i].id, "") > 0 ||
			    sched_is_waiting(s, page[i].id);
			pthread_mutex_unlock(&s->lock);
			if (!busy && page[i].id != last_planned) {
				sched_plan_message(s, page[i].id, now);
				last_planned = page[i].id;
			}
		}
		seen += n;
		s->cursor = page[n - 1];
		s->have_cursor = 1;
		if (n < SCHED_SCAN_PAGE)
			return;
	}
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

	/* One read of the whole queue at start: records that no longer
	 * decode are set aside (and logged) now, not found by chance later. */
	store_foreach_msg(s->st, sched_check_msg, NULL);
	for (;;) {
		struct timespec until;
		struct sched_retry *r, *rn;
		int full;

		pthread_mutex_lock(&s->lock);
		r = s->retry;
		s->retry = NULL;
		for (; r; r = rn) {
			queue_id_t id = sched_pop_waiting(s, r->dest);

			rn = r->next;
			free(r);
			if (id == 0 || sched_count_get(s, id, "") > 0)
				continue;
			pthread_mutex_unlock(&s->lock);
			sched_plan_message(s, id, time(NULL));
			pthread_mutex_lock(&s->lock);
		}
		full = s->full_scan || time_mono_ms() >= next_full;
		s->full_scan = 0;
		pthread_mutex_unlock(&s->lock);
		if (full)
			next_full = time_mono_ms() + 1000;
		sched_scan(s, full);

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
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

	s->st = st;
	s->max_per_dest = max_per_dest ? max_per_dest : 1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->ready, NULL);
	if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
		log_error("scheduler: cannot start thread");
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

struct sched_job *
scheduler_next_job(struct scheduler *s)
{
	struct sched_job *job;

	pthread_mutex_lock(&s->lock);
	while (s->head == NULL && !s->stopping)
		pthread_cond_wait(&s->ready, &s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	job = s->head;
	s->head = job->next;
	if (s->head == NULL)
		s->tail = NULL;
	s->nready--;
	job->next = NULL;
	pthread_mutex_unlock(&s->lock);
	return job;
}

struct sched_job *
scheduler_take_job(struct scheduler *s, int (*pred)(const char *dest, void *arg),
    void *arg)
{
	struct sched_job **jp, *job = NULL, *prev = NULL;

	pthread_mutex_lock(&s->lock);
	for (jp = &s->head; !s->stopping && *jp; prev = *jp, jp = &(*jp)->next) {
		if (!pred((*jp)->dest, arg))
			continue;
		job = *jp;
		*jp = job->next;
		if (s->tail == job)
			s->tail = prev;
		job->next = NULL;
		s->nready--;
		break;
	}
	pthread_mutex_unlock(&s->lock);
	return job;
}

static void
sched_job_free(struct sched_job *job)
{
	free(job->idx);
	free(job);
}

void
scheduler_job_done(struct scheduler *s, struct sched_job *job)
{
	pthread_mutex_lock(&s->lock);
	sched_count_drop(s, 0, job->dest);
	sched_count_drop(s, job->id, "");
	s->in_flight--;
	if (sched_has_waiting(s, job->dest)) {
		struct sched_retry *r = xcalloc(1, sizeof *r);
		str_copy(r->dest, job->dest, sizeof r->dest);
		r->next = s->retry;
		s->retry = r;
	}
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

void
scheduler_shutdown(struct scheduler *s)
{
	struct sched_job *job, *next;

	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	/* Jobs not started stay due in the queue for the next start. */
	for (job = s->head; job; job = next) {
		next = job->next;
		sched_count_drop(s, 0, job->dest);
		sched_count_drop(s, job->id, "");
		s->in_flight--;
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
