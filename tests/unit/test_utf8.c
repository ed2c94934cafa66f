/*
 * Unit tests of lib/utf8: valid and invalid sequences at every boundary of
 * RFC 3629 (overlong forms, surrogates, past U+10FFFF, truncation), and C1
 * controls.
 */
#include <string.h>

#include <CUnit/Basic.h>

#include "lib/utf8.h"

#define S(lit) (const unsigned char *)lit, sizeof(lit) - 1

static void
test_valid(void)
{
	static const struct { const char *s; size_t n; int ok; } cases[] = {
		{ "", 0, 1 },
		{ "plain ascii", 11, 1 },
		{ "a\0b", 3, 1 },
		{ "\xc3\xb6", 2, 1 },			/* U+00F6 */
		{ "\xc2\x80", 2, 1 },			/* U+0080, valid (a C1 control) */
		{ "\xdf\xbf", 2, 1 },			/* U+07FF */
		{ "\xe0\xa0\x80", 3, 1 },		/* U+0800 */
		{ "\xed\x9f\xbf", 3, 1 },		/* U+D7FF */
		{ "\xee\x80\x80", 3, 1 },		/* U+E000 */
		{ "\xef\xbf\xbf", 3, 1 },		/* U+FFFF */
		{ "\xf0\x90\x80\x80", 4, 1 },		/* U+10000 */
		{ "\xf4\x8f\xbf\xbf", 4, 1 },		/* U+10FFFF */
		{ "\xc0\xaf", 2, 0 },			/* overlong '/' */
		{ "\xc1\xbf", 2, 0 },
		{ "\xe0\x9f\xbf", 3, 0 },		/* overlong */
		{ "\xf0\x8f\xbf\xbf", 4, 0 },		/* overlong */
		{ "\xed\xa0\x80", 3, 0 },		/* U+D800, a surrogate */
		{ "\xed\xbf\xbf", 3, 0 },
		{ "\xf4\x90\x80\x80", 4, 0 },		/* U+110000 */
		{ "\xf5\x80\x80\x80", 4, 0 },
		{ "\xff", 1, 0 },
		{ "\x80", 1, 0 },			/* a lone continuation byte */
		{ "\xc3", 1, 0 },			/* truncated */
		{ "\xe2\x82", 2, 0 },
		{ "\xf0\x9f\x98", 3, 0 },
		{ "\xc3\x28", 2, 0 },			/* not a continuation */
		{ "a\xe2\x82\xacz", 5, 1 },		/* the euro sign inside */
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		CU_ASSERT_EQUAL(utf8_valid((const unsigned char *)cases[i].s, cases[i].n),
		    cases[i].ok);
}

static void
test_char_len(void)
{
	const unsigned char *u = (const unsigned char *)"a\xc3\xa9\xe2\x82\xac"
	    "\xf0\x9f\x98\x80";

	CU_ASSERT_EQUAL(utf8_char_len(u, 10), 1);
	CU_ASSERT_EQUAL(utf8_char_len(u + 1, 9), 2);
	CU_ASSERT_EQUAL(utf8_char_len(u + 3, 7), 3);
	CU_ASSERT_EQUAL(utf8_char_len(u + 6, 4), 4);
	CU_ASSERT_EQUAL(utf8_char_len(u + 6, 3), 0);	/* cut short */
	CU_ASSERT_EQUAL(utf8_char_len(u + 2, 8), 0);	/* a continuation */
	CU_ASSERT_EQUAL(utf8_char_len(u, 0), 0);
	CU_ASSERT_EQUAL(utf8_char_len((const unsigned char *)"\xc0\x80", 2), 0);
	CU_ASSERT_EQUAL(utf8_char_len((const unsigned char *)"\xed\xa0\x80", 3), 0);
	CU_ASSERT_EQUAL(utf8_char_len((const unsigned char *)"\xff", 1), 0);
}

static void
test_c1(void)
{
	CU_ASSERT(utf8_has_c1(S("a\xc2\x85z")));
	CU_ASSERT(utf8_has_c1(S("\xc2\x9f")));
	CU_ASSERT(!utf8_has_c1(S("\xc2\xa0")));		/* U+00A0 */
	CU_ASSERT(!utf8_has_c1(S("\xc3\x85")));
	CU_ASSERT(!utf8_has_c1(S("\xc2")));
	CU_ASSERT(!utf8_has_c1(S("")));
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("utf8", NULL, NULL);
	if (s == NULL || CU_add_test(s, "valid", test_valid) == NULL ||
	    CU_add_test(s, "C1 controls", test_c1) == NULL ||
	    CU_add_test(s, "character length", test_char_len) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
