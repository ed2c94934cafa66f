/*
 * test_dnsbl: the parts of server/dnsbl that need no DNS server: the
 * `dnsbl` value parser with good and hostile items, RFC 5782 query names
 * for IPv4, IPv6 and v4-mapped clients, the texts of a verdict, and a
 * checker with no zones. tests/unit/test_dnsbl_live.c asks real lists.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "server/dnsbl.h"
#include "tests/unit/sockaddr_text.h"

static void
test_zone_parse(void)
{
	static const struct {
		const char *item;
		const char *name;
		int weight;
	} good[] = {
		{ "zen.example.org", "zen.example.org", 1 },
		{ "ZEN.Example.ORG.", "zen.example.org", 1 },
		{ "bl.test=3", "bl.test", 3 },
		{ "bl.test=+3", "bl.test", 3 },
		{ "allow.test=-5", "allow.test", -5 },
		{ "bl.test=100", "bl.test", 100 },
		{ "bl.test=-100", "bl.test", -100 },
		{ "bl.test=0", "bl.test", 0 },
		{ "bl.test=007", "bl.test", 7 },
		{ "x", "x", 1 },
	};
	static const char *const bad[] = {
		"", "=", "=3", "bl.test=", "bl.test=+", "bl.test=-", "bl.test=101",
		"bl.test=-101", "bl.test=1.5", "bl.test=3x", "bl.test= 3", "bl.test=3=4",
		"bl.test=99999999999999999999999", "zen.spamhaus.org*3", "bl..test",
		".bl.test", "bl test", "bl.test/24", "b\x01l.test", "b\xffl.test",
		"-bl.test=-", "bl.test==1",
	};
	struct dnsbl_zone z;
	char err[200], longname[400];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		int r = dnsbl_zone_parse(good[i].item, &z, err, sizeof err);
		if (r != 0)
			fprintf(stderr, "\n  %s: %s\n", good[i].item, err);
		CU_ASSERT_EQUAL_FATAL(r, 0);
		CU_ASSERT_STRING_EQUAL(z.name, good[i].name);
		CU_ASSERT_EQUAL(z.weight, good[i].weight);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (dnsbl_zone_parse(bad[i], &z, err, sizeof err) == 0)
			fprintf(stderr, "\n  accepted \"%s\"\n", bad[i]);
		CU_ASSERT_EQUAL(dnsbl_zone_parse(bad[i], &z, err, sizeof err), -1);
		CU_ASSERT(err[0] != '\0');
		CU_ASSERT(strpbrk(err, "\x01\xff\n") == NULL);	/* shown safely */
	}
	/* 188 characters fit (an IPv6 query is 64 more and a dot); 189 do not. */
	memset(longname, 'a', sizeof longname);
	for (size_t i = 60; i < 188; i += 61)
		longname[i] = '.';
	longname[188] = '\0';
	CU_ASSERT_EQUAL(dnsbl_zone_parse(longname, &z, err, sizeof err), 0);
	longname[188] = 'a';
	longname[189] = '\0';
	CU_ASSERT_EQUAL(dnsbl_zone_parse(longname, &z, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "longer than 188") != NULL);
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CU_ASSERT_EQUAL(dnsbl_zone_parse(longname, &z, err, sizeof err), -1);
}

static void
test_zones_parse(void)
{
	struct dnsbl_zone z[DNSBL_MAX_ZONES];
	char err[200], value[4096];
	size_t n = 99, len = 0;

	CU_ASSERT_EQUAL(dnsbl_zones_parse("bl.test=2 b2.test, allow.test=-5,,  ", z,
	    DNSBL_MAX_ZONES, &n, err, sizeof err), 0);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_STRING_EQUAL(z[0].name, "bl.test");
	CU_ASSERT_EQUAL(z[0].weight, 2);
	CU_ASSERT_STRING_EQUAL(z[1].name, "b2.test");
	CU_ASSERT_EQUAL(z[1].weight, 1);
	CU_ASSERT_EQUAL(z[2].weight, -5);
	CU_ASSERT_EQUAL(dnsbl_zones_parse("", z, DNSBL_MAX_ZONES, &n, err, sizeof err), 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(dnsbl_zones_parse("bl.test BL.test.=3", z, DNSBL_MAX_ZONES, &n,
	    err, sizeof err), -1);
	CU_ASSERT(strstr(err, "twice") != NULL);
	CU_ASSERT_EQUAL(dnsbl_zones_parse("bl.test bad..zone", z, DNSBL_MAX_ZONES, &n,
	    err, sizeof err), -1);
	CU_ASSERT(strstr(err, "bad..zone") != NULL);
	CU_ASSERT_EQUAL(dnsbl_zones_parse("a.test b.test c.test", z, 2, &n, err,
	    sizeof err), -1);
	CU_ASSERT(strstr(err, "more than 2") != NULL);
	for (int i = 0; i <= DNSBL_MAX_ZONES; i++)
		len += (size_t)snprintf(value + len, sizeof value - len, "z%d.test ", i);
	CU_ASSERT_EQUAL(dnsbl_zones_parse(value, z, 1000, &n, err, sizeof err), -1);
	value[len - 9] = '\0';		/* drop the last: exactly the maximum */
	CU_ASSERT_EQUAL(dnsbl_zones_parse(value, z, 1000, &n, err, sizeof err), 0);
	CU_ASSERT_EQUAL(n, DNSBL_MAX_ZONES);
	{
		static char huge[DNSBL_VALUE_MAX + 100];
		memset(huge, 'a', sizeof huge - 1);
		CU_ASSERT_EQUAL(dnsbl_zones_parse(huge, z, DNSBL_MAX_ZONES, &n, err,
		    sizeof err), -1);
		memset(huge, ' ', sizeof huge - 1);
		huge[300] = 'x';
		CU_ASSERT_EQUAL(dnsbl_zones_parse(huge, z, DNSBL_MAX_ZONES, &n, err,
		    sizeof err), -1);	/* longer than the value maximum */
		huge[DNSBL_VALUE_MAX] = '\0';
		memset(huge + 300, 'y', 300);
		CU_ASSERT_EQUAL(dnsbl_zones_parse(huge, z, DNSBL_MAX_ZONES, &n, err,
		    sizeof err), -1);	/* an item too long */
		CU_ASSERT(strstr(err, "too long") != NULL);
	}
}

static void
test_query_names(void)
{
	static const struct {
		const char *client;
		const char *want;
	} t[] = {
		{ "192.0.2.1", "1.2.0.192.bl.test" },
		{ "127.0.0.2", "2.0.0.127.bl.test" },
		{ "::ffff:198.51.100.7", "7.100.51.198.bl.test" },
		/* RFC 5782 section 2.4's example address. */
		{ "2001:db8:1:2:3:4:567:89ab",
		  "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test" },
		{ "::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test" },
	};
	struct sockaddr_storage ss;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char out[DNS_NAME_MAX];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		sockaddr_text(&ss, t[i].client);
		CU_ASSERT_EQUAL_FATAL(dnsbl_query_name((struct sockaddr *)&ss, "bl.test",
		    out, sizeof out), 0);
		CU_ASSERT_STRING_EQUAL(out, t[i].want);
		/* Exactly enough room, and one byte less. */
		CU_ASSERT_EQUAL(dnsbl_query_name((struct sockaddr *)&ss, "bl.test", out,
		    strlen(t[i].want) + 1), 0);
		CU_ASSERT_EQUAL(dnsbl_query_name((struct sockaddr *)&ss, "bl.test", out,
		    strlen(t[i].want)), -1);
	}
	CU_ASSERT_EQUAL(dnsbl_query_name((struct sockaddr *)&un, "bl.test", out,
	    sizeof out), -1);
}

static void
test_texts_and_empty(void)
{
	struct dnsbl_zone z[3];
	struct dnsbl_verdict v;
	struct dnsbl *d;
	struct sockaddr_storage ss;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char out[256], tiny[12];
	size_t n;

	CU_ASSERT_EQUAL_FATAL(dnsbl_zones_parse("a.test b.test=5 c.test", z, 3, &n,
	    out, sizeof out), 0);
	d = dnsbl_new(z, n, NULL);
	CU_ASSERT_EQUAL(dnsbl_nzones(d), 3);
	CU_ASSERT_STRING_EQUAL(dnsbl_zone_name(d, 1), "b.test");
	CU_ASSERT_STRING_EQUAL(dnsbl_zone_name(d, 3), "");
	memset(&v, 0, sizeof v);
	v.nzones = 3;
	v.zone[0].answer = DNSBL_LISTED;
	memcpy(v.zone[0].addr, "\x7f\0\0\x02", 4);
	v.zone[1].answer = DNSBL_LISTED;
	memcpy(v.zone[1].addr, "\x7f\0\0\x0a", 4);
	v.zone[2].answer = DNSBL_ERROR_CODE;
	memcpy(v.zone[2].addr, "\x7f\xff\xff\xfe", 4);
	CU_ASSERT_STRING_EQUAL(dnsbl_verdict_text(d, &v, out, sizeof out),
	    "a.test=127.0.0.2 b.test=127.0.0.10");
	CU_ASSERT_STRING_EQUAL(dnsbl_verdict_text(d, &v, tiny, sizeof tiny), "");
	dnsbl_verdict_text(d, &v, out, 28);
	CU_ASSERT_STRING_EQUAL(out, "a.test=127.0.0.2");	/* whole items only */
	sockaddr_text(&ss, "192.0.2.9");
	/* The reply names the listing zone of highest weight. */
	CU_ASSERT_STRING_EQUAL(dnsbl_reply(d, &v, (struct sockaddr *)&ss, out, sizeof out),
	    "554 5.7.1 Service unavailable; client [192.0.2.9] blocked using b.test");
	/* Only IP clients are checked; nothing is asked (no resolver). */
	CU_ASSERT_EQUAL(dnsbl_check(d, NULL, (struct sockaddr *)&un, 0, &v), 0);
	CU_ASSERT_EQUAL(v.score, 0);
	dnsbl_free(&d);
	CU_ASSERT_PTR_NULL(d);
	dnsbl_free(&d);

	/* No zones: nothing is asked, nothing is listed. */
	d = dnsbl_new(NULL, 0, NULL);
	CU_ASSERT_EQUAL(dnsbl_check(d, NULL, (struct sockaddr *)&ss, 0, &v), 0);
	CU_ASSERT_EQUAL(v.listed, 0);
	CU_ASSERT_EQUAL(v.nzones, 0);
	dnsbl_free(&d);
}

int
main(void)
{
	static const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "zone items", test_zone_parse },
		{ "zone lists", test_zones_parse },
		{ "query names", test_query_names },
		{ "verdict texts, no zones", test_texts_and_empty },
	};
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("dnsbl", NULL, NULL);
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (s == NULL || CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
			CU_cleanup_registry();
			return 2;
		}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
