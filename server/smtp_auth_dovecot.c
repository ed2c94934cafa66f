/*
 * smtp_auth_dovecot: the SASL exchange passed through to Dovecot, one
 * step per off-loop job (contract in smtp_auth_dovecot.h; the session's
 * side in smtp_session_int.h).
 *
 * A step's job owns the connection while it runs. A final answer (OK,
 * FAIL, a temporary failure, invalid data) puts the connection back in
 * the idle pool from the pool thread; a challenge hands it to the
 * session, which holds it until the client answers and passes it to the
 * next step's job. A connection with an exchange still open (the client
 * cancelled, the session ended) is closed, never pooled: Dovecot forgets
 * an exchange whose connection went away.
 */
#include "server/smtp_auth_dovecot.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/util.h"
#include "server/idle_pool.h"
#include "server/sasl_dovecot.h"
#include "server/smtp_session_int.h"
#include "server/worker.h"

struct auth_dovecot {
	struct sasl_dovecot_spec spec;
	struct idle_pool idle;
	pthread_mutex_t lock;
	char mechs[sizeof ((struct sasl_dovecot_handshake *)0)->mechlist];
	int learned;		/* mechs holds Dovecot's list (lock) */
	int probing;		/* a background connection is under way (atomic) */
	int64_t probe_after;	/* monotonic ms: no probe before (atomic) */
};

/* After a background connection failed, the next waits this long (each
 * failure is logged). */
#define AUTH_DOVECOT_PROBE_PAUSE_MS 10000

/* What a session keeps between the steps of an exchange. */
struct session_dovecot {
	struct sasl_dovecot *conn;	/* held between a challenge and the answer */
	char mech[64];			/* as the client named it, upper-cased */
};

static void
dovecot_conn_free(void *item)
{
	struct sasl_dovecot *c = item;

	sasl_dovecot_free(&c);
}

struct auth_dovecot *
auth_dovecot_new(const char *endpoint, unsigned timeout_ms, char *err, size_t errsize)
{
	struct auth_dovecot *d = xcalloc(1, sizeof *d);

	if (sasl_dovecot_spec_init(&d->spec, endpoint, err, errsize) != 0) {
		free(d);
		return NULL;
	}
	d->spec.timeout_ms = timeout_ms;
	idle_pool_init(&d->idle, AUTH_DOVECOT_IDLE_MAX, dovecot_conn_free);
	pthread_mutex_init(&d->lock, NULL);
	return d;
}

void
auth_dovecot_free(struct auth_dovecot **dp)
{
	struct auth_dovecot *d = *dp;

	*dp = NULL;
	if (d == NULL)
		return;
	idle_pool_destroy(&d->idle);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int
auth_dovecot_mechs(struct auth_dovecot *d, char *out, size_t outsize)
{
	int learned;

	pthread_mutex_lock(&d->lock);
	learned = d->learned;
	str_copy(out, learned ? d->mechs : AUTH_DOVECOT_FALLBACK_MECHS, outsize);
	pthread_mutex_unlock(&d->lock);
	return learned;
}

/* Is mech (upper case) among the mechanisms the EHLO line shows? */
static int
auth_dovecot_offers(struct auth_dovecot *d, const char *mech)
{
	char list[sizeof d->mechs], *cursor, *name;

	auth_dovecot_mechs(d, list, sizeof list);
	cursor = list;
	while ((name = strsep(&cursor, " ")) != NULL)
		if (strcasecmp(name, mech) == 0)
			return 1;
	return 0;
}

/* Pool thread: remembers what a connected handle was offered. */
static void
auth_dovecot_learn(struct auth_dovecot *d, const struct sasl_dovecot *c)
{
	const char *mechs = sasl_dovecot_mechs(c);

	if (mechs[0] == '\0')
		return;
	pthread_mutex_lock(&d->lock);
	str_copy(d->mechs, mechs, sizeof d->mechs);
	d->learned = 1;
	pthread_mutex_unlock(&d->lock);
}

static struct sasl_dovecot *
auth_dovecot_take(struct auth_dovecot *d)
{
	struct sasl_dovecot *c = idle_pool_take(&d->idle);

	return c != NULL ? c : sasl_dovecot_new(&d->spec);
}

/* ---- the background connection of a first EHLO ---- */

struct probe_job {
	struct offloop_job base;	/* first */
	struct runtime *rt;		/* keeps rt->dovecot */
};

static void
probe_run(struct offloop_job *job)
{
	struct probe_job *p = (struct probe_job *)(void *)job;
	struct auth_dovecot *d = p->rt->dovecot;
	struct sasl_dovecot *c = auth_dovecot_take(d);

	if (sasl_dovecot_connect(c) == 0)
		auth_dovecot_learn(d, c);
	else
		__atomic_store_n(&d->probe_after, time_mono_ms() + AUTH_DOVECOT_PROBE_PAUSE_MS,
		    __ATOMIC_RELAXED);
	idle_pool_give(&d->idle, c);
}

/* Pool thread, after run (or at the pool's stop): the job is done. */
static void
probe_post(struct offloop_sink *sink, struct offloop_job *job)
{
	struct probe_job *p = (struct probe_job *)(void *)job;

	(void)sink;
	__atomic_store_n(&p->rt->dovecot->probing, 0, __ATOMIC_RELEASE);
	runtime_unref(&p->rt);
	free(p);
}

static struct offloop_sink probe_sink = { probe_post };

static void
auth_dovecot_probe(struct runtime *rt, struct offloop *pool)
{
	struct probe_job *p;

	if (pool == NULL ||
	    time_mono_ms() < __atomic_load_n(&rt->dovecot->probe_after, __ATOMIC_RELAXED) ||
	    __atomic_exchange_n(&rt->dovecot->probing, 1, __ATOMIC_ACQ_REL))
		return;
	p = xcalloc(1, sizeof *p);
	p->rt = runtime_ref(rt);
	p->base.run = probe_run;
	p->base.sink = &probe_sink;
	if (offloop_submit(pool, &p->base) < 0)
		probe_post(&probe_sink, &p->base);
}

int
session_dovecot_mechanisms(struct smtp_session *s, char *out, size_t outsize)
{
	if (auth_dovecot_mechs(s->rt->dovecot, out, outsize))
		return 1;
	auth_dovecot_probe(s->rt, worker_pools(s->w)->filters);
	return 0;
}

/* ---- one step of an exchange ---- */

struct dovecot_job {
	struct session_job sj;		/* first */
	struct runtime *rt;		/* keeps rt->dovecot while it runs */
	struct sasl_dovecot *conn;	/* the job's while it runs */
	int start;			/* AUTH; else the answer to a challenge */
	int unknown_mech;		/* result: Dovecot does not offer mech */
	char mech[64];
	char *data;			/* initial response or answer (wiped) */
	char local_ip[64], remote_ip[64];
	uint16_t local_port, remote_port;
	int secured;
	struct sasl_dovecot_result res;	/* the result */
};

static void
dovecot_job_run(struct offloop_job *job)
{
	struct dovecot_job *j = (struct dovecot_job *)(void *)job;
	struct auth_dovecot *d = j->rt->dovecot;

	if (j->start) {
		struct sasl_dovecot_request rq = {
			.mech = j->mech, .initial = j->data, .service = "smtp",
			.local_ip = j->local_ip[0] ? j->local_ip : NULL,
			.remote_ip = j->remote_ip, .local_port = j->local_port,
			.remote_port = j->remote_port, .secured = j->secured,
		};

		if (sasl_dovecot_connect(j->conn) != 0) {
			j->res.status = SASL_DOVECOT_TEMPFAIL;
			str_copy(j->res.reason, "cannot connect", sizeof j->res.reason);
			goto done;
		}
		auth_dovecot_learn(d, j->conn);
		/* A mechanism Dovecot does not offer is the client's
		 * mistake (504), not a failed login. */
		if (!sasl_dovecot_has_mech(j->conn, j->mech)) {
			j->unknown_mech = 1;
			j->res.status = SASL_DOVECOT_FAIL;
			goto done;
		}
		sasl_dovecot_start(j->conn, &rq, &j->res);
	} else {
		sasl_dovecot_continue(j->conn, j->data, &j->res);
	}
done:
	if (j->data != NULL)
		explicit_bzero(j->data, strlen(j->data));
	if (j->res.status != SASL_DOVECOT_CONTINUE) {
		idle_pool_give(&d->idle, j->conn);
		j->conn = NULL;
	}
}

static void
dovecot_job_free(struct dovecot_job *j)
{
	/* Still here: the exchange is open, so the connection is closed. */
	sasl_dovecot_free(&j->conn);
	if (j->data != NULL) {
		explicit_bzero(j->data, strlen(j->data));
		free(j->data);
	}
	runtime_unref(&j->rt);
	explicit_bzero(&j->res, sizeof j->res);
	free(j);
}

static void
dovecot_job_release(struct session_job *sj)
{
	dovecot_job_free((struct dovecot_job *)(void *)sj);
}

static int
dovecot_job_finish(struct smtp_session *s, struct session_job *sj)
{
	struct dovecot_job *j = (struct dovecot_job *)(void *)sj;

	if (s->io.fd < 0)
		return -1;
	if (s->phase != PH_AUTH_CHECK)
		return session_continue(s);
	if (j->sj.base.cancelled) {
		session_auth_abort(s);
		session_reply(s, "454 4.7.0 Temporary authentication failure");
		return session_continue(s);
	}
	if (j->unknown_mech) {
		session_auth_abort(s);
		session_reply(s, "504 5.5.4 Unrecognized authentication type");
		session_error(s);
		return session_continue(s);
	}
	switch (j->res.status) {
	case SASL_DOVECOT_CONTINUE:
		s->dovecot->conn = j->conn;
		j->conn = NULL;
		s->phase = PH_AUTH;
		session_set_deadline(s);
		session_reply(s, "334 %s", j->res.challenge);
		break;
	case SASL_DOVECOT_OK:
		session_auth_abort(s);
		session_auth_succeeded(s, j->res.user);
		break;
	case SASL_DOVECOT_FAIL:
		session_auth_failed(s, j->res.user);
		break;
	case SASL_DOVECOT_INVALID:
		session_auth_abort(s);
		session_reply(s, "501 5.5.2 Error: invalid base64 data in SASL response");
		session_error(s);
		break;
	case SASL_DOVECOT_TEMPFAIL:
	default:
		session_auth_abort(s);
		log_warn("auth: dovecot: %s; [%s] told to retry", j->res.reason, s->peer_ip);
		session_reply(s, "454 4.7.0 Temporary authentication failure");
		break;
	}
	return session_continue(s);
}

/* Hands a step to the filter pool; data (may be NULL) is copied. */
static void
session_dovecot_step(struct smtp_session *s, int start, const char *data)
{
	struct dovecot_job *j = xcalloc(1, sizeof *j);
	struct sockaddr_storage local;
	socklen_t len = sizeof local;

	j->rt = runtime_ref(s->rt);
	j->start = start;
	str_copy(j->mech, s->dovecot->mech, sizeof j->mech);
	j->data = data != NULL ? xstrdup(data) : NULL;
	if (start) {
		j->conn = auth_dovecot_take(s->rt->dovecot);
		str_copy(j->remote_ip, s->peer_ip, sizeof j->remote_ip);
		j->remote_port = sockaddr_port((const struct sockaddr *)&s->peer);
		if (getsockname(s->io.fd, (struct sockaddr *)&local, &len) == 0) {
			sockaddr_ntop((const struct sockaddr *)&local, j->local_ip,
			    sizeof j->local_ip);
			j->local_port = sockaddr_port((const struct sockaddr *)&local);
		}
		/* What we let log in without TLS is secured in Dovecot's
		 * sense too (its disable_plaintext_auth). */
		j->secured = s->io.tls_active || config_client_may_auth_plaintext(s->cfg,
		    (const struct sockaddr *)&s->peer);
	} else {
		j->conn = s->dovecot->conn;
		s->dovecot->conn = NULL;
	}
	j->sj.base.run = dovecot_job_run;
	j->sj.finish = dovecot_job_finish;
	j->sj.release = dovecot_job_release;
	if (session_job_submit(s, worker_pools(s->w)->filters, &j->sj) < 0) {
		dovecot_job_free(j);
		log_warn("auth: filter pool busy; [%s] told to retry", s->peer_ip);
		session_auth_abort(s);
		session_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	s->phase = PH_AUTH_CHECK;
}

void
session_dovecot_start(struct smtp_session *s, const char *mech, const char *initial)
{
	size_t n = strlen(mech);

	if (s->dovecot == NULL)
		s->dovecot = xcalloc(1, sizeof *s->dovecot);
	if (n >= sizeof s->dovecot->mech || !auth_dovecot_offers(s->rt->dovecot, mech)) {
		session_reply(s, "504 5.5.4 Unrecognized authentication type");
		session_error(s);
		return;
	}
	for (size_t i = 0; i <= n; i++)
		s->dovecot->mech[i] = (char)toupper((unsigned char)mech[i]);
	s->auth_mech = s->dovecot->mech;
	session_dovecot_step(s, 1, initial);
}

void
session_dovecot_response(struct smtp_session *s, const char *line)
{
	if (s->dovecot == NULL || s->dovecot->conn == NULL) {
		session_auth_abort(s);
		session_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	if (strcmp(line, "*") == 0) {
		session_auth_abort(s);
		session_reply(s, "501 5.7.0 Authentication aborted");
		return;
	}
	session_dovecot_step(s, 0, line);
}

void
session_dovecot_drop(struct smtp_session *s)
{
	if (s->dovecot != NULL)
		sasl_dovecot_free(&s->dovecot->conn);
}

void
session_dovecot_free(struct smtp_session *s)
{
	session_dovecot_drop(s);
	free(s->dovecot);
	s->dovecot = NULL;
}
