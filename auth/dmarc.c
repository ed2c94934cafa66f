/*
 * dmarc: RFC 7489 policy discovery and evaluation (dmarc.h).
 */
#include "auth/dmarc.h"

#include <ctype.h>
#include <libpsl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/taglist.h"
#include "lib/util.h"

#define DMARC_NAME_MAX 253

/* The PSL: loaded once, read-only afterwards, kept for the process. */
static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *psl;

static void
psl_load(void)
{
	psl_ctx_t *latest = psl_latest(NULL);

	psl = latest != NULL ? latest : psl_builtin();
}

const char *
dmarc_result_name(enum dmarc_result r)
{
	switch (r) {
	case DMARC_NONE: return "none";
	case DMARC_PASS: return "pass";
	case DMARC_FAIL: return "fail";
	case DMARC_TEMPERROR: return "temperror";
	default: return "permerror";
	}
}

const char *
dmarc_policy_name(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_P_QUARANTINE: return "quarantine";
	case DMARC_P_REJECT: return "reject";
	default: return "none";
	}
}

int
dmarc_org_domain(const char *domain, char *out, size_t outsize)
{
	char lower[DMARC_NAME_MAX + 2];
	const char *reg = NULL;
	size_t n = strlen(domain);

	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (n > DMARC_NAME_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		lower[i] = (char)tolower((unsigned char)domain[i]);
	lower[n] = '\0';
	pthread_once(&psl_once, psl_load);
	if (psl != NULL)
		reg = psl_registrable_domain(psl, lower);
	return str_copy(out, reg != NULL ? reg : lower, outsize);
}

static int
policy_word(const struct tag *t, enum dmarc_policy *p)
{
	if (tag_value_is(t, "none", 1))
		*p = DMARC_P_NONE;
	else if (tag_value_is(t, "quarantine", 1))
		*p = DMARC_P_QUARANTINE;
	else if (tag_value_is(t, "reject", 1))
		*p = DMARC_P_REJECT;
	else
		return -1;
	return 0;
}

/* A URI list (6.4 dmarc-uri, comma-separated) with at least one URI
 * that has a scheme. */
static int
uri_list_ok(const struct tag *t)
{
	const char *p = t->value, *end = t->value + t->valuelen;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		const char *colon;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		colon = memchr(p, ':', (size_t)(e - p));
		if (colon != NULL && colon > p && isalpha((unsigned char)*p) &&
		    colon + 1 < e)
			return 1;
		p = comma ? comma + 1 : end;
	}
	return 0;
}

static void
tag_copy(const struct tag *t, char *out, size_t outsize)
{
	size_t n = t->valuelen < outsize - 1 ? t->valuelen : outsize - 1;

	memcpy(out, t->value, n);
	out[n] = '\0';
}

int
dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r)
{
	struct taglist tl;
	const struct tag *t;
	char why[100];
	int sp_valid = 0;

	memset(r, 0, sizeof *r);
	r->pct = 100;
	if (taglist_parse(txt, len, TAGLIST_LENIENT, &tl, why, sizeof why) != 0 ||
	    tl.n == 0 || tl.tags[0].namelen != 1 || tl.tags[0].name[0] != 'v' ||
	    !tag_value_is(&tl.tags[0], "DMARC1", 0))
		return -1;
	if ((t = taglist_get(&tl, "p")) != NULL && policy_word(t, &r->p) == 0)
		r->p_valid = 1;
	if ((t = taglist_get(&tl, "sp")) != NULL && policy_word(t, &r->sp) == 0)
		sp_valid = 1;
	if (t != NULL && !sp_valid)
		r->p_valid = 0;	/* an invalid sp= spoils the record (6.6.3) */
	if (!sp_valid)
		r->sp = r->p;
	if ((t = taglist_get(&tl, "adkim")) != NULL)
		r->strict_dkim = tag_value_is(t, "s", 1);
	if ((t = taglist_get(&tl, "aspf")) != NULL)
		r->strict_spf = tag_value_is(t, "s", 1);
	if ((t = taglist_get(&tl, "pct")) != NULL && t->valuelen > 0 &&
	    t->valuelen <= 3) {
		unsigned v = 0;
		size_t i;
		for (i = 0; i < t->valuelen && isdigit((unsigned char)t->value[i]);
		    i++)
			v = v * 10 + (unsigned)(t->value[i] - '0');
		if (i == t->valuelen && v <= 100)
			r->pct = v;
	}
	if ((t = taglist_get(&tl, "rua")) != NULL) {
		r->has_rua = uri_list_ok(t);
		tag_copy(t, r->rua, sizeof r->rua);
	}
	if ((t = taglist_get(&tl, "ruf")) != NULL)
		tag_copy(t, r->ruf, sizeof r->ruf);
	/* No valid p= but a valid rua=: act as p=none (6.6.3 step 6). */
	if (!r->p_valid && r->has_rua) {
		r->p = r->sp = DMARC_P_NONE;
		r->p_valid = 1;
	}
	return 0;
}

/* Looks for the one DMARC record at _dmarc.domain. Returns 1 found,
 * 0 none, 2 unusable (several, or no valid p=: discovery ends, 6.6.3),
 * -1 temporary failure. */
static int
record_fetch(const struct auth_dns *dns, const char *domain,
    struct dmarc_record *r, char *problem, size_t psize)
{
	struct auth_dns_answer ans;
	char name[DMARC_NAME_MAX + 16];
	size_t found = 0;

	if ((size_t)snprintf(name, sizeof name, "_dmarc.%s", domain) >= sizeof name)
		return 0;
	auth_dns_lookup(dns, name, AUTH_DNS_TXT, &ans);
	if (ans.status == AUTH_DNS_TEMP) {
		snprintf(problem, psize, "DNS lookup of _dmarc.%.100s failed",
		    domain);
		auth_dns_answer_clear(&ans);
		return -1;
	}
	for (size_t i = 0; ans.status == AUTH_DNS_OK && i < ans.n; i++) {
		struct dmarc_record one;
		if (dmarc_record_parse(ans.rr[i].text, ans.rr[i].len, &one) == 0) {
			if (found++ == 0)
				*r = one;
		}
	}
	auth_dns_answer_clear(&ans);
	if (found > 1) {
		snprintf(problem, psize, "%zu DMARC records at _dmarc.%.100s",
		    found, domain);
		return 2;
	}
	if (found == 1 && !r->p_valid) {
		snprintf(problem, psize, "the record at _dmarc.%.100s has no "
		    "valid p=", domain);
		return 2;
	}
	return found == 1;
}

/* Identifier alignment (3.1). */
static int
aligned(const char *id, const char *from, const char *from_org, int strict)
{
	char org[DMARC_NAME_MAX + 2];
	size_t n;

	if (id == NULL || id[0] == '\0')
		return 0;
	n = strlen(id);
	if (strcasecmp(id, from) == 0 ||
	    (n > 0 && id[n - 1] == '.' && strlen(from) == n - 1 &&
	    strncasecmp(id, from, n - 1) == 0))
		return 1;
	if (strict || dmarc_org_domain(id, org, sizeof org) != 0)
		return 0;
	return strcmp(org, from_org) == 0;
}

static enum dmarc_policy
next_down(enum dmarc_policy p)
{
	return p == DMARC_P_REJECT ? DMARC_P_QUARANTINE : DMARC_P_NONE;
}

enum dmarc_result
dmarc_check(const struct auth_dns *dns, const struct dmarc_input *in,
    struct dmarc_outcome *out)
{
	const struct dmarc_record *r = &out->record;
	int rc, sub;

	memset(out, 0, sizeof *out);
	if (in->from_ambiguous) {
		snprintf(out->problem, sizeof out->problem,
		    "several From fields or author domains");
		return out->result = DMARC_PERMERROR;
	}
	if (in->from_unusable) {
		snprintf(out->problem, sizeof out->problem,
		    "no author domain in the From field");
		return out->result = DMARC_PERMERROR;
	}
	if (in->from_domain == NULL || in->from_domain[0] == '\0' ||
	    str_copy(out->from_domain, in->from_domain,
	    sizeof out->from_domain) != 0) {
		snprintf(out->problem, sizeof out->problem, "no From domain");
		return out->result = DMARC_NONE;
	}
	str_lower(out->from_domain);
	if (dmarc_org_domain(out->from_domain, out->org_domain,
	    sizeof out->org_domain) != 0)
		return out->result = DMARC_NONE;
	rc = record_fetch(dns, out->from_domain, &out->record, out->problem,
	    sizeof out->problem);
	sub = 0;
	if (rc == 0 && strcmp(out->org_domain, out->from_domain) != 0) {
		rc = record_fetch(dns, out->org_domain, &out->record,
		    out->problem, sizeof out->problem);
		sub = 1;
	}
	if (rc < 0)
		return out->result = DMARC_TEMPERROR;
	if (rc != 1) {
		if (out->problem[0] == '\0')
			snprintf(out->problem, sizeof out->problem,
			    "no DMARC record");
		return out->result = DMARC_NONE;
	}
	str_copy(out->policy_domain, sub ? out->org_domain : out->from_domain,
	    sizeof out->policy_domain);
	out->policy = sub ? r->sp : r->p;

	out->spf_aligned = in->spf_result == SPF_PASS &&
	    aligned(in->spf_domain, out->from_domain, out->org_domain,
	    r->strict_spf);
	for (size_t i = 0; in->dkim != NULL && i < in->dkim->n; i++) {
		const struct dkim_sig_result *s = &in->dkim->sig[i];
		if (s->result == DKIM_PASS && aligned(s->domain, out->from_domain,
		    out->org_domain, r->strict_dkim)) {
			out->dkim_aligned = 1;
			str_copy(out->dkim_domain, s->domain,
			    sizeof out->dkim_domain);
			break;
		}
	}
	if (out->spf_aligned || out->dkim_aligned) {
		out->disposition = DMARC_P_NONE;
		return out->result = DMARC_PASS;
	}
	out->disposition = out->policy;
	if (in->sample >= r->pct && out->policy != DMARC_P_NONE) {
		out->sampled_out = 1;
		out->disposition = next_down(out->policy);
	}
	return out->result = DMARC_FAIL;
}
