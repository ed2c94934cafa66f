/*
 * mta_sts: RFC 8461 TXT record and policy parsers, MX pattern matching
 * (relay/mta_sts.h).
 */
#include "relay/mta_sts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

const char *
mta_sts_mode_str(enum mta_sts_mode m)
{
	switch (m) {
	case MTA_STS_MODE_ENFORCE: return "enforce";
	case MTA_STS_MODE_TESTING: return "testing";
	default: return "none";
	}
}

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static int
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") of n bytes. */
static int
ext_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 32 || !is_alnum(s[0]))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

/* ---- the TXT record (RFC 8461 3.1) ---- */

/* One "name=value" field of n bytes (trimmed); sets id when it is one. */
static int
txt_field(const char *f, size_t n, char *id, int *have_id)
{
	const char *eq = memchr(f, '=', n);
	size_t nl, vl;

	if (eq == NULL)
		return -1;
	nl = (size_t)(eq - f);
	vl = n - nl - 1;
	if (!ext_name_ok(f, nl) || vl == 0)
		return -1;
	if (nl == 2 && memcmp(f, "id", 2) == 0) {
		if (*have_id || vl > MTA_STS_ID_MAX)
			return -1;
		for (size_t i = 0; i < vl; i++)
			if (!is_alnum(eq[1 + i]))
				return -1;
		memcpy(id, eq + 1, vl);
		id[vl] = '\0';
		*have_id = 1;
		return 0;
	}
	for (size_t i = 0; i < vl; i++) {
		unsigned char c = (unsigned char)eq[1 + i];
		if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
			return -1;
	}
	return 0;
}

int
mta_sts_txt_parse(const char *txt, char id[MTA_STS_ID_MAX + 1])
{
	const char *p = txt;
	int have_id = 0, first = 1;

	if (txt == NULL)
		return -1;
	for (;;) {
		const char *semi = strchr(p, ';');
		const char *end = semi ? semi : p + strlen(p);
		const char *s = p, *e = end;

		while (s < e && is_wsp(*s))
			s++;
		while (e > s && is_wsp(e[-1]))
			e--;
		if (first) {
			if ((size_t)(e - s) != 7 || memcmp(s, "v=STSv1", 7) != 0)
				return -1;
			first = 0;
		} else if (s == e) {
			if (semi != NULL)
				return -1;	/* ";;" or a field left empty */
		} else if (txt_field(s, (size_t)(e - s), id, &have_id) != 0) {
			return -1;
		}
		if (semi == NULL)
			break;
		p = semi + 1;
	}
	return have_id ? 0 : -1;
}

int
mta_sts_txt_select(char *const *txts, size_t n, char id[MTA_STS_ID_MAX + 1])
{
	const char *found = NULL;

	for (size_t i = 0; i < n; i++) {
		const char *t = txts[i];
		if (strncmp(t, "v=STSv1", 7) != 0 ||
		    (t[7] != ';' && !is_wsp(t[7]) && t[7] != '\0'))
			continue;
		if (found != NULL)
			return -1;	/* several: no policy (3.1) */
		found = t;
	}
	return found ? mta_sts_txt_parse(found, id) : -1;
}

/* ---- the policy (RFC 8461 3.2) ---- */

static int fail(char *why, size_t whysize, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
fail(char *why, size_t whysize, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (whysize == 0)
		return -1;
	if (line > 0)
		n = snprintf(why, whysize, "line %u: ", line);
	if (n < 0 || (size_t)n >= whysize)
		return -1;
	va_start(ap, fmt);
	vsnprintf(why + n, whysize - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* An mx value: ["*."] domain, into out (lower case). 0 or -1. */
static int
mx_pattern(const char *v, char *out)
{
	size_t off = 0;

	if (v[0] == '*' && v[1] == '.') {
		memcpy(out, "*.", 2);
		off = 2;
	}
	if (dns_name_normalize(v + off, out + off, DNS_NAME_MAX) != 0)
		return -1;
	/* No other wildcard, and no underscore in a host name. */
	return strpbrk(out + off, "*_") == NULL ? 0 : -1;
}

static int
policy_field(struct mta_sts_policy *p, const char *key, const char *val,
    unsigned line, unsigned *seen, char *why, size_t whysize)
{
	if (strcmp(key, "version") == 0) {
		if (*seen & 1)
			return fail(why, whysize, line, "version given twice");
		*seen |= 1;
		if (strcmp(val, "STSv1") != 0)
			return fail(why, whysize, line, "unknown version");
	} else if (strcmp(key, "mode") == 0) {
		if (*seen & 2)
			return fail(why, whysize, line, "mode given twice");
		*seen |= 2;
		if (strcmp(val, "enforce") == 0)
			p->mode = MTA_STS_MODE_ENFORCE;
		else if (strcmp(val, "testing") == 0)
			p->mode = MTA_STS_MODE_TESTING;
		else if (strcmp(val, "none") == 0)
			p->mode = MTA_STS_MODE_NONE;
		else
			return fail(why, whysize, line, "unknown mode");
	} else if (strcmp(key, "max_age") == 0) {
		uint64_t v = 0;
		size_t n = strlen(val);
		if (*seen & 4)
			return fail(why, whysize, line, "max_age given twice");
		*seen |= 4;
		if (n == 0 || n > 10 || strspn(val, "0123456789") != n)
			return fail(why, whysize, line, "max_age is not a number");
		for (size_t i = 0; i < n; i++)
			v = v * 10 + (uint64_t)(val[i] - '0');
		p->max_age = v > MTA_STS_MAX_AGE_MAX ? MTA_STS_MAX_AGE_MAX :
		    (uint32_t)v;
	} else if (strcmp(key, "mx") == 0) {
		if (p->nmx >= MTA_STS_MX_MAX)
			return fail(why, whysize, line, "more than %d mx patterns",
			    MTA_STS_MX_MAX);
		if (mx_pattern(val, p->mx[p->nmx]) != 0)
			return fail(why, whysize, line, "invalid mx pattern");
		p->nmx++;
	} else {
		/* An extension: ignored, but it must be well-formed. */
		for (const char *c = val; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 && !is_wsp(*c))
				return fail(why, whysize, line, "control character");
	}
	return 0;
}

int
mta_sts_policy_parse(const char *text, size_t len, struct mta_sts_policy *p,
    char *why, size_t whysize)
{
	char buf[MTA_STS_LINE_MAX + 1];
	unsigned line = 0, seen = 0;
	size_t pos = 0;

	memset(p, 0, sizeof *p);
	if (whysize > 0)
		why[0] = '\0';
	if (len > MTA_STS_POLICY_MAX)
		return fail(why, whysize, 0, "policy larger than %d bytes",
		    MTA_STS_POLICY_MAX);
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *colon, *val, *e;

		line++;
		if (l > MTA_STS_LINE_MAX)
			return fail(why, whysize, line, "line too long");
		memcpy(buf, text + pos, l);
		buf[l] = '\0';
		pos += l + (nl != NULL);
		if (l > 0 && buf[l - 1] == '\r')
			buf[--l] = '\0';
		if (memchr(buf, '\0', l) != NULL || memchr(buf, '\r', l) != NULL)
			return fail(why, whysize, line, "NUL or CR in a line");
		if (strspn(buf, " \t") == l)
			continue;
		colon = strchr(buf, ':');
		if (colon == NULL || !ext_name_ok(buf, (size_t)(colon - buf)))
			return fail(why, whysize, line, "not a \"key: value\" line");
		*colon = '\0';
		for (val = colon + 1; is_wsp(*val); val++)
			;
		for (e = val + strlen(val); e > val && is_wsp(e[-1]); e--)
			;
		*e = '\0';
		if (*val == '\0')
			return fail(why, whysize, line, "%s has no value", buf);
		if (policy_field(p, buf, val, line, &seen, why, whysize) != 0)
			return -1;
	}
	if (!(seen & 1))
		return fail(why, whysize, 0, "no version");
	if (!(seen & 2))
		return fail(why, whysize, 0, "no mode");
	if (!(seen & 4))
		return fail(why, whysize, 0, "no max_age");
	if (p->nmx == 0 && p->mode != MTA_STS_MODE_NONE)
		return fail(why, whysize, 0, "no mx pattern");
	return 0;
}

int
mta_sts_mx_match(const struct mta_sts_policy *p, const char *host)
{
	char name[DNS_NAME_MAX];

	if (dns_name_normalize(host, name, sizeof name) != 0)
		return 0;
	for (size_t i = 0; i < p->nmx; i++) {
		const char *pat = p->mx[i];
		if (pat[0] == '*' && pat[1] == '.') {
			const char *dot = strchr(name, '.');
			if (dot != NULL && dot > name && strcmp(dot + 1, pat + 2) == 0)
				return 1;
		} else if (strcmp(name, pat) == 0) {
			return 1;
		}
	}
	return 0;
}
