/*
 * metrics: the process's counters, gauges and histograms, and their
 * rendering in the Prometheus text exposition format (0.0.4) or
 * OpenMetrics 1.0.0.
 *
 * The registry is generic: it stores and renders whatever the metric set
 * (lib/metrics_set.c, one table) defines, and knows nothing of the stages
 * that update it. The set is fixed at compile time: every metric is named
 * by an enum metric_id below, so an update is an array index and an atomic
 * add. Names carry the `mailserver_` prefix and Prometheus units
 * (`_total` on counters, `_seconds`, `_bytes`).
 *
 * Labels: a metric has no label, one label with a fixed set of values
 * (a counter by reason or result: the value is an index into that set),
 * or, for a gauge read at scrape time, one label with values the callback
 * chooses (the top destinations), at most METRICS_TOP_MAX of them.
 *
 * Cost: updates (metrics_inc, metrics_add, metrics_gauge_*,
 * metrics_observe) are relaxed atomic operations on static storage: no
 * lock, no allocation, no system call. A scrape reads each value
 * atomically; values of different metrics are not a snapshot of one
 * instant (a histogram's _count is the sum of the bucket values read, so
 * it always equals its +Inf bucket).
 *
 * Errors: updating a metric with the wrong kind of call (metrics_inc on a
 * gauge) or a label index outside its set is a bug and asserts.
 * Rendering fails only when the output would pass its buffer's maximum.
 *
 * Threads: every function may be called from any thread at any time.
 * Gauge callbacks run on the rendering thread (the metrics HTTP thread),
 * one scrape at a time, while the registry's lock is held: they must be
 * thread-safe, quick, and must not call metrics_gauge_callback or
 * metrics_top_callback (that asserts).
 */
#ifndef LIB_METRICS_H
#define LIB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* The metric set: the daemon calls, for example, metrics_inc(M_CONNECTIONS)
 * where it accepts a connection. lib/metrics_set.c gives each one its
 * name, help text, type, unit, label and buckets. */
enum metric_id {
	/* counters */
	M_CONNECTIONS,			/* inbound connections accepted */
	M_REJECTIONS,			/* refusals, label reason (enum metric_reason) */
	M_MESSAGES_RECEIVED,		/* messages committed (250 sent) */
	M_RECIPIENTS_RECEIVED,		/* recipients of committed messages */
	M_RECEIVED_BYTES,		/* bytes of committed messages */
	M_DELIVERIES,			/* recipient outcomes, label result (enum metric_result) */
	M_RELAYED_BYTES,		/* message bytes accepted by remote servers */
	M_TLS_SESSIONS,			/* TLS handshakes done, label direction (enum metric_direction) */
	M_AUTH,				/* AUTH attempts, label result (enum metric_auth) */
	/* gauges */
	M_SESSIONS,			/* inbound sessions open now */
	M_QUEUE_MESSAGES,		/* messages in the queue */
	M_QUEUE_RECIPIENTS,		/* recipients still to deliver */
	M_QUEUE_BYTES,			/* bytes of queued messages */
	M_QUEUE_OLDEST_AGE,		/* age of the oldest queued message, seconds */
	M_DELIVERY_THREADS,		/* delivery pool size */
	M_DELIVERY_THREADS_BUSY,	/* delivery threads working on a job */
	M_DESTINATION_CONCURRENCY,	/* deliveries in flight, label destination (top N) */
	/* histograms */
	M_COMMIT_LATENCY,		/* end of data to durable commit, seconds */
	M_DELIVERY_LATENCY,		/* arrival to final delivery, seconds */
	M_SESSION_DURATION,		/* inbound session, connect to close, seconds */
	M_COUNT
};

/* Values of M_REJECTIONS's reason label. */
enum metric_reason {
	MR_CONNECTION_LIMIT,		/* max_connections, max_connections_per_ip */
	MR_CONNECTION_RATE,		/* per-client connection rate */
	MR_MESSAGE_RATE,		/* per-client messages per minute */
	MR_RECIPIENT_RATE,		/* per-client recipients per minute */
	MR_UNKNOWN_RECIPIENT_RATE,	/* per-client unknown recipients per minute */
	MR_ACCOUNT_QUOTA,		/* per-account messages or recipients per day */
	MR_DNSBL,			/* client listed over dnsbl_threshold */
	MR_PREGREET,			/* client talked before the greeting */
	MR_RELAY_DENIED,		/* 554 5.7.1 at RCPT */
	MR_UNKNOWN_RECIPIENT,		/* 550 5.1.1 */
	MR_SENDER_MISMATCH,		/* authenticated user sending as another */
	MR_AUTH_REQUIRED,		/* 530 5.7.0 */
	MR_MESSAGE_SIZE,		/* 552 5.3.4 */
	MR_RECIPIENT_LIMIT,		/* 452 4.5.3 */
	MR_BAD_CONTENT,			/* bare CR/LF, NUL: 550 5.5.2 / 5.6.0 */
	MR_MAIL_LOOP,			/* 554 5.4.6 */
	MR_QUEUE_FULL,			/* 452 4.3.1, 451 4.3.x */
	MR_SENDER_AUTH,			/* SPF at MAIL, DMARC at the end of data */
	MR_POLICY,			/* a policy service's or a milter's refusal */
	MR_OTHER,
	MR_COUNT
};

/* Values of M_DELIVERIES's result label (one per recipient and attempt). */
enum metric_result { MD_DELIVERED, MD_DEFERRED, MD_BOUNCED, MD_COUNT };

/* Values of M_TLS_SESSIONS's direction label. */
enum metric_direction { MT_INBOUND, MT_OUTBOUND, MT_COUNT };

/* Values of M_AUTH's result label. */
enum metric_auth { MA_SUCCESS, MA_FAILURE, MA_COUNT };

/* ---- the definitions (lib/metrics_set.c) ---- */

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

#define METRICS_LABELS_MAX	24	/* values of one fixed label set */
#define METRICS_BUCKETS_MAX	16	/* finite histogram buckets */
#define METRICS_TOP_MAX		10	/* samples of a top-N gauge */
#define METRICS_LABEL_VALUE_MAX	128	/* bytes of a top-N label value, NUL included */

struct metric_def {
	const char *name;		/* full name without _total: mailserver_... */
	const char *help;
	enum metric_type type;
	const char *unit;		/* "seconds", "bytes" or NULL; the name ends with it */
	const char *label;		/* label name or NULL */
	const char *const *values;	/* fixed label values; NULL for top-N */
	size_t nvalues;
	const double *buckets;		/* histograms: increasing upper bounds */
	size_t nbuckets;
};

/* The table, indexed by enum metric_id (every entry filled). */
extern const struct metric_def metrics_defs[M_COUNT];

/* ---- updates (hot path) ---- */

/* Counter without label: +1, +n. */
void metrics_inc(enum metric_id id);
void metrics_add(enum metric_id id, uint64_t n);

/* Counter with a fixed label: +1, +n on the value of index label. */
void metrics_inc_label(enum metric_id id, unsigned label);
void metrics_add_label(enum metric_id id, unsigned label, uint64_t n);

/* Gauge kept by the caller (one without label): set to v, or add delta
 * (may be negative). */
void metrics_gauge_set(enum metric_id id, int64_t v);
void metrics_gauge_add(enum metric_id id, int64_t delta);

/* Histogram: one observation of value (seconds for the _seconds
 * histograms; negative counts as 0). */
void metrics_observe(enum metric_id id, double value);

/* CLOCK_MONOTONIC in microseconds, for metrics_observe_since. */
int64_t metrics_clock_us(void);

/* Observes the seconds since start_us (a metrics_clock_us value). */
void metrics_observe_since(enum metric_id id, int64_t start_us);

/* ---- gauges read at scrape time ---- */

/* Returns the gauge's value now. */
typedef double metrics_gauge_fn(void *arg);

/* One sample of a top-N gauge. */
struct metrics_sample {
	char label[METRICS_LABEL_VALUE_MAX];	/* the label's value (any bytes;
						 * rendered escaped) */
	double value;
};

/* Fills out[0..max-1] (max == METRICS_TOP_MAX) and returns how many. */
typedef size_t metrics_top_fn(struct metrics_sample *out, size_t max, void *arg);

/* Makes gauge id read fn(arg) at each scrape instead of its stored value;
 * fn NULL goes back to the stored value. The gauge must have no label. */
void metrics_gauge_callback(enum metric_id id, metrics_gauge_fn *fn, void *arg);

/* Sets the callback of a top-N gauge (one with a label and no fixed
 * values); NULL renders no sample. */
void metrics_top_callback(enum metric_id id, metrics_top_fn *fn, void *arg);

/* ---- reading ---- */

/* A counter's value (label 0 for a counter without label). */
uint64_t metrics_counter_value(enum metric_id id, unsigned label);

/* A stored gauge's value (callbacks are not called). */
int64_t metrics_gauge_value(enum metric_id id);

/* A histogram's observation count. */
uint64_t metrics_histogram_count(enum metric_id id);

enum metrics_format { METRICS_TEXT, METRICS_OPENMETRICS };

/*
 * Appends every metric to out in format fmt. Returns 0, or -1 when out's
 * maximum was reached (out then holds a partial text: discard it).
 * Runs the gauge callbacks (see Threads above).
 */
int metrics_render(struct buf *out, enum metrics_format fmt);

/* The Content-Type of fmt (static string). */
const char *metrics_content_type(enum metrics_format fmt);

/*
 * The format an HTTP Accept header asks for: METRICS_OPENMETRICS when it
 * names application/openmetrics-text with a q-value above 0 and not below
 * the q-value of text/plain (or of a wildcard covering it); else
 * METRICS_TEXT (also for NULL, empty or malformed headers). Looks at the
 * first METRICS_ACCEPT_MAX bytes and METRICS_ACCEPT_RANGES media ranges.
 */
#define METRICS_ACCEPT_MAX	4096
#define METRICS_ACCEPT_RANGES	32
enum metrics_format metrics_format_from_accept(const char *accept);

#endif
