/*
 * dmarc: Domain-based Message Authentication, Reporting and Conformance,
 * RFC 7489: the policy record parser (6.3), policy discovery at
 * _dmarc.<From domain> and then at its organizational domain (6.6.3;
 * the Public Suffix List through libpsl, the newest of its built-in list
 * and Debian's file), strict and relaxed identifier alignment for SPF and
 * DKIM (3.1), and the result with the disposition that p=, sp= and pct=
 * ask for (6.6.4). Reports (rua=, ruf=) are parsed, not sent.
 *
 * Errors: the check never fails as a call; a DNS failure is temperror.
 * Threads: reentrant; the Public Suffix List is loaded once, on first use,
 * and then only read. dmarc_check blocks on DNS: call it from a pool
 * thread, never from a session event loop.
 */
#ifndef AUTH_DMARC_H
#define AUTH_DMARC_H

#include <stddef.h>

#include "auth/auth_dns.h"
#include "auth/dkim.h"
#include "auth/spf.h"

enum dmarc_result {
	DMARC_NONE = 0,		/* no policy published (or no From domain) */
	DMARC_PASS,
	DMARC_FAIL,
	DMARC_TEMPERROR,
	DMARC_PERMERROR,	/* a From field DMARC cannot evaluate */
};

enum dmarc_policy {
	DMARC_P_NONE = 0,
	DMARC_P_QUARANTINE,
	DMARC_P_REJECT,
};

struct dmarc_record {
	enum dmarc_policy p;
	enum dmarc_policy sp;	/* p when sp= is absent */
	int p_valid;		/* p= was present and valid */
	int strict_dkim;	/* adkim=s */
	int strict_spf;		/* aspf=s */
	unsigned pct;		/* 0..100 [100] */
	int has_rua;		/* rua= holds a valid-looking URI */
	char rua[512];
	char ruf[512];
};

/*
 * Parses a policy record (6.3, 6.4), leniently as 6.3 asks: v=DMARC1
 * must be the first tag, other bad or unknown tags are ignored (their
 * defaults stay). Returns 0, or -1 when it is not a DMARC record.
 */
int dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r);

struct dmarc_input {
	const char *from_domain;	/* the RFC5322.From domain (lower case)
				 * from auth_header_from_domain, or NULL */
	int from_ambiguous;	/* several From fields or author domains:
				 * permerror (6.6.1) */
	int from_unusable;	/* a From field without an author domain:
				 * permerror */
	enum spf_result spf_result;	/* of the MAIL FROM identity */
	const char *spf_domain;	/* the domain SPF checked (spf_outcome.domain) */
	const struct dkim_results *dkim;	/* may be NULL */
	unsigned sample;	/* uniform 0..99, for pct= */
};

struct dmarc_outcome {
	enum dmarc_result result;
	enum dmarc_policy policy;	/* asked for: p=, or sp= for a subdomain */
	enum dmarc_policy disposition;	/* to apply (fail only): the policy, or
					 * the next one down when pct= left the
					 * message out */
	int sampled_out;		/* pct= left this message out */
	int spf_aligned, dkim_aligned;
	char dkim_domain[256];		/* the aligned d= that passed, if any */
	char from_domain[256];
	char policy_domain[256];	/* where the record was found */
	char org_domain[256];
	char problem[160];
	struct dmarc_record record;
};

/* Looks the policy up through dns and evaluates in; fills *out and
 * returns out->result. */
enum dmarc_result dmarc_check(const struct auth_dns *dns,
    const struct dmarc_input *in, struct dmarc_outcome *out);

/* The organizational domain of domain (RFC 7489 3.2) into out: the
 * registrable domain, or domain itself when it is a public suffix.
 * Returns 0 or -1 (too long). */
int dmarc_org_domain(const char *domain, char *out, size_t outsize);

/* "none", "pass", "fail", "temperror", "permerror". */
const char *dmarc_result_name(enum dmarc_result r);

/* "none", "quarantine", "reject". */
const char *dmarc_policy_name(enum dmarc_policy p);

#endif
