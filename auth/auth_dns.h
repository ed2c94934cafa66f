/*
 * auth_dns: how auth/ asks DNS. SPF, DKIM and DMARC never call dns/
 * directly; they ask a struct auth_dns, a small table of functions with
 * two implementations:
 *  - auth_dns_resolver_new: the server's ldns resolver (dns/), which sends
 *    every query to the configured dns_server and keeps the TTL cache;
 *  - auth_dns_table (auth_dns_table.c): an in-memory zone for tests, the
 *    RFC 7208 suite and fuzz targets, loaded from text or built by calls.
 *
 * Every answer tells a record set apart from NODATA (the name exists, no
 * record of the type), NXDOMAIN and a temporary failure, which SPF's
 * void-lookup limit and temperror (RFC 7208 4.6.4, 2.6.6) and DKIM's
 * "no key" against "key unavailable" (RFC 6376 6.1.2) need.
 *
 * Errors: a lookup never fails as a call; its outcome is the answer's
 * status. Out of memory aborts (lib/util.h).
 * Threads: a struct auth_dns is shared read-only; lookup may run on many
 * threads at once (both implementations are thread-safe). A lookup may
 * block for as long as the resolver's bounds allow: call it from a pool
 * thread, never from a session event loop.
 */
#ifndef AUTH_AUTH_DNS_H
#define AUTH_AUTH_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct dns_resolver;

enum auth_dns_type {
	AUTH_DNS_A,
	AUTH_DNS_AAAA,
	AUTH_DNS_MX,
	AUTH_DNS_PTR,		/* the name asked is the in-addr/ip6.arpa name */
	AUTH_DNS_TXT,
};

enum auth_dns_status {
	AUTH_DNS_OK = 0,	/* n >= 1 records */
	AUTH_DNS_NODATA,	/* RCODE 0 with no record of the type */
	AUTH_DNS_NXDOMAIN,	/* RCODE 3, or a name no query can be made of */
	AUTH_DNS_TEMP,		/* SERVFAIL, timeout, malformed answer */
};

/* An IP address: AF_INET (4 bytes used) or AF_INET6. */
struct auth_ip {
	int family;
	uint8_t b[16];
};

struct auth_dns_rr {
	uint16_t pref;		/* MX preference */
	struct auth_ip ip;	/* A, AAAA */
	char *name;		/* MX exchange ("" is the root), PTR target;
				 * lower case, no trailing dot */
	char *text;		/* TXT: the strings joined, NUL after len */
	size_t len;
};

struct auth_dns_answer {
	enum auth_dns_status status;
	size_t n;
	struct auth_dns_rr *rr;	/* malloc'd; auth_dns_answer_clear frees */
	char detail[128];	/* why, for AUTH_DNS_TEMP */
};

struct auth_dns_ops {
	/* Fills *ans (zeroed by the caller) with the records of type at name
	 * (no trailing dot needed; case does not matter), CNAMEs followed. */
	void (*lookup)(void *ctx, const char *name, enum auth_dns_type type,
	    struct auth_dns_answer *ans);
	/* Frees ctx (auth_dns_free). */
	void (*free)(void *ctx);
};

struct auth_dns {
	const struct auth_dns_ops *ops;
	void *ctx;
};

/* Looks name up through dns; *ans is overwritten (clear it after use). */
void auth_dns_lookup(const struct auth_dns *dns, const char *name,
    enum auth_dns_type type, struct auth_dns_answer *ans);

/* Frees the records of ans and zeroes it. */
void auth_dns_answer_clear(struct auth_dns_answer *ans);

/* "ok", "NODATA", "NXDOMAIN", "temporary failure". */
const char *auth_dns_status_str(enum auth_dns_status s);

/*
 * The adapter to dns/: lookups go to r (not owned; it must outlive the
 * result). A name dns/ would not query (dns_name_normalize refuses it) is
 * NXDOMAIN. Free with auth_dns_free.
 */
struct auth_dns *auth_dns_resolver_new(struct dns_resolver *r);

/* Frees an auth_dns made by either implementation; sets *dp to NULL. */
void auth_dns_free(struct auth_dns **dp);

/* ---- addresses ---- */

/* From a socket address; a v4-mapped IPv6 address becomes AF_INET
 * (RFC 7208 5). Returns 0, or -1 for other families. */
int auth_ip_from_sockaddr(const struct sockaddr *sa, struct auth_ip *ip);

/* From numeric text ("192.0.2.1", "2001:db8::1"); v4-mapped becomes
 * AF_INET. Returns 0 or -1. */
int auth_ip_parse(const char *text, struct auth_ip *ip);

/* Numeric text (RFC 5952 form for IPv6) into out (>= 46 bytes). */
char *auth_ip_text(const struct auth_ip *ip, char *out, size_t outsize);

/* 1 when the first prefix bits of a and b are equal (same family). */
int auth_ip_match(const struct auth_ip *a, const struct auth_ip *b,
    int prefix);

/* The reverse name of ip ("4.3.2.1.in-addr.arpa", nibbles for IPv6)
 * into out (>= 74 bytes). Returns 0 or -1. */
int auth_ip_reverse_name(const struct auth_ip *ip, char *out, size_t outsize);

#endif
