/*
 * Unit tests of server/smtp_sasl: PLAIN and LOGIN exchanges, table
 * driven, and hostile responses: bad base64 in every position, padding
 * tricks, NUL bytes inside names, over-long names and passwords, proxy
 * authorisation, cancellation, responses after the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "server/smtp_sasl.h"

static char *
b64(const char *data, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc(n / 3 * 4 + 8);
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)data[i] << 16;

		if (i + 1 < n)
			v |= (unsigned char)data[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)data[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

#define B64(lit) b64(lit, sizeof(lit) - 1)

static void
test_base64(void)
{
	static const struct { const char *in; long n; const char *out; } cases[] = {
		{ "", 0, "" },
		{ "YQ==", 1, "a" },
		{ "YWI=", 2, "ab" },
		{ "YWJj", 3, "abc" },
		{ "YWJjZA==", 4, "abcd" },
		{ "YQ=", -1, NULL },		/* length not a multiple of 4 */
		{ "Y===", -1, NULL },		/* one char and three pads */
		{ "YQ=a", -1, NULL },		/* data after a pad */
		{ "YQ==YQ==", -1, NULL },	/* pad inside */
		{ "YW Jj", -1, NULL },		/* blank */
		{ "YWJj\r\n", -1, NULL },
		{ "!!!!", -1, NULL },
		{ "====", -1, NULL },
		{ "AAA-", -1, NULL },		/* base64url is not base64 */
	};
	unsigned char out[16];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		long n = smtp_sasl_base64_decode(cases[i].in, out, sizeof out);

		CU_ASSERT_EQUAL(n, cases[i].n);
		if (n >= 0 && cases[i].n >= 0)
			CU_ASSERT(memcmp(out, cases[i].out, (size_t)n) == 0);
		CU_ASSERT_EQUAL(smtp_sasl_base64_decode(cases[i].in, NULL, 0), cases[i].n);
	}
	/* does not fit */
	CU_ASSERT_EQUAL(smtp_sasl_base64_decode("YWJjZA==", out, 3), -1);
}

static void
test_plain(void)
{
	struct smtp_sasl a;
	char *r;

	memset(&a, 0, sizeof a);
	/* initial response */
	r = B64("\0carol@localhost\0s3cret");
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "plain", r), SMTP_SASL_CHECK);
	CU_ASSERT_STRING_EQUAL(a.user, "carol@localhost");
	CU_ASSERT_STRING_EQUAL(a.pass, "s3cret");
	smtp_sasl_clear(&a);
	CU_ASSERT_EQUAL(a.pass[0], '\0');
	free(r);
	/* authzid equal to the user is fine, another is a proxy login */
	r = B64("carol@localhost\0carol@localhost\0pw");
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", r), SMTP_SASL_CHECK);
	free(r);
	r = B64("admin@localhost\0carol@localhost\0pw");
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", r), SMTP_SASL_MALFORMED);
	CU_ASSERT_EQUAL(a.user[0], '\0');
	free(r);
	/* challenge, then the response */
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", NULL), SMTP_SASL_CHALLENGE);
	CU_ASSERT_STRING_EQUAL(a.challenge, "");
	r = B64("\0u@x\0p");
	CU_ASSERT_EQUAL(smtp_sasl_step(&a, r), SMTP_SASL_CHECK);
	free(r);
	/* an empty password is structurally valid (and fails the check) */
	r = B64("\0u@x\0");
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", r), SMTP_SASL_CHECK);
	CU_ASSERT_STRING_EQUAL(a.pass, "");
	free(r);
	/* malformed */
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", "="), SMTP_SASL_MALFORMED);
	r = B64("no nuls at all");
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", r), SMTP_SASL_MALFORMED);
	free(r);
	r = B64("\0only one nul");
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", r), SMTP_SASL_MALFORMED);
	free(r);
	r = B64("\0\0empty user");
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", r), SMTP_SASL_MALFORMED);
	free(r);
	r = B64("\0u@x\0pass\0with a third nul");
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", r), SMTP_SASL_MALFORMED);
	free(r);
	/* bad base64 */
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", "!!!notbase64!!!"), SMTP_SASL_BAD_BASE64);
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", NULL), SMTP_SASL_CHALLENGE);
	CU_ASSERT_EQUAL(smtp_sasl_step(&a, "AGEAYg"), SMTP_SASL_BAD_BASE64);
	/* cancel */
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", NULL), SMTP_SASL_CHALLENGE);
	CU_ASSERT_EQUAL(smtp_sasl_step(&a, "*"), SMTP_SASL_CANCELLED);
	/* a response after the end */
	CU_ASSERT_EQUAL(smtp_sasl_step(&a, "AGEAYg=="), SMTP_SASL_MALFORMED);
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "CRAM-MD5", NULL), SMTP_SASL_UNKNOWN);
}

static void
test_login(void)
{
	struct smtp_sasl a;
	char *u = B64("carol@localhost"), *p = B64("s3cret");

	memset(&a, 0, sizeof a);
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "LOGIN", NULL), SMTP_SASL_CHALLENGE);
	CU_ASSERT_STRING_EQUAL(a.challenge, "VXNlcm5hbWU6");
	CU_ASSERT_EQUAL(smtp_sasl_step(&a, u), SMTP_SASL_CHALLENGE);
	CU_ASSERT_STRING_EQUAL(a.challenge, "UGFzc3dvcmQ6");
	CU_ASSERT_EQUAL(smtp_sasl_step(&a, p), SMTP_SASL_CHECK);
	CU_ASSERT_STRING_EQUAL(a.user, "carol@localhost");
	CU_ASSERT_STRING_EQUAL(a.pass, "s3cret");
	/* the initial response is the user name */
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "login", u), SMTP_SASL_CHALLENGE);
	CU_ASSERT_STRING_EQUAL(a.challenge, "UGFzc3dvcmQ6");
	CU_ASSERT_EQUAL(smtp_sasl_step(&a, "="), SMTP_SASL_CHECK);	/* empty password */
	/* hostile */
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "LOGIN", "="), SMTP_SASL_MALFORMED);
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "LOGIN", NULL), SMTP_SASL_CHALLENGE);
	CU_ASSERT_EQUAL(smtp_sasl_step(&a, "dXNlcgBudWw="), SMTP_SASL_MALFORMED);	/* "user\0nul" */
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "LOGIN", NULL), SMTP_SASL_CHALLENGE);
	CU_ASSERT_EQUAL(smtp_sasl_step(&a, u), SMTP_SASL_CHALLENGE);
	CU_ASSERT_EQUAL(smtp_sasl_step(&a, "czNj=mV0"), SMTP_SASL_BAD_BASE64);
	CU_ASSERT_EQUAL(a.user[0], '\0');
	free(u);
	free(p);
}

/* Names and passwords at and past their limits; a response far longer
 * than any valid one. */
static void
test_limits(void)
{
	struct smtp_sasl a;
	char *plain = malloc(4096), *r;
	size_t n;

	memset(&a, 0, sizeof a);
	for (int over = 0; over <= 1; over++) {
		n = 0;
		plain[n++] = '\0';
		memset(plain + n, 'u', SMTP_SASL_USER_MAX + over);
		n += SMTP_SASL_USER_MAX + (size_t)over;
		plain[n++] = '\0';
		memset(plain + n, 'p', SMTP_SASL_PASS_MAX);
		n += SMTP_SASL_PASS_MAX;
		r = b64(plain, n);
		CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", r),
		    over ? SMTP_SASL_MALFORMED : SMTP_SASL_CHECK);
		free(r);
		r = b64(plain + 1, SMTP_SASL_USER_MAX + (size_t)over);
		CU_ASSERT_EQUAL(smtp_sasl_start(&a, "LOGIN", r),
		    over ? SMTP_SASL_MALFORMED : SMTP_SASL_CHALLENGE);
		free(r);
		memset(plain, 'p', SMTP_SASL_PASS_MAX + over);
		r = b64(plain, SMTP_SASL_PASS_MAX + (size_t)over);
		CU_ASSERT_EQUAL(smtp_sasl_start(&a, "LOGIN", "dQ=="), SMTP_SASL_CHALLENGE);
		CU_ASSERT_EQUAL(smtp_sasl_step(&a, r),
		    over ? SMTP_SASL_MALFORMED : SMTP_SASL_CHECK);
		free(r);
	}
	memset(plain, 'A', 4000);
	plain[4000] = '\0';
	CU_ASSERT_EQUAL(smtp_sasl_start(&a, "PLAIN", plain), SMTP_SASL_MALFORMED);
	free(plain);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("smtp_sasl", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "base64", test_base64) == NULL ||
	    CU_add_test(s, "PLAIN", test_plain) == NULL ||
	    CU_add_test(s, "LOGIN", test_login) == NULL ||
	    CU_add_test(s, "limits", test_limits) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
