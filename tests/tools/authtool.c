/*
 * authtool: a test driver for auth/, used by the interop tests
 * (tests/integration/test_auth_*.py) to run our DKIM, SPF and DMARC code
 * on files against independent implementations and real DNS servers.
 *
 *   authtool sign [-t NOW] [-x SECONDS] DOMAIN:SELECTOR:KEYFILE... < MSG
 *       writes the message with our DKIM-Signature fields in front
 *   authtool verify [DNS] [-t NOW] [-l] < MSG
 *       one line per signature: "RESULT d=... s=... a=... status=..."
 *       ("none" when there is none), then "from=DOMAIN"
 *   authtool spf [DNS] IP HELO SENDER
 *       "RESULT domain=... mechanism=... explanation=... problem=..."
 *   authtool dmarc [DNS] [-s PASS-DOMAIN] [-d PASS-DOMAIN]... < MSG
 *       "RESULT policy=... disposition=... domain=... org=..."
 *   authtool authres AUTHSERV-ID < MSG
 *       prints the fields that claim AUTHSERV-ID, one per line
 *   authtool keytxt DOMAIN SELECTOR KEYFILE
 *       prints the TXT record of the key
 *
 * DNS is "--zone FILE" (an auth_dns_table text file) or "--dns ADDR:PORT"
 * (the server's resolver, dns/, asking that server).
 *
 * Exit codes: 0 done (whatever the results), 1 failure, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_dns.h"
#include "auth/auth_dns_table.h"
#include "auth/authres.h"
#include "auth/dkim.h"
#include "auth/dmarc.h"
#include "auth/header.h"
#include "auth/spf.h"
#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/util.h"

#define MSG_MAX (64 * 1024 * 1024)

struct tool {
	struct auth_dns *dns;
	struct dns_resolver *resolver;
	time_t now;
	int refuse_partial;
	const char *spf_pass;
	const char *dkim_pass[8];
	size_t ndkim_pass;
};

static int
usage(void)
{
	fprintf(stderr, "usage: authtool sign|verify|spf|dmarc|authres|keytxt "
	    "... (see tests/tools/authtool.c)\n");
	return 2;
}

static char *
read_all(FILE *f, size_t *len)
{
	struct buf b;
	char chunk[65536];
	size_t n;

	buf_init(&b, MSG_MAX);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_append(&b, chunk, n) != 0) {
			buf_free(&b);
			return NULL;
		}
	return buf_steal(&b, len);
}

static int
load_zone(struct tool *t, const char *path)
{
	size_t len = 0;
	FILE *f = fopen(path, "rb");
	char *text, err[200];

	if (f == NULL) {
		perror(path);
		return -1;
	}
	text = read_all(f, &len);
	fclose(f);
	if (text == NULL)
		return -1;
	t->dns = auth_dns_table_new();
	if (auth_dns_table_load(t->dns, text, len, err, sizeof err) != 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		free(text);
		return -1;
	}
	free(text);
	return 0;
}

static int
use_server(struct tool *t, const char *spec)
{
	struct dns_server_addr sa;
	const char *colon = strrchr(spec, ':');
	char err[200];

	memset(&sa, 0, sizeof sa);
	if (colon == NULL || (size_t)(colon - spec) >= sizeof sa.addr)
		return -1;
	memcpy(sa.addr, spec, (size_t)(colon - spec));
	sa.port = (uint16_t)atoi(colon + 1);
	t->resolver = dns_resolver_new(&sa, 1, err, sizeof err);
	if (t->resolver == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	t->dns = auth_dns_resolver_new(t->resolver);
	return 0;
}

/* Takes the common options off argv; returns the index of the first
 * other word, or -1. */
static int
options(struct tool *t, int argc, char **argv, int i)
{
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--zone") == 0 && i + 1 < argc) {
			if (load_zone(t, argv[++i]) != 0)
				return -1;
		} else if (strcmp(argv[i], "--dns") == 0 && i + 1 < argc) {
			if (use_server(t, argv[++i]) != 0)
				return -1;
		} else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			t->now = (time_t)atoll(argv[++i]);
		} else if (strcmp(argv[i], "-l") == 0) {
			t->refuse_partial = 1;
		} else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			t->spf_pass = argv[++i];
		} else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc &&
		    t->ndkim_pass < 8) {
			t->dkim_pass[t->ndkim_pass++] = argv[++i];
		} else {
			break;
		}
	}
	if (t->dns == NULL)
		t->dns = auth_dns_table_new();
	return i;
}

static int
cmd_sign(int argc, char **argv)
{
	struct dkim_key *keys[4];
	struct dkim_sign_opts o = { .now = 0 };
	struct dkim_signer *s;
	struct buf out;
	size_t nkeys = 0, len = 0;
	char *msg, err[300];
	int i = 2, rc = 0;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
			o.now = (time_t)atoll(argv[++i]);
		else if (strcmp(argv[i], "-x") == 0 && i + 1 < argc)
			o.expire_s = (unsigned)atoi(argv[++i]);
		else
			return usage();
	}
	for (; i < argc && nkeys < 4; i++) {
		char *spec = xstrdup(argv[i]);
		char *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL) {
			free(spec);
			return usage();
		}
		*c1 = *c2 = '\0';
		if (dkim_key_load(c2 + 1, spec, c1 + 1, &keys[nkeys], err,
		    sizeof err) != 0) {
			fprintf(stderr, "authtool: %s\n", err);
			free(spec);
			return 1;
		}
		nkeys++;
		free(spec);
	}
	if (nkeys == 0 || (msg = read_all(stdin, &len)) == NULL)
		return usage();
	s = dkim_signer_new(&o);
	/* Fed in small odd chunks, as a queue would. */
	for (size_t k = 0; k < len; k += 1000)
		dkim_signer_update(s, msg + k, len - k < 1000 ? len - k : 1000);
	buf_init(&out, MSG_MAX);
	if (dkim_signer_finish(s, keys, nkeys, &out, err, sizeof err) != 0) {
		fprintf(stderr, "authtool: %s\n", err);
		rc = 1;
	} else {
		fwrite(out.data, 1, out.len, stdout);
		fwrite(msg, 1, len, stdout);
	}
	buf_free(&out);
	dkim_signer_free(&s);
	for (size_t k = 0; k < nkeys; k++)
		dkim_key_free(&keys[k]);
	free(msg);
	return rc;
}

static int
cmd_verify(struct tool *t, int argc, char **argv)
{
	struct dkim_verify_opts o = { .now = 0 };
	struct dkim_verifier *v;
	struct dkim_results *res = xcalloc(1, sizeof *res);
	size_t len = 0, hlen;
	const char *h;
	char *msg, from[256];

	if (options(t, argc, argv, 2) != argc)
		return usage();
	o.now = t->now;
	o.refuse_partial = t->refuse_partial;
	if ((msg = read_all(stdin, &len)) == NULL)
		return 1;
	v = dkim_verifier_new(&o);
	for (size_t k = 0; k < len; k += 777)
		dkim_verifier_update(v, msg + k, len - k < 777 ? len - k : 777);
	dkim_verifier_finish(v, t->dns, res);
	if (res->n == 0)
		printf("none\n");
	for (size_t k = 0; k < res->n; k++) {
		const struct dkim_sig_result *r = &res->sig[k];
		printf("%s d=%s s=%s a=%s status=%d testing=%d l=%lld body=%llu "
		    "b=%s reason=%s\n", dkim_result_name(r->result), r->domain,
		    r->selector, dkim_alg_name(r->alg), (int)r->status, r->testing,
		    (long long)r->length, (unsigned long long)r->body_length,
		    r->b_prefix, r->reason);
	}
	h = dkim_verifier_headers(v, &hlen);
	printf("from=%s\n", auth_header_from_domain(h, hlen, from,
	    sizeof from) == 0 ? from : "");
	dkim_verifier_free(&v);
	free(res);
	free(msg);
	return 0;
}

static int
cmd_spf(struct tool *t, int argc, char **argv)
{
	struct spf_request req = { .receiver = "authtool.test" };
	struct spf_outcome out;
	int i = options(t, argc, argv, 2);

	if (i < 0 || argc - i != 3 || auth_ip_parse(argv[i], &req.ip) != 0)
		return usage();
	req.helo = argv[i + 1];
	req.sender = argv[i + 2];
	req.now = t->now;
	spf_check_mailfrom(t->dns, &req, NULL, &out);
	printf("%s domain=%s mechanism=%s explanation=%s problem=%s\n",
	    spf_result_name(out.result), out.domain, out.mechanism,
	    out.explanation, out.problem);
	return 0;
}

static int
cmd_dmarc(struct tool *t, int argc, char **argv)
{
	struct dmarc_input in;
	struct dmarc_outcome out;
	struct dkim_results dk;
	size_t len = 0;
	char *msg, from[256];

	if (options(t, argc, argv, 2) != argc)
		return usage();
	if ((msg = read_all(stdin, &len)) == NULL)
		return 1;
	memset(&in, 0, sizeof in);
	if (auth_header_from_domain(msg, len, from, sizeof from) == 0)
		in.from_domain = from;
	in.spf_result = t->spf_pass ? SPF_PASS : SPF_NONE;
	in.spf_domain = t->spf_pass;
	memset(&dk, 0, sizeof dk);
	for (size_t k = 0; k < t->ndkim_pass; k++) {
		dk.sig[dk.n].result = DKIM_PASS;
		str_copy(dk.sig[dk.n++].domain, t->dkim_pass[k],
		    sizeof dk.sig[0].domain);
	}
	in.dkim = &dk;
	in.sample = 0;
	dmarc_check(t->dns, &in, &out);
	printf("%s policy=%s disposition=%s domain=%s org=%s problem=%s\n",
	    dmarc_result_name(out.result), dmarc_policy_name(out.policy),
	    dmarc_policy_name(out.disposition), out.policy_domain,
	    out.org_domain, out.problem);
	free(msg);
	return 0;
}

static int
cmd_authres(int argc, char **argv)
{
	struct auth_field f;
	size_t len = 0, pos = 0;
	char *msg;

	if (argc != 3 || (msg = read_all(stdin, &len)) == NULL)
		return usage();
	while (auth_header_next(msg, len, &pos, &f))
		if (authres_field_is_ours(&f, argv[2]))
			printf("%.*s\n", (int)f.valuelen, f.value);
	free(msg);
	return 0;
}

static int
cmd_keytxt(int argc, char **argv)
{
	struct dkim_key *k;
	struct buf txt;
	char err[300];

	if (argc != 5)
		return usage();
	if (dkim_key_load(argv[4], argv[2], argv[3], &k, err, sizeof err) != 0) {
		fprintf(stderr, "authtool: %s\n", err);
		return 1;
	}
	buf_init(&txt, 8192);
	dkim_key_txt_record(k, &txt);
	printf("%s\n", txt.data);
	buf_free(&txt);
	dkim_key_free(&k);
	return 0;
}

int
main(int argc, char **argv)
{
	struct tool t;
	int rc;

	memset(&t, 0, sizeof t);
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "sign") == 0)
		rc = cmd_sign(argc, argv);
	else if (strcmp(argv[1], "verify") == 0)
		rc = cmd_verify(&t, argc, argv);
	else if (strcmp(argv[1], "spf") == 0)
		rc = cmd_spf(&t, argc, argv);
	else if (strcmp(argv[1], "dmarc") == 0)
		rc = cmd_dmarc(&t, argc, argv);
	else if (strcmp(argv[1], "authres") == 0)
		rc = cmd_authres(argc, argv);
	else if (strcmp(argv[1], "keytxt") == 0)
		rc = cmd_keytxt(argc, argv);
	else
		rc = usage();
	auth_dns_free(&t.dns);
	dns_resolver_free(&t.resolver);
	return rc;
}
