/*
 * test_tls_dane: DANE authentication (relay/tls_dane.c) and PKIX checks
 * (relay/tls_verify.c) on certificate chains made in-process
 * (tests/unit/certgen.h): DANE-EE and DANE-TA with every selector and
 * matching type, an intermediate between the server and its TA, unusable
 * records, mismatches, names, expiry; and the verify level's chain and
 * name checks against a CA file.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay/tls_dane.h"
#include "relay/tls_verify.h"
#include "tests/unit/certgen.h"

static struct certgen ca, other_ca, inter, ee, ee_inter, ee_wild, ee_expired;
static struct tls_dane *dane;
static char ca_file[64];

static const char *const MX[] = { "mx.example.test" };

static int
setup(void)
{
	char err[200];
	int fd;

	gnutls_global_init();
	certgen_make(&ca, "Test CA", NULL, NULL, 1, -3600, 86400 * 30);
	certgen_make(&other_ca, "Other CA", NULL, NULL, 1, -3600, 86400 * 30);
	certgen_make(&inter, "Test Intermediate", NULL, &ca, 1, -3600, 86400 * 30);
	certgen_make(&ee, "mx.example.test",
	    (const char *const[]){ "mx.example.test", "mail.example.test", NULL },
	    &ca, 0, -3600, 86400 * 30);
	certgen_make(&ee_inter, "mx.example.test",
	    (const char *const[]){ "mx.example.test", NULL }, &inter, 0, -3600, 86400);
	certgen_make(&ee_wild, "*.example.test",
	    (const char *const[]){ "*.example.test", NULL }, &ca, 0, -3600, 86400);
	certgen_make(&ee_expired, "mx.example.test",
	    (const char *const[]){ "mx.example.test", NULL }, &ca, 0, -86400 * 3, -86400);
	snprintf(ca_file, sizeof ca_file, "/tmp/test_tls_dane.%d.pem", (int)getpid());
	certgen_write_pem(&ca, ca_file);
	(void)fd;
	dane = tls_dane_new(err, sizeof err);
	return dane == NULL;
}

static int
teardown(void)
{
	tls_dane_free(&dane);
	unlink(ca_file);
	certgen_free(&ca);
	certgen_free(&other_ca);
	certgen_free(&inter);
	certgen_free(&ee);
	certgen_free(&ee_inter);
	certgen_free(&ee_wild);
	certgen_free(&ee_expired);
	gnutls_global_deinit();
	return 0;
}

/* A TLSA record for c; data in buf (big enough for a whole certificate). */
static struct dns_tlsa_rr
rr_for(const struct certgen *c, int usage, int selector, int mtype, uint8_t *buf)
{
	struct dns_tlsa_rr rr;

	rr.usage = (uint8_t)usage;
	rr.selector = (uint8_t)selector;
	rr.mtype = (uint8_t)mtype;
	rr.data = buf;
	rr.len = certgen_tlsa(c, selector, mtype, buf, 4096);
	return rr;
}

static enum tls_dane_result
check(const gnutls_datum_t *chain, unsigned n, const struct dns_tlsa_rr *rrs,
    size_t nrrs, const char *const *names, size_t nnames)
{
	char why[300];
	enum tls_dane_result r = tls_dane_check(dane, chain, n, rrs, nrrs, names,
	    nnames, why, sizeof why);

	if (r != TLS_DANE_MATCH_EE && r != TLS_DANE_MATCH_TA)
		CU_ASSERT(why[0] != '\0');
	return r;
}

static void
test_usable(void)
{
	uint8_t d32[32] = { 1 }, d64[64] = { 2 };
	static const struct {
		uint8_t u, s, m;
		size_t len;
		int usable;
	} t[] = {
		{ 3, 1, 1, 32, 1 }, { 3, 0, 1, 32, 1 }, { 2, 0, 1, 32, 1 },
		{ 2, 1, 2, 64, 1 }, { 3, 1, 0, 20, 1 },
		{ 0, 0, 1, 32, 0 }, { 1, 1, 1, 32, 0 },	/* PKIX usages: not for SMTP */
		{ 4, 1, 1, 32, 0 }, { 3, 2, 1, 32, 0 }, { 3, 1, 3, 32, 0 },
		{ 3, 1, 1, 31, 0 }, { 3, 1, 2, 32, 0 },	/* wrong digest lengths */
		{ 3, 1, 0, 0, 0 },			/* empty */
	};
	struct dns_tlsa_rr rrs[sizeof t / sizeof t[0]];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		rrs[i].usage = t[i].u;
		rrs[i].selector = t[i].s;
		rrs[i].mtype = t[i].m;
		rrs[i].len = t[i].len;
		rrs[i].data = t[i].m == 2 ? d64 : d32;
		CU_ASSERT_EQUAL(tls_dane_rr_usable(&rrs[i]), t[i].usable);
	}
	CU_ASSERT_EQUAL(tls_dane_usable(rrs, sizeof t / sizeof t[0]), 5);
	CU_ASSERT_EQUAL(tls_dane_usable(rrs + 5, 8), 0);
}

static void
test_ee(void)
{
	gnutls_datum_t chain[] = { ee.der, ca.der };
	uint8_t b1[4096], b2[4096];
	struct dns_tlsa_rr rr[2];

	for (int sel = 0; sel <= 1; sel++)
		for (int mt = 0; mt <= 2; mt++) {
			rr[0] = rr_for(&ee, 3, sel, mt, b1);
			CU_ASSERT_EQUAL(check(chain, 2, rr, 1, MX, 1), TLS_DANE_MATCH_EE);
			/* the server's certificate alone is enough */
			CU_ASSERT_EQUAL(check(chain, 1, rr, 1, MX, 1), TLS_DANE_MATCH_EE);
		}
	/* DANE-EE checks neither names nor dates (RFC 7672 3.1.1). */
	rr[0] = rr_for(&ee, 3, 1, 1, b1);
	CU_ASSERT_EQUAL(check(chain, 2, rr, 1, (const char *const[]){ "other.test" }, 1),
	    TLS_DANE_MATCH_EE);
	{
		gnutls_datum_t old[] = { ee_expired.der };
		rr[0] = rr_for(&ee_expired, 3, 1, 1, b1);
		CU_ASSERT_EQUAL(check(old, 1, rr, 1, MX, 1), TLS_DANE_MATCH_EE);
	}
	/* Another key: no match; a match among several records will do. */
	rr[0] = rr_for(&ee_wild, 3, 1, 1, b1);
	CU_ASSERT_EQUAL(check(chain, 2, rr, 1, MX, 1), TLS_DANE_MISMATCH);
	rr[1] = rr_for(&ee, 3, 0, 1, b2);
	CU_ASSERT_EQUAL(check(chain, 2, rr, 2, MX, 1), TLS_DANE_MATCH_EE);
	/* A record of the CA with usage 3 does not match the server. */
	rr[0] = rr_for(&ca, 3, 1, 1, b1);
	CU_ASSERT_EQUAL(check(chain, 2, rr, 1, MX, 1), TLS_DANE_MISMATCH);
	/* One bit off. */
	rr[0] = rr_for(&ee, 3, 1, 1, b1);
	b1[5] ^= 1;
	CU_ASSERT_EQUAL(check(chain, 2, rr, 1, MX, 1), TLS_DANE_MISMATCH);
}

static void
test_ta(void)
{
	gnutls_datum_t chain[] = { ee.der, ca.der };
	gnutls_datum_t deep[] = { ee_inter.der, inter.der, ca.der };
	uint8_t b1[4096], b2[4096];
	struct dns_tlsa_rr rr[2];

	for (int sel = 0; sel <= 1; sel++)
		for (int mt = 0; mt <= 2; mt++) {
			rr[0] = rr_for(&ca, 2, sel, mt, b1);
			CU_ASSERT_EQUAL(check(chain, 2, rr, 1, MX, 1), TLS_DANE_MATCH_TA);
		}
	rr[0] = rr_for(&ca, 2, 0, 1, b1);
	/* The TA must be in the chain the server sends. */
	CU_ASSERT_EQUAL(check(chain, 1, rr, 1, MX, 1), TLS_DANE_MISMATCH);
	/* Names are checked with DANE-TA: the second SAN, a wrong one. */
	CU_ASSERT_EQUAL(check(chain, 2, rr, 1,
	    (const char *const[]){ "other.test", "mail.example.test" }, 2),
	    TLS_DANE_MATCH_TA);
	CU_ASSERT_EQUAL(check(chain, 2, rr, 1, (const char *const[]){ "other.test" }, 1),
	    TLS_DANE_TA_INVALID);
	/* ... and dates (GnuTLS's issuer check already refuses it). */
	{
		gnutls_datum_t old[] = { ee_expired.der, ca.der };
		enum tls_dane_result r = check(old, 2, rr, 1, MX, 1);
		CU_ASSERT(r == TLS_DANE_MISMATCH || r == TLS_DANE_TA_INVALID);
	}
	/* A TA two levels up, an intermediate TA, a wrong TA. */
	CU_ASSERT_EQUAL(check(deep, 3, rr, 1, MX, 1), TLS_DANE_MATCH_TA);
	rr[0] = rr_for(&inter, 2, 1, 1, b1);
	CU_ASSERT_EQUAL(check(deep, 3, rr, 1, MX, 1), TLS_DANE_MATCH_TA);
	rr[0] = rr_for(&other_ca, 2, 0, 1, b1);
	CU_ASSERT_EQUAL(check(deep, 3, rr, 1, MX, 1), TLS_DANE_MISMATCH);
	/* A chain that claims the CA but was not issued by it. */
	{
		gnutls_datum_t forged[] = { ee.der, other_ca.der };
		rr[0] = rr_for(&other_ca, 2, 0, 1, b1);
		CU_ASSERT_EQUAL(check(forged, 2, rr, 1, MX, 1), TLS_DANE_MISMATCH);
	}
	/* Chains out of order or with extra certificates (RFC 8446 4.4.2):
	 * the TA still matches, and a forged one still does not. */
	{
		gnutls_datum_t unord[] = { ee_inter.der, ca.der, inter.der };
		gnutls_datum_t extra[] = { ee.der, other_ca.der, ca.der };
		gnutls_datum_t forged[] = { ee.der, ca.der, other_ca.der };
		rr[0] = rr_for(&ca, 2, 1, 1, b1);
		CU_ASSERT_EQUAL(check(unord, 3, rr, 1, MX, 1), TLS_DANE_MATCH_TA);
		CU_ASSERT_EQUAL(check(extra, 3, rr, 1, MX, 1), TLS_DANE_MATCH_TA);
		rr[0] = rr_for(&ca, 2, 0, 1, b1);
		CU_ASSERT_EQUAL(check(unord, 3, rr, 1, MX, 1), TLS_DANE_MATCH_TA);
		rr[0] = rr_for(&other_ca, 2, 0, 1, b1);
		CU_ASSERT_EQUAL(check(forged, 3, rr, 1, MX, 1), TLS_DANE_MISMATCH);
		CU_ASSERT_EQUAL(check(extra, 3, rr, 1, MX, 1), TLS_DANE_MISMATCH);
	}
	/* A usage-2 record for the server's own certificate is no TA, also
	 * when the server sends it again further down. */
	rr[0] = rr_for(&ee, 2, 0, 1, b1);
	CU_ASSERT_EQUAL(check(chain, 2, rr, 1, MX, 1), TLS_DANE_MISMATCH);
	{
		gnutls_datum_t twice[] = { ee.der, ca.der, ee.der };
		CU_ASSERT_EQUAL(check(twice, 3, rr, 1, MX, 1), TLS_DANE_MISMATCH);
	}
	/* EE and TA records together: either may match. */
	rr[0] = rr_for(&ee_wild, 3, 1, 1, b1);
	rr[1] = rr_for(&ca, 2, 1, 1, b2);
	CU_ASSERT_EQUAL(check(chain, 2, rr, 2, MX, 1), TLS_DANE_MATCH_TA);
}

static void
test_unusable_and_empty(void)
{
	gnutls_datum_t chain[] = { ee.der, ca.der };
	uint8_t b1[4096], b2[4096];
	struct dns_tlsa_rr rr[2];

	/* PKIX-EE(1) and PKIX-TA(0) records of the very certificates. */
	rr[0] = rr_for(&ee, 1, 1, 1, b1);
	rr[1] = rr_for(&ca, 0, 0, 1, b2);
	CU_ASSERT_EQUAL(check(chain, 2, rr, 2, MX, 1), TLS_DANE_NO_USABLE);
	rr[0] = rr_for(&ee, 3, 1, 1, b1);
	rr[0].len = 20;		/* a SHA-256 that is too short */
	CU_ASSERT_EQUAL(check(chain, 2, rr, 1, MX, 1), TLS_DANE_NO_USABLE);
	/* Usable records but no certificate at all. */
	rr[0] = rr_for(&ee, 3, 1, 1, b1);
	CU_ASSERT_EQUAL(check(NULL, 0, rr, 1, MX, 1), TLS_DANE_NO_CERT);
	/* An unusable record does not hide a usable one. */
	rr[1] = rr_for(&ee, 1, 1, 1, b2);
	CU_ASSERT_EQUAL(check(chain, 2, rr, 2, MX, 1), TLS_DANE_MATCH_EE);
	/* Garbage as a certificate. */
	{
		gnutls_datum_t junk[] = { { (unsigned char *)"junk", 4 } };
		CU_ASSERT_EQUAL(check(junk, 1, rr, 1, MX, 1), TLS_DANE_MISMATCH);
	}
}

static void
test_rr_text(void)
{
	uint8_t d[3] = { 0xab, 0x01, 0xff };
	struct dns_tlsa_rr rr = { 3, 1, 1, 3, d };
	char out[64], tiny[9];

	tls_dane_rr_text(&rr, out, sizeof out);
	CU_ASSERT_STRING_EQUAL(out, "3 1 1 ab01ff");
	tls_dane_rr_text(&rr, tiny, sizeof tiny);
	CU_ASSERT_STRING_EQUAL(tiny, "3 1 1 ab");
	CU_ASSERT_STRING_EQUAL(tls_dane_result_str(TLS_DANE_MATCH_TA), "DANE-TA match");
}

static enum tls_cert
verify(const struct tls_trust *t, const gnutls_datum_t *chain, unsigned n,
    const char *const *names, size_t nnames)
{
	char why[300];
	enum tls_cert r = tls_verify_chain(t, chain, n, names, nnames, why, sizeof why);

	CU_ASSERT_EQUAL(r == TLS_CERT_OK, why[0] == '\0');
	return r;
}

static void
test_verify(void)
{
	char err[200];
	struct tls_trust *t = tls_trust_new(ca_file, err, sizeof err);
	gnutls_datum_t chain[] = { ee.der, ca.der };
	gnutls_datum_t deep[] = { ee_inter.der, inter.der };
	gnutls_datum_t wild[] = { ee_wild.der };
	gnutls_datum_t old[] = { ee_expired.der };
	gnutls_datum_t stranger[] = { other_ca.der };
	gnutls_datum_t junk[] = { { (unsigned char *)"junk", 4 } };

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(verify(t, chain, 2, MX, 1), TLS_CERT_OK);
	CU_ASSERT_EQUAL(verify(t, chain, 1, MX, 1), TLS_CERT_OK);	/* CA not sent */
	CU_ASSERT_EQUAL(verify(t, chain, 2, NULL, 0), TLS_CERT_OK);
	CU_ASSERT_EQUAL(verify(t, chain, 2, (const char *const[]){ "MAIL.example.test" }, 1),
	    TLS_CERT_OK);
	CU_ASSERT_EQUAL(verify(t, chain, 2, (const char *const[]){ "x.example.test" }, 1),
	    TLS_CERT_NAME_MISMATCH);
	CU_ASSERT_EQUAL(verify(t, deep, 2, MX, 1), TLS_CERT_OK);
	CU_ASSERT_EQUAL(verify(t, deep, 1, MX, 1), TLS_CERT_UNTRUSTED);	/* no intermediate */
	/* Wildcards: one label only. */
	CU_ASSERT_EQUAL(verify(t, wild, 1, MX, 1), TLS_CERT_OK);
	CU_ASSERT_EQUAL(verify(t, wild, 1, (const char *const[]){ "a.b.example.test" }, 1),
	    TLS_CERT_NAME_MISMATCH);
	/* Dot names: anything below the domain. */
	CU_ASSERT_EQUAL(verify(t, chain, 2, (const char *const[]){ ".example.test" }, 1),
	    TLS_CERT_OK);
	CU_ASSERT_EQUAL(verify(t, wild, 1, (const char *const[]){ ".example.test" }, 1),
	    TLS_CERT_OK);
	CU_ASSERT_EQUAL(verify(t, chain, 2, (const char *const[]){ ".mx.example.test" }, 1),
	    TLS_CERT_NAME_MISMATCH);
	CU_ASSERT_EQUAL(verify(t, chain, 2, (const char *const[]){ ".ample.test" }, 1),
	    TLS_CERT_NAME_MISMATCH);
	CU_ASSERT_EQUAL(verify(t, chain, 2, (const char *const[]){ "." }, 1),
	    TLS_CERT_NAME_MISMATCH);
	CU_ASSERT_EQUAL(verify(t, old, 1, MX, 1), TLS_CERT_EXPIRED);
	CU_ASSERT_EQUAL(verify(t, stranger, 1, NULL, 0), TLS_CERT_UNTRUSTED);
	CU_ASSERT_EQUAL(verify(t, NULL, 0, MX, 1), TLS_CERT_NO_CERT);
	CU_ASSERT_EQUAL(verify(t, junk, 1, MX, 1), TLS_CERT_BAD);
	CU_ASSERT_EQUAL(tls_verify_names(&ee.der, MX, 1), 1);
	CU_ASSERT_EQUAL(tls_verify_names(&ee.der, (const char *const[]){ "a.test" }, 1), 0);
	CU_ASSERT_EQUAL(tls_verify_names(&junk[0], MX, 1), -1);
	tls_trust_free(&t);
	CU_ASSERT_PTR_NULL(t);

	CU_ASSERT_PTR_NULL(tls_trust_new("/nonexistent/ca.pem", err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/ca.pem"));
}

static void
test_verify_to(void)
{
	char why[300];
	gnutls_datum_t chain[] = { ee.der, ca.der };
	gnutls_datum_t deep[] = { ee_inter.der, inter.der, ca.der };

	CU_ASSERT_EQUAL(tls_verify_chain_to(chain, 2, 1, MX, 1, why, sizeof why), TLS_CERT_OK);
	CU_ASSERT_EQUAL(tls_verify_chain_to(deep, 3, 2, MX, 1, why, sizeof why), TLS_CERT_OK);
	CU_ASSERT_EQUAL(tls_verify_chain_to(deep, 3, 1, MX, 1, why, sizeof why), TLS_CERT_OK);
	CU_ASSERT_EQUAL(tls_verify_chain_to(chain, 2, 0, MX, 1, why, sizeof why),
	    TLS_CERT_UNTRUSTED);
	CU_ASSERT_EQUAL(tls_verify_chain_to(chain, 2, 2, MX, 1, why, sizeof why),
	    TLS_CERT_UNTRUSTED);
	{
		gnutls_datum_t forged[] = { ee.der, other_ca.der };
		CU_ASSERT_EQUAL(tls_verify_chain_to(forged, 2, 1, MX, 1, why, sizeof why),
		    TLS_CERT_UNTRUSTED);
	}
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("tls_dane", setup, teardown);
	CU_add_test(s, "usable records", test_usable);
	CU_add_test(s, "DANE-EE", test_ee);
	CU_add_test(s, "DANE-TA", test_ta);
	CU_add_test(s, "unusable records, no certificate", test_unusable_and_empty);
	CU_add_test(s, "record text", test_rr_text);
	CU_add_test(s, "verify: chain and names", test_verify);
	CU_add_test(s, "verify to a chain certificate", test_verify_to);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
