/*
 * test_netaddr: CIDR parsing (good and hostile text), matching of IPv4,
 * IPv6 and v4-mapped IPv6 clients, socket address text and ports, and
 * the address literals of mail domains against a set of addresses.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "lib/netaddr.h"

/* A socket address from numeric text (":" means IPv6). */
static socklen_t
make_sa(const char *text, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		CU_ASSERT_FATAL(inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1);
		return sizeof *sin6;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	CU_ASSERT_FATAL(inet_pton(AF_INET, text, &sin->sin_addr) == 1);
	return sizeof *sin;
}

static void
test_cidr_parse_good(void)
{
	static const struct {
		const char *text;
		int family;
		int prefix;
	} cases[] = {
		{ "127.0.0.0/8", AF_INET, 8 },
		{ "10.1.2.3", AF_INET, 32 },
		{ "0.0.0.0/0", AF_INET, 0 },
		{ "192.168.1.77/24", AF_INET, 24 },	/* host bits need not be zero */
		{ "1.2.3.4/32", AF_INET, 32 },
		{ "::1/128", AF_INET6, 128 },
		{ "::1", AF_INET6, 128 },
		{ "::/0", AF_INET6, 0 },
		{ "2001:db8::/32", AF_INET6, 32 },
		{ "fe80::1/10", AF_INET6, 10 },
		{ "::ffff:0:0/96", AF_INET6, 96 },
		{ "::ffff:1.2.3.4/128", AF_INET6, 128 },
		{ "[2001:db8::]/48", AF_INET6, 48 },
		{ "10.0.0.0/008", AF_INET, 8 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cidr c;
		int r = cidr_parse(cases[i].text, &c);
		CU_ASSERT_EQUAL(r, 0);
		if (r != 0) {
			fprintf(stderr, "cidr_parse(%s) failed\n", cases[i].text);
			continue;
		}
		CU_ASSERT_EQUAL(c.family, cases[i].family);
		CU_ASSERT_EQUAL(c.prefix, cases[i].prefix);
	}
}

static void
test_cidr_parse_bad(void)
{
	static const char *const cases[] = {
		"", "/", "/8", "1.2.3.4/", "1.2.3.4/33", "1.2.3.4/-1", "1.2.3.4/+8",
		"1.2.3.4/8/8", "1.2.3.4/ 8", " 1.2.3.4", "1.2.3.4 ", "1.2.3", "1.2.3.4.5",
		"256.1.1.1", "127.1", "0x7f.0.0.1", "::1/129", "::1/1280", ":::1", "1::2::3",
		"[1.2.3.4]/32", "[::1", "::1]", "[]", "localhost", "1.2.3.4/0x8",
		"1.2.3.4/2147483648", "::1/99999999999999999999",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/8",
		"\xff\xfe/8", "1.2.3.4\n",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cidr c;
		memset(&c, 0x5a, sizeof c);
		if (cidr_parse(cases[i], &c) != -1) {
			CU_FAIL("bad CIDR accepted");
			fprintf(stderr, "accepted: '%s'\n", cases[i]);
		}
	}
	CU_ASSERT_EQUAL(cidr_parse(NULL, NULL), -1);
}

static void
test_cidr_match(void)
{
	static const struct {
		const char *net;
		const char *client;
		int match;
	} cases[] = {
		{ "127.0.0.0/8", "127.0.0.1", 1 },
		{ "127.0.0.0/8", "127.255.255.255", 1 },
		{ "127.0.0.0/8", "128.0.0.1", 0 },
		{ "10.0.0.0/9", "10.127.0.1", 1 },
		{ "10.0.0.0/9", "10.128.0.1", 0 },
		{ "192.168.1.77/24", "192.168.1.1", 1 },
		{ "1.2.3.4", "1.2.3.4", 1 },
		{ "1.2.3.4", "1.2.3.5", 0 },
		{ "0.0.0.0/0", "203.0.113.9", 1 },
		{ "0.0.0.0/0", "::1", 0 },
		{ "::1/128", "::1", 1 },
		{ "::1/128", "::2", 0 },
		{ "::1/128", "127.0.0.1", 0 },
		{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
		{ "2001:db8::/33", "2001:db8:8000::1", 0 },
		{ "2001:db8::/33", "2001:db8:7fff::1", 1 },
		{ "::/0", "2001:db8::1", 1 },
		/* v4-mapped clients count as IPv4 */
		{ "127.0.0.0/8", "::ffff:127.0.0.1", 1 },
		{ "127.0.0.0/8", "::ffff:10.0.0.1", 0 },
		{ "10.0.0.0/8", "::ffff:10.9.8.7", 1 },
		{ "0.0.0.0/0", "::ffff:8.8.8.8", 1 },
		{ "0.0.0.0/0", "2001:db8::1", 0 },
		/* ...and a v6 network of mapped addresses holds IPv4 clients */
		{ "::ffff:0:0/96", "192.0.2.1", 1 },
		{ "::ffff:0:0/96", "::ffff:192.0.2.1", 1 },
		{ "::ffff:10.0.0.0/104", "10.1.1.1", 1 },
		{ "::ffff:10.0.0.0/104", "11.1.1.1", 0 },
		/* not mapped: ::1.2.3.4 (compatible) is plain IPv6 */
		{ "1.2.3.0/24", "::1.2.3.4", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cidr c;
		struct sockaddr_storage ss;
		CU_ASSERT_FATAL(cidr_parse(cases[i].net, &c) == 0);
		make_sa(cases[i].client, 25, &ss);
		if (cidr_match(&c, (struct sockaddr *)&ss) != cases[i].match) {
			CU_FAIL("cidr_match");
			fprintf(stderr, "cidr_match(%s, %s) != %d\n", cases[i].net,
			    cases[i].client, cases[i].match);
		}
	}
}

static void
test_cidr_match_hostile(void)
{
	struct cidr c;
	struct sockaddr_storage ss;

	CU_ASSERT_FATAL(cidr_parse("0.0.0.0/0", &c) == 0);
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	CU_ASSERT_EQUAL(cidr_match(&c, (struct sockaddr *)&ss), 0);
	CU_ASSERT_EQUAL(cidr_match(NULL, (struct sockaddr *)&ss), 0);
	CU_ASSERT_EQUAL(cidr_match(&c, NULL), 0);
	/* a corrupt prefix never reads past the address */
	c.prefix = 200;
	make_sa("1.2.3.4", 0, &ss);
	CU_ASSERT_EQUAL(cidr_match(&c, (struct sockaddr *)&ss), 0);
}

static void
test_sockaddr_text(void)
{
	static const struct {
		const char *addr;
		uint16_t port;
		const char *text;
	} cases[] = {
		{ "127.0.0.1", 2525, "127.0.0.1" },
		{ "0.0.0.0", 1, "0.0.0.0" },
		{ "255.255.255.255", 65535, "255.255.255.255" },
		{ "::1", 25, "::1" },
		{ "2001:db8::1", 587, "2001:db8::1" },
		{ "::ffff:10.0.0.1", 465, "::ffff:10.0.0.1" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss;
		make_sa(cases[i].addr, cases[i].port, &ss);
		CU_ASSERT_PTR_EQUAL(sockaddr_ntop((struct sockaddr *)&ss, out, sizeof out), out);
		CU_ASSERT_STRING_EQUAL(out, cases[i].text);
		CU_ASSERT_EQUAL(sockaddr_port((struct sockaddr *)&ss), cases[i].port);
	}
}

static void
test_sockaddr_hostile(void)
{
	struct sockaddr_storage ss;
	char out[64], tiny[4];

	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	CU_ASSERT_STRING_EQUAL(sockaddr_ntop((struct sockaddr *)&ss, out, sizeof out), "?");
	CU_ASSERT_EQUAL(sockaddr_port((struct sockaddr *)&ss), 0);
	CU_ASSERT_STRING_EQUAL(sockaddr_ntop(NULL, out, sizeof out), "?");
	CU_ASSERT_EQUAL(sockaddr_port(NULL), 0);
	/* too small a buffer: "?" rather than a cut address */
	make_sa("192.168.100.200", 25, &ss);
	CU_ASSERT_STRING_EQUAL(sockaddr_ntop((struct sockaddr *)&ss, tiny, sizeof tiny), "?");
	CU_ASSERT_PTR_EQUAL(sockaddr_ntop((struct sockaddr *)&ss, tiny, 0), tiny);
}

/* The set of our addresses the literal tests match against. */
static size_t
own_set(struct ip_addr *set)
{
	static const char *const own[] = { "127.0.0.1", "192.0.2.7", "::1",
	    "2001:db8::25", "::ffff:198.51.100.9" };
	size_t n = 0;

	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
		struct sockaddr_storage ss;
		make_sa(own[i], 25, &ss);
		CU_ASSERT_FATAL(ip_addr_from_sockaddr((struct sockaddr *)&ss, &set[n]) == 0);
		n++;
	}
	return n;
}

static void
test_ip_literal(void)
{
	static const struct {
		const char *domain;
		int family;	/* 0: not an address literal */
		int ours;
	} cases[] = {
		{ "[127.0.0.1]", AF_INET, 1 },
		{ "[192.0.2.7]", AF_INET, 1 },
		{ "[127.0.0.2]", AF_INET, 0 },
		{ "[IPv6:::1]", AF_INET6, 1 },
		{ "[ipv6:0:0:0:0:0:0:0:1]", AF_INET6, 1 },
		{ "[IPV6:2001:DB8::25]", AF_INET6, 1 },
		{ "[IPv6:2001:db8::26]", AF_INET6, 0 },
		/* v4-mapped IPv6 is the IPv4 address, either way round */
		{ "[IPv6:::ffff:127.0.0.1]", AF_INET, 1 },
		{ "[198.51.100.9]", AF_INET, 1 },
		{ "[IPv6:::ffff:198.51.100.9]", AF_INET, 1 },
		/* names, general literals and broken ones are no literal */
		{ "localhost", 0, 0 },
		{ "127.0.0.1", 0, 0 },
		{ "[::1]", 0, 0 },
		{ "[IPv6:127.0.0.1]", 0, 0 },
		{ "[x-tag:127.0.0.1]", 0, 0 },
		{ "[127.0.0.1", 0, 0 },
		{ "127.0.0.1]", 0, 0 },
		{ "[127.0.0.1]x", 0, 0 },
		{ "[127.0.0.1].", 0, 0 },
		{ "[127.0.0.01]", 0, 0 },
		{ "[127.0.0.1 ]", 0, 0 },
		{ "[]", 0, 0 },
		{ "[", 0, 0 },
		{ "", 0, 0 },
		{ "[IPv6:]", 0, 0 },
		{ "[IPv6:::1:::]", 0, 0 },
		{ "[IPv6:ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.1]", 0, 0 },
	};
	struct ip_addr set[8], a;
	size_t n = own_set(set);

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int r = ip_literal_parse(cases[i].domain, &a);

		CU_ASSERT_EQUAL(r, cases[i].family ? 0 : -1);
		if (r == 0)
			CU_ASSERT_EQUAL(a.family, cases[i].family);
		CU_ASSERT_EQUAL(ip_literal_in(cases[i].domain, set, n), cases[i].ours);
		if ((r == 0) != (cases[i].family != 0) ||
		    ip_literal_in(cases[i].domain, set, n) != cases[i].ours)
			fprintf(stderr, "ip_literal(%s) wrong\n", cases[i].domain);
	}
	/* an empty set holds nothing; NULL is no literal */
	CU_ASSERT_EQUAL(ip_literal_in("[127.0.0.1]", NULL, 0), 0);
	CU_ASSERT_EQUAL(ip_literal_parse(NULL, &a), -1);
	CU_ASSERT_EQUAL(ip_literal_in(NULL, set, n), 0);
	/* a long name is refused without reading past a bound */
	{
		char big[600];
		memset(big, '1', sizeof big);
		big[0] = '[';
		big[sizeof big - 2] = ']';
		big[sizeof big - 1] = '\0';
		CU_ASSERT_EQUAL(ip_literal_parse(big, &a), -1);
	}
}

static void
test_ip_addr_from_sockaddr(void)
{
	struct sockaddr_storage ss;
	struct ip_addr a, b;

	make_sa("::ffff:10.0.0.1", 0, &ss);
	CU_ASSERT_EQUAL(ip_addr_from_sockaddr((struct sockaddr *)&ss, &a), 0);
	make_sa("10.0.0.1", 25, &ss);
	CU_ASSERT_EQUAL(ip_addr_from_sockaddr((struct sockaddr *)&ss, &b), 0);
	CU_ASSERT_EQUAL(a.family, AF_INET);
	CU_ASSERT(ip_addr_in(&a, &b, 1));
	CU_ASSERT(memcmp(&a, &b, sizeof a) == 0);
	make_sa("::10.0.0.1", 0, &ss);		/* v4-compatible: stays IPv6 */
	CU_ASSERT_EQUAL(ip_addr_from_sockaddr((struct sockaddr *)&ss, &a), 0);
	CU_ASSERT_EQUAL(a.family, AF_INET6);
	CU_ASSERT(!ip_addr_in(&a, &b, 1));
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	CU_ASSERT_EQUAL(ip_addr_from_sockaddr((struct sockaddr *)&ss, &a), -1);
	CU_ASSERT_EQUAL(ip_addr_from_sockaddr(NULL, &a), -1);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("netaddr", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "cidr_parse good", test_cidr_parse_good) == NULL ||
	    CU_add_test(s, "cidr_parse bad", test_cidr_parse_bad) == NULL ||
	    CU_add_test(s, "cidr_match", test_cidr_match) == NULL ||
	    CU_add_test(s, "cidr_match hostile", test_cidr_match_hostile) == NULL ||
	    CU_add_test(s, "sockaddr text and port", test_sockaddr_text) == NULL ||
	    CU_add_test(s, "sockaddr hostile", test_sockaddr_hostile) == NULL ||
	    CU_add_test(s, "address literals", test_ip_literal) == NULL ||
	    CU_add_test(s, "ip_addr of a sockaddr", test_ip_addr_from_sockaddr) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed != 0 ? 1 : 0;
}
