/*
 * tls_policy_map: the tls_policy file parser and its sorted table
 * (relay/tls_policy_map.h). Lines are cut out of the text without
 * copying it whole; each is bounded before it is looked at.
 */
#include "relay/tls_policy_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dns/dns.h"
#include "lib/util.h"

#define SHOW_MAX 64

struct map_entry {
	char key[DNS_NAME_MAX + 1];	/* "example.com" or ".example.com" */
	struct tls_policy_entry e;
};

struct tls_policy_map {
	size_t n;
	struct map_entry *v;		/* sorted by key */
};

struct parse {
	const char *name;
	FILE *errs;
	unsigned line;
	unsigned nerrors;
	size_t n, cap;
	struct map_entry *v;
};

static const char *const level_names[] = {
	[TLS_LEVEL_NONE] = "none",
	[TLS_LEVEL_MAY] = "may",
	[TLS_LEVEL_ENCRYPT] = "encrypt",
	[TLS_LEVEL_VERIFY] = "verify",
	[TLS_LEVEL_DANE] = "dane",
	[TLS_LEVEL_DANE_ONLY] = "dane-only",
};

const char *
tls_level_str(enum tls_level l)
{
	if ((size_t)l < sizeof level_names / sizeof level_names[0])
		return level_names[l];
	return "?";
}

int
tls_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

static void parse_error(struct parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
parse_error(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	p->nerrors++;
	if (p->errs == NULL || p->nerrors > TLS_POLICY_ERRORS_MAX)
		return;
	flockfile(p->errs);
	fprintf(p->errs, "%s:%u: ", p->name, p->line);
	va_start(ap, fmt);
	vfprintf(p->errs, fmt, ap);
	va_end(ap);
	fputc('\n', p->errs);
	funlockfile(p->errs);
}

/* s made safe to print: control bytes and non-ASCII become '?', long
 * text is cut with "...". */
static const char *
show(const char *s, char *out, size_t outsize)
{
	size_t i, n = 0;

	for (i = 0; s[i] != '\0' && n + 4 < outsize; i++) {
		unsigned char ch = (unsigned char)s[i];
		out[n++] = (ch < 0x20 || ch >= 0x7f || ch == '\'') ? '?' : (char)ch;
	}
	if (s[i] != '\0') {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

#define SHOW(s) show((s), (char[SHOW_MAX + 4]){ 0 }, SHOW_MAX + 4)

/* "example.com" or ".example.com" normalized into out (DNS_NAME_MAX + 1). */
static int
key_normalize(const char *s, char *out)
{
	if (s[0] == '.') {
		out[0] = '.';
		return dns_name_normalize(s + 1, out + 1, DNS_NAME_MAX);
	}
	return dns_name_normalize(s, out, DNS_NAME_MAX);
}

static void
entry_free(struct map_entry *m)
{
	for (size_t i = 0; i < m->e.nmatch; i++)
		free(m->e.match[i]);
	m->e.nmatch = 0;
}

/* Parses the value of match= into e; 0 or -1 (error reported). */
static int
parse_match(struct parse *p, char *value, struct tls_policy_entry *e)
{
	char *save = NULL;

	if (*value == '\0') {
		parse_error(p, "match= needs at least one name");
		return -1;
	}
	for (char *name = strtok_r(value, ":", &save); name != NULL;
	    name = strtok_r(NULL, ":", &save)) {
		char norm[DNS_NAME_MAX + 1];
		if (e->nmatch >= TLS_POLICY_MATCH_MAX) {
			parse_error(p, "more than %d match names", TLS_POLICY_MATCH_MAX);
			return -1;
		}
		if (key_normalize(name, norm) != 0) {
			parse_error(p, "invalid match name '%s'", SHOW(name));
			return -1;
		}
		e->match[e->nmatch++] = xstrdup(norm);
	}
	if (e->nmatch == 0) {
		parse_error(p, "match= needs at least one name");
		return -1;
	}
	return 0;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One line (NUL-terminated, no newline). */
static void
parse_line(struct parse *p, char *line)
{
	char *fields[8], *s = line;
	size_t nf = 0;
	struct map_entry m;
	int level;

	while (*s != '\0') {
		while (is_blank(*s))
			s++;
		if (*s == '\0' || *s == '#')
			break;	/* a comment runs to the end of the line */
		if (nf == sizeof fields / sizeof fields[0]) {
			parse_error(p, "too many fields");
			return;
		}
		fields[nf++] = s;
		while (*s != '\0' && !is_blank(*s))
			s++;
		if (*s != '\0')
			*s++ = '\0';
	}
	if (nf == 0)
		return;
	for (char *c = line; c < s; c++)
		if ((unsigned char)*c < 0x20 && *c != '\0' && !is_blank(*c)) {
			parse_error(p, "control character in line");
			return;
		}
	memset(&m, 0, sizeof m);
	m.e.line = p->line;
	if (key_normalize(fields[0], m.key) != 0) {
		parse_error(p, "invalid domain '%s'", SHOW(fields[0]));
		return;
	}
	if (nf < 2) {
		parse_error(p, "%s: no level given", m.key);
		return;
	}
	if ((level = tls_level_parse(fields[1])) < 0) {
		parse_error(p, "unknown level '%s' (none, may, encrypt, verify, dane, "
		    "dane-only)", SHOW(fields[1]));
		return;
	}
	m.e.level = (enum tls_level)level;
	for (size_t i = 2; i < nf; i++) {
		if (strncmp(fields[i], "match=", 6) != 0) {
			parse_error(p, "unknown attribute '%s'", SHOW(fields[i]));
			entry_free(&m);
			return;
		}
		if (m.e.level != TLS_LEVEL_VERIFY) {
			parse_error(p, "match= applies to the verify level only");
			entry_free(&m);
			return;
		}
		if (m.e.nmatch > 0) {
			parse_error(p, "match= given twice");
			entry_free(&m);
			return;
		}
		if (parse_match(p, fields[i] + 6, &m.e) != 0) {
			entry_free(&m);
			return;
		}
	}
	if (p->n >= TLS_POLICY_ENTRIES_MAX) {
		parse_error(p, "more than %d entries", TLS_POLICY_ENTRIES_MAX);
		entry_free(&m);
		return;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->v = xrealloc(p->v, p->cap * sizeof *p->v);
	}
	p->v[p->n++] = m;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct map_entry *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	return x->e.line < y->e.line ? -1 : x->e.line > y->e.line;
}

unsigned
tls_policy_map_parse(const char *text, size_t len, const char *name, FILE *errs,
    struct tls_policy_map **map_r)
{
	struct parse p = { .name = name ? name : "tls_policy", .errs = errs };
	char line[TLS_POLICY_LINE_MAX + 1];
	size_t pos = 0;

	*map_r = NULL;
	if (len > TLS_POLICY_FILE_MAX) {
		parse_error(&p, "file larger than %u bytes", TLS_POLICY_FILE_MAX);
		return p.nerrors;
	}
	while (pos < len && p.nerrors <= TLS_POLICY_ERRORS_MAX) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		p.line++;
		if (l > TLS_POLICY_LINE_MAX) {
			parse_error(&p, "line longer than %d bytes", TLS_POLICY_LINE_MAX);
		} else if (memchr(text + pos, '\0', l) != NULL) {
			parse_error(&p, "NUL byte in line");
		} else {
			memcpy(line, text + pos, l);
			line[l] = '\0';
			parse_line(&p, line);
		}
		pos += l + (nl != NULL);
	}
	if (p.n > 1)
		qsort(p.v, p.n, sizeof *p.v, entry_cmp);
	for (size_t i = 1; i < p.n; i++)
		if (strcmp(p.v[i].key, p.v[i - 1].key) == 0) {
			p.line = p.v[i].e.line;
			parse_error(&p, "%s: already given at line %u", p.v[i].key,
			    p.v[i - 1].e.line);
		}
	if (p.nerrors > 0) {
		for (size_t i = 0; i < p.n; i++)
			entry_free(&p.v[i]);
		free(p.v);
		return p.nerrors;
	}
	*map_r = xcalloc(1, sizeof **map_r);
	(*map_r)->n = p.n;
	(*map_r)->v = p.v;
	return 0;
}

unsigned
tls_policy_map_load(const char *path, FILE *errs, struct tls_policy_map **map_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *text;
	size_t got = 0;
	unsigned rc;

	*map_r = NULL;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > TLS_POLICY_FILE_MAX) {
		int e = fd < 0 ? errno : 0;
		if (errs != NULL)
			fprintf(errs, "%s:0: %s\n", path, e ? strerror(e) :
			    "not a regular file of at most 16 MiB");
		if (fd >= 0)
			close(fd);
		return 1;
	}
	text = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, text + got, (size_t)st.st_size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	rc = tls_policy_map_parse(text, got, path, errs, map_r);
	free(text);
	return rc;
}

void
tls_policy_map_free(struct tls_policy_map **mp)
{
	struct tls_policy_map *m = *mp;

	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		entry_free(&m->v[i]);
	free(m->v);
	free(m);
	*mp = NULL;
}

static const struct tls_policy_entry *
find(const struct tls_policy_map *m, const char *key)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, m->v[mid].key);
		if (c == 0)
			return &m->v[mid].e;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct tls_policy_entry *
tls_policy_map_lookup(const struct tls_policy_map *m, const char *domain)
{
	char name[DNS_NAME_MAX];
	const struct tls_policy_entry *e;

	if (m == NULL || dns_name_normalize(domain, name, sizeof name) != 0)
		return NULL;
	if ((e = find(m, name)) != NULL)
		return e;
	for (const char *d = strchr(name, '.'); d != NULL; d = strchr(d + 1, '.'))
		if ((e = find(m, d)) != NULL)
			return e;
	return NULL;
}

size_t
tls_policy_map_count(const struct tls_policy_map *m)
{
	return m ? m->n : 0;
}

size_t
tls_policy_map_count_level(const struct tls_policy_map *m, enum tls_level level)
{
	size_t n = 0;

	for (size_t i = 0; m != NULL && i < m->n; i++)
		n += m->v[i].e.level == level;
	return n;
}
