/*
 * committer: the single writer of the queue's LMDB environment.
 *
 * Sessions (and later the delivery stages) hand it typed requests; one
 * thread drains every pending request into one write transaction and
 * commits it with one fsync (group commit), then calls each request's
 * done callback. A message is durable when its callback reports 0: only
 * then may the session answer 250 (DESIGN.md).
 *
 * Threads: committer_submit, committer_submit_stage and
 * queue_stats_add_rejected may be called from any thread. Callbacks run on the committer thread: they must be short and
 * must not block (post to your own loop and wake it).
 */
#ifndef QUEUE_COMMITTER_H
#define QUEUE_COMMITTER_H

#include <stddef.h>
#include <stdint.h>

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
	char *body;		/* message bytes, CRLF line ends, owned; with
				 * staged > 0: record 0 (store.h) */
	size_t body_len;
	uint32_t staged;	/* records 1..staged of env.id were staged
				 * before (committer_submit_stage) */
	char *tail;		/* the bytes after them, owned; or NULL */
	size_t tail_len;
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

/* Frees env, body and tail of req (not req itself). */
void commit_msg_free(struct commit_msg *req);

/*
 * Staging (store.h, Staging): a record of the body of a message being
 * received, written in the next group commit with no message visible;
 * or (chunk 0) the end of one given up, whose staged records go. New
 * mail: a record is refused with COMMIT_FULL when the queue is full; a
 * discard never is for room (one that cannot be written now gets its
 * error, and what it would have dropped goes at the next start's
 * sweep).
 * done is called once, on the committer thread, after the commit; the
 * request and data stay the caller's and must live until then.
 */
struct commit_stage {
	queue_id_t id;
	uint32_t chunk;		/* 1, 2, ...: data is that record; 0: discard */
	const char *data;	/* borrowed until done */
	size_t len;		/* 1 .. RECORD_CHUNK_MAX */
	void (*done)(struct commit_stage *req, enum commit_status status);
	void *arg;		/* for the caller */
	struct commit_stage *next;	/* internal */
};

/* Queues req (any thread). After the committer stopped, done gets
 * COMMIT_IO at once (a discard then is left to the next start's sweep).
 * Order: a record staged before a committer_submit of its message (from
 * the same thread) is written in the same transaction or an earlier one,
 * and its done is called first; so the final commit need not wait for
 * the records (if one failed, the commit finds it missing and fails). */
void committer_submit_stage(struct committer *c, struct commit_stage *req);

/* Drops what id staged (a message given up), without waiting: a discard
 * request of its own, freed when done. Any thread. */
void committer_discard(struct committer *c, queue_id_t id);

/* Stops after committing everything submitted so far; joins the thread. */
void committer_stop(struct committer **cp);

/* Counts a rejected message or recipient in the stats (folded into the
 * next commit). */
void queue_stats_add_rejected(unsigned n);

#endif
