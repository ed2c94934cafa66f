/*
 * test_authres: auth/authres and auth/header: the Authentication-Results
 * field built from outcomes (exact text, and hostile values that must not
 * break it), recognising and stripping fields that claim our
 * authserv-id, the header field walker, the From: author's domain, and
 * the message splitter fed in every chunking.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/authres.h"
#include "auth/header.h"
#include "lib/buf.h"
#include "lib/util.h"

static void
test_build(void)
{
	struct spf_outcome spf;
	struct dkim_results dk;
	struct dmarc_outcome dm;
	struct authres_input in = { .authserv_id = "mx.example.org" };
	struct buf b;

	memset(&spf, 0, sizeof spf);
	memset(&dk, 0, sizeof dk);
	memset(&dm, 0, sizeof dm);
	buf_init(&b, 8192);
	CU_ASSERT_EQUAL(authres_build(&in, &b), 0);
	CU_ASSERT_STRING_EQUAL(b.data,
	    "Authentication-Results: mx.example.org; none\r\n");

	spf.result = SPF_PASS;
	str_copy(spf.sender, "alice@example.com", sizeof spf.sender);
	str_copy(spf.mechanism, "ip4:192.0.2.0/24", sizeof spf.mechanism);
	dk.n = 1;
	dk.sig[0].result = DKIM_PASS;
	dk.sig[0].alg = DKIM_ALG_ED25519_SHA256;
	dk.sig[0].length = -1;
	str_copy(dk.sig[0].domain, "example.com", sizeof dk.sig[0].domain);
	str_copy(dk.sig[0].selector, "ed", sizeof dk.sig[0].selector);
	str_copy(dk.sig[0].b_prefix, "AbC+/de=", sizeof dk.sig[0].b_prefix);
	str_copy(dk.sig[0].reason, "good signature", sizeof dk.sig[0].reason);
	dm.result = DMARC_PASS;
	dm.record.p = dm.record.sp = DMARC_P_REJECT;
	dm.record.pct = 100;
	str_copy(dm.from_domain, "example.com", sizeof dm.from_domain);
	in.spf = &spf;
	in.dkim = &dk;
	in.dmarc = &dm;
	buf_reset(&b);
	CU_ASSERT_EQUAL(authres_build(&in, &b), 0);
	CU_ASSERT_STRING_EQUAL(b.data,
	    "Authentication-Results: mx.example.org;\r\n"
	    "\tspf=pass (matched ip4:192.0.2.0/24) smtp.mailfrom=alice@example.com;\r\n"
	    "\tdkim=pass\r\n"
	    "\t header.d=example.com header.s=ed header.a=ed25519-sha256 "
	    "header.b=AbC+/de=;\r\n"
	    "\tdmarc=pass (p=reject sp=reject pct=100 dis=none) "
	    "header.from=example.com\r\n");

	/* l= and failures carry their reason in a comment. */
	dk.sig[0].result = DKIM_FAIL;
	str_copy(dk.sig[0].reason, "body hash did not verify",
	    sizeof dk.sig[0].reason);
	spf.result = SPF_PERMERROR;
	str_copy(spf.problem, "2 SPF records at example.com", sizeof spf.problem);
	in.dmarc = NULL;
	buf_reset(&b);
	CU_ASSERT_EQUAL(authres_build(&in, &b), 0);
	CU_ASSERT(strstr(b.data, "spf=permerror (2 SPF records at example.com)")
	    != NULL);
	CU_ASSERT(strstr(b.data, "dkim=fail (body hash did not verify)") != NULL);
	CU_ASSERT(strstr(b.data, "dmarc=") == NULL);

	/* No signature at all. */
	dk.n = 0;
	buf_reset(&b);
	CU_ASSERT_EQUAL(authres_build(&in, &b), 0);
	CU_ASSERT(strstr(b.data, "dkim=none") != NULL);
	buf_free(&b);
}

/* Hostile values: nothing may end the field or add one. */
static void
test_build_hostile(void)
{
	struct spf_outcome spf;
	struct dkim_results dk;
	struct authres_input in = { .authserv_id = "mx.example.org", .spf = &spf,
	    .dkim = &dk };
	struct buf b;

	memset(&spf, 0, sizeof spf);
	memset(&dk, 0, sizeof dk);
	spf.result = SPF_FAIL;
	str_copy(spf.sender, "\"a;b\\\"\r\nBcc: x\"@example.com", sizeof spf.sender);
	str_copy(spf.mechanism, "-all) (\r\nX-Evil: 1", sizeof spf.mechanism);
	dk.n = 1;
	dk.sig[0].result = DKIM_PERMERROR;
	dk.sig[0].length = -1;
	str_copy(dk.sig[0].domain, "ex\"ample.com", sizeof dk.sig[0].domain);
	str_copy(dk.sig[0].selector, "s; dkim=pass", sizeof dk.sig[0].selector);
	str_copy(dk.sig[0].reason, "no key: (((\\", sizeof dk.sig[0].reason);
	buf_init(&b, 8192);
	CU_ASSERT_EQUAL(authres_build(&in, &b), 0);
	/* Every line break is our folding: CRLF then a tab. */
	for (const char *p = b.data; (p = strstr(p, "\r\n")) != NULL; p += 2)
		CU_ASSERT(p[2] == '\t' || p[2] == '\0');
	CU_ASSERT(strstr(b.data, "\nX-Evil") == NULL);
	CU_ASSERT(strstr(b.data, "\nBcc") == NULL);
	CU_ASSERT(strstr(b.data, "header.s=\"s; dkim=pass\"") != NULL);
	CU_ASSERT(strstr(b.data, "header.d=\"ex\\\"ample.com\"") != NULL);
	CU_ASSERT(strstr(b.data, "(no key:     )") != NULL);
	/* A bad authserv-id is refused. */
	in.authserv_id = "mx example";
	CU_ASSERT_EQUAL(authres_build(&in, &b), -1);
	in.authserv_id = "";
	CU_ASSERT_EQUAL(authres_build(&in, &b), -1);
	buf_free(&b);
}

static void
test_ours(void)
{
	static const struct {
		const char *field;
		int ours;
	} cases[] = {
		{ "Authentication-Results: mx.example.org; spf=pass", 1 },
		{ "authentication-results:MX.Example.ORG;none", 1 },
		{ "Authentication-Results: (comment (nested)) mx.example.org 1; x", 1 },
		{ "Authentication-Results:\r\n\tmx.example.org;\r\n\tdkim=pass", 1 },
		{ "Authentication-Results: \"mx.example.org\"; none", 1 },
		{ "Authentication-Results: mx.example.org.evil; none", 0 },
		{ "Authentication-Results: evil.mx.example.org; none", 0 },
		{ "Authentication-Results: other.example; spf=pass", 0 },
		{ "Authentication-Results: ; none", 0 },
		{ "X-Authentication-Results: mx.example.org; none", 0 },
		{ "ARC-Authentication-Results: i=1; mx.example.org; none", 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf h;
		struct auth_field f;
		size_t pos = 0;
		buf_init(&h, 4096);
		buf_printf(&h, "%s\r\n", cases[i].field);
		CU_ASSERT_FATAL(auth_header_next(h.data, h.len, &pos, &f) == 1);
		CU_ASSERT_EQUAL(authres_field_is_ours(&f, "mx.example.org"),
		    cases[i].ours);
		buf_free(&h);
	}
}

static void
test_strip(void)
{
	const char *h =
	    "Received: from x\r\n"
	    "Authentication-Results: mx.example.org; dkim=pass\r\n"
	    "\theader.d=forged.example\r\n"
	    "From: a@example.com\r\n"
	    "Authentication-Results: upstream.example; spf=pass\r\n"
	    "authentication-results: MX.EXAMPLE.ORG; dmarc=pass\r\n"
	    "Subject: s\r\n";
	struct buf out;

	buf_init(&out, 4096);
	CU_ASSERT_EQUAL(authres_strip(h, strlen(h), "mx.example.org", &out), 2);
	CU_ASSERT_STRING_EQUAL(out.data,
	    "Received: from x\r\n"
	    "From: a@example.com\r\n"
	    "Authentication-Results: upstream.example; spf=pass\r\n"
	    "Subject: s\r\n");
	buf_reset(&out);
	CU_ASSERT_EQUAL(authres_strip(h, strlen(h), "nobody.example", &out), 0);
	CU_ASSERT_STRING_EQUAL(out.data, h);
	buf_free(&out);
	buf_init(&out, 10);
	CU_ASSERT_EQUAL(authres_strip(h, strlen(h), "mx.example.org", &out), -1);
	buf_free(&out);
}

/* ---- header fields ---- */

static void
test_fields(void)
{
	const char *h = "From: a@x.example\r\n"
	    " junk continuation\r\n"
	    "Subject : folded\r\n\tline\r\n"
	    "no colon here\r\n"
	    "Bad Name: x\r\n"
	    ": empty name\r\n"
	    "X-Last:tail";
	struct auth_field f;
	size_t pos = 0;

	CU_ASSERT(auth_header_next(h, strlen(h), &pos, &f));
	CU_ASSERT(auth_field_is(&f, "from"));
	CU_ASSERT_EQUAL(f.valuelen, strlen(" a@x.example\r\n junk continuation"));
	CU_ASSERT(auth_header_next(h, strlen(h), &pos, &f));
	CU_ASSERT(auth_field_is(&f, "SUBJECT"));
	CU_ASSERT_EQUAL(f.namelen, 7);
	CU_ASSERT(strncmp(f.value, " folded\r\n\tline", f.valuelen) == 0);
	CU_ASSERT(auth_header_next(h, strlen(h), &pos, &f));
	CU_ASSERT(auth_field_is(&f, "X-Last"));
	CU_ASSERT_EQUAL(f.valuelen, 4);
	CU_ASSERT_EQUAL(f.rawlen, strlen("X-Last:tail"));
	CU_ASSERT_EQUAL(auth_header_next(h, strlen(h), &pos, &f), 0);
}

static void
test_from_domain(void)
{
	static const struct {
		const char *h;
		int rc;
		const char *dom;
	} cases[] = {
		{ "From: Alice <alice@Example.COM>\r\n", 0, "example.com" },
		{ "From: alice@example.com (Alice <x@evil.example>)\r\n", 0,
		  "example.com" },
		{ "From: \"x@evil.example\" <a@good.example>\r\n", 0,
		  "good.example" },
		{ "From: \"Doe, John\" <j@a.example>, b@a.example\r\n", 0,
		  "a.example" },
		{ "From: a@a.example, b@b.example\r\n", -2, NULL },
		{ "From: a@a.example\r\nFrom: a@a.example\r\n", -2, NULL },
		{ "From: Friends: a@f.example, b@f.example;\r\n", 0, "f.example" },
		{ "From: undisclosed-recipients:;\r\n", -3, NULL },
		{ "From: <a@[192.0.2.1]>\r\n", -3, NULL },
		{ "From: Alice <alice@example.com.>\r\n", 0, "example.com" },
		{ "From: nobody\r\n", -3, NULL },
		{ "From:\r\n", -3, NULL },
		/* an encoded word some readers show as ceo@bank.example */
		{ "From: =?utf-8?b?Y2VvQGJhbmsuZXhhbXBsZQ==?=\r\n", -3, NULL },
		{ "From: ceo@bank.example\x01.evil.example\r\n", -3, NULL },
		/* 8-bit: an internationalized address (RFC 6532) */
		{ "From: <jos\xc3\xa9" "@b\xc3\xbc" "cher.example>\r\n", -4, NULL },
		{ "From: <jos\xc3\xa9" "@ascii.example>\r\n", 0, "ascii.example" },
		{ "To: a@b.example\r\n", -1, NULL },
		{ "From:\r\n\t<a@folded.example>\r\n", 0, "folded.example" },
		{ "From: <@route.example:a@real.example>\r\n", 0, "real.example" },
		{ "From: a@exa$mple.com\r\n", -3, NULL },
		{ "From: Mallory <m@evil.example\r\n", -3, NULL },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char dom[256] = "";
		int rc = auth_header_from_domain(cases[i].h, strlen(cases[i].h), dom,
		    sizeof dom);
		if (rc != cases[i].rc)
			printf("\n%s: %d %s\n", cases[i].h, rc, dom);
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc == 0 && cases[i].dom != NULL)
			CU_ASSERT_STRING_EQUAL(dom, cases[i].dom);
	}
	/* a NUL that C-string readers would cut the domain at */
	{
		static const char h[] = "From: ceo@bank.example\0.evil.example\r\n";
		char dom[256];
		CU_ASSERT_EQUAL(auth_header_from_domain(h, sizeof h - 1, dom,
		    sizeof dom), -3);
	}
}

static void
split_case(const char *msg, const char *want_hdr, const char *want_body,
    size_t step, size_t max)
{
	struct auth_split s;
	struct buf h, body;
	size_t n = strlen(msg);

	auth_split_init(&s);
	buf_init(&h, max);
	buf_init(&body, 1 << 16);
	for (size_t i = 0; i < n; i += step) {
		size_t len = n - i < step ? n - i : step;
		size_t k = s.in_body ? 0 : auth_split_feed(&s, msg + i, len, &h);
		if (s.in_body)
			buf_append(&body, msg + i + k, len - k);
	}
	auth_split_end(&s, &h);
	if (max >= 1000) {
		CU_ASSERT_STRING_EQUAL(h.data ? h.data : "", want_hdr);
		CU_ASSERT_EQUAL(s.overflow, 0);
	} else {
		CU_ASSERT_EQUAL(s.overflow, 1);
	}
	CU_ASSERT_STRING_EQUAL(body.data ? body.data : "", want_body);
	buf_free(&h);
	buf_free(&body);
}

static void
test_split(void)
{
	static const struct {
		const char *msg, *hdr, *body;
	} cases[] = {
		{ "A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n", "body\r\n" },
		{ "A: 1\nB: 2\n\nbody\n\n", "A: 1\r\nB: 2\r\n", "body\n\n" },
		{ "A: 1\r\n\nbody", "A: 1\r\n", "body" },
		{ "A: 1\n\r\nbody", "A: 1\r\n", "body" },
		{ "\r\nbody only", "", "body only" },
		{ "A: 1\r\nB: 2", "A: 1\r\nB: 2\r\n", "" },
		{ "A: 1\r\nB: 2\r", "A: 1\r\nB: 2\r\n", "" },
		{ "A: x\ry\r\n\r\n", "A: x\ry\r\n", "" },
		{ "", "", "" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		for (size_t step = 1; step <= 5; step++)
			split_case(cases[i].msg, cases[i].hdr, cases[i].body, step,
			    4096);
	/* Past the bound: flagged, the body still found. */
	split_case("Subject: a long header line\r\n\r\nbody", "", "body", 3, 10);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("authres", NULL, NULL);
	CU_add_test(s, "build", test_build);
	CU_add_test(s, "build with hostile values", test_build_hostile);
	CU_add_test(s, "fields that claim our id", test_ours);
	CU_add_test(s, "strip", test_strip);
	s = CU_add_suite("header", NULL, NULL);
	CU_add_test(s, "fields", test_fields);
	CU_add_test(s, "From domain", test_from_domain);
	CU_add_test(s, "splitter", test_split);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
