/*
 * spf_internal: the SPF record parser and macro expander (RFC 7208
 * sections 4.6, 5, 6, 7 and 12), exported for spf.c, the unit tests and
 * the fuzz targets only.
 *
 * Errors: the parser and expander return -1 with a reason; they never
 * abort on input. Threads: reentrant.
 */
#ifndef AUTH_SPF_INTERNAL_H
#define AUTH_SPF_INTERNAL_H

#include <stddef.h>
#include <time.h>

#include "auth/auth_dns.h"
#include "lib/buf.h"

#define SPF_RECORD_MAX	8192	/* bytes of a record (joined strings) */
#define SPF_TERMS_MAX	256	/* terms in one record */
#define SPF_NAME_MAX	253	/* an expanded domain name (7.3) */

enum spf_mech {
	SPF_M_ALL,
	SPF_M_INCLUDE,
	SPF_M_A,
	SPF_M_MX,
	SPF_M_PTR,
	SPF_M_IP4,
	SPF_M_IP6,
	SPF_M_EXISTS,
};

enum spf_term_kind {
	SPF_T_MECH,		/* a directive: qualifier and mechanism */
	SPF_T_REDIRECT,
	SPF_T_EXP,
	SPF_T_UNKNOWN,		/* an unknown modifier, checked and ignored */
};

struct spf_term {
	enum spf_term_kind kind;
	enum spf_mech mech;
	char qual;		/* '+', '-', '~' or '?' */
	const char *spec;	/* domain-spec (into the record), or NULL */
	size_t speclen;
	int cidr4, cidr6;	/* prefix lengths; 32 and 128 when absent */
	struct auth_ip net;	/* ip4/ip6 network */
	const char *text;	/* the term as written */
	size_t textlen;
};

struct spf_record {
	char *text;		/* a copy of the record, NUL-terminated */
	size_t nterms;
	struct spf_term *terms;
	int redirect;		/* index of redirect=, or -1 */
	int exp;		/* index of exp=, or -1 */
};

/* 1 when the text is an SPF version 1 record: "v=spf1" (any case)
 * followed by a space or the end (4.5). */
int spf_record_is_v1(const char *text, size_t len);

/*
 * Parses a whole record (4.6, 12): every term checked before any is
 * evaluated. Returns 0 with a new record in *rec_r (spf_record_free), or
 * -1 with the reason in why (whysize > 0) for a permerror.
 */
int spf_record_parse(const char *text, size_t len, struct spf_record **rec_r,
    char *why, size_t whysize);

void spf_record_free(struct spf_record **recp);

/* Flags of the macro functions. */
#define SPF_MACRO_EXP	1	/* explain-string: c, r, t allowed, and SP */

/* Checks macro-string syntax (7.1); 0 or -1. */
int spf_macro_check(const char *s, size_t len, int flags);

/* Checks domain-spec syntax: a macro-string ending in a macro-expand or
 * in "." toplabel ["."] (12). 0 or -1. */
int spf_domain_spec_check(const char *s, size_t len);

/* What the macros expand to (7.3). */
struct spf_macro_env {
	const char *sender;	/* <sender>: local@domain */
	const char *local;	/* its local part ("postmaster" if empty) */
	const char *sender_domain;
	const char *domain;	/* <domain> of the current check_host() */
	const char *helo;	/* may be "" */
	const char *receiver;
	struct auth_ip ip;
	time_t now;
	/* %{p}: writes the validated name into out; NULL gives "unknown". */
	void (*ptr_name)(void *arg, const char *domain, char *out,
	    size_t outsize);
	void *arg;
};

/*
 * Expands s (len bytes) into out, appending. Returns 0, or -1 when the
 * syntax is bad or out would grow past its maximum.
 */
int spf_macro_expand(const struct spf_macro_env *env, const char *s,
    size_t len, int flags, struct buf *out);

/*
 * Expands a domain-spec into a name to query: macros expanded, a trailing
 * dot dropped, then labels cut from the left while longer than 253
 * octets (7.3). Returns 0, -1 (bad syntax, nothing left), or -2 when
 * what is left is one label too long to be cut (no query can be made).
 */
int spf_expand_domain(const struct spf_macro_env *env, const char *spec,
    size_t len, char *out, size_t outsize);

#endif
