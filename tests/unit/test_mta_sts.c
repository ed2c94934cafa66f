/*
 * test_mta_sts: the RFC 8461 text formats (relay/mta_sts.c): TXT records
 * good and bad, the choice among several, policies good, bad and hostile,
 * and MX pattern matching with wildcards.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/mta_sts.h"

static void
test_txt(void)
{
	static const struct {
		const char *txt;
		const char *id;		/* NULL: invalid */
	} t[] = {
		{ "v=STSv1; id=20160831085700Z;", "20160831085700Z" },
		{ "v=STSv1; id=abc", "abc" },
		{ "v=STSv1;id=abc", "abc" },
		{ "v=STSv1 ; id=abc ; ", "abc" },
		{ "v=STSv1; id=a1; ext=x-y.z!", "a1" },
		{ "v=STSv1; ext_1=v; id=Z9", "Z9" },
		{ "v=STSv1; id=12345678901234567890123456789012", "12345678901234567890123456789012" },
		{ "v=STSv1; id=123456789012345678901234567890123", NULL },	/* 33 */
		{ "v=STSv1;", NULL },				/* no id */
		{ "v=STSv1", NULL },
		{ "v=STSv1; id=", NULL },
		{ "v=STSv1; id=a-b", NULL },			/* id is alnum only */
		{ "v=STSv1; id=a; id=b", NULL },			/* twice */
		{ "v=STSv1;; id=a", NULL },
		{ "v=STSv10; id=a", NULL },
		{ "v=stsv1; id=a", NULL },
		{ " v=STSv1; id=a", "a" },
		{ "id=a; v=STSv1", NULL },			/* version first */
		{ "v=STSv1; id=a; bad", NULL },
		{ "v=STSv1; id=a; _x=1", NULL },
		{ "v=STSv1; id=a; x=a=b", NULL },
		{ "v=STSv1; id=a; x=\x01", NULL },
		{ "", NULL },
	};
	char id[MTA_STS_ID_MAX + 1];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int rc = mta_sts_txt_parse(t[i].txt, id);
		if (rc != (t[i].id ? 0 : -1))
			fprintf(stderr, "\n  txt \"%s\": %d", t[i].txt, rc);
		CU_ASSERT_EQUAL(rc, t[i].id ? 0 : -1);
		if (t[i].id && rc == 0)
			CU_ASSERT_STRING_EQUAL(id, t[i].id);
	}
	CU_ASSERT_EQUAL(mta_sts_txt_parse(NULL, id), -1);
}

static void
test_txt_select(void)
{
	char id[MTA_STS_ID_MAX + 1];
	char *one[] = { "v=spf1 -all", "v=STSv1; id=X1;", "google-site-verification=..." };
	char *two[] = { "v=STSv1; id=X1;", "v=STSv1; id=X2;" };
	char *bad[] = { "v=STSv1; id=;", "other" };
	char *none[] = { "v=STSv10; id=1", "hello" };

	CU_ASSERT_EQUAL(mta_sts_txt_select(one, 3, id), 0);
	CU_ASSERT_STRING_EQUAL(id, "X1");
	CU_ASSERT_EQUAL(mta_sts_txt_select(two, 2, id), -1);
	CU_ASSERT_EQUAL(mta_sts_txt_select(bad, 2, id), -1);
	CU_ASSERT_EQUAL(mta_sts_txt_select(none, 2, id), -1);
	CU_ASSERT_EQUAL(mta_sts_txt_select(NULL, 0, id), -1);
}

static int
pparse(const char *text, struct mta_sts_policy *p, char *why)
{
	return mta_sts_policy_parse(text, strlen(text), p, why, 200);
}

static void
test_policy(void)
{
	struct mta_sts_policy p;
	char why[200];

	CU_ASSERT_EQUAL(pparse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	    "mx: *.Example.NET\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n", &p, why), 0);
	CU_ASSERT_EQUAL(p.mode, MTA_STS_MODE_ENFORCE);
	CU_ASSERT_EQUAL(p.max_age, 604800);
	CU_ASSERT_EQUAL_FATAL(p.nmx, 3);
	CU_ASSERT_STRING_EQUAL(p.mx[0], "mail.example.com");
	CU_ASSERT_STRING_EQUAL(p.mx[1], "*.example.net");
	/* LF only, no final newline, any order, whitespace, extensions. */
	CU_ASSERT_EQUAL(pparse("mode:testing\nmx:  a.test \t\nfoo_bar: any value here\n"
	    "version: STSv1\n\nmax_age: 86400", &p, why), 0);
	CU_ASSERT_EQUAL(p.mode, MTA_STS_MODE_TESTING);
	CU_ASSERT_EQUAL(p.nmx, 1);
	CU_ASSERT_STRING_EQUAL(p.mx[0], "a.test");
	/* mode none needs no mx. */
	CU_ASSERT_EQUAL(pparse("version: STSv1\nmode: none\nmax_age: 0\n", &p, why), 0);
	CU_ASSERT_EQUAL(p.mode, MTA_STS_MODE_NONE);
	/* max_age is cut to a year. */
	CU_ASSERT_EQUAL(pparse("version: STSv1\nmode: none\nmax_age: 9999999999\n", &p, why), 0);
	CU_ASSERT_EQUAL(p.max_age, MTA_STS_MAX_AGE_MAX);
}

static void
test_policy_bad(void)
{
	static const struct {
		const char *text;
		const char *why;
	} t[] = {
		{ "mode: enforce\nmx: a.test\nmax_age: 1\n", "no version" },
		{ "version: STSv1\nmx: a.test\nmax_age: 1\n", "no mode" },
		{ "version: STSv1\nmode: enforce\nmx: a.test\n", "no max_age" },
		{ "version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx pattern" },
		{ "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n", "line 1: unknown version" },
		{ "version: STSv1\nmode: Enforce\nmx: a.test\nmax_age: 1\n", "line 2: unknown mode" },
		{ "version: STSv1\nmode: enforce\nmode: testing\nmx: a.test\nmax_age: 1\n",
		  "line 3: mode given twice" },
		{ "version: STSv1\nversion: STSv1\nmode: none\nmax_age: 1\n", "version given twice" },
		{ "version: STSv1\nmode: none\nmax_age: 1\nmax_age: 2\n", "max_age given twice" },
		{ "version: STSv1\nmode: none\nmax_age: -1\n", "max_age is not a number" },
		{ "version: STSv1\nmode: none\nmax_age: 12345678901\n", "max_age is not a number" },
		{ "version: STSv1\nmode: none\nmax_age: 1d\n", "max_age is not a number" },
		{ "version: STSv1\nmode: enforce\nmx: *.*.a.test\nmax_age: 1\n", "invalid mx pattern" },
		{ "version: STSv1\nmode: enforce\nmx: a.*.test\nmax_age: 1\n", "invalid mx pattern" },
		{ "version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "invalid mx pattern" },
		{ "version: STSv1\nmode: enforce\nmx: a b.test\nmax_age: 1\n", "invalid mx pattern" },
		{ "version: STSv1\nmode: enforce\nmx: _x.test\nmax_age: 1\n", "invalid mx pattern" },
		{ "version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", "mx has no value" },
		{ "version STSv1\n", "line 1: not a \"key: value\" line" },
		{ "<html>\n", "not a \"key: value\" line" },
		{ ": x\n", "not a \"key: value\" line" },
		{ "version: STSv1\x00\n", "NUL or CR" },
		{ "version: STSv1\rmode: none\n", "NUL or CR" },
		{ "version: STSv1\nmode: none\nmax_age: 1\nx: a\x01\n", "control character" },
		{ "", "no version" },
	};
	struct mta_sts_policy p;
	char why[200];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		/* The NUL case needs its length given. */
		size_t len = i == 21 ? 16 : strlen(t[i].text);
		int rc = mta_sts_policy_parse(t[i].text, len, &p, why, sizeof why);
		if (rc != -1 || strstr(why, t[i].why) == NULL)
			fprintf(stderr, "\n  policy case %zu: %d \"%s\"", i, rc, why);
		CU_ASSERT_EQUAL(rc, -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(why, t[i].why));
	}
}

static void
test_policy_limits(void)
{
	struct mta_sts_policy p;
	char why[200];
	size_t cap = MTA_STS_POLICY_MAX + 100, len = 0;
	char *big = malloc(cap);

	/* 65 patterns: over the limit. */
	len = (size_t)snprintf(big, cap, "version: STSv1\nmode: enforce\nmax_age: 1\n");
	for (int i = 0; i <= MTA_STS_MX_MAX; i++)
		len += (size_t)snprintf(big + len, cap - len, "mx: mx%d.test\n", i);
	CU_ASSERT_EQUAL(mta_sts_policy_parse(big, len, &p, why, sizeof why), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "more than 64 mx patterns"));
	/* A line over the limit. */
	len = (size_t)snprintf(big, cap, "version: STSv1\nx: ");
	memset(big + len, 'a', MTA_STS_LINE_MAX);
	len += MTA_STS_LINE_MAX;
	CU_ASSERT_EQUAL(mta_sts_policy_parse(big, len, &p, why, sizeof why), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "line 2: line too long"));
	/* The whole text over the limit. */
	memset(big, '\n', cap);
	CU_ASSERT_EQUAL(mta_sts_policy_parse(big, MTA_STS_POLICY_MAX + 1, &p, why,
	    sizeof why), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "larger than"));
	/* Blank lines only, at the limit: parses, lacks everything. */
	CU_ASSERT_EQUAL(mta_sts_policy_parse(big, MTA_STS_POLICY_MAX, &p, why,
	    sizeof why), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "no version"));
	free(big);
}

static void
test_mx_match(void)
{
	struct mta_sts_policy p;
	char why[200];

	CU_ASSERT_EQUAL_FATAL(pparse("version: STSv1\nmode: enforce\nmax_age: 1\n"
	    "mx: mail.example.com\nmx: *.example.net\n", &p, why), 0);
	CU_ASSERT(mta_sts_mx_match(&p, "mail.example.com"));
	CU_ASSERT(mta_sts_mx_match(&p, "MAIL.Example.com."));
	CU_ASSERT(!mta_sts_mx_match(&p, "mail2.example.com"));
	CU_ASSERT(!mta_sts_mx_match(&p, "example.com"));
	CU_ASSERT(mta_sts_mx_match(&p, "mx1.example.net"));
	CU_ASSERT(!mta_sts_mx_match(&p, "example.net"));
	CU_ASSERT(!mta_sts_mx_match(&p, "a.mx1.example.net"));
	CU_ASSERT(!mta_sts_mx_match(&p, "mx1.example.net.evil.test"));
	CU_ASSERT(!mta_sts_mx_match(&p, "xexample.net"));
	CU_ASSERT(!mta_sts_mx_match(&p, "bad name"));
	CU_ASSERT_STRING_EQUAL(mta_sts_mode_str(MTA_STS_MODE_TESTING), "testing");
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("mta_sts", NULL, NULL);
	CU_add_test(s, "TXT records", test_txt);
	CU_add_test(s, "TXT record choice", test_txt_select);
	CU_add_test(s, "policies", test_policy);
	CU_add_test(s, "bad policies", test_policy_bad);
	CU_add_test(s, "policy limits", test_policy_limits);
	CU_add_test(s, "MX patterns", test_mx_match);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
