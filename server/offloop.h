/*
 * offloop: work that must not run on a session worker's event loop
 * (password hashing, DNS lookups, later SPF/DKIM/DMARC checks and milters)
 * runs on a small pool of threads, and its completion goes back to the
 * thread that owns it, as a commit result does.
 *
 * A pool keeps its base threads and grows on demand: a job queued while
 * every thread is busy starts one more, up to the pool's maximum, so that
 * a job waits behind slow ones (a filter that takes its time) only once
 * the maximum is reached (logged once). A thread past the base that has
 * been idle OFFLOOP_IDLE_SECONDS ends.
 *
 * A job is a struct the owner embeds in its own: run() is called once on
 * a pool thread; then the job is handed to its sink, whose post() puts it
 * in the owner's mailbox (for a session: its worker's, see worker.h) and
 * wakes that thread, which finishes the job there. The pool never touches
 * a job after post(). Each pool has a bound on queued jobs, so a flood of
 * work waits in no unbounded list: submit refuses instead.
 *
 * Errors: offloop_submit returns -1 (queue full, or the pool stopping);
 * the job was not taken. Out of memory aborts (lib/util.h).
 * Threads: offloop_start/offloop_stop on the main thread; offloop_submit
 * from any thread; run() on a pool thread; post() on a pool thread (it
 * must be short and must not block).
 */
#ifndef SERVER_OFFLOOP_H
#define SERVER_OFFLOOP_H

struct offloop;
struct offloop_job;

/* Where finished jobs go. */
struct offloop_sink {
	void (*post)(struct offloop_sink *sink, struct offloop_job *job);
};

struct offloop_job {
	void (*run)(struct offloop_job *job);	/* on a pool thread */
	struct offloop_sink *sink;		/* gets the job after run */
	int cancelled;		/* 1: the pool stopped before run(); posted anyway */
	struct offloop_job *next;		/* internal */
};

#define OFFLOOP_IDLE_SECONDS 30

/* A pool of nthreads base threads (>= 1), growing up to max_threads (a
 * smaller value means nthreads: a fixed pool), holding at most max_queued
 * jobs that wait for a thread. name is for log lines. NULL (logged) when
 * no thread could be started. */
struct offloop *offloop_start(const char *name, unsigned nthreads,
    unsigned max_threads, unsigned max_queued);

/* Queues job (run and sink set by the caller; cancelled is cleared).
 * Returns 0, or -1 when the queue is full or the pool is stopping. */
int offloop_submit(struct offloop *p, struct offloop_job *job);

/* Jobs waiting for a thread now (approximate; any thread). */
unsigned offloop_waiting(struct offloop *p);

/* Threads alive now (any thread). */
unsigned offloop_threads(struct offloop *p);

/* Stops the pool: jobs not started are posted with cancelled = 1, jobs
 * running finish and are posted; returns once every thread ended. Sets *pp to
 * NULL. */
void offloop_stop(struct offloop **pp);

#endif
