/*
 * tls_verify: PKIX chain and name checks with GnuTLS's trust lists
 * (relay/tls_verify.h). Certificates are decoded from the DER the peer
 * sent each time they are checked; nothing is cached.
 */
#include "relay/tls_verify.h"

#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

struct tls_trust {
	gnutls_x509_trust_list_t list;
};

const char *
tls_cert_str(enum tls_cert r)
{
	switch (r) {
	case TLS_CERT_OK: return "ok";
	case TLS_CERT_NO_CERT: return "no certificate";
	case TLS_CERT_BAD: return "undecodable certificate";
	case TLS_CERT_UNTRUSTED: return "untrusted certificate";
	case TLS_CERT_EXPIRED: return "expired or not yet valid certificate";
	case TLS_CERT_NAME_MISMATCH: return "certificate name mismatch";
	default: return "?";
	}
}

struct tls_trust *
tls_trust_new(const char *ca_file, char *err, size_t errsize)
{
	struct tls_trust *t = xcalloc(1, sizeof *t);
	int n;

	if (gnutls_x509_trust_list_init(&t->list, 0) < 0)
		abort();
	if (ca_file != NULL)
		n = gnutls_x509_trust_list_add_trust_file(t->list, ca_file, NULL,
		    GNUTLS_X509_FMT_PEM, 0, 0);
	else
		n = gnutls_x509_trust_list_add_system_trust(t->list, 0, 0);
	if (n <= 0) {
		snprintf(err, errsize, "%s: %s", ca_file ? ca_file :
		    "system trust store", n < 0 ? gnutls_strerror(n) :
		    "no CA certificate");
		tls_trust_free(&t);
		return NULL;
	}
	return t;
}

void
tls_trust_free(struct tls_trust **tp)
{
	if (*tp == NULL)
		return;
	gnutls_x509_trust_list_deinit((*tp)->list, 1);
	free(*tp);
	*tp = NULL;
}

/* Decodes chain[0..n-1] into crts; returns how many, or -1. */
static int
chain_import(const gnutls_datum_t *chain, unsigned n, gnutls_x509_crt_t *crts)
{
	for (unsigned i = 0; i < n; i++) {
		if (gnutls_x509_crt_init(&crts[i]) < 0)
			abort();
		if (gnutls_x509_crt_import(crts[i], &chain[i], GNUTLS_X509_FMT_DER) < 0) {
			for (unsigned j = 0; j <= i; j++)
				gnutls_x509_crt_deinit(crts[j]);
			return -1;
		}
	}
	return (int)n;
}

static void
chain_free(gnutls_x509_crt_t *crts, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
}

/* Does DNS name dn of a certificate lie below domain (".example.com")? */
static int
name_below(const char *dn, size_t dnlen, const char *dot_domain)
{
	size_t dl = strlen(dot_domain);

	if (dnlen >= 2 && dn[0] == '*' && dn[1] == '.') {
		/* "*.a.example.com" only names hosts below ".example.com" */
		dn++;
		dnlen--;
		if (dnlen == dl && strncasecmp(dn, dot_domain, dl) == 0)
			return 1;
	}
	return dnlen > dl && strncasecmp(dn + dnlen - dl, dot_domain, dl) == 0;
}

static int
crt_names_below(gnutls_x509_crt_t crt, const char *dot_domain)
{
	int found_san = 0;

	for (unsigned seq = 0; seq < 256; seq++) {
		char buf[256];
		size_t size = sizeof buf - 1;
		unsigned critical;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf,
		    &size, &critical);
		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type == GNUTLS_SAN_DNSNAME) {
			found_san = 1;
			if (memchr(buf, '\0', size) == NULL &&
			    name_below(buf, size, dot_domain))
				return 1;
		}
	}
	if (!found_san) {
		char cn[256];
		size_t size = sizeof cn - 1;
		if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
		    0, cn, &size) == 0 && memchr(cn, '\0', size) == NULL)
			return name_below(cn, size, dot_domain);
	}
	return 0;
}

static int
crt_names_match(gnutls_x509_crt_t crt, const char *const *names, size_t nnames)
{
	for (size_t i = 0; i < nnames; i++) {
		if (names[i] == NULL || names[i][0] == '\0')
			continue;
		if (names[i][0] == '.') {
			if (names[i][1] != '\0' && crt_names_below(crt, names[i]))
				return 1;
		} else if (gnutls_x509_crt_check_hostname2(crt, names[i], 0)) {
			return 1;
		}
	}
	return 0;
}

int
tls_verify_names(const gnutls_datum_t *cert, const char *const *names,
    size_t nnames)
{
	gnutls_x509_crt_t crt;
	int rc;

	if (chain_import(cert, 1, &crt) != 1)
		return -1;
	rc = crt_names_match(crt, names, nnames);
	gnutls_x509_crt_deinit(crt);
	return rc;
}

/* Verifies crts[0..n-1] against list; the result and a reason. */
static enum tls_cert
list_verify(gnutls_x509_trust_list_t list, gnutls_x509_crt_t *crts, unsigned n,
    const char *const *names, size_t nnames, char *why, size_t whysize)
{
	gnutls_typed_vdata_st purpose = {
		.type = GNUTLS_DT_KEY_PURPOSE_OID,
		.data = (void *)GNUTLS_KP_TLS_WWW_SERVER,
	};
	unsigned status = 0;
	gnutls_datum_t text = { NULL, 0 };

	if (gnutls_x509_trust_list_verify_crt2(list, crts, n, &purpose, 1, 0,
	    &status, NULL) < 0)
		status = GNUTLS_CERT_INVALID;
	if (status != 0) {
		if (gnutls_certificate_verification_status_print(status,
		    GNUTLS_CRT_X509, &text, 0) == 0) {
			snprintf(why, whysize, "%s", (const char *)text.data);
			gnutls_free(text.data);
		} else {
			snprintf(why, whysize, "certificate verification failed");
		}
		return (status & (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED)) ?
		    TLS_CERT_EXPIRED : TLS_CERT_UNTRUSTED;
	}
	if (nnames > 0 && !crt_names_match(crts[0], names, nnames)) {
		snprintf(why, whysize, "the certificate matches none of: %s%s%s",
		    names[0] ? names[0] : "", nnames > 1 ? ", " : "",
		    nnames > 1 && names[1] ? names[1] : "");
		return TLS_CERT_NAME_MISMATCH;
	}
	return TLS_CERT_OK;
}

/* The checks before any verification: -1 to go on, or the result. */
static int
chain_precheck(const gnutls_datum_t *chain, unsigned n, char *why, size_t whysize)
{
	if (whysize > 0)
		why[0] = '\0';
	if (chain == NULL || n == 0) {
		snprintf(why, whysize, "no certificate");
		return TLS_CERT_NO_CERT;
	}
	return -1;
}

enum tls_cert
tls_verify_chain(const struct tls_trust *t, const gnutls_datum_t *chain,
    unsigned n, const char *const *names, size_t nnames, char *why,
    size_t whysize)
{
	gnutls_x509_crt_t crts[TLS_VERIFY_MAX_CHAIN];
	enum tls_cert r;
	int pre = chain_precheck(chain, n, why, whysize);

	if (pre >= 0)
		return (enum tls_cert)pre;
	if (n > TLS_VERIFY_MAX_CHAIN)
		n = TLS_VERIFY_MAX_CHAIN;
	if (chain_import(chain, n, crts) < 0) {
		snprintf(why, whysize, "a certificate cannot be decoded");
		return TLS_CERT_BAD;
	}
	r = list_verify(t->list, crts, n, names, nnames, why, whysize);
	chain_free(crts, n);
	return r;
}

enum tls_cert
tls_verify_chain_to(const gnutls_datum_t *chain, unsigned n, unsigned anchor,
    const char *const *names, size_t nnames, char *why, size_t whysize)
{
	gnutls_x509_crt_t crts[TLS_VERIFY_MAX_CHAIN], ta;
	gnutls_x509_trust_list_t list;
	enum tls_cert r;
	int pre = chain_precheck(chain, n, why, whysize);

	if (pre >= 0)
		return (enum tls_cert)pre;
	if (anchor == 0 || anchor >= n || anchor >= TLS_VERIFY_MAX_CHAIN) {
		snprintf(why, whysize, "no trust anchor in the chain");
		return TLS_CERT_UNTRUSTED;
	}
	if (n > TLS_VERIFY_MAX_CHAIN)
		n = TLS_VERIFY_MAX_CHAIN;
	/* The whole chain as sent: GnuTLS puts it in order and leaves out
	 * what is not on the path (RFC 8446 4.4.2). */
	if (chain_import(chain, n, crts) < 0) {
		snprintf(why, whysize, "a certificate cannot be decoded");
		return TLS_CERT_BAD;
	}
	if (gnutls_x509_trust_list_init(&list, 0) < 0 ||
	    chain_import(&chain[anchor], 1, &ta) != 1)
		abort();	/* decoded just above */
	/* The list owns ta from here. */
	if (gnutls_x509_trust_list_add_cas(list, &ta, 1, 0) != 1) {
		gnutls_x509_crt_deinit(ta);
		snprintf(why, whysize, "unusable trust anchor");
		r = TLS_CERT_UNTRUSTED;
	} else {
		r = list_verify(list, crts, n, names, nnames, why, whysize);
	}
	gnutls_x509_trust_list_deinit(list, 1);
	chain_free(crts, n);
	return r;
}
