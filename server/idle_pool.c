/* idle_pool: open connections kept between uses (contract in idle_pool.h). */
#include "server/idle_pool.h"

#include <stdlib.h>

#include "lib/util.h"

void
idle_pool_init(struct idle_pool *p, size_t max, void (*free_item)(void *))
{
	pthread_mutex_init(&p->lock, NULL);
	p->max = max > 0 ? max : 1;
	p->items = xcalloc(p->max, sizeof *p->items);
	p->n = 0;
	p->free_item = free_item;
}

void *
idle_pool_take(struct idle_pool *p)
{
	void *item = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->n > 0)
		item = p->items[--p->n];
	pthread_mutex_unlock(&p->lock);
	return item;
}

void
idle_pool_give(struct idle_pool *p, void *item)
{
	if (item == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->n < p->max) {
		p->items[p->n++] = item;
		item = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	if (item != NULL)
		p->free_item(item);
}

void
idle_pool_destroy(struct idle_pool *p)
{
	for (size_t i = 0; i < p->n; i++)
		p->free_item(p->items[i]);
	free(p->items);
	p->items = NULL;
	p->n = 0;
	pthread_mutex_destroy(&p->lock);
}
