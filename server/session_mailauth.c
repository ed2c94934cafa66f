/*
 * session_mailauth: a session's side of mail authentication (README "Mail
 * authentication"; the checks are auth/, the verdict auth/mailauth.h).
 *
 * Mail from outside (not relay_networks, not authenticated), with
 * auth_checks: SPF is checked at MAIL FROM, off the loop, before the 250
 * (a fail can be refused there); the DKIM verifier takes the content as
 * it streams in (smtp_message's tap), and at the end of data the keys and
 * the DMARC policy are looked up off the loop. The message then carries
 * our Authentication-Results field, and any field that claimed our
 * authserv-id is gone (RFC 8601 5), or it is refused.
 *
 * Mail of our own users and of relay_networks whose From: domain has a
 * dkim_sign key (for a user without auth_any_sender, only the domain of
 * its login or of its MAIL FROM): the signer takes the content as it
 * streams in (with the Date and Message-ID that submission adds), and at
 * the end of data the signatures are made off the loop and put on top of
 * the message, once, before it is queued.
 *
 * Our own mail loses Authentication-Results fields that claim our
 * authserv-id too (RFC 8601 5: our users are not a trusted MTA).
 *
 * Either way the work is one job per message on a pool; the session holds
 * its input meanwhile (PH_MAILAUTH), then goes on to the policy services
 * and the commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "auth/authres.h"
#include "auth/dkim.h"
#include "auth/dkim_keyring.h"
#include "auth/header.h"
#include "auth/mailauth.h"
#include "auth/spf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/smtp_session_int.h"
#include "server/worker.h"

/* What a session keeps for the transaction. */
struct session_mailauth {
	int spf_done;			/* spf holds MAIL FROM's outcome */
	struct spf_outcome spf;
	struct dkim_verifier *verifier;	/* the message being received, checked */
	struct dkim_signer *signer;	/* the message being received, signed */
};

enum mailauth_job_kind { JOB_SPF, JOB_CHECK, JOB_SIGN };

struct mailauth_job {
	struct session_job sj;		/* first */
	struct runtime *rt;		/* keeps the resolver and keys */
	enum mailauth_job_kind kind;
	struct mailauth_policy policy;
	char authserv_id[256];
	/* JOB_SPF */
	struct spf_request rq;
	char helo[256], sender[SMTP_PATH_MAX], receiver[256];
	struct spf_outcome spf;		/* the result; JOB_CHECK: an input */
	int spf_done;
	/* JOB_CHECK */
	struct dkim_verifier *verifier;	/* owned */
	unsigned sample;
	struct mailauth_result res;
	/* JOB_SIGN */
	struct dkim_signer *signer;	/* owned */
	struct buf sigs;		/* the DKIM-Signature fields */
	char from_domain[256];
	int restricted;			/* a user without auth_any_sender: */
	char own[2][256];		/* sign only for these From: domains */
	char err[256];
	int signed_ok;
};

static void mailauth_act(struct smtp_session *s, struct mailauth_job *j);

static struct session_mailauth *
mailauth_get(struct smtp_session *s)
{
	if (s->mailauth == NULL)
		s->mailauth = xcalloc(1, sizeof *s->mailauth);
	return s->mailauth;
}

/* Are this session's messages checked? */
static int
mailauth_checks(const struct smtp_session *s)
{
	return s->cfg->auth_checks && !s->may_relay && s->rt->auth_dns != NULL;
}

/* Are they signed (when their From: domain has a key)? */
static int
mailauth_signs(const struct smtp_session *s)
{
	return s->may_relay && s->rt->dkim_keys != NULL;
}

static void
mailauth_job_free(struct mailauth_job *j)
{
	dkim_verifier_free(&j->verifier);
	dkim_signer_free(&j->signer);
	buf_free(&j->res.header);
	buf_free(&j->sigs);
	runtime_unref(&j->rt);
	free(j);
}

static void
mailauth_job_release(struct session_job *sj)
{
	mailauth_job_free((struct mailauth_job *)(void *)sj);
}

static void
mailauth_job_run(struct offloop_job *job)
{
	struct mailauth_job *j = (struct mailauth_job *)(void *)job;
	struct dkim_key *keys[DKIM_KEYRING_PER_DOMAIN];
	const char *h;
	size_t hlen, nkeys;

	switch (j->kind) {
	case JOB_SPF:
		spf_check_mailfrom(j->rt->auth_dns, &j->rq, NULL, &j->spf);
		break;
	case JOB_CHECK:
		mailauth_check_message(j->rt->auth_dns, &j->policy, j->verifier,
		    j->spf_done ? &j->spf : NULL, j->sample, &j->res);
		break;
	case JOB_SIGN:
		h = dkim_signer_headers(j->signer, &hlen);
		if (auth_header_from_domain(h, hlen, j->from_domain,
		    sizeof j->from_domain) != 0)
			break;
		if (j->restricted && strcasecmp(j->from_domain, j->own[0]) != 0 &&
		    strcasecmp(j->from_domain, j->own[1]) != 0) {
			snprintf(j->err, sizeof j->err, "the From: domain is neither "
			    "the user's nor the sender's");
			break;
		}
		nkeys = dkim_keyring_find(j->rt->dkim_keys, j->from_domain, keys);
		if (nkeys == 0)
			break;
		buf_init(&j->sigs, 8 * 1024);
		j->signed_ok = dkim_signer_finish(j->signer, keys, nkeys, &j->sigs,
		    j->err, sizeof j->err) == 0;
		if (!j->signed_ok)
			buf_reset(&j->sigs);
		break;
	}
}

static struct mailauth_job *
mailauth_job_new(struct smtp_session *s, enum mailauth_job_kind kind)
{
	struct mailauth_job *j = xcalloc(1, sizeof *j);

	j->rt = runtime_ref(s->rt);
	j->kind = kind;
	str_copy(j->authserv_id, s->cfg->authserv_id, sizeof j->authserv_id);
	j->policy.authserv_id = j->authserv_id;
	j->policy.spf_reject = s->cfg->spf_reject;
	j->policy.dmarc_reject = s->cfg->dmarc_reject;
	j->policy.tempfail_defer = s->cfg->auth_tempfail_defer;
	return j;
}

/* ---- MAIL FROM: SPF ---- */

static void
mailauth_spf_act(struct smtp_session *s, struct mailauth_job *j)
{
	struct session_mailauth *ma = mailauth_get(s);
	char reply[MAILAUTH_REPLY_MAX];

	s->phase = PH_COMMAND;
	session_set_deadline(s);
	ma->spf = j->spf;
	ma->spf_done = 1;
	if (mailauth_spf_verdict(&j->policy, &j->spf, reply, sizeof reply) != 0) {
		session_reply(s, "%s", reply);
		log_info("reject: MAIL from [%s]: spf=%s <%s>: %s", s->peer_ip,
		    spf_result_name(j->spf.result), s->mail.addr, reply);
		queue_stats_add_rejected(1);
		metrics_inc_label(M_REJECTIONS, MR_SENDER_AUTH);
		memset(&s->mail, 0, sizeof s->mail);
		ma->spf_done = 0;
		return;
	}
	session_mail_accepted(s);
}

static int
mailauth_job_finish(struct smtp_session *s, struct session_job *sj)
{
	struct mailauth_job *j = (struct mailauth_job *)(void *)sj;

	if (s->io.fd < 0)
		return -1;
	if (s->phase != PH_MAILAUTH)
		return session_continue(s);
	if (j->sj.base.cancelled) {
		s->phase = PH_CLOSING;
		session_reply(s, "421 4.3.2 Server shutting down");
		return session_continue(s);
	}
	switch (j->kind) {
	case JOB_SPF:
		mailauth_spf_act(s, j);
		break;
	case JOB_CHECK:
	case JOB_SIGN:
		mailauth_act(s, j);
		break;
	}
	return session_continue(s);
}

/* Hands j to pool; -1 when the pool refused it (j is then freed). */
static int
mailauth_submit(struct smtp_session *s, struct mailauth_job *j,
    struct offloop *pool)
{
	j->sj.base.run = mailauth_job_run;
	j->sj.finish = mailauth_job_finish;
	j->sj.release = mailauth_job_release;
	s->phase = PH_MAILAUTH;
	if (session_job_submit(s, pool, &j->sj) == 0)
		return 0;
	s->phase = PH_COMMAND;
	mailauth_job_free(j);
	return -1;
}

int
session_mailauth_mail(struct smtp_session *s)
{
	struct mailauth_job *j;

	if (!mailauth_checks(s))
		return 0;
	j = mailauth_job_new(s, JOB_SPF);
	str_copy(j->helo, s->helo, sizeof j->helo);
	str_copy(j->sender, s->mail.addr, sizeof j->sender);
	str_copy(j->receiver, s->cfg->hostname, sizeof j->receiver);
	if (auth_ip_from_sockaddr((const struct sockaddr *)&s->peer, &j->rq.ip) != 0) {
		mailauth_job_free(j);
		return 0;
	}
	j->rq.helo = j->helo;
	j->rq.sender = j->sender;
	j->rq.receiver = j->receiver;
	j->rq.now = time(NULL);
	if (mailauth_submit(s, j, worker_pools(s->w)->lookups) == 0)
		return 1;
	session_reply(s, "451 4.3.2 Too busy to check the sender; try again later");
	log_warn("mailauth: lookup pool busy; MAIL from [%s] deferred", s->peer_ip);
	memset(&s->mail, 0, sizeof s->mail);
	return 1;
}

/* ---- the message: the tap, the end of data ---- */

static void
mailauth_tap(void *arg, const char *p, size_t n)
{
	struct session_mailauth *ma = arg;

	if (ma->verifier != NULL)
		dkim_verifier_update(ma->verifier, p, n);
	if (ma->signer != NULL)
		dkim_signer_update(ma->signer, p, n);
}

void
session_mailauth_begin(struct smtp_session *s, struct smtp_message_info *info)
{
	struct session_mailauth *ma;

	if (!mailauth_checks(s) && !mailauth_signs(s))
		return;
	ma = mailauth_get(s);
	dkim_verifier_free(&ma->verifier);
	dkim_signer_free(&ma->signer);
	if (mailauth_checks(s))
		ma->verifier = dkim_verifier_new(NULL);
	else
		ma->signer = dkim_signer_new(NULL);
	info->tap = mailauth_tap;
	info->tap_arg = ma;
}

/* Removes the Authentication-Results fields that claim our authserv-id
 * (RFC 8601 5). Returns 0, or -1 when the header section is too large to
 * be edited (then the message is refused: the field could be forged). */
static int
mailauth_strip(struct smtp_session *s)
{
	const char *h;
	size_t len;
	struct buf out;
	int n, rc = 0;

	if (smtp_message_header(s->msg, &h, &len) != 0)
		return -1;
	buf_init(&out, len + 1);
	n = authres_strip(h, len, s->cfg->authserv_id, &out);
	if (n > 0) {
		rc = smtp_message_replace_header(s->msg, out.data ? out.data : "", out.len);
		log_info("mailauth: %d Authentication-Results field%s claiming %s "
		    "removed from a message of [%s]", n, n == 1 ? "" : "s",
		    s->cfg->authserv_id, s->peer_ip);
	}
	buf_free(&out);
	return n < 0 ? -1 : rc;
}

int
session_mailauth_end_message(struct smtp_session *s)
{
	struct session_mailauth *ma = s->mailauth;
	struct mailauth_job *j;
	const char *added;

	/* Our own users' mail is not checked, but a field in it claiming our
	 * authserv-id is no more ours than one from outside (RFC 8601 5): a
	 * user could forge a verdict for another user to read. It goes too;
	 * when the header section cannot be edited, the mail goes on (it is
	 * our users' and relay_networks', refused only if checked). */
	if (s->may_relay && s->cfg->auth_checks && mailauth_strip(s) != 0)
		log_warn("mailauth: a message of [%s] has a header section too "
		    "large to remove Authentication-Results fields claiming %s",
		    s->peer_ip, s->cfg->authserv_id);
	if (ma == NULL || (ma->verifier == NULL && ma->signer == NULL))
		return session_policy_end_message(s);
	if (ma->verifier != NULL) {
		if (mailauth_strip(s) != 0) {
			session_message_refused(s, "552 5.3.4 Message header section too large");
			return 1;
		}
		j = mailauth_job_new(s, JOB_CHECK);
		j->verifier = ma->verifier;
		ma->verifier = NULL;
		j->spf_done = ma->spf_done;
		j->spf = ma->spf;
		if (getrandom(&j->sample, sizeof j->sample, 0) != sizeof j->sample)
			j->sample = (unsigned)time_mono_ms();
		j->sample %= 100;
		if (mailauth_submit(s, j, worker_pools(s->w)->lookups) != 0) {
			log_warn("mailauth: lookup pool busy; a message of [%s] deferred",
			    s->peer_ip);
			session_message_refused(s, "451 4.3.2 Too busy to check the "
			    "message; try again later");
		}
		return 1;
	}
	j = mailauth_job_new(s, JOB_SIGN);
	j->signer = ma->signer;
	ma->signer = NULL;
	/* A user signs for its own domain, or its sender's (which it owns,
	 * checked at MAIL), never for another domain the server keys: one
	 * tenant's user must not get DMARC-passing mail "from" another. */
	if (s->auth_user[0] != '\0' &&
	    !config_user_may_send_any(s->cfg, s->auth_user)) {
		const char *at = strrchr(s->auth_user, '@');
		j->restricted = 1;
		if (at != NULL)
			str_copy(j->own[0], at + 1, sizeof j->own[0]);
		if ((at = strrchr(s->mail.addr, '@')) != NULL)
			str_copy(j->own[1], at + 1, sizeof j->own[1]);
	}
	added = smtp_message_added_fields(s->msg);
	if (added[0] != '\0')
		dkim_signer_add_fields(j->signer, added, strlen(added));
	if (mailauth_submit(s, j, worker_pools(s->w)->passwords) != 0) {
		log_warn("mailauth: signing pool busy; a message of [%s] deferred",
		    s->peer_ip);
		session_message_refused(s, "451 4.3.2 Too busy to sign the message; "
		    "try again later");
	}
	return 1;
}

static void
mailauth_act(struct smtp_session *s, struct mailauth_job *j)
{
	char id[QUEUE_ID_LEN + 1], summary[512];

	s->phase = PH_COMMAND;
	session_set_deadline(s);
	queue_id_format(s->qid, id, sizeof id);
	if (j->kind == JOB_SIGN) {
		if (j->signed_ok) {
			if (smtp_message_prepend(s->msg, j->sigs.data) != 0)
				log_warn("%s: no room for the DKIM signature; sent unsigned", id);
			else {
				log_info("%s: dkim: signed for %s", id, j->from_domain);
				session_trace_note(s, "dkim", "signed for %s", j->from_domain);
			}
		} else if (j->err[0] != '\0') {
			log_warn("%s: dkim: not signed for %s: %s", id, j->from_domain, j->err);
		}
		if (session_policy_end_message(s))
			return;
		session_commit(s);
		return;
	}
	mailauth_summary(j->spf_done ? &j->spf : NULL, &j->res, summary, sizeof summary);
	if (j->res.refused) {
		log_info("%s: mailauth: %s from=<%s> header.from=%s [%s]", id, summary,
		    s->mail.addr, j->res.from_domain, s->peer_ip);
		session_message_refused_reason(s, j->res.reply, MR_SENDER_AUTH);
		return;
	}
	log_info("%s: mailauth: %s header.from=%s", id, summary, j->res.from_domain);
	session_trace_note(s, "mailauth", "%s header.from=%s", summary, j->res.from_domain);
	if (j->res.header.len > 0 &&
	    smtp_message_prepend(s->msg, j->res.header.data) != 0)
		log_warn("%s: no room for the Authentication-Results field", id);
	if (session_policy_end_message(s))
		return;
	session_commit(s);
}

void
session_mailauth_txn_reset(struct smtp_session *s)
{
	struct session_mailauth *ma = s->mailauth;

	if (ma == NULL)
		return;
	dkim_verifier_free(&ma->verifier);
	dkim_signer_free(&ma->signer);
	ma->spf_done = 0;
}

void
session_mailauth_free(struct smtp_session *s)
{
	session_mailauth_txn_reset(s);
	free(s->mailauth);
	s->mailauth = NULL;
}
