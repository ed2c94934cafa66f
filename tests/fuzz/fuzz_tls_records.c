/*
 * fuzz_tls_records: hostile bytes where relay/ reads its own stored
 * records back (relay/tls_store.h): a cached MTA-STS policy record
 * (mta_sts_cache_get) and TLS report counters and policy descriptions
 * (tls_report_json, tls_report_text), as a disk that was damaged or
 * written by another version would hold them. The input is the value of
 * the cached policy, the tail of a counter key (after the day and domain
 * the report reads), and a policy description. Records that do not
 * decode are skipped, never trusted.
 * Seeds: tests/fuzz/corpus/tls_records/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "relay/mta_sts_cache.h"
#include "relay/tls_report.h"
#include "relay/tls_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DAY 1780000000LL
#define PREFIX "20260528\0example.test\0"	/* the day and domain the report reads */
static const char prefix[] = PREFIX;

static struct tls_store *store;
static char dir[64];

static void
cleanup(void)
{
	char cmd[128];

	tls_store_close(&store);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return;
}

static struct tls_store *
the_store(void)
{
	char err[300];

	if (store != NULL)
		return store;
	log_set_level(LOG_LVL_ERROR);	/* "does not decode" warnings are expected */
	snprintf(dir, sizeof dir, "/tmp/fuzz_tls_records.%d", (int)getpid());
	if (mkdir(dir, 0700) != 0)
		abort();
	store = tls_store_open(dir, 0, err, sizeof err);
	if (store == NULL)
		abort();
	atexit(cleanup);
	return store;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_store *s = the_store();
	struct mta_sts_state st;
	uint8_t key[TLS_STORE_KEY_MAX], counter[9] = { 1, 0, 0, 0, 0, 0, 0, 0, 3 };
	size_t plen = sizeof prefix - 1, klen;
	struct buf out;

	if (tls_store_put(s, TLS_STORE_STS, "example.test", 12, data, size, 0) == 0 &&
	    mta_sts_cache_get(s, "example.test", &st) == 0 &&
	    (st.policy.nmx > MTA_STS_MX_MAX || st.text == NULL))
		__builtin_trap();
	mta_sts_state_clear(&st);

	klen = plen + (size < TLS_STORE_KEY_MAX - plen ? size : TLS_STORE_KEY_MAX - plen);
	memcpy(key, prefix, plen);
	memcpy(key + plen, data, klen - plen);
	/* the input as a key with a good counter, and as a counter value */
	(void)tls_store_put(s, TLS_STORE_RPT, key, klen, counter, sizeof counter, 0);
	(void)tls_store_put(s, TLS_STORE_RPT, PREFIX "sts", plen + 3, data, size, 0);
	(void)tls_store_put(s, TLS_STORE_RPOL, key, klen, data, size, 0);
	buf_init(&out, 64 << 20);
	if (tls_report_json(s, "example.test", DAY, NULL, &out) < 0 ||
	    tls_report_text(s, "example.test", DAY, &out) < 0)
		__builtin_trap();
	buf_free(&out);
	(void)tls_report_prune(s, DAY + 86400);
	return 0;
}
