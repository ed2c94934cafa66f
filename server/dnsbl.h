/*
 * dnsbl: DNS blocklist checks of a connecting client (`dnsbl =
 * zone[=weight]...`, `dnsbl_threshold`), as postscreen does them.
 *
 * For client 192.0.2.1 and zone zen.example the name asked is
 * 1.2.0.192.zen.example; for an IPv6 client the 32 nibbles of its address
 * in reverse (RFC 5782). A v4-mapped IPv6 client is asked as IPv4. Each
 * zone is asked through the daemon's resolver (dns/dns.h, so the
 * configured dns_server and its TTL cache) with dns_addr_lookup:
 *  - an A record in 127.0.0.0/8 is a listing (the last octet is the
 *    list's return code, e.g. 127.0.0.2), except 127.0.0.1 and
 *    127.255.255.0/24, which lists use to refuse a query (a public
 *    resolver, too many queries): those count as DNSBL_ERROR_CODE;
 *    answers outside 127/8 count as errors too, never as listings;
 *  - NXDOMAIN or no address: not listed;
 *  - a temporary failure: DNSBL_TEMP (not listed, and not cached).
 * The score is the sum of the weights (default 1; negative weights make a
 * zone an allowlist) of the zones that list the client, and the client is
 * refused (554 5.7.1, dnsbl_reply) when the score reaches the threshold.
 * Verdicts without a temporary failure are cached per client address for
 * cache_ttl seconds in a bounded table (server/addrtable.h), so a client
 * that connects often costs one round of lookups per TTL.
 *
 * Whom not to check (relay_networks, loopback, authenticated users) is
 * the caller's decision.
 *
 * Blocking: dnsbl_check waits for the DNS, up to the number of zones
 * times the resolver's total_timeout_ms on a cold cache. Call it on a
 * pool thread, never on a session worker's event loop.
 *
 * Errors: the parsers return -1 with a message; dnsbl_check never fails
 * (an unanswered list is DNSBL_TEMP). Out of memory aborts.
 * Threads: dnsbl_check and the text functions may run on any number of
 * threads at once on one struct dnsbl; dnsbl_new and dnsbl_free on one
 * thread while no check runs (a reload makes a new one).
 */
#ifndef SERVER_DNSBL_H
#define SERVER_DNSBL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/dns.h"

#define DNSBL_MAX_ZONES		32
#define DNSBL_ZONE_MAX		188	/* characters: 253 minus an IPv6 query's 65 */
#define DNSBL_WEIGHT_MIN	(-100)
#define DNSBL_WEIGHT_MAX	100
#define DNSBL_ITEM_MAX		256	/* bytes of one "zone=weight" item */
#define DNSBL_VALUE_MAX		8192	/* bytes of a whole dnsbl value */

struct dnsbl_zone {
	char name[DNSBL_ZONE_MAX + 1];	/* lower case, no trailing dot */
	int weight;
};

/*
 * Parses one list item, "zone" or "zone=weight" (weight an integer from
 * DNSBL_WEIGHT_MIN to DNSBL_WEIGHT_MAX, with an optional sign; default 1),
 * into *z. Returns 0, or -1 with a message in err (errsize > 0).
 */
int dnsbl_zone_parse(const char *item, struct dnsbl_zone *z, char *err, size_t errsize);

/*
 * Parses a whole value: items separated by blanks or commas, at most max
 * (<= DNSBL_MAX_ZONES) of them, no zone twice. Sets *n_r. Returns 0, or
 * -1 with a message naming the item at fault.
 */
int dnsbl_zones_parse(const char *value, struct dnsbl_zone *zones, size_t max,
    size_t *n_r, char *err, size_t errsize);

/*
 * The query name of client sa in zone (a parsed zone name) into out.
 * Returns 0, or -1 when sa is not AF_INET/AF_INET6 or out is too small
 * (DNS_NAME_MAX is enough for a parsed zone).
 */
int dnsbl_query_name(const struct sockaddr *sa, const char *zone, char *out,
    size_t outsize);

struct dnsbl_options {
	int threshold;			/* refuse at this score [1] */
	unsigned cache_ttl;		/* seconds a verdict is kept, 0 = no cache [300] */
	size_t cache_entries;		/* clients cached [10000] */
};

/* Fills o with the defaults above. */
void dnsbl_options_default(struct dnsbl_options *o);

/* What one zone answered. */
enum dnsbl_answer {
	DNSBL_NOT_LISTED = 0,
	DNSBL_LISTED,			/* 127.0.0.0/8 but not the error codes */
	DNSBL_ERROR_CODE,		/* the list refused the query, or a bad answer */
	DNSBL_TEMP,			/* no answer now */
};

struct dnsbl_verdict {
	int score;			/* sum of the listing zones' weights */
	int listed;			/* score >= threshold */
	int temp;			/* some zone answered DNSBL_TEMP */
	int cached;			/* the verdict came from the cache */
	size_t nzones;
	struct {
		uint8_t answer;		/* enum dnsbl_answer */
		uint8_t addr[4];	/* the A record (LISTED, ERROR_CODE) */
	} zone[DNSBL_MAX_ZONES];	/* in the order of the configured zones */
};

struct dnsbl;

/* A checker for zones[0..n-1] (copied; n <= DNSBL_MAX_ZONES, excess
 * ignored) with options o (NULL: defaults). */
struct dnsbl *dnsbl_new(const struct dnsbl_zone *zones, size_t n,
    const struct dnsbl_options *o);

/* Frees the checker and its cache; sets *dp to NULL. NULL is fine. */
void dnsbl_free(struct dnsbl **dp);

/*
 * Checks client sa at now_ms (CLOCK_MONOTONIC ms) through resolver r
 * (shared with other threads; NULL only for a checker without zones):
 * from the cache, or by asking every zone (blocking, see above). Fills
 * *v and returns v->listed. A client of another family is not listed.
 */
int dnsbl_check(struct dnsbl *d, struct dns_resolver *r, const struct sockaddr *sa,
    int64_t now_ms, struct dnsbl_verdict *v);

/* The zones that list the client, as "zone=127.0.0.2 zone2=127.0.0.4"
 * (for logs), into out (outsize > 0, cut to fit). Returns out. */
char *dnsbl_verdict_text(const struct dnsbl *d, const struct dnsbl_verdict *v,
    char *out, size_t outsize);

/* The refusal for a listed client: "554 5.7.1 Service unavailable;
 * client [ADDR] blocked using ZONE" naming the listing zone of highest
 * weight, into out (no CRLF). Returns out. */
char *dnsbl_reply(const struct dnsbl *d, const struct dnsbl_verdict *v,
    const struct sockaddr *sa, char *out, size_t outsize);

/* Zones configured, and the name of zone i. */
size_t dnsbl_nzones(const struct dnsbl *d);
const char *dnsbl_zone_name(const struct dnsbl *d, size_t i);

#endif
