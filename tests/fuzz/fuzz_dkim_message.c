/*
 * fuzz_dkim_message: hostile messages through auth/: the header/body
 * splitter, the field walker and the From: parser, DKIM verification of
 * every DKIM-Signature field in the input (keys from a small zone, one of
 * them a real Ed25519 key), signing with that key and verifying the
 * result (which must pass whenever signing worked and the input has a
 * From field), and Authentication-Results stripping.
 * Seeds: tests/fuzz/corpus/dkim_message/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth_dns_table.h"
#include "auth/authres.h"
#include "auth/dkim.h"
#include "auth/header.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dkim_key *key;
static struct buf key_txt;

/* The same fixed Ed25519 key for every run (made once, kept). */
static void
key_once(void)
{
	static const char pem[] =
	    "-----BEGIN PRIVATE KEY-----\n"
	    "MC4CAQAwBQYDK2VwBCIEIGFQt3jOBmyqjuTyMZHTaHoV6ziSJNvmgSkxeazUGBqk\n"
	    "-----END PRIVATE KEY-----\n";
	char path[] = "/tmp/fuzz_dkim_key.XXXXXX", err[200];
	int fd;

	if (key != NULL)
		return;
	fd = mkstemp(path);
	if (fd < 0 || write(fd, pem, sizeof pem - 1) != (ssize_t)(sizeof pem - 1))
		abort();
	close(fd);
	if (dkim_key_load(path, "example.com", "ed", &key, err, sizeof err) != 0)
		abort();
	unlink(path);
	buf_init(&key_txt, 1024);
	dkim_key_txt_record(key, &key_txt);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_verify_opts o = { .now = 1700000000, .max_header_bytes = 65536 };
	struct dkim_sign_opts so = { .now = 1700000000, .max_header_bytes = 65536 };
	struct dkim_verifier *v;
	struct dkim_signer *s;
	struct dkim_results res;
	struct auth_dns *dns;
	struct buf out, stripped;
	const char *h;
	size_t hlen, half = size / 2;
	char from[256], err[200];
	int has_from;

	if (size > 1 << 18)
		return 0;
	key_once();
	dns = auth_dns_table_new();
	auth_dns_table_add(dns, "ed._domainkey.example.com", "TXT", key_txt.data,
	    key_txt.len);
	auth_dns_table_add(dns, "rsa._domainkey.example.com", "TXT",
	    "v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAL", 50);

	v = dkim_verifier_new(&o);
	dkim_verifier_update(v, data, half);
	dkim_verifier_update(v, data + half, size - half);
	dkim_verifier_finish(v, dns, &res);
	if (res.n > DKIM_MAX_RESULTS)
		__builtin_trap();
	h = dkim_verifier_headers(v, &hlen);
	/* a From field with an author domain (one or several) */
	has_from = auth_header_from_domain(h, hlen, from, sizeof from);
	has_from = has_from == 0 || has_from == -2;
	buf_init(&stripped, hlen + 1);
	if (authres_strip(h, hlen, "mx.example.org", &stripped) < 0 ||
	    stripped.len > hlen)
		__builtin_trap();
	buf_free(&stripped);
	dkim_verifier_free(&v);

	s = dkim_signer_new(&so);
	for (size_t i = 0; i < size; i += 37)
		dkim_signer_update(s, data + i, size - i < 37 ? size - i : 37);
	buf_init(&out, 1 << 20);
	if (dkim_signer_finish(s, &key, 1, &out, err, sizeof err) == 0) {
		buf_append(&out, data, size);
		v = dkim_verifier_new(&o);
		dkim_verifier_update(v, out.data, out.len);
		dkim_verifier_finish(v, dns, &res);
		/* Our own signature verifies, whatever else the input holds
		 * (unless the header section now passes the bound, or the
		 * input starts with a continuation line, which then joins
		 * our field). */
		if (has_from && size > 0 && data[0] != ' ' && data[0] != '\t' &&
		    res.n >= 1 && res.sig[0].result != DKIM_PASS &&
		    res.sig[0].status != DKIM_ST_HEADERS_TOO_LARGE)
			__builtin_trap();
		dkim_verifier_free(&v);
	}
	buf_free(&out);
	dkim_signer_free(&s);
	auth_dns_free(&dns);
	return 0;
}
