/*
 * test_metrics: lib/metrics. The metric set against Prometheus's naming
 * rules; counters, gauges (stored, callbacks, top-N with hostile label
 * values) and histograms as rendered in the text format and OpenMetrics;
 * the Accept header chooser with good and hostile headers; a bounded
 * output buffer; updates from many threads racing scrapes (exact totals,
 * and ThreadSanitizer under SANITIZE=thread); and the assert that stops a
 * callback from changing callbacks.
 *
 * The registry is process-wide, so each test reads values before and
 * after and checks the difference.
 */
#include <CUnit/Basic.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/metrics.h"

static char *
render(enum metrics_format fmt)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	CU_ASSERT_EQUAL(metrics_render(&b, fmt), 0);
	return buf_steal(&b, NULL);
}

/* The value of the sample whose series (name and labels) is series, as
 * text into out; 0, or -1 when the series is not in text. */
static int
sample(const char *text, const char *series, char *out, size_t outsize)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ') {
			const char *v = p + n + 1, *end = strchr(v, '\n');
			size_t vlen = end ? (size_t)(end - v) : strlen(v);
			if (vlen >= outsize)
				return -1;
			memcpy(out, v, vlen);
			out[vlen] = '\0';
			return 0;
		}
	}
	return -1;
}

static double
sample_num(const char *text, const char *series)
{
	char v[64];

	if (sample(text, series, v, sizeof v) != 0) {
		fprintf(stderr, "\n  no sample %s\n", series);
		return NAN;
	}
	return strtod(v, NULL);
}

static int
valid_name(const char *s, int colon_ok)
{
	if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || (colon_ok && s[0] == ':')))
		return 0;
	for (size_t i = 1; s[i]; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || (colon_ok && s[i] == ':')))
			return 0;
	return 1;
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void
test_set_names(void)
{
	for (unsigned id = 0; id < M_COUNT; id++) {
		const struct metric_def *d = &metrics_defs[id];
		CU_ASSERT_PTR_NOT_NULL_FATAL(d->name);
		CU_ASSERT_PTR_NOT_NULL(d->help);
		CU_ASSERT(d->help != NULL && d->help[0] != '\0');
		CU_ASSERT(strncmp(d->name, "mailserver_", 11) == 0);
		CU_ASSERT(valid_name(d->name, 1));
		CU_ASSERT(!ends_with(d->name, "_total"));
		if (d->unit != NULL) {
			char suffix[64];
			snprintf(suffix, sizeof suffix, "_%s", d->unit);
			CU_ASSERT(ends_with(d->name, suffix));
		}
		if (d->type == METRIC_HISTOGRAM) {
			CU_ASSERT(d->nbuckets >= 1 && d->nbuckets <= METRICS_BUCKETS_MAX);
			CU_ASSERT(d->label == NULL);
			for (size_t i = 1; i < d->nbuckets; i++)
				CU_ASSERT(d->buckets[i] > d->buckets[i - 1]);
			CU_ASSERT(ends_with(d->name, "_seconds"));
		}
		if (d->label != NULL) {
			CU_ASSERT(valid_name(d->label, 0));
			CU_ASSERT(strcmp(d->label, "le") != 0 && strncmp(d->label, "__", 2) != 0);
			CU_ASSERT(d->nvalues <= METRICS_LABELS_MAX);
			for (size_t i = 0; i < d->nvalues; i++) {
				CU_ASSERT_PTR_NOT_NULL_FATAL(d->values[i]);
				for (size_t j = 0; j < i; j++)
					CU_ASSERT(strcmp(d->values[i], d->values[j]) != 0);
			}
			if (d->values == NULL)
				CU_ASSERT(d->type == METRIC_GAUGE);
		}
		for (unsigned j = 0; j < id; j++)
			CU_ASSERT(strcmp(d->name, metrics_defs[j].name) != 0);
	}
	/* The label sets are complete: every enum value has its text. */
	CU_ASSERT_EQUAL(metrics_defs[M_REJECTIONS].nvalues, MR_COUNT);
	CU_ASSERT_EQUAL(metrics_defs[M_DELIVERIES].nvalues, MD_COUNT);
	CU_ASSERT_EQUAL(metrics_defs[M_TLS_SESSIONS].nvalues, MT_COUNT);
	CU_ASSERT_EQUAL(metrics_defs[M_AUTH].nvalues, MA_COUNT);
}

static void
test_counters(void)
{
	char *before = render(METRICS_TEXT), *after;
	double c0 = sample_num(before, "mailserver_connections_total");
	double r0 = sample_num(before, "mailserver_rejections_total{reason=\"dnsbl\"}");
	double r1 = sample_num(before, "mailserver_rejections_total{reason=\"relay_denied\"}");
	double b0 = sample_num(before, "mailserver_received_bytes_total");

	metrics_inc(M_CONNECTIONS);
	metrics_inc(M_CONNECTIONS);
	metrics_add(M_CONNECTIONS, 5);
	metrics_inc_label(M_REJECTIONS, MR_DNSBL);
	metrics_add_label(M_REJECTIONS, MR_RELAY_DENIED, 3);
	metrics_add(M_RECEIVED_BYTES, 10000000000ull);
	after = render(METRICS_TEXT);
	CU_ASSERT_EQUAL(sample_num(after, "mailserver_connections_total"), c0 + 7);
	CU_ASSERT_EQUAL(sample_num(after, "mailserver_rejections_total{reason=\"dnsbl\"}"), r0 + 1);
	CU_ASSERT_EQUAL(sample_num(after, "mailserver_rejections_total{reason=\"relay_denied\"}"), r1 + 3);
	CU_ASSERT_EQUAL(sample_num(after, "mailserver_received_bytes_total"), b0 + 1e10);
	CU_ASSERT_EQUAL(metrics_counter_value(M_REJECTIONS, MR_DNSBL), r0 + 1);
	/* Every value of a label set is a series from the start. */
	CU_ASSERT(strstr(after, "mailserver_rejections_total{reason=\"other\"} ") != NULL);
	CU_ASSERT(strstr(after, "mailserver_deliveries_total{result=\"bounced\"} ") != NULL);
	CU_ASSERT(strstr(after, "mailserver_tls_sessions_total{direction=\"outbound\"} ") != NULL);
	CU_ASSERT(strstr(after, "# TYPE mailserver_connections_total counter\n") != NULL);
	CU_ASSERT(strstr(after, "# HELP mailserver_connections_total Inbound") != NULL);
	free(before);
	free(after);
}

static double gauge_value_cb;

static double
gauge_cb(void *arg)
{
	return *(double *)arg;
}

static size_t
top_cb(struct metrics_sample *out, size_t max, void *arg)
{
	static const char *const names[] = {
		"example.org", "quo\"te\\back\nnew", "\x01\xff\xc3\xa9", "example.org",
	};
	size_t n = 0;

	CU_ASSERT_EQUAL(max, METRICS_TOP_MAX);
	(void)arg;
	for (size_t i = 0; i < sizeof names / sizeof names[0] && n < max; i++, n++) {
		snprintf(out[n].label, sizeof out[n].label, "%s", names[i]);
		out[n].value = (double)(i + 1);
	}
	/* A label as long as the buffer, with no NUL: cut, not overrun. */
	memset(out[n].label, 'x', sizeof out[n].label);
	out[n++].value = 0.5;
	return n;
}

static size_t
top_too_many(struct metrics_sample *out, size_t max, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < max; i++) {
		snprintf(out[i].label, sizeof out[i].label, "d%zu.test", i);
		out[i].value = 1;
	}
	return max + 1000;	/* a buggy count is capped */
}

static void
test_gauges(void)
{
	char *text, v[64];
	const char *p;
	int lines = 0;

	metrics_gauge_set(M_SESSIONS, 40);
	metrics_gauge_add(M_SESSIONS, 3);
	metrics_gauge_add(M_SESSIONS, -1);
	CU_ASSERT_EQUAL(metrics_gauge_value(M_SESSIONS), 42);
	gauge_value_cb = 12.25;
	metrics_gauge_callback(M_QUEUE_BYTES, gauge_cb, &gauge_value_cb);
	metrics_top_callback(M_DESTINATION_CONCURRENCY, top_cb, NULL);
	text = render(METRICS_TEXT);
	CU_ASSERT_EQUAL(sample_num(text, "mailserver_sessions"), 42);
	CU_ASSERT(sample(text, "mailserver_queue_bytes", v, sizeof v) == 0 &&
	    strcmp(v, "12.25") == 0);
	CU_ASSERT(strstr(text, "# TYPE mailserver_sessions gauge\n") != NULL);
	CU_ASSERT_EQUAL(sample_num(text,
	    "mailserver_destination_concurrency{destination=\"example.org\"}"), 1);
	CU_ASSERT_EQUAL(sample_num(text,
	    "mailserver_destination_concurrency{destination=\"quo\\\"te\\\\back\\nnew\"}"), 2);
	CU_ASSERT_EQUAL(sample_num(text,
	    "mailserver_destination_concurrency{destination=\"????\"}"), 3);
	for (p = text; (p = strstr(p, "mailserver_destination_concurrency{")) != NULL; p++)
		lines++;
	CU_ASSERT_EQUAL(lines, 4);	/* the repeated example.org is dropped */
	CU_ASSERT(strstr(text, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"} 0.5\n") != NULL);
	free(text);

	/* Integral values get ".0" in OpenMetrics; special values both ways. */
	gauge_value_cb = 7;
	text = render(METRICS_OPENMETRICS);
	CU_ASSERT(sample(text, "mailserver_queue_bytes", v, sizeof v) == 0 &&
	    strcmp(v, "7.0") == 0);
	free(text);
	gauge_value_cb = NAN;
	text = render(METRICS_TEXT);
	CU_ASSERT(sample(text, "mailserver_queue_bytes", v, sizeof v) == 0 &&
	    strcmp(v, "NaN") == 0);
	free(text);
	gauge_value_cb = -INFINITY;
	text = render(METRICS_TEXT);
	CU_ASSERT(sample(text, "mailserver_queue_bytes", v, sizeof v) == 0 &&
	    strcmp(v, "-Inf") == 0);
	free(text);

	metrics_top_callback(M_DESTINATION_CONCURRENCY, top_too_many, NULL);
	text = render(METRICS_TEXT);
	lines = 0;
	for (p = text; (p = strstr(p, "mailserver_destination_concurrency{")) != NULL; p++)
		lines++;
	CU_ASSERT_EQUAL(lines, METRICS_TOP_MAX);
	free(text);

	/* Without callbacks: the stored value, and no top-N sample. */
	metrics_gauge_callback(M_QUEUE_BYTES, NULL, NULL);
	metrics_top_callback(M_DESTINATION_CONCURRENCY, NULL, NULL);
	metrics_gauge_set(M_QUEUE_BYTES, -5);
	text = render(METRICS_TEXT);
	CU_ASSERT_EQUAL(sample_num(text, "mailserver_queue_bytes"), -5);
	CU_ASSERT(strstr(text, "mailserver_destination_concurrency{") == NULL);
	CU_ASSERT(strstr(text, "# TYPE mailserver_destination_concurrency gauge\n") != NULL);
	free(text);
	metrics_gauge_set(M_QUEUE_BYTES, 0);
}

static void
test_histograms(void)
{
	const struct metric_def *d = &metrics_defs[M_COMMIT_LATENCY];
	char *before = render(METRICS_TEXT), *after, v[64];
	double b1 = sample_num(before, "mailserver_commit_latency_seconds_bucket{le=\"0.001\"}");
	double b5 = sample_num(before, "mailserver_commit_latency_seconds_bucket{le=\"0.005\"}");
	double inf = sample_num(before, "mailserver_commit_latency_seconds_bucket{le=\"+Inf\"}");
	double sum = sample_num(before, "mailserver_commit_latency_seconds_sum");
	uint64_t count = metrics_histogram_count(M_COMMIT_LATENCY);
	double prev = -1;
	int64_t t0;

	CU_ASSERT_EQUAL(d->buckets[1], 0.001);
	metrics_observe(M_COMMIT_LATENCY, 0.001);	/* le is inclusive */
	metrics_observe(M_COMMIT_LATENCY, 0.004);
	metrics_observe(M_COMMIT_LATENCY, -3);		/* counts as 0 */
	metrics_observe(M_COMMIT_LATENCY, NAN);		/* counts as 0 */
	metrics_observe(M_COMMIT_LATENCY, 1e300);	/* +Inf bucket, sum capped */
	after = render(METRICS_TEXT);
	CU_ASSERT_EQUAL(sample_num(after, "mailserver_commit_latency_seconds_bucket{le=\"0.001\"}"), b1 + 3);
	CU_ASSERT_EQUAL(sample_num(after, "mailserver_commit_latency_seconds_bucket{le=\"0.005\"}"), b5 + 4);
	CU_ASSERT_EQUAL(sample_num(after, "mailserver_commit_latency_seconds_bucket{le=\"+Inf\"}"), inf + 5);
	CU_ASSERT_EQUAL(sample_num(after, "mailserver_commit_latency_seconds_count"), inf + 5);
	CU_ASSERT(fabs(sample_num(after, "mailserver_commit_latency_seconds_sum") -
	    (sum + 0.005 + 1e12)) < 1e-3);
	CU_ASSERT_EQUAL(metrics_histogram_count(M_COMMIT_LATENCY), count + 5);
	/* Buckets are cumulative and in order. */
	for (size_t i = 0; i < d->nbuckets; i++) {
		char series[128];
		double b;
		snprintf(series, sizeof series,
		    "mailserver_commit_latency_seconds_bucket{le=\"%.15g\"}", d->buckets[i]);
		b = sample_num(after, series);
		CU_ASSERT(b >= prev);
		prev = b;
	}
	CU_ASSERT(strstr(after, "# TYPE mailserver_commit_latency_seconds histogram\n") != NULL);
	free(before);
	free(after);

	t0 = metrics_clock_us();
	metrics_observe_since(M_SESSION_DURATION, t0 - 2500000);	/* 2.5 s ago */
	after = render(METRICS_TEXT);
	CU_ASSERT_EQUAL(sample_num(after, "mailserver_session_duration_seconds_bucket{le=\"1\"}"), 0);
	CU_ASSERT_EQUAL(sample_num(after, "mailserver_session_duration_seconds_bucket{le=\"5\"}"), 1);
	CU_ASSERT(sample(after, "mailserver_session_duration_seconds_sum", v, sizeof v) == 0);
	CU_ASSERT(strtod(v, NULL) >= 2.5 && strtod(v, NULL) < 3.5);
	free(after);
}

static void
test_openmetrics(void)
{
	char *t = render(METRICS_OPENMETRICS);
	size_t n = strlen(t);

	CU_ASSERT(n > 6 && strcmp(t + n - 6, "# EOF\n") == 0);
	CU_ASSERT(strstr(t, "# EOF\n") == t + n - 6);	/* once, at the end */
	/* Counter families are named without _total; samples carry it. */
	CU_ASSERT(strstr(t, "# TYPE mailserver_connections counter\n") != NULL);
	CU_ASSERT(strstr(t, "# TYPE mailserver_connections_total") == NULL);
	CU_ASSERT(strstr(t, "\nmailserver_connections_total ") != NULL);
	CU_ASSERT(strstr(t, "# UNIT mailserver_received_bytes bytes\n") != NULL);
	CU_ASSERT(strstr(t, "# UNIT mailserver_commit_latency_seconds seconds\n") != NULL);
	CU_ASSERT(strstr(t, "mailserver_session_duration_seconds_bucket{le=\"1.0\"} ") != NULL);
	CU_ASSERT(strstr(t, "mailserver_session_duration_seconds_bucket{le=\"+Inf\"} ") != NULL);
	CU_ASSERT(strstr(t, "# UNIT") != NULL);
	free(t);
	t = render(METRICS_TEXT);
	CU_ASSERT(strstr(t, "# EOF") == NULL && strstr(t, "# UNIT") == NULL);
	CU_ASSERT(strstr(t, "mailserver_session_duration_seconds_bucket{le=\"1\"} ") != NULL);
	free(t);
	CU_ASSERT(strncmp(metrics_content_type(METRICS_TEXT), "text/plain; version=0.0.4", 25) == 0);
	CU_ASSERT(strncmp(metrics_content_type(METRICS_OPENMETRICS),
	    "application/openmetrics-text; version=1.0.0", 43) == 0);
}

static void
test_render_bounded(void)
{
	struct buf b;
	size_t full;

	buf_init(&b, 1 << 20);
	CU_ASSERT_EQUAL(metrics_render(&b, METRICS_OPENMETRICS), 0);
	full = b.len;
	buf_free(&b);
	for (size_t max = 0; max < full; max += full / 7 + 1) {
		buf_init(&b, max);
		CU_ASSERT_EQUAL(metrics_render(&b, METRICS_OPENMETRICS), -1);
		CU_ASSERT(b.len <= max);
		buf_free(&b);
	}
	buf_init(&b, full + 64);	/* a little room for values that grew */
	CU_ASSERT_EQUAL(metrics_render(&b, METRICS_OPENMETRICS), 0);
	buf_free(&b);
}

static void
test_accept(void)
{
	static const struct {
		const char *accept;
		enum metrics_format want;
	} t[] = {
		{ NULL, METRICS_TEXT },
		{ "", METRICS_TEXT },
		{ "*/*", METRICS_TEXT },
		{ "text/plain", METRICS_TEXT },
		{ "application/openmetrics-text", METRICS_OPENMETRICS },
		{ "Application/OpenMetrics-Text; version=1.0.0", METRICS_OPENMETRICS },
		/* What Prometheus 2.x sends. */
		{ "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
		  "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
		  METRICS_OPENMETRICS },
		{ "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5", METRICS_TEXT },
		{ "application/openmetrics-text;q=0.5, */*", METRICS_TEXT },
		{ "application/openmetrics-text;q=0.5, */*;q=0.2", METRICS_OPENMETRICS },
		{ "application/openmetrics-text;q=0", METRICS_TEXT },
		{ "application/openmetrics-text;q=0.000", METRICS_TEXT },
		{ "application/openmetrics-text;q=0.001", METRICS_OPENMETRICS },
		{ "application/openmetrics-text ; q = 1.0 , text/plain;q=1", METRICS_OPENMETRICS },
		/* Hostile or malformed: the range is ignored. */
		{ "application/openmetrics-text;q=2", METRICS_TEXT },
		{ "application/openmetrics-text;q=1.5", METRICS_TEXT },
		{ "application/openmetrics-text;q=0.1234", METRICS_TEXT },
		{ "application/openmetrics-text;q=-1", METRICS_TEXT },
		{ "application/openmetrics-text;q=", METRICS_TEXT },
		{ "application/openmetrics-text;q=.5", METRICS_TEXT },
		{ "application/openmetrics-textx", METRICS_TEXT },
		{ "xapplication/openmetrics-text", METRICS_TEXT },
		{ "openmetrics", METRICS_TEXT },
		{ ",,,;;;===\"\"\"\\", METRICS_TEXT },
		{ "text/plain;x=\"a,application/openmetrics-text\"", METRICS_TEXT },
		{ "text/plain;x=\"a\\\",b\";q=0.1,application/openmetrics-text", METRICS_OPENMETRICS },
		{ "text/plain;x=\"unterminated,application/openmetrics-text", METRICS_TEXT },
		{ ";q=1,application/openmetrics-text", METRICS_OPENMETRICS },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		enum metrics_format f = metrics_format_from_accept(t[i].accept);
		if (f != t[i].want)
			fprintf(stderr, "\n  Accept: %s\n", t[i].accept ? t[i].accept : "(null)");
		CU_ASSERT_EQUAL(f, t[i].want);
	}
}

static void
test_accept_limits(void)
{
	size_t n = 64 * 1024;
	char *s = malloc(n + 64);
	size_t len;

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	/* Only the first METRICS_ACCEPT_RANGES ranges count. */
	s[0] = '\0';
	len = 0;
	for (int i = 0; i < METRICS_ACCEPT_RANGES; i++)
		len += (size_t)snprintf(s + len, n - len, "a/b,");
	snprintf(s + len, n - len, "application/openmetrics-text");
	CU_ASSERT_EQUAL(metrics_format_from_accept(s), METRICS_TEXT);
	snprintf(s + len - 4, n - len + 4, "application/openmetrics-text,");
	CU_ASSERT_EQUAL(metrics_format_from_accept(s), METRICS_OPENMETRICS);
	/* Only the first METRICS_ACCEPT_MAX bytes count. */
	memset(s, ' ', n);
	memcpy(s + n - 40, ",application/openmetrics-text", 29);
	s[n - 11] = '\0';
	CU_ASSERT_EQUAL(metrics_format_from_accept(s), METRICS_TEXT);
	/* A huge quoted parameter and many semicolons stay bounded. */
	memset(s, ';', n);
	s[n] = '\0';
	CU_ASSERT_EQUAL(metrics_format_from_accept(s), METRICS_TEXT);
	memset(s, '"', n);
	CU_ASSERT_EQUAL(metrics_format_from_accept(s), METRICS_TEXT);
	free(s);
}

#define RACE_THREADS 4
#define RACE_LOOPS 20000

static void *
race_updates(void *arg)
{
	(void)arg;
	for (int i = 0; i < RACE_LOOPS; i++) {
		metrics_inc(M_MESSAGES_RECEIVED);
		metrics_inc_label(M_DELIVERIES, (unsigned)(i % MD_COUNT));
		metrics_gauge_add(M_DELIVERY_THREADS_BUSY, 1);
		metrics_gauge_add(M_DELIVERY_THREADS_BUSY, -1);
		metrics_observe(M_DELIVERY_LATENCY, (double)(i % 100));
	}
	return NULL;
}

/* CUnit asserts only on the main thread: the scraper counts. */
static int race_scrapes_done, race_scrapes_bad;

static void *
race_scrapes(void *arg)
{
	int *stop = arg;

	for (int n = 0; n < 1000 && !__atomic_load_n(stop, __ATOMIC_ACQUIRE); n++) {
		struct buf b;
		buf_init(&b, 1 << 20);
		/* _count equals +Inf even while observations arrive. */
		if (metrics_render(&b, n % 2 ? METRICS_OPENMETRICS : METRICS_TEXT) != 0 ||
		    sample_num(b.data, "mailserver_delivery_latency_seconds_count") !=
		    sample_num(b.data, "mailserver_delivery_latency_seconds_bucket{le=\"+Inf\"}"))
			race_scrapes_bad++;
		race_scrapes_done++;
		buf_free(&b);
	}
	return NULL;
}

static double
race_gauge(void *arg)
{
	return (double)*(volatile int *)arg;
}

static void
test_threads(void)
{
	pthread_t t[RACE_THREADS], scraper;
	uint64_t received = metrics_counter_value(M_MESSAGES_RECEIVED, 0);
	uint64_t deferred = metrics_counter_value(M_DELIVERIES, MD_DEFERRED);
	uint64_t hist = metrics_histogram_count(M_DELIVERY_LATENCY);
	int stop = 0, gauge = 3;

	metrics_gauge_callback(M_QUEUE_OLDEST_AGE, race_gauge, &gauge);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&scraper, NULL, race_scrapes, &stop), 0);
	for (int i = 0; i < RACE_THREADS; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, race_updates, NULL), 0);
	for (int i = 0; i < RACE_THREADS; i++)
		pthread_join(t[i], NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(scraper, NULL);
	metrics_gauge_callback(M_QUEUE_OLDEST_AGE, NULL, NULL);
	CU_ASSERT_EQUAL(metrics_counter_value(M_MESSAGES_RECEIVED, 0),
	    received + RACE_THREADS * RACE_LOOPS);
	/* i % 3 == 1 for 6,667 of each thread's 20,000 loops. */
	CU_ASSERT_EQUAL(metrics_counter_value(M_DELIVERIES, MD_DEFERRED),
	    deferred + RACE_THREADS * 6667);
	CU_ASSERT_EQUAL(metrics_histogram_count(M_DELIVERY_LATENCY),
	    hist + RACE_THREADS * RACE_LOOPS);
	CU_ASSERT_EQUAL(metrics_gauge_value(M_DELIVERY_THREADS_BUSY), 0);
	CU_ASSERT(race_scrapes_done > 0);
	CU_ASSERT_EQUAL(race_scrapes_bad, 0);
}

static double
bad_callback(void *arg)
{
	(void)arg;
	metrics_gauge_callback(M_SESSIONS, NULL, NULL);	/* asserts */
	return 0;
}

/* A callback that changes callbacks would deadlock on the registry's
 * lock: it asserts instead (checked in a child process). */
static void
test_callback_reentry_asserts(void)
{
	pid_t pid = fork();
	int status;

	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct buf b;
		alarm(10);
		/* No core dump, no sanitizer noise for an expected abort. */
		signal(SIGABRT, SIG_DFL);
		freopen("/dev/null", "w", stderr);
		buf_init(&b, 1 << 20);
		metrics_gauge_callback(M_QUEUE_MESSAGES, bad_callback, NULL);
		metrics_render(&b, METRICS_TEXT);
		_exit(0);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

int
main(void)
{
	static const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "the metric set follows the naming rules", test_set_names },
		{ "counters", test_counters },
		{ "gauges, callbacks and top-N", test_gauges },
		{ "histograms", test_histograms },
		{ "OpenMetrics", test_openmetrics },
		{ "rendering is bounded", test_render_bounded },
		{ "Accept header", test_accept },
		{ "Accept header limits", test_accept_limits },
		{ "updates from threads racing scrapes", test_threads },
		{ "a callback changing callbacks asserts", test_callback_reentry_asserts },
	};
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("metrics", NULL, NULL);
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (s == NULL || CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
			CU_cleanup_registry();
			return 2;
		}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
