/*
 * header: the message header section as DKIM, DMARC and
 * Authentication-Results see it (RFC 5322 2.2, 3.6.2): splitting a
 * message stream into a bounded header section and the body, walking the
 * header fields, and the domain of the From: author.
 *
 * A header section here has CRLF line ends: the splitter turns a bare LF
 * into CRLF (files and tools write LF; the wire has CRLF).
 *
 * Threads: reentrant; a splitter belongs to one thread at a time.
 */
#ifndef AUTH_HEADER_H
#define AUTH_HEADER_H

#include <stddef.h>

#include "lib/buf.h"

/* One header field, pointing into the header section. */
struct auth_field {
	const char *raw;	/* the whole field, folded lines and final CRLF */
	size_t rawlen;
	const char *name;	/* the field name, without WSP before ':' */
	size_t namelen;
	const char *value;	/* after ':' up to the final CRLF (excluded) */
	size_t valuelen;
};

/*
 * The next field of the header section h[0..len) from *pos on; advances
 * *pos. A line that is neither a field nor a continuation is skipped.
 * Returns 1 with *f set, 0 at the end.
 */
int auth_header_next(const char *h, size_t len, size_t *pos,
    struct auth_field *f);

/* 1 when the field's name is name (ASCII case-insensitive). */
int auth_field_is(const struct auth_field *f, const char *name);

/*
 * The domain of the RFC5322.From author (RFC 7489 3.1.1): lower case,
 * without a trailing dot, into out. Returns 0; -1 when there is no From
 * field; -2 when there are several From fields, or several authors in
 * different domains (RFC 7489 6.6.1); -3 when the one From field holds
 * no author domain (no '@', a domain literal, junk such as an unclosed
 * '<' or a control character); -4 the same for a field with 8-bit bytes
 * (an internationalized address, RFC 6532, whose U-labels are not
 * looked up here).
 */
int auth_header_from_domain(const char *h, size_t len, char *out,
    size_t outsize);

/* Splits a message stream into header section and body. */
struct auth_split {
	int in_body;		/* the empty line was seen */
	int at_line_start;
	int cr;			/* a CR waits for its LF */
	int cr_at_start;
	int overflow;		/* the header section passed hdr->max */
};

void auth_split_init(struct auth_split *s);

/*
 * Feeds n bytes. Header bytes go to hdr (bare LF made CRLF; past
 * hdr->max they are dropped and overflow is set). Returns how many bytes
 * of p were header (the empty line included); when s->in_body is set
 * afterwards, p[ret..n) is body.
 */
size_t auth_split_feed(struct auth_split *s, const char *p, size_t n,
    struct buf *hdr);

/* At the end of the message: ends a header section cut short (a pending
 * CR, a last line without CRLF). */
void auth_split_end(struct auth_split *s, struct buf *hdr);

#endif
