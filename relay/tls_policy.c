/*
 * tls_policy: per-destination outbound TLS policy and the check of a
 * finished handshake (relay/tls_policy.h). The DANE rules of RFC 7672
 * section 2.2 are in dane_for_host and dane_hosts; MTA-STS's (RFC 8461
 * 4, 5) in sts_for_host; the session checks in tls_policy_check_chain.
 */
#include "relay/tls_policy.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "lib/log.h"
#include "lib/util.h"
#include "relay/tls_dane.h"
#include "relay/tls_verify.h"

struct tls_policy_ctx {
	struct tls_policy_config cfg;
	char *ca_file, *sts_ca_file;	/* copies of the config's strings */
	struct tls_trust *trust;	/* NULL: no trust anchors at all */
	struct tls_dane *dane;
	struct mta_sts_failed *sts_failed;	/* fetches that failed lately */
};

struct tls_policy_ctx *
tls_policy_ctx_new(const struct tls_policy_config *cfg, char *err, size_t errsize)
{
	struct tls_policy_ctx *c = xcalloc(1, sizeof *c);

	c->cfg = *cfg;
	if (c->cfg.smtp_port == 0)
		c->cfg.smtp_port = 25;
	if (cfg->ca_file != NULL)
		c->ca_file = xstrdup(cfg->ca_file);
	if (cfg->sts_fetch.ca_file != NULL)
		c->sts_ca_file = xstrdup(cfg->sts_fetch.ca_file);
	c->cfg.ca_file = c->ca_file;
	c->cfg.sts_fetch.ca_file = c->sts_ca_file;
	c->trust = tls_trust_new(c->ca_file, err, errsize);
	if (c->trust == NULL && c->ca_file != NULL)
		goto fail;
	if (c->trust == NULL)
		log_warn("outbound TLS: %s: verify and MTA-STS cannot succeed", err);
	if ((c->dane = tls_dane_new(err, errsize)) == NULL)
		goto fail;
	c->sts_failed = mta_sts_failed_new();
	return c;
fail:
	tls_policy_ctx_free(&c);
	return NULL;
}

void
tls_policy_ctx_free(struct tls_policy_ctx **cp)
{
	struct tls_policy_ctx *c = *cp;

	if (c == NULL)
		return;
	tls_trust_free(&c->trust);
	tls_dane_free(&c->dane);
	mta_sts_failed_free(&c->sts_failed);
	free(c->ca_file);
	free(c->sts_ca_file);
	free(c);
	*cp = NULL;
}

enum tls_level
tls_policy_level(const struct tls_policy_ctx *ctx, const char *domain,
    const struct tls_policy_entry **entry_r)
{
	const struct tls_policy_entry *e = tls_policy_map_lookup(ctx->cfg.map, domain);

	if (entry_r != NULL)
		*entry_r = e;
	return e ? e->level : ctx->cfg.level;
}

/* ---- building host policies ---- */

static void
add_name(struct tls_host_policy *hp, const char *name)
{
	for (size_t i = 0; i < hp->nnames; i++)
		if (strcmp(hp->names[i], name) == 0)
			return;
	if (hp->nnames < TLS_POLICY_NAMES_MAX)
		str_copy(hp->names[hp->nnames++], name, sizeof hp->names[0]);
}

static void
host_plain(struct tls_host_policy *hp, enum tls_level level)
{
	hp->level = level;
	hp->tls_required = level == TLS_LEVEL_ENCRYPT;
	hp->auth = TLS_AUTH_NONE;
	hp->name_validated = 0;
	hp->via = tls_level_str(level);
}

static void
host_skip(struct tls_host_policy *hp, enum tls_rpt_result r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
host_skip(struct tls_host_policy *hp, enum tls_rpt_result r, const char *fmt, ...)
{
	va_list ap;

	hp->skip = 1;
	hp->skip_rpt = r;
	va_start(ap, fmt);
	vsnprintf(hp->skip_reason, sizeof hp->skip_reason, fmt, ap);
	va_end(ap);
}

/* The TLSA records as report policy strings (presentation form). */
static char *
tlsa_strings(const struct dns_tlsa_result *t)
{
	struct buf b;
	char line[512];

	buf_init(&b, TLS_RPT_POLICY_TEXT_MAX);
	for (size_t i = 0; i < t->n; i++) {
		tls_dane_rr_text(&t->rrs[i], line, sizeof line);
		if (buf_printf(&b, "%s%s", i ? "\n" : "", line) != 0)
			break;
	}
	return b.data ? buf_steal(&b, NULL) : xstrdup("");
}

/*
 * DANE for one MX host whose name was securely obtained (RFC 7672
 * 2.2.2), whose next-hop domain (a DANE-TA reference name, 3.2.2) is
 * domain: 1 when decided (DANE, TLS for an unusable RRset, or a skip for
 * a bogus answer), 0 when DANE does not apply (insecure).
 */
static int
dane_for_host(struct tls_policy_ctx *ctx, const char *domain,
    struct tls_host_policy *hp)
{
	struct dns_sec_host h;
	const char *bases[2];
	size_t nbases = 0;

	dns_sec_host_lookup(ctx->cfg.resolver, hp->host, &h);
	hp->addr_state = h.state;
	if (h.state == DNS_SEC_BOGUS) {
		host_skip(hp, TLS_RPT_DNSSEC_INVALID, "address records of %s are "
		    "bogus or unavailable: %s", hp->host, h.detail);
		return 1;
	}
	if (h.state == DNS_SEC_SECURE) {
		/* The expanded name first, then the original one. */
		if (h.alias && strcmp(h.expanded, hp->host) != 0)
			bases[nbases++] = h.expanded;
		bases[nbases++] = hp->host;
	} else if (h.alias && h.alias_state == DNS_SEC_SECURE) {
		/* A signed alias into an unsigned zone: its own name counts. */
		bases[nbases++] = hp->host;
	} else {
		return 0;
	}
	for (size_t i = 0; i < nbases; i++) {
		struct dns_tlsa_result *t;
		dns_tlsa_lookup(ctx->cfg.resolver, bases[i], ctx->cfg.smtp_port, &t);
		if (t->kind == DNS_SEC_FAIL) {
			host_skip(hp, TLS_RPT_DNSSEC_INVALID, "TLSA lookup of %s failed "
			    "(bogus or unavailable): %s", t->qname, t->detail);
			dns_tlsa_result_free(&t);
			return 1;
		}
		if (t->kind != DNS_SEC_DATA || t->state != DNS_SEC_SECURE) {
			dns_tlsa_result_free(&t);
			continue;	/* none, or not to be trusted: next base */
		}
		hp->tlsa = t;
		if (strcmp(bases[i], hp->host) != 0)
			str_copy(hp->sni, bases[i], sizeof hp->sni);
		add_name(hp, bases[i]);
		add_name(hp, hp->host);
		add_name(hp, domain);
		hp->rpt_type = TLS_RPT_POLICY_TLSA;
		hp->rpt_strings = tlsa_strings(t);
		hp->tls_required = 1;
		hp->name_validated = 1;
		hp->via = "dane";
		if (tls_dane_usable(t->rrs, t->n) > 0) {
			hp->level = TLS_LEVEL_DANE;
			hp->auth = TLS_AUTH_DANE;
		} else {
			/* RFC 7672 3.1.3: encrypt, do not authenticate. */
			hp->level = TLS_LEVEL_ENCRYPT;
			hp->auth = TLS_AUTH_NONE;
		}
		return 1;
	}
	return 0;
}

/* The mx patterns of a policy, one per line. */
static char *
sts_patterns(const struct mta_sts_policy *p)
{
	struct buf b;

	buf_init(&b, TLS_RPT_POLICY_TEXT_MAX);
	for (size_t i = 0; i < p->nmx; i++)
		if (buf_printf(&b, "%s%s", i ? "\n" : "", p->mx[i]) != 0)
			break;
	return b.data ? buf_steal(&b, NULL) : xstrdup("");
}

/* MTA-STS for a host without DANE (RFC 8461 4, 5). */
static void
sts_for_host(struct tls_policy_ctx *ctx, struct tls_dest_policy *dp,
    struct tls_host_policy *hp, int64_t now)
{
	const struct mta_sts_state *st = &dp->sts;

	if (!dp->sts_looked_up) {
		struct mta_sts_env env = { ctx->cfg.resolver,
		    ctx->cfg.store, ctx->cfg.sts_fetch, ctx->cfg.sts_no_fetch,
		    ctx->sts_failed };
		mta_sts_cache_lookup(&env, dp->domain, now, &dp->sts);
		dp->sts_looked_up = 1;
	}
	if (!st->have || st->policy.mode == MTA_STS_MODE_NONE) {
		host_plain(hp, TLS_LEVEL_MAY);
		return;
	}
	hp->rpt_type = TLS_RPT_POLICY_STS;
	hp->rpt_strings = xstrdup(st->text ? st->text : "");
	hp->rpt_mx = sts_patterns(&st->policy);
	hp->via = "mta-sts";
	hp->auth = TLS_AUTH_STS;
	add_name(hp, hp->host);
	if (st->policy.mode == MTA_STS_MODE_TESTING) {
		hp->level = TLS_LEVEL_MAY;
		hp->sts_testing = 1;
		hp->sts_mismatch = !mta_sts_mx_match(&st->policy, hp->host);
		return;
	}
	if (!mta_sts_mx_match(&st->policy, hp->host)) {
		host_skip(hp, TLS_RPT_VALIDATION_FAILURE, "%s matches no mx pattern of "
		    "the MTA-STS policy of %s", hp->host, dp->domain);
		return;
	}
	hp->level = TLS_LEVEL_VERIFY;
	hp->tls_required = 1;
	hp->name_validated = 1;	/* it matched a pattern of the policy */
}

/* The dane and dane-only levels (RFC 7672 2.2.1). */
static void
dane_hosts(struct tls_policy_ctx *ctx, struct tls_dest_policy *dp,
    const struct dns_mx_result *mx, int only, int64_t now)
{
	struct dns_sec_mx smx;

	dns_sec_mx_lookup(ctx->cfg.resolver, dp->domain, &smx);
	dp->mx_state = smx.state;
	if (smx.state == DNS_SEC_BOGUS) {
		dp->defer = 1;
		dp->defer_rpt = TLS_RPT_DNSSEC_INVALID;
		str_format(dp->defer_reason, sizeof dp->defer_reason, "DNSSEC: MX lookup of "
		    "%s is bogus or unavailable: %s", dp->domain, smx.detail);
		return;
	}
	for (size_t i = 0; i < dp->nhosts; i++) {
		struct tls_host_policy *hp = &dp->hosts[i];
		int secure_name = smx.state == DNS_SEC_SECURE && (mx->implicit ?
		    smx.kind == DNS_SEC_NODATA : dns_sec_mx_has(&smx, hp->host));

		if (secure_name && dane_for_host(ctx, dp->domain, hp)) {
			if (only && !hp->skip && hp->auth != TLS_AUTH_DANE)
				host_skip(hp, TLS_RPT_DANE_REQUIRED, "no DANE for %s: no "
				    "usable TLSA record", hp->host);
			continue;
		}
		if (only) {
			host_skip(hp, TLS_RPT_DANE_REQUIRED, "no DANE for %s: %s", hp->host,
			    !secure_name ? "the MX lookup is not DNSSEC-secure" :
			    hp->addr_state != DNS_SEC_SECURE ?
			    "its address records are not DNSSEC-secure" :
			    "no secure TLSA records");
			continue;
		}
		if (ctx->cfg.no_mta_sts)
			host_plain(hp, TLS_LEVEL_MAY);
		else
			sts_for_host(ctx, dp, hp, now);
	}
}

/* The destination's domain and configured level into dp; *entry_r its
 * tls_policy entry or NULL. An address literal ("[192.0.2.1]", RFC 5321
 * 4.1.3) is no policy domain: the default level, and nothing to report
 * to. -1 when dp is deferred (not a domain name). */
static int
dest_begin(const struct tls_policy_ctx *ctx, struct tls_dest_policy *dp,
    const char *domain, const struct tls_policy_entry **entry_r)
{
	*entry_r = NULL;
	if (domain[0] == '[') {
		dp->domain[0] = '\0';
		dp->configured = ctx->cfg.level;
		return 0;
	}
	if (dns_name_normalize(domain, dp->domain, sizeof dp->domain) != 0) {
		dp->defer = 1;
		dp->defer_rpt = TLS_RPT_VALIDATION_FAILURE;
		str_format(dp->defer_reason, sizeof dp->defer_reason, "invalid domain");
		return -1;
	}
	dp->configured = tls_policy_level(ctx, dp->domain, entry_r);
	return 0;
}

/* The verify level for hp: the entry's match= names, else the host name,
 * which is validated when secure_name says so (a secure MX RRset, a fixed
 * next hop). */
static void
host_verify(struct tls_host_policy *hp, const struct tls_policy_entry *entry,
    int secure_name)
{
	hp->level = TLS_LEVEL_VERIFY;
	hp->tls_required = 1;
	hp->auth = TLS_AUTH_VERIFY;
	hp->via = "verify";
	for (size_t j = 0; entry != NULL && j < entry->nmatch; j++)
		add_name(hp, entry->match[j]);
	hp->name_validated = hp->nnames > 0 || secure_name;
	if (hp->nnames == 0)
		add_name(hp, hp->host);
}

/* The verify level for the MX hosts of dp. The DNSSEC state of the MX
 * RRset says whether the host names count as validated (RFC 8689 4.2.1);
 * a bogus or unavailable one only makes them not count (the MX lookup
 * itself succeeded). */
static void
verify_hosts(struct tls_policy_ctx *ctx, struct tls_dest_policy *dp,
    const struct dns_mx_result *mx, const struct tls_policy_entry *entry)
{
	struct dns_sec_mx smx;

	if (entry == NULL || entry->nmatch == 0) {
		dns_sec_mx_lookup(ctx->cfg.resolver, dp->domain, &smx);
		dp->mx_state = smx.state;
	} else {
		smx.state = DNS_SEC_INSECURE;	/* not needed */
	}
	for (size_t i = 0; i < dp->nhosts; i++) {
		struct tls_host_policy *hp = &dp->hosts[i];
		int secure_name = smx.state == DNS_SEC_SECURE && (mx->implicit ?
		    smx.kind == DNS_SEC_NODATA : dns_sec_mx_has(&smx, hp->host));
		host_verify(hp, entry, secure_name);
	}
}

void
tls_policy_destination(struct tls_policy_ctx *ctx, const char *domain,
    const struct dns_mx_result *mx, int64_t now, struct tls_dest_policy **dp_r)
{
	struct tls_dest_policy *dp = xcalloc(1, sizeof *dp);
	const struct tls_policy_entry *entry;

	*dp_r = dp;
	dp->mx_state = DNS_SEC_INSECURE;
	if (dest_begin(ctx, dp, domain, &entry) < 0)
		return;
	dp->nhosts = mx != NULL && mx->status == DNS_OK ? mx->nhosts : 0;
	for (size_t i = 0; i < dp->nhosts; i++) {
		str_copy(dp->hosts[i].host, mx->hosts[i].name, sizeof dp->hosts[i].host);
		dp->hosts[i].addr_state = DNS_SEC_INSECURE;
	}
	switch (dp->configured) {
	case TLS_LEVEL_DANE:
	case TLS_LEVEL_DANE_ONLY:
		dane_hosts(ctx, dp, mx, dp->configured == TLS_LEVEL_DANE_ONLY, now);
		break;
	case TLS_LEVEL_VERIFY:
		verify_hosts(ctx, dp, mx, entry);
		break;
	default:
		for (size_t i = 0; i < dp->nhosts; i++)
			host_plain(&dp->hosts[i], dp->configured);
		break;
	}
}

/* Not DANE for hp: dane-only skips it, dane makes it may. */
static void
fixed_no_dane(struct tls_host_policy *hp, int only, const char *why)
{
	if (only)
		host_skip(hp, TLS_RPT_DANE_REQUIRED, "no DANE for %s: %s", hp->host, why);
	else
		host_plain(hp, TLS_LEVEL_MAY);
}

void
tls_policy_fixed(struct tls_policy_ctx *ctx, const char *domain,
    const char *host, int64_t now, struct tls_dest_policy **dp_r)
{
	struct tls_dest_policy *dp = xcalloc(1, sizeof *dp);
	struct tls_host_policy *hp = &dp->hosts[0];
	const struct tls_policy_entry *entry;
	char name[DNS_NAME_MAX];
	int is_name;

	(void)now;
	*dp_r = dp;
	dp->fixed = 1;
	dp->mx_state = DNS_SEC_INSECURE;
	if (dest_begin(ctx, dp, domain, &entry) < 0)
		return;
	dp->nhosts = 1;
	/* An IP literal has no name: no TLSA base domain, no reference id
	 * but itself. */
	is_name = strchr(host, ':') == NULL && strspn(host, "0123456789.") != strlen(host) &&
	    dns_name_normalize(host, name, sizeof name) == 0;
	str_copy(hp->host, is_name ? name : host, sizeof hp->host);
	hp->addr_state = DNS_SEC_INSECURE;
	switch (dp->configured) {
	case TLS_LEVEL_DANE:
	case TLS_LEVEL_DANE_ONLY: {
		int only = dp->configured == TLS_LEVEL_DANE_ONLY;
		if (!is_name) {
			fixed_no_dane(hp, only, "an address literal has no TLSA records");
		} else if (dane_for_host(ctx, hp->host, hp)) {
			/* The next hop is the host, not the recipient domain:
			 * DANE-TA names are the host's alone (RFC 7672 3.2.2). */
			if (only && !hp->skip && hp->auth != TLS_AUTH_DANE)
				host_skip(hp, TLS_RPT_DANE_REQUIRED, "no DANE for %s: no "
				    "usable TLSA record", hp->host);
		} else {
			fixed_no_dane(hp, only, hp->addr_state != DNS_SEC_SECURE ?
			    "its address records are not DNSSEC-secure" :
			    "no secure TLSA records");
		}
		break;
	}
	case TLS_LEVEL_VERIFY:
		host_verify(hp, entry, 1);	/* a configured name */
		break;
	default:
		host_plain(hp, dp->configured);
		break;
	}
}

void
tls_dest_policy_plain(const char *domain, const char *const *hosts, size_t n,
    enum tls_level level, struct tls_dest_policy **dp_r)
{
	struct tls_dest_policy *dp = xcalloc(1, sizeof *dp);

	assert(level == TLS_LEVEL_NONE || level == TLS_LEVEL_MAY ||
	    level == TLS_LEVEL_ENCRYPT);
	*dp_r = dp;
	str_copy(dp->domain, domain, sizeof dp->domain);
	dp->configured = level;
	dp->mx_state = DNS_SEC_INSECURE;
	dp->nhosts = n < DNS_MAX_MX_HOSTS ? n : DNS_MAX_MX_HOSTS;
	for (size_t i = 0; i < dp->nhosts; i++) {
		str_copy(dp->hosts[i].host, hosts[i], sizeof dp->hosts[i].host);
		dp->hosts[i].addr_state = DNS_SEC_INSECURE;
		host_plain(&dp->hosts[i], level);
	}
}

void
tls_dest_policy_relax(struct tls_dest_policy *dp)
{
	dp->relaxed = 1;
	for (size_t i = 0; i < dp->nhosts; i++) {
		struct tls_host_policy *hp = &dp->hosts[i];
		if (hp->skip && hp->skip_rpt == TLS_RPT_DNSSEC_INVALID)
			continue;	/* bogus DNS: no address to trust */
		hp->skip = 0;
		hp->sts_testing = 0;
		hp->sts_mismatch = 0;
		host_plain(hp, TLS_LEVEL_MAY);
	}
}

int
tls_host_policy_authenticates(const struct tls_host_policy *hp)
{
	return !hp->skip && hp->auth != TLS_AUTH_NONE && !hp->sts_testing &&
	    hp->name_validated;
}

void
tls_host_policy_digest(const struct tls_host_policy *hp,
    uint8_t out[TLS_HOST_POLICY_DIGEST_LEN])
{
	uint32_t head[6] = { (uint32_t)hp->level, (uint32_t)hp->auth,
	    (uint32_t)hp->tls_required, (uint32_t)hp->sts_testing,
	    (uint32_t)hp->name_validated, (uint32_t)hp->nnames };
	gnutls_hash_hd_t h;

	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		abort();	/* out of memory */
	(void)gnutls_hash(h, head, sizeof head);
	/* Each name with its NUL: no two lists give the same bytes. */
	for (size_t i = 0; i < hp->nnames; i++)
		(void)gnutls_hash(h, hp->names[i], strlen(hp->names[i]) + 1);
	for (size_t i = 0; hp->tlsa != NULL && i < hp->tlsa->n; i++) {
		const struct dns_tlsa_rr *rr = &hp->tlsa->rrs[i];
		uint8_t f[3] = { rr->usage, rr->selector, rr->mtype };
		uint64_t len = rr->len;
		(void)gnutls_hash(h, f, sizeof f);
		(void)gnutls_hash(h, &len, sizeof len);
		(void)gnutls_hash(h, rr->data, rr->len);
	}
	gnutls_hash_deinit(h, out);
}

void
tls_dest_policy_free(struct tls_dest_policy **dpp)
{
	struct tls_dest_policy *dp = *dpp;

	if (dp == NULL)
		return;
	for (size_t i = 0; i < dp->nhosts; i++) {
		dns_tlsa_result_free(&dp->hosts[i].tlsa);
		free(dp->hosts[i].rpt_strings);
		free(dp->hosts[i].rpt_mx);
	}
	mta_sts_state_clear(&dp->sts);
	free(dp);
	*dpp = NULL;
}

/* ---- judging a session ---- */

const char *
tls_verdict_str(enum tls_verdict v)
{
	switch (v) {
	case TLS_VERDICT_VERIFIED: return "Verified";
	case TLS_VERDICT_TRUSTED: return "Trusted";
	case TLS_VERDICT_UNTRUSTED: return "Untrusted";
	default: return "Anonymous";
	}
}

/* Trusted or Untrusted: the chain alone against the trust anchors. */
static enum tls_verdict
chain_word(const struct tls_policy_ctx *ctx, const gnutls_datum_t *chain,
    unsigned n)
{
	char why[200];

	if (n == 0)
		return TLS_VERDICT_ANONYMOUS;
	if (ctx != NULL && ctx->trust != NULL &&
	    tls_verify_chain(ctx->trust, chain, n, NULL, 0, why, sizeof why) ==
	    TLS_CERT_OK)
		return TLS_VERDICT_TRUSTED;
	return TLS_VERDICT_UNTRUSTED;
}

/* hp's reference names as the array tls_dane and tls_verify take. */
static size_t
host_names(const struct tls_host_policy *hp, const char **names)
{
	for (size_t i = 0; i < hp->nnames; i++)
		names[i] = hp->names[i];
	return hp->nnames;
}

static void
check_dane(const struct tls_policy_ctx *ctx, const struct tls_host_policy *hp,
    const gnutls_datum_t *chain, unsigned n, struct tls_check *out)
{
	const char *names[TLS_POLICY_NAMES_MAX];
	enum tls_dane_result r;
	char why[300];

	r = tls_dane_check(ctx->dane, chain, n, hp->tlsa->rrs, hp->tlsa->n, names,
	    host_names(hp, names), why, sizeof why);
	if (r == TLS_DANE_MATCH_EE || r == TLS_DANE_MATCH_TA) {
		out->verdict = TLS_VERDICT_VERIFIED;
		str_format(out->reason, sizeof out->reason, "%s (%s)", tls_dane_result_str(r),
		    hp->tlsa->qname);
		return;
	}
	/* Under DANE the TLSA records are the only trust anchors (RFC 7672
	 * 3): a chain that would verify otherwise is still Untrusted here,
	 * as Postfix says it. */
	out->ok = 0;
	out->verdict = n == 0 ? TLS_VERDICT_ANONYMOUS : TLS_VERDICT_UNTRUSTED;
	out->rpt = r == TLS_DANE_NO_CERT ? TLS_RPT_VALIDATION_FAILURE :
	    TLS_RPT_TLSA_INVALID;
	str_format(out->reason, sizeof out->reason, "DANE authentication of %s failed: %s",
	    hp->host, why);
}

static void
check_pkix(const struct tls_policy_ctx *ctx, const struct tls_host_policy *hp,
    const gnutls_datum_t *chain, unsigned n, struct tls_check *out)
{
	const char *names[TLS_POLICY_NAMES_MAX];
	enum tls_cert c;
	char why[300];

	if (ctx->trust == NULL) {
		c = n ? TLS_CERT_UNTRUSTED : TLS_CERT_NO_CERT;
		str_copy(why, "no trust anchors", sizeof why);
	} else {
		c = tls_verify_chain(ctx->trust, chain, n, names,
		    host_names(hp, names), why, sizeof why);
	}
	switch (c) {
	case TLS_CERT_OK:
		out->verdict = TLS_VERDICT_VERIFIED;
		str_format(out->reason, sizeof out->reason, "certificate verified for %s",
		    hp->names[0]);
		return;
	case TLS_CERT_NAME_MISMATCH:
		out->verdict = TLS_VERDICT_TRUSTED;
		out->rpt = TLS_RPT_CERT_HOST_MISMATCH;
		break;
	case TLS_CERT_EXPIRED:
		out->verdict = TLS_VERDICT_UNTRUSTED;
		out->rpt = TLS_RPT_CERT_EXPIRED;
		break;
	case TLS_CERT_NO_CERT:
		out->verdict = TLS_VERDICT_ANONYMOUS;
		out->rpt = TLS_RPT_VALIDATION_FAILURE;
		break;
	default:
		out->verdict = TLS_VERDICT_UNTRUSTED;
		out->rpt = TLS_RPT_CERT_NOT_TRUSTED;
		break;
	}
	out->ok = 0;
	str_format(out->reason, sizeof out->reason, "%s: %s: %s", hp->host, tls_cert_str(c),
	    why);
}

void
tls_policy_check_chain(const struct tls_policy_ctx *ctx,
    const struct tls_host_policy *hp, const gnutls_datum_t *chain, unsigned n,
    struct tls_check *out)
{
	memset(out, 0, sizeof *out);
	out->ok = 1;
	out->rpt = TLS_RPT_SUCCESS;
	out->via = hp->via ? hp->via : "may";
	if (chain == NULL)
		n = 0;
	switch (hp->auth) {
	case TLS_AUTH_DANE:
		assert(hp->tlsa != NULL);	/* dane_for_host sets both */
		check_dane(ctx, hp, chain, n, out);
		break;
	case TLS_AUTH_STS:
	case TLS_AUTH_VERIFY:
		check_pkix(ctx, hp, chain, n, out);
		if (hp->sts_testing && out->ok && hp->sts_mismatch) {
			out->rpt = TLS_RPT_VALIDATION_FAILURE;
			str_format(out->reason, sizeof out->reason, "%s matches no mx pattern "
			    "of the MTA-STS policy", hp->host);
		}
		/* testing: the failure is reported, the mail goes (RFC 8461 5) */
		if (hp->sts_testing)
			out->ok = 1;
		break;
	default:
		out->verdict = chain_word(ctx, chain, n);
		break;
	}
}

void
tls_policy_check_session(const struct tls_policy_ctx *ctx,
    const struct tls_host_policy *hp, gnutls_session_t s, struct tls_check *out)
{
	unsigned n = 0;
	const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);
	gnutls_cipher_algorithm_t cipher = gnutls_cipher_get(s);
	size_t bits = gnutls_cipher_get_key_size(cipher) * 8;
	const char *suite = gnutls_ciphersuite_get(s);
	const char *proto = gnutls_protocol_get_name(gnutls_protocol_get_version(s));

	if (gnutls_certificate_type_get(s) != GNUTLS_CRT_X509)
		n = 0;
	tls_policy_check_chain(ctx, hp, chain, n, out);
	if (proto == NULL)
		proto = "TLS";
	/* Postfix's log words: "TLSv1.3" where GnuTLS says "TLS1.3". */
	str_format(out->desc, sizeof out->desc, "%s%s with cipher %s (%zu/%zu bits)",
	    strncmp(proto, "TLS1", 4) == 0 ? "TLSv" : "",
	    strncmp(proto, "TLS1", 4) == 0 ? proto + 3 : proto,
	    suite ? suite : gnutls_cipher_get_name(cipher), bits, bits);
}

void
tls_check_describe(const struct tls_check *c, const char *host, const char *addr,
    uint16_t port, char *out, size_t outsize)
{
	str_format(out, outsize, "%s TLS connection established to %s[%s]:%u: %s (%s)",
	    tls_verdict_str(c->verdict), host, addr ? addr : "?", port,
	    c->desc[0] ? c->desc : "TLS", c->via);
}

void
tls_policy_report(const struct tls_policy_ctx *ctx,
    const struct tls_dest_policy *dp, size_t i, const char *receiving_ip,
    const char *sending_ip, enum tls_rpt_result r, int64_t now)
{
	struct tls_rpt_policy p = { TLS_RPT_POLICY_NONE, dp->domain, NULL, NULL };
	struct tls_rpt_event e = { r, NULL, receiving_ip, sending_ip };

	if (ctx == NULL || ctx->cfg.store == NULL || dp->domain[0] == '\0')
		return;
	if (i < dp->nhosts) {
		const struct tls_host_policy *hp = &dp->hosts[i];
		p.type = hp->rpt_type;
		p.strings = hp->rpt_strings;
		p.mx_hosts = hp->rpt_mx;
		e.mx_host = hp->host;
	}
	(void)tls_report_record(ctx->cfg.store, &p, &e, now);
}

enum tls_rpt_result
tls_policy_sts_failure_rpt(enum mta_sts_failure f)
{
	switch (f) {
	case MTA_STS_FAIL_WEBPKI: return TLS_RPT_STS_WEBPKI_INVALID;
	case MTA_STS_FAIL_INVALID: return TLS_RPT_STS_POLICY_INVALID;
	default: return TLS_RPT_STS_POLICY_FETCH_ERROR;
	}
}

/* ---- description ---- */

static void
put(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct buf *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)buf_vprintf(out, fmt, ap);	/* a full buffer cuts the text */
	va_end(ap);
}

void
tls_dest_policy_describe(const struct tls_dest_policy *dp, struct buf *out)
{
	put(out, "domain %s: level %s", dp->domain, tls_level_str(dp->configured));
	if (dp->fixed)
		put(out, ", fixed next hop");
	else if (dp->configured == TLS_LEVEL_DANE || dp->configured == TLS_LEVEL_DANE_ONLY)
		put(out, ", MX DNSSEC %s", dns_sec_state_str(dp->mx_state));
	if (dp->relaxed)
		put(out, ", relaxed (TLS-Required: No)");
	put(out, "\n");
	if (dp->defer)
		put(out, "defer: %s\n", dp->defer_reason);
	if (dp->sts_looked_up) {
		const struct mta_sts_state *st = &dp->sts;
		if (st->have)
			put(out, "mta-sts: policy %s mode %s max_age %u, %s%s%s\n", st->id,
			    mta_sts_mode_str(st->policy.mode), st->policy.max_age,
			    st->from_cache ? "cached" : "fetched",
			    st->detail[0] ? ": " : "", st->detail);
		else
			put(out, "mta-sts: none: %s\n", st->detail);
		for (size_t i = 0; st->have && i < st->policy.nmx; i++)
			put(out, "  mx %s\n", st->policy.mx[i]);
	}
	for (size_t i = 0; i < dp->nhosts; i++) {
		const struct tls_host_policy *hp = &dp->hosts[i];
		char rr[300];
		put(out, "host %s: ", hp->host);
		if (hp->skip) {
			put(out, "skipped: %s\n", hp->skip_reason);
			continue;
		}
		put(out, "%s via %s%s%s%s", tls_level_str(hp->level), hp->via,
		    hp->tls_required ? ", TLS required" : "",
		    hp->auth == TLS_AUTH_DANE ? ", DANE authentication" :
		    hp->auth == TLS_AUTH_STS ? ", WebPKI authentication" :
		    hp->auth == TLS_AUTH_VERIFY ? ", PKIX authentication" : "",
		    hp->sts_testing ? " (testing: report only)" : "");
		if (hp->auth == TLS_AUTH_VERIFY && !hp->name_validated)
			put(out, ", the name is not validated (no REQUIRETLS)");
		if (dp->configured == TLS_LEVEL_DANE || dp->configured == TLS_LEVEL_DANE_ONLY)
			put(out, ", address DNSSEC %s", dns_sec_state_str(hp->addr_state));
		put(out, "\n");
		for (size_t j = 0; hp->tlsa && j < hp->tlsa->n; j++) {
			tls_dane_rr_text(&hp->tlsa->rrs[j], rr, sizeof rr);
			put(out, "  tlsa %s %s%s\n", hp->tlsa->qname, rr,
			    tls_dane_rr_usable(&hp->tlsa->rrs[j]) ? "" : " (unusable)");
		}
		if (hp->nnames > 0) {
			put(out, "  names");
			for (size_t j = 0; j < hp->nnames; j++)
				put(out, " %s", hp->names[j]);
			put(out, "\n");
		}
	}
}
