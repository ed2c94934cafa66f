/*
 * txt: the record lookup of dns.h (dns_records_lookup): TXT records, and
 * the raw record sets that mail authentication asks for (SPF, DKIM and
 * DMARC: TXT; SPF also A, AAAA, MX and PTR without the RFC 5321 rules of
 * mx.c), MTA-STS and TLS reporting (TXT) and DANE (TLSA, CNAME, A, AAAA,
 * MX with their DNSSEC state). Each lookup goes through
 * dns_resolver_lookup, so answers share the TTL cache and the bounds of
 * every other lookup, and the outcome keeps NODATA apart from NXDOMAIN.
 *
 * Threads: reentrant; results belong to the caller.
 */
#include "dns/dns_internal.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

int
dns_txt_rdata_join(const struct ldns_struct_rr *rr, struct dns_rr *out)
{
	size_t n = ldns_rr_rd_count(rr), len = 0, o = 0;

	for (size_t i = 0; i < n; i++) {
		const ldns_rdf *rd = ldns_rr_rdf(rr, i);
		if (rd == NULL || ldns_rdf_get_type(rd) != LDNS_RDF_TYPE_STR ||
		    ldns_rdf_size(rd) < 1 ||
		    (size_t)ldns_rdf_data(rd)[0] + 1 != ldns_rdf_size(rd))
			return -1;
		len += ldns_rdf_size(rd) - 1;
	}
	out->text = xmalloc(len + 1);
	for (size_t i = 0; i < n; i++) {
		const ldns_rdf *rd = ldns_rr_rdf(rr, i);
		memcpy(out->text + o, ldns_rdf_data(rd) + 1, ldns_rdf_size(rd) - 1);
		o += ldns_rdf_size(rd) - 1;
	}
	out->text[len] = '\0';
	out->textlen = len;
	return 0;
}

static void
record_fill(struct dns_record *dst, const struct dns_rr *src, uint16_t type)
{
	memset(dst, 0, sizeof *dst);
	dst->pref = src->pref;
	if (type == DNS_T_A || type == DNS_T_AAAA) {
		dst->addr.family = type == DNS_T_A ? AF_INET : AF_INET6;
		memcpy(dst->addr.bytes, src->addr, type == DNS_T_A ? 4 : 16);
		if (inet_ntop(dst->addr.family, dst->addr.bytes, dst->addr.text,
		    sizeof dst->addr.text) == NULL)
			str_copy(dst->addr.text, "?", sizeof dst->addr.text);
	}
	if (src->name != NULL)
		dst->name = xstrdup(src->name);
	if (src->text != NULL) {
		dst->text = xmalloc(src->textlen + 1);
		memcpy(dst->text, src->text, src->textlen + 1);
		dst->textlen = src->textlen;
	}
	if (src->raw != NULL) {
		dst->raw = xmalloc(src->rawlen + 1);
		memcpy(dst->raw, src->raw, src->rawlen);
		dst->rawlen = src->rawlen;
	}
}

int
dns_records_lookup(struct dns_resolver *r, const char *name,
    enum dns_rtype type, struct dns_records **res_r)
{
	struct dns_records *res = xcalloc(1, sizeof *res);
	char qname[DNS_NAME_MAX];
	struct dns_rrset *rs;

	*res_r = res;
	res->sec = DNS_SEC_BOGUS;
	if (type != DNS_RTYPE_A && type != DNS_RTYPE_AAAA &&
	    type != DNS_RTYPE_MX && type != DNS_RTYPE_PTR &&
	    type != DNS_RTYPE_TXT && type != DNS_RTYPE_CNAME &&
	    type != DNS_RTYPE_TLSA) {
		res->status = DNS_REC_BAD_NAME;
		snprintf(res->detail, sizeof res->detail, "record type %d not "
		    "supported", (int)type);
		return res->status;
	}
	if (name == NULL || dns_name_normalize(name, qname, sizeof qname) != 0) {
		res->status = DNS_REC_BAD_NAME;
		snprintf(res->detail, sizeof res->detail, "not a valid name");
		return res->status;
	}
	rs = dns_resolver_lookup(r, qname, (uint16_t)type,
	    dns_resolver_now(r) + dns_resolver_options(r)->total_timeout_ms);
	switch (rs->kind) {
	case DNS_K_DATA:
		res->status = rs->n > 0 ? DNS_REC_DATA : DNS_REC_NODATA;
		break;
	case DNS_K_NODATA:
		res->status = DNS_REC_NODATA;
		break;
	case DNS_K_NXDOMAIN:
		res->status = DNS_REC_NXDOMAIN;
		break;
	default:
		res->status = DNS_REC_TEMP;
		str_copy(res->detail, rs->detail[0] ? rs->detail :
		    "temporary failure", sizeof res->detail);
		break;
	}
	if (res->status != DNS_REC_TEMP) {
		res->sec = rs->ad ? DNS_SEC_SECURE : DNS_SEC_INSECURE;
		str_copy(res->owner, rs->owner[0] || rs->cnames ? rs->owner : qname,
		    sizeof res->owner);
		res->cnames = rs->cnames;
	}
	if (res->status == DNS_REC_DATA) {
		res->rr = xcalloc(rs->n, sizeof *res->rr);
		for (size_t i = 0; i < rs->n; i++)
			record_fill(&res->rr[i], &rs->rrs[i], rs->type);
		res->n = rs->n;
	}
	dns_rrset_free(&rs);
	return res->status;
}

int
dns_txt_lookup(struct dns_resolver *r, const char *name,
    struct dns_records **res_r)
{
	return dns_records_lookup(r, name, DNS_RTYPE_TXT, res_r);
}

void
dns_records_free(struct dns_records **resp)
{
	struct dns_records *res = *resp;

	if (res == NULL)
		return;
	for (size_t i = 0; i < res->n; i++) {
		free(res->rr[i].name);
		free(res->rr[i].text);
		free(res->rr[i].raw);
	}
	free(res->rr);
	free(res);
	*resp = NULL;
}
