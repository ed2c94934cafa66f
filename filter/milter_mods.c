/*
 * milter_mods: the checked list of message changes (see milter_mods.h).
 */
#include "filter/milter_mods.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

void
milter_mods_init(struct milter_mods *m, size_t body_max)
{
	memset(m, 0, sizeof *m);
	buf_init(&m->body, body_max);
	buf_init(&m->pending, body_max);
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

static struct milter_mod *
mods_add(struct milter_mods *m, size_t milter, enum milter_mod_kind kind,
    const char **why_r)
{
	struct milter_mod *d;

	if (m->n >= MILTER_MODS_MAX) {
		*why_r = "too many modifications";
		return NULL;
	}
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
	if ((d = mods_add(m, milter, kind, why_r)) == NULL) {
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
	if ((d = mods_add(m, milter, kind, why_r)) == NULL)
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
		if (mods_add(m, milter, MILTER_MOD_REPLACE_BODY, why_r) == NULL)
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
	while (m->n > m->committed)
		mod_free(&m->v[--m->n]);
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
	char *r;

	if ((d = mods_add(m, milter, MILTER_MOD_QUARANTINE, why_r)) == NULL)
		return -1;
	r = xstrndup(reason, 512);
	for (char *p = r; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	d->text = r;
	free(m->quarantine);
	m->quarantine = xstrdup(r);
	return 0;
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
