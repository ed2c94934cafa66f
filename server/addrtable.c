/*
 * addrtable: shards of preallocated records, each shard with a mutex, a
 * chained hash index (32-bit record numbers) and a doubly linked
 * recency list; the least recently used record is reused when a shard is
 * full (see addrtable.h).
 */
#include "server/addrtable.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/siphash.h"
#include "lib/util.h"

#define NONE UINT32_MAX
#define ADDRTABLE_SHARDS_BIG 16		/* shards of a table of >= 4096 */
#define ADDRTABLE_VALUE_MAX 4096

struct addrtable_rec {
	uint8_t key[ADDRTABLE_KEY_SIZE];
	uint32_t chain;			/* next record in the bucket */
	uint32_t bucket;		/* the bucket it is in */
	uint32_t newer, older;		/* recency list */
};

struct addrtable_shard {
	pthread_mutex_t lock;
	size_t count;
	uint32_t *buckets;		/* nbuckets heads */
	struct addrtable_rec *recs;	/* cap records */
	unsigned char *values;		/* cap * value_stride bytes */
	uint32_t free_list;		/* through chain */
	uint32_t newest, oldest;
};

struct addrtable {
	uint8_t secret[16];
	uint8_t secret2[16];		/* second half of a name key */
	size_t nshards, cap, nbuckets, value_size, value_stride;
	addrtable_drop_fn *drop;
	struct addrtable_shard *shards;
};

struct addrtable *
addrtable_new(size_t max_entries, size_t value_size, addrtable_drop_fn *drop)
{
	struct addrtable *t;

	if (max_entries < 1)
		max_entries = 1;
	if (max_entries > ADDRTABLE_MAX_ENTRIES)
		max_entries = ADDRTABLE_MAX_ENTRIES;
	if (value_size < 1)
		value_size = 1;
	if (value_size > ADDRTABLE_VALUE_MAX)
		value_size = ADDRTABLE_VALUE_MAX;
	t = xcalloc(1, sizeof *t);
	siphash_key_random(t->secret, sizeof t->secret);
	siphash_key_random(t->secret2, sizeof t->secret2);
	t->nshards = max_entries >= 4096 ? ADDRTABLE_SHARDS_BIG : 1;
	t->cap = (max_entries + t->nshards - 1) / t->nshards;
	for (t->nbuckets = 1; t->nbuckets < t->cap; t->nbuckets <<= 1)
		;
	t->value_size = value_size;
	t->value_stride = (value_size + 15) & ~(size_t)15;
	t->drop = drop;
	t->shards = xcalloc(t->nshards, sizeof *t->shards);
	for (size_t s = 0; s < t->nshards; s++) {
		struct addrtable_shard *sh = &t->shards[s];
		pthread_mutex_init(&sh->lock, NULL);
		sh->buckets = xmalloc(t->nbuckets * sizeof *sh->buckets);
		for (size_t b = 0; b < t->nbuckets; b++)
			sh->buckets[b] = NONE;
		sh->recs = xcalloc(t->cap, sizeof *sh->recs);
		sh->values = xcalloc(t->cap, t->value_stride);
		for (size_t i = 0; i < t->cap; i++)
			sh->recs[i].chain = i + 1 < t->cap ? (uint32_t)(i + 1) : NONE;
		sh->free_list = 0;
		sh->newest = sh->oldest = NONE;
	}
	return t;
}

static void *
addrtable_value(const struct addrtable *t, struct addrtable_shard *sh, uint32_t i)
{
	return sh->values + (size_t)i * t->value_stride;
}

void
addrtable_free(struct addrtable **tp)
{
	struct addrtable *t = *tp;

	if (t == NULL)
		return;
	for (size_t s = 0; s < t->nshards; s++) {
		struct addrtable_shard *sh = &t->shards[s];
		if (t->drop != NULL)
			for (uint32_t i = sh->newest; i != NONE; i = sh->recs[i].older)
				t->drop(addrtable_value(t, sh, i));
		pthread_mutex_destroy(&sh->lock);
		free(sh->buckets);
		free(sh->recs);
		free(sh->values);
	}
	free(t->shards);
	free(t);
	*tp = NULL;
}

/* The key's shard and bucket. */
static struct addrtable_shard *
addrtable_locate(struct addrtable *t, const uint8_t *key, size_t *bucket)
{
	uint64_t h = siphash24(t->secret, key, ADDRTABLE_KEY_SIZE);

	*bucket = (size_t)h & (t->nbuckets - 1);
	return &t->shards[(h >> 56) % t->nshards];
}

static uint32_t
addrtable_lookup(struct addrtable_shard *sh, size_t bucket, const uint8_t *key)
{
	uint32_t i;

	for (i = sh->buckets[bucket]; i != NONE; i = sh->recs[i].chain)
		if (memcmp(sh->recs[i].key, key, ADDRTABLE_KEY_SIZE) == 0)
			break;
	return i;
}

static void
addrtable_unlink_recency(struct addrtable_shard *sh, uint32_t i)
{
	struct addrtable_rec *r = &sh->recs[i];

	if (r->newer != NONE)
		sh->recs[r->newer].older = r->older;
	else
		sh->newest = r->older;
	if (r->older != NONE)
		sh->recs[r->older].newer = r->newer;
	else
		sh->oldest = r->newer;
}

static void
addrtable_make_newest(struct addrtable_shard *sh, uint32_t i)
{
	struct addrtable_rec *r = &sh->recs[i];

	r->newer = NONE;
	r->older = sh->newest;
	if (sh->newest != NONE)
		sh->recs[sh->newest].newer = i;
	sh->newest = i;
	if (sh->oldest == NONE)
		sh->oldest = i;
}

/* Takes record i (in bucket) out of the index and the recency list,
 * drops its value and puts it on the free list. */
static void
addrtable_delete(struct addrtable *t, struct addrtable_shard *sh, size_t bucket,
    uint32_t i)
{
	uint32_t *link = &sh->buckets[bucket];

	while (*link != i)
		link = &sh->recs[*link].chain;
	*link = sh->recs[i].chain;
	addrtable_unlink_recency(sh, i);
	if (t->drop != NULL)
		t->drop(addrtable_value(t, sh, i));
	sh->recs[i].chain = sh->free_list;
	sh->free_list = i;
	sh->count--;
}

int
addrtable_update(struct addrtable *t, const uint8_t key[ADDRTABLE_KEY_SIZE],
    addrtable_fn *fn, void *arg)
{
	size_t bucket;
	struct addrtable_shard *sh = addrtable_locate(t, key, &bucket);
	uint32_t i;
	int created = 0;

	pthread_mutex_lock(&sh->lock);
	i = addrtable_lookup(sh, bucket, key);
	if (i != NONE) {
		addrtable_unlink_recency(sh, i);
	} else {
		if (sh->free_list == NONE) {
			uint32_t victim = sh->oldest;
			addrtable_delete(t, sh, sh->recs[victim].bucket, victim);
		}
		i = sh->free_list;
		sh->free_list = sh->recs[i].chain;
		memcpy(sh->recs[i].key, key, ADDRTABLE_KEY_SIZE);
		sh->recs[i].chain = sh->buckets[bucket];
		sh->recs[i].bucket = (uint32_t)bucket;
		sh->buckets[bucket] = i;
		memset(addrtable_value(t, sh, i), 0, t->value_size);
		sh->count++;
		created = 1;
	}
	addrtable_make_newest(sh, i);
	if (fn(addrtable_value(t, sh, i), created, arg) == ADDRTABLE_REMOVE)
		addrtable_delete(t, sh, bucket, i);
	pthread_mutex_unlock(&sh->lock);
	return created;
}

int
addrtable_find(struct addrtable *t, const uint8_t key[ADDRTABLE_KEY_SIZE],
    addrtable_fn *fn, void *arg)
{
	size_t bucket;
	struct addrtable_shard *sh = addrtable_locate(t, key, &bucket);
	uint32_t i;

	pthread_mutex_lock(&sh->lock);
	i = addrtable_lookup(sh, bucket, key);
	if (i != NONE) {
		addrtable_unlink_recency(sh, i);
		addrtable_make_newest(sh, i);
		if (fn(addrtable_value(t, sh, i), 0, arg) == ADDRTABLE_REMOVE)
			addrtable_delete(t, sh, bucket, i);
	}
	pthread_mutex_unlock(&sh->lock);
	return i != NONE;
}

int
addrtable_remove(struct addrtable *t, const uint8_t key[ADDRTABLE_KEY_SIZE])
{
	size_t bucket;
	struct addrtable_shard *sh = addrtable_locate(t, key, &bucket);
	uint32_t i;

	pthread_mutex_lock(&sh->lock);
	i = addrtable_lookup(sh, bucket, key);
	if (i != NONE)
		addrtable_delete(t, sh, bucket, i);
	pthread_mutex_unlock(&sh->lock);
	return i != NONE;
}

size_t
addrtable_count(struct addrtable *t)
{
	size_t n = 0;

	for (size_t s = 0; s < t->nshards; s++) {
		pthread_mutex_lock(&t->shards[s].lock);
		n += t->shards[s].count;
		pthread_mutex_unlock(&t->shards[s].lock);
	}
	return n;
}

size_t
addrtable_capacity(const struct addrtable *t)
{
	return t->cap * t->nshards;
}

void
addrtable_key_name(const struct addrtable *t, const char *name,
    uint8_t key[ADDRTABLE_KEY_SIZE])
{
	size_t len = strlen(name);
	uint64_t a = siphash24(t->secret, name, len);
	uint64_t b = siphash24(t->secret2, name, len);

	memcpy(key, &a, 8);
	memcpy(key + 8, &b, 8);
}
