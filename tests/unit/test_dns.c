/*
 * test_dns: dns/ without the network. Canned answers (built with ldns, or
 * raw hostile bytes) go through the answer parser, the MX selection, and
 * whole lookups on a resolver whose transport and clock are test
 * functions; the cache is driven with explicit times. One suite talks to a
 * tiny in-process responder on 127.0.0.1 (an ephemeral port) to check the
 * real UDP/TCP transport: wrong IDs, truncation, silence, refusal.
 * Nothing here reads /etc/resolv.conf or leaves the machine.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns/dns.h"
#include "dns/dns_internal.h"
#include "lib/util.h"

/* ---- building packets ---- */

#define F_TC 1
#define F_NOQR 2
#define F_NOQUESTION 4

/* A wire answer for (qname, qtype) with the given rcode and sections
 * (zone-file lines, NULL-terminated lists). malloc'd; aborts on bad input. */
static uint8_t *
build_pkt(const char *qname, uint16_t qtype, int rcode, int flags,
    const char *const *ans, const char *const *auth, size_t *len_r)
{
	ldns_pkt *p = ldns_pkt_new();
	ldns_rr *rr;
	uint8_t *w = NULL;
	char qs[600];
	char *ts = ldns_rr_type2str((ldns_rr_type)qtype);

	ldns_pkt_set_id(p, 4242);
	ldns_pkt_set_qr(p, !(flags & F_NOQR));
	ldns_pkt_set_aa(p, true);
	ldns_pkt_set_tc(p, (flags & F_TC) != 0);
	ldns_pkt_set_rcode(p, (uint8_t)rcode);
	snprintf(qs, sizeof qs, "%s. IN %s", qname, ts);
	free(ts);
	if (!(flags & F_NOQUESTION)) {
		if (ldns_rr_new_question_frm_str(&rr, qs, NULL, NULL) != LDNS_STATUS_OK)
			abort();
		ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, rr);
	}
	for (size_t i = 0; ans && ans[i]; i++) {
		if (ldns_rr_new_frm_str(&rr, ans[i], 3600, NULL, NULL) != LDNS_STATUS_OK) {
			fprintf(stderr, "bad test RR: %s\n", ans[i]);
			abort();
		}
		ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
	}
	for (size_t i = 0; auth && auth[i]; i++) {
		if (ldns_rr_new_frm_str(&rr, auth[i], 3600, NULL, NULL) != LDNS_STATUS_OK)
			abort();
		ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, rr);
	}
	if (ldns_pkt2wire(&w, p, len_r) != LDNS_STATUS_OK)
		abort();
	ldns_pkt_free(p);
	return w;
}

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define SOA(zone, min) zone ". 3600 IN SOA ns." zone ". host." zone ". 1 3600 600 86400 " #min

/* ---- a canned world: the transport answers from a table ---- */

#define NO_ANSWER (-1)

struct canned {
	const char *name;	/* "*" matches any name */
	uint16_t type;		/* 0 matches any type */
	int rcode;		/* LDNS_RCODE_*, or NO_ANSWER */
	const char *const *ans;
	const char *const *auth;
	int flags;
};

struct world {
	const struct canned *tab;
	size_t n;
	int64_t now;		/* the fake clock, ms */
	unsigned long queries;	/* atomic */
};

static int
canned_transport(void *ctx, const char *qname, uint16_t qtype, int64_t deadline,
    uint8_t **wire_r, size_t *len_r)
{
	struct world *w = ctx;

	(void)deadline;
	__atomic_add_fetch(&w->queries, 1, __ATOMIC_RELAXED);
	for (size_t i = 0; i < w->n; i++) {
		const struct canned *c = &w->tab[i];
		if ((strcmp(c->name, "*") == 0 || strcasecmp(c->name, qname) == 0) &&
		    (c->type == 0 || c->type == qtype)) {
			if (c->rcode == NO_ANSWER)
				return -1;
			*wire_r = build_pkt(qname, qtype, c->rcode, c->flags, c->ans,
			    c->auth, len_r);
			return 0;
		}
	}
	*wire_r = build_pkt(qname, qtype, LDNS_RCODE_NXDOMAIN, 0, NULL, NULL, len_r);
	return 0;
}

static int64_t
world_clock(void *ctx)
{
	return __atomic_load_n(&((struct world *)ctx)->now, __ATOMIC_RELAXED);
}

static struct dns_resolver *
world_resolver(struct world *w, const struct canned *tab, size_t n,
    const struct dns_options *o)
{
	memset(w, 0, sizeof *w);
	w->tab = tab;
	w->n = n;
	w->now = 1000000;
	return dns_resolver_new_transport(canned_transport, w, world_clock, w, o);
}

/* ---- names ---- */

static void
test_name_normalize(void)
{
	static const struct { const char *in, *out; } t[] = {
		{ "Example.TEST", "example.test" },
		{ "example.test.", "example.test" },
		{ "a", "a" },
		{ "_dmarc.x-y.example", "_dmarc.x-y.example" },
		{ "", NULL }, { ".", NULL }, { "a..b", NULL }, { ".a", NULL },
		{ "a b.test", NULL }, { "a\tb", NULL }, { "a\nb", NULL },
		{ "caf\xc3\xa9.test", NULL }, { "a/b", NULL }, { "a\\.b", NULL },
		{ "<x>", NULL }, { "a..", NULL },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x",
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x", NULL },
	};
	char out[DNS_NAME_MAX], big[400];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int rc = dns_name_normalize(t[i].in, out, sizeof out);
		if (rc != (t[i].out ? 0 : -1))
			fprintf(stderr, "\n  normalize \"%s\": %d\n", t[i].in, rc);
		CU_ASSERT_EQUAL(rc, t[i].out ? 0 : -1);
		if (t[i].out && rc == 0)
			CU_ASSERT_STRING_EQUAL(out, t[i].out);
	}
	/* 253 characters is the limit. */
	memset(big, 'a', sizeof big);
	for (size_t i = 50; i < 260; i += 51)
		big[i] = '.';
	big[253] = '\0';
	CU_ASSERT_EQUAL(dns_name_normalize(big, out, sizeof out), 0);
	big[253] = 'a';
	big[254] = '\0';
	CU_ASSERT_EQUAL(dns_name_normalize(big, out, sizeof out), -1);
	big[399] = '\0';
	CU_ASSERT_EQUAL(dns_name_normalize(big, out, sizeof out), -1);
	CU_ASSERT_EQUAL(dns_name_normalize(NULL, out, sizeof out), -1);
	CU_ASSERT_EQUAL(dns_name_normalize("abc.test", out, 4), -1);
}

static void
test_wire_name(void)
{
	static const struct {
		const char *wire;
		size_t len;
		const char *out;
	} t[] = {
		{ "\0", 1, "" },
		{ "\2mx\4TEST\0", 9, "mx.test" },
		{ "\2mx\4test", 8, NULL },		/* no terminator */
		{ "\2mx\4test\0\0", 10, NULL },	/* trailing bytes */
		{ "\2m\x07\4test\0", 9, NULL },		/* control character */
		{ "\3a b\0", 5, NULL },			/* space */
		{ "\3a.b\0", 5, NULL },			/* dot inside a label */
		{ "\xc0\x0c", 2, NULL },		/* a compression pointer */
		{ "\x40" "aaaa", 5, NULL },		/* label length 64 */
		{ "\5ab\0", 4, NULL },			/* label past the end */
		{ "", 0, NULL },
	};
	char out[DNS_NAME_MAX];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int rc = dns_wire_name_to_text((const uint8_t *)t[i].wire, t[i].len,
		    out, sizeof out);
		CU_ASSERT_EQUAL(rc, t[i].out ? 0 : -1);
		if (t[i].out && rc == 0)
			CU_ASSERT_STRING_EQUAL(out, t[i].out);
	}
}

/* ---- parsing canned MX answers ---- */

static int
parse_mx(const char *qname, int rcode, int flags, const char *const *ans,
    const char *const *auth, uint64_t seed, struct dns_mx_result **res_r)
{
	size_t len;
	uint8_t *w = build_pkt(qname, DNS_T_MX, rcode, flags, ans, auth, &len);
	int st = dns_parse_mx_answer(w, len, qname, seed, res_r);
	free(w);
	return st;
}

static void
test_mx_order(void)
{
	struct dns_mx_result *res;

	CU_ASSERT_EQUAL(parse_mx("example.test", LDNS_RCODE_NOERROR, 0,
	    L("example.test. 300 IN MX 20 mx2.example.test.",
	      "example.test. 300 IN MX 10 MX1.example.test.",
	      "example.test. 300 IN MX 30 mx3.example.test."), NULL, 7, &res),
	    DNS_OK);
	CU_ASSERT_EQUAL(res->nhosts, 3);
	CU_ASSERT_STRING_EQUAL(res->hosts[0].name, "mx1.example.test");
	CU_ASSERT_EQUAL(res->hosts[0].pref, 10);
	CU_ASSERT_STRING_EQUAL(res->hosts[1].name, "mx2.example.test");
	CU_ASSERT_STRING_EQUAL(res->hosts[2].name, "mx3.example.test");
	CU_ASSERT_FALSE(res->implicit);
	dns_mx_result_free(&res);
	CU_ASSERT_PTR_NULL(res);
}

static void
test_mx_shuffle(void)
{
	int first_b = 0, first_c = 0, first_d = 0;

	for (uint64_t seed = 1; seed <= 300; seed++) {
		struct dns_mx_result *res;
		CU_ASSERT_EQUAL_FATAL(parse_mx("example.test", 0, 0,
		    L("example.test. 300 IN MX 10 b.example.test.",
		      "example.test. 300 IN MX 10 c.example.test.",
		      "example.test. 300 IN MX 5 a.example.test.",
		      "example.test. 300 IN MX 10 d.example.test.",
		      "example.test. 300 IN MX 50 z.example.test."), NULL, seed * 7919,
		    &res), DNS_OK);
		CU_ASSERT_EQUAL(res->nhosts, 5);
		CU_ASSERT_STRING_EQUAL(res->hosts[0].name, "a.example.test");
		CU_ASSERT_STRING_EQUAL(res->hosts[4].name, "z.example.test");
		for (size_t i = 1; i < 4; i++)
			CU_ASSERT_EQUAL(res->hosts[i].pref, 10);
		first_b += strcmp(res->hosts[1].name, "b.example.test") == 0;
		first_c += strcmp(res->hosts[1].name, "c.example.test") == 0;
		first_d += strcmp(res->hosts[1].name, "d.example.test") == 0;
		dns_mx_result_free(&res);
	}
	/* Each of the three equal hosts comes first a fair share of times. */
	CU_ASSERT(first_b > 50 && first_c > 50 && first_d > 50);
	CU_ASSERT_EQUAL(first_b + first_c + first_d, 300);
}

static void
test_mx_cases(void)
{
	const struct {
		const char *what;
		int rcode, flags;
		const char *const *ans, *const *auth;
		int status;
		size_t nhosts;
		const char *first;
	} t[] = {
		{ "null MX", 0, 0, L("nm.test. 300 IN MX 0 ."), NULL, DNS_NULL_MX, 0, NULL },
		{ "null MX beside a real MX: the real one is used", 0, 0,
		  L("nm.test. 300 IN MX 0 .", "nm.test. 300 IN MX 10 mx.nm.test."),
		  NULL, DNS_OK, 1, "mx.nm.test" },
		{ "NXDOMAIN", LDNS_RCODE_NXDOMAIN, 0, NULL,
		  L(SOA("nm.test", 60)), DNS_NXDOMAIN, 0, NULL },
		{ "SERVFAIL", LDNS_RCODE_SERVFAIL, 0, NULL, NULL, DNS_TEMP, 0, NULL },
		{ "REFUSED", LDNS_RCODE_REFUSED, 0, NULL, NULL, DNS_TEMP, 0, NULL },
		{ "FORMERR", LDNS_RCODE_FORMERR, 0, NULL, NULL, DNS_TEMP, 0, NULL },
		{ "NOTIMPL", LDNS_RCODE_NOTIMPL, 0, NULL, NULL, DNS_TEMP, 0, NULL },
		{ "YXDOMAIN", 6, 0, NULL, NULL, DNS_TEMP, 0, NULL },
		{ "NODATA: implicit MX next", 0, 0, NULL, L(SOA("nm.test", 60)),
		  DNS_NO_ADDRESS, 1, "nm.test" },
		{ "records of another type only: NODATA", 0, 0,
		  L("nm.test. 300 IN A 192.0.2.1", "nm.test. 300 IN TXT \"x\""), NULL,
		  DNS_NO_ADDRESS, 1, "nm.test" },
		{ "MX of another name only: NODATA", 0, 0,
		  L("evil.test. 300 IN MX 10 mx.evil.test."), NULL,
		  DNS_NO_ADDRESS, 1, "nm.test" },
		{ "MX of another name ignored beside ours", 0, 0,
		  L("evil.test. 300 IN MX 1 mx.evil.test.",
		    "nm.test. 300 IN MX 10 mx.nm.test."), NULL, DNS_OK, 1, "mx.nm.test" },
		{ "CNAME to the MX target, in the packet", 0, 0,
		  L("nm.test. 300 IN CNAME real.test.",
		    "real.test. 300 IN MX 10 mx.real.test."), NULL, DNS_OK, 1,
		  "mx.real.test" },
		{ "CNAME chain of 3", 0, 0,
		  L("c2.test. 300 IN CNAME c3.test.", "nm.test. 300 IN CNAME c1.test.",
		    "c3.test. 300 IN MX 10 mx.c3.test.", "c1.test. 300 IN CNAME c2.test."),
		  NULL, DNS_OK, 1, "mx.c3.test" },
		{ "CNAME loop", 0, 0,
		  L("nm.test. 300 IN CNAME x.test.", "x.test. 300 IN CNAME nm.test."),
		  NULL, DNS_TEMP, 0, NULL },
		{ "conflicting CNAMEs", 0, 0,
		  L("nm.test. 300 IN CNAME x.test.", "nm.test. 300 IN CNAME y.test."),
		  NULL, DNS_TEMP, 0, NULL },
		{ "CNAME chain ending without MX: re-query", 0, 0,
		  L("nm.test. 300 IN CNAME x.test."), NULL, DNS_TEMP, 0, NULL },
		{ "MX with a control character: skipped", 0, 0,
		  L("nm.test. 300 IN MX 5 bad\\007.nm.test.",
		    "nm.test. 300 IN MX 10 good.nm.test."), NULL, DNS_OK, 1,
		  "good.nm.test" },
		{ "every MX bad", 0, 0,
		  L("nm.test. 300 IN MX 5 bad\\010name.nm.test.",
		    "nm.test. 300 IN MX 10 a\\032b.nm.test."), NULL, DNS_NO_ADDRESS, 0,
		  NULL },
		{ "duplicate MX names: best kept", 0, 0,
		  L("nm.test. 300 IN MX 20 mx.nm.test.", "nm.test. 300 IN MX 10 MX.nm.test.",
		    "nm.test. 300 IN MX 30 mx.nm.test."), NULL, DNS_OK, 1, "mx.nm.test" },
		{ "records in an NXDOMAIN", LDNS_RCODE_NXDOMAIN, 0,
		  L("nm.test. 300 IN MX 10 mx.nm.test."), NULL, DNS_TEMP, 0, NULL },
		{ "CNAME then NXDOMAIN", LDNS_RCODE_NXDOMAIN, 0,
		  L("nm.test. 300 IN CNAME gone.test."), NULL, DNS_NXDOMAIN, 0, NULL },
		{ "truncated flag", 0, F_TC, L("nm.test. 300 IN MX 10 mx.nm.test."),
		  NULL, DNS_TEMP, 0, NULL },
		{ "not a response", 0, F_NOQR, L("nm.test. 300 IN MX 10 mx.nm.test."),
		  NULL, DNS_TEMP, 0, NULL },
		{ "no question", 0, F_NOQUESTION, L("nm.test. 300 IN MX 10 mx.nm.test."),
		  NULL, DNS_TEMP, 0, NULL },
		{ "another class", 0, 0, L("nm.test. 300 CH MX 10 mx.nm.test."), NULL,
		  DNS_NO_ADDRESS, 1, "nm.test" },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct dns_mx_result *res;
		int st = parse_mx("nm.test", t[i].rcode, t[i].flags, t[i].ans,
		    t[i].auth, i + 1, &res);
		if (st != t[i].status || res->nhosts != t[i].nhosts)
			fprintf(stderr, "\n  case \"%s\": status %d nhosts %zu (%s)\n",
			    t[i].what, st, res->nhosts, res->detail);
		CU_ASSERT_EQUAL(st, t[i].status);
		CU_ASSERT_EQUAL((int)res->status, st);
		CU_ASSERT_EQUAL(res->nhosts, t[i].nhosts);
		if (t[i].first && res->nhosts > 0)
			CU_ASSERT_STRING_EQUAL(res->hosts[0].name, t[i].first);
		if (st != DNS_OK)
			CU_ASSERT(res->detail[0] != '\0' || res->implicit);
		dns_mx_result_free(&res);
	}
}

static void
test_mx_bounds(void)
{
	const char *ans[40];
	char lines[32][100];
	struct dns_mx_result *res;
	size_t len;
	uint8_t *w;

	for (int i = 0; i < 32; i++) {
		snprintf(lines[i], sizeof lines[i],
		    "big.test. 300 IN MX %d mx%02d.big.test.", 100 - i, i);
		ans[i] = lines[i];
	}
	ans[32] = NULL;
	w = build_pkt("big.test", DNS_T_MX, 0, 0, ans, NULL, &len);
	CU_ASSERT_EQUAL(dns_parse_mx_answer(w, len, "big.test", 3, &res), DNS_OK);
	CU_ASSERT_EQUAL(res->nhosts, DNS_MAX_MX_HOSTS);
	/* The best ten: preferences 69..78, in order. */
	CU_ASSERT_EQUAL(res->hosts[0].pref, 69);
	CU_ASSERT_STRING_EQUAL(res->hosts[0].name, "mx31.big.test");
	CU_ASSERT_EQUAL(res->hosts[9].pref, 78);
	dns_mx_result_free(&res);
	free(w);

	/* A name that is not valid never reaches the parser. */
	CU_ASSERT_EQUAL(dns_parse_mx_answer((const uint8_t *)"", 0, "bad name", 1,
	    &res), DNS_BAD_NAME);
	dns_mx_result_free(&res);
}

/* ---- hostile wire bytes ---- */

static void
test_malformed(void)
{
	static const char *const good[] = {
		"mal.test. 300 IN MX 10 mx.mal.test.",
		"mal.test. 300 IN MX 20 mx2.mal.test.", NULL };
	struct dns_mx_result *res;
	struct dns_rrset *rs;
	size_t len;
	uint8_t *w = build_pkt("mal.test", DNS_T_MX, 0, 0, good, NULL, &len);
	uint8_t *c = xmalloc(len + 16);

	/* Every truncation of a good packet fails cleanly. */
	for (size_t cut = 0; cut < len; cut++) {
		memcpy(c, w, cut);
		CU_ASSERT_EQUAL(dns_parse_mx_answer(c, cut, "mal.test", 1, &res),
		    DNS_TEMP);
		dns_mx_result_free(&res);
	}
	CU_ASSERT_EQUAL(dns_parse_mx_answer(w, len, "mal.test", 1, &res), DNS_OK);
	dns_mx_result_free(&res);

	/* Wrong counts: one answer more or fewer than there is. */
	memcpy(c, w, len);
	c[7]++;
	CU_ASSERT_EQUAL(dns_parse_mx_answer(c, len, "mal.test", 1, &res), DNS_TEMP);
	dns_mx_result_free(&res);
	memcpy(c, w, len);
	c[7]--;
	/* Fewer: the leftover bytes are trailing garbage; ldns may take or
	 * refuse them, but never a crash, and never the second MX. */
	dns_parse_mx_answer(c, len, "mal.test", 1, &res);
	CU_ASSERT(res->nhosts <= 1);
	dns_mx_result_free(&res);
	memcpy(c, w, len);
	c[4] = 0;
	c[5] = 2;		/* two questions */
	CU_ASSERT_EQUAL(dns_parse_mx_answer(c, len, "mal.test", 1, &res), DNS_TEMP);
	dns_mx_result_free(&res);

	/* Every single-byte corruption: no crash, sane results. */
	for (size_t i = 0; i < len; i++)
		for (int v = 0; v < 256; v += 37) {
			memcpy(c, w, len);
			c[i] = (uint8_t)v;
			dns_parse_mx_answer(c, len, "mal.test", 1, &res);
			CU_ASSERT(res->nhosts <= DNS_MAX_MX_HOSTS);
			for (size_t h = 0; h < res->nhosts; h++)
				CU_ASSERT(dns_name_normalize(res->hosts[h].name,
				    (char[DNS_NAME_MAX]){0}, DNS_NAME_MAX) == 0);
			dns_mx_result_free(&res);
		}
	free(c);
	free(w);

	/* Raw packets: a compression loop in the question, a pointer past the
	 * end, an MX whose exchange points at itself, a huge rdlength. */
	{
		static const uint8_t loop_q[] = {
			0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0,
			0xc0, 0x0c, 0, 15, 0, 1 };
		static const uint8_t far_ptr[] = {
			0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0,
			0xc0, 0xff, 0, 15, 0, 1 };
		static const uint8_t mx_loop[] = {
			0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
			3, 'm', 'a', 'l', 4, 't', 'e', 's', 't', 0, 0, 15, 0, 1,
			0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 1, 0x2c, 0, 4, 0, 10,
			0xc0, 0x28 };
		static const uint8_t big_rdlen[] = {
			0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
			3, 'm', 'a', 'l', 4, 't', 'e', 's', 't', 0, 0, 15, 0, 1,
			0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 1, 0x2c, 0xff, 0xff, 0, 10, 0 };
		static const uint8_t header_only[] = {
			0x12, 0x34, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0 };
		static const struct { const uint8_t *p; size_t n; } raw[] = {
			{ loop_q, sizeof loop_q }, { far_ptr, sizeof far_ptr },
			{ mx_loop, sizeof mx_loop }, { big_rdlen, sizeof big_rdlen },
			{ header_only, sizeof header_only },
		};
		for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
			CU_ASSERT_EQUAL(dns_parse_mx_answer(raw[i].p, raw[i].n,
			    "mal.test", 1, &res), DNS_TEMP);
			dns_mx_result_free(&res);
		}
	}

	/* Other types through the generic parser. */
	{
		const struct {
			uint16_t type;
			const char *const *ans;
			enum dns_kind kind;
			size_t n;
		} t[] = {
			{ DNS_T_A, L("h.test. 60 IN A 192.0.2.1", "h.test. 60 IN A 192.0.2.2",
			    "other.test. 60 IN A 192.0.2.3"), DNS_K_DATA, 2 },
			{ DNS_T_AAAA, L("h.test. 60 IN AAAA 2001:db8::1"), DNS_K_DATA, 1 },
			{ DNS_T_AAAA, L("h.test. 60 IN A 192.0.2.1"), DNS_K_NODATA, 0 },
			{ DNS_T_PTR, L("h.test. 60 IN PTR bad\\000name.test.",
			    "h.test. 60 IN PTR Good.Test."), DNS_K_DATA, 1 },
		};
		for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
			w = build_pkt("h.test", t[i].type, 0, 0, t[i].ans, NULL, &len);
			rs = dns_answer_parse(w, len, "h.test", t[i].type);
			CU_ASSERT_EQUAL(rs->kind, t[i].kind);
			CU_ASSERT_EQUAL(rs->n, t[i].n);
			if (t[i].type == DNS_T_PTR && rs->n == 1)
				CU_ASSERT_STRING_EQUAL(rs->rrs[0].name, "good.test");
			dns_rrset_free(&rs);
			free(w);
		}
		/* An answer to another question: refused. */
		w = build_pkt("other.test", DNS_T_A, 0, 0,
		    L("h.test. 60 IN A 192.0.2.1"), NULL, &len);
		rs = dns_answer_parse(w, len, "h.test", DNS_T_A);
		CU_ASSERT_EQUAL(rs->kind, DNS_K_TEMP);
		dns_rrset_free(&rs);
		rs = dns_answer_parse(w, len, "other.test", DNS_T_AAAA);
		CU_ASSERT_EQUAL(rs->kind, DNS_K_TEMP);
		dns_rrset_free(&rs);
		free(w);
	}
}

static void
test_ttls(void)
{
	const struct {
		int rcode;
		const char *const *ans, *const *auth;
		enum dns_kind kind;
		uint32_t ttl;
	} t[] = {
		{ 0, L("t.test. 300 IN MX 10 a.t.test.", "t.test. 100 IN MX 20 b.t.test."),
		  NULL, DNS_K_DATA, 100 },
		{ 0, L("t.test. 50 IN CNAME u.test.", "u.test. 300 IN MX 10 a.u.test."),
		  NULL, DNS_K_DATA, 50 },
		{ 0, L("t.test. 2147483648 IN MX 10 a.t.test."), NULL, DNS_K_DATA, 0 },
		{ LDNS_RCODE_NXDOMAIN, NULL, L(SOA("t.test", 30)), DNS_K_NXDOMAIN, 30 },
		{ 0, NULL, L("t.test. 20 IN SOA ns.t.test. h.t.test. 1 2 3 4 900"),
		  DNS_K_NODATA, 20 },
		{ 0, NULL, NULL, DNS_K_NODATA, DNS_DEFAULT_NEG_TTL },
		{ 0, L("t.test. 40 IN CNAME u.test."), NULL, DNS_K_CNAME, 40 },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		size_t len;
		uint8_t *w = build_pkt("t.test", DNS_T_MX, t[i].rcode, 0, t[i].ans,
		    t[i].auth, &len);
		struct dns_rrset *rs = dns_answer_parse(w, len, "t.test", DNS_T_MX);
		CU_ASSERT_EQUAL(rs->kind, t[i].kind);
		CU_ASSERT_EQUAL(rs->ttl, t[i].ttl);
		if (t[i].kind == DNS_K_CNAME)
			CU_ASSERT_STRING_EQUAL(rs->target, "u.test");
		dns_rrset_free(&rs);
		free(w);
	}
}

/* ---- whole lookups on a canned world ---- */

static const struct canned world1[] = {
	{ "example.test", DNS_T_MX, 0, L("example.test. 300 IN MX 20 mx2.example.test.",
	    "example.test. 300 IN MX 10 mx1.example.test."), NULL, 0 },
	{ "mx1.example.test", DNS_T_A, 0, L("mx1.example.test. 300 IN A 127.0.0.2"), NULL, 0 },
	{ "mx1.example.test", DNS_T_AAAA, 0, L("mx1.example.test. 300 IN AAAA ::2"), NULL, 0 },
	{ "mx2.example.test", DNS_T_A, 0, L("mx2.example.test. 300 IN A 127.0.0.3"), NULL, 0 },
	{ "mx2.example.test", DNS_T_AAAA, 0, NULL, L(SOA("example.test", 60)), 0 },
	{ "nullmx.test", DNS_T_MX, 0, L("nullmx.test. 300 IN MX 0 ."), NULL, 0 },
	{ "implicit.test", DNS_T_MX, 0, NULL, L(SOA("implicit.test", 60)), 0 },
	{ "implicit.test", DNS_T_A, 0, L("implicit.test. 300 IN A 127.0.0.4"), NULL, 0 },
	{ "implicit.test", DNS_T_AAAA, 0, NULL, L(SOA("implicit.test", 60)), 0 },
	{ "noaddr.test", DNS_T_MX, 0, NULL, L(SOA("noaddr.test", 60)), 0 },
	{ "noaddr.test", 0, 0, NULL, L(SOA("noaddr.test", 60)), 0 },
	{ "fail.test", 0, LDNS_RCODE_SERVFAIL, NULL, NULL, 0 },
	{ "slow.test", 0, NO_ANSWER, NULL, NULL, 0 },
	{ "alias.test", DNS_T_MX, 0, L("alias.test. 300 IN CNAME target.test."), NULL, 0 },
	{ "target.test", DNS_T_MX, 0, L("target.test. 300 IN MX 10 mx1.example.test."), NULL, 0 },
	{ "deadmx.test", DNS_T_MX, 0, L("deadmx.test. 300 IN MX 10 gone.deadmx.test.",
	    "deadmx.test. 300 IN MX 20 mx2.example.test."), NULL, 0 },
	{ "tempmx.test", DNS_T_MX, 0, L("tempmx.test. 300 IN MX 10 fail.test.",
	    "tempmx.test. 300 IN MX 20 slow.test."), NULL, 0 },
	{ "nxmx.test", DNS_T_MX, 0, L("nxmx.test. 300 IN MX 10 gone.nxmx.test."), NULL, 0 },
	{ "many.test", DNS_T_MX, 0, L("many.test. 300 IN MX 10 h1.many.test.",
	    "many.test. 300 IN MX 20 h2.many.test.", "many.test. 300 IN MX 30 h3.many.test."),
	  NULL, 0 },
	{ "h1.many.test", DNS_T_A, 0, L("h1.many.test. 300 IN A 10.0.0.1",
	    "h1.many.test. 300 IN A 10.0.0.2", "h1.many.test. 300 IN A 10.0.0.1",
	    "h1.many.test. 300 IN A 0.0.0.0", "h1.many.test. 300 IN A 224.0.0.1"), NULL, 0 },
	{ "h2.many.test", DNS_T_A, 0, L("h2.many.test. 300 IN A 10.0.0.3",
	    "h2.many.test. 300 IN A 10.0.0.4"), NULL, 0 },
	{ "h3.many.test", DNS_T_A, 0, L("h3.many.test. 300 IN A 10.0.0.5"), NULL, 0 },
	{ "*", DNS_T_AAAA, 0, NULL, NULL, 0 },
	{ "loop1.test", 0, 0, L("loop1.test. 300 IN CNAME loop2.test."), NULL, 0 },
	{ "loop2.test", 0, 0, L("loop2.test. 300 IN CNAME loop1.test."), NULL, 0 },
	{ "2.0.0.127.in-addr.arpa", DNS_T_PTR, 0,
	  L("2.0.0.127.in-addr.arpa. 300 IN PTR MX1.example.test."), NULL, 0 },
	{ "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
	  DNS_T_PTR, 0, L("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
	  " 300 IN PTR localhost."), NULL, 0 },
};

static void
test_lookup_world(void)
{
	struct world w;
	struct dns_options o;
	struct dns_resolver *r;
	struct dns_mx_result *res;

	dns_options_default(&o);
	r = world_resolver(&w, world1, sizeof world1 / sizeof world1[0], &o);

	CU_ASSERT_EQUAL(dns_mx_lookup(r, "Example.Test.", &res), DNS_OK);
	CU_ASSERT_STRING_EQUAL(res->domain, "example.test");
	CU_ASSERT_EQUAL(res->nhosts, 2);
	CU_ASSERT_STRING_EQUAL(res->hosts[0].name, "mx1.example.test");
	CU_ASSERT_EQUAL(res->hosts[0].naddrs, 2);
	CU_ASSERT_STRING_EQUAL(res->hosts[0].addrs[0].text, "127.0.0.2");
	CU_ASSERT_EQUAL(res->hosts[0].addrs[1].family, AF_INET6);
	CU_ASSERT_STRING_EQUAL(res->hosts[0].addrs[1].text, "::2");
	CU_ASSERT_EQUAL(res->ntargets, 3);
	CU_ASSERT_STRING_EQUAL(res->targets[2].addr.text, "127.0.0.3");
	CU_ASSERT_EQUAL(res->targets[2].host, 1);
	dns_mx_result_free(&res);

	CU_ASSERT_EQUAL(dns_mx_lookup(r, "nullmx.test", &res), DNS_NULL_MX);
	CU_ASSERT_STRING_EQUAL(dns_status_dsn(res->status), "5.1.10");
	dns_mx_result_free(&res);

	CU_ASSERT_EQUAL(dns_mx_lookup(r, "implicit.test", &res), DNS_OK);
	CU_ASSERT(res->implicit);
	CU_ASSERT_EQUAL(res->nhosts, 1);
	CU_ASSERT_STRING_EQUAL(res->hosts[0].name, "implicit.test");
	CU_ASSERT_EQUAL(res->hosts[0].pref, 0);
	CU_ASSERT_STRING_EQUAL(res->targets[0].addr.text, "127.0.0.4");
	dns_mx_result_free(&res);

	CU_ASSERT_EQUAL(dns_mx_lookup(r, "noaddr.test", &res), DNS_NO_ADDRESS);
	CU_ASSERT(res->implicit);
	dns_mx_result_free(&res);

	CU_ASSERT_EQUAL(dns_mx_lookup(r, "nx.test", &res), DNS_NXDOMAIN);
	CU_ASSERT(dns_status_is_permanent(res->status));
	CU_ASSERT_STRING_EQUAL(dns_status_dsn(res->status), "5.1.2");
	dns_mx_result_free(&res);

	CU_ASSERT_EQUAL(dns_mx_lookup(r, "fail.test", &res), DNS_TEMP);
	CU_ASSERT_FALSE(dns_status_is_permanent(res->status));
	CU_ASSERT_PTR_NOT_NULL(strstr(res->detail, "SERVFAIL"));
	dns_mx_result_free(&res);

	CU_ASSERT_EQUAL(dns_mx_lookup(r, "slow.test", &res), DNS_TEMP);
	dns_mx_result_free(&res);

	/* CNAME whose chain ends without MX: the target is asked. */
	CU_ASSERT_EQUAL(dns_mx_lookup(r, "alias.test", &res), DNS_OK);
	CU_ASSERT_EQUAL(res->nhosts, 1);
	CU_ASSERT_STRING_EQUAL(res->hosts[0].name, "mx1.example.test");
	dns_mx_result_free(&res);

	/* CNAME loop across queries. */
	CU_ASSERT_EQUAL(dns_mx_lookup(r, "loop1.test", &res), DNS_TEMP);
	dns_mx_result_free(&res);

	/* A dead best MX is skipped. */
	CU_ASSERT_EQUAL(dns_mx_lookup(r, "deadmx.test", &res), DNS_OK);
	CU_ASSERT_EQUAL(res->nhosts, 1);
	CU_ASSERT_STRING_EQUAL(res->hosts[0].name, "mx2.example.test");
	dns_mx_result_free(&res);

	/* Hosts that fail temporarily: temporary; hosts that do not exist:
	 * no address (still temporary, but told apart). */
	CU_ASSERT_EQUAL(dns_mx_lookup(r, "tempmx.test", &res), DNS_TEMP);
	dns_mx_result_free(&res);
	CU_ASSERT_EQUAL(dns_mx_lookup(r, "nxmx.test", &res), DNS_NO_ADDRESS);
	CU_ASSERT_FALSE(dns_status_is_permanent(res->status));
	dns_mx_result_free(&res);

	CU_ASSERT_EQUAL(dns_mx_lookup(r, "bad..name", &res), DNS_BAD_NAME);
	dns_mx_result_free(&res);
	CU_ASSERT_EQUAL(dns_mx_lookup(r, "evil\r\n.test", &res), DNS_BAD_NAME);
	dns_mx_result_free(&res);

	dns_resolver_free(&r);
	CU_ASSERT_PTR_NULL(r);
}

static void
test_lookup_bounds(void)
{
	struct world w;
	struct dns_options o;
	struct dns_resolver *r;
	struct dns_mx_result *res;
	unsigned long before;

	dns_options_default(&o);
	o.use_ipv6 = 0;
	r = world_resolver(&w, world1, sizeof world1 / sizeof world1[0], &o);
	/* h1 has 2 usable distinct addresses (dups, 0.0.0.0, multicast
	 * dropped), h2 two, h3 one: 5 reached with h1+h2+h3. */
	CU_ASSERT_EQUAL(dns_mx_lookup(r, "many.test", &res), DNS_OK);
	CU_ASSERT_EQUAL(res->hosts[0].naddrs, 2);
	CU_ASSERT_EQUAL(res->ntargets, 5);
	CU_ASSERT_STRING_EQUAL(res->targets[4].addr.text, "10.0.0.5");
	dns_mx_result_free(&res);
	dns_resolver_free(&r);

	/* max_addrs 3: h3 is never asked. */
	o.max_addrs = 3;
	o.cache_entries = 0;
	r = world_resolver(&w, world1, sizeof world1 / sizeof world1[0], &o);
	before = w.queries;
	CU_ASSERT_EQUAL(dns_mx_lookup(r, "many.test", &res), DNS_OK);
	CU_ASSERT_EQUAL(res->ntargets, 3);
	CU_ASSERT_EQUAL(res->nhosts, 2);
	CU_ASSERT_EQUAL(w.queries - before, 3);	/* MX, A h1, A h2 */
	dns_mx_result_free(&res);
	dns_resolver_free(&r);

	/* prefer_ipv6 puts AAAA first. */
	dns_options_default(&o);
	o.prefer_ipv6 = 1;
	r = world_resolver(&w, world1, sizeof world1 / sizeof world1[0], &o);
	CU_ASSERT_EQUAL(dns_mx_lookup(r, "example.test", &res), DNS_OK);
	CU_ASSERT_EQUAL(res->targets[0].addr.family, AF_INET6);
	CU_ASSERT_EQUAL(res->targets[1].addr.family, AF_INET);
	dns_mx_result_free(&res);
	dns_resolver_free(&r);

	/* Bad options. */
	{
		char err[128];
		struct dns_server_addr sv = { "127.0.0.1", 53 };
		dns_options_default(&o);
		o.tries = 0;
		CU_ASSERT_PTR_NULL(dns_resolver_new_opts(&sv, 1, &o, err, sizeof err));
		CU_ASSERT(err[0] != '\0');
		dns_options_default(&o);
		o.max_addrs = DNS_MAX_TARGETS + 1;
		CU_ASSERT_PTR_NULL(dns_resolver_new_opts(&sv, 1, &o, err, sizeof err));
	}
}

static void
test_addr_ptr(void)
{
	struct world w;
	struct dns_resolver *r = world_resolver(&w, world1,
	    sizeof world1 / sizeof world1[0], NULL);
	struct dns_addr_result *a;
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	struct sockaddr su = { .sa_family = AF_UNIX };
	char name[DNS_NAME_MAX];
	unsigned long q = w.queries;

	/* Literals need no query. */
	static const struct { const char *in, *text; } lit[] = {
		{ "192.0.2.7", "192.0.2.7" }, { "[192.0.2.8]", "192.0.2.8" },
		{ "2001:db8::1", "2001:db8::1" }, { "[IPv6:2001:db8::2]", "2001:db8::2" },
		{ "[::1]", "::1" },
	};
	for (size_t i = 0; i < sizeof lit / sizeof lit[0]; i++) {
		CU_ASSERT_EQUAL(dns_addr_lookup(r, lit[i].in, &a), DNS_OK);
		CU_ASSERT_EQUAL(a->naddrs, 1);
		CU_ASSERT_STRING_EQUAL(a->addrs[0].text, lit[i].text);
		dns_addr_result_free(&a);
	}
	CU_ASSERT_EQUAL(w.queries, q);

	CU_ASSERT_EQUAL(dns_addr_lookup(r, "mx1.example.test", &a), DNS_OK);
	CU_ASSERT_EQUAL(a->naddrs, 2);
	dns_addr_result_free(&a);
	CU_ASSERT_EQUAL(dns_addr_lookup(r, "gone.test", &a), DNS_NXDOMAIN);
	dns_addr_result_free(&a);
	CU_ASSERT_EQUAL(dns_addr_lookup(r, "noaddr.test", &a), DNS_NO_ADDRESS);
	dns_addr_result_free(&a);
	CU_ASSERT_EQUAL(dns_addr_lookup(r, "fail.test", &a), DNS_TEMP);
	dns_addr_result_free(&a);
	CU_ASSERT_EQUAL(dns_addr_lookup(r, "[not an address]", &a), DNS_BAD_NAME);
	dns_addr_result_free(&a);
	CU_ASSERT_EQUAL(dns_addr_lookup(r, NULL, &a), DNS_BAD_NAME);
	dns_addr_result_free(&a);

	memset(&s4, 0, sizeof s4);
	s4.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.2", &s4.sin_addr);
	CU_ASSERT_EQUAL(dns_ptr_lookup(r, (struct sockaddr *)&s4, name, sizeof name),
	    DNS_OK);
	CU_ASSERT_STRING_EQUAL(name, "mx1.example.test");
	CU_ASSERT_EQUAL(dns_ptr_lookup(r, (struct sockaddr *)&s4, name, 5), DNS_NXDOMAIN);
	CU_ASSERT_STRING_EQUAL(name, "");
	inet_pton(AF_INET, "127.0.0.9", &s4.sin_addr);
	CU_ASSERT_EQUAL(dns_ptr_lookup(r, (struct sockaddr *)&s4, name, sizeof name),
	    DNS_NXDOMAIN);
	memset(&s6, 0, sizeof s6);
	s6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::1", &s6.sin6_addr);
	CU_ASSERT_EQUAL(dns_ptr_lookup(r, (struct sockaddr *)&s6, name, sizeof name),
	    DNS_OK);
	CU_ASSERT_STRING_EQUAL(name, "localhost");
	inet_pton(AF_INET6, "::ffff:127.0.0.2", &s6.sin6_addr);
	CU_ASSERT_EQUAL(dns_ptr_lookup(r, (struct sockaddr *)&s6, name, sizeof name),
	    DNS_OK);
	CU_ASSERT_STRING_EQUAL(name, "mx1.example.test");
	CU_ASSERT_EQUAL(dns_ptr_lookup(r, &su, name, sizeof name), DNS_BAD_NAME);
	dns_resolver_free(&r);
}

static void
test_status(void)
{
	static const struct { int st, perm; const char *dsn; } t[] = {
		{ DNS_OK, 0, "2.0.0" }, { DNS_NULL_MX, 1, "5.1.10" },
		{ DNS_NXDOMAIN, 1, "5.1.2" }, { DNS_NO_ADDRESS, 0, "4.4.4" },
		{ DNS_TEMP, 0, "4.4.3" }, { DNS_BAD_NAME, 1, "5.1.2" },
		{ 99, 0, "4.4.3" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		CU_ASSERT_EQUAL(dns_status_is_permanent(t[i].st), t[i].perm);
		CU_ASSERT_STRING_EQUAL(dns_status_dsn(t[i].st), t[i].dsn);
		CU_ASSERT_PTR_NOT_NULL(dns_status_str(t[i].st));
	}
}

/* ---- cache ---- */

static struct dns_rrset *
mk_rrset(enum dns_kind kind, const char *name1)
{
	struct dns_rrset *rs = dns_rrset_new(kind, DNS_T_MX);
	if (name1) {
		rs->rrs = xcalloc(1, sizeof *rs->rrs);
		rs->rrs[0].name = xstrdup(name1);
		rs->rrs[0].pref = 10;
		rs->n = 1;
	}
	return rs;
}

static void
test_cache_basic(void)
{
	struct dns_cache *c = dns_cache_new(3);
	struct dns_rrset *rs = mk_rrset(DNS_K_DATA, "mx.a.test"), *got;

	dns_cache_put(c, "a.test", DNS_T_MX, rs, 60, 1000);
	got = dns_cache_get(c, "A.TEST", DNS_T_MX, 1000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_EQUAL(got->n, 1);
	CU_ASSERT_STRING_EQUAL(got->rrs[0].name, "mx.a.test");
	CU_ASSERT_PTR_NOT_EQUAL(got->rrs[0].name, rs->rrs[0].name);	/* a copy */
	CU_ASSERT_EQUAL(got->ttl, 60);
	dns_rrset_free(&got);
	CU_ASSERT_PTR_NULL(dns_cache_get(c, "a.test", DNS_T_A, 1000));	/* type */
	got = dns_cache_get(c, "a.test", DNS_T_MX, 1000 + 59001);
	CU_ASSERT_PTR_NOT_NULL(got);
	if (got)
		CU_ASSERT_EQUAL(got->ttl, 1);
	dns_rrset_free(&got);
	/* Expired exactly at the TTL, and removed. */
	CU_ASSERT_PTR_NULL(dns_cache_get(c, "a.test", DNS_T_MX, 1000 + 60000));
	CU_ASSERT_EQUAL(dns_cache_count(c), 0);

	/* TTL 0 is not stored. */
	dns_cache_put(c, "z.test", DNS_T_MX, rs, 0, 1000);
	CU_ASSERT_EQUAL(dns_cache_count(c), 0);

	/* Bounded: the oldest goes first; a replacement renews the age. */
	dns_cache_put(c, "1.test", DNS_T_MX, rs, 100, 0);
	dns_cache_put(c, "2.test", DNS_T_MX, rs, 100, 0);
	dns_cache_put(c, "3.test", DNS_T_MX, rs, 100, 0);
	dns_cache_put(c, "1.test", DNS_T_MX, rs, 100, 0);
	dns_cache_put(c, "4.test", DNS_T_MX, rs, 100, 0);
	CU_ASSERT_EQUAL(dns_cache_count(c), 3);
	got = dns_cache_get(c, "2.test", DNS_T_MX, 1);
	CU_ASSERT_PTR_NULL(got);
	dns_rrset_free(&got);
	for (int i = 0; i < 3; i++) {
		const char *n[] = { "1.test", "3.test", "4.test" };
		got = dns_cache_get(c, n[i], DNS_T_MX, 1);
		CU_ASSERT_PTR_NOT_NULL(got);
		dns_rrset_free(&got);
	}
	dns_rrset_free(&rs);
	dns_cache_free(&c);
	CU_ASSERT_PTR_NULL(c);

	/* Many entries through a small table. */
	c = dns_cache_new(1000);
	rs = mk_rrset(DNS_K_NXDOMAIN, NULL);
	for (int i = 0; i < 5000; i++) {
		char n[32];
		snprintf(n, sizeof n, "h%d.test", i);
		dns_cache_put(c, n, DNS_T_A, rs, 10, i);
	}
	CU_ASSERT_EQUAL(dns_cache_count(c), 1000);
	got = dns_cache_get(c, "h4999.test", DNS_T_A, 5000);
	CU_ASSERT_PTR_NOT_NULL(got);
	if (got)
		CU_ASSERT_EQUAL(got->kind, DNS_K_NXDOMAIN);
	dns_rrset_free(&got);
	CU_ASSERT_PTR_NULL(dns_cache_get(c, "h3999.test", DNS_T_A, 5000));
	dns_rrset_free(&rs);
	dns_cache_free(&c);
}

static const struct canned world_ttl[] = {
	{ "pos.test", DNS_T_MX, 0, L("pos.test. 120 IN MX 10 mx.pos.test."), NULL, 0 },
	{ "long.test", DNS_T_MX, 0, L("long.test. 86400 IN MX 10 mx.pos.test."), NULL, 0 },
	{ "nx.test", 0, LDNS_RCODE_NXDOMAIN, NULL, L(SOA("nx.test", 30)), 0 },
	{ "nxlong.test", 0, LDNS_RCODE_NXDOMAIN, NULL,
	  L("nxlong.test. 86400 IN SOA ns.nxlong.test. h.nxlong.test. 1 2 3 4 86400"), 0 },
	{ "fail.test", 0, LDNS_RCODE_SERVFAIL, NULL, NULL, 0 },
	{ "mx.pos.test", DNS_T_A, 0, L("mx.pos.test. 600 IN A 127.0.0.2"), NULL, 0 },
	{ "*", 0, 0, NULL, L(SOA("test", 60)), 0 },
};

/* Looks name up and says how many queries it took. */
static unsigned long
queries_for(struct dns_resolver *r, struct world *w, const char *name, int expect)
{
	struct dns_mx_result *res;
	unsigned long before = w->queries;

	CU_ASSERT_EQUAL(dns_mx_lookup(r, name, &res), expect);
	dns_mx_result_free(&res);
	return w->queries - before;
}

static void
test_cache_resolver(void)
{
	struct world w;
	struct dns_options o;
	struct dns_resolver *r;

	dns_options_default(&o);
	o.use_ipv6 = 0;
	r = world_resolver(&w, world_ttl, sizeof world_ttl / sizeof world_ttl[0], &o);

	/* Positive: MX and A cached; MX expires after 120 s, A after 600 s. */
	CU_ASSERT_EQUAL(queries_for(r, &w, "pos.test", DNS_OK), 2);
	CU_ASSERT_EQUAL(queries_for(r, &w, "pos.test", DNS_OK), 0);
	w.now += 119 * 1000;
	CU_ASSERT_EQUAL(queries_for(r, &w, "pos.test", DNS_OK), 0);
	w.now += 1000;
	CU_ASSERT_EQUAL(queries_for(r, &w, "pos.test", DNS_OK), 1);

	/* A long TTL is capped at max_ttl. */
	CU_ASSERT_EQUAL(queries_for(r, &w, "long.test", DNS_OK), 1);
	w.now += 3599 * 1000;
	CU_ASSERT_EQUAL(queries_for(r, &w, "long.test", DNS_OK), 1);	/* only A expired */
	w.now += 1000;
	CU_ASSERT_EQUAL(queries_for(r, &w, "long.test", DNS_OK), 1);

	/* Negative: cached for min(SOA TTL, SOA minimum), capped. */
	CU_ASSERT_EQUAL(queries_for(r, &w, "nx.test", DNS_NXDOMAIN), 1);
	w.now += 29 * 1000;
	CU_ASSERT_EQUAL(queries_for(r, &w, "nx.test", DNS_NXDOMAIN), 0);
	w.now += 1000;
	CU_ASSERT_EQUAL(queries_for(r, &w, "nx.test", DNS_NXDOMAIN), 1);
	CU_ASSERT_EQUAL(queries_for(r, &w, "nxlong.test", DNS_NXDOMAIN), 1);
	w.now += (int64_t)(o.max_negative_ttl - 1) * 1000;
	CU_ASSERT_EQUAL(queries_for(r, &w, "nxlong.test", DNS_NXDOMAIN), 0);
	w.now += 1000;
	CU_ASSERT_EQUAL(queries_for(r, &w, "nxlong.test", DNS_NXDOMAIN), 1);

	/* Temporary failures: a few seconds only. */
	CU_ASSERT_EQUAL(queries_for(r, &w, "fail.test", DNS_TEMP), 1);
	w.now += 4000;
	CU_ASSERT_EQUAL(queries_for(r, &w, "fail.test", DNS_TEMP), 0);
	w.now += 1000;
	CU_ASSERT_EQUAL(queries_for(r, &w, "fail.test", DNS_TEMP), 1);
	dns_resolver_free(&r);

	/* temp_ttl 0: never cached. */
	o.temp_ttl = 0;
	r = world_resolver(&w, world_ttl, sizeof world_ttl / sizeof world_ttl[0], &o);
	CU_ASSERT_EQUAL(queries_for(r, &w, "fail.test", DNS_TEMP), 1);
	CU_ASSERT_EQUAL(queries_for(r, &w, "fail.test", DNS_TEMP), 1);
	dns_resolver_free(&r);

	/* The cache bound holds through the resolver. */
	o.cache_entries = 2;
	r = world_resolver(&w, world_ttl, sizeof world_ttl / sizeof world_ttl[0], &o);
	CU_ASSERT_EQUAL(queries_for(r, &w, "a.test", DNS_NO_ADDRESS), 2);
	CU_ASSERT_EQUAL(queries_for(r, &w, "nx.test", DNS_NXDOMAIN), 1);
	CU_ASSERT_EQUAL(queries_for(r, &w, "a.test", DNS_NO_ADDRESS), 2);
	dns_resolver_free(&r);
}

/* ---- threads on one resolver ---- */

struct thr_arg {
	struct dns_resolver *r;
	struct world *w;
	int fails;
};

static void *
thr_main(void *p)
{
	struct thr_arg *a = p;
	static const char *const names[] = { "example.test", "implicit.test",
	    "nullmx.test", "nx.test", "alias.test", "many.test", "fail.test" };
	static const int expect[] = { DNS_OK, DNS_OK, DNS_NULL_MX, DNS_NXDOMAIN,
	    DNS_OK, DNS_OK, DNS_TEMP };

	for (int i = 0; i < 300; i++) {
		struct dns_mx_result *res;
		size_t k = (size_t)i % 7;
		if (dns_mx_lookup(a->r, names[k], &res) != expect[k]) {
			fprintf(stderr, "\n  thread: %s: %d (%s)\n", names[k],
			    res->status, res->detail);
			a->fails++;
		}
		dns_mx_result_free(&res);
		if (i % 50 == 0)
			__atomic_add_fetch(&a->w->now, 5000, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void
test_threads(void)
{
	struct world w;
	struct dns_options o;
	struct dns_resolver *r;
	pthread_t t[8];
	struct thr_arg a[8];

	dns_options_default(&o);
	o.cache_entries = 8;	/* small: evictions race with lookups */
	o.total_timeout_ms = 600000;	/* the clock jumps: keep lookups in time */
	r = world_resolver(&w, world1, sizeof world1 / sizeof world1[0], &o);
	for (int i = 0; i < 8; i++) {
		a[i] = (struct thr_arg){ r, &w, 0 };
		pthread_create(&t[i], NULL, thr_main, &a[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		CU_ASSERT_EQUAL(a[i].fails, 0);
	}
	dns_resolver_free(&r);
}

/* ---- the real transport against an in-process loopback responder ---- */

enum responder_mode { R_NORMAL, R_WRONG_ID_FIRST, R_TRUNCATE, R_SILENT,
	R_SERVFAIL, R_SLOW };

#define SLOW_MS 450		/* R_SLOW: each answer is sent this late */
#define SLOW_MAX 16

/* An answer held back by R_SLOW. */
struct slow_answer {
	uint8_t *a;
	size_t alen;
	struct sockaddr_storage to;
	socklen_t tolen;
	int64_t due;
};

struct responder {
	int udp, tcp, stop[2];
	uint16_t port;
	enum responder_mode mode;
	int udp_queries, tcp_queries;	/* atomic */
	pthread_t thread;
	struct slow_answer slow[SLOW_MAX];	/* responder thread only */
	size_t nslow;
};

/* Answers a wire query: MX 10 mx.<qname> (or truncated/SERVFAIL). */
static uint8_t *
respond(struct responder *rp, const uint8_t *q, size_t qlen, int tcp, size_t *len_r)
{
	ldns_pkt *qp = NULL;
	char *qname;
	uint8_t *w;
	char line[600];
	uint16_t qtype;
	const char *ans[2] = { line, NULL };

	if (ldns_wire2pkt(&qp, q, qlen) != LDNS_STATUS_OK)
		return NULL;
	qname = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(qp), 0)));
	qtype = ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_question(qp), 0));
	if (qname[0] && qname[strlen(qname) - 1] == '.')
		qname[strlen(qname) - 1] = '\0';
	if (qtype == DNS_T_MX)
		snprintf(line, sizeof line, "%s. 60 IN MX 10 mx.%s.", qname, qname);
	else
		snprintf(line, sizeof line, "%s. 60 IN A 127.0.0.2", qname);
	if (!tcp && rp->mode == R_TRUNCATE)
		w = build_pkt(qname, qtype, 0, F_TC, NULL, NULL, len_r);
	else if (rp->mode == R_SERVFAIL)
		w = build_pkt(qname, qtype, LDNS_RCODE_SERVFAIL, 0, NULL, NULL, len_r);
	else
		w = build_pkt(qname, qtype, 0, 0, qtype == DNS_T_MX || qtype == DNS_T_A ?
		    ans : NULL, NULL, len_r);
	w[0] = q[0];
	w[1] = q[1];
	free(qname);
	ldns_pkt_free(qp);
	return w;
}

static void *
responder_main(void *p)
{
	struct responder *rp = p;
	uint8_t buf[4096];

	for (;;) {
		struct pollfd pf[3] = { { rp->udp, POLLIN, 0 }, { rp->tcp, POLLIN, 0 },
		    { rp->stop[0], POLLIN, 0 } };
		int wait = -1;

		/* Held answers go out when due, oldest first. */
		while (rp->nslow > 0 && rp->slow[0].due <= time_mono_ms()) {
			struct slow_answer *sa = &rp->slow[0];
			sendto(rp->udp, sa->a, sa->alen, 0,
			    (struct sockaddr *)&sa->to, sa->tolen);
			free(sa->a);
			memmove(rp->slow, rp->slow + 1, --rp->nslow * sizeof *sa);
		}
		if (rp->nslow > 0)
			wait = (int)(rp->slow[0].due - time_mono_ms()) + 1;
		if (poll(pf, 3, wait) < 0)
			continue;
		if (pf[2].revents) {
			for (size_t i = 0; i < rp->nslow; i++)
				free(rp->slow[i].a);
			return NULL;
		}
		if (pf[0].revents) {
			struct sockaddr_storage from;
			socklen_t fl = sizeof from;
			ssize_t n = recvfrom(rp->udp, buf, sizeof buf, 0,
			    (struct sockaddr *)&from, &fl);
			size_t alen;
			uint8_t *a;
			__atomic_add_fetch(&rp->udp_queries, 1, __ATOMIC_RELAXED);
			if (n < 12 || rp->mode == R_SILENT)
				continue;
			if ((a = respond(rp, buf, (size_t)n, 0, &alen)) == NULL)
				continue;
			if (rp->mode == R_SLOW && rp->nslow < SLOW_MAX) {
				struct slow_answer *sa = &rp->slow[rp->nslow++];
				sa->a = a;
				sa->alen = alen;
				sa->to = from;
				sa->tolen = fl;
				sa->due = time_mono_ms() + SLOW_MS;
				continue;
			}
			if (rp->mode == R_WRONG_ID_FIRST) {
				a[1] ^= 0x55;
				sendto(rp->udp, a, alen, 0, (struct sockaddr *)&from, fl);
				a[1] ^= 0x55;
			}
			sendto(rp->udp, a, alen, 0, (struct sockaddr *)&from, fl);
			free(a);
		}
		if (pf[1].revents) {
			int c = accept(rp->tcp, NULL, NULL);
			uint8_t lb[2];
			size_t qlen, alen;
			uint8_t *a;
			if (c < 0)
				continue;
			__atomic_add_fetch(&rp->tcp_queries, 1, __ATOMIC_RELAXED);
			if (recv(c, lb, 2, MSG_WAITALL) == 2 &&
			    (qlen = ((size_t)lb[0] << 8) | lb[1]) <= sizeof buf &&
			    recv(c, buf, qlen, MSG_WAITALL) == (ssize_t)qlen &&
			    (a = respond(rp, buf, qlen, 1, &alen)) != NULL) {
				lb[0] = (uint8_t)(alen >> 8);
				lb[1] = (uint8_t)alen;
				send(c, lb, 2, MSG_NOSIGNAL);
				send(c, a, alen, MSG_NOSIGNAL);
				free(a);
			}
			close(c);
		}
	}
}

static int
responder_start(struct responder *rp, enum responder_mode mode)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	int one = 1;

	memset(rp, 0, sizeof *rp);
	rp->mode = mode;
	for (int attempt = 0; attempt < 20; attempt++) {
		memset(&sa, 0, sizeof sa);
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		rp->udp = socket(AF_INET, SOCK_DGRAM, 0);
		if (bind(rp->udp, (struct sockaddr *)&sa, sizeof sa) != 0 ||
		    getsockname(rp->udp, (struct sockaddr *)&sa, &sl) != 0)
			return -1;
		rp->tcp = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(rp->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(rp->tcp, (struct sockaddr *)&sa, sizeof sa) == 0 &&
		    listen(rp->tcp, 16) == 0)
			break;
		close(rp->udp);
		close(rp->tcp);
		rp->udp = rp->tcp = -1;
	}
	if (rp->udp < 0 || pipe(rp->stop) != 0)
		return -1;
	rp->port = ntohs(sa.sin_port);
	return pthread_create(&rp->thread, NULL, responder_main, rp);
}

static void
responder_stop(struct responder *rp)
{
	if (write(rp->stop[1], "x", 1) != 1)
		return;
	pthread_join(rp->thread, NULL);
	close(rp->udp);
	close(rp->tcp);
	close(rp->stop[0]);
	close(rp->stop[1]);
}

static void
test_net_transport(void)
{
	static const struct {
		enum responder_mode mode;
		int status;
		int tcp;
	} t[] = {
		{ R_NORMAL, DNS_OK, 0 },
		{ R_WRONG_ID_FIRST, DNS_OK, 0 },
		{ R_TRUNCATE, DNS_OK, 1 },
		{ R_SERVFAIL, DNS_TEMP, 0 },
		{ R_SILENT, DNS_TEMP, 0 },
		/* Each answer comes after the next try went out: the first
		 * query's answer is still taken. */
		{ R_SLOW, DNS_OK, 0 },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct responder rp;
		struct dns_server_addr sv;
		struct dns_options o;
		struct dns_resolver *r;
		struct dns_mx_result *res;
		char err[128];
		int64_t t0;

		CU_ASSERT_EQUAL_FATAL(responder_start(&rp, t[i].mode), 0);
		snprintf(sv.addr, sizeof sv.addr, "127.0.0.1");
		sv.port = rp.port;
		dns_options_default(&o);
		o.try_timeout_ms = 300;
		o.tries = 2;
		o.use_ipv6 = 0;
		r = dns_resolver_new_opts(&sv, 1, &o, err, sizeof err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r);
		t0 = time_mono_ms();
		CU_ASSERT_EQUAL(dns_mx_lookup(r, "net.test", &res), t[i].status);
		if (t[i].status == DNS_OK) {
			CU_ASSERT_STRING_EQUAL(res->hosts[0].name, "mx.net.test");
			CU_ASSERT_STRING_EQUAL(res->targets[0].addr.text, "127.0.0.2");
		}
		if (t[i].mode == R_SILENT) {
			/* 2 tries of 300 ms: bounded. */
			CU_ASSERT(time_mono_ms() - t0 >= 550);
			CU_ASSERT(time_mono_ms() - t0 < 2000);
			CU_ASSERT_EQUAL(__atomic_load_n(&rp.udp_queries, __ATOMIC_RELAXED), 2);
		}
		if (t[i].mode == R_SERVFAIL)
			CU_ASSERT_EQUAL(__atomic_load_n(&rp.udp_queries, __ATOMIC_RELAXED), 2);
		CU_ASSERT_EQUAL(__atomic_load_n(&rp.tcp_queries, __ATOMIC_RELAXED) > 0,
		    t[i].tcp);
		dns_mx_result_free(&res);
		dns_resolver_free(&r);
		responder_stop(&rp);
	}

	/* The whole-lookup bound wins over tries. */
	{
		struct responder rp;
		struct dns_server_addr sv[2];
		struct dns_options o;
		struct dns_resolver *r;
		struct dns_mx_result *res;
		int64_t t0;

		CU_ASSERT_EQUAL_FATAL(responder_start(&rp, R_SILENT), 0);
		for (int k = 0; k < 2; k++) {
			snprintf(sv[k].addr, sizeof sv[k].addr, "127.0.0.1");
			sv[k].port = rp.port;
		}
		dns_options_default(&o);
		o.try_timeout_ms = 400;
		o.tries = 5;
		o.total_timeout_ms = 700;
		r = dns_resolver_new_opts(sv, 2, &o, NULL, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r);
		t0 = time_mono_ms();
		CU_ASSERT_EQUAL(dns_mx_lookup(r, "net.test", &res), DNS_TEMP);
		CU_ASSERT(time_mono_ms() - t0 < 1200);
		dns_mx_result_free(&res);
		dns_resolver_free(&r);
		responder_stop(&rp);
	}
}

static void
test_resolver_new(void)
{
	static const struct { const char *addr; int ok; } t[] = {
		{ "127.0.0.1", 1 }, { "::1", 1 }, { "[::1]", 1 }, { "2001:db8::53", 1 },
		{ "localhost", 0 }, { "", 0 }, { "1.2.3", 0 }, { "[127.0.0.1", 0 },
		{ "127.0.0.1:53", 0 }, { "::1%lo", 0 },
	};
	char err[200], path[] = "/tmp/test_dns_resolvXXXXXX";
	struct dns_options o;
	struct dns_resolver *r;
	FILE *f;
	int fd;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct dns_server_addr sv = { "", 53 };
		str_copy(sv.addr, t[i].addr, sizeof sv.addr);
		r = dns_resolver_new(&sv, 1, err, sizeof err);
		CU_ASSERT_EQUAL(r != NULL, t[i].ok);
		if (r == NULL)
			CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad server"));
		dns_resolver_free(&r);
	}

	/* As many servers as the config takes (16), not one more. */
	{
		struct dns_server_addr sv[17];
		for (int i = 0; i < 17; i++) {
			snprintf(sv[i].addr, sizeof sv[i].addr, "127.0.0.%d", i + 1);
			sv[i].port = 53;
		}
		r = dns_resolver_new(sv, 16, err, sizeof err);
		CU_ASSERT_PTR_NOT_NULL(r);
		dns_resolver_free(&r);
		r = dns_resolver_new(sv, 17, err, sizeof err);
		CU_ASSERT_PTR_NULL(r);
	}

	/* resolv.conf: a private file, never /etc/resolv.conf. */
	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	f = fdopen(fd, "w");
	fputs("# test\nsearch example.test\nnameserver 127.0.0.1\nnameserver ::1\n", f);
	fclose(f);
	dns_options_default(&o);
	o.resolv_conf = path;
	r = dns_resolver_new_opts(NULL, 0, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL(r);
	dns_resolver_free(&r);
	f = fopen(path, "w");
	fputs("search example.test\n", f);
	fclose(f);
	r = dns_resolver_new_opts(NULL, 0, &o, err, sizeof err);
	CU_ASSERT_PTR_NULL(r);
	unlink(path);
	r = dns_resolver_new_opts(NULL, 0, &o, err, sizeof err);
	CU_ASSERT_PTR_NULL(r);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("dns", NULL, NULL);
	CU_add_test(s, "name normalize", test_name_normalize);
	CU_add_test(s, "wire names", test_wire_name);
	CU_add_test(s, "MX order", test_mx_order);
	CU_add_test(s, "MX equal preference shuffle", test_mx_shuffle);
	CU_add_test(s, "MX answer cases", test_mx_cases);
	CU_add_test(s, "MX bounds", test_mx_bounds);
	CU_add_test(s, "malformed packets", test_malformed);
	CU_add_test(s, "TTLs", test_ttls);
	CU_add_test(s, "lookups on canned answers", test_lookup_world);
	CU_add_test(s, "address bounds and options", test_lookup_bounds);
	CU_add_test(s, "address and PTR lookups", test_addr_ptr);
	CU_add_test(s, "status", test_status);
	CU_add_test(s, "cache", test_cache_basic);
	CU_add_test(s, "cache through the resolver", test_cache_resolver);
	CU_add_test(s, "threads", test_threads);
	CU_add_test(s, "UDP/TCP transport on loopback", test_net_transport);
	CU_add_test(s, "resolver setup", test_resolver_new);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
