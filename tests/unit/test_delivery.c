/* Unit tests of the delivery stage's retry schedule. */
#include <CUnit/Basic.h>

#include "queue/delivery.h"

static void
test_backoff_doubles_and_caps(void)
{
	/* rnd 0.5 is the middle of the +-10% jitter: no jitter */
	CU_ASSERT_EQUAL(delivery_backoff(300, 3600, 1, 0.5), 300);
	CU_ASSERT_EQUAL(delivery_backoff(300, 3600, 2, 0.5), 600);
	CU_ASSERT_EQUAL(delivery_backoff(300, 3600, 3, 0.5), 1200);
	CU_ASSERT_EQUAL(delivery_backoff(300, 3600, 4, 0.5), 2400);
	CU_ASSERT_EQUAL(delivery_backoff(300, 3600, 5, 0.5), 3600);
	CU_ASSERT_EQUAL(delivery_backoff(300, 3600, 1000000, 0.5), 3600);
}

static void
test_pool_split(void)
{
	/* Local delivery has threads of its own; one destination never
	 * gets every remote thread. */
	CU_ASSERT_EQUAL(delivery_local_threads(16), 4);
	CU_ASSERT_EQUAL(delivery_remote_threads(16), 12);
	CU_ASSERT_EQUAL(delivery_dest_limit(16, 20), 11);
	CU_ASSERT_EQUAL(delivery_dest_limit(16, 5), 5);
	CU_ASSERT_EQUAL(delivery_local_threads(1), 1);
	CU_ASSERT_EQUAL(delivery_remote_threads(1), 1);
	CU_ASSERT_EQUAL(delivery_dest_limit(1, 20), 1);
	CU_ASSERT_EQUAL(delivery_dest_limit(3, 20), 1);
	CU_ASSERT_EQUAL(delivery_dest_limit(4, 20), 2);
}

static void
test_backoff_jitter_bounds(void)
{
	CU_ASSERT_EQUAL(delivery_backoff(1000, 1000, 1, 0.0), 900);
	CU_ASSERT(delivery_backoff(1000, 2000, 1, 0.999999) >= 1099);
	CU_ASSERT(delivery_backoff(1000, 2000, 1, 0.999999) <= 1100);
	/* never past retry_max: every recipient is due within it */
	CU_ASSERT_EQUAL(delivery_backoff(1000, 1000, 1, 0.999999), 1000);
	CU_ASSERT_EQUAL(delivery_backoff(300, 3600, 100, 0.999999), 3600);
	/* never below one second */
	CU_ASSERT_EQUAL(delivery_backoff(1, 1, 1, 0.0), 1);
	CU_ASSERT_EQUAL(delivery_backoff(0, 0, 0, 0.0), 1);
}

int
main(void)
{
	CU_pSuite s;
	unsigned fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("delivery", NULL, NULL);
	CU_add_test(s, "backoff doubles and caps", test_backoff_doubles_and_caps);
	CU_add_test(s, "backoff jitter bounds", test_backoff_jitter_bounds);
	CU_add_test(s, "pool split and destination limit", test_pool_split);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails != 0;
}
