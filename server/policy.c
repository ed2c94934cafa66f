/* policy: the delivery policy made from a runtime snapshot. */
#include "server/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "relay/lmtp.h"
#include "relay/relay.h"
#include "relay/tls_policy.h"

_Static_assert((int)TLS_OUT_NONE == (int)TLS_LEVEL_NONE &&
    (int)TLS_OUT_MAY == (int)TLS_LEVEL_MAY &&
    (int)TLS_OUT_ENCRYPT == (int)TLS_LEVEL_ENCRYPT &&
    (int)TLS_OUT_VERIFY == (int)TLS_LEVEL_VERIFY &&
    (int)TLS_OUT_DANE == (int)TLS_LEVEL_DANE &&
    (int)TLS_OUT_DANE_ONLY == (int)TLS_LEVEL_DANE_ONLY,
    "config's tls_outbound follows enum tls_level");

struct policy_owner {
	struct runtime *rt;
	struct delivery_route *routes;
	struct dns_resolver *dns;
	struct tls_policy_ctx *tlsp;
	struct relay_ctx *relay;
	struct lmtp_ctx *lmtp;
	struct delivery_route local_lmtp;
};

static void
policy_release(void *arg)
{
	struct policy_owner *o = arg;

	relay_ctx_free(&o->relay);
	lmtp_ctx_free(&o->lmtp);
	tls_policy_ctx_free(&o->tlsp);
	dns_resolver_free(&o->dns);
	free(o->routes);
	runtime_unref(&o->rt);
	free(o);
}

/* DANE needs answers we may believe: say so when the level asks for it
 * and the resolver is not on loopback (DESIGN.md "Outbound TLS"). */
static void
policy_warn_dnssec(const struct config *cfg, const struct tls_policy_map *map,
    const struct dns_resolver *dns)
{
	size_t n = tls_policy_map_count_level(map, TLS_LEVEL_DANE) +
	    tls_policy_map_count_level(map, TLS_LEVEL_DANE_ONLY);
	int dflt = cfg->tls_outbound == TLS_OUT_DANE ||
	    cfg->tls_outbound == TLS_OUT_DANE_ONLY;

	if ((dflt || n > 0) && !dns_sec_trusted(dns))
		log_warn("outbound TLS: %s%s%s needs DNSSEC, but not every dns_server "
		    "is on loopback: their AD bit is not believed, so DANE never "
		    "applies (run a validating resolver on this host)",
		    dflt ? "tls_outbound = " : "", dflt ?
		    tls_level_str((enum tls_level)cfg->tls_outbound) : "",
		    !dflt ? "the dane entries of tls_policy" : "");
}

struct dns_resolver *
policy_resolver(const struct config *cfg, char *err, size_t errsize)
{
	struct dns_server_addr *servers;
	struct dns_options dopt;
	struct dns_resolver *r;

	servers = xcalloc(cfg->ndns_servers ? cfg->ndns_servers : 1, sizeof *servers);
	for (size_t i = 0; i < cfg->ndns_servers; i++) {
		str_copy(servers[i].addr, cfg->dns_servers[i].host, sizeof servers[i].addr);
		servers[i].port = cfg->dns_servers[i].port;
	}
	dns_options_default(&dopt);
	dopt.try_timeout_ms = cfg->dns_timeout * 1000;
	dopt.tries = cfg->dns_attempts;
	/* One lookup asks for MX and then addresses of several hosts: room
	 * for a few full rounds, never less than the default bound. */
	if ((uint64_t)dopt.try_timeout_ms * dopt.tries * 4 > dopt.total_timeout_ms)
		dopt.total_timeout_ms = dopt.try_timeout_ms * dopt.tries * 4;
	if (dopt.total_timeout_ms > 600000)
		dopt.total_timeout_ms = 600000;
	r = dns_resolver_new_opts(servers, cfg->ndns_servers, &dopt, err, errsize);
	free(servers);
	return r;
}

struct tls_policy_ctx *
policy_tls(const struct config *cfg, const struct tls_policy_map *map,
    struct dns_resolver *dns, struct tls_store *store, int sts_no_fetch,
    char *err, size_t errsize)
{
	struct tls_policy_config tc;

	memset(&tc, 0, sizeof tc);
	tc.level = (enum tls_level)cfg->tls_outbound;
	tc.map = map;
	tc.ca_file = cfg->tls_ca_file;
	tc.smtp_port = cfg->smtp_port;
	tc.resolver = dns;
	tc.store = store;
	tc.sts_fetch.ca_file = cfg->mta_sts_ca_file;
	tc.sts_fetch.port = cfg->mta_sts_port;
	tc.sts_fetch.timeout_ms = cfg->connect_timeout * 1000;
	tc.no_mta_sts = !cfg->mta_sts;
	tc.sts_no_fetch = sts_no_fetch;
	policy_warn_dnssec(cfg, map, dns);
	return tls_policy_ctx_new(&tc, err, errsize);
}

/* An LMTP target of the config as a delivery route (strings borrowed
 * from the config, which the policy holds). */
static void
policy_lmtp_route(struct delivery_route *r, const struct lmtp_target *t)
{
	if (!t->on)
		return;
	r->lmtp = 1;
	r->lmtp_unix = t->unix_path[0] ? t->unix_path : NULL;
	r->host = t->tcp.host;
	r->port = t->tcp.port;
}

struct delivery_policy *
policy_from_runtime(struct runtime *rt, struct tls_store *tls)
{
	const struct config *cfg = rt->cfg;
	struct policy_owner *o = xcalloc(1, sizeof *o);
	struct delivery_policy *p = xcalloc(1, sizeof *p);
	struct relay_self_addr *self;
	struct relay_settings rs;
	char err[256];

	o->rt = runtime_ref(rt);
	if ((o->dns = policy_resolver(cfg, err, sizeof err)) == NULL) {
		log_error("dns: %s", err);
		goto fail;
	}
	if ((o->tlsp = policy_tls(cfg, rt->tls_map, o->dns, tls, 0, err,
	    sizeof err)) == NULL) {
		log_error("outbound TLS: %s", err);
		goto fail;
	}
	relay_settings_default(&rs);
	rs.helo_name = cfg->hostname;
	rs.smtp_port = cfg->smtp_port;
	rs.tls_policy = o->tlsp;
	rs.connect_timeout_ms = cfg->connect_timeout * 1000;
	rs.greeting_timeout_ms = cfg->relay_command_timeout * 1000;
	rs.command_timeout_ms = cfg->relay_command_timeout * 1000;
	rs.data_init_timeout_ms = cfg->relay_command_timeout * 1000;
	rs.data_block_timeout_ms = cfg->relay_command_timeout * 1000;
	rs.data_final_timeout_ms = cfg->relay_data_timeout * 1000;
	rs.max_per_destination = delivery_dest_limit(
	    (unsigned)cfg->delivery_threads, cfg->max_per_destination);
	rs.attempt_timeout_ms = cfg->relay_attempt_timeout * 1000;
	/* An MX host at one of our listening addresses is this server. */
	self = xcalloc(cfg->nlistens ? cfg->nlistens : 1, sizeof *self);
	for (size_t i = 0; i < cfg->nlistens; i++) {
		self[i].sa = cfg->listens[i].sa;
		self[i].salen = cfg->listens[i].salen;
	}
	rs.self = self;
	rs.nself = cfg->nlistens;
	o->relay = relay_ctx_new(&rs, o->dns, err, sizeof err);
	free(self);
	if (o->relay == NULL) {
		log_error("relay: %s", err);
		goto fail;
	}
	/* LMTP over TCP: STARTTLS when offered, unless tls_outbound = none
	 * (relay/lmtp.h). */
	rs.tls_outbound = cfg->tls_outbound == TLS_OUT_NONE ? RELAY_TLS_NONE :
	    RELAY_TLS_MAY;
	rs.self = NULL;		/* freed above; LMTP has no MX to check */
	rs.nself = 0;
	if ((o->lmtp = lmtp_ctx_new(&rs, err, sizeof err)) == NULL) {
		log_error("lmtp: %s", err);
		goto fail;
	}
	o->routes = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *o->routes);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		o->routes[i].domain = cfg->routes[i].domain;
		o->routes[i].host = cfg->routes[i].dest.host;
		o->routes[i].port = cfg->routes[i].dest.port;
		policy_lmtp_route(&o->routes[i], &cfg->routes[i].lmtp);
	}
	if (cfg->local_transport.on) {
		policy_lmtp_route(&o->local_lmtp, &cfg->local_transport);
		p->local_lmtp = &o->local_lmtp;
	}
	p->lmtp = o->lmtp;
	p->hostname = cfg->hostname;
	p->mail_dir = cfg->mail_dir;
	p->local_domains = (const char *const *)cfg->local_domains;
	p->nlocal_domains = cfg->nlocal_domains;
	p->own_addrs = rt->own_addrs;
	p->nown_addrs = rt->nown_addrs;
	p->literal_domain = config_literal_domain(cfg);
	p->udb = rt->udb;
	p->retry_min = cfg->retry_min;
	p->retry_max = cfg->retry_max;
	p->queue_lifetime = cfg->queue_lifetime;
	p->delay_warning = cfg->delay_warning;
	p->routes = o->routes;
	p->nroutes = cfg->nroutes;
	if (cfg->has_relayhost) {
		p->relayhost = cfg->relayhost.host;
		p->relayhost_port = cfg->relayhost.port;
	}
	p->relay = o->relay;
	p->owner = o;
	p->release = policy_release;
	return p;
fail:
	policy_release(o);
	free(p);
	return NULL;
}
