/*
 * relay: the outbound SMTP client (see relay.h for the behaviour and the
 * contract). This file holds the context (settings, TLS credentials, the
 * per-destination slots and the idle connection cache) and the
 * conversation, with its one TLS step (sess_tls: STARTTLS as the host
 * policy says, the check of the session, the TLS report); the socket and
 * TLS work is in relay_conn.c, the parsing and encoding in relay_proto.c,
 * what protects each host in relay/tls_policy.c.
 *
 * Bugs: a recipient domain written as an address literal ("[192.0.2.1]")
 * is not supported by the MX path (the caller may pass it as dest_host).
 */
#include "relay/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/util.h"
#include "lib/xtext.h"
#include "relay/envelope.h"
#include "relay/relay_conn.h"
#include "relay/relay_proto.h"
#include "relay/tls_policy.h"

#define RELAY_KEY_MAX		300	/* destination key, with its NUL */
#define RELAY_MAX_USES		100	/* transactions per connection */
#define RELAY_QUIT_TIMEOUT_MS	2000
#define RELAY_SESS_RPT_DOMAINS	8	/* policy domains a session is counted for */
#define RELAY_CMD_MAX		2048	/* a command line we build */

/* One conversation with one address. */
struct relay_sess {
	struct relay_conn *conn;
	char host[DNS_NAME_MAX];		/* host name, or the literal */
	char addr[48];				/* its address, numeric */
	uint16_t port;
	char hostaddr[DNS_NAME_MAX + 64];	/* "host[addr]" */
	char relay[300];			/* "host[addr]:port" */
	char sni[DNS_NAME_MAX];			/* host name, "" for literals */
	struct relay_caps caps;
	unsigned uses;				/* transactions done */
	int broken;				/* no QUIT, no reuse */
	/* The host policy the session was judged by (a cached session is
	 * reused only under the same), and what protects it. */
	uint8_t judged[TLS_HOST_POLICY_DIGEST_LEN];	/* tls_host_policy_digest */
	int verified;				/* authenticated: REQUIRETLS may go */
	/* Its TLS report result, and the policy domains it was counted for:
	 * a reused session counts once for each domain whose mail it
	 * carries (RFC 8460 reports are per policy domain). */
	int reported;
	enum tls_rpt_result rpt;
	size_t nrpt_domains;
	char rpt_domains[RELAY_SESS_RPT_DOMAINS][DNS_NAME_MAX];
	char prot[200];				/* relay_result.tls */
};

struct relay_idle {
	char key[RELAY_KEY_MAX];
	struct relay_sess *sess;
	int64_t since;				/* monotonic ms */
};

/* A destination with deliveries running; freed when none runs or waits. */
struct relay_dest {
	struct relay_dest *next;
	char key[RELAY_KEY_MAX];
	unsigned active;
	unsigned waiters;
};

struct relay_ctx {
	struct relay_settings st;
	char helo[DNS_NAME_MAX];
	struct relay_self_addr *self;	/* st.self copied */
	struct dns_resolver *dns;
	struct tls_policy_ctx *tlsp;	/* st.tls_policy; NULL: tls_outbound */
	gnutls_certificate_credentials_t cred;
	pthread_mutex_t mu;
	pthread_cond_t slot_cond;	/* a destination slot was released */
	struct relay_dest *dests;	/* under mu */
	struct relay_idle *idle;	/* under mu; nidle used of idle_cap */
	size_t nidle, idle_cap;
};

enum rcpt_state { RS_PENDING, RS_ACCEPTED, RS_DONE };

/* One relay_deliver call. */
struct relay_job {
	struct relay_ctx *ctx;
	const struct relay_msg *msg;
	const struct relay_rcpt *rcpts;
	struct relay_result *res;
	size_t n;
	unsigned char *state;		/* enum rcpt_state per recipient */
	unsigned char *again;		/* 452/552 at RCPT: another transaction */
	size_t npending;		/* RS_PENDING or RS_ACCEPTED */
	int need_utf8;			/* SMTPUTF8 is required */
	int want_utf8;			/* SMTPUTF8 is passed on when offered */
	int requiretls;			/* RFC 8689: verified TLS, REQUIRETLS */
	int tls_optional;		/* RFC 8689 5: TLS-Required: No */
	struct tls_dest_policy *dp;	/* once the hosts are known */
	const char *prot;		/* the session of the transaction in
					 * progress: what protects it */
	int64_t now;			/* Unix time (reports, MTA-STS) */
	int64_t deadline;		/* monotonic ms: the end of the call */
	char key[RELAY_KEY_MAX];
	/* The last error: what pending recipients get at the end. */
	char last_dsn[16];
	char last_diag[512];
	char last_relay[300];
	/* Hosts tried, and those that lacked what the message needs: when
	 * every one lacked it, the pending recipients bounce with ext_*. */
	unsigned hosts_tried;
	unsigned hosts_lacking;
	char ext_dsn[16];
	char ext_diag[512];
	char ext_relay[300];
	struct relay_reply reply;
};

/* Outcome of one attempt at one address. */
enum attempt_rc { ATT_NEXT, ATT_RETRY_PLAIN };

void
relay_settings_default(struct relay_settings *st)
{
	memset(st, 0, sizeof *st);
	st->helo_name = "localhost";
	st->smtp_port = 25;
	st->tls_outbound = RELAY_TLS_MAY;
	st->connect_timeout_ms = 30000;
	st->greeting_timeout_ms = 300000;
	st->command_timeout_ms = 300000;
	st->data_init_timeout_ms = 120000;
	st->data_block_timeout_ms = 180000;
	st->data_final_timeout_ms = 600000;
	st->max_addrs = 5;
	st->max_per_destination = 20;
	st->dest_wait_ms = 10000;
	st->idle_ms = 10000;
	st->max_idle = 32;
	st->attempt_timeout_ms = 1800000;
}

const char *
relay_status_str(enum relay_status st)
{
	switch (st) {
	case RELAY_SENT: return "sent";
	case RELAY_DEFERRED: return "deferred";
	case RELAY_BOUNCED: return "bounced";
	}
	return "?";
}

void
relay_settings_fill(struct relay_settings *st, const struct relay_settings *in)
{
	struct relay_settings d;

	relay_settings_default(&d);
	if (in == NULL) {
		*st = d;
		return;
	}
	*st = *in;
#define DEF(f) do { if (st->f == 0) st->f = d.f; } while (0)
	DEF(helo_name);
	DEF(smtp_port);
	DEF(connect_timeout_ms);
	DEF(greeting_timeout_ms);
	DEF(command_timeout_ms);
	DEF(data_init_timeout_ms);
	DEF(data_block_timeout_ms);
	DEF(data_final_timeout_ms);
	DEF(max_addrs);
	DEF(max_per_destination);
	DEF(dest_wait_ms);
	DEF(idle_ms);
	DEF(max_idle);
	DEF(attempt_timeout_ms);
#undef DEF
}

struct relay_ctx *
relay_ctx_new(const struct relay_settings *in, struct dns_resolver *dns,
    char *err, size_t errsize)
{
	struct relay_ctx *ctx;
	struct relay_settings st;
	pthread_condattr_t ca;
	int rc;

	relay_settings_fill(&st, in);
	if (st.tls_outbound < RELAY_TLS_NONE ||
	    st.tls_outbound > RELAY_TLS_ENCRYPT) {
		snprintf(err, errsize, "tls_outbound must be none, may or encrypt");
		return NULL;
	}
	if (st.max_addrs > DNS_MAX_TARGETS) {
		snprintf(err, errsize, "max_addrs must be 1..%d", DNS_MAX_TARGETS);
		return NULL;
	}
	/* The EHLO name goes into a command line: a plain token only. */
	if (strlen(st.helo_name) >= DNS_NAME_MAX ||
	    strpbrk(st.helo_name, " \t\r\n") != NULL ||
	    !relay_addr_ok(st.helo_name, DNS_NAME_MAX, NULL)) {
		snprintf(err, errsize, "bad helo name");
		return NULL;
	}
	for (size_t i = 0; i < st.nself; i++) {
		int fam = st.self[i].sa.ss_family;
		if ((fam != AF_INET && fam != AF_INET6) ||
		    st.self[i].salen > sizeof st.self[i].sa) {
			snprintf(err, errsize, "bad listening address");
			return NULL;
		}
	}
	ctx = xcalloc(1, sizeof *ctx);
	ctx->st = st;
	str_copy(ctx->helo, st.helo_name, sizeof ctx->helo);
	ctx->st.helo_name = ctx->helo;
	if (st.nself > 0) {
		ctx->self = xcalloc(st.nself, sizeof *ctx->self);
		memcpy(ctx->self, st.self, st.nself * sizeof *ctx->self);
	}
	ctx->st.self = ctx->self;
	ctx->dns = dns;
	ctx->tlsp = st.tls_policy;
	if ((rc = gnutls_certificate_allocate_credentials(&ctx->cred)) < 0) {
		snprintf(err, errsize, "gnutls: %s", gnutls_strerror(rc));
		free(ctx->self);
		free(ctx);
		return NULL;
	}
	pthread_mutex_init(&ctx->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ctx->slot_cond, &ca);
	pthread_condattr_destroy(&ca);
	ctx->idle_cap = st.max_idle == RELAY_NO_REUSE ? 0 : st.max_idle;
	if (ctx->idle_cap > 0)
		ctx->idle = xcalloc(ctx->idle_cap, sizeof *ctx->idle);
	return ctx;
}

/* Ends a session: QUIT (reply awaited briefly) unless broken; frees it. */
static void
sess_end(struct relay_sess **sp, unsigned quit_timeout_ms)
{
	struct relay_sess *s = *sp;

	if (s == NULL)
		return;
	if (!s->broken && quit_timeout_ms > 0) {
		char name[DNS_NAME_MAX + 80];

		str_format(name, sizeof name, "relay %s", s->hostaddr);
		relay_conn_quit(&s->conn, name, quit_timeout_ms);
	}
	relay_conn_close(&s->conn);
	free(s);
	*sp = NULL;
}

void
relay_ctx_free(struct relay_ctx **ctxp)
{
	struct relay_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	for (size_t i = 0; i < ctx->nidle; i++)
		sess_end(&ctx->idle[i].sess, RELAY_QUIT_TIMEOUT_MS);
	free(ctx->idle);
	while (ctx->dests != NULL) {
		struct relay_dest *d = ctx->dests;
		ctx->dests = d->next;
		free(d);
	}
	gnutls_certificate_free_credentials(ctx->cred);
	pthread_cond_destroy(&ctx->slot_cond);
	pthread_mutex_destroy(&ctx->mu);
	free(ctx->self);
	free(ctx);
	*ctxp = NULL;
}

/* ---- the idle connection cache ---- */

void
relay_ctx_expire_idle(struct relay_ctx *ctx)
{
	struct relay_sess *old[64];
	size_t nold = 0;
	int64_t now = time_mono_ms();

	pthread_mutex_lock(&ctx->mu);
	for (size_t i = 0; i < ctx->nidle && nold < 64;) {
		if (now - ctx->idle[i].since >= (int64_t)ctx->st.idle_ms) {
			old[nold++] = ctx->idle[i].sess;
			ctx->idle[i] = ctx->idle[--ctx->nidle];
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&ctx->mu);
	/* Outside the lock: QUIT may wait a little. */
	for (size_t i = 0; i < nold; i++)
		sess_end(&old[i], 200);
}

size_t
relay_ctx_idle_count(struct relay_ctx *ctx)
{
	size_t n;

	pthread_mutex_lock(&ctx->mu);
	n = ctx->nidle;
	pthread_mutex_unlock(&ctx->mu);
	return n;
}

/* The most recently parked idle session of key, or NULL. */
static struct relay_sess *
cache_take(struct relay_ctx *ctx, const char *key)
{
	struct relay_sess *s = NULL;
	size_t best = 0;
	int64_t now = time_mono_ms();

	pthread_mutex_lock(&ctx->mu);
	for (size_t i = 0; i < ctx->nidle; i++) {
		if (strcmp(ctx->idle[i].key, key) != 0 ||
		    now - ctx->idle[i].since >= (int64_t)ctx->st.idle_ms)
			continue;
		if (s == NULL || ctx->idle[i].since > ctx->idle[best].since) {
			s = ctx->idle[i].sess;
			best = i;
		}
	}
	if (s != NULL)
		ctx->idle[best] = ctx->idle[--ctx->nidle];
	pthread_mutex_unlock(&ctx->mu);
	return s;
}

/* Parks s for reuse, or ends it. */
static void
sess_release(struct relay_ctx *ctx, const char *key, struct relay_sess **sp,
    int reusable)
{
	struct relay_sess *s = *sp, *evict = NULL;

	*sp = NULL;
	if (s == NULL)
		return;
	if (!reusable || s->broken || ctx->idle_cap == 0 ||
	    s->uses >= RELAY_MAX_USES || relay_conn_readable(s->conn)) {
		sess_end(&s, s->broken ? 0 : RELAY_QUIT_TIMEOUT_MS);
		return;
	}
	pthread_mutex_lock(&ctx->mu);
	if (ctx->nidle == ctx->idle_cap) {
		size_t oldest = 0;
		for (size_t i = 1; i < ctx->nidle; i++)
			if (ctx->idle[i].since < ctx->idle[oldest].since)
				oldest = i;
		evict = ctx->idle[oldest].sess;
		ctx->idle[oldest] = ctx->idle[--ctx->nidle];
	}
	str_copy(ctx->idle[ctx->nidle].key, key, RELAY_KEY_MAX);
	ctx->idle[ctx->nidle].sess = s;
	ctx->idle[ctx->nidle].since = time_mono_ms();
	ctx->nidle++;
	pthread_mutex_unlock(&ctx->mu);
	sess_end(&evict, 200);
}

/* ---- per-destination concurrency ---- */

static struct relay_dest *
dest_find(struct relay_ctx *ctx, const char *key)
{
	for (struct relay_dest *d = ctx->dests; d != NULL; d = d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	return NULL;
}

/* Waits up to wait_ms for a slot of key. Returns 0 (hold it, give it
 * back with dest_release) or -1. */
static int
dest_acquire(struct relay_ctx *ctx, const char *key, unsigned wait_ms)
{
	struct relay_dest *d;
	struct timespec ts;
	int rc = 0;

	time_mono_deadline(&ts, wait_ms);
	pthread_mutex_lock(&ctx->mu);
	d = dest_find(ctx, key);
	if (d == NULL) {
		d = xcalloc(1, sizeof *d);
		str_copy(d->key, key, sizeof d->key);
		d->next = ctx->dests;
		ctx->dests = d;
	}
	/* d stays allocated while we wait: waiters > 0. */
	d->waiters++;
	while (d->active >= ctx->st.max_per_destination) {
		if (pthread_cond_timedwait(&ctx->slot_cond, &ctx->mu, &ts) ==
		    ETIMEDOUT && d->active >= ctx->st.max_per_destination) {
			rc = -1;
			break;
		}
	}
	d->waiters--;
	if (rc == 0)
		d->active++;
	pthread_mutex_unlock(&ctx->mu);
	return rc;
}

static void
dest_release(struct relay_ctx *ctx, const char *key)
{
	struct relay_dest **pp, *d;

	pthread_mutex_lock(&ctx->mu);
	for (pp = &ctx->dests; (d = *pp) != NULL; pp = &d->next) {
		if (strcmp(d->key, key) != 0)
			continue;
		if (d->active > 0)
			d->active--;
		if (d->active == 0 && d->waiters == 0) {
			*pp = d->next;
			free(d);
		}
		break;
	}
	pthread_cond_broadcast(&ctx->slot_cond);
	pthread_mutex_unlock(&ctx->mu);
}

/* ---- the time budget of one call ---- */

/* t, cut to what is left of the call's budget; at least 1 ms, so that a
 * spent budget shows as a timeout of whatever waits. */
static unsigned
job_ms(const struct relay_job *job, unsigned t)
{
	int64_t left = job->deadline - time_mono_ms();

	if (left < 1)
		return 1;
	return (int64_t)t < left ? t : (unsigned)left;
}

static int
job_expired(const struct relay_job *job)
{
	return time_mono_ms() >= job->deadline;
}

/* ---- results ---- */

static void
set_result(struct relay_result *r, enum relay_status st, const char *dsn,
    const char *relay, const char *diag)
{
	r->status = st;
	str_copy(r->dsn, dsn, sizeof r->dsn);
	str_copy(r->relay, relay, sizeof r->relay);
	str_copy(r->diag, diag, sizeof r->diag);
	r->tls[0] = '\0';
}

/* Recipient i is final. */
static void
job_final(struct relay_job *job, size_t i, enum relay_status st,
    const char *dsn, const char *relay, const char *diag)
{
	if (job->state[i] == RS_DONE)
		return;
	set_result(&job->res[i], st, dsn, relay, diag);
	if (job->prot != NULL)
		str_copy(job->res[i].tls, job->prot, sizeof job->res[i].tls);
	job->state[i] = RS_DONE;
	job->npending--;
}

/* Every recipient not yet final (only the accepted ones when
 * accepted_only) final. */
static void
job_final_all(struct relay_job *job, int accepted_only, enum relay_status st,
    const char *dsn, const char *relay, const char *diag)
{
	for (size_t i = 0; i < job->n; i++) {
		if (job->state[i] == RS_DONE ||
		    (accepted_only && job->state[i] != RS_ACCEPTED))
			continue;
		job_final(job, i, st, dsn, relay, diag);
	}
}

/* Remembers an error for the recipients that stay pending. */
static void
job_error(struct relay_job *job, const char *dsn, const char *relay,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
job_error(struct relay_job *job, const char *dsn, const char *relay,
    const char *fmt, ...)
{
	va_list ap;

	str_copy(job->last_dsn, dsn, sizeof job->last_dsn);
	str_copy(job->last_relay, relay, sizeof job->last_relay);
	va_start(ap, fmt);
	if (vsnprintf(job->last_diag, sizeof job->last_diag, fmt, ap) < 0)
		job->last_diag[0] = '\0';
	va_end(ap);
}

/* Accepted recipients go back to pending (the transaction failed before
 * the message was handed over). */
static void
job_unaccept(struct relay_job *job)
{
	for (size_t i = 0; i < job->n; i++)
		if (job->state[i] == RS_ACCEPTED)
			job->state[i] = RS_PENDING;
}

/* The enhanced code of a reply, or X.0.0 from its code. */
static void
reply_dsn(const struct relay_reply *r, char *dsn, size_t dsnsize)
{
	if (r->esc[0] != '\0')
		str_copy(dsn, r->esc, dsnsize);
	else if (snprintf(dsn, dsnsize, "%d.0.0", r->code / 100) < 0)
		dsn[0] = '\0';
}

/* "host H[IP] said: 550 5.1.1 ... (in reply to RCPT TO command)". */
static void
reply_diag(const struct relay_sess *s, const struct relay_reply *r,
    const char *cmd, char *out, size_t outsize)
{
	char line[480];

	relay_reply_oneline(r, line, sizeof line);
	if (snprintf(out, outsize, "host %s said: %s (in reply to %s command)",
	    s->hostaddr, line, cmd) < 0)
		out[0] = '\0';
}

/* Records a failed I/O call as the last error. */
static void
io_error(struct relay_job *job, struct relay_sess *s, int io,
    const char *while_)
{
	s->broken = 1;
	if (io == RELAY_IO_TIMEOUT)
		job_error(job, "4.4.2", s->relay,
		    "conversation with %s timed out while %s", s->hostaddr,
		    while_);
	else if (io == RELAY_IO_PROTO)
		job_error(job, "4.5.0", s->relay,
		    "malformed reply from %s while %s: %s", s->hostaddr, while_,
		    job->reply.error ? job->reply.error : "bad reply");
	else
		job_error(job, "4.4.2", s->relay,
		    "lost connection with %s while %s", s->hostaddr, while_);
}

/* ---- the conversation ---- */

/* Sends one command line (CRLF added). Refuses, as a bug, a line with a
 * CR or LF: callers only build lines from checked parts. */
static int
sess_send(struct relay_sess *s, const char *cmd, unsigned timeout_ms)
{
	char line[RELAY_CMD_MAX + 2];
	size_t n = strlen(cmd);

	if (n > RELAY_CMD_MAX || strpbrk(cmd, "\r\n") != NULL) {
		log_error("relay: refusing to send a malformed command line");
		return RELAY_IO_ERROR;
	}
	log_debug("relay %s: > %s", s->hostaddr, cmd);
	memcpy(line, cmd, n);
	memcpy(line + n, "\r\n", 2);
	return relay_conn_write(s->conn, line, n + 2, timeout_ms);
}

static int
sess_read(struct relay_job *job, struct relay_sess *s, unsigned timeout_ms)
{
	int io = relay_conn_read_reply(s->conn, &job->reply,
	    job_ms(job, timeout_ms));

	if (io == RELAY_IO_OK && log_get_level() <= LOG_LVL_DEBUG) {
		char line[512];
		log_debug("relay %s: < %s", s->hostaddr,
		    relay_reply_oneline(&job->reply, line, sizeof line));
	}
	if (io == RELAY_IO_OK && job->reply.code == 421)
		s->broken = 1;	/* the server is closing the connection */
	return io;
}

/* Sends cmd and reads its reply; on an I/O failure records it. */
static int
sess_cmd(struct relay_job *job, struct relay_sess *s, const char *cmd,
    unsigned timeout_ms, const char *while_)
{
	int io = sess_send(s, cmd, job_ms(job, timeout_ms));

	if (io == RELAY_IO_OK)
		io = sess_read(job, s, timeout_ms);
	if (io != RELAY_IO_OK)
		io_error(job, s, io, while_);
	return io;
}

/* A 4xx/5xx that skips the host, as a temporary error: the class becomes
 * 4 (Postfix's soft bounce of a server that refuses to talk). */
static void
host_refused(struct relay_job *job, struct relay_sess *s, const char *cmd)
{
	char line[480];
	char dsn[16];

	reply_dsn(&job->reply, dsn, sizeof dsn);
	dsn[0] = '4';
	relay_reply_oneline(&job->reply, line, sizeof line);
	if (cmd == NULL)
		job_error(job, dsn, s->relay, "host %s refused to talk to me: %s",
		    s->hostaddr, line);
	else
		job_error(job, dsn, s->relay,
		    "host %s said: %s (in reply to %s command)", s->hostaddr,
		    line, cmd);
}

/* EHLO, or HELO after a 5xx to EHLO. 0 ok, -1 skip the host. */
static int
sess_hello(struct relay_job *job, struct relay_sess *s, int after_tls)
{
	const struct relay_settings *st = &job->ctx->st;
	char cmd[DNS_NAME_MAX + 8];

	snprintf(cmd, sizeof cmd, "EHLO %s", job->ctx->helo);
	if (sess_cmd(job, s, cmd, st->command_timeout_ms,
	    "performing the EHLO handshake") != RELAY_IO_OK)
		return -1;
	if (job->reply.code / 100 == 2) {
		relay_caps_parse(&job->reply, &s->caps);
		return 0;
	}
	if (job->reply.code / 100 != 5 || after_tls || s->broken) {
		host_refused(job, s, "EHLO");
		return -1;
	}
	snprintf(cmd, sizeof cmd, "HELO %s", job->ctx->helo);
	if (sess_cmd(job, s, cmd, st->command_timeout_ms,
	    "performing the HELO handshake") != RELAY_IO_OK)
		return -1;
	if (job->reply.code / 100 != 2) {
		host_refused(job, s, "HELO");
		return -1;
	}
	memset(&s->caps, 0, sizeof s->caps);
	return 0;
}

/* Records a TLS result of host hi for RFC 8460 reports (not for a
 * policy relaxed by TLS-Required: No, which judged nothing). */
static void
job_report(struct relay_job *job, size_t hi, const char *receiving_ip,
    const struct relay_sess *s, enum tls_rpt_result r)
{
	char local[48] = "";

	if (job->ctx->tlsp == NULL || job->dp == NULL || job->dp->relaxed)
		return;
	if (s != NULL && s->conn != NULL)
		relay_conn_local_addr(s->conn, local, sizeof local);
	tls_policy_report(job->ctx->tlsp, job->dp, hi, receiving_ip,
	    local[0] ? local : NULL, r, job->now);
}

/* Records r as the result of session s with host hi, for this job's
 * policy domain and for the other domains whose mail it may carry later
 * (sess_report_reuse). */
static void
sess_report(struct relay_job *job, struct relay_sess *s, size_t hi,
    enum tls_rpt_result r)
{
	job_report(job, hi, s->addr, s, r);
	if (job->ctx->tlsp == NULL || job->dp->relaxed)
		return;
	s->reported = 1;
	s->rpt = r;
	s->nrpt_domains = 1;
	str_copy(s->rpt_domains[0], job->dp->domain, sizeof s->rpt_domains[0]);
}

/* A reused session s carries mail of this job's domain: counted for it
 * unless it was already (at most RELAY_SESS_RPT_DOMAINS domains). */
static void
sess_report_reuse(struct relay_job *job, struct relay_sess *s, size_t hi)
{
	if (!s->reported || job->dp->relaxed || job->dp->domain[0] == '\0')
		return;
	for (size_t i = 0; i < s->nrpt_domains; i++)
		if (strcmp(s->rpt_domains[i], job->dp->domain) == 0)
			return;
	if (s->nrpt_domains == RELAY_SESS_RPT_DOMAINS)
		return;
	str_copy(s->rpt_domains[s->nrpt_domains++], job->dp->domain,
	    sizeof s->rpt_domains[0]);
	job_report(job, hi, s->addr, s, s->rpt);
}

/* A session that stays in plaintext: what protects it (nothing), and
 * its report. */
static void
sess_plain(struct relay_job *job, struct relay_sess *s, size_t hi,
    const struct tls_host_policy *hp, int report)
{
	str_format(s->prot, sizeof s->prot, "plaintext (%s)", hp->via ? hp->via : "may");
	/* MTA-STS testing wants TLS: report its absence, deliver anyway. */
	if (report)
		sess_report(job, s, hi, hp->sts_testing ?
		    TLS_RPT_STARTTLS_NOT_SUPPORTED : TLS_RPT_SUCCESS);
}

/*
 * The TLS step of a connection to host hi, after the first EHLO: STARTTLS
 * as its host policy says (plain: the plaintext retry of may), the check
 * of the finished handshake before anything else is sent, the TLS report
 * of the result, and EHLO again. 0 go on (TLS, or plaintext where the
 * level allows it), -1 skip the host (QUIT), 1 the handshake failed at
 * may: retry in plaintext.
 */
static int
sess_tls(struct relay_job *job, struct relay_sess *s, size_t hi, int plain)
{
	const struct relay_settings *st = &job->ctx->st;
	const struct tls_host_policy *hp = &job->dp->hosts[hi];
	int required = hp->tls_required || job->requiretls;
	struct tls_check chk;
	char err[200], line[600];
	int io;

	tls_host_policy_digest(hp, s->judged);
	if (plain || hp->level == TLS_LEVEL_NONE) {
		sess_plain(job, s, hi, hp, 0);
		return 0;
	}
	if (!(s->caps.flags & RELAY_CAP_STARTTLS)) {
		if (!required) {
			sess_plain(job, s, hi, hp, 1);
			return 0;
		}
		job_report(job, hi, s->addr, s, TLS_RPT_STARTTLS_NOT_SUPPORTED);
		job_error(job, "4.7.4", s->relay,
		    "TLS is required, but was not offered by host %s",
		    s->hostaddr);
		return -1;
	}
	if (sess_cmd(job, s, "STARTTLS", st->command_timeout_ms,
	    "sending STARTTLS") != RELAY_IO_OK)
		return -1;
	if (job->reply.code != 220) {
		if (!required && !s->broken) {
			sess_plain(job, s, hi, hp, 1);
			return 0;	/* refused: plaintext on this connection */
		}
		job_report(job, hi, s->addr, s, TLS_RPT_STARTTLS_NOT_SUPPORTED);
		host_refused(job, s, "STARTTLS");
		str_copy(job->last_dsn, "4.7.4", sizeof job->last_dsn);
		return -1;
	}
	if (relay_conn_buffered(s->conn) > 0)
		log_debug("relay %s: discarding %zu bytes received before the "
		    "TLS handshake", s->hostaddr, relay_conn_buffered(s->conn));
	/* RFC 7672 8.1: with TLSA records, SNI is their base domain. */
	if (hp->sni[0] != '\0')
		str_copy(s->sni, hp->sni, sizeof s->sni);
	/* A session that is to be authenticated (DANE, MTA-STS enforce,
	 * verify), or to carry a REQUIRETLS message, gets TLS 1.2 or later
	 * (RFC 8996); others any version, as better than none. */
	io = relay_conn_starttls(s->conn, job->ctx->cred,
	    s->sni[0] ? s->sni : NULL,
	    (hp->auth != TLS_AUTH_NONE && !hp->sts_testing) || job->requiretls,
	    job_ms(job, st->command_timeout_ms), err, sizeof err);
	if (io != RELAY_IO_OK) {
		s->broken = 1;
		job_report(job, hi, s->addr, s, TLS_RPT_VALIDATION_FAILURE);
		job_error(job, "4.7.5", s->relay,
		    "Cannot start TLS: handshake failure with %s: %s",
		    s->hostaddr, err);
		return required ? -1 : 1;
	}
	/* Judged before anything of the message, or even EHLO, is sent. */
	tls_policy_check_session(job->ctx->tlsp, hp,
	    relay_conn_tls_session(s->conn), &chk);
	tls_check_describe(&chk, s->host, s->addr, s->port, line, sizeof line);
	log_info("%s", line);
	sess_report(job, s, hi, chk.rpt);
	if (!chk.ok) {
		job_error(job, "4.7.5", s->relay, "TLS policy (%s) not met by "
		    "host %s: %s", chk.via, s->hostaddr, chk.reason);
		return -1;
	}
	s->verified = chk.verdict == TLS_VERDICT_VERIFIED &&
	    tls_host_policy_authenticates(hp);
	str_format(s->prot, sizeof s->prot, "%s %s (%s)",
	    tls_verdict_str(chk.verdict), chk.desc, chk.via);
	metrics_inc_label(M_TLS_SESSIONS, MT_OUTBOUND);
	/* RFC 3207 4.2: forget all we knew; ask again. */
	memset(&s->caps, 0, sizeof s->caps);
	if (sess_hello(job, s, 1) < 0)
		return -1;
	return 0;
}

/* Appends " NOTIFY=..." for the bits. */
static void
add_notify(struct buf *b, unsigned notify)
{
	const char *sep = " NOTIFY=";

	if (notify & RELAY_NOTIFY_NEVER) {
		buf_puts(b, " NOTIFY=NEVER");
		return;
	}
	if (notify & RELAY_NOTIFY_SUCCESS) {
		buf_printf(b, "%sSUCCESS", sep);
		sep = ",";
	}
	if (notify & RELAY_NOTIFY_FAILURE) {
		buf_printf(b, "%sFAILURE", sep);
		sep = ",";
	}
	if (notify & RELAY_NOTIFY_DELAY)
		buf_printf(b, "%sDELAY", sep);
}

/* Appends " ORCPT=type;xtext" when orcpt is "type;addr" with a plain
 * type (utf-8: RFC 6533's 7-bit form); drops it otherwise. */
static void
add_orcpt(struct buf *b, const char *orcpt)
{
	const char *semi;
	char enc[RELAY_ADDR_MAX * 6 + 1];	/* "+" is "\x{2B}" */
	size_t tlen;

	if (orcpt == NULL || (semi = strchr(orcpt, ';')) == NULL)
		return;
	tlen = (size_t)(semi - orcpt);
	if (tlen == 0 || tlen > 32)
		return;
	for (size_t i = 0; i < tlen; i++) {
		char c = orcpt[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return;
	}
	if (strlen(semi + 1) > RELAY_ADDR_MAX)
		return;
	/* RFC 6533 3: a utf-8 address goes in its 7-bit form ("\x{E9}"),
	 * any other type as xtext (RFC 3461 4). */
	if (tlen == 5 && strncasecmp(orcpt, "utf-8", 5) == 0 ?
	    xtext_encode_utf8_addr(semi + 1, enc, sizeof enc) < 0 :
	    xtext_encode(semi + 1, enc, sizeof enc) < 0)
		return;
	buf_printf(b, " ORCPT=%.*s;%s", (int)tlen, orcpt, enc);
}

static void
build_mail(struct relay_job *job, struct relay_sess *s, struct buf *b)
{
	const struct relay_msg *m = job->msg;
	unsigned caps = s->caps.flags;

	buf_reset(b);
	buf_printf(b, "MAIL FROM:<%s>", m->sender);
	if (caps & RELAY_CAP_SIZE)
		buf_printf(b, " SIZE=%llu", (unsigned long long)m->body->size);
	if (m->eightbit && (caps & RELAY_CAP_8BITMIME))
		buf_puts(b, " BODY=8BITMIME");
	if (job->want_utf8 && (caps & RELAY_CAP_SMTPUTF8))
		buf_puts(b, " SMTPUTF8");
	if (job->requiretls)
		buf_puts(b, " REQUIRETLS");	/* sess_transaction checked caps */
	if (caps & RELAY_CAP_DSN) {
		char enc[400];

		if (m->ret == RELAY_RET_FULL)
			buf_puts(b, " RET=FULL");
		else if (m->ret == RELAY_RET_HDRS)
			buf_puts(b, " RET=HDRS");
		if (m->envid != NULL && *m->envid != '\0' && strlen(m->envid) <= 100 &&
		    xtext_encode(m->envid, enc, sizeof enc) == 0)
			buf_printf(b, " ENVID=%s", enc);
	}
}

static void
build_rcpt(struct relay_job *job, struct relay_sess *s, size_t i,
    struct buf *b)
{
	const struct relay_rcpt *r = &job->rcpts[i];

	buf_reset(b);
	buf_printf(b, "RCPT TO:<%s>", r->addr);
	if (s->caps.flags & RELAY_CAP_DSN) {
		if (r->notify != 0)
			add_notify(b, r->notify);
		add_orcpt(b, r->orcpt);
	}
}

/* Sends the message after 354 (relay_conn_send_data); RELAY_IO_BODY
 * when it could not be read: then the final "." never went out. */
static int
send_body(struct relay_job *job, struct relay_sess *s)
{
	return relay_conn_send_data(s->conn, job->msg->body,
	    job->ctx->st.data_block_timeout_ms, job->deadline);
}

/* The host at relay lacks what the message needs: remember why, and
 * skip it. */
static void
lacks_at(struct relay_job *job, const char *relay, const char *dsn,
    const char *diag)
{
	job->hosts_lacking++;
	str_copy(job->ext_dsn, dsn, sizeof job->ext_dsn);
	str_copy(job->ext_diag, diag, sizeof job->ext_diag);
	str_copy(job->ext_relay, relay, sizeof job->ext_relay);
}

static void
host_lacks(struct relay_job *job, struct relay_sess *s, const char *dsn,
    const char *diag)
{
	lacks_at(job, s->relay, dsn, diag);
}

/* A 421: the server is closing the connection. What it took in this
 * transaction goes to the next host. */
static void
host_closing(struct relay_job *job, struct relay_sess *s, const char *cmd)
{
	s->broken = 1;
	host_refused(job, s, cmd);
	job_unaccept(job);
}

/* Recipient i got a RCPT reply other than 2xx. */
static void
rcpt_refused(struct relay_job *job, struct relay_sess *s, size_t i)
{
	int code = job->reply.code;
	char diag[512], dsn[16];

	reply_dsn(&job->reply, dsn, sizeof dsn);
	reply_diag(s, &job->reply, "RCPT TO", diag, sizeof diag);
	/* RFC 5321 4.5.3.1.10: 552 here means too many recipients, as 452. */
	if (code == 552) {
		code = 452;
		dsn[0] = '4';
	}
	if (code == 452)
		job->again[i] = 1;
	job_final(job, i, code / 100 == 5 ? RELAY_BOUNCED : RELAY_DEFERRED, dsn,
	    s->relay, diag);
}

/* The accepted recipients are delivered: SENT, and whether the server
 * took their DSN parameters along. */
static void
txn_sent(struct relay_job *job, struct relay_sess *s, const char *dsn)
{
	char diag[512];

	relay_reply_oneline(&job->reply, diag, sizeof diag);
	for (size_t i = 0; i < job->n; i++) {
		if (job->state[i] != RS_ACCEPTED)
			continue;
		job_final(job, i, RELAY_SENT, dsn, s->relay, diag);
		job->res[i].dsn_passed = (s->caps.flags & RELAY_CAP_DSN) != 0;
	}
}

/* Recipients refused with 452 or 552 in a transaction that delivered to
 * others become pending again for the next one. Returns how many. */
static size_t
job_requeue_again(struct relay_job *job)
{
	size_t n = 0;

	for (size_t i = 0; i < job->n; i++) {
		if (!job->again[i])
			continue;
		job->again[i] = 0;
		if (job->state[i] == RS_DONE &&
		    job->res[i].status == RELAY_DEFERRED) {
			job->state[i] = RS_PENDING;
			job->npending++;
			n++;
		}
	}
	return n;
}

/* The envelope's callbacks (relay/envelope.h) on one job and session. */
struct env_ctx {
	struct relay_job *job;
	struct relay_sess *s;
	char mail_dsn[16];		/* MAIL's reply, kept */
	char mail_diag[512];
};

static void
env_build(void *arg, long cmd, struct buf *line)
{
	struct env_ctx *c = arg;

	if (cmd == RELAY_ENV_MAIL)
		build_mail(c->job, c->s, line);
	else if (cmd == RELAY_ENV_DATA)
		buf_puts(line, "DATA");
	else
		build_rcpt(c->job, c->s, (size_t)cmd, line);
}

static int
env_write(void *arg, const char *p, size_t n, unsigned timeout_ms)
{
	struct env_ctx *c = arg;

	return relay_conn_write(c->s->conn, p, n, job_ms(c->job, timeout_ms));
}

static int
env_read(void *arg, long cmd, unsigned timeout_ms)
{
	struct env_ctx *c = arg;

	(void)cmd;
	return sess_read(c->job, c->s, timeout_ms);
}

static int
env_judge(void *arg, long cmd)
{
	struct env_ctx *c = arg;
	size_t i = (size_t)cmd;

	if (cmd == RELAY_ENV_MAIL) {
		reply_dsn(&c->job->reply, c->mail_dsn, sizeof c->mail_dsn);
		reply_diag(c->s, &c->job->reply, "MAIL FROM", c->mail_diag,
		    sizeof c->mail_diag);
		return 0;
	}
	if (cmd == RELAY_ENV_DATA)
		return 0;
	if (c->job->reply.code == 421) {
		host_closing(c->job, c->s, "RCPT TO");
		return -1;
	}
	if (c->job->reply.code / 100 == 2) {
		c->job->state[i] = RS_ACCEPTED;
		return 1;
	}
	rcpt_refused(c->job, c->s, i);
	return 0;
}

static const struct relay_envelope_ops env_ops = {
	env_build, env_write, env_read, env_judge
};

enum txn_rc { TXN_CLOSE = 0, TXN_REUSE = 1, TXN_DELIVERED = 2 };

/*
 * One transaction for every pending recipient on a greeted session.
 * Returns TXN_DELIVERED when the message went to some recipients and the
 * connection is clean for another transaction, TXN_REUSE when it is
 * clean but nothing was delivered, TXN_CLOSE when it must be closed.
 */
static int
sess_transaction(struct relay_job *job, struct relay_sess *s)
{
	const struct relay_settings *st = &job->ctx->st;
	const struct relay_msg *m = job->msg;
	char diag[512], dsn[16];
	struct env_ctx ec = { .job = job, .s = s };
	struct relay_envelope env = {
		.ops = &env_ops, .arg = &ec, .line_max = RELAY_CMD_MAX,
		.reply = &job->reply,
		.command_timeout_ms = st->command_timeout_ms,
		.data_init_timeout_ms = st->data_init_timeout_ms,
	};
	char peer[sizeof s->hostaddr + 8];
	size_t *rcpts, nrcpt = 0;
	int rc = TXN_CLOSE, io;

	if (job->need_utf8 && !(s->caps.flags & RELAY_CAP_SMTPUTF8)) {
		snprintf(diag, sizeof diag, "SMTPUTF8 is required, but was not "
		    "offered by host %s", s->hostaddr);
		host_lacks(job, s, "5.6.7", diag);
		return TXN_REUSE;
	}
	/* RFC 8689 4.2.1: an authenticated session, and the next hop takes
	 * the obligation on. */
	if (job->requiretls && !s->verified) {
		snprintf(diag, sizeof diag, "REQUIRETLS: the TLS session with host "
		    "%s is not authenticated", s->hostaddr);
		host_lacks(job, s, "5.7.10", diag);
		return TXN_REUSE;
	}
	if (job->requiretls && !(s->caps.flags & RELAY_CAP_REQUIRETLS)) {
		snprintf(diag, sizeof diag, "REQUIRETLS support required, but host "
		    "%s does not offer it", s->hostaddr);
		host_lacks(job, s, "5.7.30", diag);
		return TXN_REUSE;
	}
	if ((s->caps.flags & RELAY_CAP_SIZE) && s->caps.size_max > 0 &&
	    m->body->size > s->caps.size_max) {
		snprintf(diag, sizeof diag, "message size %llu exceeds size limit "
		    "%llu of server %s", (unsigned long long)m->body->size,
		    (unsigned long long)s->caps.size_max, s->hostaddr);
		host_lacks(job, s, "5.3.4", diag);
		return TXN_REUSE;
	}

	s->uses++;
	job->prot = s->prot;
	rcpts = xcalloc(job->n ? job->n : 1, sizeof *rcpts);
	for (size_t i = 0; i < job->n; i++)
		if (job->state[i] == RS_PENDING)
			rcpts[nrcpt++] = i;
	env.window = (s->caps.flags & RELAY_CAP_PIPELINING) ? RELAY_ENV_WINDOW : 1;
	snprintf(peer, sizeof peer, "relay %s", s->hostaddr);
	env.peer = peer;
	io = relay_envelope_run(&env, rcpts, nrcpt);
	if (io == RELAY_ENV_STOPPED)
		goto fail;
	if (io != RELAY_IO_OK) {
		io_error(job, s, io, env.at == RELAY_ENV_MAIL ? "sending MAIL FROM" :
		    env.at == RELAY_ENV_DATA ? "sending DATA command" :
		    "sending RCPT TO");
		goto fail;
	}

	if (env.data_code == 354 && (env.mail_code / 100 != 2 || env.nacc == 0) &&
	    !s->broken) {
		/* Pipelined DATA went through though the transaction had
		 * failed: end an empty message; its reply does not matter. */
		log_debug("relay %s: > . (empty message)", s->hostaddr);
		io = relay_conn_write(s->conn, ".\r\n", 3,
		    job_ms(job, st->data_block_timeout_ms));
		if (io == RELAY_IO_OK)
			io = sess_read(job, s, st->data_final_timeout_ms);
		if (io != RELAY_IO_OK)
			s->broken = 1;
	}
	if (env.mail_code / 100 != 2) {
		if (env.mail_code / 100 == 5) {
			job_final_all(job, 0, RELAY_BOUNCED, ec.mail_dsn, s->relay,
			    ec.mail_diag);
		} else {
			/* 4xx: another host may take it (as Postfix). */
			job_error(job, ec.mail_dsn, s->relay, "%s", ec.mail_diag);
		}
		rc = s->broken ? TXN_CLOSE : TXN_REUSE;
		goto out;
	}
	if (!env.data_sent || env.nacc == 0) {
		rc = s->broken ? TXN_CLOSE : TXN_REUSE;
		goto out;
	}
	if (env.data_code != 354) {
		if (env.data_code == 421) {
			host_closing(job, s, "DATA");
			goto out;
		}
		reply_dsn(&job->reply, dsn, sizeof dsn);
		reply_diag(s, &job->reply, "DATA", diag, sizeof diag);
		if (env.data_code / 100 == 5) {
			job_final_all(job, 1, RELAY_BOUNCED, dsn, s->relay, diag);
		} else if (env.data_code / 100 == 4) {
			job_final_all(job, 1, RELAY_DEFERRED, dsn, s->relay, diag);
		} else {
			/* 2xx/3xx other than 354: not SMTP as we know it. */
			job_error(job, "4.5.0", s->relay, "%s", diag);
			job_unaccept(job);
			s->broken = 1;
		}
		rc = s->broken ? TXN_CLOSE : TXN_REUSE;
		goto out;
	}

	/* The message goes out: from here on a failure is final for this
	 * attempt (it may have been delivered). */
	log_debug("relay %s: > (message, %llu bytes)", s->hostaddr,
	    (unsigned long long)m->body->size);
	io = send_body(job, s);
	if (io == RELAY_IO_BODY) {
		/* Half a message must never look whole: no ".", the
		 * connection goes. */
		s->broken = 1;
		job_final_all(job, 1, RELAY_DEFERRED, "4.3.0", s->relay,
		    "cannot read the message from the queue");
		goto out;
	}
	if (io != RELAY_IO_OK) {
		io_error(job, s, io, "sending message body");
		job_final_all(job, 1, RELAY_DEFERRED, job->last_dsn, s->relay,
		    job->last_diag);
		goto out;
	}
	io = sess_read(job, s, st->data_final_timeout_ms);
	if (io != RELAY_IO_OK) {
		io_error(job, s, io, "sending end of data -- message may be "
		    "sent more than once");
		job_final_all(job, 1, RELAY_DEFERRED, job->last_dsn, s->relay,
		    job->last_diag);
		goto out;
	}
	reply_dsn(&job->reply, dsn, sizeof dsn);
	if (job->reply.code == 421) {
		/* Refused, not taken: the next host may take it. */
		host_closing(job, s, "end of DATA");
		goto out;
	}
	switch (job->reply.code / 100) {
	case 2:
		txn_sent(job, s, dsn);
		rc = s->broken ? TXN_CLOSE : TXN_DELIVERED;
		goto out;
	case 4:
		reply_diag(s, &job->reply, "end of DATA", diag, sizeof diag);
		job_final_all(job, 1, RELAY_DEFERRED, dsn, s->relay, diag);
		break;
	default:
		reply_diag(s, &job->reply, "end of DATA", diag, sizeof diag);
		job_final_all(job, 1, RELAY_BOUNCED, dsn, s->relay, diag);
		break;
	}
	rc = s->broken ? TXN_CLOSE : TXN_REUSE;
	goto out;
fail:
	job_unaccept(job);
	rc = TXN_CLOSE;
out:
	job->prot = NULL;
	free(rcpts);
	return rc;
}

/* Transactions on one session until every recipient it may take is
 * done: after one that delivered, recipients refused as too many go in
 * the next. Returns 1 when the connection may be reused. */
static int
sess_transactions(struct relay_job *job, struct relay_sess *s)
{
	int rc;

	while ((rc = sess_transaction(job, s)) == TXN_DELIVERED &&
	    job_requeue_again(job) > 0 && !job_expired(job))
		log_debug("relay %s: another transaction for the recipients "
		    "refused as too many", s->hostaddr);
	memset(job->again, 0, job->n);
	return rc != TXN_CLOSE;
}

/* RSET on an idle connection taken from the cache. 0 usable, -1 not. */
static int
sess_reset(struct relay_job *job, struct relay_sess *s)
{
	if (relay_conn_readable(s->conn)) {
		s->broken = 1;	/* EOF or an unsolicited 421 */
		return -1;
	}
	if (sess_cmd(job, s, "RSET", job->ctx->st.command_timeout_ms,
	    "sending RSET") != RELAY_IO_OK)
		return -1;
	if (job->reply.code / 100 != 2) {
		s->broken = 1;
		return -1;
	}
	return 0;
}

/* One connection to host hi at one address: greeting, EHLO, TLS,
 * transaction. plain: the plaintext retry of may. */
static int
attempt(struct relay_job *job, size_t hi, const char *host,
    const struct dns_addr *addr, uint16_t port, int plain)
{
	const struct relay_settings *st = &job->ctx->st;
	struct relay_sess *s;
	char err[200];
	int rc, io;

	s = xcalloc(1, sizeof *s);
	str_copy(s->host, host, sizeof s->host);
	str_copy(s->addr, addr->text, sizeof s->addr);
	s->port = port;
	snprintf(s->hostaddr, sizeof s->hostaddr, "%s[%s]", host, addr->text);
	snprintf(s->relay, sizeof s->relay, "%s[%s]:%u", host, addr->text,
	    (unsigned)port);
	if (strcmp(host, addr->text) != 0)
		str_copy(s->sni, host, sizeof s->sni);
	io = relay_conn_open(addr, port, job_ms(job, st->connect_timeout_ms),
	    &s->conn, err, sizeof err);
	if (io != RELAY_IO_OK) {
		job_error(job, "4.4.1", "none", "connect to %s: %s", s->relay,
		    err);
		free(s);
		return ATT_NEXT;
	}
	log_debug("relay %s: connected to port %u", s->hostaddr, (unsigned)port);
	io = sess_read(job, s, st->greeting_timeout_ms);
	if (io != RELAY_IO_OK) {
		io_error(job, s, io, "receiving the initial server greeting");
		goto skip;
	}
	if (job->reply.code / 100 != 2) {
		host_refused(job, s, NULL);
		goto skip;
	}
	if (sess_hello(job, s, 0) < 0)
		goto skip;
	rc = sess_tls(job, s, hi, plain);
	if (rc != 0) {
		sess_end(&s, s->broken ? 0 : RELAY_QUIT_TIMEOUT_MS);
		return rc > 0 ? ATT_RETRY_PLAIN : ATT_NEXT;
	}
	rc = sess_transactions(job, s);
	sess_release(job->ctx, job->key, &s, rc);
	return ATT_NEXT;
skip:
	sess_end(&s, s->broken ? 0 : RELAY_QUIT_TIMEOUT_MS);
	return ATT_NEXT;
}

/* May an idle session s serve this job: a host of its destination policy
 * now, not skipped, under the same host policy it was judged by? The
 * same means the same names and TLSA records too: destinations routed to
 * one host share its idle connections, and a session verified for one
 * domain's match= names proves nothing for another's. */
static int
sess_fits(const struct relay_job *job, const struct relay_sess *s, size_t *hi_r)
{
	uint8_t d[TLS_HOST_POLICY_DIGEST_LEN];

	for (size_t i = 0; i < job->dp->nhosts; i++) {
		const struct tls_host_policy *hp = &job->dp->hosts[i];
		if (strcasecmp(hp->host, s->host) != 0)
			continue;
		if (hp->skip)
			return 0;
		tls_host_policy_digest(hp, d);
		*hi_r = i;
		return memcmp(d, s->judged, sizeof d) == 0;
	}
	return 0;
}

/* Tries idle connections of this destination (at most a few). */
static void
try_cached(struct relay_job *job)
{
	for (int tries = 0; tries < 3 && job->npending > 0; tries++) {
		struct relay_sess *s = cache_take(job->ctx, job->key);
		size_t hi;
		int rc;

		if (s == NULL)
			return;
		if (!sess_fits(job, s, &hi)) {
			log_debug("relay %s: idle connection not reused: the TLS "
			    "policy changed", s->hostaddr);
			sess_end(&s, RELAY_QUIT_TIMEOUT_MS);
			continue;
		}
		if (sess_reset(job, s) < 0) {
			sess_end(&s, 0);
			continue;
		}
		log_debug("relay %s: reusing connection", s->hostaddr);
		sess_report_reuse(job, s, hi);
		job->hosts_tried++;
		rc = sess_transactions(job, s);
		sess_release(job->ctx, job->key, &s, rc);
		return;
	}
}

/* "[host]" or "host" without brackets into out. */
static int
strip_brackets(const char *in, char *out, size_t outsize)
{
	size_t n = strlen(in);

	if (n >= 2 && in[0] == '[' && in[n - 1] == ']') {
		in++;
		n -= 2;
	}
	if (n == 0 || n >= outsize)
		return -1;
	memcpy(out, in, n);
	out[n] = '\0';
	return 0;
}

/* A DNS failure: permanent ones bounce, others are the last error. */
static void
dns_failed(struct relay_job *job, int status, const char *name,
    const char *type, const char *detail)
{
	char diag[512];

	if (status == DNS_NULL_MX)
		snprintf(diag, sizeof diag, "Domain %s does not accept mail "
		    "(nullMX)", name);
	else
		snprintf(diag, sizeof diag, "Host or domain name not found. "
		    "Name service error for name=%s type=%s: %s", name, type,
		    detail && *detail ? detail : dns_status_str(status));
	if (dns_status_is_permanent(status))
		job_final_all(job, 0, RELAY_BOUNCED, dns_status_dsn(status),
		    "none", diag);
	else
		job_error(job, dns_status_dsn(status), "none", "%s", diag);
}

/* The level of tls_outbound, for a context without a TLS policy. */
static enum tls_level
plain_level(int tls_outbound)
{
	return tls_outbound == RELAY_TLS_NONE ? TLS_LEVEL_NONE :
	    tls_outbound == RELAY_TLS_ENCRYPT ? TLS_LEVEL_ENCRYPT : TLS_LEVEL_MAY;
}

/* After the policy of the destination is known: 0 go on, -1 nothing may
 * be sent to any host (the reason is the last error). */
static int
job_policy_ready(struct relay_job *job)
{
	struct tls_dest_policy *dp = job->dp;

	if (job->tls_optional)
		tls_dest_policy_relax(dp);
	if (dp->defer) {
		job_report(job, dp->nhosts, NULL, NULL, dp->defer_rpt);
		job_error(job, "4.7.5", "none", "TLS policy of %s: %s", dp->domain,
		    dp->defer_reason);
		return -1;
	}
	if (dp->sts_looked_up && dp->sts.failure != MTA_STS_FAIL_NONE)
		job_report(job, 0, NULL, NULL,
		    tls_policy_sts_failure_rpt(dp->sts.failure));
	return 0;
}

/* Tries one address of host hi, with the plaintext retry of TLS "may".
 * Returns 0, or -1 when the call's time is up (then nothing was tried). */
static int
try_addr(struct relay_job *job, size_t hi, const char *host,
    const struct dns_addr *a, uint16_t port)
{
	const struct tls_host_policy *hp = &job->dp->hosts[hi];
	char relay[300], diag[512];

	if (job_expired(job)) {
		job_error(job, "4.4.2", "none", "time limit of %u s for one "
		    "delivery attempt reached before %s[%s] could be tried",
		    job->ctx->st.attempt_timeout_ms / 1000, host, a->text);
		return -1;
	}
	snprintf(relay, sizeof relay, "%s[%s]:%u", host, a->text, (unsigned)port);
	if (hp->skip) {
		job_report(job, hi, a->text, NULL, hp->skip_rpt);
		job_error(job, "4.7.5", "none", "TLS policy: %s[%s] not tried: %s",
		    host, a->text, hp->skip_reason);
		return 0;
	}
	job->hosts_tried++;
	if (job->requiretls && !tls_host_policy_authenticates(hp)) {
		snprintf(diag, sizeof diag, "REQUIRETLS: host %s[%s] cannot be "
		    "authenticated (TLS level %s: no DANE, MTA-STS or verify "
		    "policy)", host, a->text, hp->via ? hp->via : "may");
		lacks_at(job, relay, "5.7.10", diag);
		return 0;
	}
	if (attempt(job, hi, host, a, port, 0) == ATT_RETRY_PLAIN &&
	    job->npending > 0 && !job_expired(job))
		(void)attempt(job, hi, host, a, port, 1);
	return 0;
}

static int addr_is_self(const struct relay_ctx *ctx, const struct dns_addr *a,
    uint16_t port);

static void
deliver_fixed(struct relay_job *job, const char *domain, const char *dest_host,
    uint16_t port)
{
	struct relay_ctx *ctx = job->ctx;
	char host[DNS_NAME_MAX];
	const char *hosts[1];
	struct dns_addr lit;
	struct dns_addr_result *res = NULL;
	size_t naddrs;
	const struct dns_addr *addrs;

	if (strip_brackets(dest_host, host, sizeof host) < 0 ||
	    !relay_addr_ok(host, sizeof host, NULL)) {
		job_final_all(job, 0, RELAY_BOUNCED, "5.1.2", "none",
		    "bad destination host name");
		return;
	}
	memset(&lit, 0, sizeof lit);
	if (inet_pton(AF_INET, host, lit.bytes) == 1)
		lit.family = AF_INET;
	else if (inet_pton(AF_INET6, host, lit.bytes) == 1)
		lit.family = AF_INET6;
	if (lit.family != 0) {
		str_copy(lit.text, host, sizeof lit.text);
		addrs = &lit;
		naddrs = 1;
	} else {
		int status;

		if (ctx->dns == NULL) {
			job_error(job, "4.4.3", "none", "no resolver for %s",
			    host);
			return;
		}
		status = dns_addr_lookup(ctx->dns, host, &res);
		if (status != DNS_OK) {
			dns_failed(job, status, host, "A", res->detail);
			dns_addr_result_free(&res);
			return;
		}
		addrs = res->addrs;
		naddrs = res->naddrs;
	}
	/* An address of ours at that port is this server (an address literal
	 * of ours that delivery did not take as local, a route or relayhost
	 * naming us): never sent there, and with no other address the mail
	 * would loop (as for an MX list, deliver_mx). */
	size_t nself = 0;
	for (size_t i = 0; i < naddrs; i++)
		nself += addr_is_self(ctx, &addrs[i], port);
	if (nself > 0 && nself == naddrs) {
		char diag[DNS_NAME_MAX + 40];
		snprintf(diag, sizeof diag, "mail for %s loops back to myself", domain);
		job_final_all(job, 0, RELAY_BOUNCED, "5.4.6", "none", diag);
		dns_addr_result_free(&res);
		return;
	}
	hosts[0] = host;
	if (ctx->tlsp != NULL)
		tls_policy_fixed(ctx->tlsp, domain, host, job->now, &job->dp);
	else
		tls_dest_policy_plain(domain, hosts, 1,
		    plain_level(ctx->st.tls_outbound), &job->dp);
	if (job_policy_ready(job) == 0) {
		try_cached(job);
		for (size_t i = 0; i < naddrs && i < ctx->st.max_addrs &&
		    job->npending > 0; i++)
			if ((nself == 0 || !addr_is_self(ctx, &addrs[i], port)) &&
			    try_addr(job, 0, host, &addrs[i], port) < 0)
				break;
	}
	dns_addr_result_free(&res);
}

/* Can a socket be bound to a (is it an address of this host)? */
static int
addr_is_local(const struct dns_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, ok;

	memset(&ss, 0, sizeof ss);
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, a->bytes, 4);
		len = sizeof *sin;
	} else if (a->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, a->bytes, 16);
		len = sizeof *sin6;
	} else {
		return 0;
	}
	if ((fd = socket(a->family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	ok = bind(fd, (struct sockaddr *)&ss, len) == 0;
	close(fd);
	return ok;
}

/* Is address a, at port, where this server listens? */
static int
addr_is_self(const struct relay_ctx *ctx, const struct dns_addr *a,
    uint16_t port)
{
	for (size_t i = 0; i < ctx->st.nself; i++) {
		const struct sockaddr_storage *ss = &ctx->self[i].sa;
		const void *bytes;
		size_t blen;
		uint16_t lport;
		int any;

		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ss;
			bytes = &sin->sin_addr;
			blen = 4;
			lport = ntohs(sin->sin_port);
			any = sin->sin_addr.s_addr == htonl(INADDR_ANY);
		} else {
			const struct sockaddr_in6 *sin6 = (const void *)ss;
			bytes = &sin6->sin6_addr;
			blen = 16;
			lport = ntohs(sin6->sin6_port);
			any = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
		}
		if (lport != port)
			continue;
		if (any && (ss->ss_family == AF_INET6 || a->family == AF_INET) &&
		    addr_is_local(a))
			return 1;
		if (!any && ss->ss_family == a->family &&
		    memcmp(bytes, a->bytes, blen) == 0)
			return 1;
	}
	return 0;
}

/* Is MX host h this server: its name, or one of its addresses? */
static int
host_is_self(const struct relay_ctx *ctx, const struct dns_mx_host *h)
{
	if (strcasecmp(h->name, ctx->helo) == 0)
		return 1;
	for (size_t i = 0; i < h->naddrs; i++)
		if (addr_is_self(ctx, &h->addrs[i], ctx->st.smtp_port))
			return 1;
	return 0;
}

static void
deliver_mx(struct relay_job *job, const char *domain)
{
	struct relay_ctx *ctx = job->ctx;
	struct dns_mx_result *res = NULL;
	int status;

	if (ctx->dns == NULL) {
		job_error(job, "4.4.3", "none", "no resolver for %s", domain);
		return;
	}
	status = dns_mx_lookup(ctx->dns, domain, &res);
	/* RFC 5321 5.1: when this server is one of the MX hosts (by name
	 * also when its name has no address here), only hosts of a better
	 * preference may be tried; if none of them has an address, the mail
	 * would loop back to us, unless one failed only for now. */
	uint32_t self_pref = UINT32_MAX;
	for (size_t h = 0; h < res->nhosts; h++)
		if (host_is_self(ctx, &res->hosts[h]) &&
		    res->hosts[h].pref < self_pref)
			self_pref = res->hosts[h].pref;
	for (size_t h = 0; h < res->ndropped; h++)
		if (strcasecmp(res->dropped[h].name, ctx->helo) == 0 &&
		    res->dropped[h].pref < self_pref)
			self_pref = res->dropped[h].pref;
	if (self_pref != UINT32_MAX && (res->nhosts == 0 ||
	    res->hosts[0].pref >= self_pref)) {
		char diag[DNS_NAME_MAX + 80];
		int later = 0;
		for (size_t h = 0; h < res->ndropped; h++)
			later |= res->dropped[h].temp && res->dropped[h].pref < self_pref;
		if (later) {
			job_error(job, "4.4.3", "none", "the MX hosts of %s better "
			    "than myself have no address for now", domain);
		} else {
			snprintf(diag, sizeof diag, "mail for %s loops back to myself",
			    domain);
			job_final_all(job, 0, RELAY_BOUNCED, "5.4.6", "none", diag);
		}
		dns_mx_result_free(&res);
		return;
	}
	if (status != DNS_OK) {
		dns_failed(job, status, domain, "MX", res->detail);
		dns_mx_result_free(&res);
		return;
	}
	if (ctx->tlsp != NULL) {
		tls_policy_destination(ctx->tlsp, domain, res, job->now, &job->dp);
	} else {
		const char *names[DNS_MAX_MX_HOSTS];
		for (size_t h = 0; h < res->nhosts; h++)
			names[h] = res->hosts[h].name;
		tls_dest_policy_plain(domain, names, res->nhosts,
		    plain_level(ctx->st.tls_outbound), &job->dp);
	}
	if (job_policy_ready(job) < 0) {
		dns_mx_result_free(&res);
		return;
	}
	try_cached(job);
	for (size_t i = 0; i < res->ntargets && i < ctx->st.max_addrs &&
	    job->npending > 0; i++) {
		const struct dns_target *t = &res->targets[i];
		if (res->hosts[t->host].pref >= self_pref)
			break;
		if (try_addr(job, t->host, res->hosts[t->host].name, &t->addr,
		    ctx->st.smtp_port) < 0)
			break;
	}
	dns_mx_result_free(&res);
}

/* Does the header section (up to the first empty line) hold a byte
 * >= 0x80? 1 or 0; -1 when the message cannot be read. */
static int
header_has_8bit(const struct body_reader *r)
{
	int line_start = 1, cr_first = 0;

	if (r->rewind(r->arg) != 0)
		return -1;
	for (;;) {
		const char *p;
		size_t n;

		if (r->next(r->arg, &p, &n) != 0)
			return -1;
		if (n == 0)
			return 0;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];

			/* The empty line (a CRLF may be split between
			 * pieces): the header ended. */
			if ((cr_first && c == '\n') || (line_start && c == '\n'))
				return 0;
			cr_first = line_start && c == '\r';
			if (c >= 0x80)
				return 1;
			line_start = c == '\n';
		}
	}
}

/* Does the header section of the message read by r hold `TLS-Required:
 * No` (relay_header_tls_optional, on at most RELAY_HEADER_SCAN_MAX
 * bytes)? 1, 0, or -1 when the message cannot be read. */
static int
header_tls_optional(const struct body_reader *r)
{
	struct buf head;
	int line_start = 1, cr_first = 0, end = 0, rc;

	if (r->rewind(r->arg) != 0)
		return -1;
	buf_init(&head, RELAY_HEADER_SCAN_MAX);
	while (!end && head.len < RELAY_HEADER_SCAN_MAX) {
		const char *p;
		size_t n, take;

		if (r->next(r->arg, &p, &n) != 0) {
			buf_free(&head);
			return -1;
		}
		if (n == 0)
			break;
		take = n < RELAY_HEADER_SCAN_MAX - head.len ? n :
		    RELAY_HEADER_SCAN_MAX - head.len;
		/* Up to the empty line (a CRLF may be split between pieces). */
		for (size_t i = 0; i < take && !end; i++) {
			end = (cr_first || line_start) && p[i] == '\n';
			cr_first = line_start && p[i] == '\r';
			line_start = p[i] == '\n';
			if (end)
				take = i + 1;
		}
		if (buf_append(&head, p, take) != 0)
			break;
	}
	rc = relay_header_tls_optional(head.data ? head.data : "", head.len);
	buf_free(&head);
	return rc;
}

/* Checks the envelope before anything is sent: what cannot go into a
 * command line bounces here. */
static void
job_precheck(struct relay_job *job)
{
	const struct relay_msg *m = job->msg;
	int eight;

	/* RFC 6531 3.4: SMTPUTF8 is needed for non-ASCII addresses, or for a
	 * non-ASCII header of a message that came with SMTPUTF8. */
	if (m->smtputf8 && (eight = header_has_8bit(m->body)) < 0) {
		job_final_all(job, 0, RELAY_DEFERRED, "4.3.0", "none",
		    "cannot read the message from the queue");
		return;
	}
	job->need_utf8 = m->smtputf8 && eight;
	if (m->sender == NULL ||
	    !relay_addr_ok(m->sender, RELAY_ADDR_MAX, &eight)) {
		job_final_all(job, 0, RELAY_BOUNCED, "5.1.7", "none",
		    "bad sender address syntax: control character, angle "
		    "bracket or too long");
		return;
	}
	job->need_utf8 |= eight;
	/* RFC 8689 4.3: a notice about a REQUIRETLS message carries its
	 * header, so it needs REQUIRETLS as well (queue/delivery_notice.c). */
	job->requiretls = m->requiretls;
	/* Under REQUIRETLS the header field is ignored (RFC 8689 4.1). */
	if (!m->requiretls && (job->tls_optional = header_tls_optional(m->body)) < 0) {
		job_final_all(job, 0, RELAY_DEFERRED, "4.3.0", "none",
		    "cannot read the message from the queue");
		return;
	}
	for (size_t i = 0; i < job->n; i++) {
		const char *a = job->rcpts[i].addr;
		if (a == NULL || *a == '\0' ||
		    !relay_addr_ok(a, RELAY_ADDR_MAX, &eight)) {
			job_final(job, i, RELAY_BOUNCED, "5.1.3", "none",
			    "bad recipient address syntax: control character, "
			    "angle bracket or too long");
			continue;
		}
		job->need_utf8 |= eight;
	}
	job->want_utf8 = job->need_utf8 || m->smtputf8;
}

void
relay_deliver(struct relay_ctx *ctx, const char *domain,
    const char *dest_host, uint16_t dest_port, const struct relay_msg *msg,
    const struct relay_rcpt *rcpts, size_t n, struct relay_result *results)
{
	struct relay_job *job;
	char dom[DNS_NAME_MAX];
	uint16_t port = dest_port ? dest_port : ctx->st.smtp_port;

	if (n == 0)
		return;
	job = xcalloc(1, sizeof *job);
	job->ctx = ctx;
	job->msg = msg;
	job->rcpts = rcpts;
	job->res = results;
	job->n = n;
	job->npending = n;
	job->state = xcalloc(n, 1);
	job->again = xcalloc(n, 1);
	job->deadline = time_mono_ms() + ctx->st.attempt_timeout_ms;
	job->now = (int64_t)time(NULL);
	for (size_t i = 0; i < n; i++)
		set_result(&results[i], RELAY_DEFERRED, "4.4.1", "none",
		    "delivery not attempted");
	job_error(job, "4.4.1", "none", "no address to try");

	if (domain == NULL || !relay_addr_ok(domain, sizeof dom, NULL) ||
	    str_copy(dom, domain, sizeof dom) < 0) {
		job_final_all(job, 0, RELAY_BOUNCED, "5.1.2", "none",
		    "bad destination domain");
		goto out;
	}
	str_lower(dom);
	job_precheck(job);
	if (job->npending == 0)
		goto out;
	if (dest_host != NULL) {
		char host[DNS_NAME_MAX];

		if (strip_brackets(dest_host, host, sizeof host) < 0)
			str_copy(host, "?", sizeof host);
		snprintf(job->key, sizeof job->key, "[%s]:%u", host,
		    (unsigned)port);
	} else
		str_copy(job->key, dom, sizeof job->key);
	str_lower(job->key);

	if (dest_acquire(ctx, job->key, job_ms(job, ctx->st.dest_wait_ms)) < 0) {
		char diag[400];
		snprintf(diag, sizeof diag, "too many connections to %s",
		    job->key);
		job_final_all(job, 0, RELAY_DEFERRED, "4.4.5", "none", diag);
		goto out;
	}
	relay_ctx_expire_idle(ctx);
	if (dest_host != NULL)
		deliver_fixed(job, dom, dest_host, port);
	else
		deliver_mx(job, dom);
	dest_release(ctx, job->key);
	/* What no host took: bounced when every host tried lacked what the
	 * message needs, else deferred with the last error. */
	job_unaccept(job);
	if (job->hosts_lacking > 0 && job->hosts_lacking >= job->hosts_tried)
		job_final_all(job, 0, RELAY_BOUNCED, job->ext_dsn,
		    job->ext_relay, job->ext_diag);
	job_final_all(job, 0, RELAY_DEFERRED, job->last_dsn, job->last_relay,
	    job->last_diag);
out:
	tls_dest_policy_free(&job->dp);
	free(job->state);
	free(job->again);
	free(job);
}
