/*
 * tlsa: TLSA lookups (RFC 6698), decoded from the raw rdata that
 * dns_records_lookup keeps. Records are kept as published; which of them
 * are usable for SMTP is relay/'s decision (RFC 7672 3.1).
 *
 * Diagnostics: kinds, states and detail texts; nothing is logged.
 * Threads: reentrant.
 */
#include "dns/dns_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

int
dns_tlsa_lookup(struct dns_resolver *r, const char *host, uint16_t port,
    struct dns_tlsa_result **res_r)
{
	struct dns_tlsa_result *res = xcalloc(1, sizeof *res);
	char name[DNS_NAME_MAX], q[DNS_NAME_MAX + 16];
	struct dns_records *rs;

	*res_r = res;
	res->kind = DNS_SEC_FAIL;
	res->state = DNS_SEC_BOGUS;
	if (dns_name_normalize(host, name, sizeof name) != 0 ||
	    snprintf(q, sizeof q, "_%u._tcp.%s", port, name) >= (int)sizeof q ||
	    dns_name_normalize(q, res->qname, sizeof res->qname) != 0) {
		snprintf(res->detail, sizeof res->detail, "invalid host name");
		return res->kind;
	}
	dns_records_lookup(r, res->qname, DNS_RTYPE_TLSA, &rs);
	res->state = rs->sec;
	switch (rs->status) {
	case DNS_REC_DATA: res->kind = DNS_SEC_DATA; break;
	case DNS_REC_NODATA: res->kind = DNS_SEC_NODATA; break;
	case DNS_REC_NXDOMAIN: res->kind = DNS_SEC_NXDOMAIN; break;
	default:
		res->kind = DNS_SEC_FAIL;
		snprintf(res->detail, sizeof res->detail, "%s", rs->detail);
		break;
	}
	for (size_t i = 0; i < rs->n && res->n < DNS_MAX_TLSA; i++) {
		struct dns_tlsa_rr *rr = &res->rrs[res->n];
		const uint8_t *raw = rs->rr[i].raw;

		if (raw == NULL || rs->rr[i].rawlen < 3)
			continue;	/* dns/ keeps none of these */
		rr->usage = raw[0];
		rr->selector = raw[1];
		rr->mtype = raw[2];
		rr->len = rs->rr[i].rawlen - 3;
		rr->data = xmalloc(rr->len ? rr->len : 1);
		memcpy(rr->data, raw + 3, rr->len);
		res->n++;
	}
	dns_records_free(&rs);
	return res->kind;
}

void
dns_tlsa_result_free(struct dns_tlsa_result **resp)
{
	struct dns_tlsa_result *res = *resp;

	if (res == NULL)
		return;
	for (size_t i = 0; i < res->n; i++)
		free(res->rrs[i].data);
	free(res);
	*resp = NULL;
}
