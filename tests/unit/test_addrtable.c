/*
 * test_addrtable: server/addrtable. Create, find, update and remove;
 * least-recently-used eviction (with drop called exactly once per
 * record); removal from a callback; a sharded table overfilled a hundred
 * times stays at its capacity; name keys (one per name and table); and
 * threads updating shared records (exact totals, and
 * ThreadSanitizer under SANITIZE=thread).
 */
#include <CUnit/Basic.h>
#include <pthread.h>
#include <string.h>

#include "server/addrtable.h"

struct val {
	uint64_t n;
	uint32_t id;
};

static int drops;
static uint32_t last_dropped;

static void
drop_val(void *v)
{
	drops++;
	last_dropped = ((struct val *)v)->id;
}

static void
key_of(uint32_t id, uint8_t key[16])
{
	memset(key, 0, 16);
	memcpy(key, &id, sizeof id);
}

struct set_arg {
	uint32_t id;
	int created;
};

static int
set_id(void *value, int created, void *arg)
{
	struct val *v = value;
	struct set_arg *a = arg;

	a->created = created;
	v->id = a->id;
	v->n++;
	return ADDRTABLE_KEEP;
}

static int
read_n(void *value, int created, void *arg)
{
	(void)created;
	*(uint64_t *)arg = ((struct val *)value)->n;
	return ADDRTABLE_KEEP;
}

static int
remove_it(void *value, int created, void *arg)
{
	(void)value;
	(void)created;
	(void)arg;
	return ADDRTABLE_REMOVE;
}

static void
put(struct addrtable *t, uint32_t id)
{
	uint8_t key[16];
	struct set_arg a = { id, -1 };

	key_of(id, key);
	addrtable_update(t, key, set_id, &a);
}

static int
has(struct addrtable *t, uint32_t id, uint64_t *n)
{
	uint8_t key[16];
	uint64_t dummy;

	key_of(id, key);
	return addrtable_find(t, key, read_n, n ? n : &dummy);
}

static void
test_basic(void)
{
	struct addrtable *t = addrtable_new(10, sizeof(struct val), drop_val);
	uint8_t key[16];
	struct set_arg a = { 7, -1 };
	uint64_t n = 0;

	drops = 0;
	key_of(7, key);
	CU_ASSERT_EQUAL(addrtable_find(t, key, read_n, &n), 0);
	CU_ASSERT_EQUAL(addrtable_update(t, key, set_id, &a), 1);
	CU_ASSERT_EQUAL(a.created, 1);
	CU_ASSERT_EQUAL(addrtable_update(t, key, set_id, &a), 0);
	CU_ASSERT_EQUAL(a.created, 0);
	CU_ASSERT_EQUAL(addrtable_find(t, key, read_n, &n), 1);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(addrtable_count(t), 1);
	CU_ASSERT_EQUAL(addrtable_remove(t, key), 1);
	CU_ASSERT_EQUAL(drops, 1);
	CU_ASSERT_EQUAL(addrtable_remove(t, key), 0);
	CU_ASSERT_EQUAL(addrtable_count(t), 0);
	/* A record made again starts from zero. */
	CU_ASSERT_EQUAL(addrtable_update(t, key, set_id, &a), 1);
	CU_ASSERT_EQUAL(has(t, 7, &n), 1);
	CU_ASSERT_EQUAL(n, 1);
	/* A callback may remove the record, found or new. */
	CU_ASSERT_EQUAL(addrtable_find(t, key, remove_it, NULL), 1);
	CU_ASSERT_EQUAL(addrtable_count(t), 0);
	CU_ASSERT_EQUAL(addrtable_update(t, key, remove_it, NULL), 1);
	CU_ASSERT_EQUAL(addrtable_count(t), 0);
	CU_ASSERT_EQUAL(drops, 3);
	CU_ASSERT_EQUAL(addrtable_capacity(t), 10);
	addrtable_free(&t);
	CU_ASSERT_PTR_NULL(t);
	addrtable_free(&t);
}

static void
test_lru(void)
{
	struct addrtable *t = addrtable_new(4, sizeof(struct val), drop_val);

	drops = 0;
	for (uint32_t id = 1; id <= 4; id++)
		put(t, id);
	CU_ASSERT_EQUAL(addrtable_count(t), 4);
	CU_ASSERT_EQUAL(has(t, 1, NULL), 1);	/* 1 is now the newest */
	put(t, 3);				/* then 3 */
	put(t, 5);				/* evicts 2, the oldest */
	CU_ASSERT_EQUAL(drops, 1);
	CU_ASSERT_EQUAL(last_dropped, 2);
	CU_ASSERT_EQUAL(has(t, 2, NULL), 0);
	put(t, 6);				/* evicts 4 */
	CU_ASSERT_EQUAL(last_dropped, 4);
	put(t, 7);				/* evicts 1 */
	CU_ASSERT_EQUAL(last_dropped, 1);
	CU_ASSERT_EQUAL(addrtable_count(t), 4);
	CU_ASSERT(has(t, 3, NULL) && has(t, 5, NULL) && has(t, 6, NULL) && has(t, 7, NULL));
	CU_ASSERT_EQUAL(drops, 3);
	addrtable_free(&t);
	CU_ASSERT_EQUAL(drops, 7);		/* the 4 left, at free */

	/* A table of one. */
	t = addrtable_new(0, 0, NULL);
	put(t, 1);
	put(t, 2);
	CU_ASSERT_EQUAL(addrtable_count(t), 1);
	CU_ASSERT_EQUAL(has(t, 2, NULL), 1);
	addrtable_free(&t);
}

static void
test_overfill_sharded(void)
{
	struct addrtable *t = addrtable_new(5000, sizeof(struct val), drop_val);
	size_t cap = addrtable_capacity(t);
	uint32_t kept = 0;

	drops = 0;
	CU_ASSERT(cap >= 5000 && cap < 5000 + 16);
	for (uint32_t id = 0; id < 100 * 5000; id++)
		put(t, id);
	CU_ASSERT_EQUAL(addrtable_count(t), cap);
	CU_ASSERT_EQUAL((size_t)drops, 100 * 5000 - cap);
	/* What is left is recent: the last keys put, mostly (per shard). */
	for (uint32_t id = 100 * 5000 - 2000; id < 100 * 5000; id++)
		kept += (uint32_t)has(t, id, NULL);
	CU_ASSERT_EQUAL(kept, 2000);
	CU_ASSERT_EQUAL(has(t, 0, NULL), 0);
	addrtable_free(&t);
}

static void
test_name_keys(void)
{
	uint8_t ka[16], kb[16];
	struct addrtable *t1 = addrtable_new(1, 1, NULL), *t2 = addrtable_new(1, 1, NULL);

	addrtable_key_name(t1, "alice@example.org", ka);
	addrtable_key_name(t1, "alice@example.org", kb);
	CU_ASSERT_EQUAL(memcmp(ka, kb, 16), 0);
	addrtable_key_name(t1, "alice@example.orh", kb);
	CU_ASSERT_NOT_EQUAL(memcmp(ka, kb, 16), 0);
	addrtable_key_name(t2, "alice@example.org", kb);
	CU_ASSERT_NOT_EQUAL(memcmp(ka, kb, 16), 0);	/* per-table secret */
	addrtable_free(&t1);
	addrtable_free(&t2);
}

#define RACE_THREADS 4
#define RACE_LOOPS 50000
#define RACE_KEYS 64

static void *
race(void *arg)
{
	struct addrtable *t = arg;

	for (uint32_t i = 0; i < RACE_LOOPS; i++)
		put(t, i % RACE_KEYS);
	return NULL;
}

static void *
race_evict(void *arg)
{
	struct addrtable *t = arg;

	for (uint32_t i = 0; i < RACE_LOOPS; i++) {
		put(t, 1000 + i);
		(void)has(t, 1000 + i / 2, NULL);
		if (i % 7 == 0) {
			uint8_t key[16];
			key_of(1000 + i / 3, key);
			addrtable_remove(t, key);
		}
	}
	return NULL;
}

static void
test_threads(void)
{
	/* Room for every key: the evicting threads make 100,000 of them. */
	struct addrtable *t = addrtable_new(1 << 17, sizeof(struct val), NULL);
	pthread_t th[RACE_THREADS + 2];
	uint64_t total = 0;

	for (int i = 0; i < RACE_THREADS; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, race, t), 0);
	for (int i = RACE_THREADS; i < RACE_THREADS + 2; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, race_evict, t), 0);
	for (int i = 0; i < RACE_THREADS + 2; i++)
		pthread_join(th[i], NULL);
	for (uint32_t id = 0; id < RACE_KEYS; id++) {
		uint64_t n = 0;
		CU_ASSERT_EQUAL(has(t, id, &n), 1);
		total += n;
	}
	CU_ASSERT_EQUAL(total, (uint64_t)RACE_THREADS * RACE_LOOPS);
	CU_ASSERT(addrtable_count(t) <= addrtable_capacity(t));
	addrtable_free(&t);

	/* Evictions racing lookups and removals in a small sharded table. */
	t = addrtable_new(4096, sizeof(struct val), NULL);
	for (int i = 0; i < RACE_THREADS; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL,
		    i % 2 ? race : race_evict, t), 0);
	for (int i = 0; i < RACE_THREADS; i++)
		pthread_join(th[i], NULL);
	CU_ASSERT(addrtable_count(t) <= addrtable_capacity(t));
	CU_ASSERT(addrtable_count(t) > addrtable_capacity(t) / 2);
	addrtable_free(&t);
}

int
main(void)
{
	static const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "create, find, update, remove", test_basic },
		{ "least recently used eviction", test_lru },
		{ "a sharded table overfilled", test_overfill_sharded },
		{ "name keys", test_name_keys },
		{ "threads", test_threads },
	};
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("addrtable", NULL, NULL);
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (s == NULL || CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
			CU_cleanup_registry();
			return 2;
		}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
