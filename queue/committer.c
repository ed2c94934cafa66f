/*
 * committer: the one thread that writes the queue. Requests from any
 * thread go on two FIFO lists under a mutex; the thread takes every
 * pending request (up to a byte budget), writes them in one LMDB write
 * transaction and commits it (one fsync), then calls each done callback.
 *
 * When a batch fails (map full, a bad request), it is written again with
 * each request in a nested transaction, so only the requests that do not
 * fit or are bad fail; the rest still commit together.
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

#define COMMIT_BATCH_BYTES ((size_t)64 << 20)	/* bodies per transaction */
#define COMMIT_BATCH_REQS 4096
#define COMMIT_IDLE_SECONDS 5	/* fold the rejected counter when idle */

/* queue_stats_add_rejected has no context argument: the pending count is
 * process-wide (atomic). */
static _Atomic uint64_t committer_rejected_pending;

struct committer {
	struct queue_store *store;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct commit_msg *mhead, **mtail;
	struct commit_results *rhead, **rtail;
	int stopping;
	int exited;
	void (*notify)(void *);
	void *notify_arg;
	struct committer_stats stats;
};

/* One batch taken off the lists. */
struct batch {
	struct commit_msg **msgs;
	int *mstatus;
	size_t nmsgs;
	struct commit_results **res;
	int *rstatus;
	size_t nres;
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
	req->body = NULL;
	req->body_len = 0;
}

void
commit_results_free(struct commit_results *req)
{
	if (req == NULL)
		return;
	free(req->results);
	for (size_t i = 0; i < req->nmsgs && req->msgs != NULL; i++) {
		envelope_free(&req->msgs[i].env);
		free(req->msgs[i].body);
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
	if (m->env.id == 0)
		m->env.id = queue_id_next();
	return store_put_msg(t, &m->env, m->body, m->body_len);
}

/* Writes a results request: its new messages, then each result. A
 * result whose message or recipient is gone is skipped (its status says
 * so); anything else that fails fails the request. */
static int
write_results(struct store_wtxn *t, struct commit_results *r)
{
	char idtxt[QUEUE_ID_LEN + 1];
	int st;

	for (size_t i = 0; i < r->nmsgs; i++) {
		struct commit_newmsg *m = &r->msgs[i];
		if (m->env.id == 0)
			m->env.id = queue_id_next();
		if ((st = store_put_msg(t, &m->env, m->body, m->body_len)) != STORE_OK)
			return st;
	}
	for (size_t i = 0; i < r->nresults; i++) {
		struct commit_result *res = &r->results[i];
		struct rcpt_update u = {
			.state = res->state,
			.next_try = res->next_try,
			.attempt_time = res->attempt_time,
			.set_flags = res->set_flags,
			.diag = NULL,
		};
		char diag[COMMIT_DIAG_MAX];

		/* The array is the caller's: never trust its termination. */
		memcpy(diag, res->diag, sizeof diag);
		diag[sizeof diag - 1] = '\0';
		if (diag[0] != '\0')
			u.diag = diag;
		res->removed = 0;
		st = store_rcpt_update(t, res->id, res->idx, &u, &res->removed);
		res->status = st;
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

/* Writes the whole batch in one transaction; statuses all OK or all the
 * same failure. Returns the store status. */
static int
batch_write_fast(struct committer *c, struct batch *b)
{
	struct store_wtxn *t;
	int st;

	if ((st = store_wtxn_begin(c->store, NULL, &t)) != STORE_OK)
		return st;
	for (size_t i = 0; i < b->nmsgs && st == STORE_OK; i++)
		st = write_msg(t, b->msgs[i]);
	for (size_t i = 0; i < b->nres && st == STORE_OK; i++)
		st = write_results(t, b->res[i]);
	if (st == STORE_OK)
		st = store_counter_add(t, STORE_CTR_REJECTED, b->rejected);
	if (st != STORE_OK) {
		store_wtxn_abort(&t);
		return st;
	}
	st = store_wtxn_commit(&t);
	for (size_t i = 0; i < b->nmsgs; i++)
		b->mstatus[i] = st;
	for (size_t i = 0; i < b->nres; i++)
		b->rstatus[i] = st;
	return st;
}

/* One nested transaction per request: only failing requests fail.
 * Returns the status of the outer commit. */
static int
batch_write_each(struct committer *c, struct batch *b)
{
	struct store_wtxn *t, *child;
	int st;

	st = store_wtxn_begin(c->store, NULL, &t);
	for (size_t i = 0; i < b->nmsgs; i++) {
		if (st != STORE_OK) {
			b->mstatus[i] = st;
			continue;
		}
		b->mstatus[i] = store_wtxn_begin(c->store, t, &child);
		if (b->mstatus[i] != STORE_OK)
			continue;
		b->mstatus[i] = write_msg(child, b->msgs[i]);
		if (b->mstatus[i] == STORE_OK)
			b->mstatus[i] = store_wtxn_commit(&child);
		else
			store_wtxn_abort(&child);
	}
	for (size_t i = 0; i < b->nres; i++) {
		if (st != STORE_OK) {
			b->rstatus[i] = st;
			continue;
		}
		b->rstatus[i] = store_wtxn_begin(c->store, t, &child);
		if (b->rstatus[i] != STORE_OK)
			continue;
		b->rstatus[i] = write_results(child, b->res[i]);
		if (b->rstatus[i] == STORE_OK)
			b->rstatus[i] = store_wtxn_commit(&child);
		else
			store_wtxn_abort(&child);
	}
	if (st != STORE_OK)
		return st;
	st = store_counter_add(t, STORE_CTR_REJECTED, b->rejected);
	if (st == STORE_OK)
		st = store_wtxn_commit(&t);
	else
		store_wtxn_abort(&t);
	if (st == STORE_OK)
		return st;
	for (size_t i = 0; i < b->nmsgs; i++)
		if (b->mstatus[i] == STORE_OK)
			b->mstatus[i] = st;
	for (size_t i = 0; i < b->nres; i++)
		if (b->rstatus[i] == STORE_OK)
			b->rstatus[i] = st;
	return st;
}

/* Writes b, logs, and hands every request back through done. Returns
 * 1 when the outer transaction committed (then b->rejected is counted). */
static int
batch_run(struct committer *c, struct batch *b)
{
	char idtxt[QUEUE_ID_LEN + 1];
	size_t inserted = 0, failed = 0, results_ok = 0;
	void (*notify)(void *);
	void *notify_arg;
	int st, full = 0;

	st = batch_write_fast(c, b);
	if (st != STORE_OK && b->nmsgs + b->nres > 1) {
		st = batch_write_each(c, b);
	} else if (st != STORE_OK) {
		for (size_t i = 0; i < b->nmsgs; i++)
			b->mstatus[i] = st;
		for (size_t i = 0; i < b->nres; i++)
			b->rstatus[i] = st;
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
	for (size_t i = 0; i < b->nres; i++) {
		struct commit_results *r = b->res[i];
		if (b->rstatus[i] != STORE_OK) {
			failed++;
			full |= b->rstatus[i] == STORE_FULL;
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
		for (size_t j = 0; j < r->nresults; j++)
			if (r->results[j].removed)
				log_info("%s: removed", queue_id_format(
				    r->results[j].id, idtxt, sizeof idtxt));
	}
	if (full)
		log_warn("queue: full: %zu request(s) refused", failed);
	pthread_mutex_lock(&c->lock);
	if (st == STORE_OK)
		c->stats.commits++;
	c->stats.messages += inserted;
	c->stats.results += results_ok;
	c->stats.failed += failed;
	notify = c->notify;
	notify_arg = c->notify_arg;
	pthread_mutex_unlock(&c->lock);

	/* Before the done callbacks: whoever learns of the commit through
	 * them can rely on the scheduler having been told. */
	if (inserted > 0 && notify != NULL)
		notify(notify_arg);
	for (size_t i = 0; i < b->nmsgs; i++)
		b->msgs[i]->done(b->msgs[i], commit_status_of(b->mstatus[i]));
	for (size_t i = 0; i < b->nres; i++)
		b->res[i]->done(b->res[i], commit_status_of(b->rstatus[i]));
	return st == STORE_OK;
}

/* ---- the thread ---- */

/* Takes pending requests into b (lock held). */
static void
batch_take(struct committer *c, struct batch *b)
{
	size_t bytes = 0, n = 0;

	memset(b, 0, sizeof b[0]);
	for (struct commit_msg *m = c->mhead; m != NULL && n < COMMIT_BATCH_REQS;
	    m = m->next, n++) {
		if (n > 0 && bytes + m->body_len > COMMIT_BATCH_BYTES)
			break;
		bytes += m->body_len;
	}
	b->nmsgs = n;
	b->msgs = xcalloc(n, sizeof *b->msgs);
	b->mstatus = xcalloc(n, sizeof *b->mstatus);
	for (size_t i = 0; i < n; i++) {
		b->msgs[i] = c->mhead;
		c->mhead = c->mhead->next;
		b->msgs[i]->next = NULL;
	}
	if (c->mhead == NULL)
		c->mtail = &c->mhead;

	n = 0;
	for (struct commit_results *r = c->rhead; r != NULL && n < COMMIT_BATCH_REQS;
	    r = r->next)
		n++;
	b->nres = n;
	b->res = xcalloc(n, sizeof *b->res);
	b->rstatus = xcalloc(n, sizeof *b->rstatus);
	for (size_t i = 0; i < n; i++) {
		b->res[i] = c->rhead;
		c->rhead = c->rhead->next;
		b->res[i]->next = NULL;
	}
	if (c->rhead == NULL)
		c->rtail = &c->rhead;
}

static void
batch_clear(struct batch *b)
{
	free(b->msgs);
	free(b->mstatus);
	free(b->res);
	free(b->rstatus);
	memset(b, 0, sizeof *b);
}

static int
committer_idle(const struct committer *c)
{
	return c->mhead == NULL && c->rhead == NULL;
}

static void *
committer_main(void *arg)
{
	struct committer *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct batch b;
		int last;

		while (committer_idle(c) && !c->stopping) {
			struct timespec ts;
			int rc;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += COMMIT_IDLE_SECONDS;
			rc = pthread_cond_timedwait(&c->cond, &c->lock, &ts);
			if (rc != 0 && atomic_load(&committer_rejected_pending) > 0)
				break;	/* idle: fold the rejected counter */
		}
		/* Stopping with nothing queued: one last counter fold. */
		last = c->stopping && committer_idle(c);
		batch_take(c, &b);
		pthread_mutex_unlock(&c->lock);

		b.rejected = atomic_exchange(&committer_rejected_pending, 0);
		if (b.nmsgs + b.nres > 0 || b.rejected > 0) {
			if (!batch_run(c, &b) && b.rejected > 0)
				atomic_fetch_add(&committer_rejected_pending, b.rejected);
		}
		batch_clear(&b);
		pthread_mutex_lock(&c->lock);
		if (last && committer_idle(c)) {
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
	sigset_t all, old;
	int rc;

	c->store = store;
	c->mtail = &c->mhead;
	c->rtail = &c->rhead;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
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

void
committer_set_notify(struct committer *c, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&c->lock);
	c->notify = fn;
	c->notify_arg = arg;
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
	free(c);
	*cp = NULL;
}
