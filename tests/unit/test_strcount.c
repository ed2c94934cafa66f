/*
 * test_strcount: lib/strcount counts strings without ASCII case, keeps
 * its own copies, grows past many entries, and takes strings longer than
 * its stack buffer and the empty string.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strcount.h"

static void
test_counts(void)
{
	struct strcount t;
	char buf[32];

	strcount_init(&t);
	CU_ASSERT_EQUAL(strcount_get(&t, "a@b"), 0);
	strcount_sub(&t, "a@b");	/* empty table: no effect */
	snprintf(buf, sizeof buf, "User@Example.ORG");
	CU_ASSERT_EQUAL(strcount_add(&t, buf), 0);
	memset(buf, 'x', sizeof buf);	/* the table has its own copy */
	CU_ASSERT_EQUAL(strcount_add(&t, "user@example.org"), 1);
	CU_ASSERT_EQUAL(strcount_get(&t, "USER@EXAMPLE.ORG"), 2);
	CU_ASSERT_EQUAL(strcount_get(&t, "user@example.org."), 0);
	strcount_sub(&t, "user@example.org");
	strcount_sub(&t, "user@example.org");
	strcount_sub(&t, "user@example.org");	/* never below 0 */
	CU_ASSERT_EQUAL(strcount_get(&t, "user@example.org"), 0);
	CU_ASSERT_EQUAL(strcount_add(&t, "user@example.org"), 0);
	CU_ASSERT_EQUAL(strcount_add(&t, ""), 0);
	CU_ASSERT_EQUAL(strcount_add(&t, ""), 1);
	/* Non-ASCII bytes are compared as they are. */
	CU_ASSERT_EQUAL(strcount_add(&t, "\xc3\xa9@x"), 0);
	CU_ASSERT_EQUAL(strcount_get(&t, "\xc3\x89@x"), 0);
	strcount_free(&t);
}

static void
test_many_and_long(void)
{
	struct strcount t;
	char *big = malloc(5001), *big2;
	char a[64];

	strcount_init(&t);
	for (int i = 0; i < 20000; i++) {
		snprintf(a, sizeof a, "rcpt%d@example.org", i);
		CU_ASSERT_EQUAL(strcount_add(&t, a), 0);
	}
	for (int i = 0; i < 20000; i += 97) {
		snprintf(a, sizeof a, "RCPT%d@EXAMPLE.org", i);
		CU_ASSERT_EQUAL(strcount_get(&t, a), 1);
	}
	CU_ASSERT_EQUAL(t.used, 20000);
	CU_ASSERT(t.cap >= 2 * t.used);
	memset(big, 'A', 5000);
	big[5000] = '\0';
	big2 = strdup(big);
	big2[4999] = 'a';	/* differs only in case: the same string */
	CU_ASSERT_EQUAL(strcount_add(&t, big), 0);
	CU_ASSERT_EQUAL(strcount_add(&t, big2), 1);
	big2[0] = 'b';
	CU_ASSERT_EQUAL(strcount_get(&t, big2), 0);
	for (int i = 0; i < 5000; i++)
		big2[i] = 'a';
	CU_ASSERT_EQUAL(strcount_get(&t, big2), 2);
	free(big);
	free(big2);
	strcount_free(&t);
}

int
main(void)
{
	CU_pSuite suite;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	suite = CU_add_suite("strcount", NULL, NULL);
	if (suite == NULL ||
	    !CU_add_test(suite, "counts without case", test_counts) ||
	    !CU_add_test(suite, "many and long strings", test_many_and_long)) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failures ? 1 : 0;
}
