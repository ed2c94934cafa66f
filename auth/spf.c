/*
 * spf: check_host() of RFC 7208 over the auth_dns interface (spf.h).
 *
 * One struct spf_check carries what a whole evaluation shares: the
 * request, the counters of the processing limits (4.6.4), the deadline,
 * the validated names of the client (for "ptr" and %{p}), and which
 * record's exp= applies when the result is fail (6.2: only the record
 * that produced the result, never an included one, and a redirect hands
 * the choice to its target).
 */
#include "auth/spf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/spf_internal.h"
#include "lib/buf.h"
#include "lib/util.h"

#define SPF_MAX_DEPTH		32	/* beyond any count the limits allow */
#define SPF_VALIDATED_MAX	10

enum match { M_NO, M_YES, M_TEMP, M_PERM };

struct spf_check {
	const struct auth_dns *dns;
	struct spf_limits lim;
	int64_t deadline;
	struct spf_macro_env env;	/* domain changes per check_host() */
	unsigned dns_terms, voids;
	char problem[256];
	char mechanism[256];
	/* the exp= that applies to a fail, with the <domain> it belongs to */
	int have_exp;
	char exp_spec[SPF_RECORD_MAX + 1];
	char exp_domain[SPF_NAME_MAX + 1];
	/* validated names of the client, found once */
	int validated_done;
	size_t nvalidated;
	char validated[SPF_VALIDATED_MAX][SPF_NAME_MAX + 1];
};

void
spf_limits_default(struct spf_limits *l)
{
	l->dns_terms = 10;
	l->void_lookups = 2;
	l->mx_names = 10;
	l->ptr_names = 10;
	l->time_limit_ms = 20000;
}

const char *
spf_result_name(enum spf_result r)
{
	switch (r) {
	case SPF_NONE: return "none";
	case SPF_NEUTRAL: return "neutral";
	case SPF_PASS: return "pass";
	case SPF_FAIL: return "fail";
	case SPF_SOFTFAIL: return "softfail";
	case SPF_TEMPERROR: return "temperror";
	default: return "permerror";
	}
}

static void problem(struct spf_check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
problem(struct spf_check *c, const char *fmt, ...)
{
	va_list ap;

	if (c->problem[0] != '\0')
		return;		/* the first cause is the one to report */
	va_start(ap, fmt);
	vsnprintf(c->problem, sizeof c->problem, fmt, ap);
	va_end(ap);
}

/* A name a DNS query can be made of: labels of 1..63 octets, at most
 * 253 in all (a trailing dot allowed). */
static int
query_name_ok(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > SPF_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (++label > 63) {
			return 0;
		}
	}
	return label > 0;
}

/* The initial <domain> (4.3), without its trailing dot: a multi-label
 * name of letters, digits, '-' and '_', with a top label that is not all
 * digits (so neither an address nor an address literal). */
static int
initial_domain_ok(const char *d)
{
	const char *top;
	int alpha = 0;

	if (!query_name_ok(d) || strchr(d, '.') == NULL)
		return 0;
	for (const char *p = d; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
		    *p != '.')
			return 0;
	top = strrchr(d, '.');
	for (const char *p = top + 1; *p && *p != '.'; p++)
		if (isalpha((unsigned char)*p))
			alpha = 1;
	return alpha;
}

static int
out_of_time(struct spf_check *c)
{
	if (time_mono_ms() <= c->deadline)
		return 0;
	problem(c, "evaluation took longer than %u ms", c->lim.time_limit_ms);
	return 1;
}

/* Counts a term that causes DNS lookups (4.6.4). */
static enum match
count_dns_term(struct spf_check *c)
{
	if (++c->dns_terms > c->lim.dns_terms) {
		problem(c, "more than %u DNS-querying terms", c->lim.dns_terms);
		return M_PERM;
	}
	return M_NO;
}

/* Counts a void lookup (4.6.4). */
static enum match
count_void(struct spf_check *c, const char *name)
{
	if (++c->voids > c->lim.void_lookups) {
		problem(c, "more than %u void lookups (last: %s)",
		    c->lim.void_lookups, name);
		return M_PERM;
	}
	return M_NO;
}

/* A lookup bounded by the deadline; a name that cannot be queried is
 * answered NXDOMAIN without a query. */
static int
lookup(struct spf_check *c, const char *name, enum auth_dns_type type,
    struct auth_dns_answer *ans)
{
	memset(ans, 0, sizeof *ans);
	if (out_of_time(c)) {
		ans->status = AUTH_DNS_TEMP;
		return -1;
	}
	if (!query_name_ok(name)) {
		ans->status = AUTH_DNS_NXDOMAIN;
		return 0;
	}
	auth_dns_lookup(c->dns, name, type, ans);
	return 0;
}

static enum auth_dns_type
addr_type(const struct spf_check *c)
{
	return c->env.ip.family == AF_INET6 ? AUTH_DNS_AAAA : AUTH_DNS_A;
}

/* Does any address of ans match the client within the CIDR length? */
static int
addrs_match(const struct spf_check *c, const struct auth_dns_answer *ans,
    int cidr4, int cidr6)
{
	for (size_t i = 0; i < ans->n; i++)
		if (auth_ip_match(&ans->rr[i].ip, &c->env.ip,
		    c->env.ip.family == AF_INET ? cidr4 : cidr6))
			return 1;
	return 0;
}

static int
name_ends_with(const char *name, const char *domain)
{
	size_t nl = strlen(name), dl = strlen(domain);

	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	if (nl > 0 && name[nl - 1] == '.')
		nl--;
	if (nl < dl || strncasecmp(name + nl - dl, domain, dl) != 0)
		return 0;
	return nl == dl || name[nl - dl - 1] == '.';
}

/*
 * The client's validated names (5.5): PTR names whose addresses include
 * the client, the first ptr_names only; lookups that fail skip the name.
 * Returns 1 when the PTR lookup itself was void.
 */
static int
validated_names(struct spf_check *c)
{
	struct auth_dns_answer ptr;
	char rev[80];
	int is_void = 0;

	if (c->validated_done)
		return 0;
	c->validated_done = 1;
	if (auth_ip_reverse_name(&c->env.ip, rev, sizeof rev) != 0)
		return 0;
	lookup(c, rev, AUTH_DNS_PTR, &ptr);
	if (ptr.status == AUTH_DNS_NODATA || ptr.status == AUTH_DNS_NXDOMAIN)
		is_void = 1;
	for (size_t i = 0; ptr.status == AUTH_DNS_OK && i < ptr.n &&
	    i < c->lim.ptr_names && c->nvalidated < SPF_VALIDATED_MAX; i++) {
		struct auth_dns_answer a;
		const char *name = ptr.rr[i].name;
		if (name == NULL || name[0] == '\0' ||
		    strlen(name) > SPF_NAME_MAX)
			continue;
		lookup(c, name, addr_type(c), &a);
		if (a.status == AUTH_DNS_OK && addrs_match(c, &a, 32, 128))
			str_copy(c->validated[c->nvalidated++], name,
			    sizeof c->validated[0]);
		auth_dns_answer_clear(&a);
	}
	auth_dns_answer_clear(&ptr);
	return is_void;
}

/* %{p} (7.3): <domain> itself, else a subdomain of it, else any. */
static void
ptr_macro(void *arg, const char *domain, char *out, size_t outsize)
{
	struct spf_check *c = arg;
	const char *best = NULL;

	validated_names(c);
	for (size_t i = 0; i < c->nvalidated && best == NULL; i++)
		if (strcasecmp(c->validated[i], domain) == 0)
			best = c->validated[i];
	for (size_t i = 0; i < c->nvalidated && best == NULL; i++)
		if (name_ends_with(c->validated[i], domain))
			best = c->validated[i];
	if (best == NULL && c->nvalidated > 0)
		best = c->validated[0];
	str_copy(out, best ? best : "unknown", outsize);
}

static enum spf_result check_host(struct spf_check *c, const char *domain,
    int depth);

/* The target of a term: its domain-spec expanded, or <domain>. */
static enum match
target(struct spf_check *c, const struct spf_term *t, char *out,
    size_t outsize)
{
	if (t->spec == NULL)
		return str_copy(out, c->env.domain, outsize) == 0 ? M_NO : M_PERM;
	switch (spf_expand_domain(&c->env, t->spec, t->speclen, out, outsize)) {
	case 0:
		return M_NO;
	case -2:
		/* Queried as a name that does not exist (spf.h). */
		out[0] = '\0';
		return M_NO;
	default:
		problem(c, "cannot expand %.*s", (int)t->speclen, t->spec);
		return M_PERM;
	}
}

static enum match
dns_failed(struct spf_check *c, const char *name,
    const struct auth_dns_answer *ans)
{
	problem(c, "DNS lookup of %s: %s", name,
	    ans->detail[0] ? ans->detail : auth_dns_status_str(ans->status));
	return M_TEMP;
}

static enum match
match_a(struct spf_check *c, const struct spf_term *t, const char *name)
{
	struct auth_dns_answer ans;
	enum match m = M_NO;

	lookup(c, name, addr_type(c), &ans);
	if (ans.status == AUTH_DNS_TEMP)
		m = dns_failed(c, name, &ans);
	else if (ans.status != AUTH_DNS_OK)
		m = count_void(c, name);
	else if (addrs_match(c, &ans, t->cidr4, t->cidr6))
		m = M_YES;
	auth_dns_answer_clear(&ans);
	return m;
}

static enum match
match_mx(struct spf_check *c, const struct spf_term *t, const char *name)
{
	struct auth_dns_answer mx;
	enum match m = M_NO;

	lookup(c, name, AUTH_DNS_MX, &mx);
	if (mx.status == AUTH_DNS_TEMP) {
		m = dns_failed(c, name, &mx);
	} else if (mx.status != AUTH_DNS_OK) {
		m = count_void(c, name);
	} else if (mx.n > c->lim.mx_names) {
		problem(c, "%s has more than %u MX records", name,
		    c->lim.mx_names);
		m = M_PERM;
	} else {
		for (size_t i = 0; i < mx.n && m == M_NO; i++) {
			struct auth_dns_answer a;
			const char *host = mx.rr[i].name;
			if (host == NULL || host[0] == '\0')
				continue;	/* a null MX has no address */
			lookup(c, host, addr_type(c), &a);
			if (a.status == AUTH_DNS_TEMP)
				m = dns_failed(c, host, &a);
			else if (a.status == AUTH_DNS_OK &&
			    addrs_match(c, &a, t->cidr4, t->cidr6))
				m = M_YES;
			auth_dns_answer_clear(&a);
		}
	}
	auth_dns_answer_clear(&mx);
	return m;
}

static enum match
match_ptr(struct spf_check *c, const char *name)
{
	int was_done = c->validated_done;

	if (validated_names(c) && !was_done && count_void(c, "PTR") == M_PERM)
		return M_PERM;
	for (size_t i = 0; i < c->nvalidated; i++)
		if (name_ends_with(c->validated[i], name))
			return M_YES;
	return M_NO;
}

static enum match
match_exists(struct spf_check *c, const char *name)
{
	struct auth_dns_answer ans;
	enum match m = M_NO;

	lookup(c, name, AUTH_DNS_A, &ans);
	if (ans.status == AUTH_DNS_TEMP)
		m = dns_failed(c, name, &ans);
	else if (ans.status != AUTH_DNS_OK)
		m = count_void(c, name);
	else
		m = M_YES;
	auth_dns_answer_clear(&ans);
	return m;
}

static enum match
match_include(struct spf_check *c, const char *name, int depth)
{
	enum spf_result r;

	r = check_host(c, name, depth + 1);
	/* An included record's exp= never explains the outer result. */
	c->have_exp = 0;
	switch (r) {
	case SPF_PASS:
		return M_YES;
	case SPF_FAIL:
	case SPF_SOFTFAIL:
	case SPF_NEUTRAL:
		return M_NO;
	case SPF_TEMPERROR:
		return M_TEMP;
	case SPF_NONE:
		problem(c, "include:%s has no SPF record", name);
		return M_PERM;
	default:
		return M_PERM;
	}
}

static enum match
match_term(struct spf_check *c, const struct spf_term *t, int depth)
{
	char name[SPF_NAME_MAX + 1];
	enum match m;

	switch (t->mech) {
	case SPF_M_ALL:
		return M_YES;
	case SPF_M_IP4:
	case SPF_M_IP6:
		return auth_ip_match(&t->net, &c->env.ip,
		    t->mech == SPF_M_IP4 ? t->cidr4 : t->cidr6) ? M_YES : M_NO;
	default:
		break;
	}
	if ((m = count_dns_term(c)) != M_NO)
		return m;
	if ((m = target(c, t, name, sizeof name)) != M_NO)
		return m;
	switch (t->mech) {
	case SPF_M_INCLUDE:
		return match_include(c, name, depth);
	case SPF_M_A:
		return match_a(c, t, name);
	case SPF_M_MX:
		return match_mx(c, t, name);
	case SPF_M_PTR:
		return match_ptr(c, name);
	case SPF_M_EXISTS:
		return match_exists(c, name);
	default:
		return M_NO;
	}
}

static enum spf_result
qualifier_result(char q)
{
	switch (q) {
	case '-': return SPF_FAIL;
	case '~': return SPF_SOFTFAIL;
	case '?': return SPF_NEUTRAL;
	default: return SPF_PASS;
	}
}

/* Finds the one SPF record of domain (4.4, 4.5). Returns SPF_PASS with
 * *rec_r set, or the result to give. */
static enum spf_result
record_fetch(struct spf_check *c, const char *domain, int depth,
    struct spf_record **rec_r)
{
	struct auth_dns_answer ans;
	const struct auth_dns_rr *found = NULL;
	size_t nfound = 0;
	char why[200];

	*rec_r = NULL;
	lookup(c, domain, AUTH_DNS_TXT, &ans);
	if (ans.status == AUTH_DNS_TEMP) {
		dns_failed(c, domain, &ans);
		auth_dns_answer_clear(&ans);
		return SPF_TEMPERROR;
	}
	if (ans.status != AUTH_DNS_OK) {
		auth_dns_answer_clear(&ans);
		if (depth > 0 && count_void(c, domain) == M_PERM)
			return SPF_PERMERROR;
		problem(c, "no SPF record at %s", domain);
		return SPF_NONE;
	}
	for (size_t i = 0; i < ans.n; i++)
		if (spf_record_is_v1(ans.rr[i].text, ans.rr[i].len)) {
			found = &ans.rr[i];
			nfound++;
		}
	if (nfound != 1) {
		auth_dns_answer_clear(&ans);
		if (nfound == 0) {
			problem(c, "no SPF record at %s", domain);
			return SPF_NONE;
		}
		problem(c, "%zu SPF records at %s", nfound, domain);
		return SPF_PERMERROR;
	}
	if (spf_record_parse(found->text, found->len, rec_r, why,
	    sizeof why) != 0) {
		problem(c, "%s: %s", domain, why);
		auth_dns_answer_clear(&ans);
		return SPF_PERMERROR;
	}
	auth_dns_answer_clear(&ans);
	return SPF_PASS;
}

static void
mechanism_set(struct spf_check *c, const char *text, size_t len)
{
	if (len >= sizeof c->mechanism)
		len = sizeof c->mechanism - 1;
	memcpy(c->mechanism, text, len);
	c->mechanism[len] = '\0';
}

static enum spf_result
check_host(struct spf_check *c, const char *domain, int depth)
{
	struct spf_record *rec;
	enum spf_result r;
	const char *saved_domain = c->env.domain;
	char dom[SPF_NAME_MAX + 1];

	if (depth > SPF_MAX_DEPTH) {
		problem(c, "includes nested too deep");
		return SPF_PERMERROR;
	}
	if (str_copy(dom, domain, sizeof dom) != 0)
		return SPF_PERMERROR;
	if ((r = record_fetch(c, dom, depth, &rec)) != SPF_PASS)
		return r;
	c->env.domain = dom;
	r = SPF_NEUTRAL;
	for (size_t i = 0; i < rec->nterms; i++) {
		const struct spf_term *t = &rec->terms[i];
		enum match m;
		if (t->kind != SPF_T_MECH)
			continue;
		m = match_term(c, t, depth);
		if (m == M_NO)
			continue;
		if (m == M_TEMP) {
			r = SPF_TEMPERROR;
		} else if (m == M_PERM) {
			r = SPF_PERMERROR;
		} else {
			r = qualifier_result(t->qual);
			mechanism_set(c, t->text, t->textlen);
			c->have_exp = 0;
			if (r == SPF_FAIL && rec->exp >= 0) {
				const struct spf_term *e = &rec->terms[rec->exp];
				memcpy(c->exp_spec, e->spec, e->speclen);
				c->exp_spec[e->speclen] = '\0';
				str_copy(c->exp_domain, dom, sizeof c->exp_domain);
				c->have_exp = 1;
			}
		}
		goto done;
	}
	if (rec->redirect >= 0) {
		const struct spf_term *t = &rec->terms[rec->redirect];
		char name[SPF_NAME_MAX + 1];
		if (count_dns_term(c) == M_PERM ||
		    target(c, t, name, sizeof name) != M_NO) {
			r = SPF_PERMERROR;
			goto done;
		}
		c->have_exp = 0;
		r = check_host(c, name, depth + 1);
		if (r == SPF_NONE) {
			problem(c, "redirect=%s has no SPF record", name);
			r = SPF_PERMERROR;
		}
		goto done;
	}
	mechanism_set(c, "default", 7);
done:
	c->env.domain = saved_domain;
	spf_record_free(&rec);
	return r;
}

/* The explanation of a fail (6.2): any trouble means there is none. */
static void
explain(struct spf_check *c, char *out, size_t outsize)
{
	struct spf_macro_env env = c->env;
	struct auth_dns_answer ans;
	char name[SPF_NAME_MAX + 1];
	struct buf text;

	out[0] = '\0';
	if (!c->have_exp)
		return;
	env.domain = c->exp_domain;
	if (spf_expand_domain(&env, c->exp_spec, strlen(c->exp_spec), name,
	    sizeof name) != 0 || !query_name_ok(name))
		return;
	/* Not counted against the limits; asked at most once (4.6.4). */
	auth_dns_lookup(c->dns, name, AUTH_DNS_TXT, &ans);
	if (ans.status != AUTH_DNS_OK || ans.n != 1) {
		auth_dns_answer_clear(&ans);
		return;
	}
	buf_init(&text, outsize - 1);
	if (spf_macro_expand(&env, ans.rr[0].text, ans.rr[0].len,
	    SPF_MACRO_EXP, &text) == 0 && text.len > 0)
		str_copy(out, text.data, outsize);
	buf_free(&text);
	auth_dns_answer_clear(&ans);
}

static enum spf_result
check(const struct auth_dns *dns, const struct spf_request *req,
    const struct spf_limits *limits, enum spf_identity id,
    struct spf_outcome *out)
{
	struct spf_check *c = xcalloc(1, sizeof *c);
	const char *helo = req->helo ? req->helo : "";
	const char *sender = req->sender ? req->sender : "";
	char local[256], domain[SPF_NAME_MAX + 2];
	const char *at;

	memset(out, 0, sizeof *out);
	out->identity = id;
	if (id == SPF_ID_HELO || sender[0] == '\0') {
		snprintf(out->sender, sizeof out->sender, "postmaster@%s", helo);
	} else {
		str_copy(out->sender, sender, sizeof out->sender);
	}
	at = strrchr(out->sender, '@');
	if (at == NULL) {
		str_copy(local, "postmaster", sizeof local);
		str_copy(domain, out->sender, sizeof domain);
	} else {
		size_t ll = (size_t)(at - out->sender);
		if (ll == 0 || ll >= sizeof local) {
			str_copy(local, "postmaster", sizeof local);
		} else {
			memcpy(local, out->sender, ll);
			local[ll] = '\0';
		}
		if (str_copy(domain, at + 1, sizeof domain) != 0)
			domain[0] = '\0';
	}
	if (domain[0] != '\0' && domain[strlen(domain) - 1] == '.')
		domain[strlen(domain) - 1] = '\0';
	str_copy(out->domain, domain, sizeof out->domain);

	if (limits != NULL)
		c->lim = *limits;
	else
		spf_limits_default(&c->lim);
	c->dns = dns;
	c->deadline = time_mono_ms() + c->lim.time_limit_ms;
	c->env.sender = out->sender;
	c->env.local = local;
	c->env.sender_domain = domain;
	c->env.domain = domain;
	c->env.helo = helo;
	c->env.receiver = req->receiver;
	c->env.ip = req->ip;
	c->env.now = req->now ? req->now : time(NULL);
	c->env.ptr_name = ptr_macro;
	c->env.arg = c;

	if (req->ip.family != AF_INET && req->ip.family != AF_INET6) {
		problem(c, "no client address");
		out->result = SPF_PERMERROR;
	} else if (!initial_domain_ok(domain)) {
		problem(c, "\"%s\" is not a domain SPF can check", domain);
		out->result = SPF_NONE;
	} else {
		out->result = check_host(c, domain, 0);
	}
	if (out->result == SPF_FAIL)
		explain(c, out->explanation, sizeof out->explanation);
	if (out->result == SPF_PASS || out->result == SPF_FAIL ||
	    out->result == SPF_SOFTFAIL || out->result == SPF_NEUTRAL)
		str_copy(out->mechanism, c->mechanism, sizeof out->mechanism);
	else
		str_copy(out->problem, c->problem, sizeof out->problem);
	out->dns_terms = c->dns_terms;
	out->void_lookups = c->voids;
	free(c);
	return out->result;
}

enum spf_result
spf_check_mailfrom(const struct auth_dns *dns, const struct spf_request *req,
    const struct spf_limits *limits, struct spf_outcome *out)
{
	return check(dns, req, limits, SPF_ID_MAILFROM, out);
}

enum spf_result
spf_check_helo(const struct auth_dns *dns, const struct spf_request *req,
    const struct spf_limits *limits, struct spf_outcome *out)
{
	return check(dns, req, limits, SPF_ID_HELO, out);
}
