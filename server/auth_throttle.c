/*
 * auth_throttle: a hash table of addresses with recent failed logins
 * (contract in auth_throttle.h). Expired entries are dropped when met,
 * and in one sweep when the table is full (at most once a second).
 */
#include "server/auth_throttle.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/connlimit.h"

#define THROTTLE_BUCKETS 4096
#define THROTTLE_DELAY_STEPS 4		/* delay doubles up to 2^4 times */

struct throttle_entry {
	uint8_t key[16];
	unsigned failures;
	int64_t last;			/* time of the last failure */
	int64_t blocked_until;		/* 0: not blocked */
	struct throttle_entry *next;
};

static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct throttle_entry *throttle_table[THROTTLE_BUCKETS];	/* guarded */
static unsigned throttle_count;			/* guarded */
static int64_t throttle_last_sweep;		/* guarded */
static int64_t throttle_last_full_log;		/* guarded */

static unsigned
throttle_hash(const uint8_t key[16])
{
	return (unsigned)(connlimit_key_hash(key) % THROTTLE_BUCKETS);
}

static int
throttle_expired(const struct throttle_entry *e, int64_t now,
    const struct auth_throttle_limits *lim)
{
	return e->blocked_until <= now && e->last + lim->block_ms <= now;
}

/* Finds key's entry, dropping expired ones of its bucket on the way. */
static struct throttle_entry *
throttle_find(const uint8_t key[16], int64_t now,
    const struct auth_throttle_limits *lim)
{
	struct throttle_entry **ep = &throttle_table[throttle_hash(key)], *e;

	while ((e = *ep) != NULL) {
		if (lim != NULL && throttle_expired(e, now, lim)) {
			*ep = e->next;
			free(e);
			throttle_count--;
			continue;
		}
		if (memcmp(e->key, key, 16) == 0)
			return e;
		ep = &e->next;
	}
	return NULL;
}

static void
throttle_sweep(int64_t now, const struct auth_throttle_limits *lim)
{
	for (unsigned b = 0; b < THROTTLE_BUCKETS; b++) {
		struct throttle_entry **ep = &throttle_table[b], *e;

		while ((e = *ep) != NULL) {
			if (throttle_expired(e, now, lim)) {
				*ep = e->next;
				free(e);
				throttle_count--;
			} else {
				ep = &e->next;
			}
		}
	}
	throttle_last_sweep = now;
}

int64_t
auth_throttle_blocked(const struct sockaddr *sa, int64_t now,
    const struct auth_throttle_limits *lim)
{
	struct throttle_entry *e;
	uint8_t key[16];
	int64_t left = 0;

	connlimit_key(sa, key);
	pthread_mutex_lock(&throttle_lock);
	e = throttle_find(key, now, lim);
	if (e != NULL && e->blocked_until > now)
		left = e->blocked_until - now;
	pthread_mutex_unlock(&throttle_lock);
	return left;
}

int64_t
auth_throttle_failed(const struct sockaddr *sa, int64_t now,
    const struct auth_throttle_limits *lim, unsigned *failures_r,
    int *blocked_r)
{
	struct throttle_entry *e;
	uint8_t key[16];
	unsigned failures, steps;
	int64_t delay;

	*blocked_r = 0;
	connlimit_key(sa, key);
	pthread_mutex_lock(&throttle_lock);
	e = throttle_find(key, now, lim);
	if (e == NULL) {
		if (throttle_count >= AUTH_THROTTLE_MAX &&
		    now - throttle_last_sweep >= 1000)
			throttle_sweep(now, lim);
		if (throttle_count < AUTH_THROTTLE_MAX) {
			e = xcalloc(1, sizeof *e);
			memcpy(e->key, key, 16);
			e->next = throttle_table[throttle_hash(key)];
			throttle_table[throttle_hash(key)] = e;
			throttle_count++;
		} else if (now - throttle_last_full_log >= 60000) {
			throttle_last_full_log = now;
			log_warn("auth throttle: %u addresses with recent failures; "
			    "new ones are not tracked", throttle_count);
		}
	}
	if (e != NULL) {
		e->failures++;
		e->last = now;
		if (lim->limit > 0 && lim->block_ms > 0 && e->failures >= lim->limit &&
		    e->blocked_until <= now) {
			e->blocked_until = now + lim->block_ms;
			*blocked_r = 1;
		}
		failures = e->failures;
	} else {
		failures = 1;
	}
	pthread_mutex_unlock(&throttle_lock);
	steps = failures - 1 < THROTTLE_DELAY_STEPS ? failures - 1 : THROTTLE_DELAY_STEPS;
	delay = lim->delay_ms << steps;
	*failures_r = failures;
	return delay;
}

void
auth_throttle_succeeded(const struct sockaddr *sa)
{
	struct throttle_entry **ep, *e;
	uint8_t key[16];

	connlimit_key(sa, key);
	pthread_mutex_lock(&throttle_lock);
	for (ep = &throttle_table[throttle_hash(key)]; (e = *ep) != NULL; ep = &e->next) {
		if (memcmp(e->key, key, 16) == 0) {
			*ep = e->next;
			free(e);
			throttle_count--;
			break;
		}
	}
	pthread_mutex_unlock(&throttle_lock);
}

void
auth_throttle_reset(void)
{
	pthread_mutex_lock(&throttle_lock);
	for (unsigned b = 0; b < THROTTLE_BUCKETS; b++) {
		while (throttle_table[b] != NULL) {
			struct throttle_entry *e = throttle_table[b];

			throttle_table[b] = e->next;
			free(e);
		}
	}
	throttle_count = 0;
	throttle_last_sweep = 0;
	pthread_mutex_unlock(&throttle_lock);
}
