/*
 * delivery_lmtp: local or routed recipients over LMTP (relay/lmtp.h):
 * one transaction for the recipients of the job (one message, one
 * destination), and each recipient's own reply back as its outcome, so
 * that a deferred or bounced one is handled alone (delivery.h).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "queue/delivery_internal.h"
#include "relay/lmtp.h"

void
deliver_lmtp(struct job_ctx *jc, const struct delivery_route *route)
{
	const struct delivery_route *r = route ? route : jc->pol->local_lmtp;
	struct lmtp_dest dest = { r->lmtp_unix, r->host, r->port };
	struct outcome **os = xcalloc(jc->nout ? jc->nout : 1, sizeof *os);
	char (*addrs)[RELAY_ADDR_MAX + 1];
	struct relay_rcpt *rr;
	struct relay_result *res;
	struct relay_msg m;
	size_t n = 0;

	for (size_t i = 0; i < jc->nout; i++)
		if (route != NULL || jc->out[i].lmtp)
			os[n++] = &jc->out[i];
	if (n == 0) {
		free(os);
		return;
	}
	if (jc->pol->lmtp == NULL) {
		for (size_t i = 0; i < n; i++) {
			os[i]->fact = 1;
			outcome_set(os[i], RCPT_DEFERRED, "4.3.5",
			    "LMTP delivery is not available");
		}
		free(os);
		return;
	}
	addrs = xcalloc(n, sizeof *addrs);
	rr = xcalloc(n, sizeof *rr);
	res = xcalloc(n, sizeof *res);
	for (size_t i = 0; i < n; i++) {
		os[i]->fact = 1;
		/* A bare local recipient ("postmaster") gets its domain: the
		 * LMTP server needs a whole address. */
		if (route == NULL)
			local_address(jc->pol, os[i]->r, addrs[i], sizeof addrs[i]);
		else
			str_copy(addrs[i], os[i]->r->addr, sizeof addrs[i]);
		rr[i].addr = addrs[i];
	}
	remote_msg(jc, &m);
	lmtp_deliver(jc->pol->lmtp, &dest, &m, rr, n, res);
	for (size_t i = 0; i < n; i++)
		remote_outcome(os[i], &res[i]);
	free(res);
	free(rr);
	free(addrs);
	free(os);
}
