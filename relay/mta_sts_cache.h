/*
 * mta_sts_cache: which MTA-STS policy applies to a domain now (RFC 8461
 * 3.3, 5.1, 10.2), from the durable cache (relay/tls_store.h, database
 * "sts") or a fresh fetch (relay/mta_sts_fetch.h).
 *
 * The rules, for mta_sts_cache_lookup(domain, now):
 *  - the _mta-sts TXT record is asked each time (through the resolver's
 *    TTL cache); a record that is absent, invalid, one of several, or a
 *    failed lookup changes nothing: an unexpired cached policy still
 *    applies, else there is no policy (3.3: a sender must not drop a
 *    valid policy because DNS is unreachable; 8.3: a domain removes its
 *    policy by publishing mode none);
 *  - a TXT id that differs from the cached one (or no cached policy)
 *    means a fetch; a cached policy with the same id is fetched again
 *    once it is older than MTA_STS_REFRESH_S, to extend its life (10.2:
 *    proactive refresh);
 *  - a fetched policy that parses replaces the cached one, durably, and
 *    lives max_age seconds from the fetch; one that does not parse, or a
 *    failed fetch, leaves the cached one in force if it has not expired,
 *    else there is no policy (5.1: an unfetchable policy is no policy);
 *    the failure is told (for TLS reports: RFC 8460 sts-policy-invalid,
 *    sts-webpki-invalid, sts-policy-fetch-error);
 *  - an expired cached policy is never used; a policy of mode none is a
 *    policy that asks nothing (the result says mode none);
 *  - a fetch that failed (or fetched no valid policy) for a domain and
 *    TXT id is not made again for MTA_STS_RETRY_S seconds when env has a
 *    table of failures: lookups meanwhile get the same failure without a
 *    fetch (fetch_tried 0), so a domain whose policy host is down costs
 *    one fetch timeout in that time, not one per delivery. A new id, a
 *    policy fetched, or the time passing ends it.
 * A cached record that does not decode is logged and ignored.
 *
 * Errors: a lookup always fills its result; nothing above warn level is
 * logged. Out of memory aborts.
 * Threads: any number of lookups at once (two for one domain may both
 * fetch; the later write wins, both policies being the domain's).
 */
#ifndef RELAY_MTA_STS_CACHE_H
#define RELAY_MTA_STS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"
#include "relay/mta_sts.h"
#include "relay/mta_sts_fetch.h"
#include "relay/tls_store.h"

#define MTA_STS_REFRESH_S	86400	/* refetch an unchanged policy daily */
#define MTA_STS_TXT_MAX		16	/* TXT records at _mta-sts looked at */
#define MTA_STS_RETRY_S		300	/* a failed fetch: the next one */
#define MTA_STS_FAILED_MAX	256	/* domains remembered (one slot each,
					 * by hash: a collision forgets one) */

/* Why a lookup has no fresh policy (RFC 8460 result types in brackets). */
enum mta_sts_failure {
	MTA_STS_FAIL_NONE = 0,
	MTA_STS_FAIL_FETCH,	/* fetch failed [sts-policy-fetch-error] */
	MTA_STS_FAIL_WEBPKI,	/* policy host certificate [sts-webpki-invalid] */
	MTA_STS_FAIL_INVALID,	/* fetched, did not parse [sts-policy-invalid] */
};

/* Failed fetches remembered (above); any number of threads at once. */
struct mta_sts_failed;

struct mta_sts_failed *mta_sts_failed_new(void);
void mta_sts_failed_free(struct mta_sts_failed **fp);

/* What the cache needs to do its work; all borrowed. */
struct mta_sts_env {
	struct dns_resolver *resolver;	/* the TXT record, the policy host */
	struct tls_store *store;	/* NULL: no cache, fetch every time */
	struct mta_sts_fetch_opts fetch;
	int no_fetch;			/* the cache alone, never a fetch
					 * (mailctl tls: what is known now) */
	struct mta_sts_failed *failed;	/* NULL: every lookup may fetch */
};

struct mta_sts_state {
	int have;			/* a policy applies (any mode) */
	struct mta_sts_policy policy;
	char id[MTA_STS_ID_MAX + 1];
	int64_t fetched, expires;	/* Unix times of the policy in force */
	int from_cache;			/* the policy in force came from the cache */
	int fetch_tried;		/* a fetch ran in this lookup */
	enum mta_sts_failure failure;	/* of that fetch */
	char detail[300];		/* what happened, for logs */
	char *text;			/* the policy in force as fetched (owned) */
};

/* Fills *out for domain at Unix time now (see above). */
void mta_sts_cache_lookup(const struct mta_sts_env *env, const char *domain,
    int64_t now, struct mta_sts_state *out);

/* Frees out->text; the state may be reused. */
void mta_sts_state_clear(struct mta_sts_state *st);

/* "sts-policy-fetch-error", ... or NULL for MTA_STS_FAIL_NONE. */
const char *mta_sts_failure_result_type(enum mta_sts_failure f);

/*
 * The cached record of domain, as stored (for mailctl tls, tests): 0 with
 * *out filled (text owned by out), 1 none, -1 undecodable or unreadable.
 */
int mta_sts_cache_get(struct tls_store *s, const char *domain,
    struct mta_sts_state *out);

#endif
