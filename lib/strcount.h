/*
 * strcount: how many times each string was counted, strings compared
 * without ASCII case (mail addresses, where one mailbox may be written
 * several ways). For lists an attacker may write: keyed SipHash, open
 * addressing, growing as it fills, so each operation is O(1) expected.
 * The table keeps its own copy of each string.
 *
 * Errors: out of memory aborts (lib/util.h).
 * Threads: one table, one thread.
 */
#ifndef LIB_STRCOUNT_H
#define LIB_STRCOUNT_H

#include <stddef.h>
#include <stdint.h>

struct strcount_slot {
	char *s;		/* NULL = empty */
	size_t n;
};

struct strcount {
	struct strcount_slot *slots;	/* cap of them, a power of two */
	size_t used, cap;
	uint8_t key[16];
};

void strcount_init(struct strcount *t);

/* The count of s (0 when never counted). */
size_t strcount_get(const struct strcount *t, const char *s);

/* Counts s once more; returns the count before. */
size_t strcount_add(struct strcount *t, const char *s);

/* Counts s once less (never below 0). */
void strcount_sub(struct strcount *t, const char *s);

void strcount_free(struct strcount *t);

#endif
