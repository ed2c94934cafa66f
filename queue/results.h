/*
 * results: the committer's second kind of request, from the delivery
 * stages: recipient state changes, and the new mail they make (notices,
 * alias expansions), written in the committer's group commit; the
 * daemon's own mail (TLS reports) comes the same way
 * (msg_writer_queue). Also the
 * hook that tells the scheduler new mail was committed, the hook for a
 * broken environment, and the committer's statistics.
 *
 * Two kinds of request, because a full queue must repeat nothing:
 *  - facts (facts = 1): the outcomes of attempts made (deliveries done,
 *    deferrals, bounces): COMMIT_OP_UPDATE results only, no messages.
 *    They are written before any new mail of the batch and never refused
 *    for room: a batch that does not fit is written again without the new
 *    mail, with the map grown, one request at a time; a request that
 *    still cannot be written is kept and tried again (about once a second)
 *    until it is, and done is called only then. Only a committer that
 *    stops gives up on them (COMMIT_FULL or COMMIT_IO).
 *  - new mail (facts = 0): notices (msgs) with the COMMIT_OP_NOTICE_DONE
 *    results that clear their recipients' pending flags, and alias
 *    expansions (COMMIT_OP_EXPAND). All or nothing per request, and
 *    refused with COMMIT_FULL when the queue is full (store.h, Room): the
 *    caller leaves the notices pending, or defers the alias.
 * When a result makes every recipient of a message done, the message
 * (envelope, body, recipients) is deleted in the same transaction.
 * Counters (delivered, deferred, bounced) are updated in it too.
 *
 * Ownership: the request and everything it points to belong to the
 * committer from committer_submit_results until its done callback, then
 * to the caller again (free with commit_results_free).
 * Threads: committer_submit_results, committer_set_notify,
 * committer_set_panic and committer_get_stats may be called from any
 * thread. done, notify and panic run on the committer thread: short,
 * non-blocking (post and wake), except that panic may end the process.
 */
#ifndef QUEUE_RESULTS_H
#define QUEUE_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "queue/committer.h"
#include "queue/envelope.h"
#include "queue/record.h"
#include "queue/store.h"

#define COMMIT_DIAG_MAX 512

enum commit_op {
	COMMIT_OP_UPDATE = 0,	/* an attempt's outcome (store_rcpt_update) */
	COMMIT_OP_NOTICE_DONE,	/* its notice is queued (store_rcpt_notice_done) */
	COMMIT_OP_EXPAND,	/* an alias expanded (store_rcpt_expand) */
};

/* One recipient's change. */
struct commit_result {
	queue_id_t id;
	uint32_t idx;			/* recipient index in the message */
	enum commit_op op;
	/* UPDATE: */
	enum rcpt_state state;		/* SENT, BOUNCED, DEFERRED (or QUEUED) */
	int64_t next_try;		/* not final: due time; final with a
					 * notice pending: its retry time;
					 * EXPAND: when the targets are due */
	int64_t attempt_time;		/* >0: an attempt was made then */
	unsigned clear_flags;		/* enum rcpt_flag bits to remove */
	unsigned set_flags;		/* enum rcpt_flag bits to add (also
					 * NOTICE_DONE) */
	char diag[COMMIT_DIAG_MAX];	/* replaces the last diagnostic
					 * when not empty */
	char dsn[16];			/* enhanced status, "" = keep */
	char remote_mta[256];		/* "" = none */
	/* EXPAND: the final targets, owned (addr and orcpt heap strings). */
	struct store_target *targets;
	size_t ntargets;
	/* Set by the committer before done: */
	int status;	/* enum store_status of this result: STORE_OK;
			 * STORE_NOTFOUND (message gone, e.g. deleted by an
			 * administrator) or STORE_CORRUPT (recipient set
			 * aside) are skipped without failing the request */
	int removed;	/* 1: this result completed the message and the
			 * message was removed from the queue */
	uint32_t first_idx;	/* EXPAND: index of the first target */
};

/* A message to insert with the results (a notice). env.id 0 means the
 * committer assigns one (queue_id_next); it is set when done runs. The
 * committer logs `ID: from=<...>, size=N, nrcpt=N (queued)` for it once
 * committed (for commit_msg requests the session logs that line), and
 * `ID: removed` for each message a result completed. */
struct commit_newmsg {
	struct envelope env;		/* owned */
	char *body;			/* owned, CRLF line ends; with staged
					 * > 0: record 0 (as commit_msg) */
	size_t body_len;
	uint32_t staged;		/* records 1..staged of env.id staged
					 * before (env.id set then) */
	char *tail;			/* owned, the bytes after them */
	size_t tail_len;
};

struct commit_results {
	int facts;			/* see above */
	struct commit_result *results;	/* heap array, owned; may be NULL */
	size_t nresults;
	struct commit_newmsg *msgs;	/* heap array, owned; may be NULL */
	size_t nmsgs;
	void (*done)(struct commit_results *req, enum commit_status status);
	void *arg;			/* for the caller */
	struct commit_results *next;	/* internal */
};

/* Queues req; done is called once, on the committer thread: COMMIT_OK
 * when it is durable; for new mail COMMIT_FULL when it does not fit
 * (nothing of it was written; try later); COMMIT_IO otherwise (also when
 * a message or a result is invalid, or facts hold anything but UPDATE
 * results). */
void committer_submit_results(struct committer *c, struct commit_results *req);

/* committer_submit_results, then waits until done was called; returns
 * its status (req->done and req->arg are set here). Not on the committer
 * thread. */
enum commit_status committer_submit_results_wait(struct committer *c,
    struct commit_results *req);

/* Frees results (with their targets), msgs (with their envelopes,
 * bodies and tails); not req itself. What msgs staged stays staged (the
 * caller discards it when the request failed). */
void commit_results_free(struct commit_results *req);

/* fn(arg) is called on the committer thread after every commit that
 * inserted at least one message or expansion (either request kind),
 * before the done callbacks of that batch. fn NULL disables it. */
void committer_set_notify(struct committer *c, void (*fn)(void *), void *arg);

/* fn(arg) is called on the committer thread once the store reports
 * MDB_PANIC (store_panicked): the environment cannot be used any more;
 * the daemon logs and exits so that a supervisor restarts it. Requests
 * then get COMMIT_IO. */
void committer_set_panic(struct committer *c, void (*fn)(void *), void *arg);

struct committer_stats {
	uint64_t commits;	/* durable write transactions (fsyncs) */
	uint64_t messages;	/* messages committed */
	uint64_t results;	/* result requests committed */
	uint64_t failed;	/* requests whose done got a failure */
	uint64_t facts_waiting;	/* facts requests kept for a retry, now */
};

void committer_get_stats(struct committer *c, struct committer_stats *st_r);

#endif
