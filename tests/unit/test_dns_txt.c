/*
 * test_dns_txt: the raw record lookups of dns/txt.c (TXT above all) on a
 * resolver whose transport answers from a table of canned packets built
 * with ldns: joined character-strings, NULs inside, empty records,
 * NODATA against NXDOMAIN against failures, CNAMEs, the cache, bad names,
 * and the A/AAAA/MX/PTR sets SPF asks for. Nothing leaves the process.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/dns.h"
#include "dns/dns_internal.h"
#include "lib/util.h"

#define NO_ANSWER (-1)
#define EMPTY_TXT "<empty>"	/* a TXT record with no string at all */

struct canned {
	const char *name;
	uint16_t type;		/* 0: any */
	int rcode;		/* LDNS_RCODE_*, or NO_ANSWER */
	const char *const *ans;	/* zone-file lines */
};

struct world {
	const struct canned *tab;
	size_t n;
	unsigned long queries;
};

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

static uint8_t *
build(const char *qname, uint16_t qtype, int rcode, const char *const *ans,
    size_t *len_r)
{
	ldns_pkt *p = ldns_pkt_new();
	ldns_rr *rr;
	uint8_t *w = NULL;
	char qs[600];
	char *ts = ldns_rr_type2str((ldns_rr_type)qtype);

	ldns_pkt_set_id(p, 7);
	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_rcode(p, (uint8_t)rcode);
	snprintf(qs, sizeof qs, "%s. IN %s", qname, ts);
	free(ts);
	if (ldns_rr_new_question_frm_str(&rr, qs, NULL, NULL) != LDNS_STATUS_OK)
		abort();
	ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, rr);
	for (size_t i = 0; ans && ans[i]; i++) {
		if (strcmp(ans[i], EMPTY_TXT) == 0) {
			rr = ldns_rr_new();
			ldns_rr_set_owner(rr, ldns_dname_new_frm_str(qname));
			ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
			ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
			ldns_rr_set_ttl(rr, 300);
		} else if (ldns_rr_new_frm_str(&rr, ans[i], 300, NULL, NULL) !=
		    LDNS_STATUS_OK) {
			fprintf(stderr, "bad test RR: %s\n", ans[i]);
			abort();
		}
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
	}
	if (rcode == LDNS_RCODE_NXDOMAIN || (rcode == 0 && ans == NULL)) {
		if (ldns_rr_new_frm_str(&rr, "test. 300 IN SOA ns.test. h.test. "
		    "1 3600 600 86400 60", 300, NULL, NULL) != LDNS_STATUS_OK)
			abort();
		ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, rr);
	}
	if (ldns_pkt2wire(&w, p, len_r) != LDNS_STATUS_OK)
		abort();
	ldns_pkt_free(p);
	return w;
}

static int
transport(void *ctx, const char *qname, uint16_t qtype, int64_t deadline,
    uint8_t **wire_r, size_t *len_r)
{
	struct world *w = ctx;

	(void)deadline;
	w->queries++;
	for (size_t i = 0; i < w->n; i++) {
		const struct canned *c = &w->tab[i];
		if (strcasecmp(c->name, qname) == 0 &&
		    (c->type == 0 || c->type == qtype)) {
			if (c->rcode == NO_ANSWER)
				return -1;
			*wire_r = build(qname, qtype, c->rcode, c->ans, len_r);
			return 0;
		}
	}
	*wire_r = build(qname, qtype, LDNS_RCODE_NXDOMAIN, NULL, len_r);
	return 0;
}

static const struct canned world_tab[] = {
	{ "spf.test", DNS_T_TXT, 0, L(
	    "spf.test. 300 IN TXT \"v=spf1 \" \"ip4:192.0.2.1\" \" -all\"",
	    "spf.test. 300 IN TXT \"second record\"") },
	{ "nul.test", DNS_T_TXT, 0, L("nul.test. 300 IN TXT \"a\\000b\"") },
	{ "empty.test", DNS_T_TXT, 0, L(EMPTY_TXT) },
	{ "nodata.test", 0, 0, NULL },
	{ "fail.test", 0, LDNS_RCODE_SERVFAIL, NULL },
	{ "silent.test", 0, NO_ANSWER, NULL },
	{ "alias.test", DNS_T_TXT, 0, L(
	    "alias.test. 300 IN CNAME spf.test.") },
	{ "host.test", DNS_T_A, 0, L("host.test. 300 IN A 192.0.2.7",
	    "host.test. 300 IN A 192.0.2.8") },
	{ "host.test", DNS_T_AAAA, 0, L("host.test. 300 IN AAAA 2001:db8::7") },
	{ "host.test", DNS_T_MX, 0, L("host.test. 300 IN MX 10 mx1.host.test.",
	    "host.test. 300 IN MX 0 .") },
	{ "host.test", DNS_T_TXT, 0, NULL },
	{ "7.2.0.192.in-addr.arpa", DNS_T_PTR, 0, L(
	    "7.2.0.192.in-addr.arpa. 300 IN PTR Host.Test.",
	    "7.2.0.192.in-addr.arpa. 300 IN PTR other.test.") },
	{ "_dmarc.big.test", DNS_T_TXT, 0, L(
	    "_dmarc.big.test. 300 IN TXT \"v=DMARC1; p=reject\"") },
};

static struct dns_resolver *
world_resolver(struct world *w)
{
	struct dns_options o;

	dns_options_default(&o);
	o.temp_ttl = 0;
	w->tab = world_tab;
	w->n = sizeof world_tab / sizeof world_tab[0];
	w->queries = 0;
	return dns_resolver_new_transport(transport, w, NULL, NULL, &o);
}

static void
test_txt_records(void)
{
	struct world w;
	struct dns_resolver *r = world_resolver(&w);
	struct dns_records *res = NULL;

	CU_ASSERT_EQUAL(dns_txt_lookup(r, "spf.test", &res), DNS_REC_DATA);
	CU_ASSERT_EQUAL_FATAL(res->n, 2);
	CU_ASSERT_EQUAL(res->rr[0].textlen, strlen("v=spf1 ip4:192.0.2.1 -all"));
	CU_ASSERT_STRING_EQUAL(res->rr[0].text, "v=spf1 ip4:192.0.2.1 -all");
	CU_ASSERT_STRING_EQUAL(res->rr[1].text, "second record");
	CU_ASSERT_PTR_NULL(res->rr[0].name);
	dns_records_free(&res);
	CU_ASSERT_PTR_NULL(res);

	/* A NUL inside a string is kept, with the length. */
	CU_ASSERT_EQUAL(dns_txt_lookup(r, "NUL.test.", &res), DNS_REC_DATA);
	CU_ASSERT_EQUAL_FATAL(res->n, 1);
	CU_ASSERT_EQUAL(res->rr[0].textlen, 3);
	CU_ASSERT(memcmp(res->rr[0].text, "a\0b", 4) == 0);
	dns_records_free(&res);

	/* A record with no string is an empty text, not an error. */
	CU_ASSERT_EQUAL(dns_txt_lookup(r, "empty.test", &res), DNS_REC_DATA);
	CU_ASSERT_EQUAL_FATAL(res->n, 1);
	CU_ASSERT_EQUAL(res->rr[0].textlen, 0);
	CU_ASSERT_STRING_EQUAL(res->rr[0].text, "");
	dns_records_free(&res);

	/* CNAMEs are followed. */
	CU_ASSERT_EQUAL(dns_txt_lookup(r, "alias.test", &res), DNS_REC_DATA);
	CU_ASSERT_EQUAL(res->n, 2);
	dns_records_free(&res);

	CU_ASSERT_EQUAL(dns_txt_lookup(r, "_dmarc.big.test", &res), DNS_REC_DATA);
	CU_ASSERT_EQUAL_FATAL(res->n, 1);
	CU_ASSERT_STRING_EQUAL(res->rr[0].text, "v=DMARC1; p=reject");
	dns_records_free(&res);
	dns_resolver_free(&r);
}

static void
test_txt_outcomes(void)
{
	struct world w;
	struct dns_resolver *r = world_resolver(&w);
	struct dns_records *res = NULL;
	unsigned long before;

	CU_ASSERT_EQUAL(dns_txt_lookup(r, "nodata.test", &res), DNS_REC_NODATA);
	CU_ASSERT_EQUAL(res->n, 0);
	CU_ASSERT_PTR_NULL(res->rr);
	dns_records_free(&res);
	CU_ASSERT_EQUAL(dns_txt_lookup(r, "nowhere.test", &res),
	    DNS_REC_NXDOMAIN);
	dns_records_free(&res);
	CU_ASSERT_EQUAL(dns_txt_lookup(r, "fail.test", &res), DNS_REC_TEMP);
	CU_ASSERT(res->detail[0] != '\0');
	dns_records_free(&res);
	CU_ASSERT_EQUAL(dns_txt_lookup(r, "silent.test", &res), DNS_REC_TEMP);
	dns_records_free(&res);

	/* Bad names are refused before any query. */
	before = w.queries;
	CU_ASSERT_EQUAL(dns_txt_lookup(r, "a..test", &res), DNS_REC_BAD_NAME);
	dns_records_free(&res);
	CU_ASSERT_EQUAL(dns_txt_lookup(r, "sp ace.test", &res), DNS_REC_BAD_NAME);
	dns_records_free(&res);
	CU_ASSERT_EQUAL(dns_txt_lookup(r, NULL, &res), DNS_REC_BAD_NAME);
	dns_records_free(&res);
	CU_ASSERT_EQUAL(dns_records_lookup(r, "spf.test", (enum dns_rtype)99,
	    &res), DNS_REC_BAD_NAME);
	dns_records_free(&res);
	CU_ASSERT_EQUAL(w.queries, before);

	/* The second lookup of a name comes from the cache. */
	CU_ASSERT_EQUAL(dns_txt_lookup(r, "spf.test", &res), DNS_REC_DATA);
	dns_records_free(&res);
	before = w.queries;
	CU_ASSERT_EQUAL(dns_txt_lookup(r, "spf.test", &res), DNS_REC_DATA);
	CU_ASSERT_EQUAL(res->n, 2);
	CU_ASSERT_STRING_EQUAL(res->rr[0].text, "v=spf1 ip4:192.0.2.1 -all");
	dns_records_free(&res);
	CU_ASSERT_EQUAL(w.queries, before);
	dns_records_free(&res);
	dns_resolver_free(&r);
}

static void
test_raw_sets(void)
{
	struct world w;
	struct dns_resolver *r = world_resolver(&w);
	struct dns_records *res = NULL;

	CU_ASSERT_EQUAL(dns_records_lookup(r, "host.test", DNS_RTYPE_A, &res),
	    DNS_REC_DATA);
	CU_ASSERT_EQUAL_FATAL(res->n, 2);
	CU_ASSERT_EQUAL(res->rr[0].addr.family, AF_INET);
	CU_ASSERT_STRING_EQUAL(res->rr[0].addr.text, "192.0.2.7");
	CU_ASSERT_STRING_EQUAL(res->rr[1].addr.text, "192.0.2.8");
	dns_records_free(&res);

	CU_ASSERT_EQUAL(dns_records_lookup(r, "host.test", DNS_RTYPE_AAAA, &res),
	    DNS_REC_DATA);
	CU_ASSERT_EQUAL_FATAL(res->n, 1);
	CU_ASSERT_EQUAL(res->rr[0].addr.family, AF_INET6);
	CU_ASSERT_STRING_EQUAL(res->rr[0].addr.text, "2001:db8::7");
	dns_records_free(&res);

	/* MX as published, the root exchange included (no RFC 5321 rules). */
	CU_ASSERT_EQUAL(dns_records_lookup(r, "host.test", DNS_RTYPE_MX, &res),
	    DNS_REC_DATA);
	CU_ASSERT_EQUAL_FATAL(res->n, 2);
	CU_ASSERT_EQUAL(res->rr[0].pref, 10);
	CU_ASSERT_STRING_EQUAL(res->rr[0].name, "mx1.host.test");
	CU_ASSERT_EQUAL(res->rr[1].pref, 0);
	CU_ASSERT_STRING_EQUAL(res->rr[1].name, "");
	dns_records_free(&res);

	CU_ASSERT_EQUAL(dns_records_lookup(r, "7.2.0.192.in-addr.arpa",
	    DNS_RTYPE_PTR, &res), DNS_REC_DATA);
	CU_ASSERT_EQUAL_FATAL(res->n, 2);
	CU_ASSERT_STRING_EQUAL(res->rr[0].name, "host.test");
	CU_ASSERT_STRING_EQUAL(res->rr[1].name, "other.test");
	dns_records_free(&res);

	/* TXT asked of a name that has only A: NODATA. */
	CU_ASSERT_EQUAL(dns_records_lookup(r, "host.test", DNS_RTYPE_TXT, &res),
	    DNS_REC_NODATA);
	dns_records_free(&res);
	dns_resolver_free(&r);
}

/* Hostile wire data: TXT rdata whose string lengths do not add up. */
static void
test_txt_hostile_wire(void)
{
	size_t len;
	uint8_t *w = build("x.test", DNS_T_TXT, 0,
	    L("x.test. 300 IN TXT \"abcdef\""), &len);
	struct dns_rrset *rs;

	/* The string says 6 bytes; make it claim 200 inside the same rdata. */
	for (size_t i = 0; i + 7 <= len; i++)
		if (w[i] == 6 && memcmp(w + i + 1, "abcdef", 6) == 0) {
			w[i] = 200;
			break;
		}
	rs = dns_answer_parse(w, len, "x.test", DNS_T_TXT);
	CU_ASSERT(rs->kind == DNS_K_TEMP || rs->n == 0);
	dns_rrset_free(&rs);
	free(w);

	/* A TXT answer cut short. */
	w = build("x.test", DNS_T_TXT, 0, L("x.test. 300 IN TXT \"abcdef\""), &len);
	rs = dns_answer_parse(w, len - 3, "x.test", DNS_T_TXT);
	CU_ASSERT_EQUAL(rs->kind, DNS_K_TEMP);
	dns_rrset_free(&rs);
	free(w);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("dns_txt", NULL, NULL);
	CU_add_test(s, "TXT records", test_txt_records);
	CU_add_test(s, "TXT outcomes and cache", test_txt_outcomes);
	CU_add_test(s, "A, AAAA, MX, PTR sets", test_raw_sets);
	CU_add_test(s, "hostile TXT wire data", test_txt_hostile_wire);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
