/*
 * tlsa: TLSA (RFC 6698) and TXT lookups on the DNSSEC-aware path
 * (dnssec.c), decoded from raw rdata into the public results of dns.h.
 * TLSA records are kept as published; which of them are usable for SMTP
 * is relay/'s decision (RFC 7672 3.1). TXT records are joined strings for
 * the MTA-STS (RFC 8461) and TLS reporting (RFC 8460) discovery records.
 *
 * Diagnostics: kinds, states and detail texts; nothing is logged.
 * Threads: reentrant.
 */
#include "dns/dns_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

static void
copy_state(const struct dns_sec_answer *a, enum dns_sec_kind *kind,
    enum dns_sec_state *state, char *detail, size_t detailsize)
{
	*kind = a->kind;
	*state = dns_sec_answer_state(a);
	if (a->kind == DNS_SEC_FAIL)
		snprintf(detail, detailsize, "%s", a->detail);
}

/* Fills res from a TLSA answer. */
static void
tlsa_from_answer(const struct dns_sec_answer *a, struct dns_tlsa_result *res)
{
	copy_state(a, &res->kind, &res->state, res->detail, sizeof res->detail);
	for (size_t i = 0; a->kind == DNS_SEC_DATA && i < a->n &&
	    res->n < DNS_MAX_TLSA; i++) {
		struct dns_tlsa_rr *rr = &res->rrs[res->n];
		if (a->rrs[i].len < 3)
			continue;	/* ldns refuses such packets anyway */
		rr->usage = a->rrs[i].data[0];
		rr->selector = a->rrs[i].data[1];
		rr->mtype = a->rrs[i].data[2];
		rr->len = a->rrs[i].len - 3;
		rr->data = xmalloc(rr->len ? rr->len : 1);
		memcpy(rr->data, a->rrs[i].data + 3, rr->len);
		res->n++;
	}
}

int
dns_tlsa_lookup(struct dns_sec *s, const char *host, uint16_t port,
    struct dns_tlsa_result **res_r)
{
	struct dns_tlsa_result *res = xcalloc(1, sizeof *res);
	char name[DNS_NAME_MAX], q[DNS_NAME_MAX + 16];
	struct dns_sec_answer *a;

	*res_r = res;
	res->kind = DNS_SEC_FAIL;
	res->state = DNS_SEC_BOGUS;
	if (dns_name_normalize(host, name, sizeof name) != 0 ||
	    snprintf(q, sizeof q, "_%u._tcp.%s", port, name) >= (int)sizeof q ||
	    dns_name_normalize(q, res->qname, sizeof res->qname) != 0) {
		snprintf(res->detail, sizeof res->detail, "invalid host name");
		return res->kind;
	}
	a = dns_sec_lookup(s, res->qname, DNS_T_TLSA, dns_sec_deadline(s));
	tlsa_from_answer(a, res);
	dns_sec_answer_free(&a);
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

/* One TXT rdata (length-prefixed strings) joined into a new string, or
 * NULL when malformed, too long or holding a NUL. */
static char *
txt_join(const uint8_t *p, size_t len)
{
	char *out;
	size_t pos = 0, o = 0;

	if (len == 0 || len > DNS_TXT_MAX + 255)
		return NULL;
	out = xmalloc(len + 1);
	while (pos < len) {
		size_t l = p[pos++];
		if (pos + l > len || o + l > DNS_TXT_MAX ||
		    memchr(p + pos, '\0', l) != NULL) {
			free(out);
			return NULL;
		}
		memcpy(out + o, p + pos, l);
		o += l;
		pos += l;
	}
	out[o] = '\0';
	return out;
}

int
dns_sec_txt_lookup(struct dns_sec *s, const char *name, struct dns_sec_txt_result **res_r)
{
	struct dns_sec_txt_result *res = xcalloc(1, sizeof *res);
	char q[DNS_NAME_MAX];
	struct dns_sec_answer *a;

	*res_r = res;
	res->kind = DNS_SEC_FAIL;
	res->state = DNS_SEC_BOGUS;
	if (dns_name_normalize(name, q, sizeof q) != 0) {
		snprintf(res->detail, sizeof res->detail, "invalid name");
		return res->kind;
	}
	a = dns_sec_lookup(s, q, DNS_T_TXT, dns_sec_deadline(s));
	copy_state(a, &res->kind, &res->state, res->detail, sizeof res->detail);
	for (size_t i = 0; a->kind == DNS_SEC_DATA && i < a->n &&
	    res->n < DNS_MAX_TXT; i++) {
		char *t = txt_join(a->rrs[i].data, a->rrs[i].len);
		if (t != NULL)
			res->txt[res->n++] = t;
	}
	dns_sec_answer_free(&a);
	return res->kind;
}

void
dns_sec_txt_result_free(struct dns_sec_txt_result **resp)
{
	struct dns_sec_txt_result *res = *resp;

	if (res == NULL)
		return;
	for (size_t i = 0; i < res->n; i++)
		free(res->txt[i]);
	free(res);
	*resp = NULL;
}
