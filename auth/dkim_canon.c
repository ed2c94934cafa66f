/*
 * dkim_canon: the canonicalization algorithms of RFC 6376 3.4 and the
 * SHA-256 body hash over a body that streams in.
 *
 * The body canonicalizer is a small state machine, so chunks may split a
 * CRLF or a run of whitespace anywhere: line ends are held back until
 * some content follows (trailing empty lines are ignored), and for
 * relaxed a run of WSP is held until the line goes on (trailing WSP is
 * removed, inner runs become one SP). A bare LF counts as CRLF; a CR not
 * followed by LF is content.
 */
#include "auth/dkim_internal.h"

#include <ctype.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/header.h"
#include "lib/util.h"

/* ---- header fields ---- */

static int
wsp(char c)
{
	return c == ' ' || c == '\t';
}

int
dkim_canon_header(enum dkim_canon c, const char *field, size_t len, int crlf,
    struct buf *out)
{
	const char *colon;
	size_t end = len, name_end, i;
	int pending = 0, seen = 0;

	if (end >= 2 && field[end - 2] == '\r' && field[end - 1] == '\n')
		end -= 2;
	if (c == DKIM_CANON_SIMPLE) {
		if (buf_append(out, field, end) != 0)
			return -1;
		return crlf ? buf_append(out, "\r\n", 2) : 0;
	}
	colon = memchr(field, ':', end);
	if (colon == NULL)
		return -1;
	name_end = (size_t)(colon - field);
	while (name_end > 0 && wsp(field[name_end - 1]))
		name_end--;
	for (i = 0; i < name_end; i++) {
		char l = (char)tolower((unsigned char)field[i]);
		if (buf_append(out, &l, 1) != 0)
			return -1;
	}
	if (buf_append(out, ":", 1) != 0)
		return -1;
	/* The value: unfolded, WSP runs made one SP, none at either end. */
	for (i = (size_t)(colon - field) + 1; i < end; i++) {
		char ch = field[i];
		if (ch == '\r' && i + 1 < end && field[i + 1] == '\n') {
			i++;
			continue;
		}
		if (wsp(ch)) {
			pending = 1;
			continue;
		}
		if (pending && seen && buf_append(out, " ", 1) != 0)
			return -1;
		pending = 0;
		seen = 1;
		if (buf_append(out, &ch, 1) != 0)
			return -1;
	}
	return crlf ? buf_append(out, "\r\n", 2) : 0;
}

/* ---- body hashes ---- */

struct dkim_bodyhash {
	enum dkim_canon canon;
	gnutls_hash_hd_t hd;
	uint64_t limit;		/* UINT64_MAX: no l= */
	uint64_t hashed, total;
	uint64_t crlfs;		/* line ends held back */
	int wsp;		/* relaxed: a WSP run held back */
	int cr;			/* a CR waits for its LF */
	int content;		/* relaxed: something was emitted */
};

struct dkim_bodyhash *
dkim_bodyhash_new(enum dkim_canon canon, int64_t limit)
{
	struct dkim_bodyhash *h = xcalloc(1, sizeof *h);

	h->canon = canon;
	h->limit = limit < 0 ? UINT64_MAX : (uint64_t)limit;
	if (gnutls_hash_init(&h->hd, GNUTLS_DIG_SHA256) < 0)
		abort();	/* only out of memory can fail here */
	return h;
}

static void
sink(struct dkim_bodyhash *h, const void *p, size_t n)
{
	h->total += n;
	if (h->hashed < h->limit) {
		uint64_t room = h->limit - h->hashed;
		size_t k = room < n ? (size_t)room : n;
		gnutls_hash(h->hd, p, k);
		h->hashed += k;
	}
}

static void
flush_crlfs(struct dkim_bodyhash *h)
{
	static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
	    "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";

	while (h->crlfs > 0) {
		uint64_t k = h->crlfs < 16 ? h->crlfs : 16;
		sink(h, crlfs, (size_t)k * 2);
		h->crlfs -= k;
	}
}

static void
content(struct dkim_bodyhash *h, const char *p, size_t n)
{
	flush_crlfs(h);
	if (h->wsp) {
		sink(h, " ", 1);
		h->wsp = 0;
	}
	sink(h, p, n);
	h->content = 1;
}

static void
line_end(struct dkim_bodyhash *h)
{
	h->wsp = 0;
	h->crlfs++;
}

void
dkim_bodyhash_update(struct dkim_bodyhash *h, const void *data, size_t n)
{
	const char *p = data;
	int relaxed = h->canon == DKIM_CANON_RELAXED;
	size_t i = 0;

	while (i < n) {
		char c = p[i];
		size_t j;
		if (h->cr) {
			h->cr = 0;
			if (c == '\n') {
				line_end(h);
				i++;
				continue;
			}
			content(h, "\r", 1);
		}
		if (c == '\r') {
			h->cr = 1;
			i++;
			continue;
		}
		if (c == '\n') {
			line_end(h);
			i++;
			continue;
		}
		if (relaxed && wsp(c)) {
			h->wsp = 1;
			i++;
			continue;
		}
		for (j = i + 1; j < n && p[j] != '\r' && p[j] != '\n' &&
		    !(relaxed && wsp(p[j])); j++)
			;
		content(h, p + i, j - i);
		i = j;
	}
}

void
dkim_bodyhash_final(struct dkim_bodyhash *h, uint8_t out[32],
    uint64_t *canon_len)
{
	if (h->cr) {
		h->cr = 0;
		content(h, "\r", 1);
	}
	/* Simple: the body ends in exactly one CRLF (an empty body is one
	 * CRLF). Relaxed: a non-empty body ends in one CRLF, an empty one
	 * stays empty. */
	if (h->canon == DKIM_CANON_SIMPLE || h->content)
		sink(h, "\r\n", 2);
	gnutls_hash_output(h->hd, out);
	if (canon_len != NULL)
		*canon_len = h->total;
}

void
dkim_bodyhash_free(struct dkim_bodyhash **hp)
{
	struct dkim_bodyhash *h = *hp;

	if (h == NULL)
		return;
	gnutls_hash_deinit(h->hd, NULL);
	free(h);
	*hp = NULL;
}

/* ---- the header hash input ---- */

struct field_ref {
	const char *raw;
	size_t len;
	const char *name;
	size_t namelen;
	int used;
};

int
dkim_header_input(const char *hdrs, size_t hlen, enum dkim_canon c,
    const struct dkim_hname *names, size_t n, const char *skip,
    const char *sigfield, size_t siglen, struct buf *out)
{
	struct field_ref *f = NULL;
	struct auth_field af;
	size_t nf = 0, cap = 0, pos = 0;
	int rc = 0;

	while (auth_header_next(hdrs, hlen, &pos, &af)) {
		if (af.raw == skip)
			continue;
		if (nf == cap) {
			cap = cap ? cap * 2 : 32;
			f = xrealloc(f, cap * sizeof *f);
		}
		f[nf].raw = af.raw;
		f[nf].len = af.rawlen;
		f[nf].name = af.name;
		f[nf].namelen = af.namelen;
		f[nf].used = 0;
		nf++;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		for (size_t k = nf; k > 0; k--) {
			struct field_ref *r = &f[k - 1];
			if (r->used || r->namelen != names[i].len ||
			    strncasecmp(r->name, names[i].name, r->namelen) != 0)
				continue;
			r->used = 1;
			rc = dkim_canon_header(c, r->raw, r->len, 1, out);
			break;
		}
	}
	if (rc == 0)
		rc = dkim_canon_header(c, sigfield, siglen, 0, out);
	free(f);
	return rc;
}

/* ---- base64 ---- */

long
dkim_base64_decode(const char *s, size_t len, uint8_t *out, size_t outsize)
{
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)s, (unsigned)len };
	gnutls_datum_t dec = { NULL, 0 };
	long n;

	if (len == 0)
		return 0;
	if (len > 4 * outsize / 3 + 8 || len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/' &&
		    s[i] != '=')
			return -1;
	if (gnutls_base64_decode2(&in, &dec) < 0)
		return -1;
	if (dec.size > outsize) {
		gnutls_free(dec.data);
		return -1;
	}
	memcpy(out, dec.data, dec.size);
	n = (long)dec.size;
	gnutls_free(dec.data);
	return n;
}

int
dkim_base64_encode(const uint8_t *p, size_t n, struct buf *out)
{
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)p, (unsigned)n };
	gnutls_datum_t enc = { NULL, 0 };
	int rc;

	if (gnutls_base64_encode2(&in, &enc) < 0)
		return -1;
	rc = buf_append(out, enc.data, enc.size);
	gnutls_free(enc.data);
	return rc;
}

int
dkim_name_ok(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0;
}
