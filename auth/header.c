/*
 * header: header sections (header.h): the stream splitter, the field
 * walker and the From: author's domain, with RFC 5322 comments, quoted
 * strings, angle addresses and groups taken apart by hand.
 */
#include "auth/header.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

/* ---- fields ---- */

/* End of the line at h[i] (index of its LF + 1, or len). */
static size_t
line_end(const char *h, size_t len, size_t i)
{
	const char *nl = memchr(h + i, '\n', len - i);

	return nl ? (size_t)(nl - h) + 1 : len;
}

int
auth_header_next(const char *h, size_t len, size_t *pos, struct auth_field *f)
{
	while (*pos < len) {
		size_t start = *pos, end = line_end(h, len, start), colon, nl;

		/* The field continues while lines start with WSP. */
		while (end < len && (h[end] == ' ' || h[end] == '\t'))
			end = line_end(h, len, end);
		*pos = end;
		if (h[start] == ' ' || h[start] == '\t')
			continue;	/* a continuation with no field: junk */
		for (colon = start; colon < end && h[colon] != ':'; colon++)
			if ((unsigned char)h[colon] < 0x21 ||
			    (unsigned char)h[colon] > 0x7e) {
				if (h[colon] != ' ' && h[colon] != '\t')
					break;
			}
		if (colon >= end || h[colon] != ':')
			continue;
		nl = colon;
		while (nl > start && (h[nl - 1] == ' ' || h[nl - 1] == '\t'))
			nl--;
		if (nl == start || memchr(h + start, ' ', nl - start) ||
		    memchr(h + start, '\t', nl - start))
			continue;
		f->raw = h + start;
		f->rawlen = end - start;
		f->name = h + start;
		f->namelen = nl - start;
		f->value = h + colon + 1;
		f->valuelen = end - colon - 1;
		if (f->valuelen >= 2 && h[end - 2] == '\r' && h[end - 1] == '\n')
			f->valuelen -= 2;
		else if (f->valuelen >= 1 && h[end - 1] == '\n')
			f->valuelen -= 1;
		return 1;
	}
	return 0;
}

int
auth_field_is(const struct auth_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->namelen == n && strncasecmp(f->name, name, n) == 0;
}

/* ---- the From: author ---- */

/* Skips a comment starting at s[i] == '(' (nested, with quoted-pairs). */
static size_t
skip_comment(const char *s, size_t n, size_t i)
{
	int depth = 0;

	for (; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		else if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && --depth == 0)
			return i + 1;
	}
	return n;
}

static size_t
skip_quoted(const char *s, size_t n, size_t i)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return n;
}

/* The domain of one addr-spec text s[0..n) (comments and quotes may
 * remain around it) into out; 0 or -1. */
static int
addr_domain(const char *s, size_t n, char *out, size_t outsize)
{
	size_t at = n, o = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] == '"')
			i = skip_quoted(s, n, i) - 1;
		else if (s[i] == '(')
			i = skip_comment(s, n, i) - 1;
		else if (s[i] == '@')
			at = i;
	}
	if (at == n)
		return -1;
	for (i = at + 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '(') {
			i = skip_comment(s, n, i) - 1;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (!isalnum(c) && c != '-' && c != '.' && c != '_')
			return -1;	/* a domain literal or junk */
		if (o + 1 >= outsize)
			return -1;
		out[o++] = (char)tolower(c);
	}
	if (o > 0 && out[o - 1] == '.')
		o--;
	if (o == 0 || out[0] == '.')
		return -1;
	out[o] = '\0';
	return 0;
}

/* The domains of a From value, one mailbox at a time. */
static int
from_value_domain(const char *v, size_t n, char *out, size_t outsize)
{
	char dom[256];
	size_t start = 0, i;
	const char *lt = NULL, *gt = NULL;
	int found = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && v[i] == '"') {
			i = skip_quoted(v, n, i) - 1;
			continue;
		}
		if (i < n && v[i] == '(') {
			i = skip_comment(v, n, i) - 1;
			continue;
		}
		if (i < n && v[i] == '<') {
			const char *e = memchr(v + i, '>', n - i);
			if (e == NULL || lt != NULL)
				return -1;	/* unbalanced, or two addresses */
			lt = v + i;
			gt = e;
			i = (size_t)(e - v);
			continue;
		}
		/* A group's display name ends at ':'; its list at ';'. */
		if (i < n && v[i] == ':' && lt == NULL) {
			start = i + 1;
			continue;
		}
		if (i < n && v[i] != ',' && v[i] != ';')
			continue;
		if (lt != NULL) {
			if (addr_domain(lt + 1, (size_t)(gt - lt - 1), dom,
			    sizeof dom) != 0)
				return -1;
		} else if (addr_domain(v + start, i - start, dom, sizeof dom) != 0) {
			start = i + 1;
			continue;	/* an empty list item or a bare name */
		}
		lt = gt = NULL;
		if (found && strcmp(dom, out) != 0)
			return -2;
		if (!found && str_copy(out, dom, outsize) != 0)
			return -1;
		found = 1;
		start = i + 1;
	}
	return found ? 0 : -1;
}

static int
field_8bit(const struct auth_field *f)
{
	for (size_t i = 0; i < f->valuelen; i++)
		if ((unsigned char)f->value[i] >= 0x80)
			return 1;
	return 0;
}

int
auth_header_from_domain(const char *h, size_t len, char *out, size_t outsize)
{
	struct auth_field f;
	size_t pos = 0;
	int nfrom = 0, rc = -1;

	while (auth_header_next(h, len, &pos, &f))
		if (auth_field_is(&f, "From")) {
			if (++nfrom > 1)
				return -2;
			rc = from_value_domain(f.value, f.valuelen, out, outsize);
			if (rc == -1)
				rc = field_8bit(&f) ? -4 : -3;
		}
	return rc;
}

/* ---- the splitter ---- */

void
auth_split_init(struct auth_split *s)
{
	memset(s, 0, sizeof *s);
	s->at_line_start = 1;
}

static void
hdr_put(struct auth_split *s, struct buf *hdr, const char *p, size_t n)
{
	if (!s->overflow && buf_append(hdr, p, n) != 0)
		s->overflow = 1;
}

size_t
auth_split_feed(struct auth_split *s, const char *p, size_t n, struct buf *hdr)
{
	size_t i = 0;

	while (i < n && !s->in_body) {
		char c = p[i];
		if (s->cr) {
			s->cr = 0;
			if (c == '\n') {
				i++;
				if (s->cr_at_start) {
					s->in_body = 1;
					break;
				}
				hdr_put(s, hdr, "\r\n", 2);
				s->at_line_start = 1;
				continue;
			}
			hdr_put(s, hdr, "\r", 1);	/* a lone CR */
			s->at_line_start = 0;
		}
		if (c == '\r') {
			s->cr = 1;
			s->cr_at_start = s->at_line_start;
			i++;
			continue;
		}
		if (c == '\n') {
			i++;
			if (s->at_line_start) {
				s->in_body = 1;
				break;
			}
			hdr_put(s, hdr, "\r\n", 2);
			s->at_line_start = 1;
			continue;
		}
		/* a run of ordinary bytes */
		{
			size_t j = i;
			while (j < n && p[j] != '\r' && p[j] != '\n')
				j++;
			hdr_put(s, hdr, p + i, j - i);
			s->at_line_start = 0;
			i = j;
		}
	}
	return i;
}

void
auth_split_end(struct auth_split *s, struct buf *hdr)
{
	if (s->in_body)
		return;
	if (s->cr) {
		s->cr = 0;
		if (!s->cr_at_start) {
			hdr_put(s, hdr, "\r\n", 2);
			s->at_line_start = 1;
		}
	}
	if (!s->at_line_start)
		hdr_put(s, hdr, "\r\n", 2);
	s->at_line_start = 1;
}
