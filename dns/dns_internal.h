/*
 * dns_internal: the parts of dns/ that are exported only so that unit
 * tests and fuzz targets can reach them without a network. Nothing outside
 * dns/ and tests/ includes this header.
 *
 *  - answer parsing (mx.c): a wire-format answer becomes a struct
 *    dns_rrset (the records of the type asked, or NODATA, NXDOMAIN, a CNAME
 *    to re-query, or a temporary failure), defensively;
 *  - MX selection (mx.c): order, shuffle, null MX, bounds;
 *  - the answer cache (cache.c), with the time passed in;
 *  - a resolver whose transport and clock are functions (resolver.c), so
 *    that whole lookups run against canned packets.
 *
 * Threads: as dns.h; the rrset functions work on caller-owned data.
 */
#ifndef DNS_DNS_INTERNAL_H
#define DNS_DNS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

#define DNS_MAX_CNAME_HOPS	8	/* CNAMEs followed, in packets and re-queries */
#define DNS_MAX_RRSET		64	/* records kept from one RRset */
#define DNS_MAX_WIRE		65535	/* biggest answer accepted */

/* Query types used (the IANA numbers, as ldns_rr_type). */
#define DNS_T_A		1
#define DNS_T_CNAME	5
#define DNS_T_PTR	12
#define DNS_T_MX	15
#define DNS_T_TXT	16
#define DNS_T_AAAA	28
#define DNS_T_TLSA	52

enum dns_kind {
	DNS_K_DATA,		/* rrs[] hold the records */
	DNS_K_NODATA,		/* the name exists, no record of that type */
	DNS_K_NXDOMAIN,		/* the name does not exist */
	DNS_K_CNAME,		/* a chain that ends without data: ask target */
	DNS_K_TEMP,		/* failed; try again later */
};

struct dns_rr {
	uint16_t pref;		/* MX */
	uint8_t addr[16];	/* A (4 bytes), AAAA */
	char *name;		/* MX exchange, PTR: validated, lower case;
				 * "" is the root; NULL for A/AAAA */
	char *text;		/* TXT: the character-strings joined, with a
				 * NUL after textlen bytes; NULL otherwise */
	size_t textlen;
	uint8_t *raw;		/* TLSA: the rdata as sent; NULL otherwise */
	size_t rawlen;
};

/* A parsed answer for one (name, type). Owned by whoever made it. */
struct dns_rrset {
	enum dns_kind kind;
	uint16_t type;
	uint32_t ttl;		/* seconds this may be cached */
	unsigned cnames;	/* CNAMEs followed inside the packet (after
				 * dns_resolver_lookup: in all packets) */
	unsigned nbad;		/* records dropped as invalid */
	int ad;			/* the packet had the AD bit (after
				 * dns_resolver_lookup: every packet of the
				 * chain had it, and the resolver believes it) */
	char owner[DNS_NAME_MAX];	/* DATA, NODATA, NXDOMAIN: the name
				 * the chain ended at (the CNAME-expanded name) */
	char target[DNS_NAME_MAX];	/* DNS_K_CNAME: the name to ask next */
	char detail[160];	/* DNS_K_TEMP etc.: why */
	size_t n;
	struct dns_rr *rrs;
};

/*
 * Parses the wire answer (len bytes) to the question (qname, qtype); qname
 * is a normalized name (dns_name_normalize). Never fails: anything wrong
 * (truncated, bad counts, compression loops, a question that is not the
 * one asked, TC set, SERVFAIL, REFUSED, ...) gives DNS_K_TEMP with a
 * detail. Records of other names or types are ignored; records with
 * invalid names or rdata are dropped (nbad). ad is the packet's AD bit
 * (0 for DNS_K_TEMP). Returns a new rrset.
 */
struct dns_rrset *dns_answer_parse(const uint8_t *wire, size_t len,
    const char *qname, uint16_t qtype);

/* ---- answer parsing shared by the cached and the DNSSEC-aware paths (mx.c) ---- */

struct ldns_struct_pkt;		/* ldns_pkt */
struct ldns_struct_rdf;		/* ldns_rdf */
struct ldns_struct_rr;		/* ldns_rr */

/*
 * The checks every answer gets: 0 with the decoded packet in *pkt_r and
 * the question's name in *qrdf_r (the caller frees both with ldns_pkt_free
 * and ldns_rdf_deep_free), or -1 with a static reason in *why_r: too short
 * or too long, malformed, not an answer to a query, truncated, an answer
 * to another question than (qname, qtype, IN). The rcode is the caller's.
 */
int dns_answer_open(const uint8_t *wire, size_t len, const char *qname,
    uint16_t qtype, struct ldns_struct_pkt **pkt_r,
    struct ldns_struct_rdf **qrdf_r, const char **why_r);

/* Called for each record of the type asked at the end of the chain; 0,
 * or -1 when the record is malformed (the walk stops). */
typedef int dns_answer_each_fn(void *ctx, const struct ldns_struct_rr *rr);

struct dns_answer_chain {
	const struct ldns_struct_rdf *end;	/* where the chain ends (in pkt) */
	int found;		/* records of the type asked were there */
	unsigned cnames;	/* CNAMEs followed inside the packet */
	uint32_t ttl;		/* least TTL of those records and CNAMEs,
				 * UINT32_MAX when there were none */
};

/*
 * Walks pkt's answer section from qrdf along its CNAMEs (at most
 * DNS_MAX_CNAME_HOPS): calls each for every IN record of qtype owned by
 * the name reached. 0 with *c filled, or -1 with a static reason in
 * *why_r (a malformed or conflicting CNAME, a chain too long, a record
 * each refused).
 */
int dns_answer_chain(const struct ldns_struct_pkt *pkt,
    const struct ldns_struct_rdf *qrdf, uint16_t qtype, dns_answer_each_fn *each,
    void *ctx, struct dns_answer_chain *c, const char **why_r);

/* The TTL of a negative answer when the packet carries no SOA. */
#define DNS_DEFAULT_NEG_TTL	60

struct dns_rrset *dns_rrset_new(enum dns_kind kind, uint16_t type);
struct dns_rrset *dns_rrset_copy(const struct dns_rrset *rs);
void dns_rrset_free(struct dns_rrset **rsp);

/*
 * MX selection from an MX rrset of kind DNS_K_DATA: fills res->hosts
 * (names and preferences, no addresses yet) in preference order with
 * equal preferences shuffled by rnd (a xorshift64 state, not 0), at most
 * DNS_MAX_MX_HOSTS, duplicates removed (best preference kept). Returns
 * DNS_OK, DNS_NULL_MX (every exchange is the root) or DNS_NO_ADDRESS (no
 * usable exchange) and sets res->status and detail accordingly.
 */
int dns_mx_select(const struct dns_rrset *mx, uint64_t *rnd,
    struct dns_mx_result *res);

/*
 * For tests and fuzzing: dns_answer_parse of an MX answer for qname, then
 * dns_mx_select when it holds data. *res_r gets a new result (free with
 * dns_mx_result_free) whose hosts have no addresses; status DNS_TEMP,
 * DNS_NXDOMAIN, DNS_NO_ADDRESS (NODATA: the implicit MX would be next, or
 * a CNAME to re-query; implicit is set for NODATA) or as dns_mx_select.
 */
int dns_parse_mx_answer(const uint8_t *wire, size_t len, const char *qname,
    uint64_t seed, struct dns_mx_result **res_r);

/* Converts a wire-format domain name (uncompressed, as in an ldns rdf) of
 * len bytes to lower-case text without trailing dot ("" for the root).
 * Returns 0, or -1 when it is malformed or holds a character that
 * dns_name_normalize would refuse. */
int dns_wire_name_to_text(const uint8_t *wire, size_t len, char *out,
    size_t outsize);

/* ---- TXT records (txt.c) ---- */

struct ldns_struct_rr;

/* Joins the character-strings of a TXT record into out->text (malloc'd,
 * NUL-terminated, out->textlen bytes before the NUL, which may hold any
 * byte). Returns 0, or -1 when the rdata is not a list of strings. */
int dns_txt_rdata_join(const struct ldns_struct_rr *rr, struct dns_rr *out);

/* Random 64-bit seed (getrandom, falling back on time and address). */
uint64_t dns_random_seed(void);
/* xorshift64; *state must not be 0. Returns a value below bound (> 0). */
uint32_t dns_random_below(uint64_t *state, uint32_t bound);

/* ---- cache (cache.c) ---- */

struct dns_cache;

/* A cache of at most max_entries (>= 1) answers; oldest evicted first. */
struct dns_cache *dns_cache_new(size_t max_entries);
void dns_cache_free(struct dns_cache **cp);

/* Stores a copy of rs for (name, type) until now_ms + ttl_s * 1000,
 * replacing an older entry. ttl_s == 0 stores nothing. */
void dns_cache_put(struct dns_cache *c, const char *name, uint16_t type,
    const struct dns_rrset *rs, uint32_t ttl_s, int64_t now_ms);

/* A copy of the entry for (name, type) alive at now_ms, with its ttl set
 * to the seconds left (rounded up), or NULL. Expired entries are removed. */
struct dns_rrset *dns_cache_get(struct dns_cache *c, const char *name,
    uint16_t type, int64_t now_ms);

size_t dns_cache_count(struct dns_cache *c);

/* ---- resolver internals (resolver.c) ---- */

/*
 * Sends the question (qname normalized, qtype) and returns 0 with a
 * malloc'd wire answer in *wire_r, *len_r, or -1 when no answer came
 * before deadline_ms (CLOCK_MONOTONIC ms as time_mono_ms).
 */
typedef int (*dns_transport_fn)(void *ctx, const char *qname, uint16_t qtype,
    int64_t deadline_ms, uint8_t **wire_r, size_t *len_r);
typedef int64_t (*dns_clock_fn)(void *ctx);

/* A resolver that asks transport instead of the network, with clock as
 * its time (NULL: time_mono_ms). opts may be NULL. */
struct dns_resolver *dns_resolver_new_transport(dns_transport_fn transport,
    void *tctx, dns_clock_fn clock, void *cctx,
    const struct dns_options *opts);

/* The options in force (never NULL). */
const struct dns_options *dns_resolver_options(const struct dns_resolver *r);

/* The resolver's clock, in ms. */
int64_t dns_resolver_now(struct dns_resolver *r);

/*
 * The records of type for name (normalized), from the cache or the
 * network, CNAMEs followed (DNS_MAX_CNAME_HOPS in all); each answer is
 * cached under the name it was asked for, with its AD bit, and the TTL
 * capped by the options. Never returns DNS_K_CNAME (a chain too long is
 * DNS_K_TEMP). In the result, ad is set only when every answer of the
 * chain had it and the resolver is trusted, cnames counts the CNAMEs of
 * the whole chain, and owner is where it ended. A new rrset.
 */
struct dns_rrset *dns_resolver_lookup(struct dns_resolver *r,
    const char *name, uint16_t type, int64_t deadline_ms);

/* Queries sent by this resolver (cache misses), for tests. */
uint64_t dns_resolver_query_count(struct dns_resolver *r);

/* Whether the resolver believes the AD bit (dns_sec_trusted); for
 * resolvers made with dns_resolver_new_transport, which start with 0. */
void dns_resolver_set_trusted(struct dns_resolver *r, int trusted);

#endif
