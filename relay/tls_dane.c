/*
 * tls_dane: RFC 7672 DANE authentication on top of GnuTLS's DANE
 * matching (relay/tls_dane.h).
 */
#include "relay/tls_dane.h"

#include <gnutls/dane.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "relay/tls_verify.h"

struct tls_dane {
	dane_state_t state;
};

const char *
tls_dane_result_str(enum tls_dane_result r)
{
	switch (r) {
	case TLS_DANE_MATCH_EE: return "DANE-EE match";
	case TLS_DANE_MATCH_TA: return "DANE-TA match";
	case TLS_DANE_NO_USABLE: return "no usable TLSA record";
	case TLS_DANE_NO_CERT: return "no certificate";
	case TLS_DANE_MISMATCH: return "no TLSA record matches";
	case TLS_DANE_TA_INVALID: return "DANE-TA chain or name check failed";
	default: return "?";
	}
}

int
tls_dane_rr_usable(const struct dns_tlsa_rr *rr)
{
	if (rr->usage != DANE_CERT_USAGE_LOCAL_CA &&
	    rr->usage != DANE_CERT_USAGE_LOCAL_EE)
		return 0;
	if (rr->selector != DANE_CERT_X509 && rr->selector != DANE_CERT_PK)
		return 0;
	switch (rr->mtype) {
	case DANE_MATCH_EXACT: return rr->len > 0;
	case DANE_MATCH_SHA2_256: return rr->len == 32;
	case DANE_MATCH_SHA2_512: return rr->len == 64;
	default: return 0;
	}
}

size_t
tls_dane_usable(const struct dns_tlsa_rr *rrs, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += (size_t)tls_dane_rr_usable(&rrs[i]);
	return k;
}

struct tls_dane *
tls_dane_new(char *err, size_t errsize)
{
	struct tls_dane *d = xcalloc(1, sizeof *d);
	int rc;

	/* Only dane_raw_tlsa and dane_verify_crt_raw are used: GnuTLS's own
	 * resolver (libunbound) and its root key are never touched. */
	rc = dane_state_init(&d->state, DANE_F_IGNORE_LOCAL_RESOLVER |
	    DANE_F_IGNORE_DNSSEC);
	if (rc != DANE_E_SUCCESS) {
		snprintf(err, errsize, "gnutls-dane: %s", dane_strerror(rc));
		free(d);
		return NULL;
	}
	return d;
}

void
tls_dane_free(struct tls_dane **dp)
{
	if (*dp == NULL)
		return;
	dane_state_deinit((*dp)->state);
	free(*dp);
	*dp = NULL;
}

static void
bufs_free(char **bufs)
{
	for (size_t i = 0; bufs[i] != NULL; i++)
		free(bufs[i]);
}

/* The usable records of one usage as a GnuTLS query; NULL when none.
 * bufs[] (NULL-terminated, freed by the caller) back the query. */
static dane_query_t
query_for_usage(const struct tls_dane *d, const struct dns_tlsa_rr *rrs,
    size_t nrrs, unsigned usage, char **bufs, int *lens)
{
	dane_query_t q = NULL;
	size_t k = 0;

	for (size_t i = 0; i < nrrs && k < DNS_MAX_TLSA; i++) {
		if (rrs[i].usage != usage || !tls_dane_rr_usable(&rrs[i]))
			continue;
		bufs[k] = xmalloc(rrs[i].len + 3);
		bufs[k][0] = (char)rrs[i].usage;
		bufs[k][1] = (char)rrs[i].selector;
		bufs[k][2] = (char)rrs[i].mtype;
		memcpy(bufs[k] + 3, rrs[i].data, rrs[i].len);
		lens[k] = (int)(rrs[i].len + 3);
		k++;
	}
	bufs[k] = NULL;
	lens[k] = 0;
	if (k == 0)
		return NULL;
	/* The records passed a secure lookup: the caller's contract. */
	if (dane_raw_tlsa(d->state, &q, bufs, lens, 1, 0) != DANE_E_SUCCESS) {
		if (q != NULL)
			dane_query_deinit(q);
		bufs_free(bufs);
		bufs[0] = NULL;
		return NULL;
	}
	return q;
}

static int
same_der(const gnutls_datum_t *a, const gnutls_datum_t *b)
{
	return a->size == b->size && memcmp(a->data, b->data, a->size) == 0;
}

/* 1 when GnuTLS says chain[0..n-1] matches q under vflags. */
static int
gnutls_matches(const gnutls_datum_t *chain, unsigned n, dane_query_t q,
    unsigned vflags)
{
	unsigned verify = 0;

	return dane_verify_crt_raw(NULL, chain, n, GNUTLS_CRT_X509, q, 0, vflags,
	    &verify) == DANE_E_SUCCESS && verify == 0;
}

enum tls_dane_result
tls_dane_check(const struct tls_dane *d, const gnutls_datum_t *chain,
    unsigned n, const struct dns_tlsa_rr *rrs, size_t nrrs,
    const char *const *names, size_t nnames, char *why, size_t whysize)
{
	char *bufs[DNS_MAX_TLSA + 1];
	int lens[DNS_MAX_TLSA + 1];
	dane_query_t q;
	enum tls_dane_result r = TLS_DANE_MISMATCH;
	char ta_why[200] = "";

	if (whysize > 0)
		why[0] = '\0';
	if (tls_dane_usable(rrs, nrrs) == 0) {
		snprintf(why, whysize, "no usable TLSA record");
		return TLS_DANE_NO_USABLE;
	}
	if (chain == NULL || n == 0) {
		snprintf(why, whysize, "the server sent no certificate");
		return TLS_DANE_NO_CERT;
	}
	if (n > TLS_VERIFY_MAX_CHAIN)
		n = TLS_VERIFY_MAX_CHAIN;

	q = query_for_usage(d, rrs, nrrs, DANE_CERT_USAGE_LOCAL_EE, bufs, lens);
	if (q != NULL) {
		int ok = gnutls_matches(chain, 1, q, DANE_VFLAG_ONLY_CHECK_EE_USAGE);
		dane_query_deinit(q);
		bufs_free(bufs);
		if (ok)
			return TLS_DANE_MATCH_EE;
	}

	q = query_for_usage(d, rrs, nrrs, DANE_CERT_USAGE_LOCAL_CA, bufs, lens);
	if (q != NULL) {
		for (unsigned k = 1; k < n && r != TLS_DANE_MATCH_TA; k++) {
			enum tls_cert c;
			unsigned j;

			/* The server's own certificate sent again is no TA. */
			if (same_der(&chain[k], &chain[0]))
				continue;
			/* Does chain[k] match, as the issuer of a certificate of
			 * the chain? Any order, extra certificates too (RFC 8446
			 * 4.4.2): GnuTLS is asked of each pair. */
			for (j = 0; j < n; j++) {
				gnutls_datum_t pair[2] = { chain[j], chain[k] };
				if (j != k && gnutls_matches(pair, 2, q,
				    DANE_VFLAG_ONLY_CHECK_CA_USAGE))
					break;
			}
			if (j == n)
				continue;
			c = tls_verify_chain_to(chain, n, k, names, nnames, ta_why,
			    sizeof ta_why);
			r = c == TLS_CERT_OK ? TLS_DANE_MATCH_TA : TLS_DANE_TA_INVALID;
		}
		dane_query_deinit(q);
		bufs_free(bufs);
	}
	if (r == TLS_DANE_TA_INVALID)
		snprintf(why, whysize, "trust anchor matched, but: %s", ta_why);
	else if (r == TLS_DANE_MISMATCH)
		snprintf(why, whysize, "no TLSA record matches the certificate chain");
	return r;
}

void
tls_dane_rr_text(const struct dns_tlsa_rr *rr, char *out, size_t outsize)
{
	static const char hex[] = "0123456789abcdef";
	int n = snprintf(out, outsize, "%u %u %u ", rr->usage, rr->selector,
	    rr->mtype);
	size_t o;

	if (n < 0 || (size_t)n >= outsize)
		return;
	o = (size_t)n;
	for (size_t i = 0; i < rr->len && o + 3 <= outsize; i++) {
		out[o++] = hex[rr->data[i] >> 4];
		out[o++] = hex[rr->data[i] & 0xf];
	}
	out[o] = '\0';
}
