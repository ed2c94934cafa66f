/*
 * test_dkim: auth/dkim without the network: the tag-list parser, the
 * canonicalization algorithms (RFC 6376 3.4, with its 3.4.5 example) fed
 * in every chunking, the signature and key record parsers on tables of
 * good and hostile input, and whole sign-and-verify runs with keys made
 * by dkim_keygen and published in an auth_dns_table: RSA, Ed25519, both at
 * once, changes in transit that relaxed canonicalization absorbs, and
 * every way a signature must fail (tampering, wrong, revoked, missing and
 * unreachable keys, expiry, future timestamps, too many signatures, a
 * header section past its bound), plus concurrent signing with one key.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth_dns_table.h"
#include "auth/dkim.h"
#include "auth/dkim_keyring.h"
#include "auth/dkim_internal.h"
#include "auth/header.h"
#include "auth/taglist.h"
#include "lib/buf.h"
#include "lib/util.h"

static char tmpdir[] = "/tmp/test_dkim.XXXXXX";
static char rsa_path[256], ed_path[256], rsa2_path[256];
static struct buf rsa_txt, ed_txt, rsa2_txt;

/* ---- tag lists ---- */

static const struct {
	const char *text;
	int ok;
	size_t ntags;
} taglists[] = {
	{ "", 1, 0 },
	{ "v=1", 1, 1 },
	{ "v=1;", 1, 1 },
	{ "v=1; a=rsa-sha256 ;b= x y ;", 1, 3 },
	{ " v = 1 ;\r\n\ta=b", 1, 2 },
	{ "h=from:to:\r\n subject", 1, 1 },
	{ "a_b1=x", 1, 1 },
	{ "v=", 1, 1 },
	{ "v=1;;a=2", 0, 0 },
	{ ";v=1", 0, 0 },
	{ "v=1; v=2", 0, 0 },
	{ "1v=1", 0, 0 },
	{ "v", 0, 0 },
	{ "v 1", 0, 0 },
	{ "v=1\r\na=2", 0, 0 },
	{ "v=1\n a=2", 0, 0 },
	{ "v=\x80", 0, 0 },
	{ "v=a\x01", 0, 0 },
	{ "a-b=1", 0, 0 },
};

static void
test_taglist(void)
{
	for (size_t i = 0; i < sizeof taglists / sizeof taglists[0]; i++) {
		struct taglist tl;
		char why[100];
		int rc = taglist_parse(taglists[i].text, strlen(taglists[i].text),
		    0, &tl, why, sizeof why);
		if ((rc == 0) != taglists[i].ok)
			printf("\ntaglist \"%s\": %d %s\n", taglists[i].text, rc, why);
		CU_ASSERT_EQUAL(rc == 0, taglists[i].ok);
		if (rc == 0)
			CU_ASSERT_EQUAL(tl.n, taglists[i].ntags);
	}
}

static void
test_taglist_values(void)
{
	const char *s = " v=1; b= abc\r\n\tdef ; h = from : to ;";
	struct taglist tl;
	char why[100], out[64];
	const struct tag *t;
	struct buf many;

	CU_ASSERT_EQUAL_FATAL(taglist_parse(s, strlen(s), 0, &tl, why,
	    sizeof why), 0);
	t = taglist_get(&tl, "b");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(t->valuelen, strlen("abc\r\n\tdef"));
	CU_ASSERT_EQUAL(t->rawlen, strlen(" abc\r\n\tdef "));
	CU_ASSERT_EQUAL(tag_value_compact(t, out, sizeof out), 6);
	CU_ASSERT_STRING_EQUAL(out, "abcdef");
	CU_ASSERT_EQUAL(tag_value_compact(t, out, 4), -1);
	CU_ASSERT(tag_value_is(taglist_get(&tl, "h"), "from : to", 0));
	CU_ASSERT_PTR_NULL(taglist_get(&tl, "B"));	/* case-sensitive */

	/* Lenient: bad and repeated specs are dropped, the first kept. */
	s = "v=DMARC1; p=reject; bad tag; p=none; 9=x; pct=50";
	CU_ASSERT_EQUAL(taglist_parse(s, strlen(s), 0, &tl, why, sizeof why), -1);
	CU_ASSERT_EQUAL(taglist_parse(s, strlen(s), TAGLIST_LENIENT, &tl, why,
	    sizeof why), 0);
	CU_ASSERT_EQUAL(tl.n, 3);
	CU_ASSERT(tag_value_is(taglist_get(&tl, "p"), "reject", 0));

	/* Too many tags fails even leniently. */
	buf_init(&many, 8192);
	for (int i = 0; i <= TAGLIST_MAX; i++)
		buf_printf(&many, "t%d=x;", i);
	CU_ASSERT_EQUAL(taglist_parse(many.data, many.len, TAGLIST_LENIENT, &tl,
	    why, sizeof why), -1);
	buf_free(&many);
}

/* ---- canonicalization ---- */

static const struct {
	const char *in, *simple, *relaxed;
} bodies[] = {
	/* RFC 6376 3.4.5 */
	{ " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n", " C\r\nD E\r\n" },
	{ "", "\r\n", "" },
	{ "\r\n", "\r\n", "" },
	{ "\r\n\r\n\r\n", "\r\n", "" },
	{ "abc", "abc\r\n", "abc\r\n" },
	{ "abc\r\n", "abc\r\n", "abc\r\n" },
	{ "a\n\nb\n\n", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n" },
	{ "  \r\n \t \r\n", "  \r\n \t \r\n", "" },
	{ "x  \r\n\t\r\ny", "x  \r\n\t\r\ny\r\n", "x\r\n\r\ny\r\n" },
	{ "a\rb\r\n", "a\rb\r\n", "a\rb\r\n" },
	{ "end\r", "end\r\r\n", "end\r\r\n" },
	{ "\t lead\r\n", "\t lead\r\n", " lead\r\n" },
};

static void
sha256_of(const char *s, size_t n, uint8_t out[32])
{
	gnutls_hash_fast(GNUTLS_DIG_SHA256, s, n, out);
}

static void
body_case(enum dkim_canon c, const char *in, const char *want, size_t step)
{
	struct dkim_bodyhash *h = dkim_bodyhash_new(c, -1);
	uint8_t got[32], exp[32];
	uint64_t len;
	size_t n = strlen(in);

	for (size_t i = 0; i < n; i += step)
		dkim_bodyhash_update(h, in + i, n - i < step ? n - i : step);
	dkim_bodyhash_final(h, got, &len);
	dkim_bodyhash_free(&h);
	sha256_of(want, strlen(want), exp);
	if (memcmp(got, exp, 32) != 0 || len != strlen(want)) {
		printf("\nbody canon %d step %zu of \"%s\": length %llu, want %zu\n",
		    (int)c, step, in, (unsigned long long)len, strlen(want));
		CU_FAIL("body canonicalization");
	}
}

static void
test_body_canon(void)
{
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		for (size_t step = 1; step <= 4; step++) {
			body_case(DKIM_CANON_SIMPLE, bodies[i].in, bodies[i].simple,
			    step);
			body_case(DKIM_CANON_RELAXED, bodies[i].in,
			    bodies[i].relaxed, step);
		}
}

static void
test_body_limit(void)
{
	const char *in = "line one  \r\nline two\r\n\r\n";
	const char *canon = "line one\r\nline two\r\n";
	uint8_t got[32], exp[32];
	uint64_t len;

	for (int64_t l = 0; l <= 30; l++) {
		struct dkim_bodyhash *h = dkim_bodyhash_new(DKIM_CANON_RELAXED, l);
		size_t want = (size_t)l < strlen(canon) ? (size_t)l : strlen(canon);
		dkim_bodyhash_update(h, in, strlen(in));
		dkim_bodyhash_final(h, got, &len);
		dkim_bodyhash_free(&h);
		sha256_of(canon, want, exp);
		CU_ASSERT(memcmp(got, exp, 32) == 0);
		CU_ASSERT_EQUAL(len, strlen(canon));
	}
}

static void
test_header_canon(void)
{
	static const struct {
		const char *in, *simple, *relaxed;
	} h[] = {
		/* RFC 6376 3.4.5 */
		{ "A: X\r\n", "A: X\r\n", "a:X\r\n" },
		{ "B : Y\t\r\n\tZ  \r\n", "B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n" },
		{ "Subject:   \r\n", "Subject:   \r\n", "subject:\r\n" },
		{ "X-Y:a\r\n  b   c\r\n", "X-Y:a\r\n  b   c\r\n", "x-y:a b c\r\n" },
		{ "To:x", "To:x\r\n", "to:x\r\n" },
	};

	for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
		struct buf b;
		buf_init(&b, 1024);
		CU_ASSERT_EQUAL(dkim_canon_header(DKIM_CANON_SIMPLE, h[i].in,
		    strlen(h[i].in), 1, &b), 0);
		CU_ASSERT_STRING_EQUAL(b.data, h[i].simple);
		buf_reset(&b);
		CU_ASSERT_EQUAL(dkim_canon_header(DKIM_CANON_RELAXED, h[i].in,
		    strlen(h[i].in), 1, &b), 0);
		CU_ASSERT_STRING_EQUAL(b.data, h[i].relaxed);
		buf_reset(&b);
		CU_ASSERT_EQUAL(dkim_canon_header(DKIM_CANON_RELAXED, h[i].in,
		    strlen(h[i].in), 0, &b), 0);
		CU_ASSERT(b.len + 2 == strlen(h[i].relaxed));
		buf_free(&b);
	}
}

/* 5.4.2: instances are taken from the bottom up; names beyond them add
 * nothing. */
static void
test_header_input(void)
{
	const char *hdrs = "From: a@x.example\r\nX: 1\r\nTo: t\r\nX: 2\r\n";
	struct dkim_hname names[] = { { "x", 1 }, { "from", 4 }, { "x", 1 },
	    { "x", 1 }, { "cc", 2 } };
	struct buf b;

	buf_init(&b, 4096);
	CU_ASSERT_EQUAL(dkim_header_input(hdrs, strlen(hdrs), DKIM_CANON_RELAXED,
	    names, 5, NULL, "DKIM-Signature: b=", 18, &b), 0);
	CU_ASSERT_STRING_EQUAL(b.data, "x:2\r\nfrom:a@x.example\r\nx:1\r\n"
	    "dkim-signature:b=");
	buf_free(&b);
}

/* ---- signature and key records ---- */

#define BH "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"
#define B "b=dGVzdA==;"

static const struct {
	const char *value;
	enum dkim_status st;
} sigs[] = {
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH B, DKIM_ST_OK },
	{ "v=1; a=ed25519-sha256; c=relaxed; d=Example.COM; s=a.b; "
	  "h=From:To; i=u@sub.example.com; l=10; t=5; x=6; q=dns/txt; " BH B,
	  DKIM_ST_OK },
	{ "v=2; a=rsa-sha256; d=example.com; s=sel; h=from; " BH B,
	  DKIM_ST_SIG_VERSION },
	{ "v=1; a=rsa-sha1; d=example.com; s=sel; h=from; " BH B,
	  DKIM_ST_SIG_ALG },
	{ "v=1; a=dsa-sha256; d=example.com; s=sel; h=from; " BH B,
	  DKIM_ST_SIG_ALG },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=to:subject; " BH B,
	  DKIM_ST_SIG_FROM },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; i=@evil.example; "
	  BH B, DKIM_ST_SIG_DOMAIN },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; i=@xexample.com; "
	  BH B, DKIM_ST_SIG_DOMAIN },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=example.com; h=from; " BH B,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; t=9; x=8; " BH B,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; l=-1; " BH B,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; q=http/x; " BH B,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; c=fancy; " BH B,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; b=***; " BH,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from; bh=dGVzdA==; " B,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=com; s=sel; h=from; " BH B, DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=exa mple.com; s=sel; h=from; " BH B,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=example.com; s=../x; h=from; " BH B,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from::to; " BH B,
	  DKIM_ST_SIG_SYNTAX },
	{ "v=1; v=1; a=rsa-sha256; d=example.com; s=sel; h=from; " BH B,
	  DKIM_ST_SIG_SYNTAX },
};

static void
test_sig_parse(void)
{
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		struct dkim_sig *sig = xmalloc(sizeof *sig);
		char why[200] = "";
		enum dkim_status st = dkim_sig_parse(sigs[i].value,
		    strlen(sigs[i].value), sig, why, sizeof why);
		if (st != sigs[i].st)
			printf("\nsig %zu: status %d (%s), want %d\n", i, (int)st, why,
			    (int)sigs[i].st);
		CU_ASSERT_EQUAL(st, sigs[i].st);
		free(sig);
	}
}

static void
test_sig_fields(void)
{
	struct dkim_sig *sig = xmalloc(sizeof *sig);
	char why[200];

	CU_ASSERT_EQUAL_FATAL(dkim_sig_parse(sigs[1].value, strlen(sigs[1].value),
	    sig, why, sizeof why), DKIM_ST_OK);
	CU_ASSERT_EQUAL(sig->alg, DKIM_ALG_ED25519_SHA256);
	CU_ASSERT_EQUAL(sig->hcanon, DKIM_CANON_RELAXED);
	CU_ASSERT_EQUAL(sig->bcanon, DKIM_CANON_SIMPLE);
	CU_ASSERT_STRING_EQUAL(sig->domain, "example.com");
	CU_ASSERT_STRING_EQUAL(sig->selector, "a.b");
	CU_ASSERT_STRING_EQUAL(sig->auid, "u@sub.example.com");
	CU_ASSERT_EQUAL(sig->nh, 2);
	CU_ASSERT_EQUAL(sig->l, 10);
	CU_ASSERT_EQUAL(sig->t, 5);
	CU_ASSERT_EQUAL(sig->x, 6);
	CU_ASSERT_EQUAL(sig->blen, 4);
	CU_ASSERT(memcmp(sig->b, "test", 4) == 0);
	CU_ASSERT_STRING_EQUAL(sig->b_prefix, "dGVzdA==");
	free(sig);
}

static void
test_keyrec_parse(void)
{
	static const struct {
		const char *txt;
		enum dkim_alg alg;
		enum dkim_status st;
	} keys[] = {
		{ "v=DKIM1; k=rsa; p=dGVzdA==", DKIM_ALG_RSA_SHA256, DKIM_ST_OK },
		{ "p=dGVzdA==", DKIM_ALG_RSA_SHA256, DKIM_ST_OK },
		{ "v=DKIM1; k=ed25519; h=sha256; s=email; p=dGVzdA==",
		  DKIM_ALG_ED25519_SHA256, DKIM_ST_OK },
		{ "v=DKIM1; p=", DKIM_ALG_RSA_SHA256, DKIM_ST_KEY_REVOKED },
		{ "v=DKIM1; k=rsa; p=  ", DKIM_ALG_RSA_SHA256, DKIM_ST_KEY_REVOKED },
		{ "v=DKIM2; p=dGVzdA==", DKIM_ALG_RSA_SHA256, DKIM_ST_KEY_SYNTAX },
		{ "k=rsa; v=DKIM1; p=dGVzdA==", DKIM_ALG_RSA_SHA256,
		  DKIM_ST_KEY_SYNTAX },
		{ "v=DKIM1; k=rsa", DKIM_ALG_RSA_SHA256, DKIM_ST_KEY_SYNTAX },
		{ "v=DKIM1; p=!!!!", DKIM_ALG_RSA_SHA256, DKIM_ST_KEY_SYNTAX },
		{ "v=DKIM1; k=ed25519; p=dGVzdA==", DKIM_ALG_RSA_SHA256,
		  DKIM_ST_KEY_ALG },
		{ "v=DKIM1; k=rsa; p=dGVzdA==", DKIM_ALG_ED25519_SHA256,
		  DKIM_ST_KEY_ALG },
		{ "v=DKIM1; k=dsa; p=dGVzdA==", DKIM_ALG_RSA_SHA256,
		  DKIM_ST_KEY_ALG },
		{ "v=DKIM1; h=sha1; p=dGVzdA==", DKIM_ALG_RSA_SHA256,
		  DKIM_ST_KEY_ALG },
		{ "v=DKIM1; s=web; p=dGVzdA==", DKIM_ALG_RSA_SHA256,
		  DKIM_ST_KEY_ALG },
		{ "v=DKIM1; p=dGVzdA==; p=dGVzdA==", DKIM_ALG_RSA_SHA256,
		  DKIM_ST_KEY_SYNTAX },
		{ "garbage", DKIM_ALG_RSA_SHA256, DKIM_ST_KEY_SYNTAX },
	};
	struct dkim_keyrec *k = xmalloc(sizeof *k);
	char why[200];

	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		enum dkim_status st = dkim_keyrec_parse(keys[i].txt,
		    strlen(keys[i].txt), keys[i].alg, k, why, sizeof why);
		if (st != keys[i].st)
			printf("\nkey \"%s\": %d (%s)\n", keys[i].txt, (int)st, why);
		CU_ASSERT_EQUAL(st, keys[i].st);
	}
	CU_ASSERT_EQUAL(dkim_keyrec_parse("v=DKIM1; t=y:s; p=dGVzdA==", 26,
	    DKIM_ALG_RSA_SHA256, k, why, sizeof why), DKIM_ST_OK);
	CU_ASSERT(k->testing && k->strict);
	free(k);
}

/* ---- keys ---- */

static int
keys_setup(void)
{
	char err[300];

	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(rsa_path, sizeof rsa_path, "%s/rsa.pem", tmpdir);
	snprintf(rsa2_path, sizeof rsa2_path, "%s/rsa2.pem", tmpdir);
	snprintf(ed_path, sizeof ed_path, "%s/ed.pem", tmpdir);
	buf_init(&rsa_txt, 8192);
	buf_init(&rsa2_txt, 8192);
	buf_init(&ed_txt, 8192);
	if (dkim_keygen(DKIM_ALG_RSA_SHA256, rsa_path, &rsa_txt, err,
	    sizeof err) != 0 ||
	    dkim_keygen(DKIM_ALG_RSA_SHA256, rsa2_path, &rsa2_txt, err,
	    sizeof err) != 0 ||
	    dkim_keygen(DKIM_ALG_ED25519_SHA256, ed_path, &ed_txt, err,
	    sizeof err) != 0) {
		fprintf(stderr, "keygen: %s\n", err);
		return -1;
	}
	return 0;
}

static int
keys_cleanup(void)
{
	char path[300];
	const char *names[] = { "rsa.pem", "rsa2.pem", "ed.pem", "small.pem",
	    "junk.pem", "again.pem" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	buf_free(&rsa_txt);
	buf_free(&rsa2_txt);
	buf_free(&ed_txt);
	return 0;
}

static void
test_key_files(void)
{
	struct dkim_key *k = NULL;
	struct buf txt;
	struct stat st;
	char err[300], path[300];
	gnutls_x509_privkey_t x;
	gnutls_datum_t pem;
	FILE *f;

	CU_ASSERT_EQUAL(stat(rsa_path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	CU_ASSERT(strncmp(rsa_txt.data, "v=DKIM1; k=rsa; p=MII", 21) == 0);
	CU_ASSERT(strncmp(ed_txt.data, "v=DKIM1; k=ed25519; p=", 22) == 0);
	CU_ASSERT_EQUAL(strlen(ed_txt.data), 22 + 44);

	/* Loading gives back the same public key. */
	CU_ASSERT_EQUAL_FATAL(dkim_key_load(ed_path, "Example.COM", "ed", &k, err,
	    sizeof err), 0);
	CU_ASSERT_EQUAL(dkim_key_alg(k), DKIM_ALG_ED25519_SHA256);
	CU_ASSERT_STRING_EQUAL(dkim_key_domain(k), "example.com");
	buf_init(&txt, 8192);
	CU_ASSERT_EQUAL(dkim_key_txt_record(k, &txt), 0);
	CU_ASSERT_STRING_EQUAL(txt.data, ed_txt.data);
	dkim_key_free(&k);
	CU_ASSERT_PTR_NULL(k);
	CU_ASSERT_EQUAL(dkim_key_load(rsa_path, "example.com", "rsa", &k, err,
	    sizeof err), 0);
	CU_ASSERT_EQUAL(dkim_key_alg(k), DKIM_ALG_RSA_SHA256);
	CU_ASSERT_EQUAL(dkim_key_txt_record(k, &txt), 0);
	CU_ASSERT_STRING_EQUAL(txt.data, rsa_txt.data);
	dkim_key_free(&k);
	buf_free(&txt);

	/* An existing file is never overwritten. */
	buf_init(&txt, 8192);
	CU_ASSERT_EQUAL(dkim_keygen(DKIM_ALG_ED25519_SHA256, rsa_path, &txt, err,
	    sizeof err), -1);
	CU_ASSERT(strstr(err, "exists") != NULL);
	buf_free(&txt);

	/* Refusals: no file, not a key, bad names, RSA under 2048 bits. */
	CU_ASSERT_EQUAL(dkim_key_load("/nonexistent/k.pem", "example.com", "s",
	    &k, err, sizeof err), -1);
	CU_ASSERT_PTR_NULL(k);
	snprintf(path, sizeof path, "%s/junk.pem", tmpdir);
	f = fopen(path, "w");
	fputs("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", f);
	fclose(f);
	CU_ASSERT_EQUAL(dkim_key_load(path, "example.com", "s", &k, err,
	    sizeof err), -1);
	CU_ASSERT_EQUAL(dkim_key_load(rsa_path, "example", "s", &k, err,
	    sizeof err), -1);
	CU_ASSERT_EQUAL(dkim_key_load(rsa_path, "example.com", "a/b", &k, err,
	    sizeof err), -1);
	CU_ASSERT_EQUAL(dkim_key_load(rsa_path, "example.com", NULL, &k, err,
	    sizeof err), -1);
	snprintf(path, sizeof path, "%s/small.pem", tmpdir);
	gnutls_x509_privkey_init(&x);
	gnutls_x509_privkey_generate(x, GNUTLS_PK_RSA, 1024, 0);
	gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN, &pem);
	f = fopen(path, "w");
	fwrite(pem.data, 1, pem.size, f);
	fclose(f);
	gnutls_free(pem.data);
	gnutls_x509_privkey_deinit(x);
	CU_ASSERT_EQUAL(dkim_key_load(path, "example.com", "s", &k, err,
	    sizeof err), -1);
	CU_ASSERT(strstr(err, "1024") != NULL);
	CU_ASSERT_PTR_NULL(k);
}

/* ---- signing and verifying ---- */

static const char message[] =
	"Received: from client.example (client.example [192.0.2.1])\r\n"
	"\tby mx.example.com; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	"From: Alice <alice@example.com>\r\n"
	"To: Bob <bob@example.net>\r\n"
	"Subject: Quarterly   numbers\r\n"
	"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	"Message-ID: <q1@example.com>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"Hello Bob,\r\n"
	"\r\n"
	"the numbers are   up.\t \r\n"
	"\r\n"
	"\r\n";

#define NOW 1700000000

static struct auth_dns *
key_zone(const char *rsa, const char *ed)
{
	struct auth_dns *d = auth_dns_table_new();

	if (rsa != NULL)
		auth_dns_table_add(d, "rsa._domainkey.example.com", "TXT", rsa,
		    strlen(rsa));
	if (ed != NULL)
		auth_dns_table_add(d, "ed._domainkey.example.com", "TXT", ed,
		    strlen(ed));
	return d;
}

/* Signs msg with the keys named ("rsa", "ed"), returns the signed text. */
static char *
sign(const char *msg, const char *which, time_t now, unsigned expire)
{
	struct dkim_key *keys[2];
	struct dkim_sign_opts o = { .now = now, .expire_s = expire };
	struct dkim_signer *s;
	struct buf out;
	size_t n = 0;
	char err[300];

	if (strstr(which, "rsa") != NULL)
		CU_ASSERT_EQUAL(dkim_key_load(rsa_path, "example.com", "rsa",
		    &keys[n++], err, sizeof err), 0);
	if (strstr(which, "ed") != NULL)
		CU_ASSERT_EQUAL(dkim_key_load(ed_path, "example.com", "ed",
		    &keys[n++], err, sizeof err), 0);
	s = dkim_signer_new(&o);
	dkim_signer_update(s, msg, strlen(msg));
	buf_init(&out, 1 << 20);
	CU_ASSERT_EQUAL(dkim_signer_finish(s, keys, n, &out, err, sizeof err), 0);
	buf_puts(&out, msg);
	dkim_signer_free(&s);
	for (size_t i = 0; i < n; i++)
		dkim_key_free(&keys[i]);
	return buf_steal(&out, NULL);
}

static void
verify(const char *msg, const struct auth_dns *d, time_t now, size_t step,
    struct dkim_results *res)
{
	struct dkim_verify_opts o = { .now = now };
	struct dkim_verifier *v = dkim_verifier_new(&o);
	size_t n = strlen(msg);

	for (size_t i = 0; i < n; i += step)
		dkim_verifier_update(v, msg + i, n - i < step ? n - i : step);
	dkim_verifier_finish(v, d, res);
	dkim_verifier_free(&v);
}

static void
test_sign_verify(void)
{
	struct auth_dns *d = key_zone(rsa_txt.data, ed_txt.data);
	struct dkim_results res;
	char *signed_msg = sign(message, "rsa ed", NOW, 0);

	CU_ASSERT(strncmp(signed_msg, "DKIM-Signature: v=1; a=rsa-sha256; "
	    "c=relaxed/relaxed; d=example.com;", 60) == 0);
	CU_ASSERT(strstr(signed_msg, "a=ed25519-sha256") != NULL);
	CU_ASSERT(strstr(signed_msg, "h=from:from:to:to:subject:subject:date:"
	    "date:") != NULL);
	CU_ASSERT(strstr(signed_msg, "t=1700000000;") != NULL);
	CU_ASSERT(strstr(signed_msg, "received") == NULL);
	/* Every line of the fields fits in 78 columns. */
	for (const char *p = signed_msg; *p && strncmp(p, "Received", 8); ) {
		const char *e = strstr(p, "\r\n");
		CU_ASSERT(e != NULL && e - p <= 78);
		p = e + 2;
	}
	/* Any chunking verifies the same. */
	for (size_t step = 1; step <= 4096; step *= 8) {
		verify(signed_msg, d, NOW + 10, step, &res);
		CU_ASSERT_EQUAL_FATAL(res.n, 2);
		CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PASS);
		CU_ASSERT_EQUAL(res.sig[0].alg, DKIM_ALG_RSA_SHA256);
		CU_ASSERT_EQUAL(res.sig[1].result, DKIM_PASS);
		CU_ASSERT_EQUAL(res.sig[1].alg, DKIM_ALG_ED25519_SHA256);
	}
	CU_ASSERT_STRING_EQUAL(res.sig[0].domain, "example.com");
	CU_ASSERT_STRING_EQUAL(res.sig[0].selector, "rsa");
	CU_ASSERT_STRING_EQUAL(res.sig[0].auid, "@example.com");
	CU_ASSERT_EQUAL(strlen(res.sig[0].b_prefix), 12);
	CU_ASSERT_EQUAL(res.sig[0].length, -1);
	free(signed_msg);

	/* A message with bare LF signs and verifies like its CRLF form. */
	signed_msg = sign("From: a@example.com\nSubject: x\n\nbody\n", "ed", NOW, 0);
	verify(signed_msg, d, NOW, 7, &res);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PASS);
	free(signed_msg);
	auth_dns_free(&d);
}

/* The fields a submission server adds are signed as if the message had
 * them at the end of its header section; the keyring picks the keys. */
static void
test_added_fields_and_keyring(void)
{
	static const char head[] = "From: a@example.com\r\nSubject: x\r\n";
	static const char added[] = "Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
	    "Message-ID: <m1@example.com>\r\n";
	static const char body[] = "\r\nbody\r\n";
	struct dkim_keyring *kr = dkim_keyring_new();
	struct dkim_key *keys[DKIM_KEYRING_PER_DOMAIN];
	struct auth_dns *d = key_zone(rsa_txt.data, ed_txt.data);
	struct dkim_signer *s = dkim_signer_new(NULL);
	struct dkim_results res;
	struct buf out;
	char err[300];
	size_t n;

	CU_ASSERT_EQUAL(dkim_keyring_add(kr, "Example.COM", "rsa", rsa_path, err,
	    sizeof err), 0);
	CU_ASSERT_EQUAL(dkim_keyring_add(kr, "example.com", "ed", ed_path, err,
	    sizeof err), 0);
	CU_ASSERT_EQUAL(dkim_keyring_add(kr, "example.org", "x", "/nonexistent",
	    err, sizeof err), -1);
	CU_ASSERT_EQUAL(dkim_keyring_count(kr), 1);
	CU_ASSERT_EQUAL(dkim_keyring_find(kr, "sub.example.com", keys), 0);
	CU_ASSERT_EQUAL(dkim_keyring_find(kr, NULL, keys), 0);
	n = dkim_keyring_find(kr, "EXAMPLE.com.", keys);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_EQUAL(dkim_key_alg(keys[0]), DKIM_ALG_RSA_SHA256);
	CU_ASSERT_EQUAL(dkim_key_alg(keys[1]), DKIM_ALG_ED25519_SHA256);
	for (int i = 0; i < 2; i++)
		CU_ASSERT_EQUAL(dkim_keyring_add(kr, "example.com", "more", ed_path, err,
		    sizeof err), 0);
	CU_ASSERT_EQUAL(dkim_keyring_add(kr, "example.com", "more", ed_path, err,
	    sizeof err), -1);

	dkim_signer_update(s, head, strlen(head));
	dkim_signer_update(s, body, strlen(body));
	dkim_signer_add_fields(s, added, strlen(added));
	buf_init(&out, 1 << 16);
	CU_ASSERT_EQUAL(dkim_signer_finish(s, keys, n, &out, err, sizeof err), 0);
	{
		char flat[4096];
		size_t k = 0;

		for (const char *p = out.data; *p && k + 1 < sizeof flat; p++)
			if (*p != '\r' && *p != '\n' && *p != '\t' && *p != ' ')
				flat[k++] = *p;
		flat[k] = '\0';
		CU_ASSERT(strstr(flat, "date:date:message-id:message-id") != NULL);
	}
	buf_puts(&out, head);
	buf_puts(&out, added);
	buf_puts(&out, body);
	verify(out.data, d, 0, 5, &res);
	CU_ASSERT_EQUAL_FATAL(res.n, 2);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PASS);
	CU_ASSERT_EQUAL(res.sig[1].result, DKIM_PASS);
	buf_free(&out);
	dkim_signer_free(&s);
	/* another reference (a reload keeping the keys) outlives the first */
	struct dkim_keyring *kept = dkim_keyring_ref(kr);
	struct dkim_key *found[DKIM_KEYRING_PER_DOMAIN];

	dkim_keyring_free(&kr);
	CU_ASSERT_PTR_NULL(kr);
	CU_ASSERT_EQUAL(dkim_keyring_find(kept, "example.com", found), 4);
	dkim_keyring_free(&kept);
	dkim_keyring_free(&kr);	/* NULL is fine */
	auth_dns_free(&d);
}

/* Changes in transit that relaxed/relaxed absorbs, and ones it does not. */
static void
test_transit(void)
{
	static const struct {
		const char *from, *to;
		enum dkim_status st;
	} edits[] = {
		{ "Subject: Quarterly   numbers\r\n",
		  "Subject:  Quarterly\r\n\t numbers  \r\n", DKIM_ST_OK },
		{ "To: Bob <bob@example.net>\r\n",
		  "to : Bob\r\n  <bob@example.net>\r\n", DKIM_ST_OK },
		{ "up.\t \r\n", "up.\r\n", DKIM_ST_OK },
		{ "are   up", "are up", DKIM_ST_OK },
		{ "Hello Bob,\r\n", "Hello Bob,   \r\n", DKIM_ST_OK },
		{ "up.\t \r\n\r\n\r\n", "up.\r\n\r\n\r\n\r\n\r\n", DKIM_ST_OK },
		{ "Received: from", "X-Added: 1\r\nReceived: from", DKIM_ST_OK },
		{ "are   up", "are down", DKIM_ST_BODY_HASH },
		{ "Hello Bob,", "Hello  Bob,\r\nP.S.", DKIM_ST_BODY_HASH },
		{ "Quarterly", "Yearly", DKIM_ST_SIGNATURE },
		{ "alice@example.com", "mallory@example.com", DKIM_ST_SIGNATURE },
		{ "Message-ID: <q1@example.com>\r\n",
		  "Message-ID: <q1@example.com>\r\nFrom: x@evil.example\r\n",
		  DKIM_ST_SIGNATURE },
		{ "MIME-Version: 1.0\r\n", "MIME-Version: 1.0\r\nCc: eve@x.example\r\n",
		  DKIM_ST_OK },
		{ "MIME-Version: 1.0\r\n", "MIME-Version: 1.0\r\nTo: eve@x.example\r\n",
		  DKIM_ST_SIGNATURE },
	};
	struct auth_dns *d = key_zone(rsa_txt.data, ed_txt.data);
	char *signed_msg = sign(message, "rsa ed", NOW, 0);

	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		const char *at = strstr(signed_msg, edits[i].from);
		struct dkim_results res;
		struct buf m;
		CU_ASSERT_PTR_NOT_NULL_FATAL(at);
		buf_init(&m, 1 << 20);
		buf_append(&m, signed_msg, (size_t)(at - signed_msg));
		buf_puts(&m, edits[i].to);
		buf_puts(&m, at + strlen(edits[i].from));
		verify(m.data, d, NOW, 100, &res);
		CU_ASSERT_EQUAL(res.n, 2);
		for (size_t k = 0; k < res.n; k++) {
			if (res.sig[k].status != edits[i].st)
				printf("\nedit %zu sig %zu: %s (%s)\n", i, k,
				    dkim_result_name(res.sig[k].result),
				    res.sig[k].reason);
			CU_ASSERT_EQUAL(res.sig[k].status, edits[i].st);
			CU_ASSERT_EQUAL(res.sig[k].result, edits[i].st == DKIM_ST_OK ?
			    DKIM_PASS : DKIM_FAIL);
		}
		buf_free(&m);
	}
	free(signed_msg);
	auth_dns_free(&d);
}

static void
test_key_failures(void)
{
	char *signed_msg = sign(message, "rsa ed", NOW, 3600);
	struct dkim_results res;
	struct auth_dns *d;

	/* The wrong key: another RSA key, and an Ed25519 key for RSA. */
	d = key_zone(rsa2_txt.data, ed_txt.data);
	verify(signed_msg, d, NOW, 512, &res);
	CU_ASSERT_EQUAL(res.sig[0].status, DKIM_ST_SIGNATURE);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_FAIL);
	CU_ASSERT_STRING_EQUAL(res.sig[0].reason, "signature did not verify");
	CU_ASSERT_EQUAL(res.sig[1].result, DKIM_PASS);
	auth_dns_free(&d);
	d = key_zone(ed_txt.data, "v=DKIM1; k=ed25519; p=");
	verify(signed_msg, d, NOW, 512, &res);
	CU_ASSERT_EQUAL(res.sig[0].status, DKIM_ST_KEY_ALG);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PERMERROR);
	/* Revoked. */
	CU_ASSERT_EQUAL(res.sig[1].status, DKIM_ST_KEY_REVOKED);
	CU_ASSERT_EQUAL(res.sig[1].result, DKIM_PERMERROR);
	CU_ASSERT(strstr(res.sig[1].reason, "key revoked") != NULL);
	auth_dns_free(&d);
	/* No key, a broken key, a DNS failure. */
	d = key_zone(NULL, "v=DKIM1; k=ed25519; p=AAAA");
	auth_dns_table_add(d, "rsa._domainkey.example.com", "TEMP", "", 0);
	verify(signed_msg, d, NOW, 512, &res);
	CU_ASSERT_EQUAL(res.sig[0].status, DKIM_ST_KEY_UNAVAILABLE);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_TEMPERROR);
	CU_ASSERT_EQUAL(res.sig[1].status, DKIM_ST_KEY_SYNTAX);
	auth_dns_free(&d);
	d = key_zone(NULL, NULL);
	verify(signed_msg, d, NOW, 512, &res);
	CU_ASSERT_EQUAL(res.sig[0].status, DKIM_ST_KEY_NONE);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PERMERROR);
	auth_dns_free(&d);

	/* Time: expired after x=, and a t= far ahead of our clock. */
	d = key_zone(rsa_txt.data, ed_txt.data);
	verify(signed_msg, d, NOW + 3601, 512, &res);
	CU_ASSERT_EQUAL(res.sig[0].status, DKIM_ST_SIG_EXPIRED);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PERMERROR);
	CU_ASSERT_EQUAL(res.sig[1].status, DKIM_ST_SIG_EXPIRED);
	verify(signed_msg, d, NOW + 3600, 512, &res);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PASS);
	verify(signed_msg, d, NOW - 301, 512, &res);
	CU_ASSERT_EQUAL(res.sig[0].status, DKIM_ST_SIG_FUTURE);
	verify(signed_msg, d, NOW - 299, 512, &res);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PASS);

	/* Key flags: testing is noted, t=s refuses an i= in a subdomain. */
	auth_dns_free(&d);
	{
		struct buf k;
		buf_init(&k, 8192);
		buf_printf(&k, "v=DKIM1; t=y:s; %s", strstr(ed_txt.data, "k="));
		d = key_zone(rsa_txt.data, k.data);
		buf_free(&k);
	}
	verify(signed_msg, d, NOW, 512, &res);
	CU_ASSERT_EQUAL(res.sig[1].result, DKIM_PASS);
	CU_ASSERT_EQUAL(res.sig[1].testing, 1);
	CU_ASSERT_EQUAL(res.sig[0].testing, 0);
	auth_dns_free(&d);
	free(signed_msg);
}

/* A TXT record of an RSA public key with a random modulus of mbytes and
 * a public exponent of ebytes (odd, top bit set; 3: 65537) into out. */
static void
rsa_raw_txt(size_t mbytes, size_t ebytes, struct buf *out)
{
	uint8_t m[2048], e[1024];
	gnutls_datum_t dm = { m, (unsigned)mbytes }, de = { e, (unsigned)ebytes };
	gnutls_datum_t der = { NULL, 0 };
	gnutls_pubkey_t pub;

	CU_ASSERT_FATAL(mbytes <= sizeof m && ebytes <= sizeof e);
	gnutls_rnd(GNUTLS_RND_NONCE, m, mbytes);
	gnutls_rnd(GNUTLS_RND_NONCE, e, ebytes);
	m[0] |= 0x80;
	m[mbytes - 1] |= 1;
	e[0] |= 0x80;
	e[ebytes - 1] |= 1;
	if (ebytes == 3)
		memcpy(e, "\x01\x00\x01", 3);
	CU_ASSERT_FATAL(gnutls_pubkey_init(&pub) == 0);
	CU_ASSERT_FATAL(gnutls_pubkey_import_rsa_raw(pub, &dm, &de) == 0);
	CU_ASSERT_FATAL(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der) == 0);
	buf_reset(out);
	buf_puts(out, "v=DKIM1; k=rsa; p=");
	CU_ASSERT(dkim_base64_encode(der.data, der.size, out) == 0);
	gnutls_free(der.data);
	gnutls_pubkey_deinit(pub);
}

/* Keys whose cost the sender chose: an exponent of thousands of bits on
 * a large modulus takes seconds per signature; over the limits they are
 * refused without trying. */
static void
test_key_cost_limits(void)
{
	static const struct {
		size_t mbytes, ebytes;
		enum dkim_status st;
	} cases[] = {
		{ 256, 3, DKIM_ST_SIGNATURE },		/* 2048 bits, 65537 */
		{ 256, 8, DKIM_ST_SIGNATURE },		/* a 64-bit exponent */
		{ 256, 9, DKIM_ST_KEY_LIMIT },
		{ 256, 400, DKIM_ST_KEY_LIMIT },
		{ 1024, 1000, DKIM_ST_KEY_LIMIT },	/* 8192 bits: seconds */
		{ 1024, 3, DKIM_ST_SIGNATURE },
		{ 1032, 3, DKIM_ST_KEY_LIMIT },		/* over 8192 bits */
		{ 2040, 3, DKIM_ST_KEY_LIMIT },
	};
	char *signed_msg = sign(message, "rsa", NOW, 0);
	struct dkim_results res;
	struct buf txt;

	buf_init(&txt, 8192);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct auth_dns *d;
		rsa_raw_txt(cases[i].mbytes, cases[i].ebytes, &txt);
		d = key_zone(txt.data, NULL);
		verify(signed_msg, d, NOW, 4096, &res);
		if (res.sig[0].status != cases[i].st)
			printf("\n%zu/%zu: %s\n", cases[i].mbytes, cases[i].ebytes,
			    res.sig[0].reason);
		CU_ASSERT_EQUAL(res.sig[0].status, cases[i].st);
		CU_ASSERT_EQUAL(res.sig[0].result, cases[i].st == DKIM_ST_SIGNATURE ?
		    DKIM_FAIL : DKIM_PERMERROR);
		auth_dns_free(&d);
	}
	CU_ASSERT(strstr(res.sig[0].reason, "key outside our limits") != NULL);
	buf_free(&txt);
	free(signed_msg);
}

/* A DNS that answers from a table after a pause: the sender's slow
 * name servers. */
struct slow_dns {
	struct auth_dns *table;
	unsigned delay_ms;
};

static void
slow_lookup(void *ctx, const char *name, enum auth_dns_type type,
    struct auth_dns_answer *ans)
{
	struct slow_dns *sd = ctx;

	usleep(sd->delay_ms * 1000);
	auth_dns_lookup(sd->table, name, type, ans);
}

static void
slow_free(void *ctx)
{
	(void)ctx;
}

/* No key lookup begins past the time limit: the signatures whose turn
 * comes later get temperror, the ones before keep their result. */
static void
test_verify_time_limit(void)
{
	static const struct auth_dns_ops slow_ops = { slow_lookup, slow_free };
	char *once = sign(message, "rsa ed", NOW, 0);
	char *twice = sign(once, "rsa ed", NOW, 0);
	struct slow_dns sd = { key_zone(rsa_txt.data, ed_txt.data), 300 };
	struct auth_dns dns = { &slow_ops, &sd };
	struct dkim_verify_opts o = { .now = NOW, .time_limit_ms = 450 };
	struct dkim_verifier *v = dkim_verifier_new(&o);
	struct dkim_results res;
	int64_t t0 = time_mono_ms();

	dkim_verifier_update(v, twice, strlen(twice));
	dkim_verifier_finish(v, &dns, &res);
	CU_ASSERT(time_mono_ms() - t0 < 3000);	/* two lookups */
	CU_ASSERT_EQUAL(res.n, 4);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PASS);	/* at 0 ms */
	CU_ASSERT_EQUAL(res.sig[1].result, DKIM_PASS);	/* at 300 ms */
	CU_ASSERT_EQUAL(res.sig[2].result, DKIM_TEMPERROR);	/* at 600 */
	CU_ASSERT_EQUAL(res.sig[2].status, DKIM_ST_KEY_UNAVAILABLE);
	CU_ASSERT(strstr(res.sig[2].reason, "time limit") != NULL);
	CU_ASSERT_EQUAL(res.sig[3].result, DKIM_TEMPERROR);
	dkim_verifier_free(&v);
	auth_dns_free(&sd.table);
	free(once);
	free(twice);
}

static void
test_verify_limits(void)
{
	struct dkim_verify_opts o = { .now = NOW, .max_signatures = 3 };
	struct dkim_verifier *v;
	struct dkim_results res;
	struct auth_dns *d = key_zone(rsa_txt.data, ed_txt.data);
	char *signed_msg = sign(message, "ed", NOW, 0);
	struct buf m;

	/* No signature: none. */
	verify(message, d, NOW, 64, &res);
	CU_ASSERT_EQUAL(res.n, 0);

	/* Five signatures, three verified, two ignored. */
	buf_init(&m, 1 << 20);
	for (int i = 0; i < 4; i++)
		buf_append(&m, signed_msg, (size_t)(strstr(signed_msg, "Received")
		    - signed_msg));
	buf_puts(&m, signed_msg);
	v = dkim_verifier_new(&o);
	dkim_verifier_update(v, m.data, m.len);
	dkim_verifier_finish(v, d, &res);
	CU_ASSERT_EQUAL(res.n, 3);
	CU_ASSERT_EQUAL(res.ignored, 2);
	for (size_t i = 0; i < res.n; i++)
		CU_ASSERT_EQUAL(res.sig[i].result, DKIM_PASS);
	dkim_verifier_free(&v);
	buf_free(&m);

	/* A header section past the bound. */
	o.max_header_bytes = 300;
	v = dkim_verifier_new(&o);
	dkim_verifier_update(v, signed_msg, strlen(signed_msg));
	dkim_verifier_finish(v, d, &res);
	CU_ASSERT_EQUAL_FATAL(res.n, 1);
	CU_ASSERT_EQUAL(res.sig[0].status, DKIM_ST_HEADERS_TOO_LARGE);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PERMERROR);
	dkim_verifier_free(&v);

	/* A broken signature field among good ones. */
	buf_init(&m, 1 << 20);
	buf_puts(&m, "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; "
	    "h=to; bh=x; b=y\r\n");
	buf_puts(&m, signed_msg);
	verify(m.data, d, NOW, 64, &res);
	CU_ASSERT_EQUAL_FATAL(res.n, 2);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PERMERROR);
	CU_ASSERT_EQUAL(res.sig[0].status, DKIM_ST_SIG_FROM);
	CU_ASSERT_EQUAL(res.sig[1].result, DKIM_PASS);
	buf_free(&m);

	/* Only headers, no empty line: the body is empty. */
	free(signed_msg);
	signed_msg = sign("From: a@example.com\r\nSubject: s\r\n", "ed", NOW, 0);
	verify(signed_msg, d, NOW, 3, &res);
	CU_ASSERT_EQUAL(res.sig[0].result, DKIM_PASS);
	CU_ASSERT_EQUAL(res.sig[0].body_length, 0);
	free(signed_msg);
	auth_dns_free(&d);
}

static void
test_sign_errors(void)
{
	struct dkim_key *k;
	struct dkim_signer *s;
	struct dkim_sign_opts o = { .max_header_bytes = 100 };
	struct buf out;
	char err[300];

	CU_ASSERT_EQUAL_FATAL(dkim_key_load(ed_path, "example.com", "ed", &k, err,
	    sizeof err), 0);
	buf_init(&out, 1 << 16);
	s = dkim_signer_new(NULL);
	dkim_signer_update(s, "To: b@example.net\r\n\r\nno author\r\n", 32);
	CU_ASSERT_EQUAL(dkim_signer_finish(s, &k, 1, &out, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "From") != NULL);
	CU_ASSERT_EQUAL(out.len, 0);
	dkim_signer_free(&s);
	s = dkim_signer_new(&o);
	dkim_signer_update(s, message, strlen(message));
	CU_ASSERT_EQUAL(dkim_signer_finish(s, &k, 1, &out, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "header section") != NULL);
	dkim_signer_free(&s);
	/* 1 to 4 keys */
	{
		struct dkim_key *five[5] = { k, k, k, k, k };
		s = dkim_signer_new(NULL);
		dkim_signer_update(s, message, strlen(message));
		CU_ASSERT_EQUAL(dkim_signer_finish(s, five, 5, &out, err,
		    sizeof err), -1);
		dkim_signer_free(&s);
		s = dkim_signer_new(NULL);
		CU_ASSERT_EQUAL(dkim_signer_finish(s, five, 0, &out, err,
		    sizeof err), -1);
		dkim_signer_free(&s);
		CU_ASSERT_EQUAL(out.len, 0);
	}
	/* The header section, to pick keys by the From domain. */
	{
		const char *h;
		size_t hl;
		char from[256];
		s = dkim_signer_new(NULL);
		dkim_signer_update(s, message, 200);
		dkim_signer_update(s, message + 200, strlen(message) - 200);
		h = dkim_signer_headers(s, &hl);
		CU_ASSERT_EQUAL(auth_header_from_domain(h, hl, from, sizeof from), 0);
		CU_ASSERT_STRING_EQUAL(from, "example.com");
		CU_ASSERT_EQUAL(dkim_signer_finish(s, &k, 1, &out, err,
		    sizeof err), 0);
		CU_ASSERT(strncmp(out.data, "DKIM-Signature: ", 16) == 0);
		dkim_signer_free(&s);
	}
	dkim_key_free(&k);
	buf_free(&out);
}

/* One key, four threads signing at once (the key's mutex). */
struct sign_arg {
	struct dkim_key *key;
	const struct auth_dns *dns;
	int bad;
};

static void *
sign_thread(void *p)
{
	struct sign_arg *a = p;

	for (int i = 0; i < 20; i++) {
		struct dkim_signer *s = dkim_signer_new(NULL);
		struct dkim_results res;
		struct buf out;
		char err[200];
		buf_init(&out, 1 << 20);
		dkim_signer_update(s, message, strlen(message));
		if (dkim_signer_finish(s, &a->key, 1, &out, err, sizeof err) != 0)
			__atomic_add_fetch(&a->bad, 1, __ATOMIC_RELAXED);
		buf_puts(&out, message);
		verify(out.data, a->dns, 0, 4096, &res);
		if (res.n != 1 || res.sig[0].result != DKIM_PASS)
			__atomic_add_fetch(&a->bad, 1, __ATOMIC_RELAXED);
		dkim_signer_free(&s);
		buf_free(&out);
	}
	return NULL;
}

static void
test_threads(void)
{
	struct sign_arg a = { .bad = 0 };
	struct auth_dns *d = key_zone(rsa_txt.data, ed_txt.data);
	pthread_t t[4];
	char err[300];

	CU_ASSERT_EQUAL_FATAL(dkim_key_load(ed_path, "example.com", "ed", &a.key,
	    err, sizeof err), 0);
	a.dns = d;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, sign_thread, &a);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CU_ASSERT_EQUAL(a.bad, 0);
	dkim_key_free(&a.key);
	auth_dns_free(&d);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("dkim_parse", NULL, NULL);
	CU_add_test(s, "tag lists", test_taglist);
	CU_add_test(s, "tag values, lenient lists", test_taglist_values);
	CU_add_test(s, "body canonicalization", test_body_canon);
	CU_add_test(s, "body length limit", test_body_limit);
	CU_add_test(s, "header canonicalization", test_header_canon);
	CU_add_test(s, "header hash input", test_header_input);
	CU_add_test(s, "signature fields table", test_sig_parse);
	CU_add_test(s, "signature fields", test_sig_fields);
	CU_add_test(s, "key records", test_keyrec_parse);
	s = CU_add_suite("dkim_keys", keys_setup, keys_cleanup);
	CU_add_test(s, "key files", test_key_files);
	CU_add_test(s, "sign and verify", test_sign_verify);
	CU_add_test(s, "added fields, keyring", test_added_fields_and_keyring);
	CU_add_test(s, "changes in transit", test_transit);
	CU_add_test(s, "key and time failures", test_key_failures);
	CU_add_test(s, "verifier limits", test_verify_limits);
	CU_add_test(s, "key cost limits", test_key_cost_limits);
	CU_add_test(s, "verifier time limit", test_verify_time_limit);
	CU_add_test(s, "signing errors", test_sign_errors);
	CU_add_test(s, "threads", test_threads);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
