/*
 * Unit tests of the per-address limits: connlimit_key (IPv4, v4-mapped,
 * IPv6 by /64), connlimit counting by that key, and auth_throttle's
 * growing delays, block, expiry, reset on success and table bound, and
 * the keyed hash that keeps addresses aimed at one bucket apart.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <CUnit/Basic.h>

#include "server/auth_throttle.h"
#include "server/connlimit.h"

static struct sockaddr_storage
addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		CU_ASSERT_FATAL(inet_pton(AF_INET6, text, &s6->sin6_addr) == 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		CU_ASSERT_FATAL(inet_pton(AF_INET, text, &s4->sin_addr) == 1);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static int
same_key(const char *a, const char *b)
{
	struct sockaddr_storage x = addr(a), y = addr(b);
	uint8_t kx[16], ky[16];

	connlimit_key(SA(x), kx);
	connlimit_key(SA(y), ky);
	return memcmp(kx, ky, 16) == 0;
}

static void
test_key(void)
{
	CU_ASSERT(same_key("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
	CU_ASSERT(!same_key("2001:db8:1:2::1", "2001:db8:1:3::1"));
	CU_ASSERT(same_key("192.0.2.1", "::ffff:192.0.2.1"));
	CU_ASSERT(!same_key("192.0.2.1", "192.0.2.2"));
	CU_ASSERT(!same_key("::ffff:192.0.2.1", "::ffff:192.0.2.2"));
	CU_ASSERT(!same_key("::1", "192.0.2.1"));
}

static void
test_connlimit_per_64(void)
{
	struct sockaddr_storage a = addr("2001:db8:5:6::1"), b = addr("2001:db8:5:6::2"),
	    c = addr("2001:db8:5:7::1");

	CU_ASSERT_EQUAL(connlimit_acquire(SA(a), 100, 2), 0);
	CU_ASSERT_EQUAL(connlimit_acquire(SA(b), 100, 2), 0);
	/* a third host of the same /64 is over the per-address limit */
	CU_ASSERT_EQUAL(connlimit_acquire(SA(b), 100, 2), -1);
	CU_ASSERT_EQUAL(connlimit_acquire(SA(c), 100, 2), 0);
	connlimit_release(SA(a));
	CU_ASSERT_EQUAL(connlimit_acquire(SA(b), 100, 2), 0);
	connlimit_release(SA(b));
	connlimit_release(SA(b));
	connlimit_release(SA(c));
	CU_ASSERT_EQUAL(connlimit_total(), 0);
}

static void
test_throttle(void)
{
	struct auth_throttle_limits lim = { 1000, 4, 60000 };
	struct sockaddr_storage a = addr("198.51.100.7"), v6 = addr("2001:db8:9:9::1"),
	    v6b = addr("2001:db8:9:9::2");
	int64_t now = 1000000, d;
	unsigned failures;
	int blocked;

	auth_throttle_reset();
	CU_ASSERT_EQUAL(auth_throttle_blocked(SA(a), now, &lim), 0);
	d = auth_throttle_failed(SA(a), now, &lim, &failures, &blocked);
	CU_ASSERT(d == 1000 && failures == 1 && !blocked);
	d = auth_throttle_failed(SA(a), now + 10, &lim, &failures, &blocked);
	CU_ASSERT(d == 2000 && failures == 2 && !blocked);
	d = auth_throttle_failed(SA(a), now + 20, &lim, &failures, &blocked);
	CU_ASSERT(d == 4000 && failures == 3 && !blocked);
	d = auth_throttle_failed(SA(a), now + 30, &lim, &failures, &blocked);
	CU_ASSERT(failures == 4 && blocked);
	CU_ASSERT_EQUAL(auth_throttle_blocked(SA(a), now + 40, &lim), 60000 - 10);
	/* the block ends, and the failures are forgotten block time after
	 * the last one */
	CU_ASSERT_EQUAL(auth_throttle_blocked(SA(a), now + 30 + 60000, &lim), 0);
	d = auth_throttle_failed(SA(a), now + 30 + 60000, &lim, &failures, &blocked);
	CU_ASSERT(d == 1000 && failures == 1 && !blocked);
	/* success forgets */
	auth_throttle_failed(SA(a), now + 70000, &lim, &failures, &blocked);
	CU_ASSERT_EQUAL(failures, 2);
	auth_throttle_succeeded(SA(a));
	auth_throttle_failed(SA(a), now + 70001, &lim, &failures, &blocked);
	CU_ASSERT_EQUAL(failures, 1);
	/* the delay stops growing at 16 times */
	for (int i = 0; i < 2; i++)
		auth_throttle_failed(SA(v6), now, &(struct auth_throttle_limits){ 1000, 0, 60000 },
		    &failures, &blocked);
	for (int i = 0; i < 10; i++)
		d = auth_throttle_failed(SA(v6b), now, &(struct auth_throttle_limits){ 1000, 0, 60000 },
		    &failures, &blocked);
	/* the two IPv6 hosts share their /64 */
	CU_ASSERT_EQUAL(failures, 12);
	CU_ASSERT_EQUAL(d, 16000);
	CU_ASSERT(!blocked);	/* limit 0: never blocks */
	auth_throttle_reset();
}

/* The table stays bounded: past AUTH_THROTTLE_MAX recent addresses a new
 * one is not tracked (but still gets the first delay). */
static void
test_throttle_bound(void)
{
	struct auth_throttle_limits lim = { 500, 3, 60000 };
	struct sockaddr_storage ss;
	char text[64];
	unsigned failures;
	int blocked;
	int64_t d;

	auth_throttle_reset();
	for (unsigned i = 0; i < AUTH_THROTTLE_MAX; i++) {
		snprintf(text, sizeof text, "2001:db8:%x:%x::1", i >> 16, i & 0xffff);
		ss = addr(text);
		auth_throttle_failed(SA(ss), 1000, &lim, &failures, &blocked);
	}
	ss = addr("203.0.113.1");
	for (int i = 0; i < 5; i++) {
		d = auth_throttle_failed(SA(ss), 2000, &lim, &failures, &blocked);
		CU_ASSERT(d == 500 && failures == 1 && !blocked);
	}
	/* once the old entries expire, a sweep makes room */
	d = auth_throttle_failed(SA(ss), 1000 + 60000, &lim, &failures, &blocked);
	CU_ASSERT_EQUAL(failures, 1);
	d = auth_throttle_failed(SA(ss), 1000 + 60001, &lim, &failures, &blocked);
	CU_ASSERT_EQUAL(failures, 2);
	CU_ASSERT_EQUAL(d, 1000);
	auth_throttle_reset();
}

/* The 12 low bits (a bucket of 4096) of the unkeyed FNV-1a hash these
 * tables once used. They depend on the low 12 bits of the state alone, so
 * keys that share a bucket are easy to make: the attack below. */
#define FNV_PRIME 16777619u
#define LOW12 0xfffu

static unsigned
fnv_low12(const uint8_t key[16])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * FNV_PRIME;
	return h & LOW12;
}

/* Fills key with 2001:db8:(i)::/64 whose bytes 6 and 7 are chosen so that
 * fnv_low12(key) is target; 0, or -1 when no such bytes exist. */
static int
colliding_key(unsigned i, unsigned target, uint8_t key[16])
{
	uint32_t inv = FNV_PRIME, s = 2166136261u, t = target, u;

	/* FNV_PRIME's inverse mod 2^32 (Newton: each step doubles the bits) */
	for (int k = 0; k < 5; k++)
		inv *= 2 - FNV_PRIME * inv;
	memset(key, 0, 16);
	key[0] = 0x20, key[1] = 0x01, key[2] = 0x0d, key[3] = 0xb8;
	key[4] = (uint8_t)(i >> 8), key[5] = (uint8_t)i;
	for (int k = 0; k < 6; k++)
		s = (s ^ key[k]) * FNV_PRIME;
	for (int k = 15; k >= 8; k--)		/* back through the zero bytes */
		t = (t * inv) & LOW12;
	u = (t * inv) & LOW12;			/* state after byte 6, xor byte 7 */
	for (unsigned b6 = 0; b6 < 256; b6++) {
		uint32_t s7 = ((s ^ b6) * FNV_PRIME) & LOW12;

		if ((s7 >> 8) == (u >> 8)) {
			key[6] = (uint8_t)b6;
			key[7] = (uint8_t)((s7 ^ u) & 0xff);
			return 0;
		}
	}
	return -1;
}

static struct sockaddr_storage
addr_of_key(const uint8_t key[16])
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof ss);
	s6->sin6_family = AF_INET6;
	memcpy(&s6->sin6_addr, key, 16);
	return ss;
}

static double
seconds_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Client addresses chosen to share a bucket of an unkeyed hash still
 * spread over the buckets: connlimit_key_hash is keyed. */
static void
test_key_hash_keyed(void)
{
	static uint8_t seen[4096];
	unsigned n = 0, distinct = 0;
	uint8_t key[16];

	memset(seen, 0, sizeof seen);
	for (unsigned i = 0; i < 4096; i++) {
		if (colliding_key(i, 7, key) < 0)
			continue;
		CU_ASSERT_EQUAL_FATAL(fnv_low12(key), 7);	/* the attack works */
		n++;
		if (!seen[connlimit_key_hash(key) % 4096]++)
			distinct++;
	}
	CU_ASSERT(n > 4000);
	/* random buckets: about 63% of 4096 distinct; one bucket before */
	CU_ASSERT(distinct > n / 2);
}

/* Failed logins from AUTH_THROTTLE_MAX /64s; aimed: all at one bucket of
 * the unkeyed hash. Returns how many were counted before limit seconds. */
static unsigned
throttle_fill(int aimed, double limit, double *took_r)
{
	struct auth_throttle_limits lim = { 0, 0, 60000 };
	struct sockaddr_storage ss;
	unsigned failures, done = 0;
	uint8_t key[16];
	int blocked;
	double t0 = seconds_now();

	auth_throttle_reset();
	for (unsigned i = 0; i < AUTH_THROTTLE_MAX; i++) {
		if (aimed && colliding_key(i, 7, key) < 0)
			continue;
		if (!aimed) {
			memset(key, 0, sizeof key);
			key[0] = 0x20, key[1] = 0x01, key[2] = 0x0d, key[3] = 0xb9;
			key[4] = (uint8_t)(i >> 8), key[5] = (uint8_t)i;
		}
		ss = addr_of_key(key);
		auth_throttle_failed(SA(ss), 1000, &lim, &failures, &blocked);
		done++;
		if ((i & 1023) == 0 && seconds_now() - t0 > limit)
			break;
	}
	*took_r = seconds_now() - t0;
	auth_throttle_reset();
	return done;
}

/* Addresses aimed at one bucket cost about what others do (one chain of
 * them held the global lock for seconds), under sanitizers too: the bound
 * is relative to the same number of ordinary addresses. */
static void
test_throttle_colliding_addresses(void)
{
	double plain, aimed, limit;

	CU_ASSERT(throttle_fill(0, 60.0, &plain) == AUTH_THROTTLE_MAX);
	limit = 10 * plain + 1.0;
	CU_ASSERT(throttle_fill(1, limit, &aimed) > AUTH_THROTTLE_MAX - 100);
	CU_ASSERT(aimed < limit);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("per-address limits", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "key", test_key) == NULL ||
	    CU_add_test(s, "connlimit by /64", test_connlimit_per_64) == NULL ||
	    CU_add_test(s, "auth throttle", test_throttle) == NULL ||
	    CU_add_test(s, "auth throttle bound", test_throttle_bound) == NULL ||
	    CU_add_test(s, "keyed hash", test_key_hash_keyed) == NULL ||
	    CU_add_test(s, "auth throttle, colliding addresses",
	    test_throttle_colliding_addresses) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
