/*
 * envelope: queue ids (microseconds since the epoch, made strictly
 * increasing across threads with a compare-and-swap) and envelope_free.
 *
 * The last id handed out is the one process-wide mutable value here; the
 * API (queue_id_next without a context) requires it, and it is atomic.
 */
#include "queue/envelope.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic uint64_t queue_id_last;

static uint64_t
queue_id_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

queue_id_t
queue_id_next(void)
{
	uint64_t now = queue_id_now_us();
	uint64_t last = atomic_load(&queue_id_last);
	uint64_t next;

	do {
		next = now > last ? now : last + 1;
	} while (!atomic_compare_exchange_weak(&queue_id_last, &last, next));
	return next;
}

void
queue_id_floor(queue_id_t floor)
{
	uint64_t last = atomic_load(&queue_id_last);

	while (last < floor &&
	    !atomic_compare_exchange_weak(&queue_id_last, &last, floor))
		;
}

char *
queue_id_format(queue_id_t id, char *out, size_t outsize)
{
	if (outsize == 0)
		return out;
	if (snprintf(out, outsize, "%013" PRIX64, id) < 0)
		out[0] = '\0';
	return out;
}

int
queue_id_parse(const char *s, queue_id_t *id_r)
{
	uint64_t v = 0;
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < QUEUE_ID_LEN; i++) {
		char ch = s[i];
		unsigned d;

		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned)(ch - 'A' + 10);
		else
			return -1;	/* also catches a short string's NUL */
		v = v << 4 | d;
	}
	if (s[QUEUE_ID_LEN] != '\0' || v == 0)
		return -1;
	*id_r = v;
	return 0;
}

void
envelope_free(struct envelope *env)
{
	if (env == NULL)
		return;
	free(env->sender);
	free(env->helo);
	free(env->client_addr);
	free(env->auth_user);
	free(env->envid);
	for (size_t i = 0; i < env->nrcpts && env->rcpts != NULL; i++) {
		free(env->rcpts[i].addr);
		free(env->rcpts[i].orcpt);
	}
	free(env->rcpts);
	memset(env, 0, sizeof *env);
}
