/*
 * tls_verify: PKIX checks of a peer's certificate chain for the outbound
 * client (relay/): the chain against trust anchors (the system trust
 * store or a CA file, or one certificate of the chain itself for DANE-TA),
 * and the server's names against reference identifiers (RFC 6125: the
 * MX host name, the names of a tls_policy entry). GnuTLS does the work;
 * this module only says which result is which.
 *
 * Reference names: a host name matches as GnuTLS's
 * gnutls_x509_crt_check_hostname2 says (wildcards in the left-most
 * label); a name with a leading dot (".example.com") matches any DNS name
 * of the certificate below that domain (Postfix's tls_policy "match=").
 *
 * Errors: results are enum tls_cert values with a reason text; nothing is
 * logged. Out of memory aborts (lib/util.h).
 * Threads: a struct tls_trust is immutable after tls_trust_new and may be
 * used by any number of threads at once; free it when none does.
 */
#ifndef RELAY_TLS_VERIFY_H
#define RELAY_TLS_VERIFY_H

#include <stddef.h>

#include <gnutls/gnutls.h>

#define TLS_VERIFY_MAX_CHAIN	16	/* certificates looked at in a chain */

enum tls_cert {
	TLS_CERT_OK = 0,	/* chain trusted, and a name matched if asked */
	TLS_CERT_NO_CERT,	/* the peer sent no certificate */
	TLS_CERT_BAD,		/* a certificate could not be decoded */
	TLS_CERT_UNTRUSTED,	/* the chain does not lead to a trust anchor */
	TLS_CERT_EXPIRED,	/* ... or a certificate is expired / not yet valid */
	TLS_CERT_NAME_MISMATCH,	/* trusted, but no reference name matched */
};

/* "ok", "no certificate", ... (static). */
const char *tls_cert_str(enum tls_cert r);

struct tls_trust;

/*
 * Trust anchors from ca_file (PEM, one or more CA certificates), or the
 * system trust store when ca_file is NULL. NULL with err filled when the
 * file cannot be read or holds no certificate, or the system store is
 * empty.
 */
struct tls_trust *tls_trust_new(const char *ca_file, char *err, size_t errsize);
void tls_trust_free(struct tls_trust **tp);

/*
 * Checks chain[0..n-1] (DER, as the peer sent it: its own certificate
 * first) for a TLS server: the chain against t, then, when nnames > 0,
 * the first certificate's names against names[0..nnames-1] (any match
 * will do). Only the first TLS_VERIFY_MAX_CHAIN certificates are used.
 * why (whysize > 0) gets a reason on failure ("" on success).
 */
enum tls_cert tls_verify_chain(const struct tls_trust *t,
    const gnutls_datum_t *chain, unsigned n, const char *const *names,
    size_t nnames, char *why, size_t whysize);

/*
 * The same with chain[anchor] (0 < anchor < n) as the only trust anchor
 * (DANE-TA, RFC 7672 3.1.2): the chain as sent (in any order, with extra
 * certificates: RFC 8446 4.4.2) must hold a valid path from chain[0] up
 * to it, and a name must match when nnames > 0.
 */
enum tls_cert tls_verify_chain_to(const gnutls_datum_t *chain, unsigned n,
    unsigned anchor, const char *const *names, size_t nnames, char *why,
    size_t whysize);

/* Do the server's names (chain[0]) match one of names? 1, 0, or -1 when
 * the certificate cannot be decoded. */
int tls_verify_names(const gnutls_datum_t *cert, const char *const *names,
    size_t nnames);

#endif
