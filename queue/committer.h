/*
 * committer: the single writer of the queue's LMDB environment.
 *
 * Sessions (and later the delivery stages) hand it typed requests; one
 * thread drains every pending request into one write transaction and
 * commits it with one fsync (group commit), then calls each request's
 * done callback. A message is durable when its callback reports 0: only
 * then may the session answer 250 (DESIGN.md).
 *
 * Threads: committer_submit and queue_stats_add_rejected may be called from
 * any thread. Callbacks run on the committer thread: they must be short and
 * must not block (post to your own loop and wake it).
 */
#ifndef QUEUE_COMMITTER_H
#define QUEUE_COMMITTER_H

#include <stddef.h>

#include "queue/envelope.h"

struct queue_store;
struct committer;

enum commit_status {
	COMMIT_OK = 0,
	COMMIT_FULL = 1,	/* map or disk full: reply 452 4.3.1 */
	COMMIT_IO = 2,		/* any other failure: reply 451 4.3.0 */
};

struct commit_msg {
	struct envelope env;	/* owned by the request until done */
	char *body;		/* message bytes, CRLF line ends, owned */
	size_t body_len;
	void (*done)(struct commit_msg *req, enum commit_status status);
	void *arg;		/* for the caller */
	int64_t durable_us;	/* set before done: unix us of the commit, taken
				 * before the scheduler is told (the trace) */
	struct commit_msg *next;	/* internal */
};

/* Starts the committer thread over an open store. Returns NULL on failure
 * (logged). */
struct committer *committer_start(struct queue_store *store);

/* Queues req; its done callback is called once, on the committer thread,
 * after the batch holding it committed (or failed). The callback owns req
 * again (and must free env/body via commit_msg_free or reuse them). */
void committer_submit(struct committer *c, struct commit_msg *req);

/* Frees env and body of req (not req itself). */
void commit_msg_free(struct commit_msg *req);

/* Stops after committing everything submitted so far; joins the thread. */
void committer_stop(struct committer **cp);

/* Counts a rejected message or recipient in the stats (folded into the
 * next commit). */
void queue_stats_add_rejected(unsigned n);

#endif
