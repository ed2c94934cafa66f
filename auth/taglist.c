/*
 * taglist: the tag=value list parser of RFC 6376 3.2 (taglist.h), written
 * to the ABNF: a tag-spec is cut at ';' (which no tval may hold), its
 * name and value are checked character by character, and FWS may only be
 * SP, HTAB or a CRLF that continues with one of them.
 */
#include "auth/taglist.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Length of the FWS at s[0..n), 0 when none. A CRLF counts only when a
 * WSP follows it. */
static size_t
fws_len(const char *s, size_t n)
{
	size_t i = 0;

	for (;;) {
		if (i < n && is_wsp(s[i])) {
			i++;
		} else if (i + 2 < n && s[i] == '\r' && s[i + 1] == '\n' &&
		    is_wsp(s[i + 2])) {
			i += 3;
		} else {
			return i;
		}
	}
}

static int
valchar(unsigned char c)
{
	return (c >= 0x21 && c <= 0x3a) || (c >= 0x3c && c <= 0x7e);
}

/* Parses one tag-spec s[0..n); 0, or -1 with why. */
static int
spec_parse(const char *s, size_t n, struct tag *t, const char **why)
{
	size_t i = fws_len(s, n), start;

	start = i;
	if (i >= n || !isalpha((unsigned char)s[i])) {
		*why = "bad tag name";
		return -1;
	}
	while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_'))
		i++;
	t->name = s + start;
	t->namelen = i - start;
	i += fws_len(s + i, n - i);
	if (i >= n || s[i] != '=') {
		*why = "tag without '='";
		return -1;
	}
	i++;
	t->raw = s + i;
	t->rawlen = n - i;
	i += fws_len(s + i, n - i);
	t->value = s + i;
	t->valuelen = 0;
	/* tval *( 1*(WSP / FWS) tval ), then the trailing FWS */
	while (i < n) {
		size_t f;
		if (valchar((unsigned char)s[i])) {
			i++;
			t->valuelen = (size_t)(s + i - t->value);
			continue;
		}
		f = fws_len(s + i, n - i);
		if (f == 0) {
			*why = "bad character in a tag value";
			return -1;
		}
		i += f;
	}
	return 0;
}

int
taglist_parse(const char *s, size_t len, unsigned flags, struct taglist *out,
    char *why, size_t whysize)
{
	size_t pos = 0;

	out->n = 0;
	for (;;) {
		const char *semi = memchr(s + pos, ';', len - pos);
		size_t n = semi ? (size_t)(semi - (s + pos)) : len - pos;
		const char *err = NULL;
		struct tag t;

		/* An empty last tag-spec is the optional trailing ';'. */
		if (semi == NULL && fws_len(s + pos, n) == n)
			break;
		if (spec_parse(s + pos, n, &t, &err) != 0)
			goto bad;
		for (size_t i = 0; i < out->n; i++)
			if (out->tags[i].namelen == t.namelen &&
			    memcmp(out->tags[i].name, t.name, t.namelen) == 0) {
				err = "tag given twice";
				goto bad;
			}
		if (out->n >= TAGLIST_MAX) {
			snprintf(why, whysize, "more than %d tags", TAGLIST_MAX);
			return -1;
		}
		out->tags[out->n++] = t;
		goto next;
bad:
		if (!(flags & TAGLIST_LENIENT)) {
			snprintf(why, whysize, "%s at offset %zu", err, pos);
			return -1;
		}
next:
		if (semi == NULL)
			break;
		pos += n + 1;
	}
	return 0;
}

const struct tag *
taglist_get(const struct taglist *t, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < t->n; i++)
		if (t->tags[i].namelen == nl &&
		    memcmp(t->tags[i].name, name, nl) == 0)
			return &t->tags[i];
	return NULL;
}

int
tag_value_is(const struct tag *t, const char *text, int nocase)
{
	size_t n = strlen(text);

	if (t == NULL || t->valuelen != n)
		return 0;
	return nocase ? strncasecmp(t->value, text, n) == 0 :
	    memcmp(t->value, text, n) == 0;
}

long
tag_value_compact(const struct tag *t, char *out, size_t outsize)
{
	size_t o = 0;

	for (size_t i = 0; i < t->valuelen; i++) {
		char c = t->value[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (o + 1 >= outsize)
			return -1;
		out[o++] = c;
	}
	if (outsize == 0)
		return -1;
	out[o] = '\0';
	return (long)o;
}
