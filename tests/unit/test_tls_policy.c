/*
 * test_tls_policy: the outbound TLS policy API (relay/tls_policy.c) on
 * canned DNS (tests/unit/dns_canned.h) and in-process certificates
 * (tests/unit/certgen.h): the level of each MX host for every configured
 * level and DNSSEC outcome (secure, insecure, bogus MX; bogus and
 * unusable TLSA; dane-only), the MTA-STS fallback when the policy cannot
 * be fetched, the session verdicts for DANE, verify, MTA-STS testing and
 * may, the log line, and report records.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "relay/tls_policy.h"
#include "relay/tls_store.h"
#include "tests/unit/certgen.h"
#include "tests/unit/dns_canned.h"

static struct certgen ca, ee, other;
static char ca_file[64], qdir[64];
static char tlsa_ee[200], tlsa_ta[200];

/* The canned DNS world; TLSA rows are filled in at setup. */
static struct canned world_tab[] = {
	{ "secure.test", DNS_T_MX, 0, F_AD, NULL },
	{ "mx1.secure.test", DNS_T_A, 0, F_AD, L("mx1.secure.test. IN A 127.0.0.2") },
	{ "mx1.secure.test", DNS_T_AAAA, 0, F_AD, NULL },
	{ "_25._tcp.mx1.secure.test", DNS_T_TLSA, 0, F_AD, NULL },
	{ "mx2.secure.test", DNS_T_A, 0, F_AD, L("mx2.secure.test. IN A 127.0.0.3") },
	{ "mx2.secure.test", DNS_T_AAAA, 0, F_AD, NULL },
	{ "mx3.secure.test", DNS_T_A, 0, F_AD, L("mx3.secure.test. IN A 127.0.0.4") },
	{ "mx3.secure.test", DNS_T_AAAA, 0, F_AD, NULL },
	{ "_25._tcp.mx3.secure.test", DNS_T_TLSA, LDNS_RCODE_SERVFAIL, 0, NULL },
	{ "mx4.secure.test", DNS_T_A, 0, F_AD, L("mx4.secure.test. IN A 127.0.0.5") },
	{ "mx4.secure.test", DNS_T_AAAA, 0, F_AD, NULL },
	{ "_25._tcp.mx4.secure.test", DNS_T_TLSA, 0, F_AD,
	  L("_25._tcp.mx4.secure.test. IN TLSA 1 1 1 "
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") },
	{ "insecure.test", DNS_T_MX, 0, 0, L("insecure.test. IN MX 10 mx1.secure.test.") },
	{ "bogus.test", DNS_T_MX, LDNS_RCODE_SERVFAIL, 0, NULL },
	{ "_mta-sts.sts.test", DNS_T_TXT, 0, 0, L("_mta-sts.sts.test. IN TXT \"v=STSv1; id=7;\"") },
	{ "sts.test", DNS_T_MX, 0, 0, L("sts.test. IN MX 10 mx.sts.test.") },
	{ "mx.sts.test", DNS_T_A, 0, 0, L("mx.sts.test. IN A 127.0.0.6") },
};

static struct canned_world dnsw;
static struct dns_resolver *resolver;

static int
setup(void)
{
	static char mxrec[4][100], tl1[300];
	uint8_t d[4096];
	size_t n;

	gnutls_global_init();
	certgen_make(&ca, "Test CA", NULL, NULL, 1, -3600, 86400);
	certgen_make(&ee, "mx1.secure.test",
	    (const char *const[]){ "mx1.secure.test", NULL }, &ca, 0, -3600, 86400);
	certgen_make(&other, "other.test", (const char *const[]){ "other.test", NULL },
	    &ca, 0, -3600, 86400);
	snprintf(ca_file, sizeof ca_file, "/tmp/test_tls_policy.%d.pem", (int)getpid());
	certgen_write_pem(&ca, ca_file);
	snprintf(qdir, sizeof qdir, "/tmp/test_tls_policy.%d.q", (int)getpid());
	if (mkdir(qdir, 0700) != 0)
		return 1;

	n = certgen_tlsa(&ee, 1, 1, d, sizeof d);
	snprintf(tlsa_ee, sizeof tlsa_ee, "3 1 1 ");
	for (size_t i = 0; i < n; i++)
		snprintf(tlsa_ee + 6 + 2 * i, 3, "%02x", d[i]);
	n = certgen_tlsa(&ca, 0, 1, d, sizeof d);
	snprintf(tlsa_ta, sizeof tlsa_ta, "2 0 1 ");
	for (size_t i = 0; i < n; i++)
		snprintf(tlsa_ta + 6 + 2 * i, 3, "%02x", d[i]);
	snprintf(tl1, sizeof tl1, "_25._tcp.mx1.secure.test. IN TLSA %s", tlsa_ee);
	for (int i = 0; i < 4; i++)
		snprintf(mxrec[i], sizeof mxrec[i], "secure.test. IN MX %d mx%d.secure.test.",
		    10 * (i + 1), i + 1);
	{
		static const char *mx_list[5], *tl_list[2];
		for (int i = 0; i < 4; i++)
			mx_list[i] = mxrec[i];
		mx_list[4] = NULL;
		tl_list[0] = tl1;
		tl_list[1] = NULL;
		world_tab[0].ans = mx_list;
		world_tab[3].ans = tl_list;
	}
	dnsw.tab = world_tab;
	dnsw.n = sizeof world_tab / sizeof world_tab[0];
	/* One resolver for everything; mta-sts.<domain> has no address. */
	resolver = dns_resolver_new_transport(canned_transport, &dnsw, NULL, NULL, NULL);
	dns_resolver_set_trusted(resolver, 1);
	return 0;
}

static int
teardown(void)
{
	char cmd[200];

	dns_resolver_free(&resolver);
	certgen_free(&ca);
	certgen_free(&ee);
	certgen_free(&other);
	unlink(ca_file);
	snprintf(cmd, sizeof cmd, "rm -rf %s", qdir);
	gnutls_global_deinit();
	return system(cmd) != 0;
}

static struct tls_policy_ctx *
make_ctx(enum tls_level level, const struct tls_policy_map *map, struct tls_store *st)
{
	struct tls_policy_config cfg;
	char err[300];
	struct tls_policy_ctx *c;

	memset(&cfg, 0, sizeof cfg);
	cfg.level = level;
	cfg.map = map;
	cfg.ca_file = ca_file;
	cfg.resolver = resolver;
	cfg.store = st;
	c = tls_policy_ctx_new(&cfg, err, sizeof err);
	if (c == NULL)
		fprintf(stderr, "\n  %s\n", err);
	return c;
}

static void
mx_of(struct dns_mx_result *mx, const char *domain, int nhosts, int implicit)
{
	memset(mx, 0, sizeof *mx);
	mx->status = DNS_OK;
	mx->implicit = implicit;
	str_copy(mx->domain, domain, sizeof mx->domain);
	mx->nhosts = (size_t)nhosts;
	for (int i = 0; i < nhosts; i++)
		snprintf(mx->hosts[i].name, sizeof mx->hosts[i].name, "mx%d.secure.test", i + 1);
}

static void
test_plain_levels(void)
{
	struct tls_policy_map *map;
	struct tls_policy_ctx *c;
	struct tls_dest_policy *dp;
	struct dns_mx_result mx;
	static const char text[] = "none.test none\nenc.test encrypt\n"
	    "ver.test verify match=.secure.test:mail.ver.test\nver2.test verify\n"
	    "secure.test verify\n";

	CU_ASSERT_EQUAL_FATAL(tls_policy_map_parse(text, sizeof text - 1, "p", NULL, &map), 0);
	c = make_ctx(TLS_LEVEL_MAY, map, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	mx_of(&mx, "x", 1, 0);
	tls_policy_destination(c, "other.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->configured, TLS_LEVEL_MAY);
	CU_ASSERT_EQUAL(dp->hosts[0].level, TLS_LEVEL_MAY);
	CU_ASSERT_EQUAL(dp->hosts[0].tls_required, 0);
	CU_ASSERT_STRING_EQUAL(dp->hosts[0].via, "may");
	tls_dest_policy_free(&dp);
	CU_ASSERT_PTR_NULL(dp);
	tls_policy_destination(c, "none.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].level, TLS_LEVEL_NONE);
	tls_dest_policy_free(&dp);
	tls_policy_destination(c, "enc.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].level, TLS_LEVEL_ENCRYPT);
	CU_ASSERT_EQUAL(dp->hosts[0].tls_required, 1);
	CU_ASSERT_EQUAL(dp->hosts[0].auth, TLS_AUTH_NONE);
	tls_dest_policy_free(&dp);
	tls_policy_destination(c, "ver.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].level, TLS_LEVEL_VERIFY);
	CU_ASSERT_EQUAL(dp->hosts[0].auth, TLS_AUTH_VERIFY);
	CU_ASSERT_EQUAL_FATAL(dp->hosts[0].nnames, 2);
	CU_ASSERT_STRING_EQUAL(dp->hosts[0].names[0], ".secure.test");
	/* Configured names: good enough for REQUIRETLS (RFC 8689 4.2.1). */
	CU_ASSERT_EQUAL(tls_host_policy_authenticates(&dp->hosts[0]), 1);
	tls_dest_policy_free(&dp);
	tls_policy_destination(c, "ver2.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL_FATAL(dp->hosts[0].nnames, 1);
	CU_ASSERT_STRING_EQUAL(dp->hosts[0].names[0], "mx1.secure.test");
	/* The MX host's name from an MX RRset that is not DNSSEC-secure:
	 * checked, but anybody's choice; not for REQUIRETLS. */
	CU_ASSERT_EQUAL(dp->hosts[0].name_validated, 0);
	CU_ASSERT_EQUAL(tls_host_policy_authenticates(&dp->hosts[0]), 0);
	{
		struct buf b;
		buf_init(&b, 4096);
		tls_dest_policy_describe(dp, &b);
		CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "host mx1.secure.test: verify via verify, "
		    "TLS required, PKIX authentication, the name is not validated "
		    "(no REQUIRETLS)\n"));
		buf_free(&b);
	}
	tls_dest_policy_free(&dp);
	/* The same from a secure MX RRset counts. */
	mx_of(&mx, "secure.test", 1, 0);
	tls_policy_destination(c, "secure.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].auth, TLS_AUTH_VERIFY);
	CU_ASSERT_EQUAL(dp->mx_state, DNS_SEC_SECURE);
	CU_ASSERT_EQUAL(tls_host_policy_authenticates(&dp->hosts[0]), 1);
	tls_dest_policy_free(&dp);
	tls_policy_destination(c, "enc.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(tls_host_policy_authenticates(&dp->hosts[0]), 0);
	tls_dest_policy_free(&dp);
	mx_of(&mx, "x", 1, 0);
	/* A bad domain defers; no MX result means no hosts. */
	tls_policy_destination(c, "bad domain", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->defer, 1);
	tls_dest_policy_free(&dp);
	tls_policy_destination(c, "none.test", NULL, 0, &dp);
	CU_ASSERT_EQUAL(dp->nhosts, 0);
	tls_dest_policy_free(&dp);
	tls_policy_ctx_free(&c);
	tls_policy_map_free(&map);
}

/* The digest of host 0 of domain's policy under c. */
static void
digest_of(struct tls_policy_ctx *c, const char *domain, uint8_t *out)
{
	struct tls_dest_policy *dp;
	struct dns_mx_result mx;

	mx_of(&mx, domain, 1, 0);
	tls_policy_destination(c, domain, &mx, 0, &dp);
	tls_host_policy_digest(&dp->hosts[0], out);
	tls_dest_policy_free(&dp);
}

static void
test_digest(void)
{
	struct tls_policy_map *map;
	struct tls_policy_ctx *c;
	struct tls_dest_policy *dp;
	struct dns_mx_result mx;
	uint8_t a[TLS_HOST_POLICY_DIGEST_LEN], b[TLS_HOST_POLICY_DIGEST_LEN];
	static const char text[] = "enc.test encrypt\nenc2.test encrypt\n"
	    "ver.test verify match=mail.ver.test\nver2.test verify\n"
	    "ver3.test verify\nver4.test verify match=mx1.secure.test\n"
	    "secure.test dane\n";

	CU_ASSERT_EQUAL_FATAL(tls_policy_map_parse(text, sizeof text - 1, "p", NULL, &map), 0);
	c = make_ctx(TLS_LEVEL_MAY, map, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	/* The same judgement for two domains: one digest. */
	digest_of(c, "enc.test", a);
	digest_of(c, "enc2.test", b);
	CU_ASSERT(memcmp(a, b, sizeof a) == 0);
	digest_of(c, "ver2.test", a);
	digest_of(c, "ver3.test", b);
	CU_ASSERT(memcmp(a, b, sizeof a) == 0);
	/* match= of the host's own name is the same list of names, but a
	 * configured one: validated (REQUIRETLS), unlike the MX host name
	 * of an MX RRset that is not DNSSEC-secure. */
	digest_of(c, "ver4.test", b);
	CU_ASSERT(memcmp(a, b, sizeof a) != 0);
	/* Other names, another level: another digest. */
	digest_of(c, "ver.test", b);
	CU_ASSERT(memcmp(a, b, sizeof a) != 0);
	digest_of(c, "enc.test", b);
	CU_ASSERT(memcmp(a, b, sizeof a) != 0);
	digest_of(c, "other.test", b);		/* may */
	CU_ASSERT(memcmp(a, b, sizeof a) != 0);
	/* DANE: the TLSA records count, to the last bit. */
	mx_of(&mx, "secure.test", 1, 0);
	tls_policy_destination(c, "secure.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL_FATAL(dp->hosts[0].auth, TLS_AUTH_DANE);
	tls_host_policy_digest(&dp->hosts[0], a);
	tls_host_policy_digest(&dp->hosts[0], b);
	CU_ASSERT(memcmp(a, b, sizeof a) == 0);
	dp->hosts[0].tlsa->rrs[0].data[0] ^= 1;
	tls_host_policy_digest(&dp->hosts[0], b);
	CU_ASSERT(memcmp(a, b, sizeof a) != 0);
	tls_dest_policy_free(&dp);
	tls_policy_ctx_free(&c);
	tls_policy_map_free(&map);
}

static void
test_dane_destinations(void)
{
	struct tls_policy_ctx *c = make_ctx(TLS_LEVEL_DANE, NULL, NULL);
	struct tls_dest_policy *dp;
	struct dns_mx_result mx;
	struct buf b;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	mx_of(&mx, "secure.test", 4, 0);
	tls_policy_destination(c, "secure.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->mx_state, DNS_SEC_SECURE);
	CU_ASSERT_EQUAL(dp->defer, 0);
	/* mx1: secure TLSA */
	CU_ASSERT_EQUAL(dp->hosts[0].level, TLS_LEVEL_DANE);
	CU_ASSERT_EQUAL(dp->hosts[0].auth, TLS_AUTH_DANE);
	CU_ASSERT_EQUAL(dp->hosts[0].tls_required, 1);
	CU_ASSERT_EQUAL(dp->hosts[0].rpt_type, TLS_RPT_POLICY_TLSA);
	CU_ASSERT_STRING_EQUAL(dp->hosts[0].rpt_strings, tlsa_ee);
	CU_ASSERT_EQUAL(dp->hosts[0].nnames, 2);	/* base = host, and the domain */
	/* mx2: no TLSA (secure denial), no MTA-STS record: may */
	CU_ASSERT_EQUAL(dp->hosts[1].level, TLS_LEVEL_MAY);
	CU_ASSERT_EQUAL(dp->hosts[1].skip, 0);
	CU_ASSERT_EQUAL(dp->sts_looked_up, 1);
	CU_ASSERT_EQUAL(dp->sts.have, 0);
	/* mx3: bogus TLSA: skipped, never plaintext */
	CU_ASSERT_EQUAL(dp->hosts[2].skip, 1);
	CU_ASSERT_EQUAL(dp->hosts[2].skip_rpt, TLS_RPT_DNSSEC_INVALID);
	/* mx4: only unusable records: TLS without authentication */
	CU_ASSERT_EQUAL(dp->hosts[3].level, TLS_LEVEL_ENCRYPT);
	CU_ASSERT_EQUAL(dp->hosts[3].tls_required, 1);
	CU_ASSERT_EQUAL(dp->hosts[3].auth, TLS_AUTH_NONE);
	CU_ASSERT_STRING_EQUAL(dp->hosts[3].via, "dane");
	buf_init(&b, 1 << 16);
	tls_dest_policy_describe(dp, &b);
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "domain secure.test: level dane, MX DNSSEC secure"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "host mx1.secure.test: dane via dane, TLS required, "
	    "DANE authentication"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "host mx3.secure.test: skipped: TLSA lookup"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "(unusable)"));
	buf_free(&b);
	tls_dest_policy_free(&dp);

	/* An insecure MX RRset: DANE does not apply to the same host. */
	mx_of(&mx, "insecure.test", 1, 0);
	tls_policy_destination(c, "insecure.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->mx_state, DNS_SEC_INSECURE);
	CU_ASSERT_EQUAL(dp->hosts[0].level, TLS_LEVEL_MAY);
	CU_ASSERT_PTR_NULL(dp->hosts[0].tlsa);
	tls_dest_policy_free(&dp);

	/* A bogus MX RRset defers everything. */
	mx_of(&mx, "bogus.test", 1, 0);
	tls_policy_destination(c, "bogus.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->defer, 1);
	CU_ASSERT_EQUAL(dp->defer_rpt, TLS_RPT_DNSSEC_INVALID);
	tls_dest_policy_free(&dp);

	/* An MX host the secure RRset does not list gets no DANE. */
	mx_of(&mx, "secure.test", 1, 0);
	str_copy(mx.hosts[0].name, "mx9.secure.test", sizeof mx.hosts[0].name);
	tls_policy_destination(c, "secure.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].level, TLS_LEVEL_MAY);
	tls_dest_policy_free(&dp);
	tls_policy_ctx_free(&c);

	/* dane-only: hosts without usable DANE are skipped. */
	c = make_ctx(TLS_LEVEL_DANE_ONLY, NULL, NULL);
	mx_of(&mx, "secure.test", 4, 0);
	tls_policy_destination(c, "secure.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].skip, 0);
	CU_ASSERT_EQUAL(dp->hosts[1].skip, 1);
	CU_ASSERT_EQUAL(dp->hosts[1].skip_rpt, TLS_RPT_DANE_REQUIRED);
	CU_ASSERT_EQUAL(dp->hosts[3].skip, 1);
	tls_dest_policy_free(&dp);
	mx_of(&mx, "insecure.test", 1, 0);
	tls_policy_destination(c, "insecure.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].skip, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(dp->hosts[0].skip_reason, "not DNSSEC-secure"));
	tls_dest_policy_free(&dp);
	tls_policy_ctx_free(&c);
}

static void
test_fixed(void)
{
	struct tls_policy_map *map;
	struct tls_policy_ctx *c, *only;
	struct tls_dest_policy *dp;
	static const char text[] = "ver.test verify match=relay.ver.test\n"
	    "ver2.test verify\n";

	CU_ASSERT_EQUAL_FATAL(tls_policy_map_parse(text, sizeof text - 1, "p", NULL, &map), 0);
	c = make_ctx(TLS_LEVEL_DANE, map, NULL);
	only = make_ctx(TLS_LEVEL_DANE_ONLY, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(only);
	/* A route by name with secure TLSA records: DANE, and the host is
	 * the next-hop domain: the recipient domain is no reference name. */
	tls_policy_fixed(c, "x.test", "mx1.secure.test", 0, &dp);
	CU_ASSERT_EQUAL(dp->fixed, 1);
	CU_ASSERT_EQUAL_FATAL(dp->nhosts, 1);
	CU_ASSERT_EQUAL(dp->hosts[0].auth, TLS_AUTH_DANE);
	CU_ASSERT_EQUAL(dp->hosts[0].tls_required, 1);
	CU_ASSERT_EQUAL_FATAL(dp->hosts[0].nnames, 1);
	CU_ASSERT_STRING_EQUAL(dp->hosts[0].names[0], "mx1.secure.test");
	CU_ASSERT_STRING_EQUAL(dp->hosts[0].sni, "");
	tls_dest_policy_free(&dp);
	/* No TLSA records, an address literal: may; dane-only skips. */
	tls_policy_fixed(c, "x.test", "mx2.secure.test", 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].level, TLS_LEVEL_MAY);
	CU_ASSERT_EQUAL(dp->hosts[0].skip, 0);
	tls_dest_policy_free(&dp);
	tls_policy_fixed(c, "x.test", "127.0.0.2", 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].level, TLS_LEVEL_MAY);
	tls_dest_policy_free(&dp);
	tls_policy_fixed(only, "x.test", "127.0.0.2", 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].skip, 1);
	CU_ASSERT_EQUAL(dp->hosts[0].skip_rpt, TLS_RPT_DANE_REQUIRED);
	tls_dest_policy_free(&dp);
	tls_policy_fixed(only, "x.test", "mx2.secure.test", 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].skip, 1);
	tls_dest_policy_free(&dp);
	/* A bogus TLSA answer: skipped, never plaintext, at dane too. */
	tls_policy_fixed(c, "x.test", "mx3.secure.test", 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].skip, 1);
	CU_ASSERT_EQUAL(dp->hosts[0].skip_rpt, TLS_RPT_DNSSEC_INVALID);
	tls_dest_policy_free(&dp);
	/* verify: the entry's match= names. */
	tls_policy_fixed(c, "ver.test", "mx2.secure.test", 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].auth, TLS_AUTH_VERIFY);
	CU_ASSERT_EQUAL_FATAL(dp->hosts[0].nnames, 1);
	CU_ASSERT_STRING_EQUAL(dp->hosts[0].names[0], "relay.ver.test");
	CU_ASSERT_EQUAL(tls_host_policy_authenticates(&dp->hosts[0]), 1);
	tls_dest_policy_free(&dp);
	/* verify of a configured next hop's own name counts too. */
	tls_policy_fixed(c, "ver2.test", "mx2.secure.test", 0, &dp);
	CU_ASSERT_EQUAL(dp->hosts[0].auth, TLS_AUTH_VERIFY);
	CU_ASSERT_STRING_EQUAL(dp->hosts[0].names[0], "mx2.secure.test");
	CU_ASSERT_EQUAL(tls_host_policy_authenticates(&dp->hosts[0]), 1);
	tls_dest_policy_free(&dp);
	tls_policy_ctx_free(&c);
	tls_policy_ctx_free(&only);
	tls_policy_map_free(&map);
}

static void
test_sts_unfetchable(void)
{
	struct tls_policy_ctx *c = make_ctx(TLS_LEVEL_DANE, NULL, NULL);
	struct tls_dest_policy *dp;
	struct dns_mx_result mx;

	mx_of(&mx, "sts.test", 1, 0);
	str_copy(mx.hosts[0].name, "mx.sts.test", sizeof mx.hosts[0].name);
	tls_policy_destination(c, "sts.test", &mx, 0, &dp);
	CU_ASSERT_EQUAL(dp->sts_looked_up, 1);
	CU_ASSERT_EQUAL(dp->sts.have, 0);
	CU_ASSERT_EQUAL(dp->sts.fetch_tried, 1);
	CU_ASSERT_EQUAL(dp->sts.failure, MTA_STS_FAIL_FETCH);
	CU_ASSERT_EQUAL(dp->hosts[0].level, TLS_LEVEL_MAY);	/* no policy: may */
	tls_dest_policy_free(&dp);
	tls_policy_ctx_free(&c);
}

/* A failed fetch is made once per MTA_STS_RETRY_S for a domain and id
 * when the env has a table of failures; without one, every lookup
 * fetches. */
static void
test_sts_failed_fetch_remembered(void)
{
	struct mta_sts_failed *failed = mta_sts_failed_new();
	struct mta_sts_env env = { resolver, NULL, { NULL, 0, 0, 0 }, 0, failed };
	struct mta_sts_env bare = { resolver, NULL, { NULL, 0, 0, 0 }, 0, NULL };
	struct mta_sts_state st;
	const int64_t t0 = 1780000000;

	mta_sts_cache_lookup(&env, "sts.test", t0, &st);
	CU_ASSERT_EQUAL(st.fetch_tried, 1);
	CU_ASSERT_EQUAL(st.failure, MTA_STS_FAIL_FETCH);
	mta_sts_state_clear(&st);
	/* Within the time: the same failure, no fetch. */
	mta_sts_cache_lookup(&env, "STS.test.", t0 + 10, &st);
	CU_ASSERT_EQUAL(st.have, 0);
	CU_ASSERT_EQUAL(st.fetch_tried, 0);
	CU_ASSERT_EQUAL(st.failure, MTA_STS_FAIL_FETCH);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.detail, "next fetch in 290 s"));
	mta_sts_state_clear(&st);
	/* A clock that went back is no reason to wait. */
	mta_sts_cache_lookup(&env, "sts.test", t0 - 1, &st);
	CU_ASSERT_EQUAL(st.fetch_tried, 1);
	mta_sts_state_clear(&st);
	/* The time passed: fetched again. */
	mta_sts_cache_lookup(&env, "sts.test", t0 - 1 + MTA_STS_RETRY_S, &st);
	CU_ASSERT_EQUAL(st.fetch_tried, 1);
	mta_sts_state_clear(&st);
	/* No table: every lookup fetches. */
	for (int i = 0; i < 2; i++) {
		mta_sts_cache_lookup(&bare, "sts.test", t0 + i, &st);
		CU_ASSERT_EQUAL(st.fetch_tried, 1);
		mta_sts_state_clear(&st);
	}
	mta_sts_failed_free(&failed);
	CU_ASSERT_PTR_NULL(failed);
}

static struct tls_host_policy *
dane_host(struct tls_policy_ctx *c, struct tls_dest_policy **dp)
{
	struct dns_mx_result mx;

	mx_of(&mx, "secure.test", 1, 0);
	tls_policy_destination(c, "secure.test", &mx, 0, dp);
	return &(*dp)->hosts[0];
}

static void
test_check_chain(void)
{
	struct tls_policy_ctx *c = make_ctx(TLS_LEVEL_DANE, NULL, NULL);
	struct tls_dest_policy *dp;
	struct tls_host_policy *hp = dane_host(c, &dp), vhp;
	gnutls_datum_t good[] = { ee.der, ca.der }, bad[] = { other.der, ca.der };
	struct tls_check chk;
	char line[400];

	tls_policy_check_chain(c, hp, good, 2, &chk);
	CU_ASSERT_EQUAL(chk.verdict, TLS_VERDICT_VERIFIED);
	CU_ASSERT_EQUAL(chk.ok, 1);
	CU_ASSERT_EQUAL(chk.rpt, TLS_RPT_SUCCESS);
	CU_ASSERT_PTR_NOT_NULL(strstr(chk.reason, "DANE-EE match"));
	tls_check_describe(&chk, "mx1.secure.test", "127.0.0.2", 25, line, sizeof line);
	CU_ASSERT_STRING_EQUAL(line, "Verified TLS connection established to "
	    "mx1.secure.test[127.0.0.2]:25: TLS (dane)");
	tls_policy_check_chain(c, hp, bad, 2, &chk);
	CU_ASSERT_EQUAL(chk.ok, 0);
	CU_ASSERT_EQUAL(chk.rpt, TLS_RPT_TLSA_INVALID);
	/* Under DANE the CA file counts for nothing (RFC 7672 3). */
	CU_ASSERT_EQUAL(chk.verdict, TLS_VERDICT_UNTRUSTED);
	tls_policy_check_chain(c, hp, NULL, 0, &chk);
	CU_ASSERT_EQUAL(chk.ok, 0);
	CU_ASSERT_EQUAL(chk.verdict, TLS_VERDICT_ANONYMOUS);

	/* verify and MTA-STS hosts: chain and name. */
	memset(&vhp, 0, sizeof vhp);
	str_copy(vhp.host, "mx1.secure.test", sizeof vhp.host);
	vhp.auth = TLS_AUTH_VERIFY;
	vhp.via = "verify";
	vhp.nnames = 1;
	str_copy(vhp.names[0], "mx1.secure.test", sizeof vhp.names[0]);
	tls_policy_check_chain(c, &vhp, good, 2, &chk);
	CU_ASSERT_EQUAL(chk.verdict, TLS_VERDICT_VERIFIED);
	CU_ASSERT_EQUAL(chk.ok, 1);
	tls_policy_check_chain(c, &vhp, bad, 2, &chk);
	CU_ASSERT_EQUAL(chk.verdict, TLS_VERDICT_TRUSTED);
	CU_ASSERT_EQUAL(chk.ok, 0);
	CU_ASSERT_EQUAL(chk.rpt, TLS_RPT_CERT_HOST_MISMATCH);
	/* MTA-STS testing: the same failure, reported, not blocking. */
	vhp.auth = TLS_AUTH_STS;
	vhp.sts_testing = 1;
	tls_policy_check_chain(c, &vhp, bad, 2, &chk);
	CU_ASSERT_EQUAL(chk.ok, 1);
	CU_ASSERT_EQUAL(chk.rpt, TLS_RPT_CERT_HOST_MISMATCH);
	vhp.sts_mismatch = 1;
	tls_policy_check_chain(c, &vhp, good, 2, &chk);
	CU_ASSERT_EQUAL(chk.ok, 1);
	CU_ASSERT_EQUAL(chk.rpt, TLS_RPT_VALIDATION_FAILURE);
	/* may: words only. */
	memset(&vhp, 0, sizeof vhp);
	vhp.via = "may";
	tls_policy_check_chain(c, &vhp, bad, 2, &chk);
	CU_ASSERT_EQUAL(chk.verdict, TLS_VERDICT_TRUSTED);
	CU_ASSERT_EQUAL(chk.ok, 1);
	{
		gnutls_datum_t self[] = { ca.der };
		struct certgen stranger;
		certgen_make(&stranger, "x.test", NULL, NULL, 0, -10, 1000);
		self[0] = stranger.der;
		tls_policy_check_chain(c, &vhp, self, 1, &chk);
		CU_ASSERT_EQUAL(chk.verdict, TLS_VERDICT_UNTRUSTED);
		CU_ASSERT_EQUAL(chk.ok, 1);
		certgen_free(&stranger);
	}
	CU_ASSERT_STRING_EQUAL(tls_verdict_str(TLS_VERDICT_ANONYMOUS), "Anonymous");
	tls_dest_policy_free(&dp);
	tls_policy_ctx_free(&c);
}

static void
test_report(void)
{
	char err[300];
	struct tls_store *st = tls_store_open(qdir, 0, err, sizeof err);
	struct tls_policy_ctx *c;
	struct tls_dest_policy *dp;
	struct buf b;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	c = make_ctx(TLS_LEVEL_DANE, NULL, st);
	dane_host(c, &dp);
	tls_policy_report(c, dp, 0, "127.0.0.2", NULL, TLS_RPT_SUCCESS, 1780000000);
	tls_policy_report(c, dp, 0, "127.0.0.2", "192.0.2.9", TLS_RPT_TLSA_INVALID, 1780000000);
	tls_policy_report(c, dp, 5, NULL, NULL, TLS_RPT_DNSSEC_INVALID, 1780000000);
	buf_init(&b, 1 << 20);
	CU_ASSERT_EQUAL(tls_report_json(st, "secure.test", 1780000000, NULL, &b), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\"policy-type\": \"tlsa\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\"policy-type\": \"no-policy-found\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\"receiving-mx-hostname\": \"mx1.secure.test\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\"sending-mta-ip\": \"192.0.2.9\""));
	buf_free(&b);
	tls_dest_policy_free(&dp);
	tls_policy_ctx_free(&c);
	tls_store_close(&st);
}

static void
test_ctx(void)
{
	struct tls_policy_config cfg;
	char err[300];

	memset(&cfg, 0, sizeof cfg);
	cfg.ca_file = "/nonexistent/ca.pem";
	cfg.resolver = resolver;
	CU_ASSERT_PTR_NULL(tls_policy_ctx_new(&cfg, err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/ca.pem"));
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("tls_policy", setup, teardown);
	CU_add_test(s, "none, may, encrypt, verify", test_plain_levels);
	CU_add_test(s, "dane and dane-only destinations", test_dane_destinations);
	CU_add_test(s, "host policy digests", test_digest);
	CU_add_test(s, "fixed next hops", test_fixed);
	CU_add_test(s, "MTA-STS that cannot be fetched", test_sts_unfetchable);
	CU_add_test(s, "a failed MTA-STS fetch is remembered",
	    test_sts_failed_fetch_remembered);
	CU_add_test(s, "session verdicts", test_check_chain);
	CU_add_test(s, "report records", test_report);
	CU_add_test(s, "context errors", test_ctx);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
