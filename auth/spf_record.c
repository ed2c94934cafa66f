/*
 * spf_record: the SPF record parser (RFC 7208 4.5, 4.6, 5, 6 and the ABNF
 * of section 12). The whole record is checked before anything in it is
 * evaluated, so a syntax error anywhere is a permerror (4.6); the terms
 * keep pointers into the record's own copy of the text.
 *
 * Choices the grammar forces: a term is a modifier only when the name is
 * followed by '=' and no qualifier precedes it; "redirect" and "exp" are
 * never unknown modifiers (an erratum agreed on by implementers, see the
 * RFC 7208 test suite); the CIDR lengths of "a" and "mx" are taken from
 * the end of the term, since a domain-spec may itself contain '/'.
 */
#include "auth/spf_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

int
spf_record_is_v1(const char *text, size_t len)
{
	return len >= 6 && strncasecmp(text, "v=spf1", 6) == 0 &&
	    (len == 6 || text[6] == ' ');
}

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static int
toplabel_ok(const char *s, size_t n)
{
	int alpha = 0, dash = 0;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '-')
			dash = 1;
		else if (isalpha(c))
			alpha = 1;
		else if (!isdigit(c))
			return 0;
	}
	if (!dash)
		return alpha;
	return isalnum((unsigned char)s[0]) && isalnum((unsigned char)s[n - 1]);
}

int
spf_domain_spec_check(const char *s, size_t len)
{
	size_t macro_end = (size_t)-1, n;
	const char *dot;

	if (len == 0 || spf_macro_check(s, len, 0) != 0)
		return -1;
	/* Where did the last macro-expand end? (the check above vouched for
	 * the syntax, so this walk only needs to skip expands) */
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%')
			continue;
		if (s[i + 1] == '{') {
			while (s[i] != '}')
				i++;
		} else {
			i++;
		}
		macro_end = i + 1;
	}
	if (macro_end == len)
		return 0;
	n = len;
	if (s[n - 1] == '.')
		n--;
	dot = NULL;
	for (size_t i = n; i > 0; i--)
		if (s[i - 1] == '.') {
			dot = s + i - 1;
			break;
		}
	if (dot == NULL || (macro_end != (size_t)-1 &&
	    (size_t)(dot - s) < macro_end))
		return -1;
	return toplabel_ok(dot + 1, (size_t)(s + n - (dot + 1))) ? 0 : -1;
}

/* A CIDR length: "0" or a digit 1-9 then digits, at most maxdigits
 * digits and at most max. Returns the value or -1. */
static int
cidr_value(const char *s, size_t n, size_t maxdigits, int max)
{
	int v = 0;

	if (n == 0 || n > maxdigits || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

/* Takes a dual-cidr-length off the end of s[0..*n): "/N", "//N" or
 * "/N//N". Returns 0 (with *n shortened) or -1 for a malformed length. */
static int
cidr_tail(const char *s, size_t *n, int *c4, int *c6)
{
	size_t i = *n, end = *n;

	while (i > 0 && isdigit((unsigned char)s[i - 1]))
		i--;
	if (i < end && i >= 2 && s[i - 1] == '/' && s[i - 2] == '/') {
		if ((*c6 = cidr_value(s + i, end - i, 3, 128)) < 0)
			return -1;
		end = i - 2;
		i = end;
		while (i > 0 && isdigit((unsigned char)s[i - 1]))
			i--;
	}
	if (i < end && i >= 1 && s[i - 1] == '/') {
		if ((*c4 = cidr_value(s + i, end - i, 2, 32)) < 0)
			return -1;
		end = i - 1;
	}
	*n = end;
	return 0;
}

/* ip4-network: four qnums without leading zeros. */
static int
ip4_network(const char *s, size_t n, struct auth_ip *ip)
{
	size_t i = 0;

	memset(ip, 0, sizeof *ip);
	ip->family = AF_INET;
	for (int part = 0; part < 4; part++) {
		size_t start = i;
		int v;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
		if ((v = cidr_value(s + start, i - start, 3, 255)) < 0)
			return -1;
		ip->b[part] = (uint8_t)v;
		if (part < 3 && (i >= n || s[i++] != '.'))
			return -1;
	}
	return i == n ? 0 : -1;
}

static int
ip6_network(const char *s, size_t n, struct auth_ip *ip)
{
	char tmp[64];

	memset(ip, 0, sizeof *ip);
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET6, tmp, ip->b) != 1)
		return -1;
	ip->family = AF_INET6;
	return 0;
}

/* Length of the run of s[0..n) before any byte of stop. */
static size_t
span_until(const char *s, size_t n, const char *stop)
{
	size_t i = 0;

	while (i < n && strchr(stop, s[i]) == NULL)
		i++;
	return i;
}

static int
name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/* name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
static int
modifier_name_ok(const char *s, size_t n)
{
	if (n == 0 || !isalpha((unsigned char)s[0]))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_' && s[i] != '.')
			return 0;
	return 1;
}

static int
term_fail(char *why, size_t whysize, const char *what, const char *t,
    size_t n)
{
	snprintf(why, whysize, "%s: %.*s", what, (int)(n > 80 ? 80 : n), t);
	return -1;
}

/* Parses the mechanism part of a directive (after the qualifier). */
static int
mech_parse(struct spf_term *term, const char *s, size_t n, char *why,
    size_t whysize)
{
	static const struct { const char *name; enum spf_mech mech; } mechs[] = {
		{ "all", SPF_M_ALL }, { "include", SPF_M_INCLUDE },
		{ "a", SPF_M_A }, { "mx", SPF_M_MX }, { "ptr", SPF_M_PTR },
		{ "ip4", SPF_M_IP4 }, { "ip6", SPF_M_IP6 },
		{ "exists", SPF_M_EXISTS },
	};
	size_t nl = span_until(s, n, ":/="), rn, slash;
	const char *rest;
	int found = 0;

	for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++)
		if (name_is(s, nl, mechs[i].name)) {
			term->mech = mechs[i].mech;
			found = 1;
		}
	if (!found)
		return term_fail(why, whysize, "unknown mechanism", s, n);
	rest = s + nl;
	rn = n - nl;
	term->cidr4 = 32;
	term->cidr6 = 128;
	switch (term->mech) {
	case SPF_M_ALL:
		if (rn != 0)
			return term_fail(why, whysize, "bad all", s, n);
		return 0;
	case SPF_M_INCLUDE:
	case SPF_M_EXISTS:
		if (rn < 2 || rest[0] != ':' ||
		    spf_domain_spec_check(rest + 1, rn - 1) != 0)
			return term_fail(why, whysize, "bad domain-spec", s, n);
		term->spec = rest + 1;
		term->speclen = rn - 1;
		return 0;
	case SPF_M_A:
	case SPF_M_MX:
		if (rn > 0 && rest[0] == ':') {
			size_t sl = rn - 1;
			if (cidr_tail(rest + 1, &sl, &term->cidr4,
			    &term->cidr6) != 0)
				return term_fail(why, whysize, "bad CIDR length",
				    s, n);
			if (spf_domain_spec_check(rest + 1, sl) != 0)
				return term_fail(why, whysize, "bad domain-spec",
				    s, n);
			term->spec = rest + 1;
			term->speclen = sl;
			return 0;
		}
		slash = rn;
		if (cidr_tail(rest, &slash, &term->cidr4, &term->cidr6) != 0 ||
		    slash != 0)
			return term_fail(why, whysize, "bad CIDR length", s, n);
		return 0;
	case SPF_M_PTR:
		if (rn == 0)
			return 0;
		if (rest[0] != ':' || spf_domain_spec_check(rest + 1, rn - 1) != 0)
			return term_fail(why, whysize, "bad domain-spec", s, n);
		term->spec = rest + 1;
		term->speclen = rn - 1;
		return 0;
	case SPF_M_IP4:
	case SPF_M_IP6: {
		const char *net;
		size_t netlen;
		int v6 = term->mech == SPF_M_IP6;
		if (rn < 2 || rest[0] != ':')
			return term_fail(why, whysize, "bad network", s, n);
		net = rest + 1;
		netlen = span_until(net, rn - 1, "/");
		if ((v6 ? ip6_network(net, netlen, &term->net) :
		    ip4_network(net, netlen, &term->net)) != 0)
			return term_fail(why, whysize, "bad network", s, n);
		if (netlen < rn - 1) {
			const char *c = net + netlen + 1;
			size_t cl = rn - 1 - netlen - 1;
			int v = v6 ? cidr_value(c, cl, 3, 128) :
			    cidr_value(c, cl, 2, 32);
			if (v < 0)
				return term_fail(why, whysize, "bad CIDR length",
				    s, n);
			if (v6)
				term->cidr6 = v;
			else
				term->cidr4 = v;
		}
		return 0;
	}
	}
	return term_fail(why, whysize, "unknown mechanism", s, n);
}

static int
term_parse(struct spf_record *rec, struct spf_term *term, const char *s,
    size_t n, char *why, size_t whysize)
{
	size_t nl;

	memset(term, 0, sizeof *term);
	term->text = s;
	term->textlen = n;
	term->qual = '+';
	nl = span_until(s, n, ":/=");
	if (nl < n && s[nl] == '=') {
		const char *v = s + nl + 1;
		size_t vl = n - nl - 1;
		if (!modifier_name_ok(s, nl))
			return term_fail(why, whysize, "bad modifier name", s, n);
		if (name_is(s, nl, "redirect") || name_is(s, nl, "exp")) {
			int *idx = name_is(s, nl, "exp") ? &rec->exp : &rec->redirect;
			if (*idx >= 0)
				return term_fail(why, whysize,
				    "modifier given twice", s, n);
			if (spf_domain_spec_check(v, vl) != 0)
				return term_fail(why, whysize,
				    "bad domain-spec", s, n);
			*idx = (int)rec->nterms;
			term->kind = name_is(s, nl, "exp") ? SPF_T_EXP :
			    SPF_T_REDIRECT;
		} else {
			if (spf_macro_check(v, vl, SPF_MACRO_EXP) != 0)
				return term_fail(why, whysize,
				    "bad macro-string", s, n);
			term->kind = SPF_T_UNKNOWN;
		}
		term->spec = v;
		term->speclen = vl;
		return 0;
	}
	term->kind = SPF_T_MECH;
	if (n > 0 && strchr("+-~?", s[0]) != NULL) {
		term->qual = s[0];
		s++;
		n--;
	}
	return mech_parse(term, s, n, why, whysize);
}

int
spf_record_parse(const char *text, size_t len, struct spf_record **rec_r,
    char *why, size_t whysize)
{
	struct spf_record *rec;
	size_t pos;

	*rec_r = NULL;
	if (len > SPF_RECORD_MAX) {
		snprintf(why, whysize, "record longer than %d bytes",
		    SPF_RECORD_MAX);
		return -1;
	}
	if (!spf_record_is_v1(text, len)) {
		snprintf(why, whysize, "not an SPF version 1 record");
		return -1;
	}
	/* 7-bit printable text only; terms are split at SP alone (3.1, 4.6.1) */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e) {
			snprintf(why, whysize, "byte 0x%02x in the record",
			    (unsigned char)text[i]);
			return -1;
		}
	rec = xcalloc(1, sizeof *rec);
	rec->text = xstrndup(text, len);
	rec->redirect = rec->exp = -1;
	pos = 6;
	while (pos < len) {
		size_t start, tl;
		if (rec->text[pos] != ' ')
			break;	/* cannot happen: terms end at a space */
		while (pos < len && rec->text[pos] == ' ')
			pos++;
		if (pos == len)
			break;
		start = pos;
		while (pos < len && rec->text[pos] != ' ')
			pos++;
		tl = pos - start;
		if (rec->nterms >= SPF_TERMS_MAX) {
			snprintf(why, whysize, "more than %d terms", SPF_TERMS_MAX);
			spf_record_free(&rec);
			return -1;
		}
		rec->terms = xrealloc(rec->terms,
		    (rec->nterms + 1) * sizeof *rec->terms);
		if (term_parse(rec, &rec->terms[rec->nterms], rec->text + start,
		    tl, why, whysize) != 0) {
			spf_record_free(&rec);
			return -1;
		}
		rec->nterms++;
	}
	*rec_r = rec;
	return 0;
}

void
spf_record_free(struct spf_record **recp)
{
	struct spf_record *rec = *recp;

	if (rec == NULL)
		return;
	free(rec->terms);
	free(rec->text);
	free(rec);
	*recp = NULL;
}
