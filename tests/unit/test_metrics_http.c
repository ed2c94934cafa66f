/*
 * test_metrics_http: server/metrics_http on a free loopback port, scraped
 * by a real client (curl, told to use no proxy) and checked by
 * `promtool check metrics`: values of a known run, both formats, HEAD,
 * 404 and 405, the address parser with hostile text, a port in use, the
 * connection limit, an oversized request, and scrapes racing updates.
 * Nothing is sent beyond 127.0.0.1 and ::1.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/metrics.h"
#include "lib/util.h"
#include "server/metrics_http.h"

static struct metrics_http *http;
static char tmpdir[] = "/tmp/test_metrics_http.XXXXXX";

/* Runs cmd with sh; its stdout (at most 1 MiB) into a new string. */
static char *
run(const char *cmd, int *status_r)
{
	FILE *p = popen(cmd, "r");
	struct buf b;
	char chunk[4096];
	size_t n;

	buf_init(&b, 1 << 20);
	if (p == NULL) {
		*status_r = -1;
		return xstrdup("");
	}
	while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
		buf_append(&b, chunk, n);
	*status_r = pclose(p);
	return b.data ? buf_steal(&b, NULL) : xstrdup("");
}

/*
 * curl ARGS against path on our port; the response headers into a new
 * string *head_r, the body into *body_r; returns the HTTP status or -1.
 */
static int
curl(const char *args, const char *path, char **head_r, char **body_r)
{
	char cmd[1024], hfile[128], bfile[128];
	int status, code = -1;
	char *out;

	snprintf(hfile, sizeof hfile, "%s/head", tmpdir);
	snprintf(bfile, sizeof bfile, "%s/body", tmpdir);
	snprintf(cmd, sizeof cmd, "curl --noproxy '*' --path-as-is -sS -m 10 %s "
	    "-D %s -o %s -w '%%{http_code}' 'http://127.0.0.1:%u%s'", args, hfile,
	    bfile, (unsigned)metrics_http_port(http), path);
	out = run(cmd, &status);
	if (status == 0)
		code = atoi(out);
	free(out);
	snprintf(cmd, sizeof cmd, "cat %s/head", tmpdir);
	*head_r = run(cmd, &status);
	snprintf(cmd, sizeof cmd, "cat %s/body", tmpdir);
	*body_r = run(cmd, &status);
	return code;
}

static int
suite_init(void)
{
	char err[256];

	if (mkdtemp(tmpdir) == NULL)
		return -1;
	http = metrics_http_start("127.0.0.1:0", err, sizeof err);
	if (http == NULL)
		fprintf(stderr, "%s\n", err);
	return http == NULL ? -1 : 0;
}

static int
suite_clean(void)
{
	char cmd[128];
	int status;

	metrics_http_stop(&http);
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	free(run(cmd, &status));
	return 0;
}

static int
has_header(const char *head, const char *line)
{
	return strcasestr(head, line) != NULL;
}

/* The value of series in exposition text, or -1. */
static double
value_of(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

static void
test_parse_addr(void)
{
	static const struct {
		const char *text;
		int family;
		unsigned port;
	} good[] = {
		{ "127.0.0.1:9025", AF_INET, 9025 },
		{ "0.0.0.0:0", AF_INET, 0 },
		{ "[::1]:9025", AF_INET6, 9025 },
		{ "[::]:65535", AF_INET6, 65535 },
		{ "10.1.2.3:00080", AF_INET, 80 },
	};
	static const char *const bad[] = {
		"", ":", "127.0.0.1", "127.0.0.1:", ":9025", "127.0.0.1:65536",
		"127.0.0.1:99999999999999999999", "127.0.0.1:-1", "127.0.0.1:+1",
		"127.0.0.1:9025 ", " 127.0.0.1:9025", "127.0.0.1: 9025", "::1:9025",
		"[::1]", "[::1]:", "[127.0.0.1]:9025", "[::1:9025", "::1]:9025",
		"localhost:9025", "1.2.3:9025", "256.0.0.1:9025", "[]:9025",
		"127.0.0.1:0x50", "127.0.0.1:9025\n",
		"[aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa]:1",
	};
	struct sockaddr_storage sa;
	socklen_t salen;
	char err[128];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		CU_ASSERT_EQUAL_FATAL(metrics_http_parse_addr(good[i].text, &sa, &salen,
		    err, sizeof err), 0);
		CU_ASSERT_EQUAL(sa.ss_family, good[i].family);
		CU_ASSERT_EQUAL(ntohs(good[i].family == AF_INET ?
		    ((struct sockaddr_in *)&sa)->sin_port :
		    ((struct sockaddr_in6 *)&sa)->sin6_port), good[i].port);
		CU_ASSERT_EQUAL(salen, good[i].family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (metrics_http_parse_addr(bad[i], &sa, &salen, err, sizeof err) == 0)
			fprintf(stderr, "\n  accepted \"%s\"\n", bad[i]);
		CU_ASSERT_EQUAL(metrics_http_parse_addr(bad[i], &sa, &salen, err,
		    sizeof err), -1);
		CU_ASSERT(err[0] != '\0');
	}
	{
		char longtext[300];
		memset(longtext, '1', sizeof longtext - 1);
		longtext[sizeof longtext - 1] = '\0';
		CU_ASSERT_EQUAL(metrics_http_parse_addr(longtext, &sa, &salen, err,
		    sizeof err), -1);
	}
}

static void
test_scrape_text(void)
{
	char *head, *body, *before, cmd[256], *lint;
	int status;
	double c0, r0, h0;
	FILE *f;

	CU_ASSERT_EQUAL_FATAL(curl("", "/metrics", &head, &before), 200);
	free(head);
	c0 = value_of(before, "mailserver_connections_total");
	r0 = value_of(before, "mailserver_rejections_total{reason=\"unknown_recipient\"}");
	h0 = value_of(before, "mailserver_commit_latency_seconds_count");
	CU_ASSERT(c0 >= 0 && r0 >= 0 && h0 >= 0);
	free(before);

	/* A known run. */
	for (int i = 0; i < 3; i++)
		metrics_inc(M_CONNECTIONS);
	metrics_add_label(M_REJECTIONS, MR_UNKNOWN_RECIPIENT, 2);
	metrics_observe(M_COMMIT_LATENCY, 0.002);
	metrics_gauge_set(M_SESSIONS, 17);

	CU_ASSERT_EQUAL_FATAL(curl("", "/metrics", &head, &body), 200);
	CU_ASSERT(has_header(head, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
	CU_ASSERT_EQUAL(value_of(body, "mailserver_connections_total"), c0 + 3);
	CU_ASSERT_EQUAL(value_of(body,
	    "mailserver_rejections_total{reason=\"unknown_recipient\"}"), r0 + 2);
	CU_ASSERT_EQUAL(value_of(body, "mailserver_commit_latency_seconds_count"), h0 + 1);
	CU_ASSERT_EQUAL(value_of(body, "mailserver_sessions"), 17);

	/* The exposition-format checks of Prometheus's own linter. */
	snprintf(cmd, sizeof cmd, "%s/scrape.txt", tmpdir);
	f = fopen(cmd, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(body, f);
	fclose(f);
	snprintf(cmd, sizeof cmd, "promtool check metrics < %s/scrape.txt 2>&1", tmpdir);
	lint = run(cmd, &status);
	if (status != 0 || lint[0] != '\0')
		fprintf(stderr, "\n  promtool: %s\n", lint);
	CU_ASSERT_EQUAL(status, 0);
	CU_ASSERT_STRING_EQUAL(lint, "");
	free(lint);
	free(head);
	free(body);

	/* Broken text does fail the linter (the check can fail). */
	snprintf(cmd, sizeof cmd, "printf 'mailserver_x_total 1\\nmailserver_x_total 2\\n' | "
	    "promtool check metrics >/dev/null 2>&1");
	free(run(cmd, &status));
	CU_ASSERT(status != 0);
}

static void
test_scrape_openmetrics(void)
{
	char *head, *body;
	size_t n;

	CU_ASSERT_EQUAL_FATAL(curl("-H 'Accept: application/openmetrics-text;version=1.0.0,"
	    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1'", "/metrics", &head, &body), 200);
	CU_ASSERT(has_header(head, "Content-Type: application/openmetrics-text; version=1.0.0"));
	n = strlen(body);
	CU_ASSERT(n > 6 && strcmp(body + n - 6, "# EOF\n") == 0);
	CU_ASSERT(strstr(body, "# TYPE mailserver_connections counter\n") != NULL);
	free(head);
	free(body);

	CU_ASSERT_EQUAL(curl("-H 'Accept: text/plain'", "/metrics", &head, &body), 200);
	CU_ASSERT(has_header(head, "Content-Type: text/plain"));
	CU_ASSERT(strstr(body, "# EOF") == NULL);
	free(head);
	free(body);
}

static void
test_head_and_query(void)
{
	char *head, *body;

	CU_ASSERT_EQUAL(curl("-I", "/metrics", &head, &body), 200);
	CU_ASSERT(has_header(head, "Content-Type: text/plain"));
	CU_ASSERT(strstr(body, "mailserver_connections_total") == NULL);
	free(head);
	free(body);
	/* A query string does not change the path; %6d is an 'm'. */
	CU_ASSERT_EQUAL(curl("", "/metrics?x=1", &head, &body), 200);
	CU_ASSERT(strstr(body, "mailserver_connections_total") != NULL);
	free(head);
	free(body);
	CU_ASSERT_EQUAL(curl("", "/%6detrics", &head, &body), 200);
	free(head);
	free(body);
}

static void
test_not_found_and_not_allowed(void)
{
	static const char *const paths[] = {
		"/", "/metrics/", "/metricsx", "/METRICS", "/x/../metrics", "/%2fmetrics",
		"/favicon.ico", "//metrics",
	};
	static const char *const methods[] = { "POST", "PUT", "DELETE", "OPTIONS", "PATCH" };
	char *head, *body, args[64];

	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		int code = curl("", paths[i], &head, &body);
		if (code != 404)
			fprintf(stderr, "\n  %s: %d\n", paths[i], code);
		CU_ASSERT_EQUAL(code, 404);
		CU_ASSERT(strstr(body, "mailserver_") == NULL);
		free(head);
		free(body);
	}
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		snprintf(args, sizeof args, "-X %s -d body", methods[i]);
		CU_ASSERT_EQUAL(curl(args, "/metrics", &head, &body), 405);
		CU_ASSERT(has_header(head, "Allow: GET, HEAD"));
		CU_ASSERT(strstr(body, "mailserver_") == NULL);
		free(head);
		free(body);
		CU_ASSERT_EQUAL(curl(args, "/other", &head, &body), 404);
		free(head);
		free(body);
	}
}

static void
test_port_in_use(void)
{
	char addr[64], err[256] = "";
	struct metrics_http *second;

	snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)metrics_http_port(http));
	second = metrics_http_start(addr, err, sizeof err);
	CU_ASSERT_PTR_NULL(second);
	CU_ASSERT(strstr(err, "in use") != NULL);
	metrics_http_stop(&second);	/* NULL is fine */
	CU_ASSERT_PTR_NULL(metrics_http_start("localhost:1", err, sizeof err));
	CU_ASSERT(strstr(err, "metrics_listen localhost:1") != NULL);
}

static void
test_ipv6(void)
{
	char err[256], *out, cmd[256];
	struct metrics_http *h6 = metrics_http_start("[::1]:0", err, sizeof err);
	int status;

	if (h6 == NULL) {
		/* No ::1 on this host: nothing to test. */
		CU_ASSERT(strstr(err, "metrics_listen [::1]:0") != NULL);
		return;
	}
	snprintf(cmd, sizeof cmd, "curl --noproxy '*' -sS -m 10 'http://[::1]:%u/metrics'",
	    (unsigned)metrics_http_port(h6));
	out = run(cmd, &status);
	CU_ASSERT_EQUAL(status, 0);
	CU_ASSERT(strstr(out, "# TYPE mailserver_connections_total counter") != NULL);
	free(out);
	metrics_http_stop(&h6);
}

static int
connect_port(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads until EOF or 10 s; the bytes into a new string. */
static char *
read_all(int fd)
{
	struct buf b;
	char chunk[4096];

	buf_init(&b, 1 << 20);
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;
		if (poll(&p, 1, 10000) <= 0)
			break;
		n = read(fd, chunk, sizeof chunk);
		if (n <= 0)
			break;
		buf_append(&b, chunk, (size_t)n);
	}
	return b.data ? buf_steal(&b, NULL) : xstrdup("");
}

/* Waits up to 15 s for the server to close fd; 0 when it did. */
static int
wait_closed(int fd)
{
	char c;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 15000) <= 0)
			return -1;
		if (read(fd, &c, 1) <= 0)
			return 0;
	}
}

/*
 * With every slot taken by an idle client, a new client waits unserved
 * (libmicrohttpd stops accepting; the kernel holds it in the backlog).
 * The idle clients are closed after METRICS_HTTP_TIMEOUT, and then the
 * endpoint serves again.
 */
static void
test_connection_limit_and_timeout(void)
{
	int fds[METRICS_HTTP_CONNECTIONS];
	int64_t t0 = time_mono_ms(), waited;
	char *head, *body;

	for (int i = 0; i < METRICS_HTTP_CONNECTIONS; i++) {
		fds[i] = connect_port(metrics_http_port(http));
		CU_ASSERT_FATAL(fds[i] >= 0);
	}
	CU_ASSERT_EQUAL(curl("-m 1", "/metrics", &head, &body), -1);
	free(head);
	free(body);
	for (int i = 0; i < METRICS_HTTP_CONNECTIONS; i++) {
		CU_ASSERT_EQUAL(wait_closed(fds[i]), 0);
		close(fds[i]);
	}
	waited = time_mono_ms() - t0;
	CU_ASSERT(waited >= (METRICS_HTTP_TIMEOUT - 1) * 1000);
	CU_ASSERT_EQUAL(curl("", "/metrics", &head, &body), 200);
	free(head);
	free(body);
}

static void
test_oversized_request(void)
{
	size_t n = 2 * METRICS_HTTP_REQUEST_MAX;
	char *req = xmalloc(n + 64), *got;
	int fd = connect_port(metrics_http_port(http));
	size_t len;

	CU_ASSERT_FATAL(fd >= 0);
	len = (size_t)snprintf(req, n, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + len, 'a', n - len);
	memcpy(req + n, "\r\n\r\n", 4);
	len = n + 4;
	/* The server may close before reading it all: a short write is fine. */
	for (size_t off = 0; off < len;) {
		ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	got = read_all(fd);
	CU_ASSERT(strncmp(got, "HTTP/1.1 4", 10) == 0 || got[0] == '\0');
	CU_ASSERT(strstr(got, "mailserver_") == NULL);
	free(got);
	free(req);
	close(fd);

	/* Garbage instead of HTTP: an error or a close, never metrics. */
	fd = connect_port(metrics_http_port(http));
	CU_ASSERT_FATAL(fd >= 0);
	(void)!write(fd, "\x16\x03\x01\x00\x05hello\r\n\r\n", 14);
	got = read_all(fd);
	CU_ASSERT(strstr(got, "mailserver_") == NULL);
	free(got);
	close(fd);
}

#define RACE_SCRAPES 20

static void *
race_updates(void *arg)
{
	int *stop = arg;

	while (!__atomic_load_n(stop, __ATOMIC_ACQUIRE)) {
		metrics_inc(M_MESSAGES_RECEIVED);
		metrics_observe(M_SESSION_DURATION, 0.3);
	}
	return NULL;
}

static void
test_scrapes_race_updates(void)
{
	pthread_t t[2];
	int stop = 0, ok = 0;
	double last = -1;

	for (int i = 0; i < 2; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, race_updates, &stop), 0);
	for (int i = 0; i < RACE_SCRAPES; i++) {
		char *head, *body;
		if (curl("", "/metrics", &head, &body) == 200) {
			double v = value_of(body, "mailserver_messages_received_total");
			ok++;
			CU_ASSERT(v >= last);	/* a counter never goes back */
			last = v;
		}
		free(head);
		free(body);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CU_ASSERT_EQUAL(ok, RACE_SCRAPES);
}

int
main(void)
{
	static const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "address parser", test_parse_addr },
		{ "scrape in text format, promtool check metrics", test_scrape_text },
		{ "scrape in OpenMetrics", test_scrape_openmetrics },
		{ "HEAD and a query string", test_head_and_query },
		{ "404 and 405", test_not_found_and_not_allowed },
		{ "port in use, bad address", test_port_in_use },
		{ "IPv6 loopback", test_ipv6 },
		{ "connection limit, idle timeout", test_connection_limit_and_timeout },
		{ "oversized or broken requests", test_oversized_request },
		{ "scrapes racing updates", test_scrapes_race_updates },
	};
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("metrics_http", suite_init, suite_clean);
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (s == NULL || CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
			CU_cleanup_registry();
			return 2;
		}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
	    CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
