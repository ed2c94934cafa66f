/*
 * metrics_serve: the metrics endpoint with a known run's values, for
 * tests/integration/test_metrics.py to scrape with real clients (curl,
 * urllib, a Prometheus server). It serves on 127.0.0.1 (a free port, or
 * the one given as argv[1]), prints "port N" once serving, logs at debug
 * level to stderr (one line per scrape, naming the format served), and
 * stops when its stdin reaches EOF. Exit status 0, or 1 when the
 * endpoint cannot start.
 *
 * The known run: 7 connections, 2 rejections for dnsbl and 1 for
 * relay_denied, 3 commits of 3 ms, 5 sessions open, queue bytes 1234.5
 * from a callback, and two destinations in flight.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "server/metrics_http.h"

static double
queue_bytes(void *arg)
{
	(void)arg;
	return 1234.5;
}

static size_t
destinations(struct metrics_sample *out, size_t max, void *arg)
{
	(void)arg;
	if (max < 2)
		return 0;
	snprintf(out[0].label, sizeof out[0].label, "example.org");
	out[0].value = 4;
	snprintf(out[1].label, sizeof out[1].label, "example.net");
	out[1].value = 1;
	return 2;
}

int
main(int argc, char **argv)
{
	char addr[64], err[256], buf[256];
	struct metrics_http *h;

	snprintf(addr, sizeof addr, "127.0.0.1:%s", argc > 1 ? argv[1] : "0");
	log_set_level(LOG_LVL_DEBUG);
	metrics_add(M_CONNECTIONS, 7);
	metrics_add_label(M_REJECTIONS, MR_DNSBL, 2);
	metrics_inc_label(M_REJECTIONS, MR_RELAY_DENIED);
	for (int i = 0; i < 3; i++)
		metrics_observe(M_COMMIT_LATENCY, 0.003);
	metrics_gauge_set(M_SESSIONS, 5);
	metrics_gauge_callback(M_QUEUE_BYTES, queue_bytes, NULL);
	metrics_top_callback(M_DESTINATION_CONCURRENCY, destinations, NULL);
	h = metrics_http_start(addr, err, sizeof err);
	if (h == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("port %u\n", (unsigned)metrics_http_port(h));
	fflush(stdout);
	while (read(0, buf, sizeof buf) > 0)
		;
	metrics_http_stop(&h);
	return 0;
}
