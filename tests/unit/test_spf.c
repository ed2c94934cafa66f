/*
 * test_spf: auth/spf beyond the RFC 7208 suite (test_spf_suite.c): the
 * record parser on a table of good and hostile records, the macro
 * expander on the examples of RFC 7208 7.4 and on broken macros, the
 * processing limits and their outcome texts, the HELO identity, the time
 * bound, and concurrent checks on one shared zone.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/auth_dns_table.h"
#include "auth/spf.h"
#include "auth/spf_internal.h"
#include "lib/buf.h"
#include "lib/util.h"

/* ---- the record parser ---- */

static const struct {
	const char *record;
	int ok;
} records[] = {
	{ "v=spf1", 1 },
	{ "v=spf1 -all", 1 },
	{ "V=SPF1 +ALL", 1 },
	{ "v=spf1   a   mx  -all   ", 1 },
	{ "v=spf1 a:foo.example.com/24//64 mx/0 ptr:%{d} -all", 1 },
	{ "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ip6:::1.2.3.4/128 ~all", 1 },
	{ "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} ?all", 1 },
	{ "v=spf1 include:_spf.example.com redirect=_spf.example.net", 1 },
	{ "v=spf1 exp=explain.%{d} -all", 1 },
	{ "v=spf1 foo.bar-baz_2=%{c}%{r}%{t} -all", 1 },
	{ "v=spf1 a:foo.example.xn--zckzah", 1 },
	{ "v=spf1 a:%{d}", 1 },
	{ "v=spf1 a:.example", 1 },
	{ "v=spf10", 0 },
	{ "v=spf1-all", 0 },
	{ "spf1 -all", 0 },
	{ "v=spf1 -all.", 0 },
	{ "v=spf1 all:x", 0 },
	{ "v=spf1 a:", 0 },
	{ "v=spf1 a/33", 0 },
	{ "v=spf1 a//129", 0 },
	{ "v=spf1 a/024", 0 },
	{ "v=spf1 a/24/64", 0 },
	{ "v=spf1 a:example.com:8080", 0 },
	{ "v=spf1 a:museum", 0 },
	{ "v=spf1 a:museum.", 0 },
	{ "v=spf1 a:abc.123", 0 },
	{ "v=spf1 a:example.-com", 0 },
	{ "v=spf1 a:%{d}.", 0 },
	{ "v=spf1 a:%{d}x", 0 },
	{ "v=spf1 include", 0 },
	{ "v=spf1 include:", 0 },
	{ "v=spf1 include:x.example/24", 0 },
	{ "v=spf1 exists", 0 },
	{ "v=spf1 ptr/0", 0 },
	{ "v=spf1 ip4", 0 },
	{ "v=spf1 ip4:", 0 },
	{ "v=spf1 ip4:1.2.3", 0 },
	{ "v=spf1 ip4:1.2.3.4//32", 0 },
	{ "v=spf1 ip4:1.2.3.04", 0 },
	{ "v=spf1 ip4:1.2.3.256", 0 },
	{ "v=spf1 ip4:1.2.3.4/33", 0 },
	{ "v=spf1 ip4:1.2.3.4/", 0 },
	{ "v=spf1 ip4:::1", 0 },
	{ "v=spf1 ip6:1.2.3.4", 0 },
	{ "v=spf1 ip6::CAFE::BABE", 0 },
	{ "v=spf1 ip6:::1/129", 0 },
	{ "v=spf1 ip6:::1//64", 0 },
	{ "v=spf1 exp=", 0 },
	{ "v=spf1 exp=a.example exp=b.example", 0 },
	{ "v=spf1 redirect=a.example redirect=a.example", 0 },
	{ "v=spf1 redirect:a.example", 0 },
	{ "v=spf1 exp=%{r}.example", 0 },
	{ "v=spf1 -exp=x.example", 0 },
	{ "v=spf1 1up=foo", 0 },
	{ "v=spf1 =all", 0 },
	{ "v=spf1 foo=%abc", 0 },
	{ "v=spf1 foo=%{d0}", 0 },
	{ "v=spf1 a:%{x}.example", 0 },
	{ "v=spf1 a:%{d", 0 },
	{ "v=spf1 a:foo%", 0 },
	{ "v=spf1 moo", 0 },
	{ "v=spf1 +", 0 },
	{ "v=spf1 -", 0 },
};

static void
test_record_parser(void)
{
	for (size_t i = 0; i < sizeof records / sizeof records[0]; i++) {
		struct spf_record *rec = NULL;
		char why[200] = "";
		int rc = spf_record_parse(records[i].record,
		    strlen(records[i].record), &rec, why, sizeof why);
		if ((rc == 0) != records[i].ok)
			printf("\nrecord \"%s\": rc %d (%s)\n", records[i].record,
			    rc, why);
		CU_ASSERT_EQUAL(rc == 0, records[i].ok);
		CU_ASSERT((rc == 0) == (rec != NULL));
		if (rc != 0)
			CU_ASSERT(why[0] != '\0');
		spf_record_free(&rec);
	}
}

static void
test_record_terms(void)
{
	const char *text = "v=spf1 ~a:foo.example.com/24//64 ?mx/16 "
	    "ip4:192.0.2.128/25 ip6:2001:DB8::/32 x-y=z exp=e.%{d} -all";
	struct spf_record *rec = NULL;
	char why[200];

	CU_ASSERT_EQUAL_FATAL(spf_record_parse(text, strlen(text), &rec, why,
	    sizeof why), 0);
	CU_ASSERT_EQUAL_FATAL(rec->nterms, 7);
	CU_ASSERT_EQUAL(rec->terms[0].mech, SPF_M_A);
	CU_ASSERT_EQUAL(rec->terms[0].qual, '~');
	CU_ASSERT_EQUAL(rec->terms[0].speclen, strlen("foo.example.com"));
	CU_ASSERT(strncmp(rec->terms[0].spec, "foo.example.com", 15) == 0);
	CU_ASSERT_EQUAL(rec->terms[0].cidr4, 24);
	CU_ASSERT_EQUAL(rec->terms[0].cidr6, 64);
	CU_ASSERT_EQUAL(rec->terms[1].mech, SPF_M_MX);
	CU_ASSERT_PTR_NULL(rec->terms[1].spec);
	CU_ASSERT_EQUAL(rec->terms[1].cidr4, 16);
	CU_ASSERT_EQUAL(rec->terms[1].cidr6, 128);
	CU_ASSERT_EQUAL(rec->terms[2].net.family, AF_INET);
	CU_ASSERT_EQUAL(rec->terms[2].net.b[3], 128);
	CU_ASSERT_EQUAL(rec->terms[2].cidr4, 25);
	CU_ASSERT_EQUAL(rec->terms[3].net.family, AF_INET6);
	CU_ASSERT_EQUAL(rec->terms[3].cidr6, 32);
	CU_ASSERT_EQUAL(rec->terms[4].kind, SPF_T_UNKNOWN);
	CU_ASSERT_EQUAL(rec->terms[5].kind, SPF_T_EXP);
	CU_ASSERT_EQUAL(rec->exp, 5);
	CU_ASSERT_EQUAL(rec->redirect, -1);
	CU_ASSERT_EQUAL(rec->terms[6].qual, '-');
	spf_record_free(&rec);
	CU_ASSERT_PTR_NULL(rec);
}

/* Hostile: bytes outside printable ASCII, too long, too many terms. */
static void
test_record_hostile(void)
{
	static const char *const bad[] = {
		"v=spf1 a:foo.example.com\0", "v=spf1 a\r-all", "v=spf1\t-all",
		"v=spf1 a:\xc3\xa9.example", "v=spf1 -all\n",
	};
	static const size_t badlen[] = { 25, 13, 11, 19, 12 };
	struct spf_record *rec = NULL;
	char why[200];
	struct buf b;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CU_ASSERT_EQUAL(spf_record_parse(bad[i], badlen[i], &rec, why,
		    sizeof why), -1);
		CU_ASSERT_PTR_NULL(rec);
	}
	buf_init(&b, 1 << 20);
	buf_puts(&b, "v=spf1");
	for (int i = 0; i < SPF_TERMS_MAX; i++)
		buf_puts(&b, " -all");
	CU_ASSERT_EQUAL(spf_record_parse(b.data, b.len, &rec, why, sizeof why),
	    0);
	spf_record_free(&rec);
	buf_puts(&b, " -all");
	CU_ASSERT_EQUAL(spf_record_parse(b.data, b.len, &rec, why, sizeof why),
	    -1);
	buf_reset(&b);
	buf_puts(&b, "v=spf1 a:");
	while (b.len <= SPF_RECORD_MAX)
		buf_puts(&b, "aaaaaaaaa.");
	buf_puts(&b, "com");
	CU_ASSERT_EQUAL(spf_record_parse(b.data, b.len, &rec, why, sizeof why),
	    -1);
	CU_ASSERT(strstr(why, "longer") != NULL);
	buf_free(&b);
}

/* ---- macros ---- */

static void
env_rfc(struct spf_macro_env *env, const char *ip)
{
	memset(env, 0, sizeof *env);
	env->sender = "strong-bad@email.example.com";
	env->local = "strong-bad";
	env->sender_domain = "email.example.com";
	env->domain = "email.example.com";
	env->helo = "mx.example.org";
	env->receiver = "mx.receiver.example";
	env->now = 1234567890;
	auth_ip_parse(ip, &env->ip);
}

static const struct {
	const char *ip, *macro, *want;
	int flags;
} expansions[] = {
	/* RFC 7208 7.4 */
	{ "192.0.2.3", "%{s}", "strong-bad@email.example.com", 0 },
	{ "192.0.2.3", "%{o}", "email.example.com", 0 },
	{ "192.0.2.3", "%{d}", "email.example.com", 0 },
	{ "192.0.2.3", "%{d4}", "email.example.com", 0 },
	{ "192.0.2.3", "%{d3}", "email.example.com", 0 },
	{ "192.0.2.3", "%{d2}", "example.com", 0 },
	{ "192.0.2.3", "%{d1}", "com", 0 },
	{ "192.0.2.3", "%{dr}", "com.example.email", 0 },
	{ "192.0.2.3", "%{d2r}", "example.email", 0 },
	{ "192.0.2.3", "%{l}", "strong-bad", 0 },
	{ "192.0.2.3", "%{l-}", "strong.bad", 0 },
	{ "192.0.2.3", "%{lr}", "strong-bad", 0 },
	{ "192.0.2.3", "%{lr-}", "bad.strong", 0 },
	{ "192.0.2.3", "%{l1r-}", "strong", 0 },
	{ "192.0.2.3", "%{ir}.%{v}._spf.%{d2}",
	    "3.2.0.192.in-addr._spf.example.com", 0 },
	{ "192.0.2.3", "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com",
	    0 },
	{ "192.0.2.3", "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
	    "bad.strong.lp.3.2.0.192.in-addr._spf.example.com", 0 },
	{ "192.0.2.3", "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
	    "3.2.0.192.in-addr.strong.lp._spf.example.com", 0 },
	{ "192.0.2.3", "%{d2}.trusted-domains.example.net",
	    "example.com.trusted-domains.example.net", 0 },
	{ "2001:db8::cb01", "%{ir}.%{v}._spf.%{d2}",
	    "1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2."
	    "ip6._spf.example.com", 0 },
	/* literals, escapes, exp-only letters */
	{ "192.0.2.3", "%%%_%-", "% %20", 0 },
	{ "192.0.2.3", "%{c} %{r} %{t}", "192.0.2.3 mx.receiver.example "
	    "1234567890", SPF_MACRO_EXP },
	{ "2001:db8::cb01", "%{c}", "2001:db8::cb01", SPF_MACRO_EXP },
	{ "192.0.2.3", "%{S}", "strong-bad%40email.example.com", 0 },
	{ "192.0.2.3", "%{h}", "mx.example.org", 0 },
	{ "192.0.2.3", "%{d99999999999}", "email.example.com", 0 },
	{ "192.0.2.3", "%{dR}", "com.example.email", 0 },
	{ "192.0.2.3", "%{s-.}", "strong.bad@email.example.com", 0 },
	{ "192.0.2.3", "%{s1-}", "bad@email.example.com", 0 },
	{ "192.0.2.3", "%{p}", "unknown", 0 },
	{ "192.0.2.3", "", "", 0 },
};

static void
test_macro_expand(void)
{
	for (size_t i = 0; i < sizeof expansions / sizeof expansions[0]; i++) {
		struct spf_macro_env env;
		struct buf b;
		const char *m = expansions[i].macro;
		int rc;

		env_rfc(&env, expansions[i].ip);
		buf_init(&b, 4096);
		CU_ASSERT_EQUAL(spf_macro_check(m, strlen(m), expansions[i].flags),
		    0);
		rc = spf_macro_expand(&env, m, strlen(m), expansions[i].flags, &b);
		CU_ASSERT_EQUAL(rc, 0);
		if (rc != 0 || strcmp(b.data ? b.data : "", expansions[i].want)) {
			printf("\n%s -> \"%s\", want \"%s\"\n", m,
			    b.data ? b.data : "", expansions[i].want);
			CU_FAIL("expansion");
		}
		buf_free(&b);
	}
}

static void
test_macro_bad(void)
{
	static const char *const bad[] = {
		"%", "%{", "%{d", "%{}", "%{x}", "%{d0}", "%{d00}", "%{dr!}",
		"%{d.r}", "%a", "%{c}", "%{r}", "%{t}", "a b", "\x01", "\xff",
		"%{d2rr}",
	};
	struct spf_macro_env env;

	env_rfc(&env, "192.0.2.3");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct buf b;
		buf_init(&b, 4096);
		CU_ASSERT_EQUAL(spf_macro_check(bad[i], strlen(bad[i]), 0), -1);
		CU_ASSERT_EQUAL(spf_macro_expand(&env, bad[i], strlen(bad[i]), 0,
		    &b), -1);
		buf_free(&b);
	}
	/* A space is allowed only in explain-strings. */
	CU_ASSERT_EQUAL(spf_macro_check("a b", 3, SPF_MACRO_EXP), 0);
}

static void
test_macro_bounds(void)
{
	struct spf_macro_env env;
	char name[SPF_NAME_MAX + 1];
	struct buf b;
	char spec[600];
	size_t n = 0;

	env_rfc(&env, "192.0.2.3");
	/* Output bounded by the buffer's maximum. */
	buf_init(&b, 20);
	CU_ASSERT_EQUAL(spf_macro_expand(&env, "%{s}%{s}", 8, 0, &b), -1);
	buf_free(&b);

	/* A long expansion loses labels on the left (7.3). */
	while (n + 20 < sizeof spec)
		n += (size_t)snprintf(spec + n, sizeof spec - n, "%%{d}.");
	n += (size_t)snprintf(spec + n, sizeof spec - n, "example.net.");
	CU_ASSERT_EQUAL(spf_expand_domain(&env, spec, n, name, sizeof name), 0);
	CU_ASSERT(strlen(name) <= 253);
	CU_ASSERT(strlen(name) > 200);
	CU_ASSERT(strcmp(name + strlen(name) - 12, ".example.net") == 0);
	CU_ASSERT(name[0] != '.');
	/* One label too long to cut: no query can be made of it. */
	memset(spec, 'a', 300);
	CU_ASSERT_EQUAL(spf_expand_domain(&env, spec, 300, name, sizeof name),
	    -2);
}

/* ---- whole checks ---- */

static const char zone[] =
	"example.test TXT \"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 "
	"a:mail.example.test mx -all exp=why.example.test\"\n"
	"why.example.test TXT \"%{i} is not one of %{d}'s servers\"\n"
	"mail.example.test A 198.51.100.7\n"
	"example.test MX 10 mx.example.test\n"
	"mx.example.test A 198.51.100.25\n"
	"helo.example.test TXT \"v=spf1 a -all\"\n"
	"helo.example.test A 203.0.113.9\n"
	"soft.example.test TXT \"v=spf1 ~all\"\n"
	"temp.example.test TEMP TXT\n"
	"two.example.test TXT \"v=spf1 -all\"\n"
	"two.example.test TXT \"v=spf1 +all\"\n"
	"broken.example.test TXT \"v=spf1 ip4:1.2.3\"\n"
	"chain.example.test TXT \"v=spf1 include:c1.example.test -all\"\n"
	"c1.example.test TXT \"v=spf1 include:c2.example.test\"\n"
	"c2.example.test TXT \"v=spf1 include:c3.example.test\"\n"
	"c3.example.test TXT \"v=spf1 include:c4.example.test\"\n"
	"c4.example.test TXT \"v=spf1 include:c5.example.test\"\n"
	"c5.example.test TXT \"v=spf1 include:c6.example.test\"\n"
	"c6.example.test TXT \"v=spf1 include:c7.example.test\"\n"
	"c7.example.test TXT \"v=spf1 include:c8.example.test\"\n"
	"c8.example.test TXT \"v=spf1 include:c9.example.test\"\n"
	"c9.example.test TXT \"v=spf1 include:c10.example.test\"\n"
	"c10.example.test TXT \"v=spf1 ip4:192.0.2.1\"\n"
	"self.example.test TXT \"v=spf1 include:self.example.test\"\n"
	"voids.example.test TXT \"v=spf1 a:n1.example.test a:n2.example.test "
	"exists:n3.example.test +all\"\n"
	"longlabel.example.test TXT \"v=spf1 exists:%{l}%{l}%{l}%{l}%{l} ?all\"\n";

static struct auth_dns *
zone_dns(void)
{
	struct auth_dns *d = auth_dns_table_new();
	char err[100];

	if (auth_dns_table_load(d, zone, sizeof zone - 1, err, sizeof err) != 0) {
		printf("\nzone: %s\n", err);
		abort();
	}
	return d;
}

static enum spf_result
check(struct auth_dns *d, const char *ip, const char *sender,
    struct spf_outcome *out)
{
	struct spf_request req = { .helo = "helo.example.test",
	    .sender = sender, .receiver = "mx.us.example" };

	CU_ASSERT_EQUAL(auth_ip_parse(ip, &req.ip), 0);
	return spf_check_mailfrom(d, &req, NULL, out);
}

static void
test_check_results(void)
{
	struct auth_dns *d = zone_dns();
	struct spf_outcome out;

	CU_ASSERT_EQUAL(check(d, "192.0.2.77", "a@example.test", &out), SPF_PASS);
	CU_ASSERT_STRING_EQUAL(out.mechanism, "ip4:192.0.2.0/24");
	CU_ASSERT_STRING_EQUAL(out.domain, "example.test");
	CU_ASSERT_STRING_EQUAL(out.sender, "a@example.test");
	CU_ASSERT_EQUAL(out.identity, SPF_ID_MAILFROM);
	CU_ASSERT_EQUAL(check(d, "::ffff:192.0.2.77", "a@example.test", &out),
	    SPF_PASS);
	CU_ASSERT_EQUAL(check(d, "2001:db8:1::5", "a@example.test", &out),
	    SPF_PASS);
	CU_ASSERT_EQUAL(check(d, "198.51.100.7", "a@EXAMPLE.test", &out),
	    SPF_PASS);
	CU_ASSERT_STRING_EQUAL(out.mechanism, "a:mail.example.test");
	CU_ASSERT_EQUAL(check(d, "198.51.100.25", "a@example.test", &out),
	    SPF_PASS);
	CU_ASSERT_STRING_EQUAL(out.mechanism, "mx");
	CU_ASSERT_EQUAL(out.dns_terms, 2);

	CU_ASSERT_EQUAL(check(d, "203.0.113.1", "a@example.test", &out),
	    SPF_FAIL);
	CU_ASSERT_STRING_EQUAL(out.mechanism, "-all");
	CU_ASSERT_STRING_EQUAL(out.explanation,
	    "203.0.113.1 is not one of example.test's servers");

	/* An expansion of one label past 253 octets is a name that does not
	 * exist (a void lookup), not a permerror. */
	CU_ASSERT_EQUAL(check(d, "203.0.113.1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaa@longlabel.example.test", &out), SPF_NEUTRAL);
	CU_ASSERT_EQUAL(out.void_lookups, 1);

	CU_ASSERT_EQUAL(check(d, "203.0.113.1", "a@soft.example.test", &out),
	    SPF_SOFTFAIL);
	CU_ASSERT_STRING_EQUAL(out.explanation, "");
	CU_ASSERT_EQUAL(check(d, "203.0.113.1", "a@temp.example.test", &out),
	    SPF_TEMPERROR);
	CU_ASSERT(strstr(out.problem, "temp.example.test") != NULL);
	CU_ASSERT_EQUAL(check(d, "203.0.113.1", "a@two.example.test", &out),
	    SPF_PERMERROR);
	CU_ASSERT(strstr(out.problem, "2 SPF records") != NULL);
	CU_ASSERT_EQUAL(check(d, "203.0.113.1", "a@broken.example.test", &out),
	    SPF_PERMERROR);
	CU_ASSERT(strstr(out.problem, "bad network") != NULL);
	CU_ASSERT_EQUAL(check(d, "203.0.113.1", "a@nowhere.example.test", &out),
	    SPF_NONE);
	CU_ASSERT_EQUAL(check(d, "203.0.113.1", "a@[192.0.2.1]", &out), SPF_NONE);
	CU_ASSERT_EQUAL(check(d, "203.0.113.1", "a@localhost", &out), SPF_NONE);
	CU_ASSERT_EQUAL(check(d, "203.0.113.1", "a@1.2.3.4", &out), SPF_NONE);

	/* Ten includes deep is at the limit; the 11th term is over it. */
	CU_ASSERT_EQUAL(check(d, "192.0.2.1", "a@chain.example.test", &out),
	    SPF_PASS);
	CU_ASSERT_EQUAL(out.dns_terms, 10);
	CU_ASSERT_EQUAL(check(d, "192.0.2.1", "a@self.example.test", &out),
	    SPF_PERMERROR);
	CU_ASSERT(strstr(out.problem, "more than 10") != NULL);

	/* Three void lookups: over the limit of two. */
	CU_ASSERT_EQUAL(check(d, "192.0.2.1", "a@voids.example.test", &out),
	    SPF_PERMERROR);
	CU_ASSERT_EQUAL(out.void_lookups, 3);
	CU_ASSERT(strstr(out.problem, "void") != NULL);
	auth_dns_free(&d);
}

static void
test_check_identities(void)
{
	struct auth_dns *d = zone_dns();
	struct spf_request req = { .helo = "helo.example.test", .sender = "" };
	struct spf_outcome out;

	auth_ip_parse("203.0.113.9", &req.ip);
	/* The null sender: postmaster@HELO. */
	CU_ASSERT_EQUAL(spf_check_mailfrom(d, &req, NULL, &out), SPF_PASS);
	CU_ASSERT_STRING_EQUAL(out.sender, "postmaster@helo.example.test");
	CU_ASSERT_STRING_EQUAL(out.domain, "helo.example.test");
	req.sender = "x@example.test";
	CU_ASSERT_EQUAL(spf_check_helo(d, &req, NULL, &out), SPF_PASS);
	CU_ASSERT_EQUAL(out.identity, SPF_ID_HELO);
	CU_ASSERT_STRING_EQUAL(out.domain, "helo.example.test");
	req.helo = "";
	CU_ASSERT_EQUAL(spf_check_helo(d, &req, NULL, &out), SPF_NONE);
	req.helo = NULL;
	req.sender = NULL;
	CU_ASSERT_EQUAL(spf_check_mailfrom(d, &req, NULL, &out), SPF_NONE);
	/* No usable client address. */
	memset(&req.ip, 0, sizeof req.ip);
	req.sender = "x@example.test";
	CU_ASSERT_EQUAL(spf_check_mailfrom(d, &req, NULL, &out), SPF_PERMERROR);
	auth_dns_free(&d);
}

/* A DNS whose every lookup takes 20 ms and finds nothing. */
static void
slow_lookup(void *ctx, const char *name, enum auth_dns_type type,
    struct auth_dns_answer *ans)
{
	(void)ctx;
	(void)name;
	(void)type;
	usleep(20000);
	ans->status = AUTH_DNS_OK;
	ans->rr = xcalloc(1, sizeof *ans->rr);
	ans->rr[0].text = xstrdup("v=spf1 a:x.example a:y.example "
	    "include:z.example -all");
	ans->rr[0].len = strlen(ans->rr[0].text);
	ans->n = 1;
}

static void
test_time_limit(void)
{
	static const struct auth_dns_ops ops = { .lookup = slow_lookup };
	struct auth_dns slow = { .ops = &ops, .ctx = NULL };
	struct spf_request req = { .helo = "h.example", .sender = "a@b.example" };
	struct spf_limits lim;
	struct spf_outcome out;

	spf_limits_default(&lim);
	lim.time_limit_ms = 30;
	auth_ip_parse("192.0.2.1", &req.ip);
	CU_ASSERT_EQUAL(spf_check_mailfrom(&slow, &req, &lim, &out),
	    SPF_TEMPERROR);
	CU_ASSERT(strstr(out.problem, "longer than 30 ms") != NULL);
}

struct thread_arg {
	struct auth_dns *d;
	int bad;
};

static void *
check_thread(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < 200; i++) {
		struct spf_request req = { .helo = "helo.example.test",
		    .sender = i % 2 ? "a@example.test" : "a@chain.example.test" };
		struct spf_outcome out;
		auth_ip_parse(i % 3 ? "192.0.2.1" : "203.0.113.1", &req.ip);
		spf_check_mailfrom(a->d, &req, NULL, &out);
		if (out.result != (i % 3 ? SPF_PASS : SPF_FAIL))
			__atomic_add_fetch(&a->bad, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void
test_threads(void)
{
	struct thread_arg a = { .d = zone_dns(), .bad = 0 };
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(pthread_create(&t[i], NULL, check_thread, &a), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CU_ASSERT_EQUAL(a.bad, 0);
	CU_ASSERT(auth_dns_table_queries(a.d) > 800);
	auth_dns_free(&a.d);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("spf", NULL, NULL);
	CU_add_test(s, "record parser table", test_record_parser);
	CU_add_test(s, "record terms", test_record_terms);
	CU_add_test(s, "hostile records", test_record_hostile);
	CU_add_test(s, "macro expansion (RFC 7208 7.4)", test_macro_expand);
	CU_add_test(s, "bad macros", test_macro_bad);
	CU_add_test(s, "macro bounds and truncation", test_macro_bounds);
	CU_add_test(s, "check results", test_check_results);
	CU_add_test(s, "identities", test_check_identities);
	CU_add_test(s, "time limit", test_time_limit);
	CU_add_test(s, "threads", test_threads);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
