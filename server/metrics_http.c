/*
 * metrics_http: GET /metrics over libmicrohttpd (see metrics_http.h). We
 * bind the socket ourselves (so errors read like the rest of the daemon's
 * and port 0 works) and hand it to a daemon with its own polling thread.
 */
#include "server/metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/util.h"

#define METRICS_HTTP_ADDR_MAX 80

struct metrics_http {
	struct MHD_Daemon *daemon;
	uint16_t port;
};

static void err_set(char *err, size_t errsize, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
err_set(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
}

int
metrics_http_parse_addr(const char *text, struct sockaddr_storage *sa,
    socklen_t *salen, char *err, size_t errsize)
{
	char host[METRICS_HTTP_ADDR_MAX];
	const char *colon, *port;
	size_t len = strnlen(text, METRICS_HTTP_ADDR_MAX), hlen;
	unsigned long p = 0;

	memset(sa, 0, sizeof *sa);
	if (len >= METRICS_HTTP_ADDR_MAX) {
		err_set(err, errsize, "address too long");
		return -1;
	}
	colon = strrchr(text, ':');
	if (colon == NULL || colon[1] == '\0') {
		err_set(err, errsize, "want ADDR:PORT or [ADDR]:PORT");
		return -1;
	}
	for (port = colon + 1; *port; port++) {
		if (*port < '0' || *port > '9' || p > 65535) {
			err_set(err, errsize, "bad port");
			return -1;
		}
		p = p * 10 + (unsigned long)(*port - '0');
	}
	if (p > 65535) {
		err_set(err, errsize, "bad port");
		return -1;
	}
	hlen = (size_t)(colon - text);
	if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		memcpy(host, text + 1, hlen - 2);
		host[hlen - 2] = '\0';
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
			err_set(err, errsize, "bad IPv6 address");
			return -1;
		}
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		*salen = sizeof *s6;
		return 0;
	}
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
			err_set(err, errsize, "bad IPv4 address (IPv6 goes in brackets)");
			return -1;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		*salen = sizeof *s4;
	}
	return 0;
}

static void metrics_http_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
metrics_http_log(void *cls, const char *fmt, va_list ap)
{
	char text[512];
	size_t n;

	(void)cls;
	vsnprintf(text, sizeof text, fmt, ap);
	n = strlen(text);
	while (n > 0 && text[n - 1] == '\n')
		text[--n] = '\0';
	log_warn("metrics: %s", text);
}

static enum MHD_Result
metrics_http_reply(struct MHD_Connection *c, unsigned status, const char *text,
    const char *allow)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text),
	    (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (allow != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
metrics_http_answer(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	enum metrics_format fmt;
	struct MHD_Response *r;
	enum MHD_Result ret;
	struct buf out;
	size_t len;
	char *body;

	(void)cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	if (strcmp(url, "/metrics") != 0)
		return metrics_http_reply(c, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return metrics_http_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "method not allowed\n", "GET, HEAD");
	fmt = metrics_format_from_accept(MHD_lookup_connection_value(c,
	    MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
	buf_init(&out, METRICS_HTTP_RESPONSE_MAX);
	if (metrics_render(&out, fmt) != 0) {
		buf_free(&out);
		log_warn("metrics: the rendering passed %d bytes", METRICS_HTTP_RESPONSE_MAX);
		return metrics_http_reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "metrics too large\n", NULL);
	}
	body = buf_steal(&out, &len);
	if (body == NULL)
		body = xstrdup("");
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, metrics_content_type(fmt));
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	log_debug("metrics: served %zu bytes (%s)", len,
	    fmt == METRICS_OPENMETRICS ? "openmetrics" : "text");
	return ret;
}

struct metrics_http *
metrics_http_start(const char *addr, char *err, size_t errsize)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	struct metrics_http *h;
	int fd, one = 1;
	char why[128];

	if (metrics_http_parse_addr(addr, &sa, &salen, why, sizeof why) != 0) {
		err_set(err, errsize, "metrics_listen %s: %s", addr, why);
		return NULL;
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		err_set(err, errsize, "metrics_listen %s: socket: %s", addr, strerror(errno));
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
		err_set(err, errsize, "metrics_listen %s: %s", addr, strerror(errno));
		close(fd);
		return NULL;
	}
	h = xcalloc(1, sizeof *h);
	h->port = ntohs(sa.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&sa)->sin6_port : ((struct sockaddr_in *)&sa)->sin_port);
	h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_ERROR_LOG, 0, NULL, NULL, metrics_http_answer, h,
	    MHD_OPTION_EXTERNAL_LOGGER, metrics_http_log, (void *)NULL,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_CONNECTIONS,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_HTTP_REQUEST_MAX,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_HTTP_TIMEOUT,
	    MHD_OPTION_STRICT_FOR_CLIENT, 1,
	    MHD_OPTION_END);
	if (h->daemon == NULL) {
		err_set(err, errsize, "metrics_listen %s: libmicrohttpd did not start", addr);
		close(fd);
		free(h);
		return NULL;
	}
	log_info("metrics: serving http://%s/metrics (port %u)", addr, (unsigned)h->port);
	return h;
}

uint16_t
metrics_http_port(const struct metrics_http *h)
{
	return h->port;
}

void
metrics_http_stop(struct metrics_http **hp)
{
	struct metrics_http *h = *hp;

	if (h == NULL)
		return;
	/* Joins the thread and closes the listening socket we gave it. */
	MHD_stop_daemon(h->daemon);
	free(h);
	*hp = NULL;
}
