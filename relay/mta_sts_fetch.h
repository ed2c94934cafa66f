/*
 * mta_sts_fetch: fetches a domain's MTA-STS policy file (RFC 8461 3.3),
 * https://mta-sts.<domain>/.well-known/mta-sts.txt, with libcurl (its
 * GnuTLS flavour).
 *
 * What a fetch does and allows:
 *  - the policy host's addresses come from our resolver (dns/, so from
 *    dns_server) and are handed to libcurl with CURLOPT_RESOLVE; libcurl
 *    is never allowed a lookup of its own (a resolver start is refused),
 *    nor a proxy (environment variables are ignored);
 *  - HTTPS only, TLS 1.2 or later, the certificate verified against the
 *    system trust store or ca_file and the name mta-sts.<domain>;
 *  - no redirects (3.3: 3xx is a failure), status 200 only, media type
 *    text/plain, at most max_size bytes, the whole fetch bounded by
 *    timeout_ms; no compression, cookies or .netrc.
 * The body is returned as fetched; parsing is mta_sts_policy_parse's.
 *
 * Errors: an enum mta_sts_fetch_status and a reason; nothing is logged
 * above debug. Out of memory aborts.
 * Threads: mta_sts_fetch_global_init once on the main thread before any
 * other thread starts (libcurl's global init); then fetches run on any
 * number of threads at once, each with its own libcurl handle.
 */
#ifndef RELAY_MTA_STS_FETCH_H
#define RELAY_MTA_STS_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"
#include "lib/buf.h"

enum mta_sts_fetch_status {
	MTA_STS_FETCH_OK = 0,
	MTA_STS_FETCH_DNS,	/* mta-sts.<domain> has no address */
	MTA_STS_FETCH_TLS,	/* the HTTPS certificate failed verification
				 * (RFC 8460 sts-webpki-invalid) */
	MTA_STS_FETCH_HTTP,	/* connect, TLS handshake, status, type, size,
				 * time (RFC 8460 sts-policy-fetch-error) */
};

struct mta_sts_fetch_opts {
	const char *ca_file;	/* NULL: the system trust store */
	uint16_t port;		/* 0: 443 (another port is for tests) */
	unsigned timeout_ms;	/* whole fetch; 0: 30000 */
	size_t max_size;	/* 0: MTA_STS_POLICY_MAX */
};

/* libcurl's global init; 0, or -1 when libcurl cannot start. */
int mta_sts_fetch_global_init(void);

/* "ok", "no address", ... (static). */
const char *mta_sts_fetch_status_str(enum mta_sts_fetch_status st);

/*
 * Fetches the policy of domain (a valid domain name) into body (reset
 * first; its max must be at least max_size). why (whysize > 0) gets the
 * reason of a failure.
 */
enum mta_sts_fetch_status mta_sts_fetch(struct dns_resolver *r,
    const char *domain, const struct mta_sts_fetch_opts *o, struct buf *body,
    char *why, size_t whysize);

#endif
