/*
 * test_dmarc: auth/dmarc: the policy record parser on good and hostile
 * records (RFC 7489 6.3, 6.4, 6.6.3), organizational domains through the
 * Public Suffix List, and whole checks against an auth_dns_table: policy
 * at the From domain and at its organizational domain (sp=), strict and
 * relaxed alignment of SPF and DKIM, pct= sampling, and the outcomes
 * that end discovery (several records, no valid p=, DNS failure).
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_dns_table.h"
#include "auth/dmarc.h"
#include "lib/util.h"

static void
test_record_parse(void)
{
	static const struct {
		const char *txt;
		int ok, p_valid;
		enum dmarc_policy p, sp;
		unsigned pct;
		int sdkim, sspf;
	} recs[] = {
		{ "v=DMARC1; p=reject", 1, 1, DMARC_P_REJECT, DMARC_P_REJECT, 100,
		  0, 0 },
		{ "v=DMARC1;p=quarantine;sp=none;pct=25;adkim=s;aspf=r", 1, 1,
		  DMARC_P_QUARANTINE, DMARC_P_NONE, 25, 1, 0 },
		{ "v = DMARC1 ; p = NONE ; aspf=s;", 1, 1, DMARC_P_NONE,
		  DMARC_P_NONE, 100, 0, 1 },
		{ "v=DMARC1; p=reject; pct=101", 1, 1, DMARC_P_REJECT,
		  DMARC_P_REJECT, 100, 0, 0 },
		{ "v=DMARC1; p=reject; pct=x; junk; 7=8; fo=1", 1, 1,
		  DMARC_P_REJECT, DMARC_P_REJECT, 100, 0, 0 },
		{ "v=DMARC1; p=reject; pct=0", 1, 1, DMARC_P_REJECT,
		  DMARC_P_REJECT, 0, 0, 0 },
		{ "v=DMARC1; p=bogus", 1, 0, DMARC_P_NONE, DMARC_P_NONE, 100, 0,
		  0 },
		{ "v=DMARC1; rua=mailto:d@example.com", 1, 1, DMARC_P_NONE,
		  DMARC_P_NONE, 100, 0, 0 },
		{ "v=DMARC1; p=reject; sp=bogus", 1, 0, DMARC_P_REJECT,
		  DMARC_P_REJECT, 100, 0, 0 },
		{ "v=DMARC1; p=reject; sp=bogus; rua=mailto:a@b.example", 1, 1,
		  DMARC_P_NONE, DMARC_P_NONE, 100, 0, 0 },
		{ "v=DMARC1; p=bogus; rua=nonsense", 1, 0, DMARC_P_NONE,
		  DMARC_P_NONE, 100, 0, 0 },
		{ "v=DMARC1", 1, 0, DMARC_P_NONE, DMARC_P_NONE, 100, 0, 0 },
		{ "p=reject; v=DMARC1", 0, 0, 0, 0, 0, 0, 0 },
		{ "v=dmarc1; p=reject", 0, 0, 0, 0, 0, 0, 0 },
		{ "v=DMARC2; p=reject", 0, 0, 0, 0, 0, 0, 0 },
		{ "v=spf1 -all", 0, 0, 0, 0, 0, 0, 0 },
		{ "", 0, 0, 0, 0, 0, 0, 0 },
		{ "\xff\xfe", 0, 0, 0, 0, 0, 0, 0 },
	};

	for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
		struct dmarc_record r;
		int rc = dmarc_record_parse(recs[i].txt, strlen(recs[i].txt), &r);
		if ((rc == 0) != recs[i].ok)
			printf("\nrecord \"%s\": %d\n", recs[i].txt, rc);
		CU_ASSERT_EQUAL(rc == 0, recs[i].ok);
		if (rc != 0)
			continue;
		CU_ASSERT_EQUAL(r.p_valid, recs[i].p_valid);
		if (!r.p_valid)
			continue;
		CU_ASSERT_EQUAL(r.p, recs[i].p);
		CU_ASSERT_EQUAL(r.sp, recs[i].sp);
		CU_ASSERT_EQUAL(r.pct, recs[i].pct);
		CU_ASSERT_EQUAL(r.strict_dkim, recs[i].sdkim);
		CU_ASSERT_EQUAL(r.strict_spf, recs[i].sspf);
	}
}

static void
test_org_domain(void)
{
	static const char *const cases[][2] = {
		{ "mail.example.com", "example.com" },
		{ "EXAMPLE.com.", "example.com" },
		{ "a.b.example.co.uk", "example.co.uk" },
		{ "co.uk", "co.uk" },
		{ "com", "com" },
		{ "deep.sub.example.test", "example.test" },
	};
	char out[256];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CU_ASSERT_EQUAL(dmarc_org_domain(cases[i][0], out, sizeof out), 0);
		CU_ASSERT_STRING_EQUAL(out, cases[i][1]);
	}
	CU_ASSERT_EQUAL(dmarc_org_domain("example.com", out, 5), -1);
}

static const char zone[] =
	"_dmarc.example.test TXT \"v=DMARC1; p=reject; sp=quarantine\"\n"
	"_dmarc.strict.test TXT \"v=DMARC1; p=reject; adkim=s; aspf=s\"\n"
	"_dmarc.half.test TXT \"v=DMARC1; p=reject; pct=50\"\n"
	"_dmarc.zero.test TXT \"v=DMARC1; p=quarantine; pct=0\"\n"
	"_dmarc.two.test TXT \"v=DMARC1; p=reject\"\n"
	"_dmarc.two.test TXT \"v=DMARC1; p=none\"\n"
	"_dmarc.x.example.test TXT \"v=DMARC1; p=none\"\n"
	"_dmarc.x.example.test TXT \"v=DMARC1; p=none; pct=5\"\n"
	"_dmarc.mixed.test TXT \"v=spf1 -all\"\n"
	"_dmarc.mixed.test TXT \"v=DMARC1; p=quarantine\"\n"
	"_dmarc.nop.test TXT \"v=DMARC1; pct=10\"\n"
	"_dmarc.own.example.test TXT \"v=DMARC1; p=none\"\n"
	"_dmarc.fail.test TEMP TXT\n";

static struct auth_dns *
zone_dns(void)
{
	struct auth_dns *d = auth_dns_table_new();
	char err[100];

	if (auth_dns_table_load(d, zone, sizeof zone - 1, err, sizeof err) != 0)
		abort();
	return d;
}

static enum dmarc_result
check(const struct auth_dns *d, const char *from, const char *spf_domain,
    const char *dkim_domain, unsigned sample, struct dmarc_outcome *out)
{
	struct dkim_results dk;
	struct dmarc_input in = { .from_domain = from, .sample = sample };

	memset(&dk, 0, sizeof dk);
	if (dkim_domain != NULL) {
		/* a failed signature of the same domain must not count */
		dk.sig[0].result = DKIM_FAIL;
		str_copy(dk.sig[0].domain, dkim_domain, sizeof dk.sig[0].domain);
		dk.sig[1].result = DKIM_PASS;
		str_copy(dk.sig[1].domain, dkim_domain, sizeof dk.sig[1].domain);
		dk.n = 2;
	}
	in.dkim = &dk;
	in.spf_result = spf_domain ? SPF_PASS : SPF_NONE;
	in.spf_domain = spf_domain;
	return dmarc_check(d, &in, out);
}

static void
test_alignment(void)
{
	struct auth_dns *d = zone_dns();
	struct dmarc_outcome o;

	/* Aligned both ways, SPF only, DKIM only, relaxed subdomains. */
	CU_ASSERT_EQUAL(check(d, "example.test", "example.test", "example.test",
	    0, &o), DMARC_PASS);
	CU_ASSERT(o.spf_aligned && o.dkim_aligned);
	CU_ASSERT_EQUAL(o.policy, DMARC_P_REJECT);
	CU_ASSERT_EQUAL(o.disposition, DMARC_P_NONE);
	CU_ASSERT_STRING_EQUAL(o.policy_domain, "example.test");
	CU_ASSERT_EQUAL(check(d, "example.test", "bounce.example.test", NULL, 0,
	    &o), DMARC_PASS);
	CU_ASSERT(o.spf_aligned && !o.dkim_aligned);
	CU_ASSERT_EQUAL(check(d, "example.test", "other.test",
	    "mail.example.test", 0, &o), DMARC_PASS);
	CU_ASSERT(!o.spf_aligned && o.dkim_aligned);
	CU_ASSERT_STRING_EQUAL(o.dkim_domain, "mail.example.test");

	/* Passing for another domain is not aligned: fail, p=reject. */
	CU_ASSERT_EQUAL(check(d, "example.test", "other.test", "other.test", 0,
	    &o), DMARC_FAIL);
	CU_ASSERT_EQUAL(o.disposition, DMARC_P_REJECT);
	CU_ASSERT_EQUAL(check(d, "example.test", NULL, "xexample.test", 0, &o),
	    DMARC_FAIL);

	/* Strict alignment wants the exact domain. */
	CU_ASSERT_EQUAL(check(d, "strict.test", "mail.strict.test",
	    "mail.strict.test", 0, &o), DMARC_FAIL);
	CU_ASSERT_EQUAL(check(d, "strict.test", "STRICT.test", NULL, 0, &o),
	    DMARC_PASS);
	CU_ASSERT_EQUAL(check(d, "strict.test", NULL, "strict.test.", 0, &o),
	    DMARC_PASS);
	auth_dns_free(&d);
}

static void
test_discovery(void)
{
	struct auth_dns *d = zone_dns();
	struct dmarc_outcome o;

	/* A subdomain without a record: the organizational domain's sp=. */
	CU_ASSERT_EQUAL(check(d, "a.b.example.test", NULL, NULL, 0, &o),
	    DMARC_FAIL);
	CU_ASSERT_STRING_EQUAL(o.policy_domain, "example.test");
	CU_ASSERT_STRING_EQUAL(o.org_domain, "example.test");
	CU_ASSERT_EQUAL(o.policy, DMARC_P_QUARANTINE);
	CU_ASSERT_EQUAL(o.disposition, DMARC_P_QUARANTINE);
	/* A subdomain with its own record uses it. */
	CU_ASSERT_EQUAL(check(d, "own.example.test", NULL, NULL, 0, &o),
	    DMARC_FAIL);
	CU_ASSERT_EQUAL(o.policy, DMARC_P_NONE);
	CU_ASSERT_STRING_EQUAL(o.policy_domain, "own.example.test");

	/* Nothing published; several records end discovery (no fallback to
	 * the organizational domain); other TXT records do not count. */
	CU_ASSERT_EQUAL(check(d, "nowhere.test", NULL, NULL, 0, &o), DMARC_NONE);
	CU_ASSERT_EQUAL(check(d, "two.test", NULL, NULL, 0, &o), DMARC_NONE);
	CU_ASSERT(strstr(o.problem, "2 DMARC records") != NULL);
	CU_ASSERT_EQUAL(check(d, "x.example.test", NULL, NULL, 0, &o), DMARC_NONE);
	CU_ASSERT(strstr(o.problem, "2 DMARC records") != NULL);
	CU_ASSERT_EQUAL(check(d, "mixed.test", NULL, NULL, 0, &o), DMARC_FAIL);
	CU_ASSERT_EQUAL(o.policy, DMARC_P_QUARANTINE);
	CU_ASSERT_EQUAL(check(d, "nop.test", NULL, NULL, 0, &o), DMARC_NONE);
	CU_ASSERT_EQUAL(check(d, "fail.test", NULL, NULL, 0, &o),
	    DMARC_TEMPERROR);
	CU_ASSERT_EQUAL(check(d, NULL, NULL, NULL, 0, &o), DMARC_NONE);
	{
		struct dmarc_input in = { .from_domain = "example.test",
		    .from_ambiguous = 1 };
		CU_ASSERT_EQUAL(dmarc_check(d, &in, &o), DMARC_PERMERROR);
	}
	auth_dns_free(&d);
}

static void
test_pct(void)
{
	struct auth_dns *d = zone_dns();
	struct dmarc_outcome o;

	/* pct=50: samples 0..49 get the policy, 50..99 the next one down. */
	CU_ASSERT_EQUAL(check(d, "half.test", NULL, NULL, 49, &o), DMARC_FAIL);
	CU_ASSERT_EQUAL(o.disposition, DMARC_P_REJECT);
	CU_ASSERT_EQUAL(o.sampled_out, 0);
	CU_ASSERT_EQUAL(check(d, "half.test", NULL, NULL, 50, &o), DMARC_FAIL);
	CU_ASSERT_EQUAL(o.disposition, DMARC_P_QUARANTINE);
	CU_ASSERT_EQUAL(o.sampled_out, 1);
	/* pct=0: never applied; quarantine falls to none. */
	CU_ASSERT_EQUAL(check(d, "zero.test", NULL, NULL, 0, &o), DMARC_FAIL);
	CU_ASSERT_EQUAL(o.policy, DMARC_P_QUARANTINE);
	CU_ASSERT_EQUAL(o.disposition, DMARC_P_NONE);
	CU_ASSERT_EQUAL(o.sampled_out, 1);
	/* pct=100 (default): always. */
	CU_ASSERT_EQUAL(check(d, "example.test", NULL, NULL, 99, &o), DMARC_FAIL);
	CU_ASSERT_EQUAL(o.disposition, DMARC_P_REJECT);
	auth_dns_free(&d);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("dmarc", NULL, NULL);
	CU_add_test(s, "record parser", test_record_parse);
	CU_add_test(s, "organizational domains", test_org_domain);
	CU_add_test(s, "alignment", test_alignment);
	CU_add_test(s, "policy discovery", test_discovery);
	CU_add_test(s, "pct sampling", test_pct);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
