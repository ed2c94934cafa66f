/*
 * taglist: the tag=value list of RFC 6376 3.2, used by DKIM-Signature
 * header fields, DKIM key records and (leniently) DMARC records
 * (RFC 7489 6.3).
 *
 *   tag-list  = tag-spec *( ";" tag-spec ) [ ";" ]
 *   tag-spec  = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
 *   tag-name  = ALPHA *( ALPHA / DIGIT / "_" )
 *   tag-value = [ tval *( 1*(WSP / FWS) tval ) ]
 *   tval      = 1*( %x21-3A / %x3C-7E )
 *
 * FWS is SP, HTAB, or CRLF followed by one of them. Tag names are
 * case-sensitive; a name given twice makes the whole list invalid (strict).
 * The results point into the caller's text, which must outlive them.
 *
 * Limits: TAGLIST_MAX tags. Threads: reentrant.
 */
#ifndef AUTH_TAGLIST_H
#define AUTH_TAGLIST_H

#include <stddef.h>

#define TAGLIST_MAX	64

/* Flags of taglist_parse. */
#define TAGLIST_LENIENT	1	/* skip bad or repeated tag-specs (DMARC) */

struct tag {
	const char *name;	/* tag-name */
	size_t namelen;
	const char *value;	/* tag-value without the FWS around it */
	size_t valuelen;
	const char *raw;	/* everything between '=' and ';' (or end) */
	size_t rawlen;
};

struct taglist {
	size_t n;
	struct tag tags[TAGLIST_MAX];
};

/*
 * Parses s (len bytes). Returns 0, or -1 with the reason in why
 * (whysize > 0) when the list is malformed or has more than TAGLIST_MAX
 * tags. With TAGLIST_LENIENT a malformed or repeated tag-spec is left
 * out instead (the first of repeated ones stays), and only too many
 * tags fail.
 */
int taglist_parse(const char *s, size_t len, unsigned flags, struct taglist *out,
    char *why, size_t whysize);

/* The tag named name, or NULL. */
const struct tag *taglist_get(const struct taglist *t, const char *name);

/* 1 when the tag's value equals text (case-insensitively when nocase). */
int tag_value_is(const struct tag *t, const char *text, int nocase);

/*
 * Copies the value with every FWS removed (base64 data of b=, bh=, p=)
 * into out (NUL-terminated). Returns the length, or -1 when it does not
 * fit in outsize.
 */
long tag_value_compact(const struct tag *t, char *out, size_t outsize);

#endif
