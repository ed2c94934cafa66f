/*
 * test_auth_dns: the DNS interface of auth/: the in-memory zone (its text
 * form, good and hostile lines, NODATA against NXDOMAIN, CNAME chains and
 * loops, temporary failures per type, concurrent lookups) and the IP
 * address helpers (parsing, v4-mapped addresses, prefix matches, reverse
 * names). The adapter to dns/ is proven against a real DNS server in
 * tests/integration/test_auth_dns.py.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth_dns.h"
#include "auth/auth_dns_table.h"

static const char zone[] =
	"# a comment, then records\n"
	"\n"
	"example.test TXT \"v=spf1 \" \"-all\"\n"
	"example.test TXT plain text to the end  \n"
	"Example.Test. A 192.0.2.1\n"
	"example.test AAAA 2001:db8::1\n"
	"example.test MX 10 mx.example.test.\n"
	"example.test MX 0 .\n"
	"1.2.0.192.in-addr.arpa PTR example.test\n"
	"esc.test TXT \"a\\\"b\\\\c\\000d\\255\"\n"
	"alias.test CNAME example.test\n"
	"loop1.test CNAME loop2.test\n"
	"loop2.test CNAME loop1.test\r\n"
	"slow.test TEMP TXT\n"
	"slow.test A 192.0.2.9\n"
	"down.test TEMP\n";

static struct auth_dns *
load(void)
{
	struct auth_dns *d = auth_dns_table_new();
	char err[100] = "";

	CU_ASSERT_EQUAL(auth_dns_table_load(d, zone, sizeof zone - 1, err,
	    sizeof err), 0);
	if (err[0])
		printf("\n%s\n", err);
	return d;
}

static void
test_table_answers(void)
{
	struct auth_dns *d = load();
	struct auth_dns_answer a;

	auth_dns_lookup(d, "EXAMPLE.test.", AUTH_DNS_TXT, &a);
	CU_ASSERT_EQUAL(a.status, AUTH_DNS_OK);
	CU_ASSERT_EQUAL_FATAL(a.n, 2);
	CU_ASSERT_STRING_EQUAL(a.rr[0].text, "v=spf1 -all");
	CU_ASSERT_STRING_EQUAL(a.rr[1].text, "plain text to the end");
	auth_dns_answer_clear(&a);
	CU_ASSERT_EQUAL(a.n, 0);

	auth_dns_lookup(d, "example.test", AUTH_DNS_A, &a);
	CU_ASSERT_EQUAL_FATAL(a.n, 1);
	CU_ASSERT_EQUAL(a.rr[0].ip.family, AF_INET);
	CU_ASSERT_EQUAL(a.rr[0].ip.b[3], 1);
	auth_dns_answer_clear(&a);
	auth_dns_lookup(d, "example.test", AUTH_DNS_AAAA, &a);
	CU_ASSERT_EQUAL_FATAL(a.n, 1);
	CU_ASSERT_EQUAL(a.rr[0].ip.family, AF_INET6);
	auth_dns_answer_clear(&a);
	auth_dns_lookup(d, "example.test", AUTH_DNS_MX, &a);
	CU_ASSERT_EQUAL_FATAL(a.n, 2);
	CU_ASSERT_EQUAL(a.rr[0].pref, 10);
	CU_ASSERT_STRING_EQUAL(a.rr[0].name, "mx.example.test");
	CU_ASSERT_STRING_EQUAL(a.rr[1].name, "");
	auth_dns_answer_clear(&a);
	auth_dns_lookup(d, "1.2.0.192.in-addr.arpa", AUTH_DNS_PTR, &a);
	CU_ASSERT_EQUAL_FATAL(a.n, 1);
	CU_ASSERT_STRING_EQUAL(a.rr[0].name, "example.test");
	auth_dns_answer_clear(&a);

	/* Escapes, a NUL and a byte above 127 inside a TXT string. */
	auth_dns_lookup(d, "esc.test", AUTH_DNS_TXT, &a);
	CU_ASSERT_EQUAL_FATAL(a.n, 1);
	CU_ASSERT_EQUAL(a.rr[0].len, 8);
	CU_ASSERT(memcmp(a.rr[0].text, "a\"b\\c\0d\xff", 8) == 0);
	auth_dns_answer_clear(&a);

	/* NODATA, NXDOMAIN, CNAMEs, loops, temporary failures. */
	auth_dns_lookup(d, "1.2.0.192.in-addr.arpa", AUTH_DNS_TXT, &a);
	CU_ASSERT_EQUAL(a.status, AUTH_DNS_NODATA);
	auth_dns_lookup(d, "nowhere.test", AUTH_DNS_TXT, &a);
	CU_ASSERT_EQUAL(a.status, AUTH_DNS_NXDOMAIN);
	auth_dns_lookup(d, "alias.test", AUTH_DNS_MX, &a);
	CU_ASSERT_EQUAL(a.status, AUTH_DNS_OK);
	CU_ASSERT_EQUAL(a.n, 2);
	auth_dns_answer_clear(&a);
	auth_dns_lookup(d, "alias.test", AUTH_DNS_PTR, &a);
	CU_ASSERT_EQUAL(a.status, AUTH_DNS_NODATA);
	auth_dns_lookup(d, "loop1.test", AUTH_DNS_A, &a);
	CU_ASSERT_EQUAL(a.status, AUTH_DNS_TEMP);
	auth_dns_lookup(d, "slow.test", AUTH_DNS_TXT, &a);
	CU_ASSERT_EQUAL(a.status, AUTH_DNS_TEMP);
	auth_dns_lookup(d, "slow.test", AUTH_DNS_A, &a);
	CU_ASSERT_EQUAL(a.status, AUTH_DNS_OK);
	auth_dns_answer_clear(&a);
	auth_dns_lookup(d, "down.test", AUTH_DNS_AAAA, &a);
	CU_ASSERT_EQUAL(a.status, AUTH_DNS_TEMP);
	auth_dns_lookup(d, "", AUTH_DNS_A, &a);
	CU_ASSERT_EQUAL(a.status, AUTH_DNS_NXDOMAIN);
	CU_ASSERT_EQUAL(auth_dns_table_queries(d), 15);
	CU_ASSERT_STRING_EQUAL(auth_dns_status_str(AUTH_DNS_NODATA), "NODATA");
	auth_dns_free(&d);
	CU_ASSERT_PTR_NULL(d);
}

static void
test_table_bad_lines(void)
{
	static const char *const bad[] = {
		"x.test", "x.test TXT", "x.test FOO bar", "x.test A 1.2.3",
		"x.test A ::1", "x.test AAAA 1.2.3.4", "x.test MX mx.test",
		"x.test MX 70000 mx.test", "x.test MX 10", "x.test MX 10 a b",
		"x.test PTR", "x.test CNAME .", "x.test TEMP FOO",
		"x.test TXT \"unterminated", "x.test TXT \"a\" junk",
		"x.test TXT \"\\999\"", "x.test TXT \"\\12\"",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct auth_dns *d = auth_dns_table_new();
		char text[200], err[100];
		int n = snprintf(text, sizeof text, "ok.test A 192.0.2.1\n%s\n",
		    bad[i]);
		if (auth_dns_table_load(d, text, (size_t)n, err, sizeof err) != -1) {
			printf("\naccepted: %s\n", bad[i]);
			CU_FAIL("bad line accepted");
		} else {
			CU_ASSERT_STRING_EQUAL(err, "line 2: bad record");
		}
		auth_dns_free(&d);
	}
	{
		struct auth_dns *d = auth_dns_table_new();
		char err[100];
		CU_ASSERT_EQUAL(auth_dns_table_load(d, "a A 1.2.3.4\n\0x", 14, err,
		    sizeof err), -1);
		CU_ASSERT(strstr(err, "line 2") != NULL);
		/* The record before the bad line stays. */
		CU_ASSERT_EQUAL(auth_dns_table_add(d, "b", "txt", "\0z", 2), 0);
		auth_dns_free(&d);
	}
}

struct lookup_arg {
	struct auth_dns *d;
	int bad;
};

static void *
lookup_thread(void *p)
{
	struct lookup_arg *a = p;

	for (int i = 0; i < 500; i++) {
		struct auth_dns_answer ans;
		auth_dns_lookup(a->d, i % 2 ? "alias.test" : "example.test",
		    AUTH_DNS_MX, &ans);
		if (ans.status != AUTH_DNS_OK || ans.n != 2)
			__atomic_add_fetch(&a->bad, 1, __ATOMIC_RELAXED);
		auth_dns_answer_clear(&ans);
	}
	return NULL;
}

static void
test_table_threads(void)
{
	struct lookup_arg a = { .d = load(), .bad = 0 };
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, lookup_thread, &a);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CU_ASSERT_EQUAL(a.bad, 0);
	CU_ASSERT_EQUAL(auth_dns_table_queries(a.d), 2000);
	auth_dns_free(&a.d);
}

static void
test_ip(void)
{
	struct auth_ip a, b;
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	char text[64], rev[80];

	CU_ASSERT_EQUAL(auth_ip_parse("192.0.2.200", &a), 0);
	CU_ASSERT_EQUAL(a.family, AF_INET);
	CU_ASSERT_EQUAL(auth_ip_parse("::ffff:192.0.2.200", &b), 0);
	CU_ASSERT_EQUAL(b.family, AF_INET);
	CU_ASSERT(memcmp(a.b, b.b, 4) == 0);
	CU_ASSERT_EQUAL(auth_ip_parse("192.0.2", &a), -1);
	CU_ASSERT_EQUAL(auth_ip_parse(NULL, &a), -1);

	auth_ip_parse("192.0.2.200", &a);
	auth_ip_parse("192.0.2.129", &b);
	CU_ASSERT(auth_ip_match(&a, &b, 24));
	CU_ASSERT(auth_ip_match(&a, &b, 25));
	CU_ASSERT(!auth_ip_match(&a, &b, 26));
	CU_ASSERT(auth_ip_match(&a, &b, 0));
	CU_ASSERT(!auth_ip_match(&a, &b, 33));
	auth_ip_parse("2001:db8::1", &b);
	CU_ASSERT(!auth_ip_match(&a, &b, 0));
	auth_ip_parse("2001:db8:ffff::1", &a);
	CU_ASSERT(auth_ip_match(&a, &b, 32));
	CU_ASSERT(!auth_ip_match(&a, &b, 33));
	CU_ASSERT_STRING_EQUAL(auth_ip_text(&b, text, sizeof text), "2001:db8::1");

	memset(&s6, 0, sizeof s6);
	s6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr);
	CU_ASSERT_EQUAL(auth_ip_from_sockaddr((struct sockaddr *)&s6, &a), 0);
	CU_ASSERT_EQUAL(a.family, AF_INET);
	CU_ASSERT_EQUAL(auth_ip_reverse_name(&a, rev, sizeof rev), 0);
	CU_ASSERT_STRING_EQUAL(rev, "3.2.1.10.in-addr.arpa");
	memset(&s4, 0, sizeof s4);
	s4.sin_family = AF_UNIX;
	CU_ASSERT_EQUAL(auth_ip_from_sockaddr((struct sockaddr *)&s4, &a), -1);
	auth_ip_parse("2001:db8::cb01", &a);
	CU_ASSERT_EQUAL(auth_ip_reverse_name(&a, rev, sizeof rev), 0);
	CU_ASSERT_STRING_EQUAL(rev, "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	CU_ASSERT_EQUAL(auth_ip_reverse_name(&a, rev, 20), -1);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("auth_dns", NULL, NULL);
	CU_add_test(s, "table answers", test_table_answers);
	CU_add_test(s, "table bad lines", test_table_bad_lines);
	CU_add_test(s, "table threads", test_table_threads);
	CU_add_test(s, "addresses", test_ip);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
