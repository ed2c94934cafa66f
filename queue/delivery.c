/*
 * delivery: delivery threads. Each job: load the message, deliver to its
 * recipients of one destination (Maildirs or the relay client), turn every
 * outcome into a recipient state change plus the notices it calls for,
 * commit all of it as one batch, then log one line per recipient.
 */
#include "queue/delivery.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/bounce.h"
#include "queue/committer.h"
#include "queue/record.h"
#include "relay/relay.h"
#include "queue/results.h"
#include "queue/scheduler.h"
#include "queue/store.h"
#include "storage/maildir.h"
#include "storage/userdb.h"

struct delivery {
	struct queue_store *st;
	struct committer *committer;
	struct scheduler *sched;
	pthread_t *threads;
	unsigned nthreads;
	pthread_mutex_t lock;		/* guards policy */
	struct delivery_policy *policy;
};

/* What happened to one recipient in this attempt. */
struct outcome {
	const struct queue_rcpt *r;
	enum rcpt_state state;		/* SENT, DEFERRED or BOUNCED */
	char dsn[16];
	char diag[512];
	char relay[300];
	char remote_mta[256];
	int dsn_passed;			/* the next hop reports on it */
	char **forward;			/* remote alias targets (SENT only) */
	int nforward;
	int nitems;			/* local mailboxes it expanded to */
};

/* The results and new messages of one or more jobs, committed together. */
struct batch {
	struct commit_results req;
	size_t capresults, capmsgs;
};

/* Everything one job collects before its commit. */
struct job_ctx {
	struct delivery *d;
	struct delivery_policy *pol;
	struct sched_job *job;
	struct queue_msg msg;
	char qid[QUEUE_ID_LEN + 1];
	char *body;
	size_t body_len;
	struct outcome *out;
	size_t nout;
	int local;
	struct batch *batch;
};

/* Maildir items of a batch of local jobs, with who asked for each. */
struct local_items {
	struct maildir_item *items;
	struct job_ctx **jc;
	size_t *out;			/* index into jc->out */
	char **targets;			/* the final address, Delivered-To */
	size_t n, cap;
};

/* ---- policy ---- */

static struct delivery_policy *
policy_get(struct delivery *d)
{
	struct delivery_policy *p;

	pthread_mutex_lock(&d->lock);
	p = d->policy;
	p->refs++;
	pthread_mutex_unlock(&d->lock);
	return p;
}

static void
policy_put(struct delivery *d, struct delivery_policy *p)
{
	int last;

	pthread_mutex_lock(&d->lock);
	last = --p->refs == 0;
	pthread_mutex_unlock(&d->lock);
	if (last) {
		if (p->release)
			p->release(p->owner);
		free(p);
	}
}

static int
policy_is_local(const char *domain, void *arg)
{
	const struct delivery_policy *p = arg;

	for (size_t i = 0; i < p->nlocal_domains; i++)
		if (strcasecmp(domain, p->local_domains[i]) == 0)
			return 1;
	return 0;
}

unsigned
delivery_backoff(unsigned retry_min, unsigned retry_max, unsigned attempts,
    double rnd)
{
	double delay = retry_min;

	for (unsigned i = 1; i < attempts && delay < retry_max; i++)
		delay *= 2;
	if (delay > retry_max)
		delay = retry_max;
	/* +-10% so that deferred mail does not come back in lockstep */
	delay *= 0.9 + 0.2 * rnd;
	return delay < 1 ? 1 : (unsigned)delay;
}

static double
rand01(void)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof v, GRND_NONBLOCK) != sizeof v)
		v = (uint32_t)time(NULL) * 2654435761u;
	return v / 4294967296.0;
}

static void
outcome_set(struct outcome *o, enum rcpt_state state, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
outcome_set(struct outcome *o, enum rcpt_state state, const char *dsn,
    const char *fmt, ...)
{
	va_list ap;

	o->state = state;
	str_copy(o->dsn, dsn, sizeof o->dsn);
	va_start(ap, fmt);
	vsnprintf(o->diag, sizeof o->diag, fmt, ap);
	va_end(ap);
}

/* ---- local delivery ---- */

static void
local_items_add(struct local_items *li, struct job_ctx *jc, size_t out,
    char *user, char *domain)
{
	struct maildir_item *it;
	size_t len = strlen(user) + strlen(domain) + 2;

	if (li->n == li->cap) {
		li->cap = li->cap ? li->cap * 2 : 16;
		li->items = xrealloc(li->items, li->cap * sizeof *li->items);
		li->jc = xrealloc(li->jc, li->cap * sizeof *li->jc);
		li->out = xrealloc(li->out, li->cap * sizeof *li->out);
		li->targets = xrealloc(li->targets, li->cap * sizeof *li->targets);
	}
	it = &li->items[li->n];
	memset(it, 0, sizeof *it);
	/* "user@domain", then "user" and "domain" for the Maildir path */
	li->targets[li->n] = xmalloc(2 * len);
	snprintf(li->targets[li->n], 2 * len, "%s@%s%c%s%c%s", user, domain, '\0',
	    user, '\0', domain);
	it->recipient = li->targets[li->n];
	it->user = it->recipient + len;
	it->domain = it->user + strlen(user) + 1;
	it->sender = jc->msg.env.sender;
	it->body = jc->body;
	it->body_len = jc->body_len;
	li->jc[li->n] = jc;
	li->out[li->n] = out;
	li->n++;
	jc->out[out].nitems++;
}

static void
local_items_free(struct local_items *li)
{
	for (size_t k = 0; k < li->n; k++)
		free(li->targets[k]);
	free(li->items);
	free(li->jc);
	free(li->out);
	free(li->targets);
	memset(li, 0, sizeof *li);
}

/* Expands each recipient through the aliases into Maildir items (added to
 * li) and remote targets (kept in the outcome, forwarded once the
 * recipient is done). */
static void
local_prepare(struct job_ctx *jc, struct local_items *li)
{
	struct delivery_policy *pol = jc->pol;

	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		char addr[600], **list = NULL;
		int n;

		str_copy(o->relay, "local", sizeof o->relay);
		if (strchr(o->r->addr, '@'))
			str_copy(addr, o->r->addr, sizeof addr);
		else
			snprintf(addr, sizeof addr, "%s@%s", o->r->addr,
			    pol->nlocal_domains ? pol->local_domains[0] : "localhost");
		n = userdb_expand(pol->udb, addr, policy_is_local, pol, &list);
		if (n < 0) {
			outcome_set(o, RCPT_BOUNCED, "5.4.6",
			    "alias expansion of <%s> loops or has too many targets", addr);
			continue;
		}
		outcome_set(o, RCPT_SENT, "2.0.0", "delivered to maildir");
		for (int t = 0; t < n; t++) {
			char *a = list[t], *at = strrchr(a, '@');

			if (at == NULL || !policy_is_local(at + 1, pol)) {
				o->forward = xrealloc(o->forward,
				    (size_t)(o->nforward + 1) * sizeof *o->forward);
				o->forward[o->nforward++] = xstrdup(a);
			} else if (userdb_lookup(pol->udb, a) == USERDB_NONE &&
			    strncasecmp(a, "postmaster@", 11) != 0) {
				if (n == 1)
					outcome_set(o, RCPT_BOUNCED, "5.1.1",
					    "unknown user: \"%s\"", a);
				else
					log_warn("%s: alias target <%s> of <%s>: unknown user",
					    jc->qid, a, addr);
			} else {
				*at = '\0';
				local_items_add(li, jc, i, a, at + 1);
			}
		}
		if (list)
			userdb_list_free(list, n);
	}
}

/* Turns the Maildir results into outcomes: a temporary failure defers the
 * recipient; a permanent one bounces it when it was its only mailbox. */
static void
local_finish(struct local_items *li)
{
	for (size_t k = 0; k < li->n; k++) {
		struct outcome *o = &li->jc[k]->out[li->out[k]];
		struct maildir_item *it = &li->items[k];

		if (it->status == MAILDIR_OK || o->state == RCPT_DEFERRED)
			continue;
		if (it->status == MAILDIR_TEMP)
			outcome_set(o, RCPT_DEFERRED, "4.2.0", "%s", it->error);
		else if (o->nitems == 1 && o->nforward == 0)
			outcome_set(o, RCPT_BOUNCED, "5.2.0", "%s", it->error);
		else
			log_warn("%s: to=<%s@%s>: %s", li->jc[k]->qid, it->user,
			    it->domain, it->error);
	}
}

/* ---- remote delivery ---- */

/* The queue's NOTIFY bits in the relay client's terms. */
static unsigned
relay_notify_of(unsigned notify)
{
	return ((notify & DSN_NOTIFY_NEVER) ? RELAY_NOTIFY_NEVER : 0) |
	    ((notify & DSN_NOTIFY_SUCCESS) ? RELAY_NOTIFY_SUCCESS : 0) |
	    ((notify & DSN_NOTIFY_FAILURE) ? RELAY_NOTIFY_FAILURE : 0) |
	    ((notify & DSN_NOTIFY_DELAY) ? RELAY_NOTIFY_DELAY : 0);
}

static void
deliver_remote(struct job_ctx *jc)
{
	struct delivery_policy *pol = jc->pol;
	const char *host = NULL;
	char literal[300];
	uint16_t port = 0;
	struct relay_rcpt *rr;
	struct relay_result *res;
	struct relay_msg m;

	if (pol->relay == NULL) {
		for (size_t i = 0; i < jc->nout; i++)
			outcome_set(&jc->out[i], RCPT_DEFERRED, "4.3.5",
			    "remote delivery is not available");
		return;
	}
	for (size_t i = 0; i < pol->nroutes; i++)
		if (strcasecmp(pol->routes[i].domain, jc->job->dest) == 0) {
			host = pol->routes[i].host;
			port = pol->routes[i].port;
		}
	if (host == NULL && pol->relayhost) {
		host = pol->relayhost;
		port = pol->relayhost_port;
	}
	/* An address literal is its own destination (RFC 5321 4.1.3). */
	if (host == NULL && jc->job->dest[0] == '[') {
		const char *lit = jc->job->dest + 1;
		if (strncasecmp(lit, "ipv6:", 5) == 0)
			lit += 5;
		snprintf(literal, sizeof literal, "[%s", lit);
		host = literal;
	}
	rr = xcalloc(jc->nout, sizeof *rr);
	res = xcalloc(jc->nout, sizeof *res);
	for (size_t i = 0; i < jc->nout; i++) {
		rr[i].addr = jc->out[i].r->addr;
		rr[i].orcpt = jc->out[i].r->orcpt;
		rr[i].notify = relay_notify_of(jc->out[i].r->notify);
	}
	m.sender = jc->msg.env.sender;
	m.eightbit = (jc->msg.env.flags & ENV_8BITMIME) != 0;
	m.smtputf8 = (jc->msg.env.flags & ENV_SMTPUTF8) != 0;
	m.ret = jc->msg.env.ret == DSN_RET_FULL ? RELAY_RET_FULL :
	    jc->msg.env.ret == DSN_RET_HDRS ? RELAY_RET_HDRS : RELAY_RET_UNSET;
	m.envid = jc->msg.env.envid;
	m.body = jc->body;
	m.body_len = jc->body_len;
	relay_deliver(pol->relay, jc->job->dest, host, port, &m, rr, jc->nout, res);
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		enum rcpt_state st = res[i].status == RELAY_SENT ? RCPT_SENT :
		    res[i].status == RELAY_BOUNCED ? RCPT_BOUNCED : RCPT_DEFERRED;
		char *br;

		outcome_set(o, st, res[i].dsn[0] ? res[i].dsn : "4.0.0", "%s", res[i].diag);
		str_copy(o->relay, res[i].relay, sizeof o->relay);
		str_copy(o->remote_mta, res[i].relay, sizeof o->remote_mta);
		o->dsn_passed = res[i].dsn_passed;
		if ((br = strchr(o->remote_mta, '[')) != NULL)
			*br = '\0';
	}
	free(rr);
	free(res);
}

/* ---- notices and results ---- */

static struct commit_newmsg *
job_add_msg(struct job_ctx *jc)
{
	struct commit_newmsg *m;

	struct batch *b = jc->batch;

	if (b->req.nmsgs == b->capmsgs) {
		b->capmsgs = b->capmsgs ? b->capmsgs * 2 : 2;
		b->req.msgs = xrealloc(b->req.msgs, b->capmsgs * sizeof *b->req.msgs);
	}
	m = &b->req.msgs[b->req.nmsgs++];
	memset(m, 0, sizeof *m);
	m->env.arrival = time(NULL);
	m->env.helo = xstrdup(jc->pol->hostname);
	m->env.client_addr = xstrdup("127.0.0.1");
	return m;
}

/* A notice from the null sender to rcpt about the outcomes in list. */
static void
job_add_notice(struct job_ctx *jc, enum bounce_kind kind, const char *to,
    struct outcome **list, size_t n)
{
	struct bounce_rcpt *br = xcalloc(n, sizeof *br);
	struct bounce_orig orig = {
		.queue_id = jc->qid, .sender = to, .envid = jc->msg.env.envid,
		.ret = jc->msg.env.ret, .arrival = jc->msg.env.arrival,
		.body = jc->body, .body_len = jc->body_len,
		.smtputf8 = (jc->msg.env.flags & ENV_SMTPUTF8) != 0,
	};
	struct commit_newmsg *m;
	char (*diag)[600] = xcalloc(n, sizeof *diag);
	int64_t now = time(NULL);

	for (size_t i = 0; i < n; i++) {
		br[i].addr = list[i]->r->addr;
		br[i].orcpt = list[i]->r->orcpt;
		br[i].status = list[i]->dsn;
		br[i].remote_mta = list[i]->remote_mta[0] ? list[i]->remote_mta : NULL;
		snprintf(diag[i], sizeof diag[i], "%s; %s",
		    list[i]->remote_mta[0] ? "smtp" : "x-local", list[i]->diag);
		br[i].diag = diag[i];
		br[i].last_attempt = now;
	}
	m = job_add_msg(jc);
	m->body = bounce_build(kind, jc->pol->hostname, &orig, br, n,
	    jc->msg.env.arrival + jc->pol->queue_lifetime, &m->body_len);
	m->env.sender = xstrdup("");
	m->env.flags = ENV_NOTICE | (orig.smtputf8 ? ENV_SMTPUTF8 : 0);
	m->env.rcpts = xcalloc(1, sizeof *m->env.rcpts);
	m->env.rcpts[0].addr = xstrdup(to);
	m->env.nrcpts = 1;
	free(br);
	free(diag);
}

static int
notify_allows(unsigned notify, unsigned bit)
{
	if (notify & DSN_NOTIFY_NEVER)
		return 0;
	if (notify == 0)	/* RFC 3461 default: failures and delays */
		return bit != DSN_NOTIFY_SUCCESS;
	return (notify & bit) != 0;
}

static void
job_notices(struct job_ctx *jc)
{
	const char *sender = jc->msg.env.sender;
	struct outcome **failed = xcalloc(jc->nout, sizeof *failed);
	struct outcome **delayed = xcalloc(jc->nout, sizeof *delayed);
	struct outcome **good = xcalloc(jc->nout, sizeof *good);
	size_t nf = 0, nd = 0, ng = 0;
	int64_t now = time(NULL);
	char postmaster[300];

	snprintf(postmaster, sizeof postmaster, "postmaster@%s",
	    jc->pol->nlocal_domains ? jc->pol->local_domains[0] : "localhost");
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		unsigned notify = o->r->notify;

		if (o->state == RCPT_BOUNCED && notify_allows(notify, DSN_NOTIFY_FAILURE))
			failed[nf++] = o;
		else if (o->state == RCPT_DEFERRED && jc->pol->delay_warning &&
		    now - jc->msg.env.arrival >= jc->pol->delay_warning &&
		    !(o->r->flags & RCPT_F_DELAY_NOTIFIED) &&
		    notify_allows(notify, DSN_NOTIFY_DELAY))
			delayed[nd++] = o;
		else if (o->state == RCPT_SENT && (notify & DSN_NOTIFY_SUCCESS) &&
		    !(notify & DSN_NOTIFY_NEVER) && !o->dsn_passed)
			good[ng++] = o;	/* RFC 3461 5.2.2: else the next hop's */
	}
	if (sender[0] != '\0') {
		if (nf)
			job_add_notice(jc, BOUNCE_FAILED, sender, failed, nf);
		if (nd)
			job_add_notice(jc, BOUNCE_DELAYED, sender, delayed, nd);
		if (ng)
			job_add_notice(jc, jc->local ? BOUNCE_DELIVERED : BOUNCE_RELAYED,
			    sender, good, ng);
	} else if (nf) {
		/* Never a bounce to the null sender: tell postmaster, once, and
		 * never about a notice to postmaster itself. */
		size_t n = 0;
		for (size_t i = 0; i < nf; i++) {
			log_warn("%s: to=<%s>: undeliverable mail from the null sender: %s",
			    jc->qid, failed[i]->r->addr, failed[i]->diag);
			if (strncasecmp(failed[i]->r->addr, "postmaster", 10) != 0)
				failed[n++] = failed[i];
		}
		if (n)
			job_add_notice(jc, BOUNCE_FAILED, postmaster, failed, n);
	}
	free(failed);
	free(delayed);
	free(good);
}

static void
job_forwards(struct job_ctx *jc)
{
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		struct commit_newmsg *m;
		char orcpt[700];

		if (o->nforward == 0 || o->state != RCPT_SENT)
			continue;
		m = job_add_msg(jc);
		m->env.sender = xstrdup(jc->msg.env.sender);
		m->env.flags = jc->msg.env.flags & (ENV_8BITMIME | ENV_SMTPUTF8 | ENV_NOTICE);
		m->env.ret = jc->msg.env.ret;
		m->env.envid = jc->msg.env.envid ? xstrdup(jc->msg.env.envid) : NULL;
		m->env.rcpts = xcalloc((size_t)o->nforward, sizeof *m->env.rcpts);
		snprintf(orcpt, sizeof orcpt, "rfc822;%s", o->r->addr);
		for (int f = 0; f < o->nforward; f++) {
			m->env.rcpts[f].addr = o->forward[f];
			m->env.rcpts[f].orcpt = xstrdup(o->r->orcpt ? o->r->orcpt : orcpt);
			m->env.rcpts[f].notify = o->r->notify;
			o->forward[f] = NULL;
		}
		m->env.nrcpts = (size_t)o->nforward;
		m->body = xmalloc(jc->body_len + 1);
		memcpy(m->body, jc->body, jc->body_len);
		m->body_len = jc->body_len;
	}
}

static void
job_results(struct job_ctx *jc)
{
	int64_t now = time(NULL);
	int64_t expires = jc->msg.env.arrival + jc->pol->queue_lifetime;

	/* A deferral past queue_lifetime is final. */
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		if (o->state == RCPT_DEFERRED && now >= expires) {
			o->state = RCPT_BOUNCED;
			if (o->dsn[0] != '4')
				str_copy(o->dsn, "4.4.7", sizeof o->dsn);
			size_t len = strlen(o->diag);
			snprintf(o->diag + len, sizeof o->diag - len,
			    " (message expired after %u seconds in the queue)",
			    jc->pol->queue_lifetime);
		}
	}
	struct batch *b = jc->batch;

	if (b->req.nresults + jc->nout > b->capresults) {
		b->capresults = (b->req.nresults + jc->nout) * 2;
		b->req.results = xrealloc(b->req.results, b->capresults * sizeof *b->req.results);
	}
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		struct commit_result *r = &b->req.results[b->req.nresults++];

		memset(r, 0, sizeof *r);
		r->id = jc->msg.env.id;
		r->idx = o->r->idx;
		r->state = o->state;
		r->attempt_time = now;
		snprintf(r->diag, sizeof r->diag, "%s", o->diag);
		if (o->state == RCPT_DEFERRED) {
			r->next_try = now + delivery_backoff(jc->pol->retry_min,
			    jc->pol->retry_max, o->r->attempts + 1, rand01());
			if (jc->pol->delay_warning && now - jc->msg.env.arrival >=
			    jc->pol->delay_warning && jc->msg.env.sender[0] &&
			    notify_allows(o->r->notify, DSN_NOTIFY_DELAY))
				r->set_flags = RCPT_F_DELAY_NOTIFIED;
		}
	}
}

struct commit_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
	enum commit_status status;
};

static void
job_commit_done(struct commit_results *req, enum commit_status status)
{
	struct commit_wait *w = req->arg;

	pthread_mutex_lock(&w->lock);
	w->done = 1;
	w->status = status;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Commits the batch; a full queue is retried a few times (the results
 * are facts: giving up would deliver again). */
static enum commit_status
batch_commit(struct delivery *d, struct batch *b)
{
	struct commit_wait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

	for (int attempt = 0; attempt < 20; attempt++) {
		w.done = 0;
		b->req.done = job_commit_done;
		b->req.arg = &w;
		committer_submit_results(d->committer, &b->req);
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
		if (w.status != COMMIT_FULL)
			break;
		usleep(200 * 1000);
	}
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	return w.status;
}

static void
job_log(struct job_ctx *jc)
{
	int64_t delay = time(NULL) - jc->msg.env.arrival;

	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		log_info("%s: to=<%s>, relay=%s, delay=%lld, dsn=%s, status=%s (%s)",
		    jc->qid, o->r->addr, o->relay[0] ? o->relay : "none",
		    (long long)delay, o->dsn, rcpt_state_name(o->state), o->diag);
	}
}

/* Loads the job's message and the recipients still to deliver. Returns
 * 0, or -1 when there is nothing to do (gone, unreadable: logged). */
static int
job_load(struct job_ctx *jc, struct delivery *d, struct delivery_policy *pol,
    struct sched_job *job, struct batch *b)
{
	int r;

	memset(jc, 0, sizeof *jc);
	jc->d = d;
	jc->pol = pol;
	jc->job = job;
	jc->batch = b;
	queue_id_format(job->id, jc->qid, sizeof jc->qid);
	if ((r = store_msg_load(d->st, job->id, &jc->msg)) != STORE_OK) {
		if (r != STORE_NOTFOUND)
			log_warn("%s: cannot load: %s", jc->qid, store_status_text(r));
		return -1;
	}
	if ((r = store_body_read(d->st, job->id, 0, &jc->body, &jc->body_len)) != STORE_OK) {
		log_warn("%s: cannot read body: %s", jc->qid, store_status_text(r));
		queue_msg_free(&jc->msg);
		return -1;
	}
	jc->out = xcalloc(job->n, sizeof *jc->out);
	for (size_t k = 0; k < job->n; k++)
		for (size_t i = 0; i < jc->msg.nrcpts; i++)
			if (jc->msg.rcpts[i].idx == job->idx[k] &&
			    jc->msg.rcpts[i].state < RCPT_SENT)
				jc->out[jc->nout++].r = &jc->msg.rcpts[i];
	jc->local = job->dest[0] == '\0' || policy_is_local(job->dest, pol);
	return 0;
}

static void
job_free(struct job_ctx *jc)
{
	for (size_t i = 0; i < jc->nout; i++) {
		for (int f = 0; f < jc->out[i].nforward; f++)
			free(jc->out[i].forward[f]);
		free(jc->out[i].forward);
	}
	free(jc->out);
	free(jc->body);
	queue_msg_free(&jc->msg);
}

/*
 * Delivers jobs[0..n) (all local, or one remote job) and commits every
 * outcome with one batch: for local jobs one Maildir batch (one fsync per
 * file, one per directory) and one queue commit serve them all.
 */
static void
deliver_jobs(struct delivery *d, struct delivery_policy *pol,
    struct sched_job **jobs, size_t n)
{
	struct job_ctx *jcs = xcalloc(n, sizeof *jcs);
	struct local_items li = { 0 };
	struct batch b;
	int *loaded = xcalloc(n, sizeof *loaded);

	memset(&b, 0, sizeof b);
	for (size_t j = 0; j < n; j++)
		loaded[j] = job_load(&jcs[j], d, pol, jobs[j], &b) == 0 && jcs[j].nout > 0;
	for (size_t j = 0; j < n; j++) {
		if (!loaded[j])
			continue;
		if (jcs[j].local)
			local_prepare(&jcs[j], &li);
		else
			deliver_remote(&jcs[j]);
	}
	if (li.n) {
		maildir_deliver_batch(pol->mail_dir, pol->hostname, li.items, li.n);
		local_finish(&li);
	}
	for (size_t j = 0; j < n; j++) {
		if (!loaded[j])
			continue;
		job_results(&jcs[j]);
		job_notices(&jcs[j]);
		job_forwards(&jcs[j]);
	}
	if (b.req.nresults > 0) {
		if (batch_commit(d, &b) == COMMIT_OK) {
			for (size_t j = 0; j < n; j++)
				if (loaded[j])
					job_log(&jcs[j]);
		} else {
			log_error("cannot record delivery results of %zu jobs; will try again", n);
		}
	}
	commit_results_free(&b.req);
	local_items_free(&li);
	for (size_t j = 0; j < n; j++)
		if (loaded[j] || jcs[j].out)
			job_free(&jcs[j]);
	free(loaded);
	free(jcs);
}

#define LOCAL_BATCH 32

static int
job_is_local(const char *dest, void *arg)
{
	return dest[0] == '\0' || policy_is_local(dest, arg);
}

static void *
delivery_main(void *arg)
{
	struct delivery *d = arg;
	struct sched_job *jobs[LOCAL_BATCH];

	while ((jobs[0] = scheduler_next_job(d->sched)) != NULL) {
		struct delivery_policy *pol = policy_get(d);
		size_t n = 1;

		/* Local jobs travel together: their files share the directory
		 * fsyncs and their results one commit. */
		if (job_is_local(jobs[0]->dest, pol))
			while (n < LOCAL_BATCH &&
			    (jobs[n] = scheduler_take_job(d->sched, job_is_local, pol)) != NULL)
				n++;
		deliver_jobs(d, pol, jobs, n);
		for (size_t j = 0; j < n; j++)
			scheduler_job_done(d->sched, jobs[j]);
		policy_put(d, pol);
	}
	return NULL;
}

struct delivery *
delivery_start(struct queue_store *st, struct committer *c,
    struct scheduler *sched, struct delivery_policy *policy, unsigned n)
{
	struct delivery *d = xcalloc(1, sizeof *d);

	d->st = st;
	d->committer = c;
	d->sched = sched;
	policy->refs = 1;
	d->policy = policy;
	pthread_mutex_init(&d->lock, NULL);
	d->threads = xcalloc(n, sizeof *d->threads);
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&d->threads[i], NULL, delivery_main, d) != 0) {
			log_error("delivery: cannot start thread %u", i);
			break;
		}
		d->nthreads++;
	}
	return d;
}

void
delivery_set_policy(struct delivery *d, struct delivery_policy *policy)
{
	struct delivery_policy *old;

	policy->refs = 1;
	pthread_mutex_lock(&d->lock);
	old = d->policy;
	d->policy = policy;
	pthread_mutex_unlock(&d->lock);
	policy_put(d, old);
}

int
delivery_stop(struct delivery **dp, unsigned timeout_s)
{
	struct delivery *d = *dp;
	struct timespec until;
	unsigned hung = 0;

	if (d == NULL)
		return 0;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_s;
	/* Join every thread that ends in time (a past deadline still joins
	 * the finished ones), so only the hung ones are left behind. */
	for (unsigned i = 0; i < d->nthreads; i++) {
		if (d->threads[i] == 0)
			continue;
		if (pthread_timedjoin_np(d->threads[i], NULL, &until) == 0)
			d->threads[i] = 0;
		else
			hung++;
	}
	if (hung) {
		log_warn("delivery: %u jobs still running after %u s; their "
		    "recipients stay queued and will be tried again", hung, timeout_s);
		return -1;
	}
	*dp = NULL;
	policy_put(d, d->policy);
	pthread_mutex_destroy(&d->lock);
	free(d->threads);
	free(d);
	return 0;
}
