/*
 * delivery_internal: what the parts of the delivery stage share, and
 * nothing else includes. delivery.c runs the pool and records outcomes;
 * delivery_local.c delivers to Maildirs and expands aliases;
 * delivery_lmtp.c hands local or routed mail to an LMTP server;
 * delivery_remote.c adapts between queue records and the relay client;
 * delivery_notice.c decides and builds the notices.
 *
 * Threads: a job context belongs to the delivery thread that runs it.
 */
#ifndef QUEUE_DELIVERY_INTERNAL_H
#define QUEUE_DELIVERY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "queue/delivery.h"
#include "queue/record.h"
#include "queue/results.h"
#include "queue/scheduler.h"
#include "queue/store.h"
#include "storage/maildir.h"

enum notice_kind {
	NOTICE_NONE = 0,
	NOTICE_FAILED,		/* to the sender */
	NOTICE_DELAYED,		/* to the sender */
	NOTICE_DELIVERED,	/* to the sender: delivered here */
	NOTICE_RELAYED,		/* to the sender: passed to a server without DSN */
	NOTICE_POSTMASTER,	/* a failure of null-sender mail, to postmaster */
	NOTICE_EXPANDED,	/* to the sender: an alias of several targets */
};

/* What happened to one recipient in this job. */
struct outcome {
	const struct queue_rcpt *r;
	int fact;			/* an attempt's outcome to record */
	int report_only;		/* final already: its notice is pending */
	int expand;			/* an alias to expand into targets */
	enum rcpt_state state;		/* SENT, DEFERRED or BOUNCED */
	char dsn[16];
	char diag[512];
	char relay[300];
	char remote_mta[256];
	char tls[200];			/* remote: what protected the session */
	int dsn_passed;			/* the next hop reports on it */
	int lmtp;			/* local: goes over LMTP */
	int64_t next_try;		/* DEFERRED: next try; final with a
					 * notice: its retry */
	enum notice_kind notice;
	char **targets;			/* expand: final addresses, owned */
	int ntargets;
};

/* One job from load to its last commit. */
struct job_ctx {
	struct delivery_policy *pol;
	struct committer *committer;	/* notices are staged through it */
	struct sched_job *job;
	struct queue_msg msg;
	char qid[QUEUE_ID_LEN + 1];
	struct store_body *body;	/* the message, read in records */
	struct body_reader reader;	/* over body, for every consumer */
	struct outcome *out;
	size_t nout;
	int local;
	int64_t decided_us;		/* unix us the outcomes were decided
					 * (their time in the trace) */
};

/* Maildir items of a batch of local jobs, with who asked for each. */
struct local_items {
	struct maildir_item *items;
	struct outcome **out;
	char **targets;			/* the final address, Delivered-To */
	size_t n, cap;
};

void outcome_set(struct outcome *o, enum rcpt_state state, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

int policy_is_local(const char *domain, void *arg);

/* delivery_local.c: aliases and Maildir items for a local job; then the
 * outcomes from the Maildir results. */
void local_prepare(struct job_ctx *jc, struct local_items *li);
void local_finish(struct local_items *li);
void local_items_free(struct local_items *li);

/* delivery_local.c: the address of a local recipient, with the first
 * local domain added to a bare one ("postmaster") and an address literal
 * of ours replaced by literal_domain, into out: its mailbox. */
void local_address(const struct delivery_policy *pol,
    const struct queue_rcpt *r, char *out, size_t outsize);

/* delivery_remote.c: one remote job through the relay client (or
 * deliver_lmtp for a route to lmtp:). */
void deliver_remote(struct job_ctx *jc);

/* The message of jc in the relay client's terms (borrowing from jc), and
 * a relay result as the outcome of o. */
struct relay_msg;
struct relay_result;
void remote_msg(struct job_ctx *jc, struct relay_msg *m);
void remote_outcome(struct outcome *o, const struct relay_result *res);

/* delivery_lmtp.c: the recipients of jc over LMTP to route (NULL: the
 * local ones marked lmtp, to pol->local_lmtp). */
void deliver_lmtp(struct job_ctx *jc, const struct delivery_route *route);

/* delivery_notice.c: the notice each outcome calls for (sets o->notice),
 * and the new-mail request of a job: its notices with their
 * NOTICE_DONE results, and its expansions. Returns 0 when there is
 * nothing to submit. */
void notice_decide(struct job_ctx *jc, int64_t now);
int notice_request(struct job_ctx *jc, struct commit_results *req,
    int64_t now);

#endif
