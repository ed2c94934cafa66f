/*
 * strcount: open addressing with linear probing over a power-of-two table
 * kept at most half full; the hash is SipHash of the lower-cased string.
 * A count that falls to 0 keeps its slot (nothing is ever removed).
 */
#include "lib/strcount.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/siphash.h"
#include "lib/util.h"

#define STRCOUNT_STACK 512	/* longer strings are lower-cased on the heap */

static uint64_t
strcount_hash(const struct strcount *t, const char *s)
{
	uint8_t stack[STRCOUNT_STACK] = { 0 }, *low = stack;
	size_t len = strlen(s);
	uint64_t h;

	if (len > sizeof stack)
		low = xmalloc(len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		low[i] = c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
	}
	h = siphash24(t->key, low, len);
	if (low != stack)
		free(low);
	return h;
}

void
strcount_init(struct strcount *t)
{
	memset(t, 0, sizeof *t);
	siphash_key_random(t->key, sizeof t->key);
}

/* The slot of s, or the empty one where it would go (cap > 0). */
static struct strcount_slot *
strcount_find(const struct strcount *t, const char *s)
{
	size_t i = (size_t)strcount_hash(t, s) & (t->cap - 1);

	while (t->slots[i].s != NULL && strcasecmp(t->slots[i].s, s) != 0)
		i = (i + 1) & (t->cap - 1);
	return &t->slots[i];
}

static void
strcount_grow(struct strcount *t)
{
	struct strcount_slot *old = t->slots;
	size_t oldcap = t->cap;

	t->cap = oldcap ? oldcap * 2 : 16;
	t->slots = xcalloc(t->cap, sizeof *t->slots);
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].s != NULL)
			*strcount_find(t, old[i].s) = old[i];
	free(old);
}

size_t
strcount_get(const struct strcount *t, const char *s)
{
	return t->cap ? strcount_find(t, s)->n : 0;
}

size_t
strcount_add(struct strcount *t, const char *s)
{
	struct strcount_slot *slot;

	if (2 * (t->used + 1) > t->cap)
		strcount_grow(t);
	slot = strcount_find(t, s);
	if (slot->s == NULL) {
		slot->s = xstrdup(s);
		t->used++;
	}
	return slot->n++;
}

void
strcount_sub(struct strcount *t, const char *s)
{
	struct strcount_slot *slot;

	if (t->cap == 0)
		return;
	slot = strcount_find(t, s);
	if (slot->n > 0)
		slot->n--;
}

void
strcount_free(struct strcount *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->slots[i].s);
	free(t->slots);
	memset(t, 0, sizeof *t);
}
