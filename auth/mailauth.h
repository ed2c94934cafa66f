/*
 * mailauth: what a receiving MX makes of SPF, DKIM and DMARC for one
 * message (RFC 7208 8, RFC 7489 6.6, RFC 8601): the reply, if the message
 * is refused, and the Authentication-Results field it carries otherwise.
 * The checks themselves are spf.h, dkim.h and dmarc.h; this is the policy
 * on top of them, the same for every session:
 *
 *   SPF at MAIL FROM     fail: 550 5.7.23 with spf_reject, else only the
 *                        header; temperror: 451 4.7.24 with
 *                        auth_tempfail = defer, else go on.
 *   DMARC at the end     fail with a reject disposition (p= or sp=, after
 *                        pct=): 550 5.7.1 with dmarc_reject, else only
 *                        the header (quarantine: the header names it);
 *                        temperror, or a reject that a temporary error
 *                        may have caused (SPF or a DKIM signature
 *                        temperror): 451 4.7.1 with auth_tempfail = defer.
 *                        permerror for several From fields or authors in
 *                        several domains (RFC 7489 6.6.1), or a From
 *                        field without an author domain (unless 8-bit:
 *                        EAI): 550 5.7.1 with dmarc_reject, whatever the
 *                        domains publish. No From field at all: none.
 *
 * Threads: reentrant. mailauth_check_message blocks on DNS (DKIM keys,
 * the DMARC record): call it from a pool thread.
 */
#ifndef AUTH_MAILAUTH_H
#define AUTH_MAILAUTH_H

#include <stddef.h>

#include "auth/auth_dns.h"
#include "auth/dkim.h"
#include "auth/dmarc.h"
#include "auth/spf.h"
#include "lib/buf.h"

struct mailauth_policy {
	const char *authserv_id;	/* ours, in Authentication-Results */
	int spf_reject;
	int dmarc_reject;
	int tempfail_defer;		/* auth_tempfail = defer */
};

#define MAILAUTH_REPLY_MAX 512

/* The SPF outcome of MAIL FROM: 0 to go on, or -1 with the reply
 * (without CRLF) in reply. */
int mailauth_spf_verdict(const struct mailauth_policy *p,
    const struct spf_outcome *spf, char *reply, size_t replysize);

/* What the end-of-data check found. */
struct mailauth_result {
	struct dkim_results dkim;
	struct dmarc_outcome dmarc;
	char from_domain[256];	/* "" when the From field has none */
	int refused;		/* 1: reply is the answer, nothing is queued */
	char reply[MAILAUTH_REPLY_MAX];
	struct buf header;	/* the Authentication-Results field (CRLF) */
};

/*
 * Ends the message in v (dkim_verifier_finish: the keys from dns), finds
 * the From domain in its header section, checks DMARC with spf (the
 * MAIL FROM outcome; NULL: not checked, as "none"), and fills *r: the
 * verdict and our Authentication-Results field. sample is 0..99 (pct=).
 * Free r->header with buf_free.
 */
void mailauth_check_message(const struct auth_dns *dns,
    const struct mailauth_policy *p, struct dkim_verifier *v,
    const struct spf_outcome *spf, unsigned sample, struct mailauth_result *r);

/* One line for the log: "spf=pass dkim=pass (example.org) dmarc=pass". */
void mailauth_summary(const struct spf_outcome *spf,
    const struct mailauth_result *r, char *out, size_t outsize);

#endif
