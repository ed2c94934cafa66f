/*
 * tls_policy: what protects each outbound connection, and whether a
 * finished TLS handshake meets it. This is the one interface the SMTP
 * client (relay/relay.c) needs for verified outbound TLS: it ties
 * together the tls_policy map (relay/tls_policy_map.h), DANE (RFC 7672:
 * dns/ DNSSEC-aware lookups, relay/tls_dane.h), MTA-STS (RFC 8461:
 * relay/mta_sts_cache.h), PKIX verification (relay/tls_verify.h) and TLS
 * reporting (RFC 8460: relay/tls_report.h).
 *
 * Where the client calls it, per delivery to a destination domain:
 *  1. after dns_mx_lookup gave the MX hosts (DNS_OK), before the first
 *     connection: tls_policy_destination(ctx, domain, mx, now, &dp). One
 *     struct tls_host_policy per MX host, in the order of mx->hosts[]
 *     (for an implicit MX, the domain itself). If dp->defer is set,
 *     nothing may be sent to any host: defer every recipient with
 *     dp->defer_reason (4.7.5). Hosts with skip set are not connected to
 *     (record skip_rpt with tls_policy_report). If every host is skipped,
 *     defer (4.7.5). Addresses and their order stay dns_mx_lookup's.
 *     When dp->sts.failure is set (the domain's MTA-STS policy could not
 *     be fetched), record its result type once
 *     (mta_sts_failure_result_type) for host 0.
 *  2. on each connection to host i, after EHLO: hp->level says what to do
 *     with STARTTLS: TLS_LEVEL_NONE never; TLS_LEVEL_MAY if offered;
 *     otherwise (hp->tls_required) STARTTLS must be offered and succeed,
 *     else QUIT, record TLS_RPT_STARTTLS_NOT_SUPPORTED (or a handshake
 *     failure as TLS_RPT_VALIDATION_FAILURE) and try the next host;
 *     nothing of the message goes out in plaintext. SNI: hp->sni, or
 *     hp->host when it is empty.
 *  3. right after the handshake, before EHLO is sent again:
 *     tls_policy_check_session(ctx, hp, session, &chk). chk.ok == 0:
 *     QUIT and try the next host (defer when none is left, 4.7.5); the
 *     log says chk.reason. Either way log the connection with
 *     tls_check_describe ("Verified TLS connection established to ...")
 *     and record chk.rpt with tls_policy_report.
 *  4. REQUIRETLS (RFC 8689) messages may only go over a session whose
 *     chk.verdict is TLS_VERDICT_VERIFIED (DANE, MTA-STS enforce, or
 *     verify).
 *
 * The levels (enum tls_level, per destination from the map or the
 * default tls_outbound):
 *  - none, may, encrypt: as before; the verdict (Trusted/Untrusted/
 *    Anonymous) is computed and logged but never blocks;
 *  - verify: TLS required; the chain must verify against the trust
 *    anchors (system store or ca_file) and the certificate must match a
 *    match= name of the map entry, or the MX host name (which counts for
 *    REQUIRETLS only when the MX RRset is DNSSEC-secure);
 *  - dane: per host, DANE when the MX RRset is DNSSEC-secure, the host's
 *    address records are secure (or it is a secure alias) and it has a
 *    secure TLSA RRset; a secure TLSA RRset without a usable record means
 *    TLS without authentication. A bogus MX RRset defers the whole
 *    destination; a bogus address or TLSA answer skips that host (never
 *    a plaintext fallback). Hosts without DANE use the domain's MTA-STS
 *    policy when it has one: enforce skips hosts that match no mx
 *    pattern and requires TLS verified against the trust anchors (system
 *    store or ca_file) and the MX host name; testing checks and reports
 *    the same but never blocks;
 *    without a policy they get may;
 *  - dane-only: as dane, but a host without DANE authentication is
 *    skipped (insecure, no TLSA records, or none usable).
 *
 * Errors: tls_policy_destination and tls_policy_check_session always
 * fill their results; reasons are texts for logs and DSNs. Nothing is
 * logged above debug level except store trouble (warn).
 * Threads: a context is immutable after tls_policy_ctx_new; any number
 * of threads may use it at once. Results belong to the caller. What the
 * config points at (map, resolver, store) must outlive the context.
 */
#ifndef RELAY_TLS_POLICY_H
#define RELAY_TLS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#include "dns/dns.h"
#include "lib/buf.h"
#include "relay/mta_sts_cache.h"
#include "relay/tls_policy_map.h"
#include "relay/tls_report.h"

#define TLS_POLICY_NAMES_MAX	TLS_POLICY_MATCH_MAX

struct tls_policy_config {
	enum tls_level level;		/* tls_outbound: the default level */
	const struct tls_policy_map *map;	/* per-domain levels; NULL: none */
	const char *ca_file;		/* verify's trust anchors; NULL: system */
	uint16_t smtp_port;		/* the port in TLSA names; 0: 25 */
	struct dns_resolver *resolver;	/* every lookup, with its DNSSEC state
					 * (required) */
	struct tls_store *store;	/* MTA-STS cache, reports; NULL: neither */
	struct mta_sts_fetch_opts sts_fetch;	/* its ca_file: NULL, system */
	int no_mta_sts;			/* 1: the dane level ignores MTA-STS */
	int sts_no_fetch;		/* 1: MTA-STS from the cache alone */
};

/* How a host's server is authenticated. */
enum tls_auth {
	TLS_AUTH_NONE = 0,	/* not at all (none, may, encrypt) */
	TLS_AUTH_DANE,		/* TLSA records (tlsa, names) */
	TLS_AUTH_STS,		/* MTA-STS: WebPKI and the MX host name */
	TLS_AUTH_VERIFY,	/* the verify level: trust anchors and names */
};

struct tls_host_policy {
	char host[DNS_NAME_MAX];	/* the MX host name */
	enum tls_level level;		/* NONE, MAY, ENCRYPT, VERIFY or DANE */
	int tls_required;		/* no TLS, no mail for this host */
	enum tls_auth auth;		/* what the session must prove */
	int sts_testing;		/* MTA-STS testing: check, report, never block */
	int sts_mismatch;		/* testing: the host matches no mx pattern */
	int name_validated;		/* the host name is no attacker's choice: a
					 * DNSSEC-secure MX RRset, an MTA-STS
					 * pattern, or configured (match= names,
					 * a fixed next hop); RFC 8689 4.2.1 */
	const char *via;		/* for logs: "dane", "mta-sts", "verify",
					 * "encrypt", "may", "none" (static) */
	int skip;			/* do not connect (skip_reason, skip_rpt) */
	char skip_reason[300];
	enum tls_rpt_result skip_rpt;
	enum dns_sec_state addr_state;	/* dane levels: the host's address records */
	struct dns_tlsa_result *tlsa;	/* TLS_AUTH_DANE or unusable TLSA; owned */
	char sni[DNS_NAME_MAX];		/* the SNI name when not host: with TLSA
					 * records, their base domain (RFC 7672
					 * 8.1; an alias's target); "" otherwise */
	size_t nnames;			/* reference identifiers for name checks */
	char names[TLS_POLICY_NAMES_MAX][DNS_NAME_MAX + 1];
	/* What RFC 8460 reports judge this host's sessions by. */
	enum tls_rpt_policy_type rpt_type;
	char *rpt_strings;		/* owned; NULL: none */
	char *rpt_mx;			/* owned; NULL: none */
};

struct tls_dest_policy {
	char domain[DNS_NAME_MAX];
	enum tls_level configured;	/* from the map or the default */
	int fixed;			/* a fixed next hop (route, relayhost):
					 * no MX, no MTA-STS */
	int relaxed;			/* tls_dest_policy_relax was applied */
	enum dns_sec_state mx_state;	/* dane levels: the MX RRset */
	int sts_looked_up;
	struct mta_sts_state sts;	/* when looked up */
	int defer;			/* nothing may be sent: defer_reason */
	char defer_reason[300];
	enum tls_rpt_result defer_rpt;
	size_t nhosts;
	struct tls_host_policy hosts[DNS_MAX_MX_HOSTS];
};

struct tls_policy_ctx;

/*
 * A context for cfg (copied; what it points at is borrowed), made on the
 * main thread after mta_sts_fetch_global_init (libcurl). NULL with
 * err filled when ca_file cannot be read or GnuTLS's DANE state cannot be
 * made. A missing system trust store is not an error (verify and MTA-STS
 * checks then fail, logged once here at warn).
 */
struct tls_policy_ctx *tls_policy_ctx_new(const struct tls_policy_config *cfg,
    char *err, size_t errsize);
void tls_policy_ctx_free(struct tls_policy_ctx **cp);

/* The level configured for domain (map entry or default), and the map
 * entry if any (may be NULL). */
enum tls_level tls_policy_level(const struct tls_policy_ctx *ctx,
    const char *domain, const struct tls_policy_entry **entry_r);

/*
 * The policy for each MX host of domain, whose dns_mx_lookup result is mx
 * (status DNS_OK). now is the Unix time (MTA-STS cache). *dp_r is always
 * set; free it with tls_dest_policy_free.
 */
void tls_policy_destination(struct tls_policy_ctx *ctx, const char *domain,
    const struct dns_mx_result *mx, int64_t now, struct tls_dest_policy **dp_r);

/*
 * The same for a fixed next hop of domain (a route or the relayhost):
 * host is its name or its IP literal (without brackets); one host
 * policy. The level is domain's (the default for an address literal
 * domain "[...]", whose results are not reported: it is no policy
 * domain). dane and dane-only use the TLSA records
 * of a host name whose address records are DNSSEC-secure (RFC 7672 2.2.2;
 * a configured name counts as securely obtained; the host is the next-hop
 * domain, so DANE-TA names are its own, not domain); without them dane is
 * may, dane-only skips the host. MTA-STS does not apply (no MX). verify
 * checks the match= names, else the host name.
 */
void tls_policy_fixed(struct tls_policy_ctx *ctx, const char *domain,
    const char *host, int64_t now, struct tls_dest_policy **dp_r);

/* A destination policy without a context (a relay client with
 * tls_outbound alone): each of hosts[0..n-1] at level, which must be
 * none, may or encrypt. */
void tls_dest_policy_plain(const char *domain, const char *const *hosts,
    size_t n, enum tls_level level, struct tls_dest_policy **dp_r);

/* RFC 8689 5 (`TLS-Required: No`): every host that is not skipped for a
 * DNSSEC failure gets may, without authentication; a destination that
 * must be deferred stays deferred (its DNS cannot be relied on). Sets
 * dp->relaxed. */
void tls_dest_policy_relax(struct tls_dest_policy *dp);

/* Can sessions to hp be authenticated (DANE, MTA-STS enforce, verify)
 * against a name that was validated (name_validated): what a REQUIRETLS
 * message needs (RFC 8689 4.2.1)? verify toward an MX host from an
 * insecure MX RRset checks a name an attacker may have chosen: no. */
int tls_host_policy_authenticates(const struct tls_host_policy *hp);

void tls_dest_policy_free(struct tls_dest_policy **dpp);

/*
 * A digest (SHA-256) of what a session to hp is judged by: level,
 * authentication, whether TLS is required, MTA-STS testing, whether the
 * name was validated, the reference names and the TLSA records. Two host policies with the same digest
 * accept the same sessions, so an idle connection judged under one may
 * serve the other (relay.c); reports and logs are not part of it.
 */
#define TLS_HOST_POLICY_DIGEST_LEN	32
void tls_host_policy_digest(const struct tls_host_policy *hp,
    uint8_t out[TLS_HOST_POLICY_DIGEST_LEN]);

/* What a session is worth, in Postfix's words. */
enum tls_verdict {
	TLS_VERDICT_ANONYMOUS = 0,	/* no certificate */
	TLS_VERDICT_UNTRUSTED,		/* a certificate, not verified */
	TLS_VERDICT_TRUSTED,		/* the chain verified, the name did not */
	TLS_VERDICT_VERIFIED,		/* authenticated: DANE, or chain and name */
};

/* "Anonymous", "Untrusted", "Trusted", "Verified" (static). */
const char *tls_verdict_str(enum tls_verdict v);

struct tls_check {
	enum tls_verdict verdict;
	int ok;				/* the host's policy is met: go on */
	enum tls_rpt_result rpt;	/* success, or the RFC 8460 failure */
	const char *via;		/* the host policy's via */
	char reason[300];		/* why not ok, or how it was verified */
	char desc[160];			/* "TLSv1.3 with cipher ... (256/256 bits)" */
};

/*
 * Judges session s (a finished client handshake) by host policy hp:
 * fills *out. With TLS_AUTH_DANE the peer's chain must match hp->tlsa
 * (and hp->names for DANE-TA); with TLS_AUTH_STS and TLS_AUTH_VERIFY it
 * must verify against the trust anchors and match hp->names; sts_testing
 * checks the same way but leaves ok set. Otherwise ok is set and the
 * verdict only describes the session. ctx may be NULL for a host policy
 * of tls_dest_policy_plain (the verdict is then Untrusted or Anonymous).
 */
void tls_policy_check_session(const struct tls_policy_ctx *ctx,
    const struct tls_host_policy *hp, gnutls_session_t s, struct tls_check *out);

/* The same on a certificate chain (DER, server first) instead of a live
 * session, for tests and tools; desc is left empty. */
void tls_policy_check_chain(const struct tls_policy_ctx *ctx,
    const struct tls_host_policy *hp, const gnutls_datum_t *chain, unsigned n,
    struct tls_check *out);

/* "Verified TLS connection established to HOST[ADDR]:PORT: DESC (via)"
 * into out. */

/* The RFC 8460 result type of a failed MTA-STS policy lookup. */
enum tls_rpt_result tls_policy_sts_failure_rpt(enum mta_sts_failure f);
void tls_check_describe(const struct tls_check *c, const char *host,
    const char *addr, uint16_t port, char *out, size_t outsize);

/* Records one session result of host i of dp (RFC 8460), with the
 * receiving and sending addresses when known (NULL otherwise). i ==
 * dp->nhosts: a result of the destination as a whole. Nothing without a
 * context or a store. */
void tls_policy_report(const struct tls_policy_ctx *ctx,
    const struct tls_dest_policy *dp, size_t i, const char *receiving_ip,
    const char *sending_ip, enum tls_rpt_result r, int64_t now);

/* What applies to the destination, as text lines (for `mailctl tls` and
 * logs): level, MX DNSSEC status, per host the level, TLSA records and
 * names, the MTA-STS policy in force. Appends to out. */
void tls_dest_policy_describe(const struct tls_dest_policy *dp, struct buf *out);

#endif
