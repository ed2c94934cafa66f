/*
 * delivery_notice: which notice an outcome calls for, and the new-mail
 * request of a job: the notices (queue/bounce.h) with the NOTICE_DONE
 * results that clear the pending flags of the recipients they report
 * on, and the alias expansions.
 *
 * The rules (RFC 3461, delivery.h): a notice we made (ENV_NOTICE) is
 * never answered with a notice; failures (NOTIFY=FAILURE, the default) go
 * to the sender, or to postmaster for other mail from the null sender;
 * one delay notice (NOTIFY=DELAY, the default) after delay_warning;
 * success notices for NOTIFY=SUCCESS, unless the next hop took the
 * NOTIFY along (RFC 3461 5.2.2). An alias of one target passes NOTIFY
 * on as it is (5.2.7.2); one of several targets with NOTIFY=SUCCESS gets
 * an "expanded" notice, and its targets the NOTIFY without SUCCESS
 * (5.2.7.3), so that the sender hears of success once, not per target.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/bounce.h"
#include "queue/delivery_internal.h"
#include "queue/msg_writer.h"

static int
notify_allows(unsigned notify, unsigned bit)
{
	if (notify & DSN_NOTIFY_NEVER)
		return 0;
	if (notify == 0)	/* RFC 3461 default: failures and delays */
		return bit != DSN_NOTIFY_SUCCESS;
	return (notify & bit) != 0;
}

/* The notice an outcome calls for (the outcome is the new state, or for
 * a report the record's). */
static enum notice_kind
notice_for(const struct job_ctx *jc, const struct outcome *o, int64_t now)
{
	const struct envelope *env = &jc->msg.env;
	const struct delivery_policy *pol = jc->pol;
	unsigned notify = o->r->notify;
	int null_sender = env->sender[0] == '\0';

	if (env->flags & ENV_NOTICE)
		return NOTICE_NONE;	/* never a notice of a notice */
	switch (o->state) {
	case RCPT_BOUNCED:
		if (null_sender)
			return NOTICE_POSTMASTER;
		return notify_allows(notify, DSN_NOTIFY_FAILURE) ? NOTICE_FAILED :
		    NOTICE_NONE;
	case RCPT_DEFERRED:
		if (!null_sender && pol->delay_warning &&
		    now - env->arrival >= pol->delay_warning &&
		    !(o->r->flags & RCPT_F_DELAY_NOTIFIED) &&
		    notify_allows(notify, DSN_NOTIFY_DELAY))
			return NOTICE_DELAYED;
		return NOTICE_NONE;
	case RCPT_SENT:
		if (null_sender || !(notify & DSN_NOTIFY_SUCCESS) ||
		    (notify & DSN_NOTIFY_NEVER) || o->dsn_passed)
			return NOTICE_NONE;
		return o->remote_mta[0] ? NOTICE_RELAYED : NOTICE_DELIVERED;
	default:
		return NOTICE_NONE;
	}
}

void
notice_decide(struct job_ctx *jc, int64_t now)
{
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];

		if (o->expand) {
			unsigned notify = o->r->notify;

			if (o->ntargets > 1 && !(jc->msg.env.flags & ENV_NOTICE) &&
			    jc->msg.env.sender[0] != '\0' &&
			    (notify & DSN_NOTIFY_SUCCESS) &&
			    !(notify & DSN_NOTIFY_NEVER))
				o->notice = NOTICE_EXPANDED;
			continue;
		}
		if (!o->fact && !o->report_only)
			continue;
		o->notice = notice_for(jc, o, now);
		if (o->notice == NOTICE_NONE && o->state == RCPT_BOUNCED &&
		    (jc->msg.env.flags & ENV_NOTICE))
			log_warn("%s: to=<%s>: a notice that could not be delivered "
			    "is dropped (no notice of a notice): %s", jc->qid,
			    o->r->addr, o->diag);
		if (o->notice == NOTICE_POSTMASTER)
			log_warn("%s: to=<%s>: undeliverable mail from the null "
			    "sender, reported to postmaster: %s", jc->qid,
			    o->r->addr, o->diag);
	}
}

static struct commit_result *
req_result(struct commit_results *req, size_t *cap)
{
	struct commit_result *r;

	if (req->nresults == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		req->results = xrealloc(req->results, *cap * sizeof *req->results);
	}
	r = &req->results[req->nresults++];
	memset(r, 0, sizeof *r);
	return r;
}

/*
 * One notice about list[0..n) to `to`, with the NOTICE_DONE results. The
 * notice is written as it is made (queue/msg_writer.h): a RET=FULL
 * failure quoting a large original never holds it whole. Returns 0, or
 * -1 when it cannot be made now (the original cannot be read, the queue
 * refused a record): nothing was added, the notices stay pending.
 */
static int
add_notice(struct job_ctx *jc, struct commit_results *req, size_t *capres,
    enum bounce_kind kind, const char *to, struct outcome **list, size_t n,
    int64_t now)
{
	struct bounce_rcpt *br = xcalloc(n, sizeof *br);
	struct bounce_orig orig = {
		.queue_id = jc->qid, .sender = to, .envid = jc->msg.env.envid,
		.ret = jc->msg.env.ret, .arrival = jc->msg.env.arrival,
		.body = &jc->reader,
		.smtputf8 = (jc->msg.env.flags & ENV_SMTPUTF8) != 0,
	};
	char (*diag)[600] = xcalloc(n, sizeof *diag);
	struct commit_newmsg made, *m;
	struct msg_writer w;
	struct bounce_sink sink = { msg_writer_write, &w };
	enum commit_status st;
	int built, eightbit = 0;

	for (size_t i = 0; i < n; i++) {
		struct outcome *o = list[i];

		br[i].addr = o->r->addr;
		br[i].orcpt = o->r->orcpt;
		br[i].status = o->dsn;
		br[i].remote_mta = o->remote_mta[0] ? o->remote_mta : NULL;
		snprintf(diag[i], sizeof diag[i], "%s; %s",
		    o->remote_mta[0] ? "smtp" : "x-local", o->diag);
		br[i].diag = diag[i];
		br[i].last_attempt = o->r->last_try > 0 && o->report_only ?
		    o->r->last_try : now;
	}
	memset(&made, 0, sizeof made);
	msg_writer_init(&w, jc->committer);
	built = bounce_build(kind, jc->pol->hostname, &orig, br, n,
	    jc->msg.env.arrival + jc->pol->queue_lifetime, &sink, &eightbit) == 0;
	st = built ? msg_writer_finish(&w, &made) : msg_writer_status(&w);
	free(br);
	free(diag);
	if (!built || st != COMMIT_OK) {
		log_warn("%s: notice to <%s> not made now (%s); it waits", jc->qid,
		    to, st == COMMIT_FULL ? "queue full" : st != COMMIT_OK ?
		    "queue error" : "the message cannot be read");
		if (w.staged > 0)
			committer_discard(jc->committer, w.id);
		msg_writer_free(&w);
		return -1;
	}
	msg_writer_free(&w);
	for (size_t i = 0; i < n; i++) {
		struct commit_result *r = req_result(req, capres);

		r->id = jc->msg.env.id;
		r->idx = list[i]->r->idx;
		r->op = COMMIT_OP_NOTICE_DONE;
		r->set_flags = kind == BOUNCE_DELAYED ? RCPT_F_DELAY_NOTIFIED : 0;
	}
	req->msgs = xrealloc(req->msgs, (req->nmsgs + 1) * sizeof *req->msgs);
	m = &req->msgs[req->nmsgs++];
	*m = made;
	/* RFC 8689 4.3: it holds the original's header, so it is protected
	 * as the original was; where that cannot be, it is lost, not sent in
	 * clear (a notice of a notice is never made). */
	msg_writer_own_envelope(m, jc->pol->hostname, "", to,
	    (orig.smtputf8 ? ENV_SMTPUTF8 : 0) | (eightbit ? ENV_8BITMIME : 0) |
	    (jc->msg.env.flags & ENV_REQUIRETLS), now);
	return 0;
}

/* The expansion of one alias outcome. */
static void
add_expansion(struct job_ctx *jc, struct commit_results *req, size_t *capres,
    struct outcome *o, int64_t now)
{
	struct commit_result *r = req_result(req, capres);
	unsigned notify = o->r->notify;
	char orcpt[700];

	if (o->r->orcpt != NULL)
		str_copy(orcpt, o->r->orcpt, sizeof orcpt);
	else if (strchr(o->r->addr, '@') != NULL)
		snprintf(orcpt, sizeof orcpt, "rfc822;%s", o->r->addr);
	else
		snprintf(orcpt, sizeof orcpt, "rfc822;%s@%s", o->r->addr,
		    jc->pol->nlocal_domains ? jc->pol->local_domains[0] :
		    "localhost");
	r->id = jc->msg.env.id;
	r->idx = o->r->idx;
	r->op = COMMIT_OP_EXPAND;
	r->next_try = now;
	r->targets = xcalloc((size_t)o->ntargets, sizeof *r->targets);
	r->ntargets = (size_t)o->ntargets;
	/* The "expanded" notice is made (or the request fails with it):
	 * the targets report no success of their own. */
	if (o->notice == NOTICE_EXPANDED) {
		notify &= ~(unsigned)DSN_NOTIFY_SUCCESS;
		if (notify == 0)
			notify = DSN_NOTIFY_NEVER;
	}
	for (int t = 0; t < o->ntargets; t++) {
		r->targets[t].addr = o->targets[t];
		r->targets[t].orcpt = xstrdup(orcpt);
		r->targets[t].notify = notify;
		o->targets[t] = NULL;
	}
}

int
notice_request(struct job_ctx *jc, struct commit_results *req, int64_t now)
{
	static const struct {
		enum notice_kind notice;
		enum bounce_kind kind;
	} kinds[] = {
		{ NOTICE_FAILED, BOUNCE_FAILED },
		{ NOTICE_DELAYED, BOUNCE_DELAYED },
		{ NOTICE_DELIVERED, BOUNCE_DELIVERED },
		{ NOTICE_RELAYED, BOUNCE_RELAYED },
		{ NOTICE_POSTMASTER, BOUNCE_FAILED },
		{ NOTICE_EXPANDED, BOUNCE_EXPANDED },
	};
	struct outcome **list = xcalloc(jc->nout ? jc->nout : 1, sizeof *list);
	char postmaster[300];
	size_t capres = 0;

	memset(req, 0, sizeof *req);
	snprintf(postmaster, sizeof postmaster, "postmaster@%s",
	    jc->pol->nlocal_domains ? jc->pol->local_domains[0] : "localhost");
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		size_t n = 0;

		for (size_t i = 0; i < jc->nout; i++)
			if (jc->out[i].notice == kinds[k].notice)
				list[n++] = &jc->out[i];
		if (n > 0 && add_notice(jc, req, &capres, kinds[k].kind,
		    kinds[k].notice == NOTICE_POSTMASTER ? postmaster :
		    jc->msg.env.sender, list, n, now) != 0 &&
		    kinds[k].notice == NOTICE_EXPANDED) {
			/* Not made: each target reports its own success. */
			for (size_t i = 0; i < n; i++)
				list[i]->notice = NOTICE_NONE;
		}
	}
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];

		if (o->expand)
			add_expansion(jc, req, &capres, o, now);
		if (o->report_only && o->notice == NOTICE_NONE) {
			/* Pending, but no notice is due now (no notice of a
			 * notice): the flag goes, so the recipient is done. */
			struct commit_result *r = req_result(req, &capres);
			r->id = jc->msg.env.id;
			r->idx = o->r->idx;
			r->op = COMMIT_OP_NOTICE_DONE;
		}
	}
	free(list);
	return req->nresults > 0 || req->nmsgs > 0;
}
