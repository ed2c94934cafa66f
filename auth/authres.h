/*
 * authres: the Authentication-Results header field (RFC 8601): building
 * ours from the SPF, DKIM and DMARC outcomes, and recognising incoming
 * fields that claim our authserv-id, which must be removed before ours is
 * added (RFC 8601 5).
 *
 * Threads: reentrant.
 */
#ifndef AUTH_AUTHRES_H
#define AUTH_AUTHRES_H

#include <stddef.h>

#include "auth/dkim.h"
#include "auth/dmarc.h"
#include "auth/header.h"
#include "auth/spf.h"
#include "lib/buf.h"

struct authres_input {
	const char *authserv_id;		/* our host name, usually */
	const struct spf_outcome *spf;		/* MAIL FROM; NULL: not done */
	const struct spf_outcome *spf_helo;	/* HELO; NULL: not done */
	const struct dkim_results *dkim;	/* NULL: not done */
	const struct dmarc_outcome *dmarc;	/* NULL: not done */
};

/*
 * Appends the whole field "Authentication-Results: ID; ...\r\n", folded,
 * one result per line, to out: spf= with smtp.mailfrom or smtp.helo,
 * dkim= with header.d, header.s, header.a and header.b (a comment notes
 * l= and unsigned octets), dmarc= with header.from and the policy in a
 * comment; "none" when nothing was checked. Comments and values come out
 * quoted or cleaned so that no input can break the field. Returns 0, or
 * -1 when authserv_id is not a valid token or out is full.
 */
int authres_build(const struct authres_input *in, struct buf *out);

/* 1 when f is an Authentication-Results field whose authserv-id is
 * authserv_id (compared as a domain: case-insensitive). */
int authres_field_is_ours(const struct auth_field *f, const char *authserv_id);

/*
 * Copies the header section h[0..len) to out without the
 * Authentication-Results fields that claim authserv_id. Returns how many
 * were left out, or -1 when out is full.
 */
int authres_strip(const char *h, size_t len, const char *authserv_id,
    struct buf *out);

#endif
