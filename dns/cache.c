/*
 * cache: the answer cache shared by the delivery threads.
 *
 * Keys are (lower-case name, query type); values are parsed answers
 * (struct dns_rrset, negative ones included) with an absolute expiry time.
 * A chained hash table finds entries; a list in insertion order makes
 * eviction of the oldest entry O(1) when the cache is full. Callers pass
 * the time in, so expiry is tested without sleeping.
 *
 * Threads: one mutex guards everything; values are copied in and out, so
 * no caller ever holds a pointer into the cache.
 */
#include "dns/dns_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

struct cache_entry {
	struct cache_entry *hnext;	/* hash chain */
	struct cache_entry *prev, *next;	/* age list, oldest first */
	uint64_t hash;
	uint16_t type;
	int64_t expires_ms;
	char *name;
	struct dns_rrset *rs;
};

struct dns_cache {
	pthread_mutex_t lock;
	size_t max_entries;
	size_t count;
	size_t nbuckets;		/* a power of two */
	struct cache_entry **buckets;
	struct cache_entry *oldest, *newest;
};

static uint64_t
cache_hash(const char *name, uint16_t type)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		unsigned char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 1099511628211ULL;
	}
	h = (h ^ (type & 0xff)) * 1099511628211ULL;
	h = (h ^ (type >> 8)) * 1099511628211ULL;
	return h;
}

struct dns_cache *
dns_cache_new(size_t max_entries)
{
	struct dns_cache *c = xcalloc(1, sizeof *c);

	if (max_entries == 0)
		max_entries = 1;
	c->max_entries = max_entries;
	c->nbuckets = 16;
	while (c->nbuckets < max_entries && c->nbuckets < ((size_t)1 << 20))
		c->nbuckets <<= 1;
	c->buckets = xcalloc(c->nbuckets, sizeof *c->buckets);
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

static void
entry_free(struct cache_entry *e)
{
	free(e->name);
	dns_rrset_free(&e->rs);
	free(e);
}

/* Unlinks e from its chain and the age list; the caller holds the lock. */
static void
entry_remove(struct dns_cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == e)
		*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		c->oldest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->newest = e->prev;
	c->count--;
	entry_free(e);
}

static struct cache_entry *
entry_find(struct dns_cache *c, const char *name, uint16_t type, uint64_t h)
{
	for (struct cache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e;
	    e = e->hnext)
		if (e->hash == h && e->type == type &&
		    strcasecmp(e->name, name) == 0)
			return e;
	return NULL;
}

void
dns_cache_free(struct dns_cache **cp)
{
	struct dns_cache *c = *cp;

	if (c == NULL)
		return;
	while (c->oldest)
		entry_remove(c, c->oldest);
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
	*cp = NULL;
}

void
dns_cache_put(struct dns_cache *c, const char *name, uint16_t type,
    const struct dns_rrset *rs, uint32_t ttl_s, int64_t now_ms)
{
	uint64_t h;
	struct cache_entry *e, *old;

	if (ttl_s == 0 || rs == NULL)
		return;
	h = cache_hash(name, type);
	/* Copy outside the lock: it is the slow part. */
	e = xcalloc(1, sizeof *e);
	e->hash = h;
	e->type = type;
	e->expires_ms = now_ms + (int64_t)ttl_s * 1000;
	e->name = xstrdup(name);
	str_lower(e->name);
	e->rs = dns_rrset_copy(rs);

	pthread_mutex_lock(&c->lock);
	if ((old = entry_find(c, name, type, h)) != NULL)
		entry_remove(c, old);
	while (c->count >= c->max_entries && c->oldest)
		entry_remove(c, c->oldest);
	e->hnext = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	e->prev = c->newest;
	if (c->newest)
		c->newest->next = e;
	else
		c->oldest = e;
	c->newest = e;
	c->count++;
	pthread_mutex_unlock(&c->lock);
}

struct dns_rrset *
dns_cache_get(struct dns_cache *c, const char *name, uint16_t type,
    int64_t now_ms)
{
	uint64_t h = cache_hash(name, type);
	struct cache_entry *e;
	struct dns_rrset *rs = NULL;

	pthread_mutex_lock(&c->lock);
	e = entry_find(c, name, type, h);
	if (e != NULL && e->expires_ms <= now_ms) {
		entry_remove(c, e);
		e = NULL;
	}
	if (e != NULL) {
		rs = dns_rrset_copy(e->rs);
		rs->ttl = (uint32_t)((e->expires_ms - now_ms + 999) / 1000);
	}
	pthread_mutex_unlock(&c->lock);
	return rs;
}

size_t
dns_cache_count(struct dns_cache *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->count;
	pthread_mutex_unlock(&c->lock);
	return n;
}
