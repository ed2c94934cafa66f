/*
 * dkim_internal: the parts of auth/dkim shared between its files and
 * exported for unit tests and fuzz targets: canonicalization (RFC 6376
 * 3.4), the DKIM-Signature and key record parsers (3.5, 3.6.1) and the
 * header hash input (3.7, 5.4.2).
 *
 * Errors: parsers return a status and a reason; nothing aborts on input.
 * Threads: reentrant.
 */
#ifndef AUTH_DKIM_INTERNAL_H
#define AUTH_DKIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "auth/dkim.h"
#include "lib/buf.h"

#define DKIM_MAX_HNAMES		64	/* names in h= */
#define DKIM_MAX_SIG_BYTES	1024	/* b= decoded: RSA up to 8192 bits */
#define DKIM_MAX_KEY_BYTES	4096	/* p= decoded */
#define DKIM_HEADER_DEFAULT	(256 * 1024)
#define DKIM_MAX_FIELD		(64 * 1024)	/* one DKIM-Signature field */

struct dkim_hname {
	const char *name;	/* into the signature's text */
	size_t len;
};

struct dkim_sig {
	enum dkim_alg alg;
	enum dkim_canon hcanon, bcanon;
	char domain[254];	/* lower case */
	char selector[254];
	char auid[320];
	uint8_t bh[64];
	size_t bhlen;
	uint8_t b[DKIM_MAX_SIG_BYTES];
	size_t blen;
	char b_prefix[16];
	size_t nh;
	struct dkim_hname h[DKIM_MAX_HNAMES];
	int64_t l, t, x;	/* -1 when absent */
	size_t b_off, b_len;	/* the raw b= value inside the value text */
};

/*
 * Parses the value of a DKIM-Signature field (the text after ':'),
 * checking what RFC 6376 6.1.1 asks. Returns DKIM_ST_OK, or a
 * DKIM_ST_SIG_* status with the reason in why. sig->h points into value.
 */
enum dkim_status dkim_sig_parse(const char *value, size_t len,
    struct dkim_sig *sig, char *why, size_t whysize);

enum dkim_keytype {
	DKIM_KEY_RSA,
	DKIM_KEY_ED25519,
};

struct dkim_keyrec {
	enum dkim_keytype type;
	int revoked;		/* p= empty */
	int testing;		/* t=y */
	int strict;		/* t=s */
	uint8_t p[DKIM_MAX_KEY_BYTES];
	size_t plen;
};

/*
 * Parses a key record (3.6.1) for a signature of algorithm alg. Returns
 * DKIM_ST_OK, DKIM_ST_KEY_SYNTAX, DKIM_ST_KEY_REVOKED or DKIM_ST_KEY_ALG
 * (k= not the algorithm's, h= without sha256, s= without email).
 */
enum dkim_status dkim_keyrec_parse(const char *txt, size_t len,
    enum dkim_alg alg, struct dkim_keyrec *k, char *why, size_t whysize);

/* Appends one header field (raw, folded, with or without its final CRLF)
 * canonicalized to out, ending in CRLF when crlf. 0, or -1 when out is
 * full. */
int dkim_canon_header(enum dkim_canon c, const char *field, size_t len,
    int crlf, struct buf *out);

/*
 * Appends the header hash input of RFC 6376 3.7 to out: the fields named
 * in names[0..n) chosen from the bottom of hdrs up (5.4.2; a name with no
 * instance left adds nothing), then sigfield (the DKIM-Signature field
 * with its b= value removed, no final CRLF), all canonicalized with c.
 * skip (may be NULL) is a field of hdrs never chosen: the signature being
 * verified. Returns 0 or -1 (out full).
 */
int dkim_header_input(const char *hdrs, size_t hlen, enum dkim_canon c,
    const struct dkim_hname *names, size_t n, const char *skip,
    const char *sigfield, size_t siglen, struct buf *out);

/* Standard base64 of s (len bytes, FWS already removed) into out;
 * returns the length or -1 (bad text, too long). */
long dkim_base64_decode(const char *s, size_t len, uint8_t *out,
    size_t outsize);

/* Appends the base64 of p[0..n) to out; 0 or -1. */
int dkim_base64_encode(const uint8_t *p, size_t n, struct buf *out);

/*
 * Signs the header hash input data[0..n) with key (rsa-sha256: RSASSA
 * PKCS#1 v1.5 over SHA-256 of data; ed25519-sha256: Ed25519 over the
 * SHA-256 of data, RFC 8463 3) and appends the base64 signature to out.
 * 0 or -1.
 */
int dkim_key_sign(struct dkim_key *key, const void *data, size_t n,
    struct buf *out);

/*
 * Verifies sig over data with the key of record k for algorithm alg.
 * Returns DKIM_ST_OK, DKIM_ST_SIGNATURE (it does not verify),
 * DKIM_ST_KEY_SYNTAX (p= is not a key), DKIM_ST_KEY_SIZE or
 * DKIM_ST_KEY_LIMIT (RSA over 8192 bits or with an exponent over 64
 * bits: not tried).
 */
enum dkim_status dkim_keyrec_verify(const struct dkim_keyrec *k,
    enum dkim_alg alg, const void *data, size_t n, const uint8_t *sig,
    size_t siglen);

/* 1 when s (n bytes) is a valid domain or selector: dot-separated labels
 * of letters, digits, '-' and '_' (RFC 6376 3.5 sub-domain). */
int dkim_name_ok(const char *s, size_t n);

#endif
