/*
 * dkim_key: DKIM keys through GnuTLS: private keys loaded from PEM files
 * (and checked by signing and verifying a probe), public keys imported
 * from key records (DER SubjectPublicKeyInfo or bare PKCS#1 for RSA, the
 * raw 32 bytes for Ed25519, RFC 8463 4), the TXT record of a key, the
 * signatures of both algorithms, and new keys for `mailctl dkim-keygen`.
 *
 * GnuTLS objects are safe when one thread uses one object at a time, so
 * a shared struct dkim_key signs under its mutex.
 */
#include "auth/dkim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

#define KEY_FILE_MAX	(64 * 1024)
#define RSA_SIGN_MIN	2048	/* bits, to sign (the floor) */
#define RSA_VERIFY_MIN	1024	/* bits, to verify (RFC 8301 3.2) */
/* A key in DNS is the sender's choice, and so is its cost: an 8192-bit
 * modulus with a 3000-byte exponent (it fits p=) takes seconds of CPU
 * per signature. RFC 6376 3.3.3 asks for 512..2048 bits; OpenSSL takes
 * exponents of 64 bits at most beyond 3072-bit moduli. */
#define RSA_VERIFY_MAX	8192	/* bits */
#define RSA_EXP_MAX	8	/* bytes of the public exponent */

struct dkim_key {
	gnutls_privkey_t priv;
	gnutls_pubkey_t pub;
	enum dkim_alg alg;
	char domain[254];
	char selector[254];
	pthread_mutex_t lock;
};

enum dkim_alg
dkim_key_alg(const struct dkim_key *key)
{
	return key->alg;
}

const char *
dkim_key_domain(const struct dkim_key *key)
{
	return key->domain;
}

const char *
dkim_key_selector(const struct dkim_key *key)
{
	return key->selector;
}

const char *
dkim_alg_name(enum dkim_alg a)
{
	return a == DKIM_ALG_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

static int
sha256(const void *data, size_t n, uint8_t out[32])
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, data, n, out) < 0 ? -1 : 0;
}

/* Signs with a private key (the caller serializes use of priv). */
static int
priv_sign(gnutls_privkey_t priv, enum dkim_alg alg, const void *data,
    size_t n, gnutls_datum_t *sig)
{
	uint8_t h[32];
	gnutls_datum_t d;

	if (alg == DKIM_ALG_ED25519_SHA256) {
		if (sha256(data, n, h) != 0)
			return -1;
		d.data = h;
		d.size = sizeof h;
		return gnutls_privkey_sign_data2(priv, GNUTLS_SIGN_EDDSA_ED25519,
		    0, &d, sig) < 0 ? -1 : 0;
	}
	d.data = (unsigned char *)(uintptr_t)data;
	d.size = (unsigned)n;
	return gnutls_privkey_sign_data2(priv, GNUTLS_SIGN_RSA_SHA256, 0, &d,
	    sig) < 0 ? -1 : 0;
}

/* 0 when sig verifies over data with pub. */
static int
pub_verify(gnutls_pubkey_t pub, enum dkim_alg alg, const void *data,
    size_t n, const uint8_t *sig, size_t siglen)
{
	gnutls_datum_t s = { (unsigned char *)(uintptr_t)sig, (unsigned)siglen };
	uint8_t h[32];
	gnutls_datum_t d;

	if (alg == DKIM_ALG_ED25519_SHA256) {
		if (sha256(data, n, h) != 0)
			return -1;
		d.data = h;
		d.size = sizeof h;
		return gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_EDDSA_ED25519,
		    0, &d, &s) < 0 ? -1 : 0;
	}
	d.data = (unsigned char *)(uintptr_t)data;
	d.size = (unsigned)n;
	return gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_RSA_SHA256, 0, &d,
	    &s) < 0 ? -1 : 0;
}

int
dkim_key_sign(struct dkim_key *key, const void *data, size_t n,
    struct buf *out)
{
	gnutls_datum_t sig = { NULL, 0 };
	int rc;

	pthread_mutex_lock(&key->lock);
	rc = priv_sign(key->priv, key->alg, data, n, &sig);
	pthread_mutex_unlock(&key->lock);
	if (rc == 0)
		rc = dkim_base64_encode(sig.data, sig.size, out);
	gnutls_free(sig.data);
	return rc;
}

/* ---- loading ---- */

static int
read_file(const char *path, gnutls_datum_t *d, char *err, size_t errsize)
{
	struct stat st;
	ssize_t got;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > KEY_FILE_MAX) {
		snprintf(err, errsize, "%s: not a key file", path);
		close(fd);
		return -1;
	}
	d->data = xmalloc((size_t)st.st_size + 1);
	while ((size_t)st.st_size > n &&
	    (got = read(fd, d->data + n, (size_t)st.st_size - n)) > 0)
		n += (size_t)got;
	close(fd);
	d->size = (unsigned)n;
	return 0;
}

static int
key_check(struct dkim_key *k, char *err, size_t errsize)
{
	static const char probe[] = "mailserver DKIM key check";
	gnutls_datum_t sig = { NULL, 0 };
	int rc;

	rc = priv_sign(k->priv, k->alg, probe, sizeof probe - 1, &sig);
	if (rc == 0)
		rc = pub_verify(k->pub, k->alg, probe, sizeof probe - 1, sig.data,
		    sig.size);
	gnutls_free(sig.data);
	if (rc != 0)
		snprintf(err, errsize, "the key does not sign and verify as %s",
		    dkim_alg_name(k->alg));
	return rc;
}

int
dkim_key_load(const char *path, const char *domain, const char *selector,
    struct dkim_key **key_r, char *err, size_t errsize)
{
	struct dkim_key *k;
	gnutls_datum_t pem = { NULL, 0 };
	unsigned bits = 0;
	int pk, rc;

	*key_r = NULL;
	err[0] = '\0';
	if (domain == NULL || selector == NULL ||
	    !dkim_name_ok(domain, strlen(domain)) ||
	    strchr(domain, '.') == NULL ||
	    !dkim_name_ok(selector, strlen(selector)) ||
	    strlen(selector) + strlen(domain) + 12 > 253) {
		snprintf(err, errsize, "bad DKIM domain or selector");
		return -1;
	}
	if (read_file(path, &pem, err, errsize) != 0)
		return -1;
	k = xcalloc(1, sizeof *k);
	pthread_mutex_init(&k->lock, NULL);
	str_copy(k->domain, domain, sizeof k->domain);
	str_lower(k->domain);
	str_copy(k->selector, selector, sizeof k->selector);
	rc = gnutls_privkey_init(&k->priv);
	if (rc >= 0)
		rc = gnutls_privkey_import_x509_raw(k->priv, &pem,
		    GNUTLS_X509_FMT_PEM, NULL, 0);
	memset(pem.data, 0, pem.size);
	free(pem.data);
	if (rc < 0) {
		snprintf(err, errsize, "%s: not a PEM private key (%s)", path,
		    gnutls_strerror(rc));
		dkim_key_free(&k);
		return -1;
	}
	pk = gnutls_privkey_get_pk_algorithm(k->priv, &bits);
	if (pk == GNUTLS_PK_RSA && bits >= RSA_SIGN_MIN) {
		k->alg = DKIM_ALG_RSA_SHA256;
	} else if (pk == GNUTLS_PK_EDDSA_ED25519) {
		k->alg = DKIM_ALG_ED25519_SHA256;
	} else {
		snprintf(err, errsize, "%s: %s key of %u bits; DKIM signing needs "
		    "RSA of %d bits or more, or Ed25519", path,
		    gnutls_pk_algorithm_get_name((gnutls_pk_algorithm_t)pk), bits,
		    RSA_SIGN_MIN);
		dkim_key_free(&k);
		return -1;
	}
	if (gnutls_pubkey_init(&k->pub) < 0 ||
	    gnutls_pubkey_import_privkey(k->pub, k->priv, 0, 0) < 0 ||
	    key_check(k, err, errsize) != 0) {
		if (err[0] == '\0')
			snprintf(err, errsize, "%s: no public key", path);
		dkim_key_free(&k);
		return -1;
	}
	*key_r = k;
	return 0;
}

void
dkim_key_free(struct dkim_key **keyp)
{
	struct dkim_key *k = *keyp;

	if (k == NULL)
		return;
	if (k->pub)
		gnutls_pubkey_deinit(k->pub);
	if (k->priv)
		gnutls_privkey_deinit(k->priv);
	pthread_mutex_destroy(&k->lock);
	free(k);
	*keyp = NULL;
}

/* The p= data of a public key: SPKI DER for RSA, raw for Ed25519. */
static int
pub_record(gnutls_pubkey_t pub, enum dkim_alg alg, struct buf *out)
{
	gnutls_datum_t d = { NULL, 0 };
	gnutls_ecc_curve_t curve;
	int rc;

	if (alg == DKIM_ALG_ED25519_SHA256)
		rc = gnutls_pubkey_export_ecc_raw2(pub, &curve, &d, NULL, 0);
	else
		rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &d);
	if (rc < 0)
		return -1;
	buf_reset(out);
	rc = buf_printf(out, "v=DKIM1; k=%s; p=",
	    alg == DKIM_ALG_ED25519_SHA256 ? "ed25519" : "rsa");
	if (rc == 0)
		rc = dkim_base64_encode(d.data, d.size, out);
	gnutls_free(d.data);
	return rc;
}

int
dkim_key_txt_record(const struct dkim_key *key, struct buf *out)
{
	return pub_record(key->pub, key->alg, out);
}

/* ---- public keys from DNS ---- */

/* Reads a DER length at p[*i]; -1 when malformed. */
static long
der_len(const uint8_t *p, size_t n, size_t *i)
{
	size_t len = 0, k;

	if (*i >= n)
		return -1;
	if (p[*i] < 0x80)
		return p[(*i)++];
	k = p[(*i)++] & 0x7f;
	if (k == 0 || k > 3 || *i + k > n)
		return -1;
	while (k-- > 0)
		len = (len << 8) | p[(*i)++];
	return (long)len;
}

/* A bare PKCS#1 RSAPublicKey: SEQUENCE { INTEGER n, INTEGER e }. */
static int
import_rsa_pkcs1(gnutls_pubkey_t pub, const uint8_t *p, size_t n)
{
	gnutls_datum_t ints[2];
	size_t i = 0;
	long len;

	if (n < 2 || p[i++] != 0x30 || (len = der_len(p, n, &i)) < 0 ||
	    (size_t)len != n - i)
		return -1;
	for (int k = 0; k < 2; k++) {
		if (i >= n || p[i++] != 0x02 || (len = der_len(p, n, &i)) <= 0 ||
		    (size_t)len > n - i)
			return -1;
		ints[k].data = (unsigned char *)(uintptr_t)(p + i);
		ints[k].size = (unsigned)len;
		i += (size_t)len;
	}
	if (i != n)
		return -1;
	return gnutls_pubkey_import_rsa_raw(pub, &ints[0], &ints[1]) < 0 ? -1 : 0;
}

/* 1 when an RSA public key is cheap enough to verify with. */
static int
rsa_within_limits(gnutls_pubkey_t pub, unsigned bits)
{
	gnutls_datum_t m = { NULL, 0 }, e = { NULL, 0 };
	size_t elen;
	int ok;

	if (bits > RSA_VERIFY_MAX ||
	    gnutls_pubkey_export_rsa_raw2(pub, &m, &e, 0) < 0)
		return 0;
	elen = e.size;
	for (size_t i = 0; i < e.size && e.data[i] == 0; i++)
		elen--;
	ok = elen <= RSA_EXP_MAX;
	gnutls_free(m.data);
	gnutls_free(e.data);
	return ok;
}

enum dkim_status
dkim_keyrec_verify(const struct dkim_keyrec *k, enum dkim_alg alg,
    const void *data, size_t n, const uint8_t *sig, size_t siglen)
{
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)k->p, (unsigned)k->plen };
	gnutls_pubkey_t pub;
	enum dkim_status st = DKIM_ST_OK;
	unsigned bits = 0;
	int rc;

	if (gnutls_pubkey_init(&pub) < 0)
		return DKIM_ST_KEY_SYNTAX;
	if (alg == DKIM_ALG_ED25519_SHA256) {
		rc = k->plen == 32 ? gnutls_pubkey_import_ecc_raw(pub,
		    GNUTLS_ECC_CURVE_ED25519, &d, NULL) : -1;
	} else {
		rc = gnutls_pubkey_import(pub, &d, GNUTLS_X509_FMT_DER);
		if (rc < 0) {
			gnutls_pubkey_deinit(pub);
			if (gnutls_pubkey_init(&pub) < 0)
				return DKIM_ST_KEY_SYNTAX;
			rc = import_rsa_pkcs1(pub, k->p, k->plen);
		}
	}
	if (rc < 0) {
		st = DKIM_ST_KEY_SYNTAX;
	} else {
		int pk = gnutls_pubkey_get_pk_algorithm(pub, &bits);
		if (alg == DKIM_ALG_RSA_SHA256 && pk != GNUTLS_PK_RSA)
			st = DKIM_ST_KEY_ALG;
		else if (alg == DKIM_ALG_RSA_SHA256 && bits < RSA_VERIFY_MIN)
			st = DKIM_ST_KEY_SIZE;
		else if (alg == DKIM_ALG_RSA_SHA256 && !rsa_within_limits(pub, bits))
			st = DKIM_ST_KEY_LIMIT;
		else if (pub_verify(pub, alg, data, n, sig, siglen) != 0)
			st = DKIM_ST_SIGNATURE;
	}
	gnutls_pubkey_deinit(pub);
	return st;
}

/* ---- new keys ---- */

static int
write_new_file(const char *path, const void *data, size_t n, char *err,
    size_t errsize)
{
	const char *p = data;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		p += w;
		n -= (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errsize, "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(path);
	return -1;
}

int
dkim_keygen(enum dkim_alg alg, const char *path, struct buf *txt, char *err,
    size_t errsize)
{
	gnutls_privkey_t priv = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_x509_privkey_t x509 = NULL;
	gnutls_datum_t pem = { NULL, 0 };
	int rc;

	rc = gnutls_privkey_init(&priv);
	if (rc >= 0)
		rc = alg == DKIM_ALG_ED25519_SHA256 ?
		    gnutls_privkey_generate(priv, GNUTLS_PK_EDDSA_ED25519,
		    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0) :
		    gnutls_privkey_generate(priv, GNUTLS_PK_RSA, RSA_SIGN_MIN, 0);
	if (rc >= 0)
		rc = gnutls_privkey_export_x509(priv, &x509);
	if (rc >= 0)
		rc = gnutls_x509_privkey_export2_pkcs8(x509, GNUTLS_X509_FMT_PEM,
		    NULL, GNUTLS_PKCS_PLAIN, &pem);
	if (rc >= 0)
		rc = gnutls_pubkey_init(&pub);
	if (rc >= 0)
		rc = gnutls_pubkey_import_privkey(pub, priv, 0, 0);
	if (rc < 0) {
		snprintf(err, errsize, "key generation: %s", gnutls_strerror(rc));
		rc = -1;
	} else if (pub_record(pub, alg, txt) != 0) {
		snprintf(err, errsize, "key generation: no public key");
		rc = -1;
	} else {
		rc = write_new_file(path, pem.data, pem.size, err, errsize);
	}
	if (pem.data != NULL) {
		memset(pem.data, 0, pem.size);
		gnutls_free(pem.data);
	}
	if (x509)
		gnutls_x509_privkey_deinit(x509);
	if (pub)
		gnutls_pubkey_deinit(pub);
	if (priv)
		gnutls_privkey_deinit(priv);
	return rc;
}
