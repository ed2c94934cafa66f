/*
 * Unit tests of relay/tls_rpt_mail.c: mailto: URIs of _smtp._tls rua
 * (good and hostile ones), addresses, and the RFC 8460 5.3 report mail:
 * its headers, its MIME parts, CRLF everywhere, and the gzipped JSON that
 * comes back whole.
 */
#include <CUnit/Basic.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lib/buf.h"
#include "relay/tls_rpt_mail.h"

static void
test_mailto(void)
{
	static const struct {
		const char *uri, *addr;	/* addr NULL: refused */
	} cases[] = {
		{ "mailto:reports@example.com", "reports@example.com" },
		{ "MAILTO:Tls.Rpt+x@Example.COM", "Tls.Rpt+x@Example.COM" },
		{ "mailto:a@x.test?subject=hello", "a@x.test" },
		{ "mailto:%61b@x.test", "ab@x.test" },
		{ "mailto:a%40b@x.test", NULL },		/* two '@' */
		{ "mailto:", NULL },
		{ "mailto:a", NULL },
		{ "mailto:a@", NULL },
		{ "mailto:@x.test", NULL },
		{ "mailto:a@x.test.", NULL },
		{ "mailto:a..b@x.test", NULL },
		{ "mailto:.a@x.test", NULL },
		{ "mailto:a.@x.test", NULL },
		{ "mailto:a@b@x.test", NULL },
		{ "mailto:a b@x.test", NULL },
		{ "mailto:a%20b@x.test", NULL },
		{ "mailto:a@x.test%0d%0aBcc:%20c@y.test", NULL },	/* header injection */
		{ "mailto:a%0a@x.test", NULL },
		{ "mailto:a%00@x.test", NULL },
		{ "mailto:a@x.test,b@y.test", NULL },
		{ "mailto:a%2cb@x.test", NULL },
		{ "mailto:a%", NULL },
		{ "mailto:a%4", NULL },
		{ "mailto:a%zz@x.test", NULL },
		{ "mailto:\"a\"@x.test", NULL },
		{ "mailto:<a@x.test>", NULL },
		{ "mailto:a@x..test", NULL },
		{ "mailto:a@[127.0.0.1]", NULL },
		{ "mailto:a\x80@x.test", NULL },
		{ "https://reports.x.test/v1", NULL },
		{ "mailt:a@x.test", NULL },
	};
	char out[TLS_RPT_ADDR_MAX], big[1200];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = tls_rpt_mailto_parse(cases[i].uri, out);
		CU_ASSERT_EQUAL(rc, cases[i].addr ? 0 : -1);
		CU_ASSERT_STRING_EQUAL(out, cases[i].addr ? cases[i].addr : "");
		if ((rc == 0) != (cases[i].addr != NULL))
			fprintf(stderr, "case %zu: %s\n", i, cases[i].uri);
	}
	/* a local part of 65, a domain of 300, an URI of 1200 */
	snprintf(big, sizeof big, "mailto:%065d@x.test", 0);
	CU_ASSERT_EQUAL(tls_rpt_mailto_parse(big, out), -1);
	snprintf(big, sizeof big, "mailto:%064d@x.test", 0);
	CU_ASSERT_EQUAL(tls_rpt_mailto_parse(big, out), 0);
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	memcpy(big, "mailto:a@", 9);
	CU_ASSERT_EQUAL(tls_rpt_mailto_parse(big, out), -1);
	memcpy(big + 7, "%41%41%41", 9);
	CU_ASSERT_EQUAL(tls_rpt_mailto_parse(big, out), -1);
	CU_ASSERT_EQUAL(tls_rpt_addr_valid("postmaster@mx.test"), 1);
	CU_ASSERT_EQUAL(tls_rpt_addr_valid("postmaster"), 0);
	CU_ASSERT_EQUAL(tls_rpt_addr_valid("p\r\nX: y@mx.test"), 0);
}

/* The body of the part after the header line `marker` (to the next
 * boundary line): base64 decoded into out. */
static int
part_b64(const char *msg, const char *marker, const char *boundary, gnutls_datum_t *out)
{
	const char *p = strstr(msg, marker), *end;
	char close[100], *text;
	gnutls_datum_t in;
	int rc;

	if (p == NULL || (p = strstr(p, "\r\n\r\n")) == NULL)
		return -1;
	p += 4;
	snprintf(close, sizeof close, "--%s--\r\n", boundary);
	if ((end = strstr(p, close)) == NULL)
		return -1;
	text = strndup(p, (size_t)(end - p));
	/* the lines joined */
	for (char *r = text, *w = text;; r++)
		if (*r != '\r' && *r != '\n' && (*w++ = *r) == '\0')
			break;
	in.data = (unsigned char *)text;
	in.size = (unsigned)strlen(text);
	rc = gnutls_base64_decode2(&in, out);
	free(text);
	return rc;
}

static void
test_build(void)
{
	const char *json = "{\n  \"organization-name\": \"mx.test\",\n  \"policies\": []\n}\n";
	struct tls_rpt_mail m = {
		.submitter = "MX.test", .from = "postmaster@mx.test",
		.to = "tlsrpt@example.net", .domain = "Example.NET",
		.day_start = 1700006400, .now = 1700100000, .unique = "1700100000.0",
		.json = json, .json_len = strlen(json),
	};
	struct buf b;
	gnutls_datum_t gz;
	char plain[4096];
	uLongf plen = sizeof plain;
	z_stream z;

	buf_init(&b, TLS_RPT_MAIL_MAX);
	CU_ASSERT_EQUAL_FATAL(tls_rpt_mail_build(&m, &b), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\r\nTLS-Report-Domain: example.net\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\r\nTLS-Report-Submitter: mx.test\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\r\nTLS-Required: No\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\r\nSubject: Report Domain: example.net\r\n"
	    " Submitter: mx.test\r\n Report-ID: <20231115.example.net@mx.test>\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "Content-Type: multipart/report; "
	    "report-type=\"tlsrpt\";\r\n boundary=\"----=_tlsrpt_20231115_1700100000.0\"\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\r\nContent-Type: text/plain"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "filename=\"mx.test!example.net!1700006400!"
	    "1700092799.json.gz\"\r\n"));
	CU_ASSERT_EQUAL(strncmp(b.data, "From: postmaster@mx.test\r\nTo: tlsrpt@example.net\r\n",
	    50), 0);
	/* CRLF only, no line longer than 78 */
	for (size_t i = 0, col = 0; i < b.len; i++, col++) {
		if (b.data[i] == '\n') {
			CU_ASSERT(i > 0 && b.data[i - 1] == '\r');
			col = 0;
		}
		CU_ASSERT(col < 80);
	}
	/* the JSON back */
	CU_ASSERT_EQUAL_FATAL(part_b64(b.data, "Content-Type: application/tlsrpt+gzip",
	    "----=_tlsrpt_20231115_1700100000.0", &gz), 0);
	memset(&z, 0, sizeof z);
	CU_ASSERT_EQUAL_FATAL(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = gz.data;
	z.avail_in = gz.size;
	z.next_out = (Bytef *)plain;
	z.avail_out = (uInt)plen;
	CU_ASSERT_EQUAL(inflate(&z, Z_FINISH), Z_STREAM_END);
	CU_ASSERT_EQUAL(z.total_out, strlen(json));
	CU_ASSERT_EQUAL(memcmp(plain, json, strlen(json)), 0);
	inflateEnd(&z);
	gnutls_free(gz.data);
	buf_free(&b);

	/* what must not go into a header */
	buf_init(&b, TLS_RPT_MAIL_MAX);
	m.to = "a@x.test\r\nBcc: b@y.test";
	CU_ASSERT_EQUAL(tls_rpt_mail_build(&m, &b), -1);
	m.to = "a@x.test";
	m.from = "postmaster";
	CU_ASSERT_EQUAL(tls_rpt_mail_build(&m, &b), -1);
	m.from = "postmaster@mx.test";
	m.domain = "bad domain";
	CU_ASSERT_EQUAL(tls_rpt_mail_build(&m, &b), -1);
	m.domain = "example.net";
	m.unique = "a b";
	CU_ASSERT_EQUAL(tls_rpt_mail_build(&m, &b), -1);
	m.unique = "x";
	m.submitter = "mx.test\r\nX: y";
	CU_ASSERT_EQUAL(tls_rpt_mail_build(&m, &b), -1);
	CU_ASSERT_EQUAL(b.len, 0);
	/* a bound too small for the message: refused, nothing appended */
	buf_free(&b);
	buf_init(&b, 100);
	m.submitter = "mx.test";
	CU_ASSERT_EQUAL(tls_rpt_mail_build(&m, &b), -1);
	CU_ASSERT_EQUAL(b.len, 0);
	buf_free(&b);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("tls_rpt_mail", NULL, NULL);
	CU_add_test(s, "mailto: URIs", test_mailto);
	CU_add_test(s, "the report message", test_build);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
