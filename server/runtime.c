/* runtime: the refcounted snapshot of config, users and TLS credentials. */
#include "server/runtime.h"

#include <errno.h>
#include <ifaddrs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "relay/tls_verify.h"

static pthread_mutex_t runtime_lock = PTHREAD_MUTEX_INITIALIZER;
static struct runtime *runtime_cur;	/* guarded by runtime_lock */

static int
runtime_same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Does prev hold credentials loaded from the TLS settings of cfg? */
static int
runtime_same_tls(const struct runtime *prev, const struct config *cfg)
{
	return prev != NULL && prev->tls != NULL &&
	    runtime_same_str(prev->cfg->tls_cert_file, cfg->tls_cert_file) &&
	    runtime_same_str(prev->cfg->tls_key_file, cfg->tls_key_file) &&
	    runtime_same_str(prev->cfg->tls_priority, cfg->tls_priority);
}

/* A resolver of the configured servers: dns_timeout per query and
 * dns_attempts rounds, as for delivery; a whole lookup bounded by
 * total_ms, tries included (0: the default bound). */
static struct dns_resolver *
runtime_resolver(const struct config *cfg, unsigned total_ms, char *err,
    size_t errsize)
{
	struct dns_server_addr servers[16];
	struct dns_options o;
	size_t n = 0;

	for (size_t i = 0; i < cfg->ndns_servers && n < sizeof servers / sizeof servers[0]; i++) {
		str_copy(servers[n].addr, cfg->dns_servers[i].host, sizeof servers[n].addr);
		servers[n++].port = cfg->dns_servers[i].port;
	}
	dns_options_default(&o);
	o.try_timeout_ms = cfg->dns_timeout * 1000;
	o.tries = cfg->dns_attempts;
	if (total_ms > 0) {
		o.total_timeout_ms = total_ms;
		if (o.try_timeout_ms > total_ms)
			o.try_timeout_ms = total_ms;
	}
	return dns_resolver_new_opts(servers, n, &o, err, errsize);
}

/* Mail authentication: its resolver (bounded as delivery's lookups) and
 * the dkim_sign keys, each loaded and checked here, so that -t and
 * SIGHUP report a bad key. Returns 0 or -1 (printed to errs). */
/* The milters' specs: each milter's own options, else the milter_* keys. */
static int
runtime_milters(struct runtime *rt, const char *path, FILE *errs)
{
	const struct config *cfg = rt->cfg;
	char err[256];

	if (cfg->nmilters == 0)
		return 0;
	rt->milters = xcalloc(cfg->nmilters, sizeof *rt->milters);
	for (size_t i = 0; i < cfg->nmilters; i++) {
		const struct config_milter *c = &cfg->milters[i];
		struct milter_spec *m = &rt->milters[i];

		if (milter_spec_init(m, c->endpoint, err, sizeof err) != 0) {
			if (errs)
				fprintf(errs, "%s:0: milters: %s\n", path, err);
			return -1;
		}
		m->default_action = (enum milter_default)(c->default_action >= 0 ?
		    c->default_action : cfg->milter_default_action);
		m->connect_timeout_ms = 1000 * (c->connect_timeout ? c->connect_timeout :
		    cfg->milter_connect_timeout);
		m->command_timeout_ms = 1000 * (c->command_timeout ? c->command_timeout :
		    cfg->milter_command_timeout);
		m->eom_timeout_ms = 1000 * (c->eom_timeout ? c->eom_timeout :
		    cfg->milter_eom_timeout);
	}
	rt->nmilters = cfg->nmilters;
	return 0;
}

/* prev signs with the same dkim_sign lines, in the same order. */
static int
runtime_same_dkim(const struct runtime *prev, const struct config *cfg)
{
	if (prev == NULL || prev->dkim_keys == NULL ||
	    prev->cfg->ndkim_sign != cfg->ndkim_sign)
		return 0;
	for (size_t i = 0; i < cfg->ndkim_sign; i++) {
		const struct config_dkim_sign *a = &prev->cfg->dkim_sign[i];
		const struct config_dkim_sign *b = &cfg->dkim_sign[i];

		if (strcmp(a->domain, b->domain) != 0 ||
		    strcmp(a->selector, b->selector) != 0 ||
		    strcmp(a->key_file, b->key_file) != 0)
			return 0;
	}
	return 1;
}

static int
runtime_mailauth(struct runtime *rt, const char *path, FILE *errs,
    const struct runtime *prev)
{
	const struct config *cfg = rt->cfg;
	char err[512];

	if (cfg->auth_checks) {
		rt->auth_resolver = runtime_resolver(cfg, 0, err, sizeof err);
		if (rt->auth_resolver == NULL) {
			if (errs)
				fprintf(errs, "%s:0: dns: %s\n", path, err);
			return -1;
		}
		rt->auth_dns = auth_dns_resolver_new(rt->auth_resolver);
	}
	if (cfg->ndkim_sign == 0)
		return 0;
	rt->dkim_keys = dkim_keyring_new();
	for (size_t i = 0; i < cfg->ndkim_sign; i++) {
		const struct config_dkim_sign *d = &cfg->dkim_sign[i];

		if (dkim_keyring_add(rt->dkim_keys, d->domain, d->selector, d->key_file,
		    err, sizeof err) != 0) {
			/* After the drop of privileges a key only root may
			 * read cannot be read again: the keys of the same
			 * lines, read at start, stay. */
			if (access(d->key_file, R_OK) != 0 &&
			    (errno == EACCES || errno == EPERM) &&
			    runtime_same_dkim(prev, cfg)) {
				log_warn("reload: dkim_sign %s %s: %s; keeping the DKIM keys "
				    "loaded before (read at start, before dropping "
				    "privileges)", d->domain, d->selector, err);
				dkim_keyring_free(&rt->dkim_keys);
				rt->dkim_keys = dkim_keyring_ref(prev->dkim_keys);
				return 0;
			}
			if (errs)
				fprintf(errs, "%s:0: dkim_sign %s %s: %s\n", path, d->domain,
				    d->selector, err);
			return -1;
		}
	}
	return 0;
}

/* Trust anchors that cannot be read now would leave outbound TLS with
 * none: a config error. */
static int
runtime_check_ca(const char *path, const char *key, const char *file, FILE *errs)
{
	struct tls_trust *t;
	char err[512];

	if (file == NULL)
		return 0;
	if ((t = tls_trust_new(file, err, sizeof err)) == NULL) {
		if (errs)
			fprintf(errs, "%s:0: %s: %s\n", path, key, err);
		return -1;
	}
	tls_trust_free(&t);
	return 0;
}

static void
runtime_own_add(struct runtime *rt, size_t *cap, const struct ip_addr *a)
{
	if (ip_addr_in(a, rt->own_addrs, rt->nown_addrs))
		return;
	if (rt->nown_addrs == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		rt->own_addrs = xrealloc(rt->own_addrs, *cap * sizeof *rt->own_addrs);
	}
	rt->own_addrs[rt->nown_addrs++] = *a;
}

/* The addresses this server answers on (runtime.h, own_addrs). A host
 * whose interfaces cannot be listed keeps the explicit listen addresses
 * (a warning): a literal of another of its addresses is then remote, and
 * delivery's loop check still keeps it from being sent to ourselves. */
static void
runtime_own_addrs(struct runtime *rt)
{
	static const uint8_t any[16];
	struct ifaddrs *ifs = NULL;
	int wild4 = 0, wild6 = 0;
	size_t cap = 0;
	struct ip_addr a;

	for (size_t i = 0; i < rt->cfg->nlistens; i++) {
		if (ip_addr_from_sockaddr((const struct sockaddr *)&rt->cfg->listens[i].sa, &a) != 0)
			continue;
		if (memcmp(a.addr, any, sizeof any) != 0)
			runtime_own_add(rt, &cap, &a);
		else if (a.family == AF_INET)
			wild4 = 1;
		else
			wild6 = 1;
	}
	if (!wild4 && !wild6)
		return;
	if (getifaddrs(&ifs) != 0) {
		log_warn("getifaddrs: %s: address literals of this host are local "
		    "only for the listen addresses", strerror(errno));
		return;
	}
	for (const struct ifaddrs *ifa = ifs; ifa != NULL; ifa = ifa->ifa_next)
		if (ifa->ifa_addr != NULL && ip_addr_from_sockaddr(ifa->ifa_addr, &a) == 0 &&
		    (a.family == AF_INET ? wild4 : wild6))
			runtime_own_add(rt, &cap, &a);
	freeifaddrs(ifs);
}

struct runtime *
runtime_load(const char *path, FILE *errs, const struct runtime *prev)
{
	struct runtime *rt;
	char err[512];
	int no_access;

	rt = xcalloc(1, sizeof *rt);
	rt->refs = 1;
	if ((rt->cfg = config_load(path, errs)) == NULL)
		goto fail;
	runtime_own_addrs(rt);
	rt->udb = userdb_load(rt->cfg->users_file, rt->cfg->aliases_file, errs);
	if (rt->udb == NULL)
		goto fail;
	if (rt->cfg->tls_cert_file != NULL) {
		rt->tls = tls_creds_load(rt->cfg->tls_cert_file, rt->cfg->tls_key_file,
		    rt->cfg->tls_priority, &no_access, err, sizeof err);
		if (rt->tls == NULL && no_access && runtime_same_tls(prev, rt->cfg)) {
			log_warn("reload: %s; keeping the TLS certificate and key loaded "
			    "before (read at start, before dropping privileges)", err);
			rt->tls = tls_creds_ref(prev->tls);
		}
		if (rt->tls == NULL) {
			if (errs)
				fprintf(errs, "%s:0: %s\n", path, err);
			goto fail;
		}
	}
	if (rt->cfg->tls_policy_file != NULL &&
	    tls_policy_map_load(rt->cfg->tls_policy_file, errs, &rt->tls_map) != 0)
		goto fail;
	if (runtime_check_ca(path, "tls_ca_file", rt->cfg->tls_ca_file, errs) != 0 ||
	    runtime_check_ca(path, "mta_sts_ca_file", rt->cfg->mta_sts_ca_file, errs) != 0)
		goto fail;
	if (rt->cfg->client_dns_timeout > 0 &&
	    (rt->dns = runtime_resolver(rt->cfg, rt->cfg->client_dns_timeout * 1000,
	    err, sizeof err)) == NULL) {
		if (errs)
			fprintf(errs, "%s:0: dns: %s\n", path, err);
		goto fail;
	}
	if (rt->cfg->auth_dovecot != NULL && (rt->dovecot = auth_dovecot_new(
	    rt->cfg->auth_dovecot, rt->cfg->auth_service_timeout * 1000, err,
	    sizeof err)) == NULL) {
		if (errs)
			fprintf(errs, "%s:0: auth_service: %s\n", path, err);
		goto fail;
	}
	if (rt->cfg->npolicy_services > 0 &&
	    (rt->policy = smtp_policy_services_new(rt->cfg, err, sizeof err)) == NULL) {
		if (errs)
			fprintf(errs, "%s:0: policy_services: %s\n", path, err);
		goto fail;
	}
	if (runtime_milters(rt, path, errs) != 0)
		goto fail;
	if (runtime_mailauth(rt, path, errs, prev) != 0)
		goto fail;
	if (rt->cfg->ndnsbl > 0) {
		struct dnsbl_options o;

		if ((rt->dnsbl_dns = runtime_resolver(rt->cfg, rt->cfg->dns_timeout *
		    rt->cfg->dns_attempts * 1000, err, sizeof err)) == NULL) {
			if (errs)
				fprintf(errs, "%s:0: dnsbl: %s\n", path, err);
			goto fail;
		}
		dnsbl_options_default(&o);
		o.threshold = rt->cfg->dnsbl_threshold;
		rt->dnsbl = dnsbl_new(rt->cfg->dnsbl, rt->cfg->ndnsbl, &o);
	}
	return rt;
fail:
	runtime_unref(&rt);
	return NULL;
}

struct runtime *
runtime_ref(struct runtime *rt)
{
	__atomic_add_fetch(&rt->refs, 1, __ATOMIC_RELAXED);
	return rt;
}

void
runtime_unref(struct runtime **rtp)
{
	struct runtime *rt = *rtp;

	*rtp = NULL;
	if (rt == NULL || __atomic_sub_fetch(&rt->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (rt->cfg)
		config_unref(&rt->cfg);
	if (rt->udb)
		userdb_free(&rt->udb);
	if (rt->tls)
		tls_creds_unref(&rt->tls);
	dns_resolver_free(&rt->dns);
	tls_policy_map_free(&rt->tls_map);
	auth_dovecot_free(&rt->dovecot);
	smtp_policy_services_free(&rt->policy);
	free(rt->milters);
	auth_dns_free(&rt->auth_dns);
	dns_resolver_free(&rt->auth_resolver);
	dkim_keyring_free(&rt->dkim_keys);
	dnsbl_free(&rt->dnsbl);
	dns_resolver_free(&rt->dnsbl_dns);
	free(rt->own_addrs);
	free(rt);
}

struct runtime *
runtime_current(void)
{
	struct runtime *rt;

	pthread_mutex_lock(&runtime_lock);
	rt = runtime_cur ? runtime_ref(runtime_cur) : NULL;
	pthread_mutex_unlock(&runtime_lock);
	return rt;
}

void
runtime_swap(struct runtime *rt)
{
	struct runtime *old;

	pthread_mutex_lock(&runtime_lock);
	old = runtime_cur;
	runtime_cur = rt;
	pthread_mutex_unlock(&runtime_lock);
	runtime_unref(&old);
}
