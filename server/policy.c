/* policy: the delivery policy made from a runtime snapshot. */
#include "server/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "relay/relay.h"

struct policy_owner {
	struct runtime *rt;
	struct delivery_route *routes;
	struct dns_resolver *dns;
	struct relay_ctx *relay;
};

static void
policy_release(void *arg)
{
	struct policy_owner *o = arg;

	relay_ctx_free(&o->relay);
	dns_resolver_free(&o->dns);
	free(o->routes);
	runtime_unref(&o->rt);
	free(o);
}

struct delivery_policy *
policy_from_runtime(struct runtime *rt)
{
	const struct config *cfg = rt->cfg;
	struct policy_owner *o = xcalloc(1, sizeof *o);
	struct delivery_policy *p = xcalloc(1, sizeof *p);
	struct dns_server_addr *servers;
	struct relay_self_addr *self;
	struct dns_options dopt;
	struct relay_settings rs;
	char err[256];

	o->rt = runtime_ref(rt);
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
	o->dns = dns_resolver_new_opts(servers, cfg->ndns_servers, &dopt, err,
	    sizeof err);
	free(servers);
	if (o->dns == NULL) {
		log_error("dns: %s", err);
		goto fail;
	}
	relay_settings_default(&rs);
	rs.helo_name = cfg->hostname;
	rs.smtp_port = cfg->smtp_port;
	rs.tls_outbound = cfg->tls_outbound == TLS_OUT_NONE ? RELAY_TLS_NONE :
	    cfg->tls_outbound == TLS_OUT_ENCRYPT ? RELAY_TLS_ENCRYPT : RELAY_TLS_MAY;
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
	o->routes = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *o->routes);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		o->routes[i].domain = cfg->routes[i].domain;
		o->routes[i].host = cfg->routes[i].dest.host;
		o->routes[i].port = cfg->routes[i].dest.port;
	}
	p->hostname = cfg->hostname;
	p->mail_dir = cfg->mail_dir;
	p->local_domains = (const char *const *)cfg->local_domains;
	p->nlocal_domains = cfg->nlocal_domains;
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
