/*
 * spf: Sender Policy Framework, RFC 7208: check_host() for the MAIL FROM
 * identity (or, for the null sender, postmaster@HELO) and for the HELO
 * identity. The whole RFC: every mechanism (all, include, a, mx, ptr,
 * ip4, ip6, exists) and modifier (redirect, exp, unknown ones), macros
 * with transformers and URL escaping, exp= explanations, the limit of 10
 * terms that cause DNS lookups, the limit of 2 void lookups, 10 MX and 10
 * PTR names per term, and a bound on the whole evaluation's time.
 *
 * The RFC leaves a few things to the implementation; this one:
 *  - treats a target name that no DNS query can be made of (an empty
 *    label, a label over 63 octets) as a name that does not exist (a
 *    void lookup, no match), as 4.3 does for the initial domain;
 *  - counts as void lookups the A/AAAA query of "a", the MX query of
 *    "mx", the PTR query of "ptr", the A query of "exists" and the TXT
 *    query of include/redirect targets (4.6.4);
 *  - expands %{i} of an IPv6 address to upper-case nibbles (7.3 leaves
 *    the case open; DNS ignores it) and %{c} to the RFC 5952 text;
 *  - resolves %{p} once per check, preferring <domain>, then a subdomain
 *    of it, then any validated name, else "unknown" (7.3).
 *
 * Errors: the check never fails as a call; DNS trouble is temperror,
 * a broken record permerror, and the outcome says why.
 * Threads: reentrant; all state is in the caller's structs. A check
 * blocks on DNS (up to time_limit_ms): call it from a pool thread, never
 * from a session event loop.
 */
#ifndef AUTH_SPF_H
#define AUTH_SPF_H

#include <stddef.h>
#include <time.h>

#include "auth/auth_dns.h"

enum spf_result {
	SPF_NONE = 0,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

enum spf_identity {
	SPF_ID_MAILFROM,	/* MAIL FROM, or postmaster@HELO for <> */
	SPF_ID_HELO,
};

struct spf_request {
	struct auth_ip ip;	/* the SMTP client (auth_ip_from_sockaddr) */
	const char *helo;	/* HELO/EHLO argument; NULL or "" if none */
	const char *sender;	/* MAIL FROM address without <>; "" or NULL
				 * for the null reverse-path */
	const char *receiver;	/* our host name, for %{r}; NULL: "unknown" */
	time_t now;		/* for %{t}; 0 means time(NULL) */
};

/* Limits; spf_limits_default gives the RFC's values in brackets. */
struct spf_limits {
	unsigned dns_terms;	/* terms causing DNS lookups [10] */
	unsigned void_lookups;	/* [2] */
	unsigned mx_names;	/* MX names per "mx" term, more: permerror [10] */
	unsigned ptr_names;	/* PTR names looked at, the rest ignored [10] */
	unsigned time_limit_ms;	/* whole check, then temperror [20000] */
};

#define SPF_EXPLANATION_MAX 512

struct spf_outcome {
	enum spf_result result;
	enum spf_identity identity;
	char sender[512];	/* the identity checked, "local@domain" */
	char domain[256];	/* its domain: the <domain> of the top check */
	char mechanism[256];	/* the term that decided ("-all", "ip4:...",
				 * "default" when none matched), if any */
	char explanation[SPF_EXPLANATION_MAX];	/* fail: the text of exp=,
				 * expanded; "" when there is none */
	char problem[256];	/* none/temperror/permerror: why */
	unsigned dns_terms;	/* terms that caused DNS lookups */
	unsigned void_lookups;
};

void spf_limits_default(struct spf_limits *l);

/*
 * check_host() for the MAIL FROM identity of req (RFC 7208 2.4): the
 * sender's domain, or postmaster@HELO when the sender is empty. limits
 * may be NULL (defaults). Fills *out and returns out->result. A domain
 * that is not a valid multi-label name gives SPF_NONE (4.3).
 */
enum spf_result spf_check_mailfrom(const struct auth_dns *dns,
    const struct spf_request *req, const struct spf_limits *limits,
    struct spf_outcome *out);

/* check_host() for the HELO identity (RFC 7208 2.3). */
enum spf_result spf_check_helo(const struct auth_dns *dns,
    const struct spf_request *req, const struct spf_limits *limits,
    struct spf_outcome *out);

/* "none", "neutral", "pass", "fail", "softfail", "temperror",
 * "permerror": the RFC 8601 result names. */
const char *spf_result_name(enum spf_result r);

#endif
