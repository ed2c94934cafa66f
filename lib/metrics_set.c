/*
 * metrics_set: mailserver's metric set, the one table of every metric's
 * name, help text, type, unit, label and buckets (lib/metrics.h). Adding a
 * metric is a new enum metric_id value and a new row here; the test
 * (tests/unit/test_metrics.c) checks the names against Prometheus's rules.
 */
#include "lib/metrics.h"

static const char *const reason_values[MR_COUNT] = {
	[MR_CONNECTION_LIMIT] = "connection_limit",
	[MR_CONNECTION_RATE] = "connection_rate",
	[MR_MESSAGE_RATE] = "message_rate",
	[MR_RECIPIENT_RATE] = "recipient_rate",
	[MR_UNKNOWN_RECIPIENT_RATE] = "unknown_recipient_rate",
	[MR_ACCOUNT_QUOTA] = "account_quota",
	[MR_DNSBL] = "dnsbl",
	[MR_PREGREET] = "pregreet",
	[MR_RELAY_DENIED] = "relay_denied",
	[MR_UNKNOWN_RECIPIENT] = "unknown_recipient",
	[MR_SENDER_MISMATCH] = "sender_mismatch",
	[MR_AUTH_REQUIRED] = "auth_required",
	[MR_MESSAGE_SIZE] = "message_size",
	[MR_RECIPIENT_LIMIT] = "recipient_limit",
	[MR_BAD_CONTENT] = "bad_content",
	[MR_MAIL_LOOP] = "mail_loop",
	[MR_QUEUE_FULL] = "queue_full",
	[MR_SENDER_AUTH] = "sender_auth",
	[MR_POLICY] = "policy",
	[MR_OTHER] = "other",
};

static const char *const result_values[MD_COUNT] = {
	[MD_DELIVERED] = "delivered",
	[MD_DEFERRED] = "deferred",
	[MD_BOUNCED] = "bounced",
};

static const char *const direction_values[MT_COUNT] = {
	[MT_INBOUND] = "inbound",
	[MT_OUTBOUND] = "outbound",
};

static const char *const auth_values[MA_COUNT] = {
	[MA_SUCCESS] = "success",
	[MA_FAILURE] = "failure",
};

/* A group commit takes one fsync: a few milliseconds on a healthy disk. */
static const double commit_buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

/* From milliseconds (local) to the default queue_lifetime (5 days). */
static const double delivery_buckets[] = {
	0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400, 432000,
};

/* From a refused connection to an hour-long idle session. */
static const double session_buckets[] = {
	0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600,
};

#define N(a) (sizeof (a) / sizeof (a)[0])
#define COUNTER(n, h) { .name = (n), .help = (h), .type = METRIC_COUNTER }
#define COUNTER_LABEL(n, h, l, v) { .name = (n), .help = (h), .type = METRIC_COUNTER, \
	.label = (l), .values = (v), .nvalues = N(v) }
#define GAUGE(n, h, u) { .name = (n), .help = (h), .type = METRIC_GAUGE, .unit = (u) }
#define HISTOGRAM(n, h, b) { .name = (n), .help = (h), .type = METRIC_HISTOGRAM, \
	.unit = "seconds", .buckets = (b), .nbuckets = N(b) }

const struct metric_def metrics_defs[M_COUNT] = {
	[M_CONNECTIONS] = COUNTER("mailserver_connections",
	    "Inbound SMTP connections accepted."),
	[M_REJECTIONS] = COUNTER_LABEL("mailserver_rejections",
	    "Connections, commands or messages refused, by reason.",
	    "reason", reason_values),
	[M_MESSAGES_RECEIVED] = COUNTER("mailserver_messages_received",
	    "Messages accepted and committed to the queue."),
	[M_RECIPIENTS_RECEIVED] = COUNTER("mailserver_recipients_received",
	    "Recipients of the messages committed to the queue."),
	[M_RECEIVED_BYTES] = { .name = "mailserver_received_bytes",
	    .help = "Bytes of the messages committed to the queue.",
	    .type = METRIC_COUNTER, .unit = "bytes" },
	[M_DELIVERIES] = COUNTER_LABEL("mailserver_deliveries",
	    "Delivery outcomes, one per recipient and attempt, by result.",
	    "result", result_values),
	[M_RELAYED_BYTES] = { .name = "mailserver_relayed_bytes",
	    .help = "Message bytes accepted by remote servers.",
	    .type = METRIC_COUNTER, .unit = "bytes" },
	[M_TLS_SESSIONS] = COUNTER_LABEL("mailserver_tls_sessions",
	    "TLS handshakes completed, inbound (STARTTLS, smtps) and outbound.",
	    "direction", direction_values),
	[M_AUTH] = COUNTER_LABEL("mailserver_auth_attempts",
	    "SMTP AUTH attempts, by result.", "result", auth_values),
	[M_SESSIONS] = GAUGE("mailserver_sessions",
	    "Inbound SMTP sessions open now.", NULL),
	[M_QUEUE_MESSAGES] = GAUGE("mailserver_queue_messages",
	    "Messages in the queue.", NULL),
	[M_QUEUE_RECIPIENTS] = GAUGE("mailserver_queue_recipients",
	    "Recipients in the queue still to be delivered.", NULL),
	[M_QUEUE_BYTES] = GAUGE("mailserver_queue_bytes",
	    "Bytes of the messages in the queue.", "bytes"),
	[M_QUEUE_OLDEST_AGE] = GAUGE("mailserver_queue_oldest_age_seconds",
	    "Age of the oldest message in the queue (0 when it is empty).", "seconds"),
	[M_DELIVERY_THREADS] = GAUGE("mailserver_delivery_threads",
	    "Threads in the delivery pool.", NULL),
	[M_DELIVERY_THREADS_BUSY] = GAUGE("mailserver_delivery_threads_busy",
	    "Delivery threads working on a job now.", NULL),
	[M_DESTINATION_CONCURRENCY] = { .name = "mailserver_destination_concurrency",
	    .help = "Deliveries in flight to the busiest destinations.",
	    .type = METRIC_GAUGE, .label = "destination" },
	[M_COMMIT_LATENCY] = HISTOGRAM("mailserver_commit_latency_seconds",
	    "From the end of a message's data to its durable commit.", commit_buckets),
	[M_DELIVERY_LATENCY] = HISTOGRAM("mailserver_delivery_latency_seconds",
	    "From a message's arrival to a recipient's final delivery.", delivery_buckets),
	[M_SESSION_DURATION] = HISTOGRAM("mailserver_session_duration_seconds",
	    "Inbound SMTP sessions, from connect to close.", session_buckets),
};

_Static_assert(N(commit_buckets) <= METRICS_BUCKETS_MAX, "too many buckets");
_Static_assert(N(delivery_buckets) <= METRICS_BUCKETS_MAX, "too many buckets");
_Static_assert(N(session_buckets) <= METRICS_BUCKETS_MAX, "too many buckets");
_Static_assert(N(reason_values) <= METRICS_LABELS_MAX, "too many label values");
