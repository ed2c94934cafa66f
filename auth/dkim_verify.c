/*
 * dkim_verify: DKIM verification (RFC 6376 6). The message streams in;
 * when the header section ends, each DKIM-Signature field (up to the
 * limit) is parsed and gets its own body hash with its canonicalization
 * and l=; at the end every signature goes through 6.1.1 (time), 6.1.2
 * (the key from DNS) and 6.1.3 (body hash, then header hash and the
 * signature), and gets one result.
 */
#include "auth/dkim_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/header.h"
#include "lib/util.h"

#define KEY_RECORDS_TRIED 4

/* snprintf for texts where cutting a long name short is fine. */
static void why_set(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
why_set(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

struct vsig {
	const char *raw;	/* the field, inside v->hdr */
	size_t rawlen;
	size_t valoff;		/* where its value starts in raw */
	struct dkim_sig sig;
	enum dkim_status st;
	char why[160];
	struct dkim_bodyhash *bh;
};

struct dkim_verifier {
	struct dkim_verify_opts o;
	struct auth_split split;
	struct buf hdr;
	int ready;		/* signatures parsed, body hashes made */
	size_t nsigs, ignored;
	struct vsig *sigs;
};

const char *
dkim_result_name(enum dkim_result r)
{
	switch (r) {
	case DKIM_NONE: return "none";
	case DKIM_PASS: return "pass";
	case DKIM_FAIL: return "fail";
	case DKIM_POLICY: return "policy";
	case DKIM_NEUTRAL: return "neutral";
	case DKIM_TEMPERROR: return "temperror";
	default: return "permerror";
	}
}

const char *
dkim_status_text(enum dkim_status s)
{
	switch (s) {
	case DKIM_ST_OK: return "good signature";
	case DKIM_ST_SIG_SYNTAX: return "signature syntax error";
	case DKIM_ST_SIG_VERSION: return "incompatible version";
	case DKIM_ST_SIG_ALG: return "unsupported algorithm";
	case DKIM_ST_SIG_FROM: return "From field not signed";
	case DKIM_ST_SIG_DOMAIN: return "domain mismatch";
	case DKIM_ST_SIG_EXPIRED: return "signature expired";
	case DKIM_ST_SIG_FUTURE: return "signature timestamp in the future";
	case DKIM_ST_SIG_LENGTH: return "body length count larger than the body";
	case DKIM_ST_KEY_UNAVAILABLE: return "key unavailable";
	case DKIM_ST_KEY_NONE: return "no key for signature";
	case DKIM_ST_KEY_SYNTAX: return "key syntax error";
	case DKIM_ST_KEY_REVOKED: return "key revoked";
	case DKIM_ST_KEY_ALG: return "inappropriate key algorithm";
	case DKIM_ST_KEY_SIZE: return "key too small";
	case DKIM_ST_BODY_HASH: return "body hash did not verify";
	case DKIM_ST_SIGNATURE: return "signature did not verify";
	case DKIM_ST_PARTIAL: return "unsigned content";
	case DKIM_ST_KEY_LIMIT: return "key outside our limits";
	default: return "header section too large";
	}
}

static enum dkim_result
result_of(enum dkim_status s)
{
	switch (s) {
	case DKIM_ST_OK: return DKIM_PASS;
	case DKIM_ST_BODY_HASH:
	case DKIM_ST_SIGNATURE: return DKIM_FAIL;
	case DKIM_ST_KEY_UNAVAILABLE: return DKIM_TEMPERROR;
	case DKIM_ST_PARTIAL: return DKIM_POLICY;
	default: return DKIM_PERMERROR;
	}
}

struct dkim_verifier *
dkim_verifier_new(const struct dkim_verify_opts *opts)
{
	struct dkim_verifier *v = xcalloc(1, sizeof *v);

	if (opts != NULL)
		v->o = *opts;
	if (v->o.max_signatures == 0)
		v->o.max_signatures = 8;
	if (v->o.max_signatures > DKIM_MAX_RESULTS)
		v->o.max_signatures = DKIM_MAX_RESULTS;
	if (v->o.clock_skew == 0)
		v->o.clock_skew = 300;
	if (v->o.max_header_bytes == 0)
		v->o.max_header_bytes = DKIM_HEADER_DEFAULT;
	if (v->o.time_limit_ms == 0)
		v->o.time_limit_ms = 20000;
	auth_split_init(&v->split);
	buf_init(&v->hdr, v->o.max_header_bytes);
	return v;
}

/* The header section is complete: parse the signatures. */
static void
setup(struct dkim_verifier *v)
{
	struct auth_field f;
	size_t pos = 0;
	const char *h = v->hdr.data ? v->hdr.data : "";

	v->ready = 1;
	while (auth_header_next(h, v->hdr.len, &pos, &f)) {
		struct vsig *s;
		if (!auth_field_is(&f, "DKIM-Signature"))
			continue;
		if (v->nsigs >= v->o.max_signatures) {
			v->ignored++;
			continue;
		}
		v->sigs = xrealloc(v->sigs, (v->nsigs + 1) * sizeof *v->sigs);
		s = &v->sigs[v->nsigs++];
		memset(s, 0, sizeof *s);
		s->raw = f.raw;
		s->rawlen = f.rawlen;
		s->valoff = (size_t)(f.value - f.raw);
		if (v->split.overflow) {
			s->st = DKIM_ST_HEADERS_TOO_LARGE;
			continue;
		}
		s->st = dkim_sig_parse(f.value, f.valuelen, &s->sig, s->why,
		    sizeof s->why);
		if (s->st == DKIM_ST_OK)
			s->bh = dkim_bodyhash_new(s->sig.bcanon, s->sig.l);
	}
}

void
dkim_verifier_update(struct dkim_verifier *v, const void *p, size_t n)
{
	size_t k = 0;

	if (!v->split.in_body) {
		k = auth_split_feed(&v->split, p, n, &v->hdr);
		if (v->split.in_body)
			setup(v);
	}
	if (!v->split.in_body || k >= n)
		return;
	for (size_t i = 0; i < v->nsigs; i++)
		if (v->sigs[i].bh != NULL)
			dkim_bodyhash_update(v->sigs[i].bh, (const char *)p + k,
			    n - k);
}

/* Finds a usable key for s (6.1.2) into *k. */
static enum dkim_status
key_fetch(const struct auth_dns *dns, struct vsig *s, struct dkim_keyrec *k)
{
	struct auth_dns_answer ans;
	char name[600];
	enum dkim_status st = DKIM_ST_KEY_NONE;

	why_set(name, sizeof name, "%s._domainkey.%s", s->sig.selector,
	    s->sig.domain);
	auth_dns_lookup(dns, name, AUTH_DNS_TXT, &ans);
	if (ans.status == AUTH_DNS_TEMP) {
		why_set(s->why, sizeof s->why, "%s: %s", name,
		    ans.detail[0] ? ans.detail : "DNS failure");
		auth_dns_answer_clear(&ans);
		return DKIM_ST_KEY_UNAVAILABLE;
	}
	if (ans.status != AUTH_DNS_OK) {
		why_set(s->why, sizeof s->why, "no key at %s", name);
		auth_dns_answer_clear(&ans);
		return DKIM_ST_KEY_NONE;
	}
	for (size_t i = 0; i < ans.n && i < KEY_RECORDS_TRIED; i++) {
		char why[160];
		enum dkim_status r = dkim_keyrec_parse(ans.rr[i].text,
		    ans.rr[i].len, s->sig.alg, k, why, sizeof why);
		if (r == DKIM_ST_OK) {
			st = r;
			break;
		}
		if (i == 0) {
			st = r;
			why_set(s->why, sizeof s->why, "%s: %s", name, why);
		}
	}
	auth_dns_answer_clear(&ans);
	if (st == DKIM_ST_OK && k->strict) {
		const char *at = strrchr(s->sig.auid, '@');
		if (at == NULL || strcasecmp(at + 1, s->sig.domain) != 0) {
			why_set(s->why, sizeof s->why,
			    "key t=s and i= is a subdomain of d=");
			st = DKIM_ST_KEY_ALG;
		}
	}
	return st;
}

/* Verifies one parsed signature whose body hash is complete. */
static enum dkim_status
verify_one(struct dkim_verifier *v, const struct auth_dns *dns, struct vsig *s,
    int64_t deadline, struct dkim_sig_result *r)
{
	time_t now = v->o.now ? v->o.now : time(NULL);
	struct dkim_keyrec *k;
	uint8_t hash[32];
	struct buf field, input;
	enum dkim_status st;

	dkim_bodyhash_final(s->bh, hash, &r->body_length);
	if (s->sig.x >= 0 && (int64_t)now > s->sig.x)
		return DKIM_ST_SIG_EXPIRED;
	if (s->sig.t >= 0 && s->sig.t > (int64_t)now + v->o.clock_skew)
		return DKIM_ST_SIG_FUTURE;
	/* Keys come from the sender's DNS, which may answer as slowly as
	 * the resolver allows, for each of max_signatures selectors. */
	if (time_mono_ms() > deadline) {
		why_set(s->why, sizeof s->why, "the time limit of the DKIM "
		    "checks (%u ms) passed before this key's turn",
		    v->o.time_limit_ms);
		return DKIM_ST_KEY_UNAVAILABLE;
	}
	k = xmalloc(sizeof *k);
	st = key_fetch(dns, s, k);
	r->testing = st == DKIM_ST_OK && k->testing;
	if (st == DKIM_ST_OK && s->sig.l >= 0 &&
	    (uint64_t)s->sig.l > r->body_length)
		st = DKIM_ST_SIG_LENGTH;
	if (st == DKIM_ST_OK && memcmp(hash, s->sig.bh, 32) != 0)
		st = DKIM_ST_BODY_HASH;
	if (st != DKIM_ST_OK) {
		free(k);
		return st;
	}
	/* The field itself, with the value of b= left out (3.7). */
	buf_init(&field, DKIM_MAX_FIELD + 2);
	buf_init(&input, v->o.max_header_bytes + DKIM_MAX_FIELD);
	if (buf_append(&field, s->raw, s->valoff + s->sig.b_off) != 0 ||
	    buf_append(&field, s->raw + s->valoff + s->sig.b_off + s->sig.b_len,
	    s->rawlen - s->valoff - s->sig.b_off - s->sig.b_len) != 0 ||
	    dkim_header_input(v->hdr.data, v->hdr.len, s->sig.hcanon, s->sig.h,
	    s->sig.nh, s->raw, field.data, field.len, &input) != 0)
		st = DKIM_ST_HEADERS_TOO_LARGE;
	else
		st = dkim_keyrec_verify(k, s->sig.alg, input.data, input.len,
		    s->sig.b, s->sig.blen);
	buf_free(&field);
	buf_free(&input);
	free(k);
	if (st == DKIM_ST_OK && s->sig.l >= 0 &&
	    (uint64_t)s->sig.l < r->body_length) {
		why_set(r->reason, sizeof r->reason,
		    "l=%lld: %llu of %llu body octets unsigned",
		    (long long)s->sig.l,
		    (unsigned long long)(r->body_length - (uint64_t)s->sig.l),
		    (unsigned long long)r->body_length);
		if (v->o.refuse_partial)
			st = DKIM_ST_PARTIAL;
	}
	return st;
}

void
dkim_verifier_finish(struct dkim_verifier *v, const struct auth_dns *dns,
    struct dkim_results *res)
{
	int64_t deadline = time_mono_ms() + v->o.time_limit_ms;

	memset(res, 0, sizeof *res);
	if (!v->ready) {
		auth_split_end(&v->split, &v->hdr);
		setup(v);
	}
	res->ignored = v->ignored;
	for (size_t i = 0; i < v->nsigs; i++) {
		struct vsig *s = &v->sigs[i];
		struct dkim_sig_result *r = &res->sig[res->n++];
		enum dkim_status st = s->st;

		r->length = s->sig.l;
		r->alg = s->sig.alg;
		str_copy(r->domain, s->sig.domain, sizeof r->domain);
		str_copy(r->selector, s->sig.selector, sizeof r->selector);
		str_copy(r->auid, s->sig.auid, sizeof r->auid);
		str_copy(r->b_prefix, s->sig.b_prefix, sizeof r->b_prefix);
		if (st == DKIM_ST_OK)
			st = verify_one(v, dns, s, deadline, r);
		r->status = st;
		r->result = result_of(st);
		/* verify_one may have noted l= already; else say why */
		if (r->reason[0] != '\0')
			continue;
		if (st != DKIM_ST_OK && s->why[0] != '\0' &&
		    strcmp(s->why, dkim_status_text(st)) != 0)
			why_set(r->reason, sizeof r->reason, "%s: %s",
			    dkim_status_text(st), s->why);
		else
			str_copy(r->reason, dkim_status_text(st),
			    sizeof r->reason);
	}
	if (v->nsigs == 0 && v->split.overflow) {
		struct dkim_sig_result *r = &res->sig[res->n++];
		r->status = DKIM_ST_HEADERS_TOO_LARGE;
		r->result = DKIM_PERMERROR;
		r->length = -1;
		str_copy(r->reason, dkim_status_text(r->status), sizeof r->reason);
	}
}

const char *
dkim_verifier_headers(const struct dkim_verifier *v, size_t *len)
{
	*len = v->hdr.len;
	return v->hdr.data ? v->hdr.data : "";
}

void
dkim_verifier_free(struct dkim_verifier **vp)
{
	struct dkim_verifier *v = *vp;

	if (v == NULL)
		return;
	for (size_t i = 0; i < v->nsigs; i++)
		dkim_bodyhash_free(&v->sigs[i].bh);
	free(v->sigs);
	buf_free(&v->hdr);
	free(v);
	*vp = NULL;
}
