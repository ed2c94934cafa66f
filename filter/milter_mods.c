/*
 * milter_mods: the checked list of message changes (see milter_mods.h).
 */
#include "filter/milter_mods.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

void
milter_mods_init(struct milter_mods *m, size_t body_max)
{
	memset(m, 0, sizeof *m);
	buf_init(&m->body, body_max);
	buf_init(&m->pending, body_max);
}

static size_t
str_bytes(const char *s)
{
	return s != NULL ? strlen(s) : 0;
}

static size_t
mod_bytes(const struct milter_mod *d)
{
	return str_bytes(d->name) + str_bytes(d->value) + str_bytes(d->addr) +
	    str_bytes(d->args) + str_bytes(d->text);
}

static void
mod_free(struct milter_mod *d)
{
	free(d->name);
	free(d->value);
	free(d->addr);
	free(d->args);
	free(d->text);
}

void
milter_mods_reset(struct milter_mods *m)
{
	for (size_t i = 0; i < m->n; i++)
		mod_free(&m->v[i]);
	m->n = 0;
	m->bytes = 0;
	m->committed = 0;
	m->body_replaced = 0;
	m->pending_body = 0;
	buf_free(&m->body);
	buf_free(&m->pending);
	free(m->quarantine);
	m->quarantine = NULL;
}

void
milter_mods_free(struct milter_mods *m)
{
	size_t max = m->body.max;

	milter_mods_reset(m);
	free(m->v);
	milter_mods_init(m, max);
}

/* A new entry whose strings will hold bytes bytes; NULL (why) when a
 * limit would be passed. */
static struct milter_mod *
mods_add(struct milter_mods *m, size_t milter, enum milter_mod_kind kind,
    size_t bytes, const char **why_r)
{
	struct milter_mod *d;

	if (m->n >= MILTER_MODS_MAX) {
		*why_r = "too many modifications";
		return NULL;
	}
	if (bytes > MILTER_MODS_BYTES_MAX - m->bytes) {
		*why_r = "modifications too large";
		return NULL;
	}
	m->bytes += bytes;
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 8;
		m->v = xrealloc(m->v, m->cap * sizeof *m->v);
	}
	d = &m->v[m->n++];
	memset(d, 0, sizeof *d);
	d->kind = kind;
	d->milter = milter;
	return d;
}

int
milter_header_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MILTER_HEADER_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126 || c == ':')
			return 0;
	}
	return 1;
}

int
milter_header_value_format(const char *v, int leadspc, struct buf *out,
    const char **why_r)
{
	if (strlen(v) > MILTER_HEADER_VALUE_MAX) {
		*why_r = "header value too long";
		return -1;
	}
	if (!leadspc && buf_puts(out, " ") != 0)
		goto full;
	for (const char *p = v; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\r' || c == '\n') {
			if (c == '\r') {
				if (p[1] != '\n') {
					*why_r = "bare CR in header value";
					return -1;
				}
				p++;
			}
			if (p[1] != ' ' && p[1] != '\t') {
				*why_r = p[1] == '\0' ?
				    "line break at the end of a header value" :
				    "folded header line without leading space";
				return -1;
			}
			if (buf_puts(out, "\r\n") != 0)
				goto full;
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			*why_r = "control byte in header value";
			return -1;
		}
		if (buf_append(out, p, 1) != 0)
			goto full;
	}
	return 0;
full:
	*why_r = "header value too long";
	return -1;
}

int
milter_mods_header(struct milter_mods *m, size_t milter,
    enum milter_mod_kind kind, uint32_t index, const char *name,
    const char *value, int leadspc, const char **why_r)
{
	struct milter_mod *d;
	struct buf b;

	if (!milter_header_name_ok(name)) {
		*why_r = "bad header name";
		return -1;
	}
	if (kind == MILTER_MOD_CHANGE_HEADER && value[0] == '\0')
		kind = MILTER_MOD_DELETE_HEADER;
	buf_init(&b, MILTER_HEADER_VALUE_MAX + 2);
	if (kind != MILTER_MOD_DELETE_HEADER &&
	    milter_header_value_format(value, leadspc, &b, why_r) != 0) {
		buf_free(&b);
		return -1;
	}
	if ((d = mods_add(m, milter, kind, strlen(name) + b.len, why_r)) == NULL) {
		buf_free(&b);
		return -1;
	}
	d->index = index;
	d->name = xstrdup(name);
	if (kind != MILTER_MOD_DELETE_HEADER)
		d->value = buf_steal(&b, NULL);
	buf_free(&b);
	return 0;
}

/* n bytes of s: printable ASCII, or 8-bit too (UTF-8 addresses), no
 * control byte. */
static int
text_ok(const char *s, size_t n, int allow_8bit)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || (c >= 0x80 && !allow_8bit))
			return 0;
	}
	return 1;
}

int
milter_mods_addr(struct milter_mods *m, size_t milter,
    enum milter_mod_kind kind, const char *addr, const char *args,
    const char **why_r)
{
	struct milter_mod *d;
	size_t n = strlen(addr);
	const char *a = addr;

	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>') {
		a = addr + 1;
		n -= 2;
	}
	if (n > MILTER_ADDR_MAX || !text_ok(a, n, 1) ||
	    memchr(a, '<', n) != NULL || memchr(a, '>', n) != NULL ||
	    memchr(a, ' ', n) != NULL) {
		*why_r = "bad address";
		return -1;
	}
	if (n == 0 && kind != MILTER_MOD_CHANGE_FROM) {
		*why_r = "empty recipient";
		return -1;
	}
	if (args != NULL && args[0] == '\0')
		args = NULL;
	if (args != NULL && (strlen(args) > MILTER_ARGS_MAX ||
	    !text_ok(args, strlen(args), 0))) {
		*why_r = "bad ESMTP arguments";
		return -1;
	}
	if ((d = mods_add(m, milter, kind, n + str_bytes(args), why_r)) == NULL)
		return -1;
	d->addr = xstrndup(a, n);
	d->args = args != NULL ? xstrdup(args) : NULL;
	return 0;
}

int
milter_mods_body(struct milter_mods *m, size_t milter, int first,
    const void *data, size_t len, const char **why_r)
{
	if (first) {
		if (mods_add(m, milter, MILTER_MOD_REPLACE_BODY, 0, why_r) == NULL)
			return -1;
		buf_reset(&m->pending);
		m->pending_body = 1;
	}
	if (buf_append(&m->pending, data, len) != 0) {
		*why_r = "replacement body too large";
		return -1;
	}
	return 0;
}

void
milter_mods_commit(struct milter_mods *m)
{
	if (m->pending_body) {
		struct buf t = m->body;

		m->body = m->pending;
		m->pending = t;
		buf_reset(&m->pending);
		m->body_replaced = 1;
		m->pending_body = 0;
	}
	m->committed = m->n;
}

void
milter_mods_rollback(struct milter_mods *m)
{
	while (m->n > m->committed) {
		struct milter_mod *d = &m->v[--m->n];

		m->bytes -= mod_bytes(d);
		mod_free(d);
	}
	buf_reset(&m->pending);
	m->pending_body = 0;
	free(m->quarantine);
	m->quarantine = NULL;
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].kind == MILTER_MOD_QUARANTINE)
			m->quarantine = xstrdup(m->v[i].text);
}

int
milter_mods_quarantine(struct milter_mods *m, size_t milter,
    const char *reason, const char **why_r)
{
	struct milter_mod *d;
	char *r = xstrndup(reason, 512);

	if ((d = mods_add(m, milter, MILTER_MOD_QUARANTINE, strlen(r), why_r)) == NULL) {
		free(r);
		return -1;
	}
	for (char *p = r; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	d->text = r;
	free(m->quarantine);
	m->quarantine = xstrdup(r);
	return 0;
}

/* One header field of a header section: its bytes (folded lines and line
 * end included), or a new text made by a change. */
struct field {
	const char *p;
	size_t n;
	char *made;		/* owned; NULL: p points into the message */
};

static int
field_is(const struct field *f, const char *name)
{
	size_t nl = header_name_len(f->p, f->n);

	return nl == strlen(name) && strncasecmp(f->p, name, nl) == 0;
}

/* The index of the idx-th (1-based) field named name, or nf. */
static size_t
field_find(const struct field *v, size_t nf, const char *name, uint32_t idx)
{
	uint32_t seen = 0;

	for (size_t i = 0; i < nf; i++)
		if (field_is(&v[i], name) && ++seen == idx)
			return i;
	return nf;
}

static void
field_make(struct field *f, const char *name, const char *value)
{
	size_t n = strlen(name) + 1 + strlen(value) + 2;

	free(f->made);
	f->made = xmalloc(n + 1);
	snprintf(f->made, n + 1, "%s:%s\r\n", name, value);
	f->p = f->made;
	f->n = n;
}

int
milter_mods_apply_header(const struct milter_mods *m, const char *hdr,
    size_t len, struct buf *out)
{
	struct field *v = NULL;
	size_t nf = 0, cap = 0;
	int rc = 0;

	/* Split into fields: a line starting with SP or HTAB continues the
	 * field before it. */
	for (size_t off = 0; off < len;) {
		const char *nl = memchr(hdr + off, '\n', len - off);
		size_t n = nl != NULL ? (size_t)(nl - (hdr + off)) + 1 : len - off;

		if (nf > 0 && (hdr[off] == ' ' || hdr[off] == '\t')) {
			v[nf - 1].n += n;
		} else {
			if (nf == cap) {
				cap = cap ? cap * 2 : 32;
				v = xrealloc(v, cap * sizeof *v);
			}
			v[nf].p = hdr + off;
			v[nf].n = n;
			v[nf].made = NULL;
			nf++;
		}
		off += n;
	}
	for (size_t i = 0; i < m->n; i++) {
		const struct milter_mod *d = &m->v[i];
		size_t at;

		switch (d->kind) {
		case MILTER_MOD_ADD_HEADER:
		case MILTER_MOD_INSERT_HEADER:
		case MILTER_MOD_CHANGE_HEADER:
			at = d->kind == MILTER_MOD_ADD_HEADER ? nf :
			    d->kind == MILTER_MOD_INSERT_HEADER ?
			    (d->index < nf ? d->index : nf) :
			    field_find(v, nf, d->name, d->index);
			if (at < nf && d->kind == MILTER_MOD_CHANGE_HEADER) {
				field_make(&v[at], d->name, d->value);
				break;
			}
			if (nf == cap) {
				cap = cap ? cap * 2 : 32;
				v = xrealloc(v, cap * sizeof *v);
			}
			memmove(&v[at + 1], &v[at], (nf - at) * sizeof *v);
			v[at].made = NULL;
			field_make(&v[at], d->name, d->value);
			nf++;
			break;
		case MILTER_MOD_DELETE_HEADER:
			at = field_find(v, nf, d->name, d->index);
			if (at < nf) {
				free(v[at].made);
				memmove(&v[at], &v[at + 1], (nf - at - 1) * sizeof *v);
				nf--;
			}
			break;
		default:
			break;
		}
	}
	for (size_t i = 0; i < nf; i++) {
		/* A last line without its line end gets one: more may follow. */
		if (rc == 0 && (buf_append(out, v[i].p, v[i].n) != 0 ||
		    (v[i].p[v[i].n - 1] != '\n' && buf_puts(out, "\r\n") != 0)))
			rc = -1;
		free(v[i].made);
	}
	free(v);
	return rc;
}

const char *
milter_mod_kind_name(enum milter_mod_kind k)
{
	switch (k) {
	case MILTER_MOD_ADD_HEADER: return "add_header";
	case MILTER_MOD_INSERT_HEADER: return "insert_header";
	case MILTER_MOD_CHANGE_HEADER: return "change_header";
	case MILTER_MOD_DELETE_HEADER: return "delete_header";
	case MILTER_MOD_REPLACE_BODY: return "replace_body";
	case MILTER_MOD_CHANGE_FROM: return "change_from";
	case MILTER_MOD_ADD_RCPT: return "add_rcpt";
	case MILTER_MOD_DELETE_RCPT: return "delete_rcpt";
	case MILTER_MOD_QUARANTINE: return "quarantine";
	}
	return "unknown";
}
