/*
 * dkim: DomainKeys Identified Mail, RFC 6376 with RFC 8301 (no SHA-1, RSA
 * of 1024 bits or more) and RFC 8463 (ed25519-sha256).
 *
 *  - Keys: private keys from PEM files (RSA of 2048 bits or more, or
 *    Ed25519), checked by a signature made and verified at load; the TXT
 *    record that publishes a key; new keys (dkim_keygen).
 *  - Signing: relaxed/relaxed, the header fields that matter signed and
 *    From, To, Subject, Date and Message-ID oversigned (listed once more
 *    than they occur, so none can be added), rsa-sha256 and
 *    ed25519-sha256, several keys at once (dual signing, RFC 8463 5).
 *  - Verifying: every DKIM-Signature up to a limit, keys from DNS (TXT at
 *    SELECTOR._domainkey.DOMAIN; RSA of 1024 to 8192 bits with an
 *    exponent of 64 bits at most), t= and x=, l= (only that many body
 *    octets are signed; what follows is noted in the result), h= must
 *    list From.
 *
 * Messages stream in: the signer and the verifier take the message in
 * chunks of any size (dkim_*_update); the header section is kept, up to
 * a bound, and the body only flows through the body hashes (init /
 * update / final, also usable alone: dkim_bodyhash_*). Bare LF is taken
 * as CRLF.
 *
 * Cryptography is GnuTLS's (gnutls_privkey_sign_data2,
 * gnutls_pubkey_verify_data2); canonicalization and tag parsing are ours.
 *
 * Errors: functions that can fail return -1 with a message in err; a
 * verification never fails as a call, each signature has a result.
 * Threads: a struct dkim_key may be shared by any number of signers on any
 * threads (its GnuTLS key is used under a mutex); a signer or verifier
 * belongs to one thread at a time. dkim_verifier_finish blocks on DNS:
 * call it from a pool thread, never from a session event loop.
 */
#ifndef AUTH_DKIM_H
#define AUTH_DKIM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "auth/auth_dns.h"
#include "lib/buf.h"

enum dkim_alg {
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_ED25519_SHA256,
};

enum dkim_canon {
	DKIM_CANON_SIMPLE,
	DKIM_CANON_RELAXED,
};

/* ---- body hashes: canonicalize and hash a body streaming in ---- */

struct dkim_bodyhash;

/* A SHA-256 body hash with canon; limit is the l= count (-1: all). */
struct dkim_bodyhash *dkim_bodyhash_new(enum dkim_canon canon, int64_t limit);

/* Feeds n body bytes (any chunking gives the same hash). */
void dkim_bodyhash_update(struct dkim_bodyhash *h, const void *p, size_t n);

/* Ends the body: out gets the 32-byte hash, *canon_len (may be NULL) the
 * length of the whole canonicalized body. Call once. */
void dkim_bodyhash_final(struct dkim_bodyhash *h, uint8_t out[32],
    uint64_t *canon_len);

void dkim_bodyhash_free(struct dkim_bodyhash **hp);

/* ---- keys ---- */

struct dkim_key;

/*
 * Loads the private key in the PEM file path (PKCS#8 or PKCS#1) to sign
 * for domain with selector. Refuses RSA under 2048 bits, other key types,
 * a bad domain or selector, and a key that fails a sign-and-verify check.
 * Returns 0 with *key_r, or -1 with err (errsize > 0).
 */
int dkim_key_load(const char *path, const char *domain, const char *selector,
    struct dkim_key **key_r, char *err, size_t errsize);

void dkim_key_free(struct dkim_key **keyp);

enum dkim_alg dkim_key_alg(const struct dkim_key *key);
const char *dkim_key_domain(const struct dkim_key *key);
const char *dkim_key_selector(const struct dkim_key *key);

/* The TXT record that publishes the key ("v=DKIM1; k=rsa; p=...") into
 * out (cleared first). Returns 0 or -1. */
int dkim_key_txt_record(const struct dkim_key *key, struct buf *out);

/*
 * Makes a new key (RSA 2048 bits, or Ed25519) and writes it as PKCS#8 PEM
 * to path, created with mode 0600 (an existing file is refused) and
 * fsynced. txt gets the TXT record to publish (cleared first). Returns 0
 * or -1 with err.
 */
int dkim_keygen(enum dkim_alg alg, const char *path, struct buf *txt,
    char *err, size_t errsize);

/* ---- signing ---- */

struct dkim_sign_opts {
	time_t now;		/* t=; 0 means time(NULL) */
	unsigned expire_s;	/* x= = t= + expire_s; 0: no x= */
	size_t max_header_bytes;	/* header section bound [256 KiB] */
};

struct dkim_signer;

/* A signer for one message; opts may be NULL. */
struct dkim_signer *dkim_signer_new(const struct dkim_sign_opts *opts);

/* Feeds n bytes of the message (header section, empty line, body). */
void dkim_signer_update(struct dkim_signer *s, const void *p, size_t n);

/* The header section kept so far (CRLF line ends): once the body has
 * begun, the place to find the From domain that picks the keys
 * (auth_header_from_domain). Valid until the signer is freed. */
const char *dkim_signer_headers(const struct dkim_signer *s, size_t *len);

/* Adds header fields (whole fields, each ending in CRLF) at the end of
 * the header section, as if the message had them there: the Date and
 * Message-ID a submission server adds (RFC 6409 8). Before
 * dkim_signer_finish; any time after the header section began. */
void dkim_signer_add_fields(struct dkim_signer *s, const char *fields,
    size_t n);

/*
 * Ends the message and appends to out the DKIM-Signature header fields
 * to put in front of it (folded, CRLF line ends), one per key (1..4 keys,
 * not owned) in the order given. Returns 0, or -1 with err (no From
 * field, the header section too large, a bad key count, a signing
 * failure). Call once.
 */
int dkim_signer_finish(struct dkim_signer *s, struct dkim_key *const *keys,
    size_t nkeys, struct buf *out, char *err, size_t errsize);

void dkim_signer_free(struct dkim_signer **sp);

/* ---- verifying ---- */

/* RFC 8601 2.7.1 results. */
enum dkim_result {
	DKIM_NONE = 0,
	DKIM_PASS,
	DKIM_FAIL,
	DKIM_POLICY,
	DKIM_NEUTRAL,
	DKIM_TEMPERROR,
	DKIM_PERMERROR,
};

/* Why, in the words of RFC 6376 6.1 (PERMFAIL/TEMPFAIL reasons). */
enum dkim_status {
	DKIM_ST_OK = 0,
	DKIM_ST_SIG_SYNTAX,		/* signature syntax error */
	DKIM_ST_SIG_VERSION,		/* incompatible version */
	DKIM_ST_SIG_ALG,		/* unsupported algorithm (rsa-sha1 too) */
	DKIM_ST_SIG_FROM,		/* From field not signed */
	DKIM_ST_SIG_DOMAIN,		/* i= domain not within d= */
	DKIM_ST_SIG_EXPIRED,		/* signature expired (x=) */
	DKIM_ST_SIG_FUTURE,		/* t= in the future */
	DKIM_ST_SIG_LENGTH,		/* l= longer than the body */
	DKIM_ST_KEY_UNAVAILABLE,	/* TEMPFAIL (key unavailable) */
	DKIM_ST_KEY_NONE,		/* no key for signature */
	DKIM_ST_KEY_SYNTAX,		/* key syntax error */
	DKIM_ST_KEY_REVOKED,		/* key revoked (p= empty) */
	DKIM_ST_KEY_ALG,		/* inappropriate key algorithm, hash,
					 * service, or t=s with another i= */
	DKIM_ST_KEY_SIZE,		/* RSA under 1024 bits (RFC 8301) */
	DKIM_ST_BODY_HASH,		/* body hash did not verify */
	DKIM_ST_SIGNATURE,		/* signature did not verify */
	DKIM_ST_PARTIAL,		/* l= left content unsigned and the
					 * options refuse that */
	DKIM_ST_HEADERS_TOO_LARGE,	/* the header section was cut */
	DKIM_ST_KEY_LIMIT,		/* RSA over 8192 bits or with an
					 * exponent over 64 bits: refused
					 * unverified (the cost is the
					 * sender's to choose) */
};

struct dkim_verify_opts {
	time_t now;		/* 0 means time(NULL) */
	unsigned max_signatures;	/* verified, at most 16; the rest are
					 * ignored [8] */
	unsigned clock_skew;	/* t= may be this far ahead, s [300] */
	int refuse_partial;	/* l= with unsigned content: policy [0] */
	size_t max_header_bytes;	/* [256 KiB] */
	unsigned time_limit_ms;	/* the key lookups of one message: a
				 * signature whose turn comes later gets
				 * temperror [20000] */
};

struct dkim_sig_result {
	enum dkim_result result;
	enum dkim_status status;
	enum dkim_alg alg;
	char domain[256];	/* d= (header.d), lower case */
	char selector[128];	/* s= (header.s) */
	char auid[320];		/* i= (header.i), or "@" d= */
	char b_prefix[16];	/* the first 12 characters of b= (header.b) */
	int testing;		/* the key has t=y */
	int64_t length;		/* l=, or -1 */
	uint64_t body_length;	/* canonicalized body octets */
	char reason[160];	/* text for the result's comment */
};

#define DKIM_MAX_RESULTS 16

struct dkim_results {
	size_t n;		/* signatures verified (<= max_signatures) */
	size_t ignored;		/* DKIM-Signature fields past the limit */
	struct dkim_sig_result sig[DKIM_MAX_RESULTS];
};

struct dkim_verifier;

/* opts may be NULL (defaults). */
struct dkim_verifier *dkim_verifier_new(const struct dkim_verify_opts *opts);

/* Feeds n bytes of the message as received. */
void dkim_verifier_update(struct dkim_verifier *v, const void *p, size_t n);

/*
 * Ends the message, looks the keys up through dns and verifies each
 * signature into *res (res->n == 0: the message carries none, DKIM
 * result "none"). Call once; blocks on DNS, each lookup as long as dns
 * allows, no new one begun past time_limit_ms.
 */
void dkim_verifier_finish(struct dkim_verifier *v, const struct auth_dns *dns,
    struct dkim_results *res);

/* The header section as kept (CRLF line ends), for DMARC's From domain
 * and Authentication-Results handling; valid until the verifier is freed. */
const char *dkim_verifier_headers(const struct dkim_verifier *v, size_t *len);

void dkim_verifier_free(struct dkim_verifier **vp);

/* "none", "pass", "fail", "policy", "neutral", "temperror", "permerror". */
const char *dkim_result_name(enum dkim_result r);

/* The RFC 6376 text of a status: "body hash did not verify", ... */
const char *dkim_status_text(enum dkim_status s);

/* "rsa-sha256" or "ed25519-sha256". */
const char *dkim_alg_name(enum dkim_alg a);

#endif
