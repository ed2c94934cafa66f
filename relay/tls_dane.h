/*
 * tls_dane: DANE authentication of an SMTP server (RFC 7672 3, RFC 7671,
 * RFC 6698) from TLSA records that dns/ found and validated. Matching is
 * GnuTLS's (gnutls/dane.h: dane_raw_tlsa, dane_verify_crt_raw), fed the
 * raw records of our own lookup; this module picks the usable records and
 * applies the SMTP rules around the match:
 *
 *  - usable records (RFC 7672 3.1): DANE-TA(2) and DANE-EE(3) only;
 *    PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP; selector Cert(0) or
 *    SPKI(1); matching Full(0), SHA2-256(1) or SHA2-512(2) with a digest
 *    of the right length; association data never empty. An RRset with no
 *    usable record means mandatory TLS without authentication (3.1.3), not
 *    a failure: tls_dane_usable says how many there are.
 *  - DANE-EE(3) (3.1.1): the server's own certificate or key matches; no
 *    name check and no expiry check.
 *  - DANE-TA(2) (3.1.2): some certificate of the chain the server sent
 *    (after its own) matches; the chain from the server's certificate up
 *    to it must verify with it as the only trust anchor (signatures,
 *    validity times, CA constraints), and the server's names must match a
 *    reference identifier (3.2.2: the TLSA base domain, the MX host name
 *    or the next-hop domain, as the caller gives them). A trust anchor
 *    the server does not send (a bare 2 1 0 key) cannot match: RFC 7672
 *    3.1.2 asks servers to send it. GnuTLS looks only at the direct issuer
 *    of a certificate, so each (certificate, issuer) pair of the chain is
 *    shown to it in turn.
 *
 * Errors: results are enum tls_dane_result with a reason; nothing is
 * logged. Out of memory aborts.
 * Threads: a struct tls_dane is immutable after tls_dane_new; any number
 * of threads may use it at once.
 */
#ifndef RELAY_TLS_DANE_H
#define RELAY_TLS_DANE_H

#include <stddef.h>

#include <gnutls/gnutls.h>

#include "dns/dns.h"

enum tls_dane_result {
	TLS_DANE_MATCH_EE = 0,	/* a DANE-EE(3) record matched */
	TLS_DANE_MATCH_TA,	/* a DANE-TA(2) record matched, chain and name ok */
	TLS_DANE_NO_USABLE,	/* no usable record: encrypt, do not authenticate */
	TLS_DANE_NO_CERT,	/* the peer sent no certificate */
	TLS_DANE_MISMATCH,	/* usable records, none matched */
	TLS_DANE_TA_INVALID,	/* a TA matched but the chain or name failed */
};

/* "DANE-EE match", ... (static). */
const char *tls_dane_result_str(enum tls_dane_result r);

/* 1 when rr is usable for SMTP (above), else 0. */
int tls_dane_rr_usable(const struct dns_tlsa_rr *rr);

/* How many of rrs[0..n-1] are usable. */
size_t tls_dane_usable(const struct dns_tlsa_rr *rrs, size_t n);

struct tls_dane;

/* GnuTLS's DANE state (no resolver of its own is ever used). NULL with
 * err filled when GnuTLS cannot make it. */
struct tls_dane *tls_dane_new(char *err, size_t errsize);
void tls_dane_free(struct tls_dane **dp);

/*
 * Authenticates chain[0..n-1] (DER, the server's certificate first) with
 * the usable records of rrs[0..nrrs-1]: DANE-EE first, then DANE-TA with
 * names[0..nnames-1] as reference identifiers. The records must come from
 * a secure lookup; that is the caller's contract. why (whysize > 0) gets
 * a reason for anything but a match.
 */
enum tls_dane_result tls_dane_check(const struct tls_dane *d,
    const gnutls_datum_t *chain, unsigned n, const struct dns_tlsa_rr *rrs,
    size_t nrrs, const char *const *names, size_t nnames, char *why,
    size_t whysize);

/* A record in presentation form ("3 1 1 ab12..."), cut to outsize. */
void tls_dane_rr_text(const struct dns_tlsa_rr *rr, char *out, size_t outsize);

#endif
