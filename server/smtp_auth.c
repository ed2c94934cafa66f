/*
 * smtp_auth: AUTH (RFC 4954) against users_file: the command, the SASL
 * exchange (smtp_sasl.h), the password check on the password pool, and
 * the throttle of failed logins (auth_throttle.h). With auth_service =
 * dovecot:... the exchange goes to Dovecot instead (smtp_auth_dovecot.c);
 * the command's checks, the throttle and the log lines are the same.
 *
 * A password hash (crypt) can cost tens of milliseconds or more by design,
 * so it never runs on the event loop, where it would stall every session
 * of the worker: the session hands user and password to an off-loop job,
 * holds its input meanwhile, and goes on when the job comes back. AUTH is
 * offered inside TLS, or in clear only to auth_plaintext_networks.
 *
 * Log lines (for fail2ban-style tools, README "Logs"):
 *   auth: client=[IP] sasl_method=M sasl_username=U
 *   auth failed: client=[IP] sasl_method=M sasl_username=U failures=N
 *   auth blocked: client=[IP] ...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/auth_throttle.h"
#include "server/smtp_session_int.h"
#include "server/worker.h"

struct auth_job {
	struct session_job sj;		/* first */
	struct runtime *rt;		/* keeps the users loaded while it runs */
	char user[SMTP_SASL_USER_MAX + 1];
	char pass[SMTP_SASL_PASS_MAX + 1];
	int ok;				/* the result, written by run */
};

int
session_auth_offered(const struct smtp_session *s)
{
	return s->auth_user[0] == '\0' &&
	    (s->io.tls_active || config_client_may_auth_plaintext(s->cfg,
	    (const struct sockaddr *)&s->peer));
}

static void
session_auth_limits(const struct smtp_session *s, struct auth_throttle_limits *lim)
{
	lim->delay_ms = (int64_t)s->cfg->auth_fail_delay * 1000;
	lim->limit = s->cfg->auth_fail_limit;
	lim->block_ms = (int64_t)s->cfg->auth_block_time * 1000;
}

static void
session_auth_done(struct smtp_session *s)
{
	smtp_sasl_clear(&s->sasl);
	session_dovecot_drop(s);
	s->phase = PH_COMMAND;
	session_set_deadline(s);
}

void
session_auth_abort(struct smtp_session *s)
{
	session_auth_done(s);
}

void
session_auth_mechanisms(struct smtp_session *s, char *out, size_t outsize)
{
	if (s->rt->dovecot != NULL)
		session_dovecot_mechanisms(s, out, outsize);
	else
		str_copy(out, SMTP_SASL_MECHANISMS, outsize);
}

int
session_sender_owned(const struct smtp_session *s, const char *sender)
{
	const struct config *cfg = s->cfg;
	char addr[sizeof s->auth_user + 256];

	if (userdb_sender_owned(s->rt->udb, s->auth_user, sender))
		return 1;
	if (s->rt->dovecot == NULL || strchr(s->auth_user, '@') != NULL)
		return 0;
	for (size_t i = 0; i < cfg->nlocal_domains; i++) {
		snprintf(addr, sizeof addr, "%s@%s", s->auth_user, cfg->local_domains[i]);
		if (userdb_sender_owned(s->rt->udb, addr, sender))
			return 1;
	}
	return 0;
}

/* A failed login: throttled, logged, answered (maybe later). */
void
session_auth_failed(struct smtp_session *s, const char *user)
{
	struct auth_throttle_limits lim;
	int64_t now = time_mono_ms(), delay;
	unsigned failures;
	int blocked;

	session_auth_done(s);
	metrics_inc_label(M_AUTH, MA_FAILURE);
	session_auth_limits(s, &lim);
	delay = auth_throttle_failed((const struct sockaddr *)&s->peer, now, &lim,
	    &failures, &blocked);
	log_info("auth failed: client=[%s] sasl_method=%s sasl_username=%s failures=%u",
	    s->peer_ip, s->auth_mech, user, failures);
	if (blocked) {
		log_info("auth blocked: client=[%s] for %us after %u failed logins",
		    s->peer_ip, s->cfg->auth_block_time, failures);
		session_reply(s, "421 4.7.0 %s Error: too many failed logins, try again later",
		    s->cfg->hostname);
		s->phase = PH_CLOSING;
		return;
	}
	if (session_error(s))
		return;
	if (delay > 0) {
		/* The answer waits; so does everything the client sent after. */
		s->phase = PH_AUTH_DELAY;
		s->wake = now + delay;
		worker_timer_hint(s->w, s->wake);
		return;
	}
	session_reply(s, "535 5.7.8 Error: authentication failed");
}

void
session_auth_succeeded(struct smtp_session *s, const char *user)
{
	str_copy(s->auth_user, user, sizeof s->auth_user);
	s->may_relay = 1;
	auth_throttle_succeeded((const struct sockaddr *)&s->peer);
	metrics_inc_label(M_AUTH, MA_SUCCESS);
	s->trace_auth_us = session_trace_now();
	log_info("auth: client=[%s] sasl_method=%s sasl_username=%s",
	    s->peer_ip, s->auth_mech, user);
	session_reply(s, "235 2.7.0 Authentication successful");
}

void
session_auth_delay_over(struct smtp_session *s)
{
	s->phase = PH_COMMAND;
	session_set_deadline(s);
	session_reply(s, "535 5.7.8 Error: authentication failed");
}

static void
auth_job_run(struct offloop_job *job)
{
	struct auth_job *a = (struct auth_job *)(void *)job;

	a->ok = userdb_check_password(a->rt->udb, a->user, a->pass);
	explicit_bzero(a->pass, sizeof a->pass);
}

static void
auth_job_free(struct auth_job *a)
{
	runtime_unref(&a->rt);
	explicit_bzero(a, sizeof *a);
	free(a);
}

static void
auth_job_release(struct session_job *j)
{
	auth_job_free((struct auth_job *)(void *)j);
}

static int
auth_job_finish(struct smtp_session *s, struct session_job *j)
{
	struct auth_job *a = (struct auth_job *)(void *)j;

	if (s->io.fd < 0)
		return -1;
	if (s->phase != PH_AUTH_CHECK)
		return session_continue(s);
	if (a->sj.base.cancelled) {
		session_auth_done(s);
		session_reply(s, "454 4.7.0 Temporary authentication failure");
	} else if (a->ok) {
		session_auth_done(s);
		session_auth_succeeded(s, a->user);
	} else {
		session_auth_failed(s, a->user);
	}
	return session_continue(s);
}

/* The credentials are complete: check them off the loop. */
static void
session_auth_check(struct smtp_session *s)
{
	struct auth_job *a = xcalloc(1, sizeof *a);

	memcpy(a->user, s->sasl.user, sizeof a->user);
	memcpy(a->pass, s->sasl.pass, sizeof a->pass);
	smtp_sasl_clear(&s->sasl);
	a->rt = runtime_ref(s->rt);
	a->sj.base.run = auth_job_run;
	a->sj.finish = auth_job_finish;
	a->sj.release = auth_job_release;
	if (session_job_submit(s, worker_pools(s->w)->passwords, &a->sj) < 0) {
		auth_job_free(a);
		log_warn("auth: password pool busy; [%s] told to retry", s->peer_ip);
		session_auth_done(s);
		session_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	s->phase = PH_AUTH_CHECK;
}

static void
session_sasl_result(struct smtp_session *s, enum smtp_sasl_result r)
{
	switch (r) {
	case SMTP_SASL_CHALLENGE:
		s->phase = PH_AUTH;
		session_reply(s, "334 %s", s->sasl.challenge);
		break;
	case SMTP_SASL_CHECK:
		session_auth_check(s);
		break;
	case SMTP_SASL_BAD_BASE64:
		session_auth_done(s);
		session_reply(s, "501 5.5.2 Error: invalid base64 data in SASL response");
		session_error(s);
		break;
	case SMTP_SASL_MALFORMED:
		session_auth_failed(s, "");
		break;
	case SMTP_SASL_CANCELLED:
		session_auth_done(s);
		session_reply(s, "501 5.7.0 Authentication aborted");
		break;
	case SMTP_SASL_UNKNOWN:
	default:
		session_auth_done(s);
		session_reply(s, "504 5.5.4 Unrecognized authentication type");
		session_error(s);
		break;
	}
}

void
session_auth_response(struct smtp_session *s, const char *line)
{
	if (s->rt->dovecot != NULL) {
		session_dovecot_response(s, line);
		return;
	}
	session_sasl_result(s, smtp_sasl_step(&s->sasl, line));
}

void
session_cmd_auth(struct smtp_session *s, const char *arg)
{
	struct auth_throttle_limits lim;
	char mech[32];
	size_t n = strcspn(arg, " ");
	int64_t left;

	if (!s->esmtp) {
		session_bad_sequence(s, "send EHLO first");
		return;
	}
	if (s->auth_user[0]) {
		session_bad_sequence(s, "already authenticated");
		return;
	}
	if (s->in_txn) {
		session_bad_sequence(s, "MAIL transaction in progress");
		return;
	}
	if (!session_auth_offered(s)) {
		session_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		session_error(s);
		return;
	}
	session_auth_limits(s, &lim);
	left = auth_throttle_blocked((const struct sockaddr *)&s->peer, time_mono_ms(), &lim);
	if (left > 0) {
		log_info("auth blocked: client=[%s] refused, %llds left", s->peer_ip,
		    (long long)(left + 999) / 1000);
		session_reply(s, "421 4.7.0 %s Error: too many failed logins, try again later",
		    s->cfg->hostname);
		s->phase = PH_CLOSING;
		return;
	}
	if (n == 0 || n >= sizeof mech) {
		session_reply(s, "501 5.5.4 Syntax: AUTH mechanism");
		session_error(s);
		return;
	}
	memcpy(mech, arg, n);
	mech[n] = '\0';
	if (s->rt->dovecot != NULL) {
		session_dovecot_start(s, mech, arg[n] ? arg + n + 1 : NULL);
		return;
	}
	s->auth_mech = strcasecmp(mech, "PLAIN") == 0 ? "PLAIN" : "LOGIN";
	session_sasl_result(s, smtp_sasl_start(&s->sasl, mech,
	    arg[n] ? arg + n + 1 : NULL));
}
