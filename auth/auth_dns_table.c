/*
 * auth_dns_table: the in-memory zone of auth_dns_table.h. Records sit in
 * one array in the order they were added (answers keep that order, as a
 * test zone wants); a lookup scans it, which is plenty for test zones.
 */
#include "auth/auth_dns_table.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/util.h"

#define TABLE_NAME_MAX	1024
#define TABLE_TXT_MAX	65536
#define TABLE_CNAME_HOPS 8

enum {
	T_CNAME = AUTH_DNS_TXT + 1,
	T_TEMP,
	T_ANY,			/* TEMP for every type */
};

struct table_rec {
	char *name;		/* lower case, no trailing dot */
	int type;		/* enum auth_dns_type, T_CNAME or T_TEMP */
	int temp_type;		/* T_TEMP: the type that fails, or T_ANY */
	struct auth_dns_rr rr;	/* name holds the target for CNAME */
};

struct table {
	struct table_rec *recs;
	size_t n, cap;
	unsigned long queries;	/* atomic */
};

static void table_lookup(void *ctx, const char *name, enum auth_dns_type type,
    struct auth_dns_answer *ans);
static void table_free(void *ctx);

static const struct auth_dns_ops table_ops = {
	.lookup = table_lookup,
	.free = table_free,
};

struct auth_dns *
auth_dns_table_new(void)
{
	struct auth_dns *d = xcalloc(1, sizeof *d);

	d->ops = &table_ops;
	d->ctx = xcalloc(1, sizeof(struct table));
	return d;
}

static struct table *
table_of(const struct auth_dns *d)
{
	if (d == NULL || d->ops != &table_ops)
		abort();	/* a bug: not a table */
	return d->ctx;
}

static void
table_free(void *ctx)
{
	struct table *t = ctx;

	for (size_t i = 0; i < t->n; i++) {
		free(t->recs[i].name);
		free(t->recs[i].rr.name);
		free(t->recs[i].rr.text);
	}
	free(t->recs);
	free(t);
}

unsigned long
auth_dns_table_queries(const struct auth_dns *d)
{
	struct table *t = table_of(d);

	return __atomic_load_n(&t->queries, __ATOMIC_RELAXED);
}

/* Lower case without the trailing dot into out; -1 when too long. */
static int
name_key(const char *name, size_t len, char *out, size_t outsize)
{
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len >= outsize)
		return -1;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)name[i]);
	out[len] = '\0';
	return 0;
}

static int
type_parse(const char *s)
{
	static const struct { const char *name; int type; } types[] = {
		{ "A", AUTH_DNS_A }, { "AAAA", AUTH_DNS_AAAA },
		{ "MX", AUTH_DNS_MX }, { "PTR", AUTH_DNS_PTR },
		{ "TXT", AUTH_DNS_TXT }, { "CNAME", T_CNAME },
		{ "TEMP", T_TEMP },
	};

	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (strcasecmp(s, types[i].name) == 0)
			return types[i].type;
	return -1;
}

/* A host name value (MX exchange, PTR, CNAME): one word. */
static char *
target_parse(const char *v)
{
	char key[TABLE_NAME_MAX];
	size_t len = strlen(v);

	if (len == 0 || strpbrk(v, " \t") != NULL)
		return NULL;
	if (strcmp(v, ".") == 0)
		return xstrdup("");
	if (name_key(v, len, key, sizeof key) != 0)
		return NULL;
	return xstrdup(key);
}

int
auth_dns_table_add(struct auth_dns *d, const char *name, const char *type,
    const char *value, size_t len)
{
	struct table *t = table_of(d);
	struct table_rec r;
	char key[TABLE_NAME_MAX];
	char *end;
	long pref;

	memset(&r, 0, sizeof r);
	if (name == NULL || type == NULL || value == NULL ||
	    t->n >= AUTH_DNS_TABLE_MAX ||
	    name_key(name, strlen(name), key, sizeof key) != 0 ||
	    (r.type = type_parse(type)) < 0)
		return -1;
	switch (r.type) {
	case AUTH_DNS_TXT:
		if (len > TABLE_TXT_MAX)
			return -1;
		r.rr.text = xmalloc(len + 1);
		memcpy(r.rr.text, value, len);
		r.rr.text[len] = '\0';
		r.rr.len = len;
		break;
	case AUTH_DNS_A:
	case AUTH_DNS_AAAA:
		if (auth_ip_parse(value, &r.rr.ip) != 0)
			return -1;
		/* An AAAA record keeps a v4-mapped address as IPv6. */
		if (r.type == AUTH_DNS_AAAA && r.rr.ip.family == AF_INET) {
			if (strchr(value, ':') == NULL)
				return -1;
			memmove(r.rr.ip.b + 12, r.rr.ip.b, 4);
			memset(r.rr.ip.b, 0, 10);
			r.rr.ip.b[10] = r.rr.ip.b[11] = 0xff;
			r.rr.ip.family = AF_INET6;
		}
		if ((r.type == AUTH_DNS_A) != (r.rr.ip.family == AF_INET))
			return -1;
		break;
	case AUTH_DNS_MX:
		pref = strtol(value, &end, 10);
		if (end == value || pref < 0 || pref > 65535 || *end != ' ')
			return -1;
		while (*end == ' ')
			end++;
		r.rr.pref = (uint16_t)pref;
		if ((r.rr.name = target_parse(end)) == NULL)
			return -1;
		break;
	case AUTH_DNS_PTR:
	case T_CNAME:
		if ((r.rr.name = target_parse(value)) == NULL ||
		    (r.type == T_CNAME && r.rr.name[0] == '\0')) {
			free(r.rr.name);
			return -1;
		}
		break;
	case T_TEMP:
		if (value[0] == '\0') {
			r.temp_type = T_ANY;
		} else {
			r.temp_type = type_parse(value);
			if (r.temp_type < 0 || r.temp_type > AUTH_DNS_TXT)
				return -1;
		}
		break;
	default:
		return -1;
	}
	r.name = xstrdup(key);
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->recs = xrealloc(t->recs, t->cap * sizeof *t->recs);
	}
	t->recs[t->n++] = r;
	return 0;
}

static void
rr_copy(struct auth_dns_rr *dst, const struct auth_dns_rr *src)
{
	*dst = *src;
	if (src->name != NULL)
		dst->name = xstrdup(src->name);
	if (src->text != NULL) {
		dst->text = xmalloc(src->len + 1);
		memcpy(dst->text, src->text, src->len + 1);
	}
}

static void
table_lookup(void *ctx, const char *name, enum auth_dns_type type,
    struct auth_dns_answer *ans)
{
	struct table *t = ctx;
	char cur[TABLE_NAME_MAX];

	__atomic_add_fetch(&t->queries, 1, __ATOMIC_RELAXED);
	if (name_key(name, strlen(name), cur, sizeof cur) != 0 || cur[0] == '\0') {
		ans->status = AUTH_DNS_NXDOMAIN;
		return;
	}
	for (int hop = 0; hop <= TABLE_CNAME_HOPS; hop++) {
		const char *cname = NULL;
		int exists = 0;
		size_t count = 0;

		for (size_t i = 0; i < t->n; i++) {
			const struct table_rec *r = &t->recs[i];
			if (strcmp(r->name, cur) != 0)
				continue;
			exists = 1;
			if (r->type == T_TEMP &&
			    (r->temp_type == T_ANY || r->temp_type == (int)type)) {
				ans->status = AUTH_DNS_TEMP;
				str_copy(ans->detail, "timed out (test zone)",
				    sizeof ans->detail);
				return;
			}
			if (r->type == (int)type)
				count++;
			else if (r->type == T_CNAME)
				cname = r->rr.name;
		}
		if (count > 0) {
			ans->rr = xcalloc(count, sizeof *ans->rr);
			for (size_t i = 0; i < t->n; i++)
				if (t->recs[i].type == (int)type &&
				    strcmp(t->recs[i].name, cur) == 0)
					rr_copy(&ans->rr[ans->n++], &t->recs[i].rr);
			ans->status = AUTH_DNS_OK;
			return;
		}
		if (cname == NULL) {
			ans->status = exists ? AUTH_DNS_NODATA : AUTH_DNS_NXDOMAIN;
			return;
		}
		str_copy(cur, cname, sizeof cur);
	}
	ans->status = AUTH_DNS_TEMP;
	snprintf(ans->detail, sizeof ans->detail, "CNAME chain too long");
}

/* ---- the text form ---- */

/* Appends the quoted strings of s to out (joined); -1 on bad syntax. */
static int
txt_strings(const char *s, struct buf *out)
{
	while (*s != '\0') {
		if (*s == ' ' || *s == '\t') {
			s++;
			continue;
		}
		if (*s++ != '"')
			return -1;
		for (;;) {
			unsigned char c = (unsigned char)*s++;
			if (c == '\0')
				return -1;
			if (c == '"')
				break;
			if (c == '\\') {
				if (s[0] >= '0' && s[0] <= '9') {
					int v = 0;
					for (int k = 0; k < 3; k++, s++) {
						if (s[0] < '0' || s[0] > '9')
							return -1;
						v = v * 10 + (s[0] - '0');
					}
					if (v > 255)
						return -1;
					c = (unsigned char)v;
				} else if (*s != '\0') {
					c = (unsigned char)*s++;
				} else {
					return -1;
				}
			}
			if (buf_append(out, &c, 1) != 0)
				return -1;
		}
	}
	return 0;
}

static int
load_line(struct auth_dns *d, char *line)
{
	char *name, *type, *value, *p;
	struct buf txt;
	int rc;

	p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	name = p;
	p += strcspn(p, " \t");
	if (*p == '\0')
		return -1;
	*p++ = '\0';
	p += strspn(p, " \t");
	type = p;
	p += strcspn(p, " \t");
	if (*p != '\0')
		*p++ = '\0';
	p += strspn(p, " \t");
	value = p;
	/* Trailing blanks of the value do not count (except in quotes). */
	for (size_t n = strlen(value); n > 0 &&
	    (value[n - 1] == ' ' || value[n - 1] == '\t'); n--)
		value[n - 1] = '\0';
	if (strcasecmp(type, "TXT") != 0)
		return auth_dns_table_add(d, name, type, value, strlen(value));
	if (value[0] == '\0')
		return -1;	/* an empty record is written "" */
	if (value[0] != '"')
		return auth_dns_table_add(d, name, type, value, strlen(value));
	buf_init(&txt, TABLE_TXT_MAX);
	rc = txt_strings(value, &txt);
	if (rc == 0)
		rc = auth_dns_table_add(d, name, type, txt.data ? txt.data : "",
		    txt.len);
	buf_free(&txt);
	return rc;
}

int
auth_dns_table_load(struct auth_dns *d, const char *text, size_t len,
    char *err, size_t errsize)
{
	size_t pos = 0, lineno = 0;

	table_of(d);	/* aborts when d is not a table */
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		size_t advance = nl ? n + 1 : n;
		char *line;
		int rc;

		lineno++;
		if (n > 0 && text[pos + n - 1] == '\r')
			n--;
		if (memchr(text + pos, '\0', n) != NULL || n > 4 * TABLE_TXT_MAX) {
			snprintf(err, errsize, "line %zu: NUL byte or too long",
			    lineno);
			return -1;
		}
		line = xstrndup(text + pos, n);
		rc = load_line(d, line);
		free(line);
		if (rc != 0) {
			snprintf(err, errsize, "line %zu: bad record", lineno);
			return -1;
		}
		pos += advance;
	}
	return 0;
}
