/*
 * fuzz_spf_record: hostile SPF records and macro-strings through
 * auth/spf: the record parser, the macro checker and expander (domain-spec
 * and explain-string rules, IPv4 and IPv6 clients), and a whole
 * check_host() where the input is the record of the sender's domain and of
 * every name an include, redirect or exp= may reach in a small zone.
 * A parsed record must respect its bounds; an expansion must stay inside
 * its buffer. Seeds: tests/fuzz/corpus/spf_record/.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "auth/auth_dns_table.h"
#include "auth/spf.h"
#include "auth/spf_internal.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
expand(const char *s, size_t n, const char *ip, int flags)
{
	struct spf_macro_env env;
	char name[SPF_NAME_MAX + 1];
	struct buf b;

	memset(&env, 0, sizeof env);
	env.sender = "user+tag@sender.example";
	env.local = "user+tag";
	env.sender_domain = env.domain = "sender.example";
	env.helo = "helo.example";
	env.now = 1;
	auth_ip_parse(ip, &env.ip);
	buf_init(&b, 2048);
	if (spf_macro_expand(&env, s, n, flags, &b) == 0 &&
	    (b.len > b.max || spf_macro_check(s, n, flags) != 0))
		__builtin_trap();
	buf_free(&b);
	if (spf_expand_domain(&env, s, n, name, sizeof name) == 0 &&
	    strlen(name) > SPF_NAME_MAX)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct spf_record *rec = NULL;
	struct auth_dns *dns;
	struct spf_request req = { .helo = "helo.example",
	    .sender = "user@sender.example", .receiver = "mx.example" };
	struct spf_outcome out;
	char why[200];

	if (size > SPF_RECORD_MAX + 16)
		return 0;
	if (spf_record_parse(text, size, &rec, why, sizeof why) == 0) {
		if (rec->nterms > SPF_TERMS_MAX ||
		    (rec->exp >= 0 && (size_t)rec->exp >= rec->nterms) ||
		    (rec->redirect >= 0 && (size_t)rec->redirect >= rec->nterms))
			__builtin_trap();
		for (size_t i = 0; i < rec->nterms; i++)
			if (rec->terms[i].text < rec->text ||
			    rec->terms[i].text + rec->terms[i].textlen >
			    rec->text + size)
				__builtin_trap();
	}
	spf_record_free(&rec);
	(void)spf_domain_spec_check(text, size);
	expand(text, size, "192.0.2.1", 0);
	expand(text, size, "2001:db8::1", SPF_MACRO_EXP);

	dns = auth_dns_table_new();
	auth_dns_table_add(dns, "sender.example", "TXT", text, size);
	auth_dns_table_add(dns, "inc.example", "TXT", text, size);
	auth_dns_table_add(dns, "exp.example", "TXT", text, size);
	auth_dns_table_add(dns, "sender.example", "A", "192.0.2.1", 9);
	auth_dns_table_add(dns, "sender.example", "MX", "10 mx.example", 13);
	auth_dns_table_add(dns, "mx.example", "A", "192.0.2.2", 9);
	auth_dns_table_add(dns, "1.2.0.192.in-addr.arpa", "PTR",
	    "sender.example", 14);
	auth_dns_table_add(dns, "helo.example", "TXT", text, size);
	auth_ip_parse("192.0.2.1", &req.ip);
	spf_check_mailfrom(dns, &req, NULL, &out);
	if (out.result > SPF_PERMERROR || strlen(out.explanation) >=
	    sizeof out.explanation)
		__builtin_trap();
	auth_ip_parse("2001:db8::1", &req.ip);
	req.sender = "";
	spf_check_mailfrom(dns, &req, NULL, &out);
	auth_dns_free(&dns);
	return 0;
}
