/*
 * session_policy: a session's side of the policy services (what is asked
 * when, and what the answers do: smtp_policy.h). A request is built on
 * the worker from the session's state, copied into a job, and asked on
 * the filter pool; the answer comes back to the worker, which accepts or
 * refuses the recipient, or commits or refuses the message. What the
 * accepted answers carry (PREPEND, BCC, REDIRECT, DISCARD) is kept for
 * the transaction and applied to the message just before its commit.
 */
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/util.h"
#include "server/smtp_policy.h"
#include "server/smtp_session_int.h"
#include "server/worker.h"

/* What a session keeps for the policy services. */
struct session_policy {
	struct smtp_policy_txn txn;	/* what the accepted answers carry */
	char instance[48];		/* the same for every request of a message */
};

struct policy_job {
	struct session_job sj;		/* first */
	struct runtime *rt;		/* keeps rt->policy while it runs */
	int eom;			/* END-OF-MESSAGE; else RCPT */
	struct smtp_rcpt_args rcpt;	/* RCPT: the recipient asked about */
	char helo[256], sender[SMTP_PATH_MAX], qid[QUEUE_ID_LEN + 1];
	unsigned long count, size;
	char client_address[64], client_name[256], client_port[8];
	char instance[48];
	char sasl_method[64], sasl_username[256], sasl_sender[SMTP_PATH_MAX];
	char tls_protocol[32], tls_cipher[64], tls_bits[8];
	char server_address[64], server_port[8];
	int esmtp;
	struct smtp_policy_outcome out;	/* the result */
};

static unsigned long session_policy_serial;	/* atomic: instance numbers */

static struct session_policy *
session_policy_get(struct smtp_session *s)
{
	if (s->policy == NULL) {
		s->policy = xcalloc(1, sizeof *s->policy);
		smtp_policy_txn_init(&s->policy->txn);
	}
	if (s->policy->instance[0] == '\0')
		snprintf(s->policy->instance, sizeof s->policy->instance, "%llx.%lx",
		    (unsigned long long)time(NULL),
		    __atomic_add_fetch(&session_policy_serial, 1, __ATOMIC_RELAXED));
	return s->policy;
}

void
session_policy_txn_reset(struct smtp_session *s)
{
	if (s->policy == NULL)
		return;
	smtp_policy_txn_reset(&s->policy->txn);
	s->policy->instance[0] = '\0';
}

void
session_policy_free(struct smtp_session *s)
{
	if (s->policy == NULL)
		return;
	smtp_policy_txn_free(&s->policy->txn);
	free(s->policy);
	s->policy = NULL;
}

/* Postfix's TLS attributes: "TLSv1.3", the cipher, its key bits. */
static void
policy_tls(const struct smtp_session *s, struct policy_job *j)
{
	gnutls_session_t t = s->io.tls;
	gnutls_cipher_algorithm_t c;
	const char *proto, *name;

	if (!s->io.tls_active || t == NULL)
		return;
	proto = gnutls_protocol_get_name(gnutls_protocol_get_version(t));
	if (proto != NULL && strncmp(proto, "TLS", 3) == 0)
		snprintf(j->tls_protocol, sizeof j->tls_protocol, "TLSv%s", proto + 3);
	else if (proto != NULL)
		str_copy(j->tls_protocol, proto, sizeof j->tls_protocol);
	c = gnutls_cipher_get(t);
	if ((name = gnutls_cipher_get_name(c)) != NULL)
		str_copy(j->tls_cipher, name, sizeof j->tls_cipher);
	snprintf(j->tls_bits, sizeof j->tls_bits, "%zu", gnutls_cipher_get_key_size(c) * 8);
}

/* A job with the session's part of the request. */
static struct policy_job *
policy_job_new(struct smtp_session *s, int eom)
{
	struct policy_job *j = xcalloc(1, sizeof *j);
	struct session_policy *sp = session_policy_get(s);
	struct sockaddr_storage local;
	socklen_t len = sizeof local;

	j->rt = runtime_ref(s->rt);
	j->eom = eom;
	j->esmtp = s->esmtp;
	str_copy(j->helo, s->helo, sizeof j->helo);
	str_copy(j->sender, s->mail.addr, sizeof j->sender);
	str_copy(j->client_address, s->peer_ip, sizeof j->client_address);
	str_copy(j->client_name, s->client_name[0] ? s->client_name : "unknown",
	    sizeof j->client_name);
	snprintf(j->client_port, sizeof j->client_port, "%u",
	    (unsigned)sockaddr_port((const struct sockaddr *)&s->peer));
	str_copy(j->instance, sp->instance, sizeof j->instance);
	if (s->auth_user[0] != '\0') {
		str_copy(j->sasl_method, s->auth_mech ? s->auth_mech : "", sizeof j->sasl_method);
		str_copy(j->sasl_username, s->auth_user, sizeof j->sasl_username);
	}
	str_copy(j->sasl_sender, s->mail.auth, sizeof j->sasl_sender);
	policy_tls(s, j);
	if (getsockname(s->io.fd, (struct sockaddr *)&local, &len) == 0) {
		sockaddr_ntop((const struct sockaddr *)&local, j->server_address,
		    sizeof j->server_address);
		snprintf(j->server_port, sizeof j->server_port, "%u",
		    (unsigned)sockaddr_port((const struct sockaddr *)&local));
	}
	if (eom) {
		queue_id_format(s->qid, j->qid, sizeof j->qid);
		j->count = (unsigned long)s->nrcpts;
		j->size = (unsigned long)smtp_message_facts(s->msg)->content;
	} else {
		/* Postfix: recipient_count is 0 before DATA; the size is
		 * MAIL's SIZE=. */
		j->size = (unsigned long)s->mail.size;
	}
	return j;
}

static void
policy_job_run(struct offloop_job *job)
{
	struct policy_job *j = (struct policy_job *)(void *)job;
	struct policy_request rq = {
		.protocol_state = j->eom ? "END-OF-MESSAGE" : "RCPT",
		.protocol_name = j->esmtp ? "ESMTP" : "SMTP",
		.helo_name = j->helo, .queue_id = j->qid, .sender = j->sender,
		.recipient = j->eom ? "" : j->rcpt.addr,
		.recipient_count = j->count, .size = j->size,
		.client_address = j->client_address, .client_name = j->client_name,
		.reverse_client_name = j->client_name, .client_port = j->client_port,
		.instance = j->instance, .sasl_method = j->sasl_method,
		.sasl_username = j->sasl_username, .sasl_sender = j->sasl_sender,
		.encryption_protocol = j->tls_protocol, .encryption_cipher = j->tls_cipher,
		.encryption_keysize = j->tls_bits, .server_address = j->server_address,
		.server_port = j->server_port,
	};

	smtp_policy_services_ask(j->rt->policy, &rq, &j->out);
}

static void
policy_job_free(struct policy_job *j)
{
	runtime_unref(&j->rt);
	free(j);
}

static void
policy_job_release(struct session_job *sj)
{
	policy_job_free((struct policy_job *)(void *)sj);
}

/* Applies what the message's accepted answers carry, just before its
 * commit. Returns 1 when the message was discarded (answered), else 0. */
static int
session_policy_apply(struct smtp_session *s)
{
	struct smtp_policy_txn *t;
	char id[QUEUE_ID_LEN + 1];

	if (s->policy == NULL)
		return 0;
	t = &s->policy->txn;
	queue_id_format(s->qid, id, sizeof id);
	if (t->discard) {
		log_info("%s: from=<%s>, nrcpt=%zu: discarded by a policy service", id,
		    s->mail.addr, s->nrcpts);
		session_reply(s, "250 2.0.0 Ok: queued as %s", id);
		session_txn_reset(s);
		session_set_deadline(s);
		return 1;
	}
	if (t->headers.len > 0 && smtp_message_prepend(s->msg, t->headers.data) != 0)
		log_warn("%s: no room for the headers of the policy services; not added", id);
	else if (t->headers.len > 0)
		session_trace_note(s, "policy", "header fields of the policy services added");
	if (t->redirect != NULL) {
		log_info("%s: redirected by a policy service to <%s>", id, t->redirect);
		session_trace_note(s, "policy", "redirected to <%s>", t->redirect);
		session_rcpt_clear(s);
		session_rcpt_append(s, t->redirect, NULL, 0);
	}
	for (size_t i = 0; i < t->nbcc; i++) {
		log_info("%s: copy for <%s> asked by a policy service", id, t->bcc[i]);
		session_trace_note(s, "policy", "copy for <%s>", t->bcc[i]);
		session_rcpt_append(s, t->bcc[i], NULL, 0);
	}
	return 0;
}

int
session_policy_hold(struct smtp_session *s)
{
	char why[600], id[QUEUE_ID_LEN + 1];

	if (s->policy == NULL || s->policy->txn.hold == NULL)
		return 0;
	snprintf(why, sizeof why, "policy service HOLD%s%s",
	    s->policy->txn.hold[0] ? ": " : "", s->policy->txn.hold);
	log_info("%s: held: %s", queue_id_format(s->qid, id, sizeof id), why);
	if (s->hold_why == NULL)
		s->hold_why = xstrdup(why);
	return 1;
}

/* The outcome of a request, on the worker: the session goes on. */
static void
session_policy_act(struct smtp_session *s, struct policy_job *j)
{
	struct smtp_policy_outcome *o = &j->out;
	size_t dropped;

	s->phase = PH_COMMAND;
	session_set_deadline(s);
	if (o->result == SMTP_POLICY_SHUTDOWN) {
		session_reply(s, "%s", o->reply);
		log_info("policy: %s from [%s]: closed", o->reply, s->peer_ip);
		s->phase = PH_CLOSING;
		return;
	}
	if (!j->eom) {
		if (o->result == SMTP_POLICY_REFUSE) {
			/* Greylisting defers many good recipients: only a
			 * 5xx counts toward max_unknown_recipients. */
			session_rcpt_refuse_reason(s, j->rcpt.addr, o->reply, o->reply[0] == '5',
			    MR_POLICY);
			return;
		}
		if ((dropped = smtp_policy_txn_take(&s->policy->txn, o)) > 0)
			log_warn("policy: %zu headers or copies for <%s> over the limits; dropped",
			    dropped, j->rcpt.addr);
		session_rcpt_accept(s, &j->rcpt);
		return;
	}
	if (o->result == SMTP_POLICY_REFUSE) {
		session_message_refused_reason(s, o->reply, MR_POLICY);
		return;
	}
	if ((dropped = smtp_policy_txn_take(&s->policy->txn, o)) > 0)
		log_warn("policy: %zu headers or copies over the limits; dropped", dropped);
	if (session_policy_apply(s))
		return;
	session_commit(s);
}

static int
policy_job_finish(struct smtp_session *s, struct session_job *sj)
{
	struct policy_job *j = (struct policy_job *)(void *)sj;

	if (s->io.fd < 0)
		return -1;
	if (s->phase != PH_POLICY)
		return session_continue(s);
	if (j->sj.base.cancelled) {
		s->phase = PH_CLOSING;
		session_reply(s, "421 4.3.2 Server shutting down");
		return session_continue(s);
	}
	session_policy_act(s, j);
	return session_continue(s);
}

/* Asks off the loop; when the pool cannot take it, the services count as
 * down and the default action decides at once. */
static void
session_policy_ask(struct smtp_session *s, struct policy_job *j)
{
	j->sj.base.run = policy_job_run;
	j->sj.finish = policy_job_finish;
	j->sj.release = policy_job_release;
	s->phase = PH_POLICY;
	if (session_job_submit(s, worker_pools(s->w)->filters, &j->sj) == 0)
		return;
	log_warn("policy: filter pool busy; [%s] gets the default action", s->peer_ip);
	{
		struct policy_verdict v;
		const char *why;

		policy_action_parse(s->cfg->policy_default_action ?
		    s->cfg->policy_default_action : POLICY_DEFAULT_ACTION, &v, &why);
		smtp_policy_outcome_init(&j->out);
		smtp_policy_outcome_add(&j->out, &v);
		smtp_policy_outcome_end(&j->out);
	}
	session_policy_act(s, j);
	policy_job_free(j);
}

int
session_policy_rcpt(struct smtp_session *s, const struct smtp_rcpt_args *r)
{
	struct policy_job *j;

	if (s->rt->policy == NULL || !(s->cfg->policy_stages & CONFIG_POLICY_RCPT))
		return 0;
	j = policy_job_new(s, 0);
	j->rcpt = *r;
	session_policy_ask(s, j);
	return 1;
}

int
session_policy_end_message(struct smtp_session *s)
{
	if (s->rt->policy == NULL)
		return 0;
	if (s->cfg->policy_stages & CONFIG_POLICY_EOM) {
		session_policy_ask(s, policy_job_new(s, 1));
		return 1;
	}
	return session_policy_apply(s);
}
