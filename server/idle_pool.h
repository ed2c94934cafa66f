/*
 * idle_pool: connections to a filter daemon (a policy service, Dovecot's
 * auth service) kept open between uses, shared by the pool threads that
 * talk to it. A thread takes one (or gets NULL and makes a new one), uses
 * it alone, and gives it back; past max idle ones a given one is freed.
 *
 * The pool knows nothing of what it holds but how to free it.
 * Threads: any thread; one short critical section per call. An item
 * taken belongs to the taker until it is given back.
 */
#ifndef SERVER_IDLE_POOL_H
#define SERVER_IDLE_POOL_H

#include <pthread.h>
#include <stddef.h>

struct idle_pool {
	pthread_mutex_t lock;
	void **items;			/* the idle ones, newest last */
	size_t n, max;
	void (*free_item)(void *item);
};

/* An empty pool that keeps at most max (>= 1) idle items. */
void idle_pool_init(struct idle_pool *p, size_t max, void (*free_item)(void *));

/* The most recently given item (the likeliest still open), or NULL. */
void *idle_pool_take(struct idle_pool *p);

/* Gives item back (NULL is fine); frees it when max are idle already. */
void idle_pool_give(struct idle_pool *p, void *item);

/* Frees every idle item and the pool's storage. No item may be out. */
void idle_pool_destroy(struct idle_pool *p);

#endif
