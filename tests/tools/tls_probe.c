/*
 * tls_probe: drives the outbound TLS machinery (dns/'s DNSSEC views,
 * relay/tls_policy, relay/mta_sts*) from the command line with a clock of
 * its own (--now), so that integration tests can check what the daemon
 * cannot show at will: the DNSSEC lab's answers (unbound + nsd), policy
 * decisions, and the MTA-STS cache across expiry against loopback HTTPS
 * policy servers. Delivery itself is tested through the daemon.
 * Output is one "key=value ..." line per fact, for tests to parse.
 *
 *   tls_probe tlsa DNS HOST [PORT]      TLSA lookup (PORT default 25)
 *   tls_probe host DNS HOST             address view (secure? alias?)
 *   tls_probe mx DNS DOMAIN             MX view
 *   tls_probe txt DNS NAME              TXT records
 *   tls_probe policy DNS DOMAIN [OPT]   tls_policy_destination, described
 *   tls_probe sts DNS DOMAIN [OPT]      mta_sts_cache_lookup
 *
 * Options: --level LEVEL (default dane), --policy-file FILE,
 * --ca-file FILE (verify and MTA-STS trust anchors), --sts-ca-file FILE
 * (the policy host's), --sts-port PORT, --smtp-port PORT (also the TLSA
 * port), --queue-dir DIR (the MTA-STS cache), --now UNIXTIME.
 *
 * DNS is ADDR:PORT of the (validating) resolver. Exit status 0 when the
 * command ran (whatever it found), 2 for bad usage, 1 for a failure to
 * run at all.
 */
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns/dns.h"
#include "lib/util.h"
#include "relay/mta_sts_cache.h"
#include "relay/mta_sts_fetch.h"
#include "relay/tls_policy.h"
#include "relay/tls_policy_map.h"
#include "relay/tls_store.h"

struct opts {
	const char *level, *policy_file, *ca_file, *sts_ca_file, *queue_dir;
	uint16_t sts_port, smtp_port;
	int64_t now;
};

/* The world a policy command runs in. */
struct world {
	struct opts o;
	struct dns_server_addr sv;
	struct dns_resolver *resolver;	/* borrowed from main */
	struct tls_store *store;
	struct tls_policy_map *map;
	struct tls_policy_ctx *ctx;
};

static const char *
kind_str(enum dns_sec_kind k)
{
	switch (k) {
	case DNS_SEC_DATA: return "data";
	case DNS_SEC_NODATA: return "nodata";
	case DNS_SEC_NXDOMAIN: return "nxdomain";
	default: return "fail";
	}
}

static int
parse_server(const char *s, struct dns_server_addr *sv)
{
	const char *colon = strrchr(s, ':');
	size_t alen;

	memset(sv, 0, sizeof *sv);
	if (colon == NULL)
		return -1;
	alen = (size_t)(colon - s);
	if (alen == 0 || alen >= sizeof sv->addr)
		return -1;
	memcpy(sv->addr, s, alen);
	sv->addr[alen] = '\0';
	sv->port = (uint16_t)atoi(colon + 1);
	return sv->port ? 0 : -1;
}

static void
print_hex(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

static int
cmd_tlsa(struct dns_resolver *s, int argc, char **argv)
{
	struct dns_tlsa_result *r;

	if (argc < 1)
		return 2;
	dns_tlsa_lookup(s, argv[0], argc > 1 ? (uint16_t)atoi(argv[1]) : 25, &r);
	printf("tlsa kind=%s state=%s qname=%s n=%zu detail=%s\n", kind_str(r->kind),
	    dns_sec_state_str(r->state), r->qname, r->n, r->detail);
	for (size_t i = 0; i < r->n; i++) {
		printf("rr %u %u %u ", r->rrs[i].usage, r->rrs[i].selector,
		    r->rrs[i].mtype);
		print_hex(r->rrs[i].data, r->rrs[i].len);
		printf("\n");
	}
	dns_tlsa_result_free(&r);
	return 0;
}

static int
cmd_host(struct dns_resolver *s, int argc, char **argv)
{
	struct dns_sec_host h;

	if (argc < 1)
		return 2;
	dns_sec_host_lookup(s, argv[0], &h);
	printf("host state=%s alias=%d alias_state=%s expanded=%s detail=%s\n",
	    dns_sec_state_str(h.state), h.alias, dns_sec_state_str(h.alias_state),
	    h.expanded, h.detail);
	return 0;
}

static int
cmd_mx(struct dns_resolver *s, int argc, char **argv)
{
	struct dns_sec_mx mx;

	if (argc < 1)
		return 2;
	dns_sec_mx_lookup(s, argv[0], &mx);
	printf("mx kind=%s state=%s n=%zu detail=%s\n", kind_str(mx.kind),
	    dns_sec_state_str(mx.state), mx.nnames, mx.detail);
	for (size_t i = 0; i < mx.nnames; i++)
		printf("name %s\n", mx.names[i]);
	return 0;
}

static const char *
records_str(enum dns_records_status st)
{
	switch (st) {
	case DNS_REC_DATA: return "data";
	case DNS_REC_NODATA: return "nodata";
	case DNS_REC_NXDOMAIN: return "nxdomain";
	default: return "fail";
	}
}

static int
cmd_txt(struct dns_resolver *s, int argc, char **argv)
{
	struct dns_records *r;

	if (argc < 1)
		return 2;
	dns_txt_lookup(s, argv[0], &r);
	printf("txt kind=%s state=%s n=%zu detail=%s\n", records_str(r->status),
	    dns_sec_state_str(r->sec), r->n, r->detail);
	for (size_t i = 0; i < r->n; i++)
		printf("record %s\n", r->rr[i].text);
	dns_records_free(&r);
	return 0;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof *o);
	o->level = "dane";
	o->now = (int64_t)time(NULL);
	for (int i = 0; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL)
			return -1;
		i++;
		if (strcmp(k, "--level") == 0)
			o->level = v;
		else if (strcmp(k, "--policy-file") == 0)
			o->policy_file = v;
		else if (strcmp(k, "--ca-file") == 0)
			o->ca_file = v;
		else if (strcmp(k, "--sts-ca-file") == 0)
			o->sts_ca_file = v;
		else if (strcmp(k, "--queue-dir") == 0)
			o->queue_dir = v;
		else if (strcmp(k, "--sts-port") == 0)
			o->sts_port = (uint16_t)atoi(v);
		else if (strcmp(k, "--smtp-port") == 0)
			o->smtp_port = (uint16_t)atoi(v);
		else if (strcmp(k, "--now") == 0)
			o->now = strtoll(v, NULL, 10);
		else
			return -1;
	}
	return 0;
}

static int
world_open(struct world *w, struct dns_resolver *s, int argc, char **argv)
{
	struct tls_policy_config cfg;
	char err[300];
	int level;

	if (parse_opts(argc, argv, &w->o) != 0 ||
	    (level = tls_level_parse(w->o.level)) < 0)
		return 2;
	w->resolver = s;
	if (w->o.queue_dir != NULL &&
	    (w->store = tls_store_open(w->o.queue_dir, 0, err, sizeof err)) == NULL) {
		fprintf(stderr, "tls_probe: %s\n", err);
		return 1;
	}
	if (w->o.policy_file != NULL &&
	    tls_policy_map_load(w->o.policy_file, stderr, &w->map) != 0)
		return 1;
	memset(&cfg, 0, sizeof cfg);
	cfg.level = (enum tls_level)level;
	cfg.map = w->map;
	cfg.ca_file = w->o.ca_file;
	cfg.smtp_port = w->o.smtp_port;
	cfg.resolver = w->resolver;
	cfg.store = w->store;
	cfg.sts_fetch.ca_file = w->o.sts_ca_file;
	cfg.sts_fetch.port = w->o.sts_port;
	cfg.sts_fetch.timeout_ms = 10000;
	if ((w->ctx = tls_policy_ctx_new(&cfg, err, sizeof err)) == NULL) {
		fprintf(stderr, "tls_probe: %s\n", err);
		return 1;
	}
	return 0;
}

static void
world_close(struct world *w)
{
	tls_policy_ctx_free(&w->ctx);
	tls_policy_map_free(&w->map);
	tls_store_close(&w->store);
}

static const char *
auth_str(enum tls_auth a)
{
	switch (a) {
	case TLS_AUTH_DANE: return "dane";
	case TLS_AUTH_STS: return "mta-sts";
	case TLS_AUTH_VERIFY: return "verify";
	default: return "none";
	}
}

/* The destination policy of domain: 0 with *dp_r and *mx_r, or 1. */
static int
destination(struct world *w, const char *domain, struct dns_mx_result **mx_r,
    struct tls_dest_policy **dp_r)
{
	struct buf b;

	if (dns_mx_lookup(w->resolver, domain, mx_r) != DNS_OK) {
		printf("dest domain=%s mx=%s detail=%s\n", domain,
		    dns_status_str((*mx_r)->status), (*mx_r)->detail);
		return 1;
	}
	tls_policy_destination(w->ctx, domain, *mx_r, w->o.now, dp_r);
	printf("dest domain=%s level=%s mx_state=%s defer=%d sts=%d reason=%s\n",
	    (*dp_r)->domain, tls_level_str((*dp_r)->configured),
	    dns_sec_state_str((*dp_r)->mx_state), (*dp_r)->defer,
	    (*dp_r)->sts_looked_up && (*dp_r)->sts.have, (*dp_r)->defer_reason);
	for (size_t i = 0; i < (*dp_r)->nhosts; i++) {
		const struct tls_host_policy *hp = &(*dp_r)->hosts[i];
		printf("hostpolicy name=%s level=%s via=%s auth=%s tls_required=%d skip=%d "
		    "testing=%d rpt=%s reason=%s\n", hp->host, tls_level_str(hp->level),
		    hp->via ? hp->via : "-", auth_str(hp->auth), hp->tls_required,
		    hp->skip, hp->sts_testing, tls_rpt_result_str(hp->skip_rpt),
		    hp->skip_reason);
	}
	buf_init(&b, 1 << 20);
	tls_dest_policy_describe(*dp_r, &b);
	printf("%s", b.data ? b.data : "");
	buf_free(&b);
	return 0;
}

static int
cmd_policy(struct dns_resolver *s, struct world *w, int argc, char **argv)
{
	struct dns_mx_result *mx = NULL;
	struct tls_dest_policy *dp = NULL;

	(void)s;
	if (argc < 1)
		return 2;
	destination(w, argv[0], &mx, &dp);
	tls_dest_policy_free(&dp);
	dns_mx_result_free(&mx);
	return 0;
}

static int
cmd_sts(struct dns_resolver *s, struct world *w, int argc, char **argv)
{
	struct mta_sts_env env = { w->resolver, w->store, { w->o.sts_ca_file,
	    w->o.sts_port, 10000, 0 }, 0, NULL };
	struct mta_sts_state st;

	(void)s;
	if (argc < 1)
		return 2;
	mta_sts_cache_lookup(&env, argv[0], w->o.now, &st);
	printf("sts have=%d mode=%s id=%s max_age=%u from_cache=%d fetch_tried=%d "
	    "failure=%s expires=%lld detail=%s\n", st.have,
	    st.have ? mta_sts_mode_str(st.policy.mode) : "-", st.id, st.policy.max_age,
	    st.from_cache, st.fetch_tried,
	    mta_sts_failure_result_type(st.failure) ? mta_sts_failure_result_type(st.failure) : "-",
	    (long long)st.expires, st.detail);
	for (size_t i = 0; st.have && i < st.policy.nmx; i++)
		printf("mx %s\n", st.policy.mx[i]);
	mta_sts_state_clear(&st);
	return 0;
}

static const struct {
	const char *name;
	int (*run)(struct dns_resolver *, struct world *, int, char **);
} world_commands[] = {
	{ "policy", cmd_policy },
	{ "sts", cmd_sts },
};

static const struct {
	const char *name;
	int (*run)(struct dns_resolver *, int, char **);
} commands[] = {
	{ "tlsa", cmd_tlsa },
	{ "host", cmd_host },
	{ "mx", cmd_mx },
	{ "txt", cmd_txt },
};

int
main(int argc, char **argv)
{
	struct dns_server_addr sv;
	struct dns_options o;
	struct dns_resolver *s;
	char err[200];
	int rc = 2;

	if (argc < 3 || parse_server(argv[2], &sv) != 0) {
		fprintf(stderr, "usage: tls_probe tlsa|host|mx|txt|policy|sts "
		    "ADDR:PORT ARGS...\n");
		return 2;
	}
	gnutls_global_init();
	if (mta_sts_fetch_global_init() != 0)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	dns_options_default(&o);
	o.use_ipv6 = 0;
	s = dns_resolver_new_opts(&sv, 1, &o, err, sizeof err);
	if (s == NULL) {
		fprintf(stderr, "tls_probe: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			rc = commands[i].run(s, argc - 3, argv + 3);
	for (size_t i = 0; i < sizeof world_commands / sizeof world_commands[0]; i++)
		if (strcmp(argv[1], world_commands[i].name) == 0 && argc >= 4) {
			struct world w;
			memset(&w, 0, sizeof w);
			w.sv = sv;
			rc = world_open(&w, s, argc - 4, argv + 4);
			if (rc == 0)
				rc = world_commands[i].run(s, &w, 1, argv + 3);
			world_close(&w);
		}
	if (rc == 2)
		fprintf(stderr, "tls_probe: bad command or arguments\n");
	dns_resolver_free(&s);
	return rc;
}
