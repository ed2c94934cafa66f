/*
 * spf_macro: SPF macros (RFC 7208 section 7): the syntax check of
 * macro-strings and explain-strings, and their expansion with
 * transformers (right-hand parts, reversal, delimiters) and URL escaping
 * of upper-case macro letters.
 *
 * Bounds: the output is a struct buf whose maximum the caller sets; a
 * DIGIT transformer larger than the number of parts keeps them all.
 */
#include "auth/spf_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define MACRO_DELIMITERS ".-+,/_="

static int
letter_ok(char c, int flags)
{
	c = (char)tolower((unsigned char)c);
	if (strchr("slodiphv", c) != NULL)
		return 1;
	return (flags & SPF_MACRO_EXP) && strchr("crt", c) != NULL;
}

/*
 * Parses the macro-expand that starts at s[0] == '%' (n bytes left).
 * Returns its length, or 0 when it is malformed. For "%{...}" sets
 * *letter, *digits (0: none), *reverse and the delimiter span.
 */
static size_t
expand_parse(const char *s, size_t n, int flags, char *letter,
    unsigned long *digits, int *reverse, const char **delims, size_t *ndelims)
{
	size_t i = 2;
	int had_digits = 0;

	if (n < 2)
		return 0;
	if (s[1] == '%' || s[1] == '_' || s[1] == '-') {
		*letter = s[1];
		return 2;
	}
	if (s[1] != '{' || n < 4 || !letter_ok(s[2], flags))
		return 0;
	*letter = s[2];
	*digits = 0;
	*reverse = 0;
	i = 3;
	while (i < n && isdigit((unsigned char)s[i])) {
		had_digits = 1;
		if (*digits < 100000)
			*digits = *digits * 10 + (unsigned long)(s[i] - '0');
		i++;
	}
	/* "If a DIGIT is specified, the value MUST be nonzero." (7.1) */
	if (had_digits && *digits == 0)
		return 0;
	if (i < n && (s[i] == 'r' || s[i] == 'R')) {
		*reverse = 1;
		i++;
	}
	*delims = s + i;
	while (i < n && s[i] != '\0' && strchr(MACRO_DELIMITERS, s[i]) != NULL)
		i++;
	*ndelims = (size_t)(s + i - *delims);
	if (i >= n || s[i] != '}')
		return 0;
	return i + 1;
}

int
spf_macro_check(const char *s, size_t len, int flags)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			char letter;
			unsigned long digits;
			int reverse;
			const char *d;
			size_t nd, el = expand_parse(s + i, len - i, flags, &letter,
			    &digits, &reverse, &d, &nd);
			if (el == 0)
				return -1;
			i += el;
		} else if ((c >= 0x21 && c <= 0x7e) ||
		    (c == ' ' && (flags & SPF_MACRO_EXP))) {
			i++;
		} else {
			return -1;
		}
	}
	return 0;
}

/* The value of a macro letter (7.3), into v. */
static void
letter_value(const struct spf_macro_env *env, char letter, struct buf *v)
{
	static const char hex[] = "0123456789ABCDEF";
	char tmp[256];

	switch (tolower((unsigned char)letter)) {
	case 's':
		buf_puts(v, env->sender ? env->sender : "");
		break;
	case 'l':
		buf_puts(v, env->local ? env->local : "postmaster");
		break;
	case 'o':
		buf_puts(v, env->sender_domain ? env->sender_domain : "");
		break;
	case 'd':
		buf_puts(v, env->domain ? env->domain : "");
		break;
	case 'h':
		buf_puts(v, env->helo ? env->helo : "");
		break;
	case 'r':
		buf_puts(v, env->receiver && env->receiver[0] ? env->receiver :
		    "unknown");
		break;
	case 't':
		buf_printf(v, "%lld", (long long)env->now);
		break;
	case 'v':
		buf_puts(v, env->ip.family == AF_INET6 ? "ip6" : "in-addr");
		break;
	case 'c':
	case 'i':
		if (env->ip.family == AF_INET6 && tolower((unsigned char)letter) == 'c') {
			buf_puts(v, auth_ip_text(&env->ip, tmp, sizeof tmp));
		} else if (env->ip.family == AF_INET6) {
			for (int k = 0; k < 16; k++)
				buf_printf(v, "%s%c.%c", k ? "." : "",
				    hex[env->ip.b[k] >> 4], hex[env->ip.b[k] & 15]);
		} else {
			buf_printf(v, "%u.%u.%u.%u", env->ip.b[0], env->ip.b[1],
			    env->ip.b[2], env->ip.b[3]);
		}
		break;
	case 'p':
		tmp[0] = '\0';
		if (env->ptr_name != NULL)
			env->ptr_name(env->arg, env->domain ? env->domain : "",
			    tmp, sizeof tmp);
		buf_puts(v, tmp[0] ? tmp : "unknown");
		break;
	}
}

/* Applies the transformers to value and appends the result to out,
 * URL-escaped when escape is set (7.3). */
static int
transform(const char *value, size_t len, unsigned long digits, int reverse,
    const char *delims, size_t ndelims, int escape, struct buf *out)
{
	size_t nparts = 1, first, *start, *plen, k = 0, last = 0;
	struct buf t;
	int rc;

	if (ndelims == 0) {
		delims = ".";
		ndelims = 1;
	}
	for (size_t i = 0; i < len; i++)
		if (memchr(delims, value[i], ndelims) != NULL)
			nparts++;
	start = xcalloc(nparts, sizeof *start);
	plen = xcalloc(nparts, sizeof *plen);
	for (size_t i = 0; i <= len; i++)
		if (i == len || memchr(delims, value[i], ndelims) != NULL) {
			start[k] = last;
			plen[k++] = i - last;
			last = i + 1;
		}
	if (reverse)
		for (size_t a = 0, b = nparts - 1; a < b; a++, b--) {
			size_t ts = start[a], tl = plen[a];
			start[a] = start[b];
			plen[a] = plen[b];
			start[b] = ts;
			plen[b] = tl;
		}
	first = digits > 0 && digits < nparts ? nparts - digits : 0;
	buf_init(&t, out->max);
	rc = 0;
	for (size_t i = first; i < nparts && rc == 0; i++) {
		if (i > first)
			rc = buf_append(&t, ".", 1);
		if (rc == 0)
			rc = buf_append(&t, value + start[i], plen[i]);
	}
	for (size_t i = 0; i < t.len && rc == 0; i++) {
		unsigned char c = (unsigned char)t.data[i];
		if (!escape || isalnum(c) || c == '-' || c == '.' || c == '_' ||
		    c == '~')
			rc = buf_append(out, &c, 1);
		else
			rc = buf_printf(out, "%%%02X", c);
	}
	buf_free(&t);
	free(start);
	free(plen);
	return rc;
}

int
spf_macro_expand(const struct spf_macro_env *env, const char *s, size_t len,
    int flags, struct buf *out)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		char letter;
		unsigned long digits = 0;
		int reverse = 0, rc;
		const char *d = NULL;
		size_t nd = 0, el;
		struct buf v;

		if (c != '%') {
			if (!((c >= 0x21 && c <= 0x7e) ||
			    (c == ' ' && (flags & SPF_MACRO_EXP))))
				return -1;
			if (buf_append(out, &c, 1) != 0)
				return -1;
			i++;
			continue;
		}
		el = expand_parse(s + i, len - i, flags, &letter, &digits,
		    &reverse, &d, &nd);
		if (el == 0)
			return -1;
		i += el;
		if (el == 2) {
			const char *lit = letter == '%' ? "%" :
			    letter == '_' ? " " : "%20";
			if (buf_puts(out, lit) != 0)
				return -1;
			continue;
		}
		buf_init(&v, 4096);
		letter_value(env, letter, &v);
		rc = transform(v.data ? v.data : "", v.len, digits, reverse, d, nd,
		    isupper((unsigned char)letter), out);
		buf_free(&v);
		if (rc != 0)
			return -1;
	}
	return 0;
}

int
spf_expand_domain(const struct spf_macro_env *env, const char *spec,
    size_t len, char *out, size_t outsize)
{
	struct buf b;
	const char *p;
	size_t n;

	buf_init(&b, 8192);
	if (spf_macro_expand(env, spec, len, 0, &b) != 0 || b.len == 0) {
		buf_free(&b);
		return -1;
	}
	p = b.data;
	n = b.len;
	if (p[n - 1] == '.')
		n--;
	/* Cut labels off the left until the name fits (7.3). */
	while (n > SPF_NAME_MAX) {
		const char *dot = memchr(p, '.', n);
		if (dot == NULL)
			break;
		n -= (size_t)(dot + 1 - p);
		p = dot + 1;
	}
	if (n > SPF_NAME_MAX) {
		/* One label too long to cut: no DNS query can be made of it,
		 * a name that does not exist (spf.h). */
		buf_free(&b);
		return -2;
	}
	if (n == 0 || n >= outsize) {
		buf_free(&b);
		return -1;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	buf_free(&b);
	return 0;
}
