/*
 * delivery: the pool of delivery threads (delivery.h). Each job: load the
 * message and the job's recipients, deliver (delivery_local.c,
 * delivery_remote.c) or report, record the facts, log one line per
 * recipient, then queue the new mail the outcomes call for
 * (delivery_notice.c): facts first and apart, so that a full queue never
 * makes a delivery happen twice.
 */
#include "queue/delivery.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/netaddr.h"
#include "lib/util.h"
#include "queue/committer.h"
#include "queue/delivery_internal.h"
#include "queue/msg_writer.h"
#include "queue/trace.h"
#include "queue/store.h"
#include "storage/maildir.h"

#define LOCAL_BATCH 32		/* local jobs that share Maildir fsyncs */
#define NOTICE_RETRY_MAX 60	/* s: a pending notice is tried again */

struct delivery {
	struct queue_store *st;
	struct committer *committer;
	struct scheduler *sched;
	pthread_t *threads;		/* every thread started and not yet
					 * joined (retired ones included) */
	unsigned nthreads;
	pthread_mutex_t lock;		/* guards policy and the counts below */
	unsigned want_local, want_remote;	/* the pool's size (delivery_resize) */
	unsigned run_local, run_remote;	/* threads running and not retiring */
	struct delivery_policy *policy;
};

/* What a thread of the pool is. */
struct worker {
	struct delivery *d;
	int local_only;
	int retired;			/* the pool shrank: this thread ends */
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

int
policy_is_local(const char *domain, void *arg)
{
	const struct delivery_policy *p = arg;

	for (size_t i = 0; i < p->nlocal_domains; i++)
		if (strcasecmp(domain, p->local_domains[i]) == 0)
			return 1;
	/* Never sent over SMTP to ourselves: delivered here. */
	return ip_literal_in(domain, p->own_addrs, p->nown_addrs);
}

/*
 * The next hop of a destination (scheduler_set_hop): a route's server or
 * the relayhost, as relay_deliver keys it; else the destination itself
 * (MX delivery, an address literal, local mail). Domains sent to one
 * host share its limit, so that a hung gateway cannot take every thread
 * through many domains. Runs under the scheduler's lock (that lock, then
 * d->lock, as in the quit check).
 */
static void
delivery_hop(const char *dest, char *out, size_t outsize, void *arg)
{
	struct delivery *d = arg;
	const struct delivery_policy *pol;
	const struct delivery_route *route = NULL;

	str_copy(out, dest, outsize);
	pthread_mutex_lock(&d->lock);
	pol = d->policy;	/* d's reference keeps it while locked */
	if (dest[0] != '\0' && !policy_is_local(dest, (void *)pol)) {
		for (size_t i = 0; i < pol->nroutes; i++)
			if (strcasecmp(pol->routes[i].domain, dest) == 0)
				route = &pol->routes[i];
		if (route != NULL && route->lmtp && route->lmtp_unix != NULL)
			str_format(out, outsize, "lmtp:unix:%s", route->lmtp_unix);
		else if (route != NULL)
			str_format(out, outsize, "%s[%s]:%u", route->lmtp ?
			    "lmtp:" : "", route->host, route->port);
		else if (pol->relayhost != NULL)
			str_format(out, outsize, "[%s]:%u", pol->relayhost,
			    pol->relayhost_port);
	}
	pthread_mutex_unlock(&d->lock);
	str_lower(out);
}

unsigned
delivery_local_threads(unsigned n)
{
	return n < 4 ? 1 : n / 4;
}

unsigned
delivery_remote_threads(unsigned n)
{
	unsigned l = delivery_local_threads(n);

	return n > l ? n - l : 1;
}

unsigned
delivery_dest_limit(unsigned n, unsigned configured)
{
	unsigned r = delivery_remote_threads(n);
	unsigned cap = r > 1 ? r - 1 : 1;

	if (configured == 0)
		configured = 1;
	return configured < cap ? configured : cap;
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
	/* +-10% so that deferred mail does not come back in lockstep, but
	 * never past retry_max: every recipient is due within it. */
	delay *= 0.9 + 0.2 * rnd;
	if (delay > retry_max)
		delay = retry_max;
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

void
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

/* ---- jobs ---- */

/* Loads the job's message and its recipients (a merge of two ascending
 * index lists: linear). Returns 0, or -1 when there is nothing to do
 * (gone, unreadable: logged). */
static int
job_load(struct job_ctx *jc, struct delivery *d, struct delivery_policy *pol,
    struct sched_job *job, int64_t now)
{
	int64_t expires;
	int r;

	memset(jc, 0, sizeof *jc);
	jc->pol = pol;
	jc->committer = d->committer;
	jc->job = job;
	queue_id_format(job->id, jc->qid, sizeof jc->qid);
	if ((r = store_msg_load(d->st, job->id, &jc->msg)) != STORE_OK) {
		if (r != STORE_NOTFOUND)
			log_warn("%s: cannot load: %s", jc->qid, store_status_text(r));
		return -1;
	}
	if ((r = store_body_open(d->st, job->id, &jc->body)) != STORE_OK) {
		log_warn("%s: cannot read body: %s", jc->qid, store_status_text(r));
		queue_msg_free(&jc->msg);
		return -1;
	}
	store_body_reader(jc->body, &jc->reader);
	expires = jc->msg.env.arrival + pol->queue_lifetime;
	jc->out = xcalloc(job->n ? job->n : 1, sizeof *jc->out);
	for (size_t k = 0, i = 0; k < job->n && i < jc->msg.nrcpts;) {
		const struct queue_rcpt *rc = &jc->msg.rcpts[i];
		int take;

		if (rc->idx < job->idx[k]) {
			i++;
			continue;
		}
		if (rc->idx > job->idx[k]) {
			k++;
			continue;
		}
		if (rc->next_try == STORE_HOLD_TIME)
			take = 0;	/* held since the job was planned */
		else if (job->report)
			take = RCPT_IS_FINAL(rc->state) ?
			    (rc->flags & RCPT_F_NOTICE_PENDING) != 0 : now >= expires;
		else
			take = !RCPT_IS_FINAL(rc->state);
		if (take)
			jc->out[jc->nout++].r = rc;
		i++;
		k++;
	}
	jc->local = job->report || job->dest[0] == '\0' ||
	    policy_is_local(job->dest, pol);
	return 0;
}

/* A report job: pending notices from the records, and expiries. */
static void
report_prepare(struct job_ctx *jc)
{
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		const struct queue_rcpt *r = o->r;

		o->state = r->state;
		str_copy(o->dsn, r->status[0] ? r->status : "4.4.7", sizeof o->dsn);
		str_copy(o->diag, r->diag[0] ? r->diag : "not delivered",
		    sizeof o->diag);
		str_copy(o->relay, "none", sizeof o->relay);
		if (r->remote_mta != NULL)
			str_copy(o->remote_mta, r->remote_mta, sizeof o->remote_mta);
		if (RCPT_IS_FINAL(r->state)) {
			o->report_only = 1;
		} else {
			/* Expired: bounced (job_decide) without another try. */
			o->fact = 1;
			o->state = RCPT_DEFERRED;
		}
	}
}

/* The final shape of each fact: expiry, next try; and the notices. */
static void
job_decide(struct job_ctx *jc, int64_t now)
{
	const struct delivery_policy *pol = jc->pol;
	int64_t expires = jc->msg.env.arrival + pol->queue_lifetime;
	int64_t notice_retry = pol->retry_min < NOTICE_RETRY_MAX ?
	    pol->retry_min : NOTICE_RETRY_MAX;

	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];

		if (!o->fact)
			continue;
		if (o->state == RCPT_DEFERRED && now >= expires) {
			size_t len = strlen(o->diag);
			o->state = RCPT_BOUNCED;
			if (o->dsn[0] != '4')
				str_copy(o->dsn, "4.4.7", sizeof o->dsn);
			snprintf(o->diag + len, sizeof o->diag - len,
			    " (message expired after %u seconds in the queue)",
			    pol->queue_lifetime);
		}
		if (o->state == RCPT_DEFERRED) {
			o->next_try = now + delivery_backoff(pol->retry_min,
			    pol->retry_max, o->r->attempts + 1, rand01());
			/* Expiry is checked when it comes, tried or not. */
			if (o->next_try > expires)
				o->next_try = expires > now ? expires : now + 1;
		}
	}
	notice_decide(jc, now);
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		if (o->fact && o->state != RCPT_DEFERRED && o->notice != NOTICE_NONE)
			o->next_try = now + (notice_retry > 0 ? notice_retry : 1);
	}
}

/* Appends the facts of jc to req. */
static void
job_facts(struct job_ctx *jc, struct commit_results *req, size_t *cap,
    int64_t now)
{
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		struct commit_result *r;

		if (!o->fact)
			continue;
		if (req->nresults == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			req->results = xrealloc(req->results, *cap * sizeof *req->results);
		}
		r = &req->results[req->nresults++];
		memset(r, 0, sizeof *r);
		r->id = jc->msg.env.id;
		r->idx = o->r->idx;
		r->op = COMMIT_OP_UPDATE;
		r->state = o->state;
		r->next_try = o->next_try;
		r->attempt_time = jc->job->report ? 0 : now;
		r->clear_flags = RCPT_F_NOTICE_PENDING;
		r->set_flags = o->notice != NOTICE_NONE ? RCPT_F_NOTICE_PENDING : 0;
		str_copy(r->diag, o->diag, sizeof r->diag);
		str_copy(r->dsn, o->dsn, sizeof r->dsn);
		str_copy(r->remote_mta, o->remote_mta, sizeof r->remote_mta);
	}
}

/* The metrics of the facts of a job: one outcome per recipient, the
 * latency of the final ones, the bytes a remote server took. */
static void
job_count(struct job_ctx *jc, int64_t delay)
{
	int relayed = 0;

	for (size_t i = 0; i < jc->nout; i++) {
		const struct outcome *o = &jc->out[i];

		if (!o->fact)
			continue;
		metrics_inc_label(M_DELIVERIES, o->state == RCPT_SENT ? MD_DELIVERED :
		    o->state == RCPT_BOUNCED ? MD_BOUNCED : MD_DEFERRED);
		if (RCPT_IS_FINAL(o->state))
			metrics_observe(M_DELIVERY_LATENCY, (double)delay);
		relayed |= o->state == RCPT_SENT && !jc->local;
	}
	if (relayed)
		metrics_add(M_RELAYED_BYTES, jc->reader.size);
}

static void
job_log(struct job_ctx *jc, int expansions)
{
	int64_t delay = time(NULL) - jc->msg.env.arrival;

	if (!expansions)
		job_count(jc, delay);

	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		if (expansions ? !o->expand : !o->fact)
			continue;
		log_info("%s: to=<%s>, relay=%s, delay=%lld, dsn=%s, %s%s%sstatus=%s (%s)",
		    jc->qid, o->r->addr, o->relay[0] ? o->relay : "none",
		    (long long)delay, o->dsn, o->tls[0] ? "tls=" : "", o->tls,
		    o->tls[0] ? ", " : "", rcpt_state_name(o->state), o->diag);
		trace_add(jc->msg.env.id, jc->decided_us, expansions ? "expand" : "delivery",
		    "to=<%s> relay=%s %s%s%sdsn=%s status=%s (%s)%s", o->r->addr,
		    o->relay[0] ? o->relay : "none", o->tls[0] ? "tls=" : "", o->tls,
		    o->tls[0] ? " " : "", o->dsn, rcpt_state_name(o->state),
		    o->diag, !expansions && o->notice != NOTICE_NONE ?
		    "; a notice to the sender follows" : "");
	}
}

/* The new mail of one job: its notices and expansions. A full queue
 * refuses it: the notices stay pending (a report job makes them later);
 * an alias waits as deferred. */
static void
job_new_mail(struct delivery *d, struct job_ctx *jc, int64_t now)
{
	struct commit_results req, defer;
	enum commit_status st;
	size_t cap = 0;

	if (!notice_request(jc, &req, now))
		return;
	st = committer_submit_results_wait(d->committer, &req);
	for (size_t i = 0; i < req.nmsgs && st != COMMIT_OK; i++)
		if (req.msgs[i].staged > 0)	/* not queued after all */
			committer_discard(d->committer, req.msgs[i].env.id);
	commit_results_free(&req);
	if (st == COMMIT_OK) {
		job_log(jc, 1);
		return;
	}
	memset(&defer, 0, sizeof defer);
	defer.facts = 1;
	for (size_t i = 0; i < jc->nout; i++) {
		struct outcome *o = &jc->out[i];
		struct commit_result *r;

		if (o->notice != NOTICE_NONE)
			log_warn("%s: to=<%s>: notice not queued (%s); it waits",
			    jc->qid, o->r->addr, st == COMMIT_FULL ? "queue full" :
			    "queue error");
		if (!o->expand)
			continue;
		if (defer.nresults == cap) {
			cap = cap ? cap * 2 : 4;
			defer.results = xrealloc(defer.results, cap * sizeof *defer.results);
		}
		r = &defer.results[defer.nresults++];
		memset(r, 0, sizeof *r);
		r->id = jc->msg.env.id;
		r->idx = o->r->idx;
		r->op = COMMIT_OP_UPDATE;
		r->state = RCPT_DEFERRED;
		r->attempt_time = now;
		r->next_try = now + delivery_backoff(jc->pol->retry_min,
		    jc->pol->retry_max, o->r->attempts + 1, rand01());
		snprintf(r->diag, sizeof r->diag, "alias expansion waits: %s",
		    st == COMMIT_FULL ? "queue full" : "queue error");
		str_copy(r->dsn, "4.3.1", sizeof r->dsn);
		log_info("%s: to=<%s>, relay=local, dsn=4.3.1, status=deferred (%s)",
		    jc->qid, o->r->addr, r->diag);
	}
	if (defer.nresults > 0 &&
	    committer_submit_results_wait(d->committer, &defer) != COMMIT_OK)
		log_error("%s: cannot record that the alias expansion waits",
		    jc->qid);
	commit_results_free(&defer);
}

static void
job_free(struct job_ctx *jc)
{
	for (size_t i = 0; i < jc->nout; i++) {
		for (int t = 0; t < jc->out[i].ntargets; t++)
			free(jc->out[i].targets[t]);
		free(jc->out[i].targets);
	}
	free(jc->out);
	store_body_close(&jc->body);
	queue_msg_free(&jc->msg);
}

/*
 * Delivers jobs[0..n) (local and report jobs, or one remote job): for
 * local jobs one Maildir batch (one fsync per file, one per directory)
 * and one commit of facts serve them all.
 */
static void
deliver_jobs(struct delivery *d, struct delivery_policy *pol,
    struct sched_job **jobs, size_t n)
{
	struct job_ctx *jcs = xcalloc(n, sizeof *jcs);
	struct local_items li = { 0 };
	struct commit_results facts;
	int *loaded = xcalloc(n, sizeof *loaded);
	int64_t now = time(NULL);
	size_t cap = 0;
	enum commit_status st = COMMIT_OK;

	for (size_t j = 0; j < n; j++)
		loaded[j] = job_load(&jcs[j], d, pol, jobs[j], now) == 0 &&
		    jcs[j].nout > 0;
	for (size_t j = 0; j < n; j++) {
		if (!loaded[j])
			continue;
		if (jobs[j]->report)
			report_prepare(&jcs[j]);
		else if (jcs[j].local) {
			local_prepare(&jcs[j], &li);
			if (pol->local_lmtp != NULL)
				deliver_lmtp(&jcs[j], NULL);
		} else
			deliver_remote(&jcs[j]);
	}
	if (li.n) {
		maildir_deliver_batch(pol->mail_dir, pol->hostname, li.items, li.n);
		local_finish(&li);
	}
	now = time(NULL);
	memset(&facts, 0, sizeof facts);
	facts.facts = 1;
	for (size_t j = 0; j < n; j++) {
		if (!loaded[j])
			continue;
		job_decide(&jcs[j], now);
		jcs[j].decided_us = trace_now_us();
		job_facts(&jcs[j], &facts, &cap, now);
	}
	if (facts.nresults > 0)
		st = committer_submit_results_wait(d->committer, &facts);
	commit_results_free(&facts);
	if (st != COMMIT_OK) {
		/* Only when the committer stops: they are tried again after
		 * the restart (at least once, never lost). */
		log_error("cannot record delivery results of %zu jobs; they will "
		    "be tried again", n);
	} else {
		for (size_t j = 0; j < n; j++) {
			if (!loaded[j])
				continue;
			job_log(&jcs[j], 0);
			job_new_mail(d, &jcs[j], now);
		}
	}
	local_items_free(&li);
	for (size_t j = 0; j < n; j++)
		if (loaded[j] || jcs[j].out)
			job_free(&jcs[j]);
	free(loaded);
	free(jcs);
}

static int
job_is_local(const struct sched_job *job, void *arg)
{
	return job->report || job->dest[0] == '\0' ||
	    policy_is_local(job->dest, arg);
}

/* Is the pool of w's kind larger than wanted? Then w retires (counted at
 * once, so that exactly the surplus goes). Between jobs only, under the
 * scheduler's lock (scheduler_next_job_unless). */
static int
delivery_retire(void *arg)
{
	struct worker *w = arg;
	struct delivery *d = w->d;

	pthread_mutex_lock(&d->lock);
	if (w->local_only ? d->run_local > d->want_local : d->run_remote > d->want_remote) {
		if (w->local_only)
			d->run_local--;
		else
			d->run_remote--;
		w->retired = 1;
	}
	pthread_mutex_unlock(&d->lock);
	return w->retired;
}

static void *
delivery_main(void *arg)
{
	struct worker *w = arg;
	struct delivery *d = w->d;
	struct sched_job *jobs[LOCAL_BATCH];

	pthread_setname_np(pthread_self(), w->local_only ? "deliver-local" : "deliver");
	for (;;) {
		/* A policy is held while waiting: the local threads' choice
		 * of jobs reads its local domains. The job gets the policy
		 * current when it starts. */
		struct delivery_policy *pol = policy_get(d);
		size_t n = 1;

		jobs[0] = scheduler_next_job_unless(d->sched,
		    w->local_only ? job_is_local : NULL, pol, delivery_retire, w);
		policy_put(d, pol);
		if (jobs[0] == NULL)
			break;
		pol = policy_get(d);

		/* Local jobs travel together: their files share the directory
		 * fsyncs and their results one commit. */
		if (job_is_local(jobs[0], pol))
			while (n < LOCAL_BATCH &&
			    (jobs[n] = scheduler_take_job(d->sched, job_is_local, pol)) != NULL)
				n++;
		metrics_gauge_add(M_DELIVERY_THREADS_BUSY, 1);
		deliver_jobs(d, pol, jobs, n);
		metrics_gauge_add(M_DELIVERY_THREADS_BUSY, -1);
		for (size_t j = 0; j < n; j++)
			scheduler_job_done(d->sched, jobs[j]);
		policy_put(d, pol);
	}
	free(w);
	return NULL;
}

/* Starts threads until the pool has the size wanted. Main thread. */
static void
delivery_grow(struct delivery *d)
{
	for (;;) {
		struct worker *w;
		int local;

		pthread_mutex_lock(&d->lock);
		local = d->run_local < d->want_local;
		if (!local && d->run_remote >= d->want_remote) {
			pthread_mutex_unlock(&d->lock);
			return;
		}
		if (local)
			d->run_local++;
		else
			d->run_remote++;
		pthread_mutex_unlock(&d->lock);
		w = xcalloc(1, sizeof *w);
		w->d = d;
		w->local_only = local;
		d->threads = xrealloc(d->threads, (d->nthreads + 1) * sizeof *d->threads);
		if (pthread_create(&d->threads[d->nthreads], NULL, delivery_main, w) != 0) {
			log_error("delivery: cannot start a thread");
			free(w);
			pthread_mutex_lock(&d->lock);
			if (local)
				d->run_local--, d->want_local = d->run_local;
			else
				d->run_remote--, d->want_remote = d->run_remote;
			pthread_mutex_unlock(&d->lock);
			return;
		}
		d->nthreads++;
	}
}

struct delivery *
delivery_start(struct queue_store *st, struct committer *c,
    struct scheduler *sched, struct delivery_policy *policy, unsigned n)
{
	struct delivery *d = xcalloc(1, sizeof *d);
	unsigned nlocal = delivery_local_threads(n);
	unsigned total = nlocal + delivery_remote_threads(n);

	d->st = st;
	d->committer = c;
	d->sched = sched;
	policy->refs = 1;
	d->policy = policy;
	pthread_mutex_init(&d->lock, NULL);
	scheduler_set_pool(sched, delivery_remote_threads(n));
	scheduler_set_lifetime(sched, policy->queue_lifetime);
	scheduler_set_hop(sched, delivery_hop, d);
	d->want_local = nlocal;
	d->want_remote = total - nlocal;
	delivery_grow(d);
	metrics_gauge_set(M_DELIVERY_THREADS, d->run_local + d->run_remote);
	return d;
}

/* Joins the threads that retired; keeps the others. Main thread. */
static void
delivery_reap(struct delivery *d)
{
	unsigned k = 0;

	for (unsigned i = 0; i < d->nthreads; i++)
		if (pthread_tryjoin_np(d->threads[i], NULL) != 0)
			d->threads[k++] = d->threads[i];
	d->nthreads = k;
}

void
delivery_resize(struct delivery *d, unsigned n)
{
	unsigned local = delivery_local_threads(n), remote = delivery_remote_threads(n);

	delivery_reap(d);
	pthread_mutex_lock(&d->lock);
	d->want_local = local;
	d->want_remote = remote;
	pthread_mutex_unlock(&d->lock);
	delivery_grow(d);
	scheduler_set_pool(d->sched, remote);
	/* Idle threads of a pool that shrank look again and retire. */
	scheduler_kick(d->sched);
	metrics_gauge_set(M_DELIVERY_THREADS, local + remote);
	log_info("delivery: delivery_threads %u: %u threads (%u for local mail)", n,
	    local + remote, local);
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
	scheduler_set_lifetime(d->sched, policy->queue_lifetime);
	policy_put(d, old);
}

int
delivery_stop(struct delivery **dp, unsigned timeout_s)
{
	struct delivery *d = *dp;
	int64_t deadline;
	unsigned hung = 0;

	if (d == NULL)
		return 0;
	deadline = time_mono_ms() + (int64_t)timeout_s * 1000;
	/* Join every thread that ends in time (a past deadline still joins
	 * the finished ones), so only the hung ones are left behind. The
	 * deadline is monotonic; pthread_timedjoin_np only takes the wall
	 * clock, so it is asked in short steps. */
	for (unsigned i = 0; i < d->nthreads; i++) {
		int joined = 0;

		if (d->threads[i] == 0)
			continue;
		do {
			struct timespec step;
			clock_gettime(CLOCK_REALTIME, &step);
			step.tv_nsec += 100 * 1000000L;
			if (step.tv_nsec >= 1000000000L) {
				step.tv_sec++;
				step.tv_nsec -= 1000000000L;
			}
			joined = pthread_timedjoin_np(d->threads[i], NULL, &step) == 0;
		} while (!joined && time_mono_ms() < deadline);
		if (joined)
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
	scheduler_set_hop(d->sched, NULL, NULL);
	policy_put(d, d->policy);
	pthread_mutex_destroy(&d->lock);
	free(d->threads);
	free(d);
	return 0;
}
