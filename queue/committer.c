/*
 * committer: the one thread that writes the queue. Requests from any
 * thread go on two FIFO lists under a mutex; the thread takes every
 * pending request (up to a byte budget), writes them in one LMDB write
 * transaction and commits it (one fsync), then calls each done callback.
 *
 * Facts (results.h) are written first, directly in the transaction; then
 * staged records and discards (all in one nested transaction, or each in
 * its own when that fails); then each piece of new mail (a session's
 * message, a notice request, an expansion) in a nested transaction of its
 * own, so one that does not fit or is bad fails alone. When the batch as a whole does not fit, the map
 * is grown and the batch written again; when it cannot grow, the facts
 * are committed on their own (the reserve is theirs: store.h, Room), then
 * the new mail, which then is refused. A facts request that still cannot
 * be written is held and tried again about once a second: a delivery
 * whose outcome is not recorded would be made again.
 */
#include "queue/committer.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/results.h"
#include "queue/store.h"
#include "queue/trace.h"

#define COMMIT_BATCH_BYTES ((size_t)64 << 20)	/* bodies per transaction */
#define COMMIT_BATCH_REQS 4096
#define COMMIT_TICK_MS 1000		/* wake at least this often */
#define COMMIT_IDLE_FOLD_MS 5000	/* fold the rejected counter when idle */
#define COMMIT_HELD_RETRY_MS 1000	/* held facts: the next try */
#define COMMIT_READER_CHECK_MS 60000	/* stale LMDB readers */
#define COMMIT_GROW_ROUNDS 8

/* queue_stats_add_rejected has no context argument: the pending count is
 * process-wide (atomic). */
static _Atomic uint64_t committer_rejected_pending;

struct committer {
	struct queue_store *store;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* CLOCK_MONOTONIC */
	struct commit_msg *mhead, **mtail;
	struct commit_results *rhead, **rtail;
	struct commit_stage *shead, **stail;
	/* Facts that could not be written yet, oldest first. Committer
	 * thread only. */
	struct commit_results **held;
	size_t nheld, capheld;
	int64_t held_retry_at;
	int64_t held_logged;		/* monotonic ms of the last line about it */
	int stopping;
	int exited;
	void (*notify)(void *);
	void *notify_arg;
	void (*panic)(void *);
	void *panic_arg;
	struct committer_stats stats;
};

/* One batch taken off the lists. */
/* A request of new mail is done once a commit holding it succeeded: a
 * round that grows the map and writes the batch again skips it. */
struct batch {
	struct commit_msg **msgs;
	int *mstatus;
	unsigned char *mdone;
	size_t nmsgs;
	struct commit_stage **stages;
	int *sstatus;
	unsigned char *sdone;
	size_t nstages;
	struct commit_results **facts;
	int *fstatus;
	size_t nfacts;
	struct commit_results **news;
	int *nstatus;
	unsigned char *ndone;
	size_t nnews;
	int facts_done;
	uint64_t rejected;
};

static enum commit_status
commit_status_of(int st)
{
	if (st == STORE_OK)
		return COMMIT_OK;
	return st == STORE_FULL ? COMMIT_FULL : COMMIT_IO;
}

void
queue_stats_add_rejected(unsigned n)
{
	atomic_fetch_add(&committer_rejected_pending, n);
}

void
commit_msg_free(struct commit_msg *req)
{
	if (req == NULL)
		return;
	envelope_free(&req->env);
	free(req->body);
	free(req->tail);
	req->body = req->tail = NULL;
	req->body_len = req->tail_len = 0;
	req->staged = 0;
}

void
commit_results_free(struct commit_results *req)
{
	if (req == NULL)
		return;
	for (size_t i = 0; i < req->nresults && req->results != NULL; i++) {
		struct commit_result *r = &req->results[i];
		for (size_t j = 0; j < r->ntargets; j++) {
			free((char *)r->targets[j].addr);
			free((char *)r->targets[j].orcpt);
		}
		free(r->targets);
	}
	free(req->results);
	for (size_t i = 0; i < req->nmsgs && req->msgs != NULL; i++) {
		envelope_free(&req->msgs[i].env);
		free(req->msgs[i].body);
		free(req->msgs[i].tail);
	}
	free(req->msgs);
	req->results = NULL;
	req->nresults = 0;
	req->msgs = NULL;
	req->nmsgs = 0;
}

/* ---- writing one request ---- */

static int
write_msg(struct store_wtxn *t, struct commit_msg *m)
{
	struct store_body_parts b = { m->body, m->body_len, m->staged,
	    m->tail, m->tail_len };

	if (m->env.id == 0)
		m->env.id = queue_id_next();
	return store_put_msg_parts(t, &m->env, &b);
}

static int
write_stage(struct store_wtxn *t, struct commit_stage *sg)
{
	int st;

	if (sg->chunk > 0)
		return store_stage_chunk(t, sg->id, sg->chunk, sg->data, sg->len);
	st = store_stage_discard(t, sg->id);
	return st == STORE_EXISTS ? STORE_OK : st;	/* whole: nothing to drop */
}

static int
write_result(struct store_wtxn *t, struct commit_result *res)
{
	struct rcpt_update u = {
		.state = res->state,
		.next_try = res->next_try,
		.attempt_time = res->attempt_time,
		.set_flags = res->set_flags,
		.clear_flags = res->clear_flags,
	};
	char diag[COMMIT_DIAG_MAX], dsn[sizeof res->dsn];
	char mta[sizeof res->remote_mta];

	res->removed = 0;
	switch (res->op) {
	case COMMIT_OP_UPDATE:
		/* The arrays are the caller's: never trust their termination. */
		memcpy(diag, res->diag, sizeof diag);
		diag[sizeof diag - 1] = '\0';
		memcpy(dsn, res->dsn, sizeof dsn);
		dsn[sizeof dsn - 1] = '\0';
		memcpy(mta, res->remote_mta, sizeof mta);
		mta[sizeof mta - 1] = '\0';
		u.diag = diag[0] ? diag : NULL;
		u.status = dsn[0] ? dsn : NULL;
		u.remote_mta = mta[0] ? mta : NULL;
		return store_rcpt_update(t, res->id, res->idx, &u, &res->removed);
	case COMMIT_OP_NOTICE_DONE:
		return store_rcpt_notice_done(t, res->id, res->idx,
		    res->set_flags, &res->removed);
	case COMMIT_OP_EXPAND:
		return store_rcpt_expand(t, res->id, res->idx, res->targets,
		    res->ntargets, res->next_try, &res->first_idx, &res->removed);
	}
	return STORE_INVALID;
}

/* Writes a results request: its new messages, then each result. A
 * result whose message or recipient is gone is skipped (its status says
 * so); anything else that fails fails the request. */
static int
write_results(struct store_wtxn *t, struct commit_results *r)
{
	char idtxt[QUEUE_ID_LEN + 1];
	int st;

	if (r->facts && r->nmsgs > 0)
		return STORE_INVALID;
	for (size_t i = 0; i < r->nmsgs; i++) {
		struct commit_newmsg *m = &r->msgs[i];
		struct store_body_parts b = { m->body, m->body_len, m->staged,
		    m->tail, m->tail_len };

		if (m->env.id == 0)
			m->env.id = queue_id_next();
		if ((st = store_put_msg_parts(t, &m->env, &b)) != STORE_OK)
			return st;
	}
	for (size_t i = 0; i < r->nresults; i++) {
		struct commit_result *res = &r->results[i];

		if (r->facts && res->op != COMMIT_OP_UPDATE)
			return STORE_INVALID;
		st = res->status = write_result(t, res);
		if (st == STORE_NOTFOUND || st == STORE_CORRUPT) {
			log_warn("%s: recipient %" PRIu32 " result not recorded: %s",
			    queue_id_format(res->id, idtxt, sizeof idtxt), res->idx,
			    store_status_text(st));
			continue;
		}
		if (st != STORE_OK)
			return st;
	}
	return STORE_OK;
}

/* Writes one request of new mail in a nested transaction of t. */
static int
write_nested(struct queue_store *s, struct store_wtxn *t,
    struct commit_msg *m, struct commit_results *r)
{
	struct store_wtxn *child;
	int st;

	if ((st = store_wtxn_begin(s, t, &child)) != STORE_OK)
		return st;
	st = m != NULL ? write_msg(child, m) : write_results(child, r);
	if (st == STORE_OK)
		return store_wtxn_commit(&child);
	store_wtxn_abort(&child);
	return st;
}

/* ---- writing a batch ---- */

static void
set_all(int *v, size_t n, int st)
{
	for (size_t i = 0; i < n; i++)
		v[i] = st;
}

/* Sets the status of every request of v[0..n) not done yet. */
static void
set_todo(int *v, const unsigned char *done, size_t n, int st)
{
	for (size_t i = 0; i < n; i++)
		if (!done[i])
			v[i] = st;
}

/* Marks done what the commit just made durable. */
static void
mark_done(const int *v, unsigned char *done, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == STORE_OK)
			done[i] = 1;
}

/* The staged records and discards of b not done yet: together in one
 * nested transaction of t; when that fails, each in its own, so that one
 * that does not fit fails alone. */
static void
write_stages(struct committer *c, struct store_wtxn *t, struct batch *b)
{
	struct store_wtxn *child;
	int st;

	if (b->nstages == 0)
		return;
	if ((st = store_wtxn_begin(c->store, t, &child)) == STORE_OK) {
		for (size_t i = 0; i < b->nstages && st == STORE_OK; i++)
			if (!b->sdone[i])
				st = write_stage(child, b->stages[i]);
		if (st == STORE_OK)
			st = store_wtxn_commit(&child);
		else
			store_wtxn_abort(&child);
	}
	if (st == STORE_OK) {
		set_todo(b->sstatus, b->sdone, b->nstages, STORE_OK);
		return;
	}
	for (size_t i = 0; i < b->nstages; i++) {
		if (b->sdone[i])
			continue;
		if ((st = store_wtxn_begin(c->store, t, &child)) == STORE_OK) {
			st = write_stage(child, b->stages[i]);
			if (st == STORE_OK)
				st = store_wtxn_commit(&child);
			else
				store_wtxn_abort(&child);
		}
		b->sstatus[i] = st;
	}
}

/* The whole batch in one transaction: the facts, then each piece of new
 * mail nested. Returns the status of the facts and the commit (then the
 * statuses of the requests are set); the new mail's own statuses may
 * still say STORE_FULL. */
static int
batch_write(struct committer *c, struct batch *b)
{
	struct store_wtxn *t;
	int st;

	if ((st = store_wtxn_begin(c->store, NULL, &t)) != STORE_OK)
		goto fail;
	for (size_t i = 0; i < b->nfacts && st == STORE_OK && !b->facts_done; i++)
		st = write_results(t, b->facts[i]);
	if (st != STORE_OK) {
		store_wtxn_abort(&t);
		goto fail;
	}
	write_stages(c, t, b);
	for (size_t i = 0; i < b->nmsgs; i++)
		if (!b->mdone[i])
			b->mstatus[i] = write_nested(c->store, t, b->msgs[i], NULL);
	for (size_t i = 0; i < b->nnews; i++)
		if (!b->ndone[i])
			b->nstatus[i] = write_nested(c->store, t, NULL, b->news[i]);
	st = store_counter_add(t, STORE_CTR_REJECTED, b->rejected);
	if (st == STORE_OK)
		st = store_wtxn_commit(&t);
	else
		store_wtxn_abort(&t);
	if (st != STORE_OK)
		goto fail;
	b->rejected = 0;	/* folded */
	if (!b->facts_done)
		set_all(b->fstatus, b->nfacts, STORE_OK);
	b->facts_done = 1;
	mark_done(b->sstatus, b->sdone, b->nstages);
	mark_done(b->mstatus, b->mdone, b->nmsgs);
	mark_done(b->nstatus, b->ndone, b->nnews);
	return STORE_OK;
fail:
	if (!b->facts_done)
		set_all(b->fstatus, b->nfacts, st);
	set_todo(b->sstatus, b->sdone, b->nstages, st);
	set_todo(b->mstatus, b->mdone, b->nmsgs, st);
	set_todo(b->nstatus, b->ndone, b->nnews, st);
	return st;
}

/* The facts alone: all in one transaction, else one per request. */
static void
facts_write(struct committer *c, struct batch *b)
{
	struct store_wtxn *t;
	int st;

	if (b->nfacts == 0 || b->facts_done)
		return;
	if ((st = store_wtxn_begin(c->store, NULL, &t)) == STORE_OK) {
		for (size_t i = 0; i < b->nfacts && st == STORE_OK; i++)
			st = write_results(t, b->facts[i]);
		if (st == STORE_OK)
			st = store_wtxn_commit(&t);
		else
			store_wtxn_abort(&t);
	}
	b->facts_done = 1;
	if (st == STORE_OK) {
		set_all(b->fstatus, b->nfacts, STORE_OK);
		return;
	}
	for (size_t i = 0; i < b->nfacts; i++) {
		for (int round = 0; round < COMMIT_GROW_ROUNDS; round++) {
			if ((st = store_wtxn_begin(c->store, NULL, &t)) == STORE_OK) {
				st = write_results(t, b->facts[i]);
				if (st == STORE_OK)
					st = store_wtxn_commit(&t);
				else
					store_wtxn_abort(&t);
			}
			if (st != STORE_FULL || !store_grow(c->store))
				break;
		}
		b->fstatus[i] = st;
	}
}

/* Is any request of new mail refused for room? */
static int
batch_any_full(const struct batch *b)
{
	for (size_t i = 0; i < b->nstages; i++)
		if (!b->sdone[i] && b->sstatus[i] == STORE_FULL)
			return 1;
	for (size_t i = 0; i < b->nmsgs; i++)
		if (!b->mdone[i] && b->mstatus[i] == STORE_FULL)
			return 1;
	for (size_t i = 0; i < b->nnews; i++)
		if (!b->ndone[i] && b->nstatus[i] == STORE_FULL)
			return 1;
	return 0;
}

/* Writes b: whole, growing the map while that helps; else the facts
 * first and apart. Returns 1 when something was committed. */
static int
batch_commit(struct committer *c, struct batch *b)
{
	int st = STORE_OK, checked = 0;

	for (int round = 0; round < COMMIT_GROW_ROUNDS; round++) {
		st = batch_write(c, b);
		if (st == STORE_OK && !batch_any_full(b))
			return 1;
		if (st != STORE_OK && st != STORE_FULL)
			break;	/* a bad request or an I/O error: one by one */
		/* Dead readers keep pages from being reused: clear them
		 * once, then try a larger map. */
		if (!checked && store_reader_check(c->store) > 0) {
			checked = 1;
			continue;
		}
		checked = 1;
		if (!store_grow(c->store))
			break;
	}
	if (st == STORE_OK)
		return 1;	/* facts in; some new mail refused */
	if (st == STORE_PANIC || store_panicked(c->store))
		return 0;
	/* Facts first and apart; then the new mail, each in its own nested
	 * transaction (those that still fit). */
	facts_write(c, b);
	if (b->nstages + b->nmsgs + b->nnews > 0 || b->rejected > 0)
		(void)batch_write(c, b);	/* the facts are done now */
	return 1;
}

/* ---- after the commit ---- */

/* Keeps r for another try (facts that could not be written). */
static void
hold(struct committer *c, struct commit_results *r)
{
	if (c->nheld == c->capheld) {
		c->capheld = c->capheld ? c->capheld * 2 : 16;
		c->held = xrealloc(c->held, c->capheld * sizeof *c->held);
	}
	c->held[c->nheld++] = r;
}

/* Logs, counts and hands every request back through done (held facts
 * excepted). */
static void
batch_finish(struct committer *c, struct batch *b, int committed)
{
	char idtxt[QUEUE_ID_LEN + 1];
	size_t inserted = 0, failed = 0, results_ok = 0, held = 0;
	size_t discards_failed = 0;
	void (*notify)(void *);
	int64_t now_us;
	void *notify_arg;
	int full = 0, stopping;

	pthread_mutex_lock(&c->lock);
	stopping = c->stopping;
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < b->nstages; i++) {
		if (b->sstatus[i] == STORE_OK)
			continue;
		if (b->stages[i]->chunk == 0) {
			discards_failed++;
			continue;
		}
		failed++;
		full |= b->sstatus[i] == STORE_FULL;
	}
	for (size_t i = 0; i < b->nmsgs; i++) {
		/* The session logs its message's "(queued)" line itself. */
		if (b->mstatus[i] == STORE_OK) {
			inserted++;
		} else {
			failed++;
			full |= b->mstatus[i] == STORE_FULL;
		}
	}
	for (size_t k = 0; k < b->nfacts + b->nnews; k++) {
		int isfact = k < b->nfacts;
		struct commit_results *r = isfact ? b->facts[k] :
		    b->news[k - b->nfacts];
		int st = isfact ? b->fstatus[k] : b->nstatus[k - b->nfacts];

		if (st != STORE_OK) {
			if (isfact && st != STORE_INVALID && !stopping &&
			    !store_panicked(c->store)) {
				held++;
				continue;
			}
			failed++;
			full |= st == STORE_FULL;
			continue;
		}
		results_ok++;
		for (size_t j = 0; j < r->nmsgs; j++) {
			inserted++;
			log_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queued)",
			    queue_id_format(r->msgs[j].env.id, idtxt, sizeof idtxt),
			    r->msgs[j].env.sender != NULL ? r->msgs[j].env.sender : "",
			    r->msgs[j].body_len, r->msgs[j].env.nrcpts);
		}
		for (size_t j = 0; j < r->nresults; j++) {
			if (r->results[j].op == COMMIT_OP_EXPAND &&
			    r->results[j].status == STORE_OK)
				inserted++;
			if (r->results[j].removed) {
				log_info("%s: removed", queue_id_format(
				    r->results[j].id, idtxt, sizeof idtxt));
				trace_add(r->results[j].id, 0, "removed", "left the queue");
				trace_done(r->results[j].id, time(NULL));
			}
		}
	}
	if (full)
		log_warn("queue: full: %zu request(s) refused", failed);
	if (discards_failed)
		log_warn("queue: %zu message(s) given up could not be dropped "
		    "now; they go at the next start", discards_failed);
	if (held && time_mono_ms() - c->held_logged >= 10000) {
		c->held_logged = time_mono_ms();
		log_warn("queue: %zu delivery result(s) could not be recorded "
		    "yet; trying again", held);
	}
	pthread_mutex_lock(&c->lock);
	if (committed)
		c->stats.commits++;
	c->stats.messages += inserted;
	c->stats.results += results_ok;
	c->stats.failed += failed;
	notify = c->notify;
	notify_arg = c->notify_arg;
	pthread_mutex_unlock(&c->lock);

	/* Before the done callbacks: whoever learns of the commit through
	 * them can rely on the scheduler having been told. */
	now_us = trace_now_us();
	for (size_t i = 0; i < b->nmsgs; i++)
		b->msgs[i]->durable_us = now_us;
	if (inserted > 0 && notify != NULL)
		notify(notify_arg);
	for (size_t i = 0; i < b->nstages; i++)
		b->stages[i]->done(b->stages[i], commit_status_of(b->sstatus[i]));
	for (size_t i = 0; i < b->nmsgs; i++)
		b->msgs[i]->done(b->msgs[i], commit_status_of(b->mstatus[i]));
	for (size_t k = 0; k < b->nfacts; k++) {
		if (b->fstatus[k] != STORE_OK && b->fstatus[k] != STORE_INVALID &&
		    !stopping && !store_panicked(c->store))
			hold(c, b->facts[k]);
		else
			b->facts[k]->done(b->facts[k], commit_status_of(b->fstatus[k]));
	}
	for (size_t k = 0; k < b->nnews; k++)
		b->news[k]->done(b->news[k], commit_status_of(b->nstatus[k]));
	if (held > 0)
		c->held_retry_at = time_mono_ms() + COMMIT_HELD_RETRY_MS;
}

/* Once the store reports MDB_PANIC (on any thread), the panic hook. */
static void
check_panic(struct committer *c)
{
	void (*panic)(void *);
	void *panic_arg;

	if (!store_panicked(c->store))
		return;
	pthread_mutex_lock(&c->lock);
	panic = c->panic;
	panic_arg = c->panic_arg;
	c->panic = NULL;
	pthread_mutex_unlock(&c->lock);
	if (panic != NULL)
		panic(panic_arg);
}

static void
batch_run(struct committer *c, struct batch *b)
{
	int committed = batch_commit(c, b);

	if (b->rejected > 0)	/* not folded: the next commit */
		atomic_fetch_add(&committer_rejected_pending, b->rejected);
	batch_finish(c, b, committed);
}

/* ---- the thread ---- */

static void
add_result(struct batch *b, struct commit_results *r, size_t *capf, size_t *capn)
{
	if (r->facts) {
		if (b->nfacts == *capf) {
			*capf = *capf ? *capf * 2 : 16;
			b->facts = xrealloc(b->facts, *capf * sizeof *b->facts);
		}
		b->facts[b->nfacts++] = r;
	} else {
		if (b->nnews == *capn) {
			*capn = *capn ? *capn * 2 : 16;
			b->news = xrealloc(b->news, *capn * sizeof *b->news);
		}
		b->news[b->nnews++] = r;
	}
}

/* Takes pending requests into b (lock held); held facts go first when
 * their time has come. */
static void
batch_take(struct committer *c, struct batch *b, int with_held)
{
	size_t bytes = 0, n = 0, capf = 0, capn = 0;

	memset(b, 0, sizeof b[0]);
	for (struct commit_stage *sg = c->shead; sg != NULL &&
	    n < COMMIT_BATCH_REQS; sg = sg->next, n++) {
		if (n > 0 && bytes + sg->len > COMMIT_BATCH_BYTES)
			break;
		bytes += sg->len;
	}
	b->nstages = n;
	b->stages = xcalloc(n ? n : 1, sizeof *b->stages);
	b->sstatus = xcalloc(n ? n : 1, sizeof *b->sstatus);
	b->sdone = xcalloc(n ? n : 1, sizeof *b->sdone);
	for (size_t i = 0; i < n; i++) {
		b->stages[i] = c->shead;
		c->shead = c->shead->next;
		b->stages[i]->next = NULL;
	}
	if (c->shead == NULL)
		c->stail = &c->shead;
	/* A session submits its message's final commit without waiting for
	 * the records it staged before (committer_submit): those are written
	 * first, in this transaction or an earlier one, so no message is
	 * taken while staged records are still queued. They drain in a few
	 * batches: what sessions stage is bounded by max_inflight_data. */
	n = 0;
	for (struct commit_msg *m = c->shead == NULL ? c->mhead : NULL;
	    m != NULL && n < COMMIT_BATCH_REQS; m = m->next, n++) {
		size_t len = m->body_len + m->tail_len;

		if ((n > 0 || b->nstages > 0) && bytes + len > COMMIT_BATCH_BYTES)
			break;
		bytes += len;
	}
	b->nmsgs = n;
	b->msgs = xcalloc(n ? n : 1, sizeof *b->msgs);
	b->mstatus = xcalloc(n ? n : 1, sizeof *b->mstatus);
	b->mdone = xcalloc(n ? n : 1, sizeof *b->mdone);
	for (size_t i = 0; i < n; i++) {
		b->msgs[i] = c->mhead;
		c->mhead = c->mhead->next;
		b->msgs[i]->next = NULL;
	}
	if (c->mhead == NULL)
		c->mtail = &c->mhead;

	if (with_held) {
		for (size_t i = 0; i < c->nheld; i++)
			add_result(b, c->held[i], &capf, &capn);
		c->nheld = 0;
	}
	for (n = 0; c->rhead != NULL && n < COMMIT_BATCH_REQS; n++) {
		struct commit_results *r = c->rhead;
		c->rhead = r->next;
		r->next = NULL;
		add_result(b, r, &capf, &capn);
	}
	if (c->rhead == NULL)
		c->rtail = &c->rhead;
	b->fstatus = xcalloc(b->nfacts ? b->nfacts : 1, sizeof *b->fstatus);
	b->nstatus = xcalloc(b->nnews ? b->nnews : 1, sizeof *b->nstatus);
	b->ndone = xcalloc(b->nnews ? b->nnews : 1, sizeof *b->ndone);
}

static void
batch_clear(struct batch *b)
{
	free(b->msgs);
	free(b->mstatus);
	free(b->mdone);
	free(b->stages);
	free(b->sstatus);
	free(b->sdone);
	free(b->ndone);
	free(b->facts);
	free(b->fstatus);
	free(b->news);
	free(b->nstatus);
	memset(b, 0, sizeof *b);
}

static int
committer_idle(const struct committer *c)
{
	return c->mhead == NULL && c->rhead == NULL && c->shead == NULL;
}

static void *
committer_main(void *arg)
{
	struct committer *c = arg;
	int64_t last_work = time_mono_ms();
	int64_t next_reader_check = last_work + COMMIT_READER_CHECK_MS;

	pthread_setname_np(pthread_self(), "committer");
	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct batch b;
		int64_t now = time_mono_ms();
		int with_held, last;

		while (committer_idle(c) && !c->stopping) {
			struct timespec ts;
			now = time_mono_ms();
			if (c->nheld > 0 && now >= c->held_retry_at)
				break;
			if (now - last_work >= COMMIT_IDLE_FOLD_MS &&
			    atomic_load(&committer_rejected_pending) > 0)
				break;	/* idle: fold the rejected counter */
			if (now >= next_reader_check)
				break;
			time_mono_deadline(&ts, COMMIT_TICK_MS);
			pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		}
		now = time_mono_ms();
		with_held = c->nheld > 0 && (now >= c->held_retry_at || c->stopping);
		/* Stopping with nothing queued: one last counter fold. */
		last = c->stopping && committer_idle(c);
		batch_take(c, &b, with_held);
		pthread_mutex_unlock(&c->lock);

		if (now >= next_reader_check) {
			store_reader_check(c->store);
			next_reader_check = now + COMMIT_READER_CHECK_MS;
		}
		b.rejected = atomic_exchange(&committer_rejected_pending, 0);
		if (b.nstages + b.nmsgs + b.nfacts + b.nnews > 0 || b.rejected > 0) {
			batch_run(c, &b);
			last_work = time_mono_ms();
		}
		batch_clear(&b);
		check_panic(c);
		pthread_mutex_lock(&c->lock);
		c->stats.facts_waiting = c->nheld;
		if (last && committer_idle(c) && c->nheld == 0) {
			c->exited = 1;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

struct committer *
committer_start(struct queue_store *store)
{
	struct committer *c = xcalloc(1, sizeof *c);
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	c->store = store;
	c->mtail = &c->mhead;
	c->rtail = &c->rhead;
	c->stail = &c->shead;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* Signals are the main thread's business (DESIGN.md). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&c->thread, NULL, committer_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_error("queue: cannot start the committer thread: %s",
		    strerror(rc));
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	return c;
}

void
committer_submit(struct committer *c, struct commit_msg *req)
{
	pthread_mutex_lock(&c->lock);
	if (c->exited) {
		pthread_mutex_unlock(&c->lock);
		log_error("queue: request submitted after the committer stopped");
		req->done(req, COMMIT_IO);
		return;
	}
	req->next = NULL;
	*c->mtail = req;
	c->mtail = &req->next;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void
committer_submit_stage(struct committer *c, struct commit_stage *req)
{
	pthread_mutex_lock(&c->lock);
	if (c->exited) {
		pthread_mutex_unlock(&c->lock);
		/* A discard at shutdown is expected: the sweep does it. */
		if (req->chunk > 0)
			log_error("queue: record staged after the committer stopped");
		req->done(req, COMMIT_IO);
		return;
	}
	req->next = NULL;
	*c->stail = req;
	c->stail = &req->next;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void
discard_done(struct commit_stage *req, enum commit_status st)
{
	(void)st;	/* not dropped now: the sweep at the next start does */
	free(req);
}

void
committer_discard(struct committer *c, queue_id_t id)
{
	struct commit_stage *req = xcalloc(1, sizeof *req);

	req->id = id;
	req->done = discard_done;
	committer_submit_stage(c, req);
}

void
committer_submit_results(struct committer *c, struct commit_results *req)
{
	pthread_mutex_lock(&c->lock);
	if (c->exited) {
		pthread_mutex_unlock(&c->lock);
		log_error("queue: results submitted after the committer stopped");
		req->done(req, COMMIT_IO);
		return;
	}
	req->next = NULL;
	*c->rtail = req;
	c->rtail = &req->next;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

struct commit_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
	enum commit_status status;
};

static void
commit_wait_done(struct commit_results *req, enum commit_status status)
{
	struct commit_wait *w = req->arg;

	pthread_mutex_lock(&w->lock);
	w->done = 1;
	w->status = status;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

enum commit_status
committer_submit_results_wait(struct committer *c, struct commit_results *req)
{
	struct commit_wait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

	req->done = commit_wait_done;
	req->arg = &w;
	committer_submit_results(c, req);
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	return w.status;
}

void
committer_set_notify(struct committer *c, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&c->lock);
	c->notify = fn;
	c->notify_arg = arg;
	pthread_mutex_unlock(&c->lock);
}

void
committer_set_panic(struct committer *c, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&c->lock);
	c->panic = fn;
	c->panic_arg = arg;
	pthread_mutex_unlock(&c->lock);
}

void
committer_get_stats(struct committer *c, struct committer_stats *st_r)
{
	pthread_mutex_lock(&c->lock);
	*st_r = c->stats;
	pthread_mutex_unlock(&c->lock);
}

void
committer_stop(struct committer **cp)
{
	struct committer *c = *cp;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c->held);
	free(c);
	*cp = NULL;
}
