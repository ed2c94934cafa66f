/*
 * smtp_ops: a session's part of operations. The hold rules
 * (server/hold.h) at the end of a message. Abuse control, the jobs of
 * Postfix's postscreen and anvil (README "Abuse control"):
 *  - at connect, the client's connection rate (server/ratelimit.h), then
 *    the DNSBL lookups (server/dnsbl.h, on a pool thread: they wait on
 *    the DNS) and the greeting test (greeting_delay, for clients the
 *    whitelist of server/pregreet.h does not know): the 220 goes out once
 *    both are over; a listed client gets 554 5.7.1 instead, a client that
 *    talks first 554 5.5.1;
 *  - at MAIL and RCPT, the client's message, recipient and
 *    unknown-recipient rates, or for an authenticated client its
 *    account's messages and distinct recipients of the day.
 * Clients in relay_networks are exempt from the client rates and the
 * DNSBL; an authenticated session counts against its account, not its
 * address. Every refusal is a 4.7.x (5.7.1 for a listing) reply, a log
 * line `reject: ...` and a count in mailserver_rejections_total.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/dnsbl.h"
#include "server/hold.h"
#include "server/pregreet.h"
#include "server/ratelimit.h"
#include "server/smtp_session_int.h"
#include "server/worker.h"

#define DNSBL_WAIT_MAX_MS 30000	/* the greeting never waits longer for lists */

unsigned
session_reply_reason(const char *reply)
{
	static const struct {
		const char *prefix;
		unsigned reason;
	} reasons[] = {
		{ "550 5.1.1", MR_UNKNOWN_RECIPIENT },
		{ "554 5.7.1", MR_RELAY_DENIED },
		{ "552", MR_MESSAGE_SIZE },
		{ "554 5.4.6", MR_MAIL_LOOP },
		{ "550 5.5.2", MR_BAD_CONTENT },
		{ "550 5.6.0", MR_BAD_CONTENT },
		{ "554 5.6.0", MR_BAD_CONTENT },
		{ "452 4.3.1", MR_QUEUE_FULL },
		{ "451 4.3.", MR_QUEUE_FULL },
	};

	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
		if (strncmp(reply, reasons[i].prefix, strlen(reasons[i].prefix)) == 0)
			return reasons[i].reason;
	return MR_OTHER;
}

static const struct sockaddr *
peer_of(const struct smtp_session *s)
{
	return (const struct sockaddr *)&s->peer;
}

/* A refusal by the rate limits: the reply, a log line, the count. */
static void
rate_refused(struct smtp_session *s, const char *what, int verdict)
{
	session_reply(s, "%s", ratelimit_reply(verdict));
	metrics_inc_label(M_REJECTIONS, ratelimit_metric_reason(verdict));
	if (s->auth_user[0] && (verdict == RATELIMIT_ACCOUNT_MESSAGES ||
	    verdict == RATELIMIT_ACCOUNT_RECIPIENTS))
		log_info("reject: %s from [%s]: %.9s %s of sasl_username=%s", what,
		    s->peer_ip, ratelimit_reply(verdict), ratelimit_verdict_text(verdict),
		    s->auth_user);
	else
		log_info("reject: %s from [%s]: %.9s %s", what, s->peer_ip,
		    ratelimit_reply(verdict), ratelimit_verdict_text(verdict));
}

/* ---- the greeting ---- */

static void
session_greet(struct smtp_session *s)
{
	s->phase = PH_COMMAND;
	session_reply(s, "220 %s ESMTP mailserver", s->cfg->hostname);
	session_set_deadline(s);
}

void
session_pregreet(struct smtp_session *s)
{
	log_info("pregreet from [%s]: refused", s->peer_ip);
	session_reply(s, "554 5.5.1 Error: SMTP protocol synchronization");
	metrics_inc_label(M_REJECTIONS, MR_PREGREET);
	if (worker_pools(s->w)->greeted != NULL)
		pregreet_forget(worker_pools(s->w)->greeted, peer_of(s));
	s->phase = PH_CLOSING;
	session_io_discard_input(&s->io);
}

int
session_greet_due(struct smtp_session *s, int64_t now)
{
	struct pregreet *greeted = worker_pools(s->w)->greeted;

	if (now < s->greet_at)
		return 0;
	if (s->dnsbl_job != NULL) {
		if (now < s->dnsbl_deadline)
			return 0;
		log_info("dnsbl: no answer about [%s] in time; not refused", s->peer_ip);
		session_job_abandon(s, s->dnsbl_job);
		s->dnsbl_job = NULL;
	}
	if (s->dnsbl_refusal != NULL) {
		session_reply(s, "%s", s->dnsbl_refusal);
		metrics_inc_label(M_REJECTIONS, MR_DNSBL);
		s->phase = PH_CLOSING;
		return 1;
	}
	/* The client stayed silent through the delay: it passed. */
	if (s->greet_delayed && greeted != NULL)
		pregreet_pass(greeted, peer_of(s), now, s->cfg->pregreet_ttl);
	session_greet(s);
	return 1;
}

/* ---- DNSBL ---- */

struct dnsbl_job {
	struct session_job sj;		/* first */
	struct runtime *rt;		/* keeps the lists and the resolver */
	struct sockaddr_storage peer;
	int listed;			/* the results */
	int temp;			/* a list did not answer */
	char reply[300];
	char zones[512];
};

static void
dnsbl_job_run(struct offloop_job *job)
{
	struct dnsbl_job *d = (struct dnsbl_job *)(void *)job;
	const struct sockaddr *sa = (const struct sockaddr *)&d->peer;
	struct dnsbl_verdict v;

	d->listed = dnsbl_check(d->rt->dnsbl, d->rt->dnsbl_dns, sa, time_mono_ms(), &v);
	d->temp = v.temp;
	if (d->listed) {
		dnsbl_reply(d->rt->dnsbl, &v, sa, d->reply, sizeof d->reply);
		dnsbl_verdict_text(d->rt->dnsbl, &v, d->zones, sizeof d->zones);
	}
}

static void
dnsbl_job_free(struct dnsbl_job *d)
{
	runtime_unref(&d->rt);
	free(d);
}

static void
dnsbl_job_release(struct session_job *j)
{
	dnsbl_job_free((struct dnsbl_job *)(void *)j);
}

static int
dnsbl_job_finish(struct smtp_session *s, struct session_job *j)
{
	struct dnsbl_job *d = (struct dnsbl_job *)(void *)j;

	s->dnsbl_job = NULL;
	if (s->io.fd < 0)
		return -1;
	if (!j->base.cancelled && d->listed) {
		log_info("reject: connect from [%s]: %s (%s)", s->peer_ip, d->reply, d->zones);
		free(s->dnsbl_refusal);
		s->dnsbl_refusal = xstrdup(d->reply);
	} else if (!j->base.cancelled && d->temp) {
		log_info("dnsbl: no answer about [%s] from some lists; not refused",
		    s->peer_ip);
	}
	if (s->phase == PH_GREET_WAIT)
		session_greet_due(s, time_mono_ms());
	return session_continue(s);
}

/* Asks the lists about the client off the loop; the greeting waits for
 * the answer, up to the lookups' own bound. */
static void
session_dnsbl_start(struct smtp_session *s)
{
	struct dnsbl_job *d = xcalloc(1, sizeof *d);
	int64_t wait = (int64_t)s->cfg->dns_timeout * s->cfg->dns_attempts * 1000 *
	    (int64_t)dnsbl_nzones(s->rt->dnsbl) + 500;

	d->rt = runtime_ref(s->rt);
	memcpy(&d->peer, &s->peer, sizeof d->peer);
	d->sj.base.run = dnsbl_job_run;
	d->sj.finish = dnsbl_job_finish;
	d->sj.release = dnsbl_job_release;
	if (session_job_submit(s, worker_pools(s->w)->lookups, &d->sj) < 0) {
		log_warn("dnsbl: the lookup pool is full; [%s] not checked", s->peer_ip);
		dnsbl_job_free(d);
		return;
	}
	s->dnsbl_job = &d->sj;
	s->dnsbl_deadline = time_mono_ms() + (wait < DNSBL_WAIT_MAX_MS ? wait :
	    DNSBL_WAIT_MAX_MS);
	worker_timer_hint(s->w, s->dnsbl_deadline);
}

/* ---- at connect ---- */

void
session_admit(struct smtp_session *s)
{
	const struct worker_pools *wp = worker_pools(s->w);
	int64_t now = time_mono_ms();
	int v;
	char c;

	s->rate_exempt = config_client_may_relay(s->cfg, peer_of(s));
	if (!s->rate_exempt && wp->rates != NULL &&
	    (v = ratelimit_connect(wp->rates, peer_of(s), now)) != RATELIMIT_OK) {
		rate_refused(s, "connect", v);
		s->phase = PH_CLOSING;
		return;
	}
	if (s->kind == LISTEN_SMTP && !s->rate_exempt && s->rt->dnsbl != NULL)
		session_dnsbl_start(s);
	/* The greeting test, as postscreen's: on smtp listeners (users
	 * submit on any network; the smtps greeting follows the TLS
	 * handshake, where an early talker cannot be told apart), for
	 * clients neither trusted nor known to have waited before. */
	if (s->kind == LISTEN_SMTP && !s->rate_exempt && s->cfg->greeting_delay > 0 &&
	    (wp->greeted == NULL || !pregreet_known(wp->greeted, peer_of(s), now))) {
		s->greet_delayed = 1;
		s->greet_at = now + (int64_t)s->cfg->greeting_delay * 1000;
		worker_timer_hint(s->w, s->greet_at);
	}
	if (s->greet_delayed || s->dnsbl_job != NULL) {
		s->phase = PH_GREET_WAIT;
		return;
	}
	if (s->kind != LISTEN_SMTPS &&
	    recv(s->io.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
		session_pregreet(s);
		return;
	}
	session_greet(s);
}

/* ---- MAIL and RCPT ---- */

/* The account's key: its name in lower case. */
static void
account_key(const struct smtp_session *s, char *out, size_t outsize)
{
	str_copy(out, s->auth_user, outsize);
	str_lower(out);
}

int
session_rate_mail(struct smtp_session *s)
{
	struct ratelimit *rates = worker_pools(s->w)->rates;
	char account[RATELIMIT_NAME_MAX + 1];
	int64_t now = time_mono_ms();
	int v = RATELIMIT_OK;

	if (rates == NULL)
		return 0;
	if (s->auth_user[0]) {
		account_key(s, account, sizeof account);
		v = ratelimit_account_message(rates, account, now);
	} else if (!s->rate_exempt) {
		v = ratelimit_message(rates, peer_of(s), now);
	}
	if (v == RATELIMIT_OK)
		return 0;
	rate_refused(s, "MAIL", v);
	return 1;
}

int
session_rate_rcpt(struct smtp_session *s, const char *addr)
{
	struct ratelimit *rates = worker_pools(s->w)->rates;
	char account[RATELIMIT_NAME_MAX + 1], rcpt[1024];
	int64_t now = time_mono_ms();
	int v = RATELIMIT_OK;

	if (rates == NULL)
		return 0;
	if (s->auth_user[0]) {
		account_key(s, account, sizeof account);
		str_copy(rcpt, addr, sizeof rcpt);
		v = ratelimit_account_recipient(rates, account, str_lower(rcpt), now);
	} else if (!s->rate_exempt) {
		v = ratelimit_recipient(rates, peer_of(s), now);
	}
	if (v == RATELIMIT_OK)
		return 0;
	rate_refused(s, "RCPT", v);
	return 1;
}

void
session_rate_unknown(struct smtp_session *s)
{
	struct ratelimit *rates = worker_pools(s->w)->rates;

	if (rates != NULL && !s->auth_user[0] && !s->rate_exempt &&
	    ratelimit_unknown_recipient(rates, peer_of(s), time_mono_ms()) != RATELIMIT_OK)
		log_info("client [%s] reached its unknown recipient rate: further RCPTs "
		    "are refused for now", s->peer_ip);
}

/* ---- hold rules ---- */

int
session_hold_check(struct smtp_session *s, const struct envelope *env)
{
	const char **rcpts = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof *rcpts);
	struct hold_msg m = {
		.sender = env->sender,
		.rcpts = rcpts,
		.nrcpts = env->nrcpts,
		.client = peer_of(s),
		.auth_user = s->auth_user,
	};
	char why[600];
	int held;

	for (size_t i = 0; i < env->nrcpts; i++)
		rcpts[i] = env->rcpts[i].addr;
	held = hold_match(s->cfg, worker_pools(s->w)->accounts, &m, time(NULL), why,
	    sizeof why);
	free(rcpts);
	free(s->hold_why);
	s->hold_why = NULL;
	if (held) {
		char id[QUEUE_ID_LEN + 1];

		log_info("%s: held: %s", queue_id_format(env->id, id, sizeof id), why);
		s->hold_why = xstrdup(why);
	}
	return held;
}

void
session_abuse_free(struct smtp_session *s)
{
	free(s->dnsbl_refusal);
	s->dnsbl_refusal = NULL;
	free(s->hold_why);
	s->hold_why = NULL;
}
