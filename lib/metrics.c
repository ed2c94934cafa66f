/*
 * metrics: the registry's storage (relaxed atomics in static cells), the
 * scrape-time callbacks, and the renderers of the Prometheus text format
 * and OpenMetrics (see metrics.h).
 */
#include "lib/metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A counter keeps one value per label value; a histogram one per bucket,
 * the last being +Inf (values are per bucket, summed when rendered). */
struct metric_cell {
	_Atomic uint64_t v[METRICS_LABELS_MAX];
	_Atomic int64_t gauge;
	_Atomic uint64_t sum_micro;	/* histogram sum in millionths */
};

_Static_assert(METRICS_BUCKETS_MAX + 1 <= METRICS_LABELS_MAX, "cell too small");

static struct metric_cell metrics_cells[M_COUNT];

/* Scrape-time callbacks, guarded by metrics_lock; a scrape holds it. */
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	metrics_gauge_fn *gauge;
	metrics_top_fn *top;
	void *arg;
} metrics_callbacks[M_COUNT];

/* Set while this thread renders: a callback must not change callbacks. */
static _Thread_local int metrics_rendering;

static const struct metric_def *
metrics_def(enum metric_id id, enum metric_type type)
{
	assert((unsigned)id < M_COUNT);
	assert(metrics_defs[id].type == type);
	return &metrics_defs[id];
}

void
metrics_add_label(enum metric_id id, unsigned label, uint64_t n)
{
	const struct metric_def *d = metrics_def(id, METRIC_COUNTER);

	assert(d->label == NULL ? label == 0 : label < d->nvalues);
	(void)d;
	atomic_fetch_add_explicit(&metrics_cells[id].v[label], n, memory_order_relaxed);
}

void
metrics_inc_label(enum metric_id id, unsigned label)
{
	metrics_add_label(id, label, 1);
}

void
metrics_add(enum metric_id id, uint64_t n)
{
	assert((unsigned)id < M_COUNT && metrics_defs[id].label == NULL);
	metrics_add_label(id, 0, n);
}

void
metrics_inc(enum metric_id id)
{
	metrics_add(id, 1);
}

void
metrics_gauge_set(enum metric_id id, int64_t v)
{
	assert(metrics_def(id, METRIC_GAUGE)->label == NULL);
	atomic_store_explicit(&metrics_cells[id].gauge, v, memory_order_relaxed);
}

void
metrics_gauge_add(enum metric_id id, int64_t delta)
{
	assert(metrics_def(id, METRIC_GAUGE)->label == NULL);
	atomic_fetch_add_explicit(&metrics_cells[id].gauge, delta, memory_order_relaxed);
}

/* Observations above this (about 31,700 years) count as this. */
#define METRICS_OBSERVE_MAX 1e12

void
metrics_observe(enum metric_id id, double value)
{
	const struct metric_def *d = metrics_def(id, METRIC_HISTOGRAM);
	size_t i = 0;

	if (!(value > 0))	/* negative, zero or NaN */
		value = 0;
	if (value > METRICS_OBSERVE_MAX)
		value = METRICS_OBSERVE_MAX;
	while (i < d->nbuckets && value > d->buckets[i])
		i++;
	atomic_fetch_add_explicit(&metrics_cells[id].v[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&metrics_cells[id].sum_micro,
	    (uint64_t)(value * 1e6 + 0.5), memory_order_relaxed);
}

int64_t
metrics_clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
metrics_observe_since(enum metric_id id, int64_t start_us)
{
	metrics_observe(id, (double)(metrics_clock_us() - start_us) / 1e6);
}

void
metrics_gauge_callback(enum metric_id id, metrics_gauge_fn *fn, void *arg)
{
	const struct metric_def *d = metrics_def(id, METRIC_GAUGE);

	assert(d->label == NULL);
	assert(!metrics_rendering);
	(void)d;
	pthread_mutex_lock(&metrics_lock);
	metrics_callbacks[id].gauge = fn;
	metrics_callbacks[id].arg = arg;
	pthread_mutex_unlock(&metrics_lock);
}

void
metrics_top_callback(enum metric_id id, metrics_top_fn *fn, void *arg)
{
	const struct metric_def *d = metrics_def(id, METRIC_GAUGE);

	assert(d->label != NULL && d->values == NULL);
	assert(!metrics_rendering);
	(void)d;
	pthread_mutex_lock(&metrics_lock);
	metrics_callbacks[id].top = fn;
	metrics_callbacks[id].arg = arg;
	pthread_mutex_unlock(&metrics_lock);
}

uint64_t
metrics_counter_value(enum metric_id id, unsigned label)
{
	const struct metric_def *d = metrics_def(id, METRIC_COUNTER);

	assert(d->label == NULL ? label == 0 : label < d->nvalues);
	(void)d;
	return atomic_load_explicit(&metrics_cells[id].v[label], memory_order_relaxed);
}

int64_t
metrics_gauge_value(enum metric_id id)
{
	(void)metrics_def(id, METRIC_GAUGE);
	return atomic_load_explicit(&metrics_cells[id].gauge, memory_order_relaxed);
}

uint64_t
metrics_histogram_count(enum metric_id id)
{
	const struct metric_def *d = metrics_def(id, METRIC_HISTOGRAM);
	uint64_t n = 0;

	for (size_t i = 0; i <= d->nbuckets; i++)
		n += atomic_load_explicit(&metrics_cells[id].v[i], memory_order_relaxed);
	return n;
}

/* ---- rendering ---- */

/* The state of one metrics_render: the first failed append sticks. */
struct render {
	struct buf *out;
	enum metrics_format fmt;
	int failed;
};

static void render_printf(struct render *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
render_printf(struct render *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failed)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(r->out, fmt, ap) < 0)
		r->failed = 1;
	va_end(ap);
}

static void
render_putc(struct render *r, char c)
{
	if (!r->failed && buf_append(r->out, &c, 1) < 0)
		r->failed = 1;
}

/* Text of a HELP line or label value, escaped as both formats want;
 * bytes that are not printable ASCII become '?', so the output is always
 * valid UTF-8 and a line never breaks. quotes: escape '"' as well. */
static void
render_escaped(struct render *r, const char *s, size_t max, int quotes)
{
	for (size_t i = 0; i < max && s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\') {
			render_printf(r, "\\\\");
		} else if (c == '\n') {
			render_printf(r, "\\n");
		} else if (c == '"' && quotes) {
			render_printf(r, "\\\"");
		} else {
			render_putc(r, c < 0x20 || c >= 0x7f ? '?' : (char)c);
		}
	}
}

/* A float as the format wants it: OpenMetrics wants integral values with
 * ".0" (as the Prometheus client libraries write them); both write
 * NaN, +Inf and -Inf. */
static void
render_double(struct render *r, double v)
{
	char text[64];

	if (isnan(v)) {
		render_printf(r, "NaN");
		return;
	}
	if (isinf(v)) {
		render_printf(r, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0)
		v = 0;		/* no "-0" */
	snprintf(text, sizeof text, "%.15g", v);
	render_printf(r, "%s", text);
	if (r->fmt == METRICS_OPENMETRICS && strpbrk(text, ".eE") == NULL)
		render_printf(r, ".0");
}

/* The family name: text format counters carry _total on HELP and TYPE;
 * OpenMetrics names the family without it. */
static void
render_header(struct render *r, const struct metric_def *d)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	const char *suffix = r->fmt == METRICS_TEXT && d->type == METRIC_COUNTER ?
	    "_total" : "";

	render_printf(r, "# HELP %s%s ", d->name, suffix);
	render_escaped(r, d->help, SIZE_MAX, r->fmt == METRICS_OPENMETRICS);
	render_printf(r, "\n# TYPE %s%s %s\n", d->name, suffix, types[d->type]);
	if (r->fmt == METRICS_OPENMETRICS && d->unit != NULL)
		render_printf(r, "# UNIT %s %s\n", d->name, d->unit);
}

static void
render_counter(struct render *r, enum metric_id id, const struct metric_def *d)
{
	if (d->label == NULL) {
		render_printf(r, "%s_total %" PRIu64 "\n", d->name,
		    metrics_counter_value(id, 0));
		return;
	}
	for (unsigned i = 0; i < d->nvalues; i++) {
		render_printf(r, "%s_total{%s=\"", d->name, d->label);
		render_escaped(r, d->values[i], SIZE_MAX, 1);
		render_printf(r, "\"} %" PRIu64 "\n", metrics_counter_value(id, i));
	}
}

/* Called with metrics_lock held. */
static void
render_gauge(struct render *r, enum metric_id id, const struct metric_def *d)
{
	struct metrics_sample samples[METRICS_TOP_MAX];
	size_t n;

	if (d->label == NULL) {
		render_printf(r, "%s ", d->name);
		if (metrics_callbacks[id].gauge != NULL)
			render_double(r, metrics_callbacks[id].gauge(metrics_callbacks[id].arg));
		else
			render_printf(r, "%" PRId64, metrics_gauge_value(id));
		render_putc(r, '\n');
		return;
	}
	if (metrics_callbacks[id].top == NULL)
		return;
	n = metrics_callbacks[id].top(samples, METRICS_TOP_MAX, metrics_callbacks[id].arg);
	if (n > METRICS_TOP_MAX)
		n = METRICS_TOP_MAX;
	for (size_t i = 0; i < n; i++) {
		int dup = 0;
		samples[i].label[METRICS_LABEL_VALUE_MAX - 1] = '\0';
		/* A series appears once; a repeated label value is dropped. */
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(samples[i].label, samples[j].label) == 0;
		if (dup)
			continue;
		render_printf(r, "%s{%s=\"", d->name, d->label);
		render_escaped(r, samples[i].label, METRICS_LABEL_VALUE_MAX, 1);
		render_printf(r, "\"} ");
		render_double(r, samples[i].value);
		render_putc(r, '\n');
	}
}

static void
render_histogram(struct render *r, enum metric_id id, const struct metric_def *d)
{
	const struct metric_cell *c = &metrics_cells[id];
	uint64_t cumulative = 0, sum;

	for (size_t i = 0; i <= d->nbuckets; i++) {
		cumulative += atomic_load_explicit(&c->v[i], memory_order_relaxed);
		render_printf(r, "%s_bucket{le=\"", d->name);
		render_double(r, i < d->nbuckets ? d->buckets[i] : INFINITY);
		render_printf(r, "\"} %" PRIu64 "\n", cumulative);
	}
	sum = atomic_load_explicit(&c->sum_micro, memory_order_relaxed);
	render_printf(r, "%s_sum %" PRIu64 ".%06" PRIu64 "\n", d->name,
	    sum / 1000000, sum % 1000000);
	render_printf(r, "%s_count %" PRIu64 "\n", d->name, cumulative);
}

int
metrics_render(struct buf *out, enum metrics_format fmt)
{
	struct render r = { out, fmt, 0 };

	pthread_mutex_lock(&metrics_lock);
	metrics_rendering = 1;
	for (unsigned id = 0; id < M_COUNT && !r.failed; id++) {
		const struct metric_def *d = &metrics_defs[id];
		render_header(&r, d);
		switch (d->type) {
		case METRIC_COUNTER: render_counter(&r, id, d); break;
		case METRIC_GAUGE: render_gauge(&r, id, d); break;
		case METRIC_HISTOGRAM: render_histogram(&r, id, d); break;
		}
	}
	metrics_rendering = 0;
	pthread_mutex_unlock(&metrics_lock);
	if (fmt == METRICS_OPENMETRICS)
		render_printf(&r, "# EOF\n");
	return r.failed ? -1 : 0;
}

const char *
metrics_content_type(enum metrics_format fmt)
{
	return fmt == METRICS_OPENMETRICS ?
	    "application/openmetrics-text; version=1.0.0; charset=utf-8" :
	    "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- Accept (RFC 9110 12.5.1) ---- */

static int
accept_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* An RFC 9110 qvalue of n bytes into *q (0..1000); 0 or -1 when bad. */
static int
accept_qvalue(const char *s, size_t n, int *q)
{
	int v, scale = 100;

	if (n == 0 || (s[0] != '0' && s[0] != '1'))
		return -1;
	v = (s[0] - '0') * 1000;
	if (n > 1) {
		if (s[1] != '.' || n > 5)
			return -1;
		for (size_t i = 2; i < n; i++, scale /= 10) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			v += (s[i] - '0') * scale;
		}
	}
	if (v > 1000)
		return -1;
	*q = v;
	return 0;
}

/* Trims OWS around s[0..*n); returns the new start. */
static const char *
accept_trim(const char *s, size_t *n)
{
	while (*n > 0 && accept_is_ows(s[0])) {
		s++;
		(*n)--;
	}
	while (*n > 0 && accept_is_ows(s[*n - 1]))
		(*n)--;
	return s;
}

static int
accept_type_is(const char *s, size_t n, const char *type)
{
	return n == strlen(type) && strncasecmp(s, type, n) == 0;
}

/* Parses one media range s[0..n): its type and q-value (1000 = 1).
 * Returns -1 when the range is malformed (it is then ignored). */
static int
accept_range(const char *s, size_t n, const char **type, size_t *typelen, int *q)
{
	size_t i = 0, start;

	*q = 1000;
	while (i < n && s[i] != ';')
		i++;
	*typelen = i;
	*type = accept_trim(s, typelen);
	if (*typelen == 0 || memchr(*type, '/', *typelen) == NULL)
		return -1;
	while (i < n) {
		const char *p, *eq;
		size_t plen;
		int quoted = 0;

		start = ++i;	/* past ';' */
		while (i < n && (quoted || s[i] != ';')) {
			if (s[i] == '\\' && quoted && i + 1 < n)
				i++;
			else if (s[i] == '"')
				quoted = !quoted;
			i++;
		}
		plen = i - start;
		p = accept_trim(s + start, &plen);
		eq = memchr(p, '=', plen);
		if (eq == NULL)
			continue;
		{
			size_t nlen = (size_t)(eq - p), vlen = plen - nlen - 1;
			const char *v = eq + 1;
			p = accept_trim(p, &nlen);
			v = accept_trim(v, &vlen);
			if (nlen == 1 && (p[0] == 'q' || p[0] == 'Q') &&
			    accept_qvalue(v, vlen, q) != 0)
				return -1;
		}
	}
	return 0;
}

enum metrics_format
metrics_format_from_accept(const char *accept)
{
	int om = -1, text = -1, wild = -1;
	size_t len, i = 0;

	if (accept == NULL)
		return METRICS_TEXT;
	len = strnlen(accept, METRICS_ACCEPT_MAX);
	for (int ranges = 0; i < len && ranges < METRICS_ACCEPT_RANGES; ranges++) {
		size_t start = i, typelen;
		const char *type;
		int quoted = 0, q;

		while (i < len && (quoted || accept[i] != ',')) {
			if (accept[i] == '\\' && quoted && i + 1 < len)
				i++;
			else if (accept[i] == '"')
				quoted = !quoted;
			i++;
		}
		if (accept_range(accept + start, i - start, &type, &typelen, &q) == 0) {
			if (accept_type_is(type, typelen, "application/openmetrics-text"))
				om = q > om ? q : om;
			else if (accept_type_is(type, typelen, "text/plain"))
				text = q > text ? q : text;
			else if (accept_type_is(type, typelen, "text/*") ||
			    accept_type_is(type, typelen, "*/*"))
				wild = q > wild ? q : wild;
		}
		i++;		/* past ',' */
	}
	if (text < 0)
		text = wild;
	return om > 0 && om >= text ? METRICS_OPENMETRICS : METRICS_TEXT;
}
