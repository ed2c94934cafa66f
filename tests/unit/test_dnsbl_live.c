/*
 * test_dnsbl_live: server/dnsbl against real test lists, ldns-testns on
 * loopback serving tests/integration/dns/dnsbl.data (the lists are
 * described there). The server address comes from DNS_TEST_SERVER
 * ("127.0.0.1:PORT"); without it the test prints "skipped" and passes, so
 * `make unit` may run it anywhere. tests/integration/test_dnsbl.py starts
 * the server inside the private network namespace and runs this.
 *
 * Proves: listings and their codes, the weighted score against the
 * threshold, an allowlist's negative weight, error codes (127.255.255.x,
 * answers outside 127/8) never counted, IPv6 and v4-mapped clients, a
 * list that fails (temporary, not cached), the verdict cache (no query
 * at all on a hit, gone after its TTL), and checks from several threads.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "dns/dns_internal.h"
#include "server/dnsbl.h"
#include "tests/unit/sockaddr_text.h"

static struct dns_server_addr server;
static struct dns_resolver *resolver;	/* no DNS cache: every ask is a query */
static struct dnsbl *bl;		/* bl.test=2 b2.test allow.test=-5, threshold 2 */

static int
check(struct dnsbl *d, const char *client, int64_t now, struct dnsbl_verdict *v)
{
	struct sockaddr_storage ss;

	sockaddr_text(&ss, client);
	return dnsbl_check(d, resolver, (struct sockaddr *)&ss, now, v);
}

static int
addr_is(const struct dnsbl_verdict *v, size_t zone, const char *text)
{
	char got[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, v->zone[zone].addr, got, sizeof got);
	return strcmp(got, text) == 0;
}

static void
test_listings(void)
{
	static const struct {
		const char *client;
		int listed, score;
		uint8_t answers[3];
		int cached;
	} t[] = {
		{ "127.0.0.2", 1, 3, { DNSBL_LISTED, DNSBL_LISTED, DNSBL_NOT_LISTED }, 0 },
		{ "127.0.0.3", 1, 2, { DNSBL_LISTED, DNSBL_NOT_LISTED, DNSBL_NOT_LISTED }, 0 },
		{ "127.0.0.5", 0, 0, { DNSBL_NOT_LISTED, DNSBL_ERROR_CODE, DNSBL_NOT_LISTED }, 0 },
		{ "127.0.0.7", 0, 0, { DNSBL_NOT_LISTED, DNSBL_ERROR_CODE, DNSBL_NOT_LISTED }, 0 },
		{ "127.0.0.6", 0, -3, { DNSBL_LISTED, DNSBL_NOT_LISTED, DNSBL_LISTED }, 0 },
		{ "127.0.0.1", 0, 0, { DNSBL_NOT_LISTED, DNSBL_NOT_LISTED, DNSBL_NOT_LISTED }, 0 },
		{ "127.0.0.99", 0, 0, { DNSBL_NOT_LISTED, DNSBL_NOT_LISTED, DNSBL_NOT_LISTED }, 0 },
		{ "2001:db8::1", 1, 2, { DNSBL_LISTED, DNSBL_NOT_LISTED, DNSBL_NOT_LISTED }, 0 },
		{ "2001:db8::2", 0, 0, { DNSBL_NOT_LISTED, DNSBL_NOT_LISTED, DNSBL_NOT_LISTED }, 0 },
		/* The same client as 127.0.0.2: its verdict is in the cache. */
		{ "::ffff:127.0.0.2", 1, 3, { DNSBL_LISTED, DNSBL_LISTED, DNSBL_NOT_LISTED }, 1 },
	};
	struct dnsbl_verdict v;
	char text[256];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int listed = check(bl, t[i].client, 0, &v);
		if (listed != t[i].listed || v.score != t[i].score)
			fprintf(stderr, "\n  %s: listed %d score %d\n", t[i].client, listed,
			    v.score);
		CU_ASSERT_EQUAL(listed, t[i].listed);
		CU_ASSERT_EQUAL(v.listed, t[i].listed);
		CU_ASSERT_EQUAL(v.score, t[i].score);
		CU_ASSERT_EQUAL(v.temp, 0);
		CU_ASSERT_EQUAL(v.cached, t[i].cached);
		CU_ASSERT_EQUAL(v.nzones, 3);
		for (size_t z = 0; z < 3; z++)
			CU_ASSERT_EQUAL(v.zone[z].answer, t[i].answers[z]);
	}
	check(bl, "127.0.0.2", 0, &v);		/* cached now, same verdict */
	CU_ASSERT_EQUAL(v.cached, 1);
	CU_ASSERT(addr_is(&v, 0, "127.0.0.2") && addr_is(&v, 1, "127.0.0.3"));
	CU_ASSERT_STRING_EQUAL(dnsbl_verdict_text(bl, &v, text, sizeof text),
	    "bl.test=127.0.0.2 b2.test=127.0.0.3");
	{
		struct sockaddr_storage ss;
		sockaddr_text(&ss, "127.0.0.2");
		CU_ASSERT_STRING_EQUAL(dnsbl_reply(bl, &v, (struct sockaddr *)&ss, text,
		    sizeof text),
		    "554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test");
	}
	/* 127.0.0.3 has two codes; either is the one kept. */
	check(bl, "127.0.0.3", 0, &v);
	CU_ASSERT(addr_is(&v, 0, "127.0.0.4") || addr_is(&v, 0, "127.0.0.10"));
	check(bl, "127.0.0.5", 0, &v);
	CU_ASSERT(addr_is(&v, 1, "127.255.255.254"));
	check(bl, "127.0.0.7", 0, &v);
	CU_ASSERT(addr_is(&v, 1, "192.0.2.1"));
	CU_ASSERT_STRING_EQUAL(dnsbl_verdict_text(bl, &v, text, sizeof text), "");
}

static void
test_cache(void)
{
	struct dnsbl_options o;
	struct dnsbl_zone z[2];
	struct dnsbl_verdict v;
	struct dnsbl *d;
	uint64_t q0, q1;
	size_t n;
	char err[200];

	CU_ASSERT_EQUAL_FATAL(dnsbl_zones_parse("bl.test b2.test", z, 2, &n, err,
	    sizeof err), 0);
	dnsbl_options_default(&o);
	o.cache_ttl = 60;
	d = dnsbl_new(z, n, &o);
	q0 = dns_resolver_query_count(resolver);
	CU_ASSERT_EQUAL(check(d, "127.0.0.3", 1000, &v), 1);
	q1 = dns_resolver_query_count(resolver);
	CU_ASSERT(q1 > q0);			/* asked both lists */
	CU_ASSERT_EQUAL(check(d, "127.0.0.3", 30000, &v), 1);
	CU_ASSERT_EQUAL(v.cached, 1);
	CU_ASSERT_EQUAL(dns_resolver_query_count(resolver), q1);	/* no query */
	CU_ASSERT_EQUAL(check(d, "127.0.0.99", 30000, &v), 0);
	q1 = dns_resolver_query_count(resolver);
	CU_ASSERT_EQUAL(check(d, "127.0.0.99", 30001, &v), 0);
	CU_ASSERT_EQUAL(v.cached, 1);			/* "not listed" is cached too */
	CU_ASSERT_EQUAL(dns_resolver_query_count(resolver), q1);
	/* After the TTL the lists are asked again. */
	CU_ASSERT_EQUAL(check(d, "127.0.0.3", 61000, &v), 1);
	CU_ASSERT_EQUAL(v.cached, 0);
	CU_ASSERT(dns_resolver_query_count(resolver) > q1);
	dnsbl_free(&d);

	/* Without a cache every check asks. */
	o.cache_ttl = 0;
	d = dnsbl_new(z, n, &o);
	check(d, "127.0.0.3", 0, &v);
	q1 = dns_resolver_query_count(resolver);
	check(d, "127.0.0.3", 0, &v);
	CU_ASSERT_EQUAL(v.cached, 0);
	CU_ASSERT(dns_resolver_query_count(resolver) > q1);
	dnsbl_free(&d);
}

static void
test_failing_list(void)
{
	struct dnsbl_zone z[2];
	struct dnsbl_verdict v;
	struct dnsbl_options o;
	struct dnsbl *d;
	size_t n;
	char err[200];

	CU_ASSERT_EQUAL_FATAL(dnsbl_zones_parse("fail.test=5 bl.test", z, 2, &n, err,
	    sizeof err), 0);
	dnsbl_options_default(&o);
	o.threshold = 1;
	d = dnsbl_new(z, n, &o);
	CU_ASSERT_EQUAL(check(d, "127.0.0.2", 0, &v), 1);	/* bl.test alone */
	CU_ASSERT_EQUAL(v.temp, 1);
	CU_ASSERT_EQUAL(v.zone[0].answer, DNSBL_TEMP);
	CU_ASSERT_EQUAL(v.score, 1);
	CU_ASSERT_EQUAL(check(d, "127.0.0.2", 0, &v), 1);
	CU_ASSERT_EQUAL(v.cached, 0);			/* a partial verdict is not kept */
	o.threshold = 2;
	dnsbl_free(&d);
	d = dnsbl_new(z, n, &o);
	CU_ASSERT_EQUAL(check(d, "127.0.0.2", 0, &v), 0);	/* fail.test's 5 is missing */
	dnsbl_free(&d);
}

#define RACE_THREADS 4

static void *
race(void *arg)
{
	static const char *const clients[] = { "127.0.0.2", "127.0.0.3", "127.0.0.99" };
	static const int want[] = { 1, 1, 0 };
	int *bad = arg;

	for (int i = 0; i < 30; i++) {
		struct dnsbl_verdict v;
		if (check(bl, clients[i % 3], i, &v) != want[i % 3])
			(*bad)++;
	}
	return NULL;
}

static void
test_threads(void)
{
	pthread_t t[RACE_THREADS];
	int bad[RACE_THREADS] = { 0 };

	for (int i = 0; i < RACE_THREADS; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, race, &bad[i]), 0);
	for (int i = 0; i < RACE_THREADS; i++) {
		pthread_join(t[i], NULL);
		CU_ASSERT_EQUAL(bad[i], 0);
	}
}

int
main(void)
{
	const char *env = getenv("DNS_TEST_SERVER");
	struct dnsbl_zone zones[DNSBL_MAX_ZONES];
	struct dnsbl_options o;
	struct dns_options dopts;
	char err[200];
	const char *colon;
	size_t n;
	CU_pSuite s;
	unsigned failed;

	if (env == NULL || env[0] == '\0') {
		printf("skipped: DNS_TEST_SERVER unset\n");
		return 0;
	}
	colon = strrchr(env, ':');
	if (colon == NULL || (size_t)(colon - env) >= sizeof server.addr) {
		fprintf(stderr, "bad DNS_TEST_SERVER \"%s\" (want ADDR:PORT)\n", env);
		return 2;
	}
	memcpy(server.addr, env, (size_t)(colon - env));
	server.port = (uint16_t)atoi(colon + 1);
	dns_options_default(&dopts);
	dopts.try_timeout_ms = 1000;
	dopts.cache_entries = 0;
	resolver = dns_resolver_new_opts(&server, 1, &dopts, err, sizeof err);
	if (resolver == NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (dnsbl_zones_parse("bl.test=2 b2.test allow.test=-5", zones, DNSBL_MAX_ZONES,
	    &n, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	dnsbl_options_default(&o);
	o.threshold = 2;
	bl = dnsbl_new(zones, n, &o);

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("dnsbl live", NULL, NULL);
	CU_add_test(s, "listings, scores, codes", test_listings);
	CU_add_test(s, "the verdict cache", test_cache);
	CU_add_test(s, "a failing list", test_failing_list);
	CU_add_test(s, "checks from threads", test_threads);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	dnsbl_free(&bl);
	dns_resolver_free(&resolver);
	return failed ? 1 : 0;
}
