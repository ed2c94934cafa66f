/*
 * smtp_policy: the policy services of a runtime snapshot, and what their
 * answers add up to (contract in smtp_policy.h). The session's side is
 * session_policy.c.
 */
#include "server/smtp_policy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/idle_pool.h"

/* What Postfix answers for an action it cannot carry out. */

struct policy_service {
	struct policy_spec spec;
	struct idle_pool idle;
};

struct smtp_policy_services {
	size_t n;
	struct policy_service *sv;
};

static void
policy_conn_free(void *item)
{
	struct policy_client *c = item;

	policy_client_free(&c);
}

struct smtp_policy_services *
smtp_policy_services_new(const struct config *cfg, char *err, size_t errsize)
{
	struct smtp_policy_services *p = xcalloc(1, sizeof *p);
	unsigned timeout = cfg->policy_timeout * 1000;

	p->sv = xcalloc(cfg->npolicy_services, sizeof *p->sv);
	for (size_t i = 0; i < cfg->npolicy_services; i++) {
		struct policy_spec *spec = &p->sv[i].spec;

		if (policy_spec_init(spec, cfg->policy_services[i], err, errsize) != 0 ||
		    (cfg->policy_default_action != NULL &&
		    policy_spec_default(spec, cfg->policy_default_action, err, errsize) != 0)) {
			smtp_policy_services_free(&p);
			return NULL;
		}
		spec->timeout_ms = timeout;
		if (spec->connect_timeout_ms > timeout)
			spec->connect_timeout_ms = timeout;
		idle_pool_init(&p->sv[i].idle, SMTP_POLICY_IDLE_MAX, policy_conn_free);
		p->n = i + 1;
	}
	return p;
}

void
smtp_policy_services_free(struct smtp_policy_services **sp)
{
	struct smtp_policy_services *p = *sp;

	*sp = NULL;
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		idle_pool_destroy(&p->sv[i].idle);
	free(p->sv);
	free(p);
}

void
smtp_policy_services_ask(struct smtp_policy_services *sv,
    const struct policy_request *rq, struct smtp_policy_outcome *o)
{
	struct policy_verdict *v = xmalloc(sizeof *v);

	smtp_policy_outcome_init(o);
	for (size_t i = 0; i < sv->n; i++) {
		struct policy_service *ps = &sv->sv[i];
		struct policy_client *c = idle_pool_take(&ps->idle);
		int final;

		if (c == NULL)
			c = policy_client_new(&ps->spec);
		policy_client_ask(c, rq, v);
		idle_pool_give(&ps->idle, c);
		if (v->kind != POLICY_DUNNO || v->text[0] != '\0')
			log_info("policy %s: %s <%s>: %s%s%s%s", ps->spec.ep.text,
			    rq->protocol_state, rq->recipient && rq->recipient[0] ?
			    rq->recipient : rq->sender, policy_kind_name(v->kind),
			    v->reply[0] || v->text[0] ? " " : "", v->reply[0] ? v->reply : v->text,
			    v->from_default ? " (default action)" : "");
		final = smtp_policy_outcome_add(o, v);
		if (final)
			break;
	}
	smtp_policy_outcome_end(o);
	free(v);
}

/* ---- the outcome of one request ---- */

void
smtp_policy_outcome_init(struct smtp_policy_outcome *o)
{
	memset(o, 0, sizeof *o);
	o->result = SMTP_POLICY_ACCEPT;
}

static int
outcome_refuse(struct smtp_policy_outcome *o, const char *reply)
{
	o->result = SMTP_POLICY_REFUSE;
	str_copy(o->reply, reply, sizeof o->reply);
	o->stop = 1;
	return 1;
}

static int
outcome_permit(struct smtp_policy_outcome *o)
{
	o->stop = 1;
	return 1;
}

int
smtp_policy_outcome_add(struct smtp_policy_outcome *o, const struct policy_verdict *v)
{
	if (o->stop)
		return 1;
	switch (v->kind) {
	case POLICY_OK:
		return outcome_permit(o);
	case POLICY_REJECT:
		return outcome_refuse(o, o->dir[0] ? o->dir : v->reply);
	case POLICY_DEFER:
		return outcome_refuse(o, v->reply);
	case POLICY_DEFER_IF_PERMIT:
		if (o->dip[0] == '\0')
			str_copy(o->dip, v->reply, sizeof o->dip);
		return 0;
	case POLICY_DEFER_IF_REJECT:
		if (o->dir[0] == '\0')
			str_copy(o->dir, v->reply, sizeof o->dir);
		return 0;
	case POLICY_SHUTDOWN:
		outcome_refuse(o, v->reply);
		o->result = SMTP_POLICY_SHUTDOWN;
		return 1;
	case POLICY_DISCARD:
		o->discard = 1;
		return outcome_permit(o);
	case POLICY_HOLD:
		/* Postfix: the message goes on hold; later services still
		 * have their say about the recipient. */
		if (!o->held)
			str_copy(o->hold, v->text, sizeof o->hold);
		o->held = 1;
		return 0;
	case POLICY_PREPEND:
		if (o->nheaders < SMTP_POLICY_HEADERS_MAX)
			str_copy(o->headers[o->nheaders++], v->header, sizeof o->headers[0]);
		return 0;
	case POLICY_REDIRECT:
		str_copy(o->redirect, v->addr, sizeof o->redirect);
		return outcome_permit(o);
	case POLICY_BCC:
		if (o->nbcc < SMTP_POLICY_BCC_MAX)
			str_copy(o->bcc[o->nbcc++], v->addr, sizeof o->bcc[0]);
		return 0;
	case POLICY_DUNNO:
	default:
		return 0;
	}
}

void
smtp_policy_outcome_end(struct smtp_policy_outcome *o)
{
	if (o->result == SMTP_POLICY_ACCEPT && o->dip[0] != '\0') {
		o->result = SMTP_POLICY_REFUSE;
		str_copy(o->reply, o->dip, sizeof o->reply);
	}
	o->stop = 1;
	if (o->result != SMTP_POLICY_ACCEPT) {
		/* What a refused request asked for goes with it. */
		o->nheaders = o->nbcc = 0;
		o->redirect[0] = '\0';
		o->discard = 0;
		o->held = 0;
	}
}

/* ---- what the accepted answers of one message carry ---- */

void
smtp_policy_txn_init(struct smtp_policy_txn *t)
{
	memset(t, 0, sizeof *t);
	buf_init(&t->headers, SMTP_POLICY_PREPEND_MAX);
}

/* Is line (without CRLF) one of the headers already? */
static int
txn_has_header(const struct smtp_policy_txn *t, const char *line)
{
	size_t n = strlen(line);

	for (size_t at = 0; at < t->headers.len;) {
		const char *p = t->headers.data + at;
		const char *end = strstr(p, "\r\n");
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

		if (len == n && memcmp(p, line, n) == 0)
			return 1;
		at += len + 2;
	}
	return 0;
}

size_t
smtp_policy_txn_take(struct smtp_policy_txn *t, const struct smtp_policy_outcome *o)
{
	size_t dropped = 0;

	if (o->result != SMTP_POLICY_ACCEPT)
		return 0;
	for (size_t i = 0; i < o->nheaders; i++) {
		if (txn_has_header(t, o->headers[i]))
			continue;
		if (t->nheaders >= SMTP_POLICY_HEADERS_MAX ||
		    buf_printf(&t->headers, "%s\r\n", o->headers[i]) != 0) {
			dropped++;
			continue;
		}
		t->nheaders++;
	}
	for (size_t i = 0; i < o->nbcc; i++) {
		int seen = 0;

		for (size_t k = 0; k < t->nbcc && !seen; k++)
			seen = strcasecmp(t->bcc[k], o->bcc[i]) == 0;
		if (seen)
			continue;
		if (t->nbcc >= SMTP_POLICY_BCC_MAX) {
			dropped++;
			continue;
		}
		t->bcc[t->nbcc++] = xstrdup(o->bcc[i]);
	}
	if (o->redirect[0] != '\0') {
		free(t->redirect);
		t->redirect = xstrdup(o->redirect);
	}
	if (o->discard)
		t->discard = 1;
	if (o->held && t->hold == NULL)
		t->hold = xstrdup(o->hold);
	return dropped;
}

void
smtp_policy_txn_reset(struct smtp_policy_txn *t)
{
	buf_reset(&t->headers);
	t->nheaders = 0;
	for (size_t i = 0; i < t->nbcc; i++)
		free(t->bcc[i]);
	t->nbcc = 0;
	free(t->redirect);
	t->redirect = NULL;
	t->discard = 0;
	free(t->hold);
	t->hold = NULL;
}

void
smtp_policy_txn_free(struct smtp_policy_txn *t)
{
	smtp_policy_txn_reset(t);
	buf_free(&t->headers);
}
