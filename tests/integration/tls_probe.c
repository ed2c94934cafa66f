/*
 * tls_probe: drives the outbound TLS machinery (dns/ DNSSEC-aware
 * lookups, relay/tls_*, relay/mta_sts*) from the command line, so that
 * integration tests can run it against real peers on loopback: the DNSSEC
 * lab (unbound + nsd), SMTP peers with STARTTLS, HTTPS policy servers.
 * Output is one "key=value ..." line per fact, for tests to parse.
 *
 *   tls_probe tlsa DNS HOST [PORT]      TLSA lookup (PORT default 25)
 *   tls_probe host DNS HOST             address view (secure? alias?)
 *   tls_probe mx DNS DOMAIN             MX view
 *   tls_probe txt DNS NAME              TXT records
 *
 * DNS is ADDR:PORT of the (validating) resolver. Exit status 0 when the
 * command ran (whatever it found), 2 for bad usage, 1 for a failure to
 * run at all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "lib/util.h"

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
cmd_tlsa(struct dns_sec *s, int argc, char **argv)
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
cmd_host(struct dns_sec *s, int argc, char **argv)
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
cmd_mx(struct dns_sec *s, int argc, char **argv)
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

static int
cmd_txt(struct dns_sec *s, int argc, char **argv)
{
	struct dns_txt_result *r;

	if (argc < 1)
		return 2;
	dns_txt_lookup(s, argv[0], &r);
	printf("txt kind=%s state=%s n=%zu detail=%s\n", kind_str(r->kind),
	    dns_sec_state_str(r->state), r->n, r->detail);
	for (size_t i = 0; i < r->n; i++)
		printf("record %s\n", r->txt[i]);
	dns_txt_result_free(&r);
	return 0;
}

static const struct {
	const char *name;
	int (*run)(struct dns_sec *, int, char **);
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
	struct dns_sec *s;
	char err[200];
	int rc = 2;

	if (argc < 3 || parse_server(argv[2], &sv) != 0) {
		fprintf(stderr, "usage: tls_probe tlsa|host|mx|txt ADDR:PORT ARGS...\n");
		return 2;
	}
	dns_options_default(&o);
	o.use_ipv6 = 0;
	s = dns_sec_new(&sv, 1, &o, err, sizeof err);
	if (s == NULL) {
		fprintf(stderr, "tls_probe: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			rc = commands[i].run(s, argc - 3, argv + 3);
	if (rc == 2)
		fprintf(stderr, "tls_probe: bad command or arguments\n");
	dns_sec_free(&s);
	return rc;
}
