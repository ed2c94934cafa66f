/*
 * dns: the name lookups of mailserver, as RFC 5321 section 5 and RFC 7505
 * want them for mail: MX with the implicit MX, null MX, CNAME chains,
 * addresses (A and AAAA) of MX hosts and relay hosts, and reverse names;
 * raw record sets for mail authentication; and the DNSSEC status of every
 * answer, for DANE (RFC 7672) and the TLS policy of outbound mail.
 *
 * One struct dns_resolver is made at start-up (or config reload) from the
 * configured servers or from resolv.conf, and shared by every delivery
 * thread. It holds a TTL cache of answers (negative answers too), each
 * kept with its DNSSEC state. Queries go over UDP, then TCP when the
 * answer was truncated; every attempt is bounded in time (per try, number
 * of tries, and a whole-lookup bound).
 *
 * DNSSEC: mailserver does not validate signatures itself. Every query
 * asks with the DO and AD bits set, and the AD bit of the reply is
 * believed, as Postfix does, only when every server is on loopback (a
 * validating resolver on this host, e.g. unbound); over any other path it
 * could be forged, so answers then count as insecure (dns_sec_trusted
 * says which). DESIGN.md "Outbound TLS" says why.
 *
 * Errors: lookups never abort; every outcome is an enum dns_status, and
 * permanent outcomes are told apart from temporary ones
 * (dns_status_is_permanent). Out of memory aborts (lib/util.h policy).
 * Nothing is logged above debug level: reporting is the caller's job.
 *
 * Threads: dns_resolver_new/free on one thread while no lookup runs;
 * every lookup function may run on any number of threads at once on the
 * same resolver. Results belong to the caller's thread.
 */
#ifndef DNS_DNS_H
#define DNS_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Bounds of a result (RFC 5321 5.1 leaves them to the implementation). */
#define DNS_MAX_MX_HOSTS	10	/* MX hosts kept, best first */
#define DNS_MAX_HOST_ADDRS	16	/* addresses kept per host (all families) */
#define DNS_MAX_TARGETS		10	/* upper bound of dns_options.max_addrs */
#define DNS_NAME_MAX		256	/* a host name with its NUL */

enum dns_status {
	DNS_OK = 0,		/* usable answer */
	DNS_NULL_MX,		/* RFC 7505 "MX 0 .": permanent, bounce 5.1.10 */
	DNS_NXDOMAIN,		/* no such domain: permanent, bounce 5.1.2 */
	DNS_NO_ADDRESS,		/* hosts exist but none has an address: temporary */
	DNS_TEMP,		/* SERVFAIL, REFUSED, timeout, malformed: defer */
	DNS_BAD_NAME,		/* the name asked is not a valid domain: permanent, 5.1.2 */
};

/* A DNS server: numeric IPv4 or IPv6 address (no brackets), and port. */
struct dns_server_addr {
	char addr[64];
	uint16_t port;		/* 0 means 53 */
};

/* Tunables; dns_options_default fills the values given in brackets. */
struct dns_options {
	unsigned try_timeout_ms;	/* one query to one server [2000] */
	unsigned tries;			/* rounds over all servers [2] */
	unsigned total_timeout_ms;	/* a whole public lookup call [20000] */
	size_t cache_entries;		/* cached answers, 0 = no cache [10000] */
	unsigned max_ttl;		/* cap on positive TTLs, seconds [3600] */
	unsigned max_negative_ttl;	/* cap on NXDOMAIN/NODATA, seconds [300] */
	unsigned temp_ttl;		/* temporary failures cached, s, 0=not [5] */
	size_t max_addrs;		/* flattened MX targets, 1..DNS_MAX_TARGETS [5] */
	int use_ipv6;			/* look up AAAA [1] */
	int prefer_ipv6;		/* per host IPv6 before IPv4 [0: IPv4 first] */
	const char *resolv_conf;	/* used when no server is given [/etc/resolv.conf] */
};

/* An address: family AF_INET or AF_INET6, bytes in network order. */
struct dns_addr {
	int family;
	uint8_t bytes[16];	/* 4 used for AF_INET */
	char text[48];		/* numeric text: "192.0.2.1", "2001:db8::1" */
};

struct dns_mx_host {
	char name[DNS_NAME_MAX];	/* lower case, no trailing dot */
	uint16_t pref;
	size_t naddrs;			/* >= 1 in a DNS_OK result */
	struct dns_addr addrs[DNS_MAX_HOST_ADDRS];	/* family order per options */
};

/* One address to try, in order: hosts[host].addrs[...] flattened. */
struct dns_target {
	size_t host;			/* index into hosts */
	struct dns_addr addr;
};

struct dns_mx_result {
	enum dns_status status;
	int implicit;			/* no MX record: the domain itself, pref 0 */
	char domain[DNS_NAME_MAX];	/* the domain asked, lower case */
	char detail[200];		/* why, for logs and DSN diagnostics */
	size_t nhosts;			/* hosts with addresses, preference order */
	struct dns_mx_host hosts[DNS_MAX_MX_HOSTS];
	size_t ntargets;		/* at most options.max_addrs */
	struct dns_target targets[DNS_MAX_TARGETS];
	/* MX hosts left out of hosts for want of an address: a client must
	 * still see its own name among them (RFC 5321 5.1) and know whether
	 * a better host only failed for now. */
	size_t ndropped;
	struct dns_mx_dropped {
		char name[DNS_NAME_MAX];
		uint16_t pref;
		int temp;		/* the address lookup failed for now */
	} dropped[DNS_MAX_MX_HOSTS];
};

struct dns_addr_result {
	enum dns_status status;		/* DNS_OK, DNS_NXDOMAIN, DNS_NO_ADDRESS,
					 * DNS_TEMP or DNS_BAD_NAME */
	char detail[200];
	size_t naddrs;
	struct dns_addr addrs[DNS_MAX_HOST_ADDRS];
};

struct dns_resolver;

/* Fills o with the defaults above. */
void dns_options_default(struct dns_options *o);

/*
 * Makes a resolver that asks servers[0..n-1] in that order (n > 0), or the
 * nameservers of opts->resolv_conf when n == 0. opts may be NULL
 * (defaults). Returns NULL and a message in err (errsize > 0) when an
 * address is not numeric, the resolv.conf cannot be read or names no
 * server, or an option is out of range. Free with dns_resolver_free.
 */
struct dns_resolver *dns_resolver_new(const struct dns_server_addr *servers,
    size_t n, char *err, size_t errsize);
struct dns_resolver *dns_resolver_new_opts(const struct dns_server_addr *servers,
    size_t n, const struct dns_options *opts, char *err, size_t errsize);

/* Frees the resolver and its cache; sets *rp to NULL. No lookup may run. */
void dns_resolver_free(struct dns_resolver **rp);

/*
 * MX lookup of domain (RFC 5321 5.1), with CNAMEs followed (at most 8).
 * Always sets *res_r to a result owned by the caller (free with
 * dns_mx_result_free) and returns its status:
 *  - DNS_OK: hosts[] in preference order, equal preferences shuffled for
 *    each call; each host with its addresses (IPv4 then IPv6 unless
 *    prefer_ipv6); hosts without an address left out; and targets[], the
 *    first max_addrs addresses in that order, the ones to try. Hosts are
 *    resolved only until max_addrs addresses are known. With no MX record
 *    (NODATA) the domain itself is the only host, pref 0, implicit = 1.
 *  - DNS_NULL_MX: every MX record has the root "." as exchange.
 *  - DNS_NXDOMAIN, DNS_BAD_NAME: permanent.
 *  - DNS_NO_ADDRESS: no MX host (or, implicit, the domain) has an address,
 *    and no lookup failed temporarily. Treated as temporary.
 *  - DNS_TEMP: any other failure, including when every host with no address
 *    had a temporary failure.
 * The caller drops MX hosts that are this server itself (RFC 5321 5.1).
 */
int dns_mx_lookup(struct dns_resolver *r, const char *domain,
    struct dns_mx_result **res_r);

/* Frees a result; sets *resp to NULL. NULL is fine. */
void dns_mx_result_free(struct dns_mx_result **resp);

/*
 * Addresses of host (A and AAAA, CNAMEs followed), for relayhost and
 * routes. A numeric IPv4 or IPv6 address (brackets allowed) is returned as
 * is without a query. Same ownership and status rules as dns_mx_lookup
 * (free with dns_addr_result_free); DNS_NO_ADDRESS when the name exists
 * with no address.
 */
int dns_addr_lookup(struct dns_resolver *r, const char *host,
    struct dns_addr_result **res_r);
void dns_addr_result_free(struct dns_addr_result **resp);

/*
 * Reverse name of an AF_INET or AF_INET6 address (a v4-mapped IPv6 address
 * counts as IPv4): the first valid PTR name, lower case without the
 * trailing dot, into name (namesize > 0; DNS_NAME_MAX is enough). Returns
 * DNS_OK, DNS_NXDOMAIN (no PTR), DNS_TEMP or DNS_BAD_NAME (other families).
 * The name is not forward-confirmed. name is "" unless DNS_OK.
 */
int dns_ptr_lookup(struct dns_resolver *r, const struct sockaddr *sa,
    char *name, size_t namesize);

/* "ok", "null MX", "NXDOMAIN", ... (static strings). */
const char *dns_status_str(int status);

/* 1 for DNS_NULL_MX, DNS_NXDOMAIN, DNS_BAD_NAME; 0 otherwise. */
int dns_status_is_permanent(int status);

/* Enhanced status code for a failed lookup (RFC 3463): "5.1.10" (null MX),
 * "5.1.2" (NXDOMAIN, bad name), "4.4.4" (no address), "4.4.3" (temporary),
 * "2.0.0" for DNS_OK. Static strings. */
const char *dns_status_dsn(int status);

/*
 * Validates a domain or host name: ASCII letters, digits, '-', '_',
 * labels of 1..63 separated by single dots, an optional trailing dot, at
 * most 253 characters without it. Returns 0 and the lower-case name
 * without trailing dot in out (outsize >= DNS_NAME_MAX), or -1.
 * Thread-safe.
 */
int dns_name_normalize(const char *name, char *out, size_t outsize);

/* ---- raw record sets, for mail authentication (dns/txt.c) ---- */

/* The record types dns_records_lookup asks for (IANA numbers). */
enum dns_rtype {
	DNS_RTYPE_A = 1,
	DNS_RTYPE_CNAME = 5,
	DNS_RTYPE_PTR = 12,
	DNS_RTYPE_MX = 15,
	DNS_RTYPE_TXT = 16,
	DNS_RTYPE_AAAA = 28,
	DNS_RTYPE_TLSA = 52,
};

/* What an answer is worth (RFC 4035 4.3 terms). */
enum dns_sec_state {
	DNS_SEC_INSECURE = 0,	/* answered, not validated (or AD not believed) */
	DNS_SEC_SECURE,		/* answered with AD from a trusted resolver */
	DNS_SEC_BOGUS,		/* no answer to rely on either way: validation
				 * failed (the resolver's SERVFAIL), or no reply,
				 * or a malformed one ("indeterminate" in RFC 7672
				 * 2.1.1 is handled the same: never downgrade) */
};

/* What a raw lookup found. NODATA and NXDOMAIN are kept apart, as SPF's
 * void-lookup limit (RFC 7208 4.6.4) and DKIM's key lookup need. */
enum dns_records_status {
	DNS_REC_DATA = 0,	/* n >= 1 records */
	DNS_REC_NODATA,		/* the name exists, no record of the type */
	DNS_REC_NXDOMAIN,	/* the name does not exist */
	DNS_REC_TEMP,		/* SERVFAIL, timeout, malformed answer */
	DNS_REC_BAD_NAME,	/* not a name dns_name_normalize accepts */
};

struct dns_record {
	uint16_t pref;		/* MX */
	struct dns_addr addr;	/* A, AAAA */
	char *name;		/* MX exchange ("" is the root), PTR and CNAME
				 * target: lower case, no trailing dot; else NULL */
	char *text;		/* TXT: the character-strings joined, a NUL
				 * after textlen bytes (it may hold NULs) */
	size_t textlen;
	uint8_t *raw;		/* TLSA: the rdata (usage, selector, matching
				 * type, data); else NULL */
	size_t rawlen;
};

struct dns_records {
	enum dns_records_status status;
	enum dns_sec_state sec;	/* DNS_SEC_BOGUS for DNS_REC_TEMP and
				 * DNS_REC_BAD_NAME; else secure when every
				 * answer of the CNAME chain had AD from a
				 * trusted resolver */
	char detail[160];	/* why, for DNS_REC_TEMP and DNS_REC_BAD_NAME */
	char owner[DNS_NAME_MAX];	/* the name the CNAME chain ended at
				 * (the name asked, normalized, when there was
				 * none); "" for DNS_REC_TEMP, DNS_REC_BAD_NAME */
	unsigned cnames;	/* CNAMEs followed */
	size_t n;
	struct dns_record *rr;	/* n records, in the order of the answer */
};

/*
 * The records of type for name, from the cache or the servers, CNAMEs
 * followed; bounded by the resolver's total_timeout_ms. This one lookup
 * serves mail authentication (auth/), MTA-STS and DANE. Records whose
 * rdata is malformed are dropped (a set left empty is DNS_REC_NODATA);
 * at most 64 are kept. Always sets *res_r to a new result (free with
 * dns_records_free) and returns its status. Thread-safe as dns_mx_lookup.
 */
int dns_records_lookup(struct dns_resolver *r, const char *name,
    enum dns_rtype type, struct dns_records **res_r);

/* dns_records_lookup(r, name, DNS_RTYPE_TXT, res_r). */
int dns_txt_lookup(struct dns_resolver *r, const char *name,
    struct dns_records **res_r);

/* Frees a result; sets *resp to NULL. NULL is fine. */
void dns_records_free(struct dns_records **resp);

/* ---- DNSSEC views for DANE (dnssec.c, tlsa.c) ----
 *
 * Built on dns_records_lookup (so through the cache): what RFC 7672 asks
 * of a destination, its MX RRset, its hosts' addresses and their TLSA
 * records, with the DNSSEC state of each.
 */

/* What an answer holds, for the views below. */
enum dns_sec_kind {
	DNS_SEC_DATA = 0,	/* records of the type asked */
	DNS_SEC_NODATA,		/* the name exists, no such records */
	DNS_SEC_NXDOMAIN,	/* the name does not exist */
	DNS_SEC_FAIL,		/* no usable answer (state is DNS_SEC_BOGUS) */
};

#define DNS_MAX_TLSA		32	/* TLSA records kept per lookup */

/* 1 when the AD bit is believed (every server is a loopback address). */
int dns_sec_trusted(const struct dns_resolver *r);

/* "secure", "insecure", "bogus" (static). */
const char *dns_sec_state_str(enum dns_sec_state st);

/* One TLSA record (RFC 6698 2.1), as published; data is owned by the
 * result. Unusable records (other usages, unknown selectors or matching
 * types, wrong digest lengths) are kept: relay/ decides (RFC 7672 3.1). */
struct dns_tlsa_rr {
	uint8_t usage, selector, mtype;
	size_t len;
	uint8_t *data;
};

struct dns_tlsa_result {
	enum dns_sec_kind kind;
	enum dns_sec_state state;
	char qname[DNS_NAME_MAX];	/* "_25._tcp.mx.example.com" */
	char detail[200];		/* why, when kind is DNS_SEC_FAIL */
	size_t n;			/* records, only with DNS_SEC_DATA */
	struct dns_tlsa_rr rrs[DNS_MAX_TLSA];
};

/*
 * TLSA records of host (a normalized-able host name) at TCP port (RFC
 * 6698 3: _PORT._tcp.HOST), CNAMEs followed (RFC 7671 7). Always sets
 * *res_r (free with dns_tlsa_result_free) and returns its kind. A record
 * with empty association data is kept (len 0: unusable). The state is
 * DNS_SEC_SECURE only when every answer of the chain had AD.
 */
int dns_tlsa_lookup(struct dns_resolver *r, const char *host, uint16_t port,
    struct dns_tlsa_result **res_r);
void dns_tlsa_result_free(struct dns_tlsa_result **resp);

/* The DNSSEC view of a domain's MX RRset (RFC 7672 2.2.1). */
struct dns_sec_mx {
	enum dns_sec_kind kind;		/* DATA: names[]; NODATA: implicit MX */
	enum dns_sec_state state;
	char detail[200];
	size_t nnames;			/* exchange names, lower case, no root */
	char names[DNS_MAX_MX_HOSTS][DNS_NAME_MAX];
};

/*
 * The MX RRset of domain with its state: the same cached answer that
 * dns_mx_lookup chose the hosts from. An MX host of that result counts
 * as securely obtained only when this says DNS_SEC_SECURE and lists its
 * name (dns_sec_mx_has). Fills *out and returns its state.
 */
int dns_sec_mx_lookup(struct dns_resolver *r, const char *domain,
    struct dns_sec_mx *out);
int dns_sec_mx_has(const struct dns_sec_mx *mx, const char *host);

/* The DNSSEC view of a host's addresses (RFC 7672 2.2.2). */
struct dns_sec_host {
	enum dns_sec_state state;	/* of the whole A (and AAAA) answer chain */
	int alias;			/* the name is a CNAME */
	enum dns_sec_state alias_state;	/* of the host's own CNAME record */
	char expanded[DNS_NAME_MAX];	/* fully CNAME-expanded name (= host
					 * when not an alias) */
	char detail[200];
};

/*
 * The A (and, with use_ipv6, AAAA) records of host, to learn whether they
 * are secure and the CNAME-expanded name. When the chain is not secure
 * but the host is an alias, its CNAME record alone is asked too
 * (alias_state), since a secure alias into an unsigned zone still makes
 * the original name a TLSA base domain. Returns out->state.
 */
int dns_sec_host_lookup(struct dns_resolver *r, const char *host,
    struct dns_sec_host *out);

#endif
