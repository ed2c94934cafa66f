/*
 * results: the committer's second kind of request, from the delivery
 * stages: a batch of recipient state changes (sent, deferred, bounced),
 * optionally with new messages to insert (bounces and delay notices for
 * the sender), written atomically in the committer's group commit. Also
 * the hook that tells the scheduler new mail was committed, and the
 * committer's statistics.
 *
 * A batch is all or nothing: every result and every new message of it is
 * in the same committed transaction, or none is. When a result makes every
 * recipient of a message final (sent or bounced), the message (envelope,
 * body, recipients) is deleted in that same transaction. Counters
 * (delivered, deferred, bounced) are updated in it too.
 *
 * Ownership: the request and everything it points to belong to the
 * committer from committer_submit_results until its done callback, then
 * to the caller again (free with commit_results_free).
 * Threads: committer_submit_results, committer_set_notify and
 * committer_get_stats may be called from any thread. done and notify run
 * on the committer thread: short, non-blocking (post and wake).
 */
#ifndef QUEUE_RESULTS_H
#define QUEUE_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "queue/committer.h"
#include "queue/envelope.h"
#include "queue/record.h"

#define COMMIT_DIAG_MAX 512

/* One recipient's outcome. */
struct commit_result {
	queue_id_t id;
	uint32_t idx;			/* recipient index in the message */
	enum rcpt_state state;		/* SENT, BOUNCED, DEFERRED (or QUEUED) */
	int64_t next_try;		/* DEFERRED/QUEUED: due time, unix s */
	int64_t attempt_time;		/* >0: an attempt was made then */
	unsigned set_flags;		/* enum rcpt_flag bits to add */
	char diag[COMMIT_DIAG_MAX];	/* replaces the last diagnostic
					 * when not empty */
	/* Set by the committer before done: */
	int status;	/* enum store_status of this result: STORE_OK;
			 * STORE_NOTFOUND (message gone, e.g. deleted by an
			 * administrator) or STORE_CORRUPT (recipient set
			 * aside) are skipped without failing the batch */
	int removed;	/* 1: this result completed the message and the
			 * message was removed from the queue */
};

/* A message to insert with the results (e.g. a bounce). env.id 0 means
 * the committer assigns one (queue_id_next); it is set when done runs.
 * The committer logs `ID: from=<...>, size=N, nrcpt=N (queued)` for it
 * once committed (for commit_msg requests the session logs that line),
 * and `ID: removed` for each message a result completed. */
struct commit_newmsg {
	struct envelope env;		/* owned */
	char *body;			/* owned, CRLF line ends */
	size_t body_len;
};

struct commit_results {
	struct commit_result *results;	/* heap array, owned; may be NULL */
	size_t nresults;
	struct commit_newmsg *msgs;	/* heap array, owned; may be NULL */
	size_t nmsgs;
	void (*done)(struct commit_results *req, enum commit_status status);
	void *arg;			/* for the caller */
	struct commit_results *next;	/* internal */
};

/* Queues req as commit_submit does for messages; done is called once,
 * on the committer thread, with COMMIT_OK when the batch is durable,
 * COMMIT_FULL when it does not fit (nothing of it was written; retry
 * later), COMMIT_IO otherwise (also when a new message or a result is invalid,
 * e.g. an unknown state). */
void committer_submit_results(struct committer *c, struct commit_results *req);

/* Frees results, msgs (with their envelopes and bodies); not req itself. */
void commit_results_free(struct commit_results *req);

/* fn(arg) is called on the committer thread after every commit that
 * inserted at least one message (either request kind), before the done
 * callbacks of that batch. fn NULL disables it. */
void committer_set_notify(struct committer *c, void (*fn)(void *), void *arg);

struct committer_stats {
	uint64_t commits;	/* durable write transactions (fsyncs) */
	uint64_t messages;	/* messages committed */
	uint64_t results;	/* result batches committed */
	uint64_t failed;	/* requests whose done got a failure */
};

void committer_get_stats(struct committer *c, struct committer_stats *st_r);

#endif
