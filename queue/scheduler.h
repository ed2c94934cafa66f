/*
 * scheduler: decides which recipients are due and hands delivery jobs to
 * the delivery threads. A job is one message and one destination (the
 * recipients' domain) with the recipients to try.
 *
 * Its state is the queue's `due` index (rebuilt from LMDB at every start,
 * nothing else to recover) plus, in memory, which messages have a job in
 * flight and how many jobs run per destination (max_per_destination). It
 * looks at the index when woken (new mail committed, flush, a job done)
 * and at least once a second, so changes made by mailctl are seen too.
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
	uint32_t *idx;		/* recipient indexes, owned */
	size_t n;
	struct sched_job *next;	/* internal */
};

/* Starts the scheduler thread over st. Returns NULL on failure (logged). */
struct scheduler *scheduler_start(struct queue_store *st, unsigned max_per_dest);

/* Changes the per-destination limit (SIGHUP). */
void scheduler_set_limit(struct scheduler *s, unsigned max_per_dest);

/* Looks at the due index soon, from where it last stopped (new mail).
 * Safe from any thread, including the committer's notify callback. */
void scheduler_wake(struct scheduler *s);

/* Looks at the whole due index soon (after a flush). */
void scheduler_rescan(struct scheduler *s);

/* Blocks until a job is ready (the caller owns it until
 * scheduler_job_done) or the scheduler stops (NULL). */
struct sched_job *scheduler_next_job(struct scheduler *s);

/* Takes a ready job whose destination pred accepts, without waiting;
 * NULL when there is none. */
struct sched_job *scheduler_take_job(struct scheduler *s,
    int (*pred)(const char *dest, void *arg), void *arg);

/* The job's results are durable (or given up): frees it and lets its
 * message and destination be scheduled again. */
void scheduler_job_done(struct scheduler *s, struct sched_job *job);

/* Jobs handed out and not yet done. */
size_t scheduler_in_flight(struct scheduler *s);

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
