/*
 * certgen: test certificates made in-process with GnuTLS (no files, no
 * clock games): a CA, intermediates, server certificates with chosen DNS
 * names and validity times, and the TLSA association data of any of them.
 * For unit tests only; everything aborts on error.
 */
#ifndef TESTS_UNIT_CERTGEN_H
#define TESTS_UNIT_CERTGEN_H

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct certgen {
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t der;
};

static inline void
certgen_check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "certgen: %s: %s\n", what, gnutls_strerror(rc));
		abort();
	}
}

/* A certificate for cn with DNS names dns[] (NULL-terminated, may be
 * NULL), signed by issuer (NULL: self-signed), a CA when ca is set, valid
 * from now + from_s to now + to_s seconds. */
static inline void
certgen_make(struct certgen *c, const char *cn, const char *const *dns,
    const struct certgen *issuer, int ca, long from_s, long to_s)
{
	static unsigned serial = 1;
	unsigned char ser[4];
	time_t now = time(NULL);

	memset(c, 0, sizeof *c);
	certgen_check(gnutls_x509_privkey_init(&c->key), "key init");
	certgen_check(gnutls_x509_privkey_generate(c->key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), "keygen");
	certgen_check(gnutls_x509_crt_init(&c->crt), "crt init");
	certgen_check(gnutls_x509_crt_set_version(c->crt, 3), "version");
	serial++;
	ser[0] = (unsigned char)(serial >> 24);
	ser[1] = (unsigned char)(serial >> 16);
	ser[2] = (unsigned char)(serial >> 8);
	ser[3] = (unsigned char)serial;
	certgen_check(gnutls_x509_crt_set_serial(c->crt, ser, sizeof ser), "serial");
	certgen_check(gnutls_x509_crt_set_dn_by_oid(c->crt, GNUTLS_OID_X520_COMMON_NAME,
	    0, cn, (unsigned)strlen(cn)), "cn");
	certgen_check(gnutls_x509_crt_set_key(c->crt, c->key), "set key");
	certgen_check(gnutls_x509_crt_set_activation_time(c->crt, now + from_s), "from");
	certgen_check(gnutls_x509_crt_set_expiration_time(c->crt, now + to_s), "to");
	certgen_check(gnutls_x509_crt_set_basic_constraints(c->crt, ca, -1), "bc");
	certgen_check(gnutls_x509_crt_set_key_usage(c->crt, ca ?
	    GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN :
	    GNUTLS_KEY_DIGITAL_SIGNATURE), "ku");
	if (!ca)
		certgen_check(gnutls_x509_crt_set_key_purpose_oid(c->crt,
		    GNUTLS_KP_TLS_WWW_SERVER, 0), "eku");
	for (size_t i = 0; dns && dns[i]; i++)
		certgen_check(gnutls_x509_crt_set_subject_alt_name(c->crt,
		    GNUTLS_SAN_DNSNAME, dns[i], (unsigned)strlen(dns[i]),
		    GNUTLS_FSAN_APPEND), "san");
	{
		unsigned char id[64];
		size_t idlen = sizeof id;
		certgen_check(gnutls_x509_crt_get_key_id(c->crt, 0, id, &idlen), "keyid");
		certgen_check(gnutls_x509_crt_set_subject_key_id(c->crt, id, idlen), "ski");
		if (issuer != NULL) {
			idlen = sizeof id;
			certgen_check(gnutls_x509_crt_get_subject_key_id(issuer->crt, id,
			    &idlen, NULL), "issuer ski");
			certgen_check(gnutls_x509_crt_set_authority_key_id(c->crt, id,
			    idlen), "aki");
		}
	}
	if (issuer != NULL)
		certgen_check(gnutls_x509_crt_sign2(c->crt, issuer->crt, issuer->key,
		    GNUTLS_DIG_SHA256, 0), "sign");
	else
		certgen_check(gnutls_x509_crt_sign2(c->crt, c->crt, c->key,
		    GNUTLS_DIG_SHA256, 0), "self-sign");
	certgen_check(gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_DER, &c->der),
	    "export");
}

static inline void
certgen_free(struct certgen *c)
{
	gnutls_x509_crt_deinit(c->crt);
	gnutls_x509_privkey_deinit(c->key);
	gnutls_free(c->der.data);
	memset(c, 0, sizeof *c);
}

/* TLSA association data of c for selector (0 cert, 1 SPKI) and mtype
 * (0 full, 1 SHA-256, 2 SHA-512) into out (>= der size); returns length. */
static inline size_t
certgen_tlsa(const struct certgen *c, int selector, int mtype, uint8_t *out,
    size_t outsize)
{
	gnutls_datum_t src = c->der, spki = { NULL, 0 };
	gnutls_pubkey_t pk;
	size_t n;

	if (selector == 1) {
		certgen_check(gnutls_pubkey_init(&pk), "pubkey");
		certgen_check(gnutls_pubkey_import_x509(pk, c->crt, 0), "pubkey import");
		certgen_check(gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &spki),
		    "pubkey export");
		gnutls_pubkey_deinit(pk);
		src = spki;
	}
	if (mtype == 0) {
		n = src.size;
		if (n > outsize)
			abort();
		memcpy(out, src.data, n);
	} else {
		n = mtype == 1 ? 32 : 64;
		certgen_check(gnutls_hash_fast(mtype == 1 ? GNUTLS_DIG_SHA256 :
		    GNUTLS_DIG_SHA512, src.data, src.size, out), "hash");
	}
	gnutls_free(spki.data);
	return n;
}

/* Writes c as PEM to path. */
static inline void
certgen_write_pem(const struct certgen *c, const char *path)
{
	gnutls_datum_t pem;
	FILE *f = fopen(path, "w");

	if (f == NULL)
		abort();
	certgen_check(gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_PEM, &pem), "pem");
	fwrite(pem.data, 1, pem.size, f);
	fclose(f);
	gnutls_free(pem.data);
}

#endif
