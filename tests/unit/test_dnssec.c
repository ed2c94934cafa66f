/*
 * test_dnssec: the DNSSEC state of dns/'s answers (resolver.c, mx.c) and
 * the views built on it (dnssec.c, tlsa.c) without the network: canned
 * answers built with ldns (with or without the AD bit) go through the
 * parser and through whole lookups on a resolver whose transport is a
 * table. Checks that only AD answers over a trusted path count as secure,
 * that a chain is secure only when every packet was, that SERVFAIL is
 * bogus, that the cache keeps the state with each answer, and the TLSA,
 * TXT, MX and host views.
 * The real network path is tested against the DNSSEC lab
 * (tests/integration/test_dnssec_lab.py).
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/dns.h"
#include "dns/dns_internal.h"
#include "lib/util.h"
#include "tests/unit/dns_canned.h"

static const char TLSA_311[] = "_25._tcp.mx.secure.test. IN TLSA 3 1 1 "
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char TLSA_201[] = "_25._tcp.mx.secure.test. IN TLSA 2 0 1 "
    "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

static const struct canned world_tab[] = {
	{ "secure.test", DNS_T_MX, 0, F_AD,
	  L("secure.test. IN MX 10 mx.secure.test.", "secure.test. IN MX 20 MX2.Secure.Test.",
	    "secure.test. IN MX 30 .") },
	{ "insecure.test", DNS_T_MX, 0, 0, L("insecure.test. IN MX 10 mx.insecure.test.") },
	{ "bogus.test", DNS_T_MX, LDNS_RCODE_SERVFAIL, 0, NULL },
	{ "silent.test", 0, NO_ANSWER, 0, NULL },
	{ "_25._tcp.silent.test", 0, NO_ANSWER, 0, NULL },
	{ "nomx.secure.test", DNS_T_MX, 0, F_AD, NULL },
	{ "_25._tcp.mx.secure.test", DNS_T_TLSA, 0, F_AD, L(TLSA_311, TLSA_201) },
	{ "_25._tcp.mx2.secure.test", DNS_T_TLSA, 0, F_AD,
	  L("_25._tcp.mx2.secure.test. IN CNAME tlsa.other.test.") },
	{ "tlsa.other.test", DNS_T_TLSA, 0, F_AD,
	  L("tlsa.other.test. IN TLSA 3 0 0 3082") },
	{ "_25._tcp.half.test", DNS_T_TLSA, 0, F_AD,
	  L("_25._tcp.half.test. IN CNAME tlsa.unsigned.test.") },
	{ "tlsa.unsigned.test", DNS_T_TLSA, 0, 0,
	  L("tlsa.unsigned.test. IN TLSA 3 1 1 00") },
	{ "_25._tcp.mx.insecure.test", DNS_T_TLSA, 0, 0,
	  L("_25._tcp.mx.insecure.test. IN TLSA 3 1 1 00") },
	{ "_25._tcp.mx.bogus.test", DNS_T_TLSA, LDNS_RCODE_SERVFAIL, 0, NULL },
	{ "_25._tcp.none.secure.test", DNS_T_TLSA, 0, F_AD, NULL },
	{ "mx.secure.test", DNS_T_A, 0, F_AD, L("mx.secure.test. IN A 127.0.0.2") },
	{ "mx.secure.test", DNS_T_AAAA, 0, F_AD, NULL },
	{ "alias.secure.test", DNS_T_A, 0, F_AD,
	  L("alias.secure.test. IN CNAME real.secure.test.", "real.secure.test. IN A 127.0.0.3") },
	{ "alias.secure.test", DNS_T_AAAA, 0, F_AD,
	  L("alias.secure.test. IN CNAME real.secure.test.") },
	{ "real.secure.test", DNS_T_AAAA, 0, F_AD, NULL },
	{ "out.secure.test", DNS_T_A, 0, 0,
	  L("out.secure.test. IN CNAME mx.unsigned.test.", "mx.unsigned.test. IN A 127.0.0.4") },
	{ "out.secure.test", DNS_T_AAAA, 0, 0,
	  L("out.secure.test. IN CNAME mx.unsigned.test.") },
	{ "out.secure.test", DNS_T_CNAME, 0, F_AD,
	  L("out.secure.test. IN CNAME mx.unsigned.test.") },
	{ "mx.unsigned.test", DNS_T_AAAA, 0, 0, NULL },
	{ "mixed.test", DNS_T_A, 0, F_AD, L("mixed.test. IN A 127.0.0.5") },
	{ "mixed.test", DNS_T_AAAA, 0, 0, NULL },
	{ "_mta-sts.secure.test", DNS_T_TXT, 0, 0,
	  L("_mta-sts.secure.test. IN TXT \"v=STSv1; \" \"id=2026A;\"",
	    "_mta-sts.secure.test. IN TXT \"other\"") },
	{ "nul.test", DNS_T_TXT, 0, 0,
	  L("nul.test. IN TXT \"a\\000b\"", "nul.test. IN TXT \"ok\"") },
};

static struct dns_resolver *
world_sec(struct canned_world *w, int trusted)
{
	struct dns_resolver *r;

	memset(w, 0, sizeof *w);
	w->tab = world_tab;
	w->n = sizeof world_tab / sizeof world_tab[0];
	r = dns_resolver_new_transport(canned_transport, w, NULL, NULL, NULL);
	dns_resolver_set_trusted(r, trusted);
	return r;
}

static void
test_parse(void)
{
	size_t len;
	uint8_t *w;
	struct dns_rrset *a;

	w = build_pkt("x.test", DNS_T_TLSA, 0, F_AD,
	    L("x.test. IN CNAME y.test.", "y.test. IN TLSA 3 1 1 abcd", "z.test. IN TLSA 3 1 1 ef"), &len);
	a = dns_answer_parse(w, len, "x.test", DNS_T_TLSA);
	CU_ASSERT_EQUAL(a->kind, DNS_K_DATA);
	CU_ASSERT_EQUAL(a->ad, 1);
	CU_ASSERT_EQUAL(a->cnames, 1);
	CU_ASSERT_STRING_EQUAL(a->owner, "y.test");
	CU_ASSERT_EQUAL_FATAL(a->n, 1);		/* z.test's record is not ours */
	CU_ASSERT_EQUAL(a->rrs[0].rawlen, 5);
	CU_ASSERT_EQUAL(memcmp(a->rrs[0].raw, "\3\1\1\xab\xcd", 5), 0);
	dns_rrset_free(&a);
	free(w);

	/* A chain that ends without data: its end is asked next. */
	w = build_pkt("x.test", DNS_T_TLSA, 0, 0, L("x.test. IN CNAME y.test."), &len);
	a = dns_answer_parse(w, len, "x.test", DNS_T_TLSA);
	CU_ASSERT_EQUAL(a->kind, DNS_K_CNAME);
	CU_ASSERT_STRING_EQUAL(a->target, "y.test");
	CU_ASSERT_EQUAL(a->ad, 0);
	dns_rrset_free(&a);
	free(w);

	w = build_pkt("x.test", DNS_T_TLSA, LDNS_RCODE_SERVFAIL, F_AD, NULL, &len);
	a = dns_answer_parse(w, len, "x.test", DNS_T_TLSA);
	CU_ASSERT_EQUAL(a->kind, DNS_K_TEMP);
	CU_ASSERT_EQUAL(a->ad, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(a->detail, "SERVFAIL"));
	dns_rrset_free(&a);
	free(w);

	/* Truncated, another question, garbage: failures, never data. */
	w = build_pkt("x.test", DNS_T_TLSA, 0, F_AD | F_TC, L("x.test. IN TLSA 3 1 1 ab"), &len);
	a = dns_answer_parse(w, len, "x.test", DNS_T_TLSA);
	CU_ASSERT_EQUAL(a->kind, DNS_K_TEMP);
	dns_rrset_free(&a);
	a = dns_answer_parse(w, len, "other.test", DNS_T_TLSA);
	CU_ASSERT_EQUAL(a->kind, DNS_K_TEMP);
	dns_rrset_free(&a);
	free(w);
	a = dns_answer_parse((const uint8_t *)"\0\1\x81\x80\0\1\0\0", 8, "x.test", 1);
	CU_ASSERT_EQUAL(a->kind, DNS_K_TEMP);
	dns_rrset_free(&a);

	/* A TLSA record too short to hold its fields is dropped. */
	w = build_pkt("x.test", DNS_T_TLSA, 0, F_AD, L("x.test. IN TYPE52 \\# 2 0301"), &len);
	a = dns_answer_parse(w, len, "x.test", DNS_T_TLSA);
	CU_ASSERT_EQUAL(a->n, 0);
	CU_ASSERT_EQUAL(a->nbad, 1);
	dns_rrset_free(&a);
	free(w);

	/* Records in an NXDOMAIN answer are refused. */
	w = build_pkt("x.test", DNS_T_TXT, LDNS_RCODE_NXDOMAIN, F_AD, L("x.test. IN TXT \"a\""), &len);
	a = dns_answer_parse(w, len, "x.test", DNS_T_TXT);
	CU_ASSERT_EQUAL(a->kind, DNS_K_TEMP);
	dns_rrset_free(&a);
	free(w);
	w = build_pkt("x.test", DNS_T_TXT, LDNS_RCODE_NXDOMAIN, F_AD, NULL, &len);
	a = dns_answer_parse(w, len, "x.test", DNS_T_TXT);
	CU_ASSERT_EQUAL(a->kind, DNS_K_NXDOMAIN);
	CU_ASSERT_EQUAL(a->ad, 1);
	dns_rrset_free(&a);
	free(w);
}

static void
test_cname_loop(void)
{
	size_t len;
	uint8_t *w = build_pkt("a.test", DNS_T_A, 0, F_AD,
	    L("a.test. IN CNAME b.test.", "b.test. IN CNAME a.test."), &len);
	struct dns_rrset *a = dns_answer_parse(w, len, "a.test", DNS_T_A);

	CU_ASSERT_EQUAL(a->kind, DNS_K_TEMP);
	dns_rrset_free(&a);
	free(w);
}

/* The cache keeps each answer's state: a second lookup asks nobody and
 * says the same, and a chain is as secure as its weakest answer. */
static void
test_cache_keeps_state(void)
{
	struct canned_world w;
	struct dns_resolver *r = world_sec(&w, 1);
	struct dns_records *rs;
	unsigned q;

	CU_ASSERT_EQUAL(dns_records_lookup(r, "mx.secure.test", DNS_RTYPE_A, &rs), DNS_REC_DATA);
	CU_ASSERT_EQUAL(rs->sec, DNS_SEC_SECURE);
	dns_records_free(&rs);
	q = w.queries;
	CU_ASSERT_EQUAL(dns_records_lookup(r, "mx.secure.test", DNS_RTYPE_A, &rs), DNS_REC_DATA);
	CU_ASSERT_EQUAL(rs->sec, DNS_SEC_SECURE);
	CU_ASSERT_STRING_EQUAL(rs->owner, "mx.secure.test");
	CU_ASSERT_EQUAL(w.queries, q);
	dns_records_free(&rs);

	/* A secure CNAME (asked again from the cache) to an unsigned target. */
	CU_ASSERT_EQUAL(dns_records_lookup(r, "_25._tcp.half.test", DNS_RTYPE_TLSA, &rs),
	    DNS_REC_DATA);
	CU_ASSERT_EQUAL(rs->sec, DNS_SEC_INSECURE);
	CU_ASSERT_EQUAL(rs->cnames, 1);
	CU_ASSERT_STRING_EQUAL(rs->owner, "tlsa.unsigned.test");
	CU_ASSERT_EQUAL_FATAL(rs->n, 1);
	CU_ASSERT_EQUAL(rs->rr[0].rawlen, 4);
	dns_records_free(&rs);
	q = w.queries;
	CU_ASSERT_EQUAL(dns_records_lookup(r, "_25._tcp.half.test", DNS_RTYPE_TLSA, &rs),
	    DNS_REC_DATA);
	CU_ASSERT_EQUAL(rs->sec, DNS_SEC_INSECURE);
	CU_ASSERT_EQUAL(w.queries, q);
	dns_records_free(&rs);

	/* Failures are bogus, and the cached resolver's other users see the
	 * same answers: dns_mx_lookup and the MX view agree. */
	CU_ASSERT_EQUAL(dns_records_lookup(r, "bogus.test", DNS_RTYPE_MX, &rs), DNS_REC_TEMP);
	CU_ASSERT_EQUAL(rs->sec, DNS_SEC_BOGUS);
	dns_records_free(&rs);
	{
		struct dns_mx_result *mx;
		struct dns_sec_mx smx;

		CU_ASSERT_EQUAL(dns_mx_lookup(r, "secure.test", &mx), DNS_OK);
		q = w.queries;
		CU_ASSERT_EQUAL(dns_sec_mx_lookup(r, "secure.test", &smx), DNS_SEC_SECURE);
		CU_ASSERT_EQUAL(w.queries, q);
		CU_ASSERT(dns_sec_mx_has(&smx, mx->hosts[0].name));
		dns_mx_result_free(&mx);
	}
	dns_resolver_free(&r);
}

static void
test_tlsa(void)
{
	struct canned_world w;
	struct dns_resolver *s = world_sec(&w, 1);
	struct dns_tlsa_result *r;

	CU_ASSERT_EQUAL(dns_tlsa_lookup(s, "MX.secure.test.", 25, &r), DNS_SEC_DATA);
	CU_ASSERT_EQUAL(r->state, DNS_SEC_SECURE);
	CU_ASSERT_STRING_EQUAL(r->qname, "_25._tcp.mx.secure.test");
	CU_ASSERT_EQUAL_FATAL(r->n, 2);
	CU_ASSERT_EQUAL(r->rrs[0].usage, 3);
	CU_ASSERT_EQUAL(r->rrs[0].selector, 1);
	CU_ASSERT_EQUAL(r->rrs[0].mtype, 1);
	CU_ASSERT_EQUAL(r->rrs[0].len, 32);
	CU_ASSERT_EQUAL(r->rrs[0].data[0], 0x01);
	CU_ASSERT_EQUAL(r->rrs[1].usage, 2);
	CU_ASSERT_EQUAL(r->rrs[1].selector, 0);
	dns_tlsa_result_free(&r);
	CU_ASSERT_PTR_NULL(r);

	/* Through a CNAME in another signed zone. */
	CU_ASSERT_EQUAL(dns_tlsa_lookup(s, "mx2.secure.test", 25, &r), DNS_SEC_DATA);
	CU_ASSERT_EQUAL(r->state, DNS_SEC_SECURE);
	CU_ASSERT_EQUAL_FATAL(r->n, 1);
	CU_ASSERT_EQUAL(r->rrs[0].len, 2);
	dns_tlsa_result_free(&r);

	/* A secure CNAME to an unsigned target is insecure as a whole. */
	CU_ASSERT_EQUAL(dns_tlsa_lookup(s, "half.test", 25, &r), DNS_SEC_DATA);
	CU_ASSERT_EQUAL(r->state, DNS_SEC_INSECURE);
	dns_tlsa_result_free(&r);

	CU_ASSERT_EQUAL(dns_tlsa_lookup(s, "mx.insecure.test", 25, &r), DNS_SEC_DATA);
	CU_ASSERT_EQUAL(r->state, DNS_SEC_INSECURE);
	dns_tlsa_result_free(&r);

	CU_ASSERT_EQUAL(dns_tlsa_lookup(s, "mx.bogus.test", 25, &r), DNS_SEC_FAIL);
	CU_ASSERT_EQUAL(r->state, DNS_SEC_BOGUS);
	CU_ASSERT_EQUAL(r->n, 0);
	dns_tlsa_result_free(&r);

	CU_ASSERT_EQUAL(dns_tlsa_lookup(s, "none.secure.test", 25, &r), DNS_SEC_NODATA);
	CU_ASSERT_EQUAL(r->state, DNS_SEC_SECURE);
	dns_tlsa_result_free(&r);

	CU_ASSERT_EQUAL(dns_tlsa_lookup(s, "silent.test", 25, &r), DNS_SEC_FAIL);
	CU_ASSERT_EQUAL(r->state, DNS_SEC_BOGUS);
	dns_tlsa_result_free(&r);

	CU_ASSERT_EQUAL(dns_tlsa_lookup(s, "bad name", 25, &r), DNS_SEC_FAIL);
	dns_tlsa_result_free(&r);
	CU_ASSERT_EQUAL(dns_tlsa_lookup(s, "nx.secure.test", 587, &r), DNS_SEC_NXDOMAIN);
	CU_ASSERT_STRING_EQUAL(r->qname, "_587._tcp.nx.secure.test");
	dns_tlsa_result_free(&r);
	dns_resolver_free(&s);
}

static void
test_untrusted_path(void)
{
	struct canned_world w;
	struct dns_resolver *s = world_sec(&w, 0);
	struct dns_tlsa_result *r;
	struct dns_sec_mx mx;

	/* The same AD answers count for nothing over an untrusted path. */
	CU_ASSERT_EQUAL(dns_sec_trusted(s), 0);
	CU_ASSERT_EQUAL(dns_tlsa_lookup(s, "mx.secure.test", 25, &r), DNS_SEC_DATA);
	CU_ASSERT_EQUAL(r->state, DNS_SEC_INSECURE);
	dns_tlsa_result_free(&r);
	CU_ASSERT_EQUAL(dns_sec_mx_lookup(s, "secure.test", &mx), DNS_SEC_INSECURE);
	dns_resolver_free(&s);
}

static void
test_mx(void)
{
	struct canned_world w;
	struct dns_resolver *s = world_sec(&w, 1);
	struct dns_sec_mx mx;

	CU_ASSERT_EQUAL(dns_sec_mx_lookup(s, "Secure.Test", &mx), DNS_SEC_SECURE);
	CU_ASSERT_EQUAL(mx.kind, DNS_SEC_DATA);
	CU_ASSERT_EQUAL(mx.nnames, 2);		/* the root exchange is not a host */
	CU_ASSERT(dns_sec_mx_has(&mx, "mx.secure.test"));
	CU_ASSERT(dns_sec_mx_has(&mx, "MX2.secure.test."));
	CU_ASSERT(!dns_sec_mx_has(&mx, "mx3.secure.test"));
	CU_ASSERT(!dns_sec_mx_has(&mx, "bad name"));

	CU_ASSERT_EQUAL(dns_sec_mx_lookup(s, "insecure.test", &mx), DNS_SEC_INSECURE);
	CU_ASSERT_EQUAL(mx.nnames, 1);
	CU_ASSERT_EQUAL(dns_sec_mx_lookup(s, "bogus.test", &mx), DNS_SEC_BOGUS);
	CU_ASSERT_EQUAL(mx.kind, DNS_SEC_FAIL);
	CU_ASSERT_PTR_NOT_NULL(strstr(mx.detail, "bogus.test"));
	CU_ASSERT_EQUAL(dns_sec_mx_lookup(s, "nomx.secure.test", &mx), DNS_SEC_SECURE);
	CU_ASSERT_EQUAL(mx.kind, DNS_SEC_NODATA);	/* a secure implicit MX */
	CU_ASSERT_EQUAL(dns_sec_mx_lookup(s, "..", &mx), DNS_SEC_BOGUS);
	dns_resolver_free(&s);
}

static void
test_host(void)
{
	struct canned_world w;
	struct dns_resolver *s = world_sec(&w, 1);
	struct dns_sec_host h;

	CU_ASSERT_EQUAL(dns_sec_host_lookup(s, "mx.secure.test", &h), DNS_SEC_SECURE);
	CU_ASSERT_EQUAL(h.alias, 0);
	CU_ASSERT_STRING_EQUAL(h.expanded, "mx.secure.test");

	CU_ASSERT_EQUAL(dns_sec_host_lookup(s, "alias.secure.test", &h), DNS_SEC_SECURE);
	CU_ASSERT_EQUAL(h.alias, 1);
	CU_ASSERT_STRING_EQUAL(h.expanded, "real.secure.test");
	CU_ASSERT_EQUAL(h.alias_state, DNS_SEC_SECURE);

	/* A signed alias into an unsigned zone. */
	CU_ASSERT_EQUAL(dns_sec_host_lookup(s, "out.secure.test", &h), DNS_SEC_INSECURE);
	CU_ASSERT_EQUAL(h.alias, 1);
	CU_ASSERT_STRING_EQUAL(h.expanded, "mx.unsigned.test");
	CU_ASSERT_EQUAL(h.alias_state, DNS_SEC_SECURE);

	/* One family insecure makes the host insecure. */
	CU_ASSERT_EQUAL(dns_sec_host_lookup(s, "mixed.test", &h), DNS_SEC_INSECURE);
	CU_ASSERT_EQUAL(h.alias, 0);

	CU_ASSERT_EQUAL(dns_sec_host_lookup(s, "silent.test", &h), DNS_SEC_BOGUS);
	CU_ASSERT(h.detail[0] != '\0');
	dns_resolver_free(&s);
}

static void
test_txt(void)
{
	struct canned_world w;
	struct dns_resolver *s = world_sec(&w, 1);
	struct dns_records *r;

	CU_ASSERT_EQUAL(dns_txt_lookup(s, "_mta-sts.secure.test", &r), DNS_REC_DATA);
	CU_ASSERT_EQUAL(r->sec, DNS_SEC_INSECURE);
	CU_ASSERT_EQUAL_FATAL(r->n, 2);
	CU_ASSERT_STRING_EQUAL(r->rr[0].text, "v=STSv1; id=2026A;");
	CU_ASSERT_STRING_EQUAL(r->rr[1].text, "other");
	dns_records_free(&r);
	CU_ASSERT_PTR_NULL(r);

	CU_ASSERT_EQUAL(dns_txt_lookup(s, "nul.test", &r), DNS_REC_DATA);
	CU_ASSERT_EQUAL_FATAL(r->n, 2);		/* kept: its users decide */
	CU_ASSERT_EQUAL(r->rr[0].textlen, 3);
	dns_records_free(&r);

	CU_ASSERT_EQUAL(dns_txt_lookup(s, "nothing.test", &r), DNS_REC_NXDOMAIN);
	CU_ASSERT_EQUAL(r->n, 0);
	CU_ASSERT_EQUAL(r->sec, DNS_SEC_SECURE);	/* a signed denial */
	dns_records_free(&r);
	CU_ASSERT_EQUAL(dns_txt_lookup(s, "bad..name", &r), DNS_REC_BAD_NAME);
	CU_ASSERT_EQUAL(r->sec, DNS_SEC_BOGUS);
	dns_records_free(&r);
	dns_resolver_free(&s);
}

static void
test_new(void)
{
	char err[200];
	struct dns_server_addr sv[2];
	struct dns_resolver *s;

	memset(sv, 0, sizeof sv);
	str_copy(sv[0].addr, "127.0.0.1", sizeof sv[0].addr);
	sv[0].port = 5353;
	str_copy(sv[1].addr, "[::1]", sizeof sv[1].addr);
	s = dns_resolver_new(sv, 2, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(dns_sec_trusted(s), 1);
	dns_resolver_free(&s);
	CU_ASSERT_PTR_NULL(s);

	str_copy(sv[1].addr, "192.0.2.53", sizeof sv[1].addr);
	s = dns_resolver_new(sv, 2, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(dns_sec_trusted(s), 0);	/* AD over the wire: not believed */
	dns_resolver_free(&s);

	str_copy(sv[1].addr, "not-an-address", sizeof sv[1].addr);
	CU_ASSERT_PTR_NULL(dns_resolver_new(sv, 2, err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not-an-address"));

	CU_ASSERT_STRING_EQUAL(dns_sec_state_str(DNS_SEC_SECURE), "secure");
	CU_ASSERT_STRING_EQUAL(dns_sec_state_str(DNS_SEC_INSECURE), "insecure");
	CU_ASSERT_STRING_EQUAL(dns_sec_state_str(DNS_SEC_BOGUS), "bogus");
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("dnssec", NULL, NULL);
	CU_add_test(s, "answer parsing", test_parse);
	CU_add_test(s, "CNAME loop", test_cname_loop);
	CU_add_test(s, "the cache keeps the state", test_cache_keeps_state);
	CU_add_test(s, "TLSA lookups", test_tlsa);
	CU_add_test(s, "AD over an untrusted path", test_untrusted_path);
	CU_add_test(s, "MX view", test_mx);
	CU_add_test(s, "host view", test_host);
	CU_add_test(s, "TXT lookups", test_txt);
	CU_add_test(s, "construction", test_new);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
