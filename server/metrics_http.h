/*
 * metrics_http: the Prometheus endpoint (`metrics_listen`), served by
 * libmicrohttpd on a thread of its own.
 *
 * It answers GET (and HEAD) of /metrics with lib/metrics's rendering, in
 * OpenMetrics when the Accept header prefers it (Prometheus does) and in
 * the text format otherwise. Any other path is 404; another method on
 * /metrics is 405 with `Allow: GET, HEAD`. It is bounded:
 * METRICS_HTTP_CONNECTIONS connections at once (more are closed at
 * accept), METRICS_HTTP_REQUEST_MAX bytes of request line and headers per
 * connection (more: an error reply and close), METRICS_HTTP_TIMEOUT
 * seconds of idleness, and METRICS_HTTP_RESPONSE_MAX bytes of rendered
 * metrics (more: 500). Nothing a client sends is buffered beyond that.
 *
 * The endpoint has no authentication: bind it to loopback or a
 * monitoring network only.
 *
 * Errors: start fails with a message (bad address, bind or listen error,
 * libmicrohttpd refusing to start); afterwards problems are logged as
 * warnings and never stop mail.
 *
 * Threads: start and stop on one thread (the main thread), which should
 * already block the signals the daemon takes with sigwait: the HTTP thread
 * inherits its mask. Rendering runs on the HTTP thread (gauge callbacks
 * too: lib/metrics.h).
 */
#ifndef SERVER_METRICS_HTTP_H
#define SERVER_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define METRICS_HTTP_CONNECTIONS	8
#define METRICS_HTTP_REQUEST_MAX	(16 * 1024)
#define METRICS_HTTP_TIMEOUT		10
#define METRICS_HTTP_RESPONSE_MAX	(1024 * 1024)

struct metrics_http;

/*
 * Parses "ADDR:PORT" with a numeric IPv4 address or "[ADDR]:PORT" with a
 * numeric IPv6 address (port 0..65535; 0 picks a free port) into *sa and
 * *salen. Returns 0, or -1 with a message in err (errsize > 0). Reads at
 * most 80 bytes of text. Thread-safe.
 */
int metrics_http_parse_addr(const char *text, struct sockaddr_storage *sa,
    socklen_t *salen, char *err, size_t errsize);

/*
 * Binds addr (as metrics_http_parse_addr takes it) and starts serving.
 * Returns the endpoint, or NULL with a message in err (errsize > 0).
 */
struct metrics_http *metrics_http_start(const char *addr, char *err,
    size_t errsize);

/* The port bound (the free port chosen when the address gave 0). */
uint16_t metrics_http_port(const struct metrics_http *h);

/* Stops the thread, closes the socket and every connection, frees *hp and
 * sets it to NULL. A scrape in progress is cut off. NULL is fine. */
void metrics_http_stop(struct metrics_http **hp);

#endif
