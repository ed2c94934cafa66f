/*
 * dkim_sig: the DKIM-Signature field (RFC 6376 3.5) and the key record
 * (3.6.1) parsers, with the checks of 6.1.1 and 6.1.2 that need nothing
 * but the text: required tags, version, algorithm (rsa-sha1 is refused,
 * RFC 8301), From in h=, i= within d=, t= before x=, the query method;
 * and for keys: v=, k=, h=, s=, t= flags and p=.
 */
#include "auth/dkim_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/taglist.h"
#include "lib/util.h"

static enum dkim_status
sig_fail(enum dkim_status st, char *why, size_t whysize, const char *what)
{
	snprintf(why, whysize, "%s", what);
	return st;
}

/* A plain unsigned decimal (at most 18 digits) into *v; 0 or -1. */
static int
tag_number(const struct tag *t, int64_t *v)
{
	int64_t n = 0;

	if (t->valuelen == 0 || t->valuelen > 18)
		return -1;
	for (size_t i = 0; i < t->valuelen; i++) {
		if (!isdigit((unsigned char)t->value[i]))
			return -1;
		n = n * 10 + (t->value[i] - '0');
	}
	*v = n;
	return 0;
}

/* Copies a tag value as a lower-case name; 0 or -1 (not a valid name). */
static int
tag_name(const struct tag *t, char *out, size_t outsize)
{
	if (t->valuelen >= outsize || !dkim_name_ok(t->value, t->valuelen))
		return -1;
	for (size_t i = 0; i < t->valuelen; i++)
		out[i] = (char)tolower((unsigned char)t->value[i]);
	out[t->valuelen] = '\0';
	return 0;
}

static int
canon_word(const char *s, size_t n, enum dkim_canon *c)
{
	if (n == 6 && strncasecmp(s, "simple", 6) == 0)
		*c = DKIM_CANON_SIMPLE;
	else if (n == 7 && strncasecmp(s, "relaxed", 7) == 0)
		*c = DKIM_CANON_RELAXED;
	else
		return -1;
	return 0;
}

/* h=: names separated by ':' with FWS around them. */
static int
hnames_parse(const struct tag *t, struct dkim_sig *sig)
{
	const char *s = t->value, *end = t->value + t->valuelen;

	sig->nh = 0;
	while (s <= end) {
		const char *colon = memchr(s, ':', (size_t)(end - s));
		const char *e = colon ? colon : end;
		while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' ||
		    *s == '\n'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
		    e[-1] == '\n'))
			e--;
		if (e == s || sig->nh >= DKIM_MAX_HNAMES)
			return -1;
		for (const char *p = s; p < e; p++)
			if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e ||
			    *p == ':')
				return -1;
		sig->h[sig->nh].name = s;
		sig->h[sig->nh].len = (size_t)(e - s);
		sig->nh++;
		if (colon == NULL)
			break;
		s = colon + 1;
	}
	return 0;
}

/* The domain part of the AUID is d= or a subdomain of it (3.5 i=). */
static int
auid_within(const char *auid, const char *d)
{
	const char *at = strrchr(auid, '@');
	size_t al, dl = strlen(d);

	if (at == NULL)
		return 0;
	at++;
	al = strlen(at);
	if (al < dl || strcasecmp(at + al - dl, d) != 0)
		return 0;
	return al == dl || at[al - dl - 1] == '.';
}

enum dkim_status
dkim_sig_parse(const char *value, size_t len, struct dkim_sig *sig,
    char *why, size_t whysize)
{
	struct taglist tl;
	const struct tag *v, *a, *b, *bh, *c, *d, *h, *i, *l, *q, *s, *t, *x;
	char tmp[2 * DKIM_MAX_SIG_BYTES];
	long n;
	int from = 0;

	memset(sig, 0, sizeof *sig);
	sig->l = sig->t = sig->x = -1;
	if (len > DKIM_MAX_FIELD)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize,
		    "signature field too long");
	if (taglist_parse(value, len, 0, &tl, tmp, sizeof tmp) != 0)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, tmp);
	v = taglist_get(&tl, "v");
	a = taglist_get(&tl, "a");
	b = taglist_get(&tl, "b");
	bh = taglist_get(&tl, "bh");
	c = taglist_get(&tl, "c");
	d = taglist_get(&tl, "d");
	h = taglist_get(&tl, "h");
	i = taglist_get(&tl, "i");
	l = taglist_get(&tl, "l");
	q = taglist_get(&tl, "q");
	s = taglist_get(&tl, "s");
	t = taglist_get(&tl, "t");
	x = taglist_get(&tl, "x");
	if (v == NULL || a == NULL || b == NULL || bh == NULL || d == NULL ||
	    h == NULL || s == NULL)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize,
		    "a required tag is missing (v, a, b, bh, d, h, s)");
	if (!tag_value_is(v, "1", 0))
		return sig_fail(DKIM_ST_SIG_VERSION, why, whysize,
		    "incompatible version");
	if (tag_value_is(a, "rsa-sha256", 1))
		sig->alg = DKIM_ALG_RSA_SHA256;
	else if (tag_value_is(a, "ed25519-sha256", 1))
		sig->alg = DKIM_ALG_ED25519_SHA256;
	else
		return sig_fail(DKIM_ST_SIG_ALG, why, whysize,
		    tag_value_is(a, "rsa-sha1", 1) ?
		    "rsa-sha1 is not accepted (RFC 8301)" :
		    "unsupported algorithm");
	sig->hcanon = sig->bcanon = DKIM_CANON_SIMPLE;
	if (c != NULL) {
		const char *slash = memchr(c->value, '/', c->valuelen);
		size_t hl = slash ? (size_t)(slash - c->value) : c->valuelen;
		if (canon_word(c->value, hl, &sig->hcanon) != 0 ||
		    (slash != NULL && canon_word(slash + 1,
		    c->valuelen - hl - 1, &sig->bcanon) != 0))
			return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize,
			    "unknown canonicalization");
	}
	if (tag_name(d, sig->domain, sizeof sig->domain) != 0 ||
	    strchr(sig->domain, '.') == NULL)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, "bad d=");
	if (s->valuelen >= sizeof sig->selector ||
	    !dkim_name_ok(s->value, s->valuelen) ||
	    s->valuelen + strlen("._domainkey.") + strlen(sig->domain) > 253)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, "bad s=");
	memcpy(sig->selector, s->value, s->valuelen);
	sig->selector[s->valuelen] = '\0';
	if (hnames_parse(h, sig) != 0)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, "bad h=");
	for (size_t k = 0; k < sig->nh; k++)
		if (sig->h[k].len == 4 && strncasecmp(sig->h[k].name, "from", 4) == 0)
			from = 1;
	if (!from)
		return sig_fail(DKIM_ST_SIG_FROM, why, whysize,
		    "From field not signed");
	if (i != NULL) {
		if (i->valuelen >= sizeof sig->auid ||
		    memchr(i->value, '@', i->valuelen) == NULL)
			return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, "bad i=");
		memcpy(sig->auid, i->value, i->valuelen);
		sig->auid[i->valuelen] = '\0';
		if (!auid_within(sig->auid, sig->domain))
			return sig_fail(DKIM_ST_SIG_DOMAIN, why, whysize,
			    "i= domain not within d=");
	} else {
		snprintf(sig->auid, sizeof sig->auid, "@%s", sig->domain);
	}
	if (l != NULL && tag_number(l, &sig->l) != 0)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, "bad l=");
	if (t != NULL && tag_number(t, &sig->t) != 0)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, "bad t=");
	if (x != NULL && tag_number(x, &sig->x) != 0)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, "bad x=");
	if (sig->t >= 0 && sig->x >= 0 && sig->x <= sig->t)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize,
		    "x= not after t=");
	if (q != NULL) {
		int dns = 0;
		const char *p = q->value, *end = q->value + q->valuelen;
		while (p < end) {
			const char *colon = memchr(p, ':', (size_t)(end - p));
			const char *e = colon ? colon : end;
			if ((size_t)(e - p) == 7 && strncasecmp(p, "dns/txt", 7) == 0)
				dns = 1;
			p = colon ? colon + 1 : end;
		}
		if (!dns)
			return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize,
			    "no supported query method in q=");
	}
	if ((n = tag_value_compact(bh, tmp, sizeof tmp)) < 0 ||
	    (n = dkim_base64_decode(tmp, (size_t)n, sig->bh,
	    sizeof sig->bh)) != 32)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, "bad bh=");
	sig->bhlen = (size_t)n;
	if ((n = tag_value_compact(b, tmp, sizeof tmp)) < 0)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, "b= too long");
	snprintf(sig->b_prefix, sizeof sig->b_prefix, "%.12s", tmp);
	if ((n = dkim_base64_decode(tmp, (size_t)n, sig->b, sizeof sig->b)) <= 0)
		return sig_fail(DKIM_ST_SIG_SYNTAX, why, whysize, "bad b=");
	sig->blen = (size_t)n;
	sig->b_off = (size_t)(b->raw - value);
	sig->b_len = b->rawlen;
	return DKIM_ST_OK;
}

/* A colon-separated list (FWS allowed) holds word? */
static int
list_has(const struct tag *t, const char *word)
{
	const char *p = t->value, *end = t->value + t->valuelen;
	size_t wl = strlen(word);

	while (p <= end) {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		const char *e = colon ? colon : end;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - p) == wl && strncasecmp(p, word, wl) == 0)
			return 1;
		if (colon == NULL)
			break;
		p = colon + 1;
	}
	return 0;
}

enum dkim_status
dkim_keyrec_parse(const char *txt, size_t len, enum dkim_alg alg,
    struct dkim_keyrec *k, char *why, size_t whysize)
{
	struct taglist tl;
	const struct tag *v, *h, *kt, *p, *s, *t;
	char tmp[2 * DKIM_MAX_KEY_BYTES];
	long n;

	memset(k, 0, sizeof *k);
	if (taglist_parse(txt, len, 0, &tl, tmp, sizeof tmp) != 0)
		return sig_fail(DKIM_ST_KEY_SYNTAX, why, whysize, tmp);
	v = taglist_get(&tl, "v");
	h = taglist_get(&tl, "h");
	kt = taglist_get(&tl, "k");
	p = taglist_get(&tl, "p");
	s = taglist_get(&tl, "s");
	t = taglist_get(&tl, "t");
	/* v=, when present, is "DKIM1" and the first tag (3.6.1). */
	if (v != NULL && (v != &tl.tags[0] || !tag_value_is(v, "DKIM1", 0)))
		return sig_fail(DKIM_ST_KEY_SYNTAX, why, whysize,
		    "key record version is not DKIM1");
	if (p == NULL)
		return sig_fail(DKIM_ST_KEY_SYNTAX, why, whysize,
		    "key record without p=");
	k->type = DKIM_KEY_RSA;
	if (kt != NULL) {
		if (tag_value_is(kt, "rsa", 1))
			k->type = DKIM_KEY_RSA;
		else if (tag_value_is(kt, "ed25519", 1))
			k->type = DKIM_KEY_ED25519;
		else
			return sig_fail(DKIM_ST_KEY_ALG, why, whysize,
			    "unknown key type k=");
	}
	if ((k->type == DKIM_KEY_RSA) != (alg == DKIM_ALG_RSA_SHA256))
		return sig_fail(DKIM_ST_KEY_ALG, why, whysize,
		    "key type does not match the signature algorithm");
	if (h != NULL && !list_has(h, "sha256"))
		return sig_fail(DKIM_ST_KEY_ALG, why, whysize,
		    "key h= does not allow sha256");
	if (s != NULL && !list_has(s, "*") && !list_has(s, "email"))
		return sig_fail(DKIM_ST_KEY_ALG, why, whysize,
		    "key s= not for email");
	if (t != NULL) {
		k->testing = list_has(t, "y");
		k->strict = list_has(t, "s");
	}
	if ((n = tag_value_compact(p, tmp, sizeof tmp)) < 0)
		return sig_fail(DKIM_ST_KEY_SYNTAX, why, whysize, "p= too long");
	if (n == 0) {
		k->revoked = 1;
		return sig_fail(DKIM_ST_KEY_REVOKED, why, whysize, "key revoked");
	}
	if ((n = dkim_base64_decode(tmp, (size_t)n, k->p, sizeof k->p)) <= 0)
		return sig_fail(DKIM_ST_KEY_SYNTAX, why, whysize, "bad p=");
	k->plen = (size_t)n;
	why[0] = '\0';
	return DKIM_ST_OK;
}
