/*
 * daemon_metrics: scrape-time gauges, cached queue gauges and the
 * metrics endpoint of the daemon (daemon_metrics.h).
 */
#include "server/daemon_metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/util.h"
#include "queue/scheduler.h"
#include "queue/store.h"
#include "server/connlimit.h"
#include "server/metrics_http.h"

#define QUEUE_REFRESH_MIN_MS 2000	/* queue gauges at most this stale */
#define QUEUE_REFRESH_SHARE 50		/* interval >= this many counting times */

struct daemon_metrics {
	struct queue_store *st;
	struct scheduler *sched;
	struct metrics_http *http;
	char *addr;			/* what http serves, or NULL */
	int64_t next_refresh;		/* monotonic ms */
};

static double
gauge_sessions(void *arg)
{
	(void)arg;
	return connlimit_total();
}

static size_t
top_destinations(struct metrics_sample *out, size_t max, void *arg)
{
	struct sched_dest_jobs top[METRICS_TOP_MAX];
	size_t n;

	if (max > METRICS_TOP_MAX)
		max = METRICS_TOP_MAX;
	n = scheduler_busiest(arg, top, max);
	for (size_t i = 0; i < n; i++) {
		/* A bare local part has no domain: name it so. */
		str_copy(out[i].label, top[i].dest[0] ? top[i].dest : "(local)",
		    sizeof out[i].label);
		out[i].value = top[i].jobs;
	}
	return n;
}

/* Counts the queue (store_size_get) into the gauges; the next count comes
 * after QUEUE_REFRESH_MIN_MS or QUEUE_REFRESH_SHARE times what this one
 * took, whichever is longer. */
static void
refresh_queue(struct daemon_metrics *dm)
{
	struct store_size sz;
	int64_t start = time_mono_ms(), took, wait;

	if (store_size_get(dm->st, &sz) == STORE_OK) {
		int64_t now = time(NULL);

		metrics_gauge_set(M_QUEUE_MESSAGES, (int64_t)sz.messages);
		metrics_gauge_set(M_QUEUE_RECIPIENTS, (int64_t)sz.pending);
		metrics_gauge_set(M_QUEUE_BYTES, (int64_t)sz.bytes);
		metrics_gauge_set(M_QUEUE_OLDEST_AGE, sz.oldest > 0 && now > sz.oldest ?
		    now - sz.oldest : 0);
	}
	took = time_mono_ms() - start;
	wait = took * QUEUE_REFRESH_SHARE;
	if (wait < QUEUE_REFRESH_MIN_MS)
		wait = QUEUE_REFRESH_MIN_MS;
	dm->next_refresh = time_mono_ms() + wait;
}

struct daemon_metrics *
daemon_metrics_start(struct queue_store *st, struct scheduler *sched)
{
	struct daemon_metrics *dm = xcalloc(1, sizeof *dm);

	dm->st = st;
	dm->sched = sched;
	metrics_gauge_callback(M_SESSIONS, gauge_sessions, NULL);
	metrics_top_callback(M_DESTINATION_CONCURRENCY, top_destinations, sched);
	refresh_queue(dm);
	return dm;
}

int
daemon_metrics_listen(struct daemon_metrics *dm, const char *addr, char *err,
    size_t errsize)
{
	struct metrics_http *h = NULL;

	if ((addr == NULL && dm->addr == NULL) ||
	    (addr != NULL && dm->addr != NULL && strcmp(addr, dm->addr) == 0))
		return 0;
	/* The old endpoint goes first: the new address may be the same
	 * port on another form of the address. When the new one then fails,
	 * the old one is started again. */
	metrics_http_stop(&dm->http);
	if (addr != NULL && (h = metrics_http_start(addr, err, errsize)) == NULL) {
		char again[256];

		if (dm->addr != NULL &&
		    (dm->http = metrics_http_start(dm->addr, again, sizeof again)) == NULL)
			log_error("metrics: %s: %s", dm->addr, again);
		return -1;
	}
	dm->http = h;
	free(dm->addr);
	dm->addr = addr ? xstrdup(addr) : NULL;
	if (h != NULL)
		log_info("metrics: serving /metrics on %s (port %u)", addr,
		    (unsigned)metrics_http_port(h));
	return 0;
}

void
daemon_metrics_tick(struct daemon_metrics *dm)
{
	if (time_mono_ms() >= dm->next_refresh)
		refresh_queue(dm);
}

void
daemon_metrics_stop(struct daemon_metrics **dmp)
{
	struct daemon_metrics *dm = *dmp;

	*dmp = NULL;
	if (dm == NULL)
		return;
	metrics_http_stop(&dm->http);
	metrics_gauge_callback(M_SESSIONS, NULL, NULL);
	metrics_top_callback(M_DESTINATION_CONCURRENCY, NULL, NULL);
	free(dm->addr);
	free(dm);
}
