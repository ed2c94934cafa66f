/*
 * delivery_remote: the adapter between queue records and the relay
 * client (relay/relay.h, which knows no queue records): the next hop of a
 * destination (route, relayhost, address literal, or the MX hosts; a
 * route to lmtp: goes to delivery_lmtp.c), the
 * message and its recipients in the relay's terms, and the relay's
 * results back as outcomes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"
#include "queue/delivery_internal.h"
#include "relay/relay.h"

/* The queue's NOTIFY bits in the relay client's terms. */
static unsigned
relay_notify_of(unsigned notify)
{
	return ((notify & DSN_NOTIFY_NEVER) ? RELAY_NOTIFY_NEVER : 0) |
	    ((notify & DSN_NOTIFY_SUCCESS) ? RELAY_NOTIFY_SUCCESS : 0) |
	    ((notify & DSN_NOTIFY_FAILURE) ? RELAY_NOTIFY_FAILURE : 0) |
	    ((notify & DSN_NOTIFY_DELAY) ? RELAY_NOTIFY_DELAY : 0);
}

void
remote_msg(struct job_ctx *jc, struct relay_msg *m)
{
	memset(m, 0, sizeof *m);
	m->sender = jc->msg.env.sender;
	m->eightbit = (jc->msg.env.flags & ENV_8BITMIME) != 0;
	m->smtputf8 = (jc->msg.env.flags & ENV_SMTPUTF8) != 0;
	m->requiretls = (jc->msg.env.flags & ENV_REQUIRETLS) != 0;
	m->ret = jc->msg.env.ret == DSN_RET_FULL ? RELAY_RET_FULL :
	    jc->msg.env.ret == DSN_RET_HDRS ? RELAY_RET_HDRS : RELAY_RET_UNSET;
	m->envid = jc->msg.env.envid;
	m->body = &jc->reader;
}

void
remote_outcome(struct outcome *o, const struct relay_result *res)
{
	enum rcpt_state st = res->status == RELAY_SENT ? RCPT_SENT :
	    res->status == RELAY_BOUNCED ? RCPT_BOUNCED : RCPT_DEFERRED;
	char *br;

	outcome_set(o, st, res->dsn[0] ? res->dsn : "4.0.0", "%s", res->diag);
	str_copy(o->relay, res->relay, sizeof o->relay);
	str_copy(o->tls, res->tls, sizeof o->tls);
	if (strcmp(res->relay, "none") != 0 && strncmp(res->relay, "lmtp:", 5) != 0) {
		str_copy(o->remote_mta, res->relay, sizeof o->remote_mta);
		if ((br = strchr(o->remote_mta, '[')) != NULL)
			*br = '\0';
	}
	o->dsn_passed = res->dsn_passed;
}

void
deliver_remote(struct job_ctx *jc)
{
	struct delivery_policy *pol = jc->pol;
	const struct delivery_route *route = NULL;
	const char *host = NULL;
	char literal[300];
	uint16_t port = 0;
	struct relay_rcpt *rr;
	struct relay_result *res;
	struct relay_msg m;

	for (size_t i = 0; i < jc->nout; i++)
		jc->out[i].fact = 1;
	for (size_t i = 0; i < pol->nroutes; i++)
		if (strcasecmp(pol->routes[i].domain, jc->job->dest) == 0)
			route = &pol->routes[i];
	if (route != NULL && route->lmtp) {
		deliver_lmtp(jc, route);
		return;
	}
	if (pol->relay == NULL) {
		for (size_t i = 0; i < jc->nout; i++)
			outcome_set(&jc->out[i], RCPT_DEFERRED, "4.3.5",
			    "remote delivery is not available");
		return;
	}
	if (route != NULL) {
		host = route->host;
		port = route->port;
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
	remote_msg(jc, &m);
	relay_deliver(pol->relay, jc->job->dest, host, port, &m, rr, jc->nout, res);
	for (size_t i = 0; i < jc->nout; i++)
		remote_outcome(&jc->out[i], &res[i]);
	free(rr);
	free(res);
}
