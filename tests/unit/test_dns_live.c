/*
 * test_dns_live: dns/ against a real DNS server, ldns-testns on loopback,
 * serving tests/integration/dns/zones.data. The server address comes from
 * DNS_TEST_SERVER ("127.0.0.1:PORT" or "[::1]:PORT"); without it the test
 * prints "skipped: DNS_TEST_SERVER unset" and passes, so `make unit` may
 * run it anywhere. tests/integration/test_dns_testns.sh starts the server
 * inside a private network namespace and runs this with the variable set.
 * Only the server named is ever asked (never /etc/resolv.conf).
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "lib/util.h"

static struct dns_resolver *resolver;

/* "ADDR:PORT" or "[ADDR]:PORT" into sv; 0 or -1. */
static int
parse_server(const char *s, struct dns_server_addr *sv)
{
	const char *colon = strrchr(s, ':');
	size_t alen;
	long port;
	char *end;

	if (colon == NULL)
		return -1;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535)
		return -1;
	alen = (size_t)(colon - s);
	if (alen >= 2 && s[0] == '[' && s[alen - 1] == ']') {
		s++;
		alen -= 2;
	}
	if (alen == 0 || alen >= sizeof sv->addr)
		return -1;
	memcpy(sv->addr, s, alen);
	sv->addr[alen] = '\0';
	sv->port = (uint16_t)port;
	return 0;
}

static void
test_live_mx(void)
{
	static const struct {
		const char *domain;
		int status;
		int implicit;
		size_t nhosts;
		const char *host0, *addr0;
	} t[] = {
		{ "example.test", DNS_OK, 0, 2, "mx1.example.test", "127.0.0.2" },
		{ "EXAMPLE.test.", DNS_OK, 0, 2, "mx1.example.test", "127.0.0.2" },
		{ "nullmx.test", DNS_NULL_MX, 0, 0, NULL, NULL },
		{ "implicit.test", DNS_OK, 1, 1, "implicit.test", "127.0.0.4" },
		{ "nx.test", DNS_NXDOMAIN, 0, 0, NULL, NULL },
		{ "unknown.example", DNS_NXDOMAIN, 0, 0, NULL, NULL },
		{ "fail.test", DNS_TEMP, 0, 0, NULL, NULL },
		{ "alias.test", DNS_OK, 0, 2, "mx1.example.test", "127.0.0.2" },
		{ "cnamemx.test", DNS_OK, 0, 1, "mx2.example.test", "127.0.0.3" },
		{ "deadmx.test", DNS_OK, 0, 1, "mx1.example.test", "127.0.0.2" },
		{ "tcp.test", DNS_OK, 0, 1, "mx1.example.test", "127.0.0.2" },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct dns_mx_result *res;
		int st = dns_mx_lookup(resolver, t[i].domain, &res);
		if (st != t[i].status)
			fprintf(stderr, "\n  %s: %s (%s)\n", t[i].domain,
			    dns_status_str(st), res->detail);
		CU_ASSERT_EQUAL(st, t[i].status);
		CU_ASSERT_EQUAL(res->implicit, t[i].implicit);
		CU_ASSERT_EQUAL(res->nhosts, t[i].nhosts);
		if (t[i].host0 && res->nhosts > 0) {
			CU_ASSERT_STRING_EQUAL(res->hosts[0].name, t[i].host0);
			CU_ASSERT_STRING_EQUAL(res->targets[0].addr.text, t[i].addr0);
		}
		dns_mx_result_free(&res);
	}
}

static void
test_live_example(void)
{
	struct dns_mx_result *res;

	CU_ASSERT_EQUAL_FATAL(dns_mx_lookup(resolver, "example.test", &res), DNS_OK);
	CU_ASSERT_EQUAL(res->hosts[0].pref, 10);
	CU_ASSERT_EQUAL(res->hosts[1].pref, 20);
	CU_ASSERT_STRING_EQUAL(res->hosts[1].name, "mx2.example.test");
	/* mx2 has 127.0.0.3 and ::1, IPv4 first by default. */
	CU_ASSERT_EQUAL(res->hosts[1].naddrs, 2);
	CU_ASSERT_STRING_EQUAL(res->hosts[1].addrs[0].text, "127.0.0.3");
	CU_ASSERT_STRING_EQUAL(res->hosts[1].addrs[1].text, "::1");
	CU_ASSERT_EQUAL(res->ntargets, 3);
	dns_mx_result_free(&res);
}

static void
test_live_shuffle(void)
{
	int mx1_first = 0, mx2_first = 0;

	for (int i = 0; i < 60; i++) {
		struct dns_mx_result *res;
		CU_ASSERT_EQUAL(dns_mx_lookup(resolver, "equal.test", &res), DNS_OK);
		if (res->nhosts == 2) {
			mx1_first += strcmp(res->hosts[0].name, "mx1.example.test") == 0;
			mx2_first += strcmp(res->hosts[0].name, "mx2.example.test") == 0;
		}
		dns_mx_result_free(&res);
	}
	CU_ASSERT(mx1_first > 0);
	CU_ASSERT(mx2_first > 0);
	CU_ASSERT_EQUAL(mx1_first + mx2_first, 60);
}

static void
test_live_addr_ptr(void)
{
	struct dns_addr_result *a;
	struct sockaddr_in s4;
	char name[DNS_NAME_MAX];

	CU_ASSERT_EQUAL(dns_addr_lookup(resolver, "mx1.example.test", &a), DNS_OK);
	CU_ASSERT_EQUAL(a->naddrs, 1);
	if (a->naddrs > 0)
		CU_ASSERT_STRING_EQUAL(a->addrs[0].text, "127.0.0.2");
	dns_addr_result_free(&a);
	CU_ASSERT_EQUAL(dns_addr_lookup(resolver, "nx.test", &a), DNS_NXDOMAIN);
	dns_addr_result_free(&a);
	CU_ASSERT_EQUAL(dns_addr_lookup(resolver, "fail.test", &a), DNS_TEMP);
	dns_addr_result_free(&a);

	memset(&s4, 0, sizeof s4);
	s4.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.2", &s4.sin_addr);
	CU_ASSERT_EQUAL(dns_ptr_lookup(resolver, (struct sockaddr *)&s4, name,
	    sizeof name), DNS_OK);
	CU_ASSERT_STRING_EQUAL(name, "mx1.example.test");
	inet_pton(AF_INET, "127.0.0.99", &s4.sin_addr);
	CU_ASSERT_EQUAL(dns_ptr_lookup(resolver, (struct sockaddr *)&s4, name,
	    sizeof name), DNS_NXDOMAIN);
}

int
main(void)
{
	const char *env = getenv("DNS_TEST_SERVER");
	struct dns_server_addr sv;
	struct dns_options o;
	char err[200];
	CU_pSuite s;
	unsigned failed;

	if (env == NULL || env[0] == '\0') {
		printf("skipped: DNS_TEST_SERVER unset\n");
		return 0;
	}
	if (parse_server(env, &sv) != 0) {
		fprintf(stderr, "bad DNS_TEST_SERVER \"%s\" (want ADDR:PORT)\n", env);
		return 2;
	}
	dns_options_default(&o);
	o.try_timeout_ms = 1000;
	resolver = dns_resolver_new_opts(&sv, 1, &o, err, sizeof err);
	if (resolver == NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("dns live", NULL, NULL);
	CU_add_test(s, "MX lookups", test_live_mx);
	CU_add_test(s, "example.test in detail", test_live_example);
	CU_add_test(s, "equal preferences shuffled", test_live_shuffle);
	CU_add_test(s, "address and PTR lookups", test_live_addr_ptr);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	dns_resolver_free(&resolver);
	return failed ? 1 : 0;
}
