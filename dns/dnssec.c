/*
 * dnssec: the DNSSEC views of dns.h that DANE needs (RFC 7672 2.2): a
 * domain's MX RRset and a host's address records, each with its state.
 * mailserver does not validate signatures itself: every query carries DO
 * and AD, and resolver.c believes the AD bit of a validating resolver
 * only when it is on loopback, where nobody can forge it (DESIGN.md
 * "Outbound TLS" says why). The views are built on dns_records_lookup,
 * so they read the same cached answers as dns_mx_lookup and the rest.
 *
 * Diagnostics: states and detail texts; nothing above debug level.
 * Threads: reentrant; every lookup runs on any thread.
 */
#include "dns/dns_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

const char *
dns_sec_state_str(enum dns_sec_state st)
{
	switch (st) {
	case DNS_SEC_SECURE: return "secure";
	case DNS_SEC_INSECURE: return "insecure";
	default: return "bogus";
	}
}

/* The view kind of a record lookup's status. */
static enum dns_sec_kind
records_kind(const struct dns_records *r)
{
	switch (r->status) {
	case DNS_REC_DATA: return DNS_SEC_DATA;
	case DNS_REC_NODATA: return DNS_SEC_NODATA;
	case DNS_REC_NXDOMAIN: return DNS_SEC_NXDOMAIN;
	default: return DNS_SEC_FAIL;
	}
}

int
dns_sec_mx_lookup(struct dns_resolver *r, const char *domain, struct dns_sec_mx *out)
{
	char name[DNS_NAME_MAX];
	struct dns_records *rs;

	memset(out, 0, sizeof *out);
	out->kind = DNS_SEC_FAIL;
	out->state = DNS_SEC_BOGUS;
	if (dns_name_normalize(domain, name, sizeof name) != 0) {
		str_format(out->detail, sizeof out->detail, "invalid domain name");
		return out->state;
	}
	dns_records_lookup(r, name, DNS_RTYPE_MX, &rs);
	out->kind = records_kind(rs);
	out->state = rs->sec;
	if (out->kind == DNS_SEC_FAIL)
		str_format(out->detail, sizeof out->detail, "%s MX: %s", name,
		    rs->detail);
	for (size_t i = 0; i < rs->n && out->nnames < DNS_MAX_MX_HOSTS; i++) {
		const char *host = rs->rr[i].name;
		if (host == NULL || host[0] == '\0')
			continue;	/* the root: a null MX is no host */
		if (!dns_sec_mx_has(out, host))
			str_copy(out->names[out->nnames++], host, DNS_NAME_MAX);
	}
	dns_records_free(&rs);
	return out->state;
}

int
dns_sec_mx_has(const struct dns_sec_mx *mx, const char *host)
{
	char name[DNS_NAME_MAX];

	if (dns_name_normalize(host, name, sizeof name) != 0)
		return 0;
	for (size_t i = 0; i < mx->nnames; i++)
		if (strcmp(mx->names[i], name) == 0)
			return 1;
	return 0;
}

/* The weaker of two states: bogus < insecure < secure. */
static enum dns_sec_state
state_min(enum dns_sec_state a, enum dns_sec_state b)
{
	if (a == DNS_SEC_BOGUS || b == DNS_SEC_BOGUS)
		return DNS_SEC_BOGUS;
	if (a == DNS_SEC_INSECURE || b == DNS_SEC_INSECURE)
		return DNS_SEC_INSECURE;
	return DNS_SEC_SECURE;
}

int
dns_sec_host_lookup(struct dns_resolver *r, const char *host, struct dns_sec_host *out)
{
	char name[DNS_NAME_MAX];
	struct dns_records *a4, *a6 = NULL;

	memset(out, 0, sizeof *out);
	out->state = out->alias_state = DNS_SEC_BOGUS;
	if (dns_name_normalize(host, name, sizeof name) != 0) {
		str_format(out->detail, sizeof out->detail, "invalid host name");
		return out->state;
	}
	str_copy(out->expanded, name, sizeof out->expanded);
	dns_records_lookup(r, name, DNS_RTYPE_A, &a4);
	if (dns_resolver_options(r)->use_ipv6 && a4->status != DNS_REC_NXDOMAIN)
		dns_records_lookup(r, name, DNS_RTYPE_AAAA, &a6);
	out->state = a4->sec;
	if (a6 != NULL)
		out->state = state_min(out->state, a6->sec);
	if (a4->status == DNS_REC_TEMP || (a6 && a6->status == DNS_REC_TEMP))
		str_format(out->detail, sizeof out->detail, "%s: %s", name,
		    a4->status == DNS_REC_TEMP ? a4->detail : a6->detail);
	if (a4->status != DNS_REC_TEMP) {
		out->alias = a4->cnames > 0;
		if (a4->owner[0] != '\0')
			str_copy(out->expanded, a4->owner, sizeof out->expanded);
	}
	out->alias_state = out->state;
	if (out->alias && out->state == DNS_SEC_INSECURE) {
		/* Is the alias itself signed? Its own CNAME record says. */
		struct dns_records *c;

		dns_records_lookup(r, name, DNS_RTYPE_CNAME, &c);
		out->alias_state = c->status == DNS_REC_DATA ? c->sec :
		    state_min(DNS_SEC_INSECURE, c->sec);
		dns_records_free(&c);
	}
	dns_records_free(&a4);
	dns_records_free(&a6);
	return out->state;
}
