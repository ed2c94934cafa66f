/*
 * daemon_metrics: the daemon's side of the metric set (lib/metrics.h).
 * It wires the gauges read at scrape time (sessions open, the busiest
 * destinations' deliveries in flight), keeps the queue gauges (messages,
 * recipients, bytes, the oldest message's age) as cached values refreshed
 * from the store from time to time, so that a scrape never reads the
 * queue, and runs the endpoint (server/metrics_http.h) at the address
 * metrics_listen names, moving it when a reload changes that.
 *
 * Errors: daemon_metrics_listen fails with a message (bad address, bind
 * error); the endpoint that was running keeps running then.
 * Threads: every function on the main thread. The callbacks it installs
 * run on the metrics HTTP thread.
 */
#ifndef SERVER_DAEMON_METRICS_H
#define SERVER_DAEMON_METRICS_H

#include <stddef.h>

struct queue_store;
struct scheduler;
struct daemon_metrics;

/* Installs the scrape-time gauges over st and sched (both must outlive
 * the result) and reads the queue gauges once. */
struct daemon_metrics *daemon_metrics_start(struct queue_store *st,
    struct scheduler *sched);

/* Serves the endpoint at addr ("ADDR:PORT"), or stops it (addr NULL).
 * Does nothing when it already serves that address. Returns 0, or -1
 * with a message in err. */
int daemon_metrics_listen(struct daemon_metrics *dm, const char *addr, char *err,
    size_t errsize);

/* Called about once a second: refreshes the queue gauges when they are
 * due (every 2 s, less often when the queue is so large that counting it
 * takes long: at most 2% of one thread's time). */
void daemon_metrics_tick(struct daemon_metrics *dm);

/* Stops the endpoint, removes the callbacks and frees *dmp (NULL then). */
void daemon_metrics_stop(struct daemon_metrics **dmp);

#endif
