/*
 * fuzz_dkim_sig: hostile tag lists through auth/dkim's parsers: the
 * tag-list parser (strict and lenient), the DKIM-Signature value parser,
 * the key record parser for both algorithms, and, when the input parses
 * as a signature, a verification of a small message carrying it as its
 * DKIM-Signature field (with the input also published as the key).
 * What comes out must stay inside the input and its bounds.
 * Seeds: tests/fuzz/corpus/dkim_sig/.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "auth/auth_dns_table.h"
#include "auth/dkim.h"
#include "auth/dkim_internal.h"
#include "auth/taglist.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_tags(const struct taglist *tl, const char *s, size_t n)
{
	for (size_t i = 0; i < tl->n; i++) {
		const struct tag *t = &tl->tags[i];
		if (tl->n > TAGLIST_MAX || t->name < s || t->name + t->namelen > s + n ||
		    t->value < s || t->value + t->valuelen > s + n ||
		    t->raw < s || t->raw + t->rawlen > s + n || t->namelen == 0)
			__builtin_trap();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct taglist tl;
	struct dkim_sig sig;
	struct dkim_keyrec key;
	char why[200];

	if (size > DKIM_MAX_FIELD)
		return 0;
	if (taglist_parse(s, size, 0, &tl, why, sizeof why) == 0)
		check_tags(&tl, s, size);
	if (taglist_parse(s, size, TAGLIST_LENIENT, &tl, why, sizeof why) == 0)
		check_tags(&tl, s, size);
	(void)dkim_keyrec_parse(s, size, DKIM_ALG_RSA_SHA256, &key, why,
	    sizeof why);
	if (key.plen > sizeof key.p)
		__builtin_trap();
	(void)dkim_keyrec_parse(s, size, DKIM_ALG_ED25519_SHA256, &key, why,
	    sizeof why);
	if (dkim_sig_parse(s, size, &sig, why, sizeof why) == DKIM_ST_OK) {
		struct dkim_verify_opts o = { .now = 1 };
		struct dkim_verifier *v;
		struct dkim_results res;
		struct auth_dns *dns;
		struct buf name;

		if (sig.nh == 0 || sig.nh > DKIM_MAX_HNAMES || sig.blen == 0 ||
		    sig.b_off + sig.b_len > size || sig.bhlen != 32)
			__builtin_trap();
		dns = auth_dns_table_new();
		buf_init(&name, 1024);
		buf_printf(&name, "%s._domainkey.%s", sig.selector, sig.domain);
		auth_dns_table_add(dns, name.data, "TXT", s, size);
		v = dkim_verifier_new(&o);
		dkim_verifier_update(v, "DKIM-Signature:", 15);
		dkim_verifier_update(v, data, size);
		dkim_verifier_update(v, "\r\nFrom: a@b.example\r\n\r\nbody\r\n", 30);
		dkim_verifier_finish(v, dns, &res);
		if (res.n != 1 || res.sig[0].result == DKIM_PASS)
			__builtin_trap();
		dkim_verifier_free(&v);
		buf_free(&name);
		auth_dns_free(&dns);
	}
	return 0;
}
