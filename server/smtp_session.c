/*
 * smtp_session: the life of one inbound session on its worker: the start
 * (greeting, or implicit TLS), the run loop, timers, the graceful stop and
 * the committer's answers.
 *
 * The run loop reads what there is room for, hands the input to the state
 * machine (the command parser, or message content), sends the replies,
 * and then asks session_io_next what comes next: run again, wait (for
 * socket events, or for a commit that will call back), or end. Replies
 * are queued in order and flushed when the input is exhausted (RFC 2920)
 * or when the session must wait. At the end of a message the session
 * holds its input until the commit answers: 250 is sent only after the
 * message is durable (DESIGN.md).
 */
#include "server/smtp_session.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/util.h"
#include "server/connlimit.h"
#include "server/fcrdns.h"
#include "server/inflight.h"
#include "server/smtp_session_int.h"
#include "server/worker.h"

/* Rounds of the run loop before other sessions get their turn. */
#define SESSION_ROUNDS_MAX 16

void
session_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&s->io.out, fmt, ap) < 0 || buf_puts(&s->io.out, "\r\n") < 0) {
		/* A client that never reads its replies: give up on it. */
		s->phase = PH_CLOSING;
	}
	va_end(ap);
}

int
session_error(struct smtp_session *s)
{
	if (++s->errors >= s->cfg->max_errors) {
		session_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
		s->phase = PH_CLOSING;
		return 1;
	}
	return 0;
}

/*
 * The timeout of what the session waits for now. A command must arrive
 * whole within command_timeout of the wait's start (bytes dribbling in do
 * not extend it). Message content may pause data_timeout at most, and a
 * message as a whole arrives at min_data_rate on average once
 * data_timeout has passed, so a client that sends a byte now and then
 * cannot hold a session forever.
 */
void
session_set_deadline(struct smtp_session *s)
{
	int content = s->phase == PH_DATA || s->phase == PH_BDAT;
	unsigned secs = content ? s->cfg->data_timeout : s->cfg->command_timeout;

	s->deadline = time_mono_ms() + (int64_t)secs * 1000;
	s->deadline_rate = 0;
	if (s->msg != NULL && s->cfg->min_data_rate > 0) {
		int64_t rate = s->msg_start + (int64_t)s->cfg->data_timeout * 1000 +
		    (int64_t)(s->msg_bytes * 1000 / s->cfg->min_data_rate);

		if (rate < s->deadline) {
			s->deadline = rate;
			s->deadline_rate = 1;
		}
	}
}

/* What the state machine does with input in its phase. */
static enum session_io_mode
session_mode(const struct smtp_session *s)
{
	switch (s->phase) {
	case PH_COMMIT:
	case PH_AUTH_CHECK:
	case PH_POLICY:
	case PH_MAILAUTH:
	case PH_MILTER:
	case PH_AUTH_DELAY:
	case PH_NAME_WAIT:
		return SESSION_IO_HELD;
	case PH_CLOSING:
	case PH_CLOSED:
		return SESSION_IO_CLOSE;
	default:
		return session_msg_blocked(s) ? SESSION_IO_STAGING :
		    SESSION_IO_INPUT;
	}
}

/* Hands buffered input to the state machine until it runs out or the
 * session must wait. */
static void
session_process(struct smtp_session *s)
{
	struct session_io *io = &s->io;

	while (io->in_off < io->in.len && io->out.len < SESSION_IO_OUT_HIGH &&
	    !io->handshaking && session_mode(s) == SESSION_IO_INPUT) {
		const char *p = io->in.data + io->in_off;
		size_t avail = io->in.len - io->in_off, n;
		enum smtp_cmd_result res;
		int in_auth;

		switch (s->phase) {
		case PH_GREET_WAIT:
			/* RFC 5321 4.3.1: the client waits for the greeting. */
			session_pregreet(s);
			return;
		case PH_COMMAND:
		case PH_AUTH:
			n = smtp_cmd_parse(&s->cp, p, avail, &res);
			io->in_off += n;
			if (res == SMTP_CMD_NEED_MORE)
				break;
			/* The next command's time starts now. */
			session_set_deadline(s);
			in_auth = s->phase == PH_AUTH;
			if (res != SMTP_CMD_READY && in_auth)
				session_auth_abort(s);
			if (res == SMTP_CMD_TOO_LONG && (in_auth ||
			    (s->cp.len >= 5 && strncasecmp(s->cp.line, "AUTH ", 5) == 0))) {
				/* RFC 4954 4 and 6: a SASL response, or an
				 * initial response, over our limit. */
				session_reply(s, "500 5.5.6 Authentication Exchange line is too long");
				session_error(s);
			} else if (res == SMTP_CMD_TOO_LONG) {
				session_reply(s, "500 5.5.2 Error: line too long");
				session_error(s);
			} else if (res == SMTP_CMD_BARE_EOL) {
				session_reply(s, "500 5.5.2 Error: bare CR or LF, or NUL, in command; use CRLF");
				session_error(s);
			} else if (s->phase == PH_AUTH) {
				session_auth_response(s, s->cp.line);
			} else {
				session_command(s, s->cp.line);
			}
			break;
		case PH_DATA:
		case PH_BDAT:
			io->in_off += session_content(s, p, avail);
			break;
		default:
			return;
		}
	}
}

/* Graceful stop: a session between commands gets 421 now. */
static void
session_drain_check(struct smtp_session *s)
{
	if (s->draining && (s->phase == PH_COMMAND || s->phase == PH_AUTH)) {
		session_reply(s, "421 4.3.2 Server shutting down");
		s->phase = PH_CLOSING;
	}
}

/* Ends the session: the connection closes now; s is freed once no commit
 * is in flight. */
static int
session_end(struct smtp_session *s)
{
	if (s->io.fd >= 0) {
		session_io_close(&s->io);
		connlimit_release((struct sockaddr *)&s->peer);
		metrics_observe_since(M_SESSION_DURATION, s->start_us);
		log_debug("disconnect from [%s]", s->peer_ip);
	}
	s->phase = PH_CLOSED;
	return -1;
}

static void
session_watch(struct smtp_session *s, uint32_t events)
{
	if (events != s->io.watching) {
		worker_watch(s->w, s, s->io.fd, events);
		s->io.watching = events;
	}
}

/* Runs the session until it has to wait; -1 when it is over. */
static int
session_run(struct smtp_session *s)
{
	struct session_io *io = &s->io;
	uint32_t events;

	for (int round = 1;; round++) {
		size_t got = 0;

		if (session_mode(s) == SESSION_IO_INPUT)
			got = session_io_read(io);
		s->bytes_in += got;
		session_process(s);
		if (got > 0 && (s->phase == PH_DATA || s->phase == PH_BDAT))
			session_set_deadline(s);
		session_drain_check(s);
		session_io_flush(io);
		if (io->handshaking && session_io_handshake(io, s->peer_ip) > 0)
			session_tls_started(s);
		switch (session_io_next(io, session_mode(s), &events)) {
		case SESSION_IO_END:
			return session_end(s);
		case SESSION_IO_WAIT:
			session_watch(s, events);
			return 0;
		case SESSION_IO_RUN:
		default:
			if (round < SESSION_ROUNDS_MAX)
				continue;
			/* Fairness: the worker runs the others, then comes
			 * back here at once. */
			session_watch(s, events);
			worker_run_again(s->w, s);
			return 0;
		}
	}
}

int
session_continue(struct smtp_session *s)
{
	if (s->io.fd < 0)
		return -1;
	return session_run(s);
}

int
session_job_submit(struct smtp_session *s, struct offloop *pool,
    struct session_job *j)
{
	if (pool == NULL)
		return -1;
	j->s = s;
	if (worker_submit_job(s->w, pool, &j->base) < 0)
		return -1;
	j->next = s->jobs;
	s->jobs = j;
	return 0;
}

void
session_job_abandon(struct smtp_session *s, struct session_job *j)
{
	for (struct session_job **jp = &s->jobs; *jp; jp = &(*jp)->next) {
		if (*jp == j) {
			*jp = j->next;
			break;
		}
	}
	j->s = NULL;
}

/* ---- the client's name ---- */

struct name_job {
	struct session_job sj;		/* first */
	struct runtime *rt;		/* keeps the resolver while it runs */
	struct sockaddr_storage peer;
	char name[DNS_NAME_MAX];	/* the result */
};

static void
name_job_run(struct offloop_job *job)
{
	struct name_job *n = (struct name_job *)(void *)job;

	fcrdns_lookup(n->rt->dns, (const struct sockaddr *)&n->peer, n->name,
	    sizeof n->name);
}

static void
name_job_free(struct name_job *n)
{
	runtime_unref(&n->rt);
	free(n);
}

static void
name_job_release(struct session_job *j)
{
	name_job_free((struct name_job *)(void *)j);
}

static int
name_job_finish(struct smtp_session *s, struct session_job *j)
{
	struct name_job *n = (struct name_job *)(void *)j;

	s->name_job = NULL;
	if (s->io.fd < 0)
		return -1;
	if (!j->base.cancelled && n->name[0] != '\0') {
		str_copy(s->client_name, n->name, sizeof s->client_name);
		log_debug("client [%s] is %s", s->peer_ip, s->client_name);
	}
	if (s->phase == PH_NAME_WAIT)
		session_name_known(s);
	return session_continue(s);
}

/* Starts the lookup of the client's forward-confirmed name, off the loop;
 * the Received header names it when it is known in time. */
static void
session_lookup_name(struct smtp_session *s)
{
	struct name_job *n;

	if (s->rt->dns == NULL)
		return;
	n = xcalloc(1, sizeof *n);
	n->rt = runtime_ref(s->rt);
	memcpy(&n->peer, &s->peer, sizeof n->peer);
	n->sj.base.run = name_job_run;
	n->sj.finish = name_job_finish;
	n->sj.release = name_job_release;
	if (session_job_submit(s, worker_pools(s->w)->lookups, &n->sj) < 0) {
		name_job_free(n);
		return;
	}
	s->name_job = &n->sj;
	s->name_deadline = time_mono_ms() + (int64_t)s->cfg->client_dns_timeout * 1000;
}

int
session_name_pending(const struct smtp_session *s)
{
	return s->name_job != NULL && time_mono_ms() < s->name_deadline;
}

int
smtp_session_job_done(struct offloop_job *job, struct smtp_session **s_r)
{
	struct session_job *j = (struct session_job *)(void *)job;
	struct smtp_session *s = j->s;
	int rc = 0;

	*s_r = s;
	if (s != NULL) {
		for (struct session_job **jp = &s->jobs; *jp; jp = &(*jp)->next) {
			if (*jp == j) {
				*jp = j->next;
				break;
			}
		}
		rc = j->finish(s, j);
	}
	j->release(j);
	return rc;
}

int
smtp_session_event(struct smtp_session *s, uint32_t events)
{
	if (s->io.fd < 0)
		return -1;
	session_io_event(&s->io, events);
	return session_run(s);
}

int
smtp_session_aux_event(struct smtp_session *s, uint32_t events)
{
	(void)events;	/* the milter's step reads what the socket says */
	if (s->io.fd < 0)
		return -1;
	return session_milter_event(s);
}

int
smtp_session_resume(struct smtp_session *s)
{
	if (s->io.fd < 0)
		return -1;
	return session_run(s);
}

int
smtp_session_stage_done(struct smtp_session *s, struct commit_stage *req,
    enum commit_status st)
{
	struct session_stage *sg = req->arg;

	session_stage_back(s, sg, st);
	free(sg);
	if (s->io.fd < 0)
		return -1;
	return session_run(s);
}

int
smtp_session_commit_done(struct smtp_session *s, enum commit_status st)
{
	char id[QUEUE_ID_LEN + 1];
	struct commit_msg *c = s->commit;

	s->commit = NULL;
	queue_id_format(c->env.id, id, sizeof id);
	/* A record refused for room made the commit fail (its records come
	 * back first: worker.c): that is the reply. */
	if (st != COMMIT_OK && s->commit_stage_status == COMMIT_FULL)
		st = COMMIT_FULL;
	if (st == COMMIT_OK) {
		log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queued)", id,
		    c->env.sender, (unsigned long long)s->commit_size,
		    c->env.nrcpts);
		metrics_inc(M_MESSAGES_RECEIVED);
		metrics_add(M_RECIPIENTS_RECEIVED, c->env.nrcpts);
		metrics_add(M_RECEIVED_BYTES, s->commit_size);
		metrics_observe_since(M_COMMIT_LATENCY, s->commit_us);
		session_trace_queued(s, c);
		s->messages++;
	} else {
		metrics_inc_label(M_REJECTIONS, MR_QUEUE_FULL);
		log_warn("%s: from=<%s>: queue commit failed (%s)", id, c->env.sender,
		    st == COMMIT_FULL ? "queue full" : "I/O error");
		/* Nothing of it is visible; what it staged goes too. */
		if (c->staged > 0)
			committer_discard(worker_committer(s->w), c->env.id);
	}
	commit_msg_free(c);
	inflight_release(s->commit_reserved);
	s->commit_reserved = 0;
	if (s->io.fd < 0) {
		s->phase = PH_CLOSED;
		return -1;
	}
	s->phase = PH_COMMAND;
	if (st == COMMIT_OK)
		session_reply(s, "250 2.0.0 Ok: queued as %s", id);
	else if (st == COMMIT_FULL)
		session_reply(s, "452 4.3.1 Insufficient system storage");
	else
		session_reply(s, "451 4.3.0 Error: queue file write error");
	session_txn_reset(s);
	session_set_deadline(s);
	return session_run(s);
}

int
smtp_session_tick(struct smtp_session *s, int64_t now)
{
	if (s->io.fd < 0)
		return -1;
	if (s->phase == PH_GREET_WAIT)
		return session_greet_due(s, now) ? session_run(s) : 0;
	if (s->phase == PH_AUTH_DELAY) {
		if (now < s->wake)
			return 0;
		session_auth_delay_over(s);
		return session_run(s);
	}
	if (s->phase == PH_NAME_WAIT) {
		if (now < s->name_deadline)
			return 0;
		/* The name comes too late: the message goes on without it. */
		session_job_abandon(s, s->name_job);
		s->name_job = NULL;
		session_name_known(s);
		return session_run(s);
	}
	if (s->phase == PH_MILTER && session_milter_expired(s, now))
		return session_milter_expire(s);
	/* Our own waits (a commit, a password check, a policy service,
	 * records on their way to the queue) are not the client's slowness. */
	if (now < s->deadline || s->phase == PH_COMMIT ||
	    s->phase == PH_AUTH_CHECK || s->phase == PH_POLICY ||
	    s->phase == PH_MAILAUTH || s->phase == PH_MILTER ||
	    session_msg_blocked(s))
		return 0;
	if (s->deadline_rate)
		log_info("timeout from [%s]: message data slower than %zu bytes/s",
		    s->peer_ip, s->cfg->min_data_rate);
	else
		log_info("timeout from [%s]", s->peer_ip);
	if (!s->io.handshaking && !s->io.tls_pending) {
		buf_reset(&s->io.out);
		session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
		session_io_flush(&s->io);
	}
	return session_end(s);
}

int
smtp_session_drain(struct smtp_session *s)
{
	if (s->io.fd < 0)
		return -1;
	s->draining = 1;
	return session_run(s);
}

void
smtp_session_abort(struct smtp_session *s)
{
	session_end(s);
}

int
smtp_session_can_free(const struct smtp_session *s)
{
	return s->commit == NULL && s->stages == 0;
}

size_t *
smtp_session_slot(struct smtp_session *s)
{
	return &s->slot;
}

struct smtp_session *
smtp_session_new(struct worker *w, int fd, const struct sockaddr *peer,
    socklen_t peerlen, enum listen_kind kind)
{
	struct smtp_session *s = xcalloc(1, sizeof *s);
	int one = 1;

	s->w = w;
	s->kind = kind;
	s->start_us = metrics_clock_us();
	memcpy(&s->peer, peer, peerlen);
	sockaddr_ntop(peer, s->peer_ip, sizeof s->peer_ip);
	if (strncmp(s->peer_ip, "::ffff:", 7) == 0 && strchr(s->peer_ip + 7, '.'))
		memmove(s->peer_ip, s->peer_ip + 7, strlen(s->peer_ip + 7) + 1);
	s->rt = runtime_current();
	s->cfg = s->rt->cfg;
	s->may_relay = config_client_may_relay(s->cfg, peer);
	session_stager_init(s);
	session_io_init(&s->io, fd);
	/* The longest line any command may have; each command's own limit
	 * is checked once the verb is known (smtp_commands.c). */
	smtp_cmd_parser_init(&s->cp, SMTP_AUTH_LINE_MAX);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	log_debug("connect from [%s]", s->peer_ip);
	s->phase = PH_COMMAND;
	session_set_deadline(s);
	session_lookup_name(s);

	if (kind == LISTEN_SMTPS) {
		if (s->rt->tls == NULL || session_io_start_tls(&s->io, s->rt->tls) < 0) {
			log_warn("smtps listener without TLS certificate: closing [%s]", s->peer_ip);
			session_end(s);
			smtp_session_free(&s);
			return NULL;
		}
	} else {
		session_admit(s);
	}
	if (session_run(s) < 0) {
		smtp_session_free(&s);
		return NULL;
	}
	return s;
}

void
smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s = *sp;

	*sp = NULL;
	if (s == NULL)
		return;
	/* Jobs still out finish without us (smtp_session_job_done). */
	for (struct session_job *j = s->jobs; j; j = j->next)
		j->s = NULL;
	s->jobs = NULL;
	session_end(s);
	smtp_sasl_clear(&s->sasl);
	session_dovecot_free(s);
	session_abuse_free(s);
	session_trace_notes_free(s);
	session_txn_reset(s);
	session_policy_free(s);
	session_mailauth_free(s);
	session_milter_free(s);
	free(s->rcpts);
	smtp_cmd_parser_free(&s->cp);
	runtime_unref(&s->rt);
	free(s);
}
