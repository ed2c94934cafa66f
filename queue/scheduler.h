/*
 * scheduler: decides which recipients are due and hands delivery jobs to
 * the delivery threads. A job is one message and one destination (the
 * recipients' domain) with the recipients to try; or a report job: the
 * recipients of one message that need no network, only a notice or an
 * expiry bounce (those whose notice is pending, and those past
 * queue_lifetime, which bounce without being tried again).
 *
 * Its state is the queue's `due` index (rebuilt from LMDB at every start,
 * nothing else to recover) plus, in memory, which (message, destination)
 * pairs have a job in flight, which wait for a free slot of their
 * next hop, and how many jobs run per destination and per next hop. It
 * looks at the index when woken (new mail committed, flush, a job done)
 * and at least once a second (monotonic clock), so changes made by
 * mailctl are seen too.
 *
 * Invariants (DESIGN.md, queue):
 *  - at most one job per (message, destination) at a time, and at most
 *    the limit per next hop: min(max_per_dest, pool - 1) where pool is
 *    the number of threads that take remote jobs, so that one next hop
 *    that hangs cannot take every thread; report jobs count against no
 *    limit. The next hop of a destination is what scheduler_set_hop's
 *    function says (a route's or the relayhost's host: the domains sent
 *    there share one limit), else the destination itself;
 *  - nothing due is left behind: a due recipient is in a job, or waits
 *    for its next hop while that next hop has no free slot; a free
 *    slot goes to the next waiting message that can use it (one that is
 *    gone or busy is passed over), and a pass at least once a second
 *    gives every destination with waiting messages and free slots its
 *    turn.
 *
 * Threads: scheduler_next_job runs on delivery threads (blocking);
 * every other function may be called from any thread.
 */
#ifndef QUEUE_SCHEDULER_H
#define QUEUE_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"

struct queue_store;
struct scheduler;

struct sched_job {
	queue_id_t id;
	char dest[256];		/* lower-case domain; "" for a bare local part */
	int report;		/* a report job: notices and expiries only */
	uint32_t *idx;		/* recipient indexes, ascending, owned */
	size_t n;
	char hop[256];		/* internal: the next hop it counts against */
	struct sched_job *next;	/* internal */
};

/* Starts the scheduler thread over st. Returns NULL on failure (logged). */
struct scheduler *scheduler_start(struct queue_store *st, unsigned max_per_dest);

/* Changes the per-destination limit (SIGHUP). */
void scheduler_set_limit(struct scheduler *s, unsigned max_per_dest);

/* The number of threads that take remote jobs; the per-destination limit
 * stays below it. 0: no such bound. */
void scheduler_set_pool(struct scheduler *s, unsigned remote_threads);

/* The next hop of a destination into out (outsize bytes): the key its
 * limit counts under. hop runs on the scheduler's thread under the
 * scheduler's lock, so it must not call the scheduler; NULL: each
 * destination is its own next hop. Once this returns, the old function
 * is never called again. */
void scheduler_set_hop(struct scheduler *s,
    void (*hop)(const char *dest, char *out, size_t outsize, void *arg),
    void *arg);

/* queue_lifetime in seconds (0: never expire): a recipient not done after
 * it goes into a report job to bounce. */
void scheduler_set_lifetime(struct scheduler *s, unsigned seconds);

/* Looks at the due index soon, from where it last stopped (new mail).
 * Safe from any thread, including the committer's notify callback. */
void scheduler_wake(struct scheduler *s);

/* Looks at the whole due index soon (after a flush). */
void scheduler_rescan(struct scheduler *s);

/* Blocks until a ready job that accept takes (NULL: any) is there (the
 * caller owns it until scheduler_job_done) or the scheduler stops
 * (NULL). */
struct sched_job *scheduler_next_job(struct scheduler *s,
    int (*accept)(const struct sched_job *job, void *arg), void *arg);

/* As scheduler_next_job, but returns NULL too once quit(qarg) is true
 * (asked under the scheduler's lock before each look for a job, so it
 * must not call the scheduler; a delivery thread that is to retire). */
struct sched_job *scheduler_next_job_unless(struct scheduler *s,
    int (*accept)(const struct sched_job *job, void *arg), void *arg,
    int (*quit)(void *qarg), void *qarg);

/* Makes every thread waiting for a job ask its quit again. */
void scheduler_kick(struct scheduler *s);

/* Takes a ready job that accept takes, without waiting; NULL when there
 * is none. */
struct sched_job *scheduler_take_job(struct scheduler *s,
    int (*accept)(const struct sched_job *job, void *arg), void *arg);

/* The job's results are durable (or given up): frees it and lets its
 * message and destination be scheduled again. */
void scheduler_job_done(struct scheduler *s, struct sched_job *job);

/* Jobs handed out and not yet done. */
size_t scheduler_in_flight(struct scheduler *s);

/* A destination and its jobs in flight (handed out or ready). */
struct sched_dest_jobs {
	char dest[256];
	unsigned jobs;
};

/* The destinations with the most jobs in flight, busiest first (ties by
 * name), at most max of them, into out. Returns how many. One pass over
 * the counts under the scheduler's lock (for the metrics, per scrape). */
size_t scheduler_busiest(struct scheduler *s, struct sched_dest_jobs *out,
    size_t max);

/* Work done planning jobs: recipients looked at plus comparisons made
 * (for tests: it grows linearly with the recipients). */
uint64_t scheduler_plan_work(struct scheduler *s);

/* Stops handing out jobs: scheduler_next_job returns NULL from now on;
 * jobs in flight may still be finished with scheduler_job_done. */
void scheduler_shutdown(struct scheduler *s);

/* Waits for the scheduler thread to end (after scheduler_shutdown);
 * jobs in flight may still be finished. */
void scheduler_join(struct scheduler *s);

/* Joins the thread and frees everything (after scheduler_shutdown and
 * after every delivery thread stopped). */
void scheduler_free(struct scheduler **sp);

#endif
