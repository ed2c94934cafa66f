/*
 * selftest: the report, the run over the listeners, and the DNS checks of
 * the local domains (selftest.h).
 */
#include "server/selftest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/dns.h"
#include "lib/util.h"

void
selftest_add(struct selftest_report *rep, const char *check, const char *target,
    enum selftest_verdict v, const char *fix, const char *fmt, ...)
{
	struct selftest_result *r;
	va_list ap;

	if (rep->n == rep->cap) {
		rep->cap = rep->cap ? rep->cap * 2 : 16;
		rep->r = xrealloc(rep->r, rep->cap * sizeof *rep->r);
	}
	r = &rep->r[rep->n++];
	memset(r, 0, sizeof *r);
	str_copy(r->check, check, sizeof r->check);
	str_copy(r->target, target, sizeof r->target);
	r->verdict = v;
	if (fix != NULL)
		str_copy(r->fix, fix, sizeof r->fix);
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof r->detail, fmt, ap);
	va_end(ap);
}

size_t
selftest_failures(const struct selftest_report *rep)
{
	size_t n = 0;

	for (size_t i = 0; i < rep->n; i++)
		n += rep->r[i].verdict == SELFTEST_FAIL;
	return n;
}

void
selftest_report_free(struct selftest_report *rep)
{
	free(rep->r);
	memset(rep, 0, sizeof *rep);
}

/* The TXT records of name that start with prefix (any case). Returns
 * how many, -1 when the lookup failed temporarily; the first in first. */
static int
selftest_txt(struct dns_resolver *r, const char *name, const char *prefix, char *first,
    size_t firstsize)
{
	struct dns_records *res;
	int n = 0, st = dns_txt_lookup(r, name, &res);

	first[0] = '\0';
	if (st == DNS_REC_TEMP || st == DNS_REC_BAD_NAME) {
		str_copy(first, res->detail, firstsize);
		dns_records_free(&res);
		return -1;
	}
	for (size_t i = 0; st == DNS_REC_DATA && i < res->n; i++) {
		if (res->rr[i].textlen < strlen(prefix) ||
		    strncasecmp(res->rr[i].text, prefix, strlen(prefix)) != 0)
			continue;
		if (n++ == 0)
			str_copy(first, res->rr[i].text, firstsize);
	}
	dns_records_free(&res);
	return n;
}

static void
selftest_domain(const struct config *cfg, struct dns_resolver *r, const char *domain,
    struct selftest_report *rep)
{
	struct dns_records *res;
	char name[300], txt[256], fix[256];
	int st, n, ours = 0;

	st = dns_records_lookup(r, domain, DNS_RTYPE_MX, &res);
	for (size_t i = 0; st == DNS_REC_DATA && i < res->n; i++)
		ours |= res->rr[i].name != NULL && strcasecmp(res->rr[i].name, cfg->hostname) == 0;
	snprintf(fix, sizeof fix, "publish \"%.100s. MX 10 %.100s.\"", domain, cfg->hostname);
	if (st == DNS_REC_TEMP)
		selftest_add(rep, "dns_mx", domain, SELFTEST_FAIL, "check dns_server",
		    "the MX lookup failed: %s", res->detail);
	else if (!ours)
		selftest_add(rep, "dns_mx", domain, SELFTEST_FAIL, fix,
		    st == DNS_REC_DATA ? "no MX names %s" : "no MX record", cfg->hostname);
	else
		selftest_add(rep, "dns_mx", domain, SELFTEST_PASS, NULL, "an MX names %s",
		    cfg->hostname);

	n = selftest_txt(r, domain, "v=spf1", txt, sizeof txt);
	snprintf(fix, sizeof fix, "publish one \"%.150s. TXT \\\"v=spf1 mx -all\\\"\"", domain);
	if (n < 0)
		selftest_add(rep, "dns_spf", domain, SELFTEST_FAIL, "check dns_server",
		    "the TXT lookup failed: %s", txt);
	else if (n != 1)
		selftest_add(rep, "dns_spf", domain, SELFTEST_FAIL, fix,
		    n == 0 ? "no SPF record" : "%d SPF records (RFC 7208 4.5: a permerror)", n);
	else if (strstr(txt, "+all") != NULL)
		selftest_add(rep, "dns_spf", domain, SELFTEST_FAIL, fix,
		    "the SPF record allows every host: %s", txt);
	else
		selftest_add(rep, "dns_spf", domain, SELFTEST_PASS, NULL, "%s", txt);

	snprintf(name, sizeof name, "_dmarc.%s", domain);
	n = selftest_txt(r, name, "v=DMARC1", txt, sizeof txt);
	snprintf(fix, sizeof fix, "publish \"_dmarc.%.150s. TXT \\\"v=DMARC1; p=quarantine\\\"\"",
	    domain);
	if (n < 0)
		selftest_add(rep, "dns_dmarc", domain, SELFTEST_FAIL, "check dns_server",
		    "the TXT lookup failed: %s", txt);
	else if (n != 1)
		selftest_add(rep, "dns_dmarc", domain, SELFTEST_FAIL, fix,
		    n == 0 ? "no DMARC record" : "%d DMARC records", n);
	else
		selftest_add(rep, "dns_dmarc", domain, SELFTEST_PASS, NULL, "%s", txt);
	selftest_mta_sts(cfg, r, domain, res, rep);
	dns_records_free(&res);
}

/* Networks that trust the whole Internet: a stranger's address (from the
 * documentation ranges) in relay_networks or auth_plaintext_networks. */
static void
selftest_networks(const struct config *cfg, struct selftest_report *rep)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	int relay, plain;

	inet_pton(AF_INET, "192.0.2.1", &in.sin_addr);
	inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
	relay = config_client_may_relay(cfg, (struct sockaddr *)&in) ||
	    config_client_may_relay(cfg, (struct sockaddr *)&in6);
	plain = config_client_may_auth_plaintext(cfg, (struct sockaddr *)&in) ||
	    config_client_may_auth_plaintext(cfg, (struct sockaddr *)&in6);
	if (relay)
		selftest_add(rep, "open_relay", "relay_networks", SELFTEST_FAIL,
		    "list only your own networks in relay_networks",
		    "relay_networks lets any address relay (192.0.2.1 or 2001:db8::1 may)");
	if (plain)
		selftest_add(rep, "auth_plaintext", "auth_plaintext_networks", SELFTEST_FAIL,
		    "list only networks you trust not to be sniffed in auth_plaintext_networks",
		    "any address may log in without TLS (192.0.2.1 or 2001:db8::1 may)");
}

void
selftest_run(const struct config *cfg, struct selftest_report *rep)
{
	struct dns_server_addr servers[16];
	struct dns_resolver *r;
	struct dns_options o;
	char err[256];
	size_t n = 0;

	selftest_networks(cfg, rep);
	for (size_t i = 0; i < cfg->nlistens; i++)
		selftest_listener(cfg, &cfg->listens[i], rep);

	for (size_t i = 0; i < cfg->ndns_servers && n < sizeof servers / sizeof servers[0]; i++) {
		str_copy(servers[n].addr, cfg->dns_servers[i].host, sizeof servers[n].addr);
		servers[n++].port = cfg->dns_servers[i].port;
	}
	dns_options_default(&o);
	o.try_timeout_ms = SELFTEST_TIMEOUT_MS / 2;
	o.tries = 2;
	o.total_timeout_ms = SELFTEST_TIMEOUT_MS;
	if ((r = dns_resolver_new_opts(servers, n, &o, err, sizeof err)) == NULL) {
		selftest_add(rep, "dns", "dns_server", SELFTEST_FAIL, "check dns_server",
		    "%s", err);
		return;
	}
	for (size_t i = 0; i < cfg->nlocal_domains; i++)
		if (strcasecmp(cfg->local_domains[i], "localhost") != 0)
			selftest_domain(cfg, r, cfg->local_domains[i], rep);
	selftest_dkim(cfg, r, rep);
	selftest_tlsa(cfg, r, rep);
	dns_resolver_free(&r);
}
