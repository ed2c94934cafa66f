/*
 * lmtp: the LMTP client (see lmtp.h for the behaviour and the contract):
 * the context with its idle connection cache, and the conversation. The
 * socket, deadlines and the streamed data are relay_conn.c's, the reply
 * parser and capabilities relay_proto.c's.
 */
#include "relay/lmtp.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "relay/envelope.h"
#include "relay/relay_conn.h"
#include "relay/relay_proto.h"
#include "relay/tls_policy.h"

#define LMTP_MAX_USES		100	/* transactions per connection */
#define LMTP_QUIT_TIMEOUT_MS	2000
#define LMTP_NAME_MAX		160	/* "unix:/path" or "[addr]:port" */
#define LMTP_CMD_MAX		(RELAY_ADDR_MAX + 128)

/* One connection to one LMTP server. */
struct lmtp_sess {
	struct relay_conn *conn;
	char name[LMTP_NAME_MAX];	/* the server, also the cache key */
	struct relay_caps caps;
	unsigned uses;
	int broken;			/* no QUIT, no reuse */
	char prot[200];			/* relay_result.tls */
};

struct lmtp_idle {
	struct lmtp_sess *sess;
	int64_t since;			/* monotonic ms */
};

struct lmtp_ctx {
	struct relay_settings st;
	char helo[DNS_NAME_MAX];
	gnutls_certificate_credentials_t cred;	/* STARTTLS over TCP */
	pthread_mutex_t mu;
	struct lmtp_idle *idle;		/* under mu; nidle used of idle_cap */
	size_t nidle, idle_cap;
};

enum { RS_PENDING, RS_ACCEPTED, RS_DONE };

/* One lmtp_deliver call. */
struct lmtp_job {
	struct lmtp_ctx *ctx;
	const struct relay_msg *msg;
	const struct relay_rcpt *rcpts;
	struct relay_result *res;
	size_t n;
	unsigned char *state;
	size_t npending;		/* not RS_DONE */
	int need_utf8;
	int64_t deadline;		/* monotonic ms */
	char relay[LMTP_NAME_MAX + 8];	/* "lmtp:NAME" */
	const char *prot;		/* the session's relay_result.tls */
	struct relay_reply reply;
};

/* ---- the context and its idle connections ---- */

struct lmtp_ctx *
lmtp_ctx_new(const struct relay_settings *in, char *err, size_t errsize)
{
	struct lmtp_ctx *ctx = xcalloc(1, sizeof *ctx);

	relay_settings_fill(&ctx->st, in);
	if (str_copy(ctx->helo, ctx->st.helo_name, sizeof ctx->helo) != 0 ||
	    !relay_addr_ok(ctx->helo, sizeof ctx->helo, NULL)) {
		str_format(err, errsize, "bad helo_name");
		free(ctx);
		return NULL;
	}
	ctx->st.helo_name = ctx->helo;
	if (ctx->st.tls_outbound < RELAY_TLS_NONE ||
	    ctx->st.tls_outbound > RELAY_TLS_ENCRYPT) {
		str_format(err, errsize, "tls_outbound must be none, may or encrypt");
		free(ctx);
		return NULL;
	}
	if (gnutls_certificate_allocate_credentials(&ctx->cred) < 0) {
		str_format(err, errsize, "cannot allocate TLS credentials");
		free(ctx);
		return NULL;
	}
	ctx->idle_cap = ctx->st.max_idle == RELAY_NO_REUSE ? 0 : ctx->st.max_idle;
	ctx->idle = xcalloc(ctx->idle_cap ? ctx->idle_cap : 1, sizeof *ctx->idle);
	pthread_mutex_init(&ctx->mu, NULL);
	return ctx;
}

static void
sess_end(struct lmtp_sess **sp, unsigned quit_timeout_ms)
{
	struct lmtp_sess *s = *sp;

	if (s == NULL)
		return;
	if (!s->broken && quit_timeout_ms > 0) {
		char name[LMTP_NAME_MAX + 8];

		str_format(name, sizeof name, "lmtp %s", s->name);
		relay_conn_quit(&s->conn, name, quit_timeout_ms);
	}
	relay_conn_close(&s->conn);
	free(s);
	*sp = NULL;
}

void
lmtp_ctx_free(struct lmtp_ctx **ctxp)
{
	struct lmtp_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	for (size_t i = 0; i < ctx->nidle; i++)
		sess_end(&ctx->idle[i].sess, LMTP_QUIT_TIMEOUT_MS);
	free(ctx->idle);
	gnutls_certificate_free_credentials(ctx->cred);
	pthread_mutex_destroy(&ctx->mu);
	free(ctx);
	*ctxp = NULL;
}

size_t
lmtp_ctx_idle_count(struct lmtp_ctx *ctx)
{
	size_t n;

	pthread_mutex_lock(&ctx->mu);
	n = ctx->nidle;
	pthread_mutex_unlock(&ctx->mu);
	return n;
}

/* An idle session to name (the most recent), or NULL; expired ones are
 * taken out into *old (ended by the caller, outside the lock). */
static struct lmtp_sess *
cache_take(struct lmtp_ctx *ctx, const char *name, struct lmtp_sess **old,
    size_t *nold, size_t oldmax)
{
	struct lmtp_sess *s = NULL;
	int64_t now = time_mono_ms();

	pthread_mutex_lock(&ctx->mu);
	for (size_t i = ctx->nidle; i-- > 0;) {
		struct lmtp_idle *e = &ctx->idle[i];

		if (now - e->since >= (int64_t)ctx->st.idle_ms && *nold < oldmax) {
			old[(*nold)++] = e->sess;
			*e = ctx->idle[--ctx->nidle];
		} else if (s == NULL && strcmp(e->sess->name, name) == 0 &&
		    now - e->since < (int64_t)ctx->st.idle_ms) {
			s = e->sess;
			*e = ctx->idle[--ctx->nidle];
		}
	}
	pthread_mutex_unlock(&ctx->mu);
	return s;
}

/* Parks s for reuse when it is clean, or ends it. */
static void
sess_release(struct lmtp_ctx *ctx, struct lmtp_sess **sp)
{
	struct lmtp_sess *s = *sp, *evict = NULL;

	*sp = NULL;
	if (s == NULL)
		return;
	if (s->broken || ctx->idle_cap == 0 || s->uses >= LMTP_MAX_USES ||
	    relay_conn_readable(s->conn)) {
		sess_end(&s, s->broken ? 0 : LMTP_QUIT_TIMEOUT_MS);
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
	ctx->idle[ctx->nidle].sess = s;
	ctx->idle[ctx->nidle].since = time_mono_ms();
	ctx->nidle++;
	pthread_mutex_unlock(&ctx->mu);
	sess_end(&evict, 200);
}

/* ---- results ---- */

static unsigned
job_ms(const struct lmtp_job *job, unsigned t)
{
	int64_t left = job->deadline - time_mono_ms();

	if (left < 1)
		return 1;
	return (int64_t)t < left ? t : (unsigned)left;
}

/* Recipient i is final. */
static void
job_final(struct lmtp_job *job, size_t i, enum relay_status st,
    const char *dsn, const char *diag)
{
	struct relay_result *r = &job->res[i];

	if (job->state[i] == RS_DONE)
		return;
	r->status = st;
	str_copy(r->dsn, dsn, sizeof r->dsn);
	str_copy(r->relay, job->relay, sizeof r->relay);
	str_copy(r->diag, diag, sizeof r->diag);
	str_copy(r->tls, job->prot ? job->prot : "", sizeof r->tls);
	job->state[i] = RS_DONE;
	job->npending--;
}

/* Every recipient not final (only the accepted ones when accepted_only). */
static void
job_final_all(struct lmtp_job *job, int accepted_only, enum relay_status st,
    const char *dsn, const char *diag)
{
	for (size_t i = 0; i < job->n; i++)
		if (!accepted_only || job->state[i] == RS_ACCEPTED)
			job_final(job, i, st, dsn, diag);
}

/* The enhanced code of the reply, or X.0.0 from its code. */
static void
reply_dsn(const struct relay_reply *r, char *dsn, size_t dsnsize)
{
	if (r->esc[0] != '\0')
		str_copy(dsn, r->esc, dsnsize);
	else
		str_format(dsn, dsnsize, "%d.0.0", r->code / 100);
}

/* The status of a reply: 2xx SENT, 4xx DEFERRED, 5xx BOUNCED. */
static enum relay_status
reply_status(const struct relay_reply *r)
{
	return r->code / 100 == 2 ? RELAY_SENT : r->code / 100 == 5 ?
	    RELAY_BOUNCED : RELAY_DEFERRED;
}

/* The last reply, final for recipient i (or every accepted one when i
 * is (size_t)-1; every pending one when all). */
static void
reply_final(struct lmtp_job *job, struct lmtp_sess *s, size_t i, int all,
    const char *cmd)
{
	char line[440], diag[512], dsn[16];
	enum relay_status st = reply_status(&job->reply);

	reply_dsn(&job->reply, dsn, sizeof dsn);
	relay_reply_oneline(&job->reply, line, sizeof line);
	str_format(diag, sizeof diag, "LMTP server %s said: %s (in reply to %s "
	    "command)", s->name, line, cmd);
	if (all)
		job_final_all(job, 0, st, dsn, diag);
	else if (i == (size_t)-1)
		job_final_all(job, 1, st, dsn, diag);
	else
		job_final(job, i, st, dsn, diag);
}

/* A failed I/O call: the connection goes; what it leaves pending
 * (accepted_only: the accepted recipients) is deferred. */
static void
io_failed(struct lmtp_job *job, struct lmtp_sess *s, int io, int accepted_only,
    const char *while_)
{
	char diag[512];

	s->broken = 1;
	if (io == RELAY_IO_TIMEOUT)
		str_format(diag, sizeof diag, "conversation with LMTP server %s "
		    "timed out while %s", s->name, while_);
	else if (io == RELAY_IO_PROTO)
		str_format(diag, sizeof diag, "malformed reply from LMTP server "
		    "%s while %s: %s", s->name, while_,
		    job->reply.error ? job->reply.error : "bad reply");
	else if (io == RELAY_IO_BODY)
		str_format(diag, sizeof diag, "cannot read the message from the "
		    "queue");
	else
		str_format(diag, sizeof diag, "lost connection with LMTP server "
		    "%s while %s", s->name, while_);
	job_final_all(job, accepted_only, RELAY_DEFERRED,
	    io == RELAY_IO_BODY ? "4.3.0" : "4.4.2", diag);
}

/* ---- the conversation ---- */

static int
sess_read(struct lmtp_job *job, struct lmtp_sess *s, unsigned timeout_ms)
{
	int io = relay_conn_read_reply(s->conn, &job->reply,
	    job_ms(job, timeout_ms));

	if (io == RELAY_IO_OK && log_get_level() <= LOG_LVL_DEBUG) {
		char line[512];
		log_debug("lmtp %s: < %s", s->name,
		    relay_reply_oneline(&job->reply, line, sizeof line));
	}
	if (io == RELAY_IO_OK && job->reply.code == 421)
		s->broken = 1;	/* the server is closing the connection */
	return io;
}

/* Sends the command line cmd (built from checked parts) and reads its
 * reply. */
static int
sess_cmd(struct lmtp_job *job, struct lmtp_sess *s, const char *cmd,
    unsigned timeout_ms)
{
	char line[LMTP_CMD_MAX + 2];
	size_t n = strlen(cmd);
	int io;

	if (n > LMTP_CMD_MAX || strpbrk(cmd, "\r\n") != NULL) {
		log_error("lmtp: refusing to send a malformed command line");
		return RELAY_IO_ERROR;
	}
	log_debug("lmtp %s: > %s", s->name, cmd);
	memcpy(line, cmd, n);
	memcpy(line + n, "\r\n", 2);
	io = relay_conn_write(s->conn, line, n + 2, job_ms(job, timeout_ms));
	if (io == RELAY_IO_OK)
		io = sess_read(job, s, timeout_ms);
	return io;
}

/*
 * STARTTLS after LHLO over TCP, when the server offers it (TLS "may":
 * nothing is verified, as the server is on a trusted network), then LHLO
 * again: only what is offered over TLS counts. 0 go on (TLS, or
 * plaintext when STARTTLS was refused), -1 the connection failed (the
 * recipients are deferred), 1 the handshake failed: try again in
 * plaintext.
 */
static int
sess_starttls(struct lmtp_job *job, struct lmtp_sess *s)
{
	const struct relay_settings *st = &job->ctx->st;
	char err[200], cmd[DNS_NAME_MAX + 8];
	struct tls_host_policy *hp;
	struct tls_check chk;
	int io;

	str_copy(s->prot, "plaintext (may)", sizeof s->prot);
	if (!(s->caps.flags & RELAY_CAP_STARTTLS) || st->tls_outbound == RELAY_TLS_NONE)
		return 0;
	io = sess_cmd(job, s, "STARTTLS", st->command_timeout_ms);
	if (io != RELAY_IO_OK) {
		io_failed(job, s, io, 0, "sending STARTTLS");
		return -1;
	}
	if (job->reply.code != 220)
		return 0;	/* refused: plaintext on this connection */
	io = relay_conn_starttls(s->conn, job->ctx->cred, NULL, 0,
	    job_ms(job, st->command_timeout_ms), err, sizeof err);
	if (io != RELAY_IO_OK) {
		s->broken = 1;
		log_info("lmtp %s: TLS handshake failed (%s); trying again in "
		    "plaintext", s->name, err);
		return 1;
	}
	/* Described (not judged: level may) as the relay client does. */
	hp = xcalloc(1, sizeof *hp);
	hp->level = TLS_LEVEL_MAY;
	hp->via = "may";
	tls_policy_check_session(NULL, hp, relay_conn_tls_session(s->conn), &chk);
	free(hp);
	str_format(s->prot, sizeof s->prot, "%s %s (%s)",
	    tls_verdict_str(chk.verdict), chk.desc, chk.via);
	log_info("%s TLS connection established to LMTP server %s: %s (%s)",
	    tls_verdict_str(chk.verdict), s->name, chk.desc, chk.via);
	memset(&s->caps, 0, sizeof s->caps);
	str_format(cmd, sizeof cmd, "LHLO %s", job->ctx->helo);
	io = sess_cmd(job, s, cmd, st->command_timeout_ms);
	if (io != RELAY_IO_OK) {
		io_failed(job, s, io, 0, "performing the LHLO handshake over TLS");
		return -1;
	}
	if (job->reply.code / 100 != 2) {
		s->broken = 1;
		job_final_all(job, 0, RELAY_DEFERRED, "4.7.0", "LMTP server "
		    "refused LHLO over TLS");
		return -1;
	}
	relay_caps_parse(&job->reply, &s->caps);
	return 0;
}

/* Connects, reads the greeting, LHLO (and STARTTLS over TCP unless
 * plain). NULL when it failed: every recipient is deferred; *retry_plain
 * is set when a TLS handshake failed. */
static struct lmtp_sess *
sess_open(struct lmtp_job *job, const struct lmtp_dest *dest, const char *name,
    int plain, int *retry_plain)
{
	const struct relay_settings *st = &job->ctx->st;
	struct lmtp_sess *s = xcalloc(1, sizeof *s);
	char err[200], diag[512], cmd[DNS_NAME_MAX + 8];
	int io;

	str_copy(s->name, name, sizeof s->name);
	if (dest->unix_path != NULL) {
		io = relay_conn_open_unix(dest->unix_path,
		    job_ms(job, st->connect_timeout_ms), &s->conn, err, sizeof err);
	} else {
		struct dns_addr a;
		char host[64];
		size_t len = strlen(dest->host);

		memset(&a, 0, sizeof a);
		if (dest->host[0] == '[' && len >= 2)
			str_format(host, sizeof host, "%.*s", (int)(len - 2),
			    dest->host + 1);
		else
			str_copy(host, dest->host, sizeof host);
		if (inet_pton(AF_INET, host, a.bytes) == 1)
			a.family = AF_INET;
		else if (inet_pton(AF_INET6, host, a.bytes) == 1)
			a.family = AF_INET6;
		str_copy(a.text, host, sizeof a.text);
		if (a.family == 0) {
			str_copy(err, "not an IP address", sizeof err);
			io = RELAY_IO_ERROR;
		} else {
			io = relay_conn_open(&a, dest->port ? dest->port : LMTP_PORT,
			    job_ms(job, st->connect_timeout_ms), &s->conn, err,
			    sizeof err);
		}
	}
	if (io != RELAY_IO_OK) {
		str_format(diag, sizeof diag, "connect to LMTP server %s: %s",
		    s->name, err);
		job_final_all(job, 0, RELAY_DEFERRED, "4.4.1", diag);
		free(s);
		return NULL;
	}
	io = sess_read(job, s, st->greeting_timeout_ms);
	if (io != RELAY_IO_OK) {
		io_failed(job, s, io, 0, "receiving the initial server greeting");
		goto fail;
	}
	if (job->reply.code / 100 != 2)
		goto refused;
	str_format(cmd, sizeof cmd, "LHLO %s", job->ctx->helo);
	io = sess_cmd(job, s, cmd, st->command_timeout_ms);
	if (io != RELAY_IO_OK) {
		io_failed(job, s, io, 0, "performing the LHLO handshake");
		goto fail;
	}
	if (job->reply.code / 100 != 2)
		goto refused;
	relay_caps_parse(&job->reply, &s->caps);
	if (dest->unix_path == NULL && !plain) {
		int rc = sess_starttls(job, s);
		if (rc != 0) {
			*retry_plain = rc > 0;
			goto fail;
		}
	} else if (dest->unix_path == NULL) {
		str_copy(s->prot, "plaintext (may)", sizeof s->prot);
	}
	return s;
refused: {
		/* A server that will not talk: later, maybe (as for SMTP). */
		char line[440], dsn[16];

		reply_dsn(&job->reply, dsn, sizeof dsn);
		dsn[0] = '4';
		relay_reply_oneline(&job->reply, line, sizeof line);
		str_format(diag, sizeof diag, "LMTP server %s refused to talk to "
		    "me: %s", s->name, line);
		job_final_all(job, 0, RELAY_DEFERRED, dsn, diag);
	}
fail:
	sess_end(&s, s->broken ? 0 : LMTP_QUIT_TIMEOUT_MS);
	return NULL;
}

/* The envelope's callbacks (relay/envelope.h) on one job and session. */
struct env_ctx {
	struct lmtp_job *job;
	struct lmtp_sess *s;
};

static void
env_build(void *arg, long cmd, struct buf *line)
{
	struct env_ctx *c = arg;
	const struct relay_msg *m = c->job->msg;
	unsigned caps = c->s->caps.flags;

	if (cmd == RELAY_ENV_MAIL) {
		buf_printf(line, "MAIL FROM:<%s>", m->sender);
		if (caps & RELAY_CAP_SIZE)
			buf_printf(line, " SIZE=%llu",
			    (unsigned long long)m->body->size);
		if (m->eightbit && (caps & RELAY_CAP_8BITMIME))
			buf_puts(line, " BODY=8BITMIME");
		if ((c->job->need_utf8 || m->smtputf8) &&
		    (caps & RELAY_CAP_SMTPUTF8))
			buf_puts(line, " SMTPUTF8");
	} else if (cmd == RELAY_ENV_DATA) {
		buf_puts(line, "DATA");
	} else {
		buf_printf(line, "RCPT TO:<%s>", c->job->rcpts[cmd].addr);
	}
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

/* MAIL refused: final for every recipient. A RCPT: 2xx accepted, 421
 * final for all (the server is closing), else final for this one. A 421
 * ends the envelope. */
static int
env_judge(void *arg, long cmd)
{
	struct env_ctx *c = arg;
	int code = c->job->reply.code;

	if (cmd == RELAY_ENV_MAIL) {
		if (code / 100 != 2)
			reply_final(c->job, c->s, 0, 1, "MAIL FROM");
		return code == 421 ? -1 : 0;	/* 421: the server is closing */
	}
	if (cmd == RELAY_ENV_DATA)
		return 0;
	if (code / 100 == 2) {
		c->job->state[cmd] = RS_ACCEPTED;
		return 1;
	}
	if (code == 421) {
		reply_final(c->job, c->s, 0, 1, "RCPT TO");
		return -1;
	}
	reply_final(c->job, c->s, (size_t)cmd, 0, "RCPT TO");
	return 0;
}

static const struct relay_envelope_ops env_ops = {
	env_build, env_write, env_read, env_judge
};

/* The transaction on a greeted session: the envelope pipelined when
 * the server offers it (every LMTP server should, RFC 2033 4.1). */
static void
sess_transaction(struct lmtp_job *job, struct lmtp_sess *s)
{
	const struct relay_settings *st = &job->ctx->st;
	const struct relay_msg *m = job->msg;
	struct env_ctx ec = { .job = job, .s = s };
	struct relay_envelope env = {
		.ops = &env_ops, .arg = &ec, .line_max = LMTP_CMD_MAX,
		.reply = &job->reply,
		.command_timeout_ms = st->command_timeout_ms,
		.data_init_timeout_ms = st->data_init_timeout_ms,
	};
	char peer[sizeof s->name + 8];
	size_t *rcpts, nrcpt = 0;
	int io;

	s->uses++;
	if (job->need_utf8 && !(s->caps.flags & RELAY_CAP_SMTPUTF8)) {
		char diag[512];
		str_format(diag, sizeof diag, "SMTPUTF8 is required, but was not "
		    "offered by LMTP server %s", s->name);
		job_final_all(job, 0, RELAY_BOUNCED, "5.6.7", diag);
		return;
	}
	rcpts = xcalloc(job->n ? job->n : 1, sizeof *rcpts);
	for (size_t i = 0; i < job->n; i++)
		if (job->state[i] == RS_PENDING)
			rcpts[nrcpt++] = i;
	env.window = (s->caps.flags & RELAY_CAP_PIPELINING) ? RELAY_ENV_WINDOW : 1;
	snprintf(peer, sizeof peer, "lmtp %s", s->name);
	env.peer = peer;
	io = relay_envelope_run(&env, rcpts, nrcpt);
	if (io == RELAY_ENV_STOPPED)
		goto out;
	if (io != RELAY_IO_OK) {
		io_failed(job, s, io, 0, env.at == RELAY_ENV_MAIL ?
		    "sending MAIL FROM" : env.at == RELAY_ENV_DATA ?
		    "sending DATA command" : "sending RCPT TO");
		goto out;
	}
	if (env.data_code == 354 && (env.mail_code / 100 != 2 || env.nacc == 0)) {
		/* RFC 2033 4.2: DATA without a recipient must fail. Out of
		 * step: the connection goes. */
		s->broken = 1;
		goto out;
	}
	if (env.mail_code / 100 != 2 || env.nacc == 0)
		goto out;	/* the next use starts with RSET */
	if (env.data_code != 354 && env.data_code / 100 < 4) {
		/* Not LMTP as we know it: nothing was taken. */
		s->broken = 1;
		job_final_all(job, 0, RELAY_DEFERRED, "4.5.0", "unexpected reply "
		    "to DATA from the LMTP server");
		goto out;
	}
	if (env.data_code != 354) {
		reply_final(job, s, 0, 1, "DATA");
		goto out;
	}
	log_debug("lmtp %s: > (message, %llu bytes)", s->name,
	    (unsigned long long)m->body->size);
	io = relay_conn_send_data(s->conn, m->body, st->data_block_timeout_ms,
	    job->deadline);
	if (io != RELAY_IO_OK) {
		io_failed(job, s, io, 1, "sending message body");
		goto out;
	}
	/* RFC 2033 4.2: one reply per accepted recipient, in RCPT order. */
	for (size_t i = 0; i < job->n; i++) {
		if (job->state[i] != RS_ACCEPTED)
			continue;
		io = sess_read(job, s, st->data_final_timeout_ms);
		if (io != RELAY_IO_OK) {
			io_failed(job, s, io, 1, "receiving the replies after end "
			    "of data -- message may be delivered more than once");
			goto out;
		}
		if (job->reply.code == 421) {
			reply_final(job, s, 0, 1, "end of DATA");
			goto out;
		}
		if (job->reply.code / 100 == 3)
			s->broken = 1;	/* no 3xx here: out of step */
		reply_final(job, s, i, 0, "end of DATA");
	}
out:
	free(rcpts);
}

/* RSET on an idle connection. 0 usable, -1 not. */
static int
sess_reset(struct lmtp_job *job, struct lmtp_sess *s)
{
	if (relay_conn_readable(s->conn) ||
	    sess_cmd(job, s, "RSET", job->ctx->st.command_timeout_ms) !=
	    RELAY_IO_OK || job->reply.code / 100 != 2) {
		s->broken = 1;
		return -1;
	}
	return 0;
}

/* What cannot go into a command line bounces before anything is sent. */
static void
job_precheck(struct lmtp_job *job)
{
	int eight = 0;

	if (job->msg->sender == NULL ||
	    !relay_addr_ok(job->msg->sender, RELAY_ADDR_MAX, &eight)) {
		job_final_all(job, 0, RELAY_BOUNCED, "5.1.7", "bad sender address "
		    "syntax: control character, angle bracket or too long");
		return;
	}
	job->need_utf8 = eight;
	for (size_t i = 0; i < job->n; i++) {
		const char *a = job->rcpts[i].addr;

		if (a == NULL || *a == '\0' || !relay_addr_ok(a, RELAY_ADDR_MAX, &eight)) {
			job_final(job, i, RELAY_BOUNCED, "5.1.3", "bad recipient "
			    "address syntax: control character, angle bracket or "
			    "too long");
			continue;
		}
		job->need_utf8 |= eight;
	}
}

void
lmtp_deliver(struct lmtp_ctx *ctx, const struct lmtp_dest *dest,
    const struct relay_msg *msg, const struct relay_rcpt *rcpts, size_t n,
    struct relay_result *results)
{
	struct lmtp_job *job;
	struct lmtp_sess *s, *old[8];
	size_t nold = 0;
	char name[LMTP_NAME_MAX];

	if (n == 0)
		return;
	if (dest->unix_path != NULL)
		str_format(name, sizeof name, "unix:%s", dest->unix_path);
	else if (strchr(dest->host, ':') != NULL && dest->host[0] != '[')
		str_format(name, sizeof name, "[%s]:%u", dest->host,
		    (unsigned)(dest->port ? dest->port : LMTP_PORT));
	else
		str_format(name, sizeof name, "%s%s%s:%u",
		    dest->host[0] == '[' ? "" : "[", dest->host,
		    dest->host[0] == '[' ? "" : "]",
		    (unsigned)(dest->port ? dest->port : LMTP_PORT));
	job = xcalloc(1, sizeof *job);
	job->ctx = ctx;
	job->msg = msg;
	job->rcpts = rcpts;
	job->res = results;
	job->n = n;
	job->npending = n;
	job->state = xcalloc(n, 1);
	job->deadline = time_mono_ms() + ctx->st.attempt_timeout_ms;
	str_format(job->relay, sizeof job->relay, "lmtp:%s", name);
	for (size_t i = 0; i < n; i++) {
		memset(&results[i], 0, sizeof results[i]);
		results[i].status = RELAY_DEFERRED;
		str_copy(results[i].dsn, "4.4.1", sizeof results[i].dsn);
		str_copy(results[i].relay, job->relay, sizeof results[i].relay);
		str_copy(results[i].diag, "delivery not attempted",
		    sizeof results[i].diag);
	}
	job_precheck(job);
	if (job->npending == 0)
		goto out;
	s = cache_take(ctx, name, old, &nold, sizeof old / sizeof old[0]);
	for (size_t i = 0; i < nold; i++)
		sess_end(&old[i], 200);
	if (s != NULL && sess_reset(job, s) < 0)
		sess_end(&s, 0);
	if (s != NULL) {
		log_debug("lmtp %s: reusing connection", s->name);
	} else {
		int retry_plain = 0;

		s = sess_open(job, dest, name, 0, &retry_plain);
		if (s == NULL && retry_plain)
			s = sess_open(job, dest, name, 1, &retry_plain);
	}
	if (s != NULL) {
		job->prot = s->prot;
		sess_transaction(job, s);
		sess_release(ctx, &s);
		job->prot = NULL;
	}
	job_final_all(job, 0, RELAY_DEFERRED, "4.4.1", "no reply from the LMTP "
	    "server");
out:
	free(job->state);
	free(job);
}
