/* inflight: the global cap on message bytes in memory (inflight.h). */
#include "server/inflight.h"

#include <stdatomic.h>

static _Atomic size_t inflight_total;

int
inflight_reserve(size_t n, size_t cap)
{
	size_t cur = atomic_load_explicit(&inflight_total, memory_order_relaxed);

	do {
		if (n > cap || cur > cap - n)
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(&inflight_total, &cur,
	    cur + n, memory_order_relaxed, memory_order_relaxed));
	return 1;
}

void
inflight_release(size_t n)
{
	atomic_fetch_sub_explicit(&inflight_total, n, memory_order_relaxed);
}

size_t
inflight_bytes(void)
{
	return atomic_load_explicit(&inflight_total, memory_order_relaxed);
}
