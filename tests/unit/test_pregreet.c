/*
 * test_pregreet: server/pregreet, the greeting test's whitelist, with a
 * clock the test controls: remembered until the time to live passes,
 * extended by a later pass, forgotten when the client talks first, per
 * IPv4 address and IPv6 /64, bounded with the least recently seen client
 * forgotten first, and used from threads.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "server/pregreet.h"
#include "tests/unit/sockaddr_text.h"

#define SA(x) ((struct sockaddr *)&(x))

static void
test_pass_and_expire(void)
{
	struct pregreet *p = pregreet_new(100);
	struct sockaddr_storage a, mapped, b;

	sockaddr_text(&a, "192.0.2.1");
	sockaddr_text(&mapped, "::ffff:192.0.2.1");
	sockaddr_text(&b, "192.0.2.2");
	CU_ASSERT_EQUAL(pregreet_known(p, SA(a), 0), 0);
	pregreet_pass(p, SA(a), 1000, 60);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(a), 1000), 1);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(mapped), 30000), 1);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(b), 30000), 0);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(a), 60999), 1);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(a), 61000), 0);	/* expired */
	CU_ASSERT_EQUAL(pregreet_count(p), 0);			/* and removed */
	/* A later pass extends; an earlier deadline does not shorten. */
	pregreet_pass(p, SA(a), 100000, 10);
	pregreet_pass(p, SA(a), 105000, 60);
	pregreet_pass(p, SA(a), 106000, 1);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(a), 160000), 1);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(a), 165000), 0);
	/* A time to live of 0 remembers nothing. */
	pregreet_pass(p, SA(b), 0, 0);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(b), 0), 0);
	pregreet_free(&p);
	CU_ASSERT_PTR_NULL(p);
	pregreet_free(&p);
}

static void
test_forget_and_networks(void)
{
	struct pregreet *p = pregreet_new(100);
	struct sockaddr_storage a, same64, other64;

	sockaddr_text(&a, "2001:db8:5:6::1");
	sockaddr_text(&same64, "2001:db8:5:6:dead:beef::2");
	sockaddr_text(&other64, "2001:db8:5:7::1");
	pregreet_pass(p, SA(a), 0, 3600);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(same64), 1), 1);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(other64), 1), 0);
	/* One address of the /64 talks first: the /64 is forgotten. */
	pregreet_forget(p, SA(same64));
	CU_ASSERT_EQUAL(pregreet_known(p, SA(a), 2), 0);
	pregreet_forget(p, SA(other64));		/* unknown: fine */
	pregreet_free(&p);
}

static void
test_bounded(void)
{
	struct pregreet *p = pregreet_new(3);
	struct sockaddr_storage c[5];

	for (int i = 0; i < 5; i++) {
		char text[32];
		snprintf(text, sizeof text, "198.51.100.%d", i + 1);
		sockaddr_text(&c[i], text);
	}
	pregreet_pass(p, SA(c[0]), 0, 3600);
	pregreet_pass(p, SA(c[1]), 0, 3600);
	pregreet_pass(p, SA(c[2]), 0, 3600);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(c[0]), 1), 1);	/* c0 seen again */
	pregreet_pass(p, SA(c[3]), 2, 3600);			/* c1 goes */
	CU_ASSERT_EQUAL(pregreet_count(p), 3);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(c[1]), 3), 0);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(c[0]), 3), 1);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(c[2]), 3), 1);
	CU_ASSERT_EQUAL(pregreet_known(p, SA(c[3]), 3), 1);
	/* A lookup of an unknown client adds nothing. */
	CU_ASSERT_EQUAL(pregreet_known(p, SA(c[4]), 3), 0);
	CU_ASSERT_EQUAL(pregreet_count(p), 3);
	pregreet_free(&p);
}

static void *
race(void *arg)
{
	struct pregreet *p = arg;
	struct sockaddr_in s = { .sin_family = AF_INET };

	for (uint32_t i = 0; i < 20000; i++) {
		s.sin_addr.s_addr = htonl(0xc6336400u + i % 300);
		if (i % 3 == 0)
			pregreet_pass(p, (struct sockaddr *)&s, i, 1);
		else if (i % 3 == 1)
			(void)pregreet_known(p, (struct sockaddr *)&s, i);
		else if (i % 17 == 0)
			pregreet_forget(p, (struct sockaddr *)&s);
	}
	return NULL;
}

static void
test_threads(void)
{
	struct pregreet *p = pregreet_new(256);
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, race, p), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CU_ASSERT(pregreet_count(p) <= 256);
	pregreet_free(&p);
}

int
main(void)
{
	static const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "pass, expire, extend", test_pass_and_expire },
		{ "forget; IPv6 /64", test_forget_and_networks },
		{ "bounded, least recently seen first", test_bounded },
		{ "threads", test_threads },
	};
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("pregreet", NULL, NULL);
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
