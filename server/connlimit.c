/* connlimit: total and per-address session counts (open hashing). */
#include "server/connlimit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/siphash.h"
#include "lib/util.h"

struct connlimit_entry {
	uint8_t key[16];
	unsigned count;
	struct connlimit_entry *next;
};

#define CONNLIMIT_BUCKETS 4096

static pthread_mutex_t connlimit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct connlimit_entry *connlimit_table[CONNLIMIT_BUCKETS]; /* guarded */
static unsigned connlimit_count;				   /* guarded */

void
connlimit_key(const struct sockaddr *sa, uint8_t key[16])
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		if (memcmp(a, v4mapped, 12) == 0)
			memcpy(key, a, 16);
		else
			memcpy(key, a, 8);
	}
}

static pthread_once_t connlimit_secret_once = PTHREAD_ONCE_INIT;
static uint8_t connlimit_secret[16];	/* written once, then read only */

static void
connlimit_secret_init(void)
{
	siphash_key_random(connlimit_secret, sizeof connlimit_secret);
}

uint64_t
connlimit_key_hash(const uint8_t key[16])
{
	pthread_once(&connlimit_secret_once, connlimit_secret_init);
	return siphash24(connlimit_secret, key, 16);
}

static unsigned
connlimit_hash(const uint8_t key[16])
{
	return (unsigned)(connlimit_key_hash(key) % CONNLIMIT_BUCKETS);
}

int
connlimit_acquire(const struct sockaddr *sa, unsigned max_total,
    unsigned max_per_ip)
{
	struct connlimit_entry *e;
	uint8_t key[16];
	unsigned h;
	int r = -1;

	connlimit_key(sa, key);
	h = connlimit_hash(key);
	pthread_mutex_lock(&connlimit_lock);
	for (e = connlimit_table[h]; e; e = e->next)
		if (memcmp(e->key, key, 16) == 0)
			break;
	if (connlimit_count >= max_total || (e && e->count >= max_per_ip))
		goto out;
	if (e == NULL) {
		e = xcalloc(1, sizeof *e);
		memcpy(e->key, key, 16);
		e->next = connlimit_table[h];
		connlimit_table[h] = e;
	}
	e->count++;
	connlimit_count++;
	r = 0;
out:
	pthread_mutex_unlock(&connlimit_lock);
	return r;
}

void
connlimit_release(const struct sockaddr *sa)
{
	struct connlimit_entry **ep, *e;
	uint8_t key[16];

	connlimit_key(sa, key);
	pthread_mutex_lock(&connlimit_lock);
	for (ep = &connlimit_table[connlimit_hash(key)]; (e = *ep); ep = &e->next) {
		if (memcmp(e->key, key, 16) != 0)
			continue;
		connlimit_count--;
		if (--e->count == 0) {
			*ep = e->next;
			free(e);
		}
		break;
	}
	pthread_mutex_unlock(&connlimit_lock);
}

unsigned
connlimit_total(void)
{
	unsigned n;

	pthread_mutex_lock(&connlimit_lock);
	n = connlimit_count;
	pthread_mutex_unlock(&connlimit_lock);
	return n;
}
