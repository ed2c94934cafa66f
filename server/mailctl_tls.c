/*
 * mailctl_tls: `mailctl tls` and `mailctl tls-report` (server/mailctl_tls.h).
 * The policy of a domain is worked out by the daemon's own code
 * (server/policy.c's resolver and TLS policy context, relay/tls_policy.c),
 * so what is shown is what a delivery would do.
 */
#include "server/mailctl_tls.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "relay/mta_sts_cache.h"
#include "relay/tls_policy.h"
#include "relay/tls_report.h"
#include "relay/tls_store.h"
#include "server/control.h"
#include "server/policy.h"

#define MAILCTL_TLS_OUT_MAX	(1u << 20)
#define MAILCTL_REPORT_MAX	(64u << 20)

/* The daemon's TLS store, read-only; NULL (with a message) when there is
 * none yet. */
static struct tls_store *
tls_state_open(const struct config *cfg, int quiet)
{
	char err[512];
	struct tls_store *st = tls_store_open(cfg->queue_dir, TLS_STORE_RDONLY, err,
	    sizeof err);

	if (st == NULL && !quiet)
		fprintf(stderr, "mailctl: no outbound TLS state in %s/tls: %s\n",
		    cfg->queue_dir, err);
	return st;
}

static void
print_mx(FILE *out, const struct dns_mx_result *mx)
{
	for (size_t i = 0; i < mx->nhosts; i++) {
		const struct dns_mx_host *h = &mx->hosts[i];
		fprintf(out, "mx %u %s:", h->pref, h->name);
		for (size_t j = 0; j < h->naddrs; j++)
			fprintf(out, "%s %s", j ? "," : "", h->addrs[j].text);
		fprintf(out, "%s\n", mx->implicit ? " (implicit MX)" : "");
	}
}

/* The cached MTA-STS policy, as stored. */
static void
print_sts_cache(FILE *out, struct tls_store *st, const char *domain)
{
	struct mta_sts_state c;
	char when[2][32];
	int rc;

	if (st == NULL)
		return;
	memset(&c, 0, sizeof c);
	rc = mta_sts_cache_get(st, domain, &c);
	if (rc == 1) {
		fprintf(out, "mta-sts cache: none\n");
		return;
	}
	if (rc != 0) {
		fprintf(out, "mta-sts cache: unreadable\n");
		return;
	}
	for (int i = 0; i < 2; i++) {
		time_t t = (time_t)(i ? c.expires : c.fetched);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when[i], sizeof when[i], "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	fprintf(out, "mta-sts cache: policy %s mode %s max_age %u fetched %s expires %s%s\n",
	    c.id, mta_sts_mode_str(c.policy.mode), c.policy.max_age, when[0], when[1],
	    c.expires <= (int64_t)time(NULL) ? " (expired)" : "");
	for (size_t i = 0; i < c.policy.nmx; i++)
		fprintf(out, "  mx %s\n", c.policy.mx[i]);
	mta_sts_state_clear(&c);
}

int
mailctl_tls(const struct config *cfg, const char *domain, FILE *out)
{
	struct tls_policy_map *map = NULL;
	struct dns_resolver *dns;
	struct tls_store *st;
	struct tls_policy_ctx *ctx;
	struct dns_mx_result *mx = NULL;
	struct tls_dest_policy *dp = NULL;
	struct buf b;
	char err[512], name[DNS_NAME_MAX];
	int rc = 0;

	if (dns_name_normalize(domain, name, sizeof name) != 0) {
		fprintf(stderr, "mailctl: %s: not a domain name\n", domain);
		return 2;
	}
	if (cfg->tls_policy_file != NULL &&
	    tls_policy_map_load(cfg->tls_policy_file, stderr, &map) != 0)
		return 2;
	if ((dns = policy_resolver(cfg, err, sizeof err)) == NULL) {
		fprintf(stderr, "mailctl: dns: %s\n", err);
		tls_policy_map_free(&map);
		return 1;
	}
	st = tls_state_open(cfg, 1);
	if ((ctx = policy_tls(cfg, map, dns, st, 1, err, sizeof err)) == NULL) {
		fprintf(stderr, "mailctl: outbound TLS: %s\n", err);
		rc = 1;
		goto out;
	}
	fprintf(out, "dns: %s\n", dns_sec_trusted(dns) ? "DNSSEC answers believed "
	    "(every dns_server is on loopback)" : "DNSSEC answers not believed "
	    "(a dns_server is not on loopback): DANE never applies");
	if (dns_mx_lookup(dns, name, &mx) != DNS_OK) {
		fprintf(out, "domain %s: level %s\nmx lookup failed: %s (%s)\n", name,
		    tls_level_str(tls_policy_level(ctx, name, NULL)),
		    dns_status_str(mx->status), mx->detail);
		print_sts_cache(out, st, name);
		rc = 1;
		goto out;
	}
	print_mx(out, mx);
	tls_policy_destination(ctx, name, mx, (int64_t)time(NULL), &dp);
	buf_init(&b, MAILCTL_TLS_OUT_MAX);
	tls_dest_policy_describe(dp, &b);
	fputs(b.data ? b.data : "", out);
	buf_free(&b);
	print_sts_cache(out, st, name);
out:
	tls_dest_policy_free(&dp);
	dns_mx_result_free(&mx);
	tls_policy_ctx_free(&ctx);
	tls_store_close(&st);
	dns_resolver_free(&dns);
	tls_policy_map_free(&map);
	return rc;
}

int
mailctl_tls_report(const struct config *cfg, const char *domain,
    const char *date, int json, FILE *out)
{
	char name[DNS_NAME_MAX];
	struct tls_report_meta meta = { cfg->hostname, cfg->tls_report_from, NULL };
	struct tls_store *st;
	int64_t day = (int64_t)time(NULL);
	struct buf b;
	int n;

	if (dns_name_normalize(domain, name, sizeof name) != 0) {
		fprintf(stderr, "mailctl: %s: not a domain name\n", domain);
		return 2;
	}
	if (date != NULL && tls_report_parse_date(date, &day) != 0) {
		fprintf(stderr, "mailctl: %s: not a date (YYYY-MM-DD)\n", date);
		return 2;
	}
	if ((st = tls_state_open(cfg, 0)) == NULL)
		return 1;
	buf_init(&b, MAILCTL_REPORT_MAX);
	n = json ? tls_report_json(st, name, day, &meta, &b) :
	    tls_report_text(st, name, day, &b);
	if (n < 0)
		fprintf(stderr, "mailctl: the TLS report of %s cannot be read\n", name);
	else if (n == 0 && !json)
		fprintf(out, "no TLS results recorded for %s that day\n", name);
	else
		fputs(b.data ? b.data : "", out);
	buf_free(&b);
	tls_store_close(&st);
	return n < 0 ? 1 : 0;
}

int
mailctl_tls_report_send(const struct config *cfg, const char *domain,
    const char *date, FILE *out)
{
	char name[DNS_NAME_MAX], req[CONTROL_REQUEST_MAX], day[16], err[512];
	char *answer = NULL;
	size_t alen = 0;
	int64_t t = (int64_t)time(NULL) - 86400;
	time_t tt;
	struct tm tm;
	FILE *mem;
	int rc;

	if (dns_name_normalize(domain, name, sizeof name) != 0) {
		fprintf(stderr, "mailctl: %s: not a domain name\n", domain);
		return 2;
	}
	if (date != NULL && tls_report_parse_date(date, &t) != 0) {
		fprintf(stderr, "mailctl: %s: not a date (YYYY-MM-DD)\n", date);
		return 2;
	}
	tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(day, sizeof day, "%Y-%m-%d", &tm);
	str_format(req, sizeof req, "tls-report send %s %s", name, day);
	if ((mem = open_memstream(&answer, &alen)) == NULL)
		return 1;
	rc = control_ask(cfg->queue_dir, req, mem, err, sizeof err);
	fclose(mem);
	if (rc < 0) {
		fprintf(stderr, "mailctl: tls-report --send: %s\n", err);
		free(answer);
		return 1;
	}
	fputs(answer ? answer : "", out);
	rc = answer != NULL && strncmp(answer, "ok:", 3) == 0 ? 0 : 1;
	free(answer);
	return rc;
}
