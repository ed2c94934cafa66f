/*
 * smtp_session: the inbound SMTP state machine.
 *
 * Input is read into s->in and handed to the parsers; each complete
 * command goes through the command table (name, the states it is allowed
 * in, its handler). Replies are queued in s->out in order and flushed when
 * the input is exhausted (RFC 2920) or when the session must wait. At the
 * end of a message the session hands it to the committer and reads nothing
 * more until the commit answers: 250 is sent only after the message is
 * durable (DESIGN.md).
 */
#include "server/smtp_session.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "server/connlimit.h"
#include "server/runtime.h"
#include "server/smtp_args.h"
#include "server/smtp_parser.h"
#include "server/tls.h"
#include "server/worker.h"

#define SESSION_IN_MAX (64 * 1024)	/* unparsed input held at most */
#define SESSION_OUT_HIGH (64 * 1024)	/* stop reading while more is unsent */
#define SESSION_OUT_MAX (1024 * 1024)
#define TLS_RECORD_MAX 16384
#define SESSION_MAX_HOPS 50	/* Received headers, as Postfix's hopcount_limit */

enum phase {
	PH_GREET_WAIT,		/* greeting_delay: the client must stay silent */
	PH_TLS_HANDSHAKE,	/* implicit TLS or after STARTTLS */
	PH_COMMAND,
	PH_AUTH,		/* waiting for a SASL response line */
	PH_DATA,		/* DATA content */
	PH_BDAT,		/* inside a BDAT chunk */
	PH_COMMIT,		/* message handed to the committer */
	PH_CLOSING,		/* flushing the last reply, then close */
	PH_CLOSED,		/* socket closed; waiting for a commit to free */
};

enum auth_mech { AUTH_NONE, AUTH_PLAIN, AUTH_LOGIN_USER, AUTH_LOGIN_PASS };

struct smtp_session {
	struct worker *w;
	struct runtime *rt;
	const struct config *cfg;	/* rt->cfg */
	size_t slot;
	int fd;
	enum listen_kind kind;
	struct sockaddr_storage peer;
	char peer_ip[64];
	int may_relay;			/* relay_networks or authenticated */
	enum phase phase;
	uint32_t watching;
	int64_t deadline;

	gnutls_session_t tls;
	int tls_active;
	size_t tls_pending;		/* bytes of a record send that got E_AGAIN */
	char tls_desc[160];

	struct buf in;
	size_t in_off;
	struct buf out;
	struct smtp_cmd_parser cp;
	unsigned errors;
	int draining;

	/* HELO state */
	int helo_seen;
	int esmtp;
	char helo[256];

	/* AUTH */
	char auth_user[256];
	enum auth_mech auth_mech;
	char auth_login_user[256];

	/* the mail transaction */
	int in_txn;
	struct smtp_mail_args mail;
	struct envelope_rcpt *rcpts;
	size_t nrcpts, caprcpts;
	int bdat_used;			/* BDAT seen in this transaction */
	int bdat_bad;			/* BDAT chunks to discard: reply code set */
	char bdat_err[128];
	uint64_t bdat_left;		/* bytes of the current chunk still to read */
	int bdat_last;
	struct buf msg;			/* Received header + content */
	struct smtp_data_parser dp;
	queue_id_t qid;
	size_t hdr_len;
	struct commit_msg *commit;	/* in flight (PH_COMMIT) */
	struct commit_msg commit_storage;
	enum phase after_commit;
};

static void session_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int session_flush(struct smtp_session *s);
static int session_run(struct smtp_session *s);

/* ---- output ---- */

static void
session_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&s->out, fmt, ap) < 0 || buf_puts(&s->out, "\r\n") < 0) {
		/* A client that never reads its replies: give up on it. */
		s->phase = PH_CLOSING;
	}
	va_end(ap);
}

static void
session_update_watch(struct smtp_session *s)
{
	uint32_t ev = 0;

	if (s->fd < 0)
		return;
	if (s->phase == PH_TLS_HANDSHAKE) {
		ev = tls_wants_write(s->tls) ? EPOLLOUT : EPOLLIN;
	} else {
		if (s->out.len > 0 || s->tls_pending)
			ev |= EPOLLOUT;
		if (s->phase != PH_COMMIT && s->phase != PH_CLOSING &&
		    s->out.len < SESSION_OUT_HIGH && s->in.len < SESSION_IN_MAX)
			ev |= EPOLLIN;
	}
	if (ev != s->watching) {
		worker_watch(s->w, s, s->fd, ev);
		s->watching = ev;
	}
}

/* Writes what it can. Returns -1 on a broken connection. */
static int
session_flush(struct smtp_session *s)
{
	while (s->out.len > 0 || s->tls_pending) {
		ssize_t n;

		if (s->tls_active) {
			if (s->tls_pending)
				n = gnutls_record_send(s->tls, NULL, 0);
			else {
				size_t len = s->out.len < TLS_RECORD_MAX ? s->out.len : TLS_RECORD_MAX;
				n = gnutls_record_send(s->tls, s->out.data, len);
				if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
					s->tls_pending = len;
			}
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				return 0;
			if (n < 0)
				return -1;
			s->tls_pending = 0;
		} else {
			n = send(s->fd, s->out.data, s->out.len, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
			if (n <= 0)
				return -1;
		}
		buf_consume(&s->out, (size_t)n);
	}
	return 0;
}

/* ---- the transaction ---- */

static void
session_txn_reset(struct smtp_session *s)
{
	for (size_t i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i].addr);
		free(s->rcpts[i].orcpt);
	}
	s->nrcpts = 0;
	s->in_txn = 0;
	s->bdat_used = 0;
	s->bdat_bad = 0;
	s->bdat_left = 0;
	s->bdat_last = 0;
	memset(&s->mail, 0, sizeof s->mail);
	buf_free(&s->msg);
}

static void
session_set_deadline(struct smtp_session *s)
{
	unsigned secs = (s->phase == PH_DATA || s->phase == PH_BDAT) ?
	    s->cfg->data_timeout : s->cfg->command_timeout;

	s->deadline = time_mono_ms() + (int64_t)secs * 1000;
}

static const char *
session_protocol(const struct smtp_session *s)
{
	static const char *const names[2][2][2] = {
		/* [utf8][tls][auth] */
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
	};
	if (!s->esmtp)
		return "SMTP";
	return names[s->mail.smtputf8 != 0][s->tls_active != 0][s->auth_user[0] != 0];
}

/* Starts the message buffer with our Received header (RFC 5321 4.4). */
static void
session_begin_message(struct smtp_session *s)
{
	char date[64], id[QUEUE_ID_LEN + 1];
	size_t max = s->cfg->max_message_size;

	s->qid = queue_id_next();
	queue_id_format(s->qid, id, sizeof id);
	buf_init(&s->msg, max + 2048);
	buf_printf(&s->msg, "Received: from %s (%s%s%s)\r\n\tby %s (mailserver) with %s id %s",
	    s->helo, strchr(s->peer_ip, ':') ? "[IPv6:" : "[", s->peer_ip, "]",
	    s->cfg->hostname, session_protocol(s), id);
	if (s->tls_active)
		buf_printf(&s->msg, "\r\n\t(using %s)", s->tls_desc);
	if (s->nrcpts == 1)
		buf_printf(&s->msg, "\r\n\tfor <%s>", s->rcpts[0].addr);
	buf_printf(&s->msg, "; %s\r\n", time_rfc5322(time(NULL), date, sizeof date));
	s->hdr_len = s->msg.len;
	smtp_data_parser_init(&s->dp, PH_DATA == s->phase ? SMTP_DATA_DOTTED : SMTP_DATA_BDAT,
	    &s->msg, s->hdr_len + max);
}

static void
session_commit_cb(struct commit_msg *req, enum commit_status st)
{
	struct smtp_session *s = req->arg;

	worker_post_commit(s->w, s, st);
}

/* The whole message is in s->msg and passed every check: hand it over. */
static void
session_commit(struct smtp_session *s)
{
	struct commit_msg *c = &s->commit_storage;
	struct envelope *env = &c->env;

	memset(c, 0, sizeof *c);
	env->id = s->qid;
	env->arrival = time(NULL);
	env->sender = xstrdup(s->mail.addr);
	env->helo = xstrdup(s->helo);
	env->client_addr = xstrdup(s->peer_ip);
	env->auth_user = s->auth_user[0] ? xstrdup(s->auth_user) : NULL;
	env->envid = s->mail.envid[0] ? xstrdup(s->mail.envid) : NULL;
	env->ret = s->mail.ret;
	env->flags = (s->mail.body == SMTP_BODY_8BITMIME ? ENV_8BITMIME : 0) |
	    (s->mail.smtputf8 ? ENV_SMTPUTF8 : 0) | (s->tls_active ? ENV_TLS : 0);
	env->rcpts = s->rcpts;
	env->nrcpts = s->nrcpts;
	s->rcpts = NULL;
	s->nrcpts = s->caprcpts = 0;
	c->body = buf_steal(&s->msg, &c->body_len);
	c->done = session_commit_cb;
	c->arg = s;
	s->commit = c;
	s->phase = PH_COMMIT;
	committer_submit(worker_committer(s->w), c);
}

/* How many header fields named name (with the colon, any case) the header
 * section of msg holds. */
static unsigned
session_header_count(const char *msg, size_t len, const char *name)
{
	size_t n = strlen(name), i = 0;
	unsigned count = 0;

	while (i < len) {
		const char *eol = memchr(msg + i, '\n', len - i);
		size_t linelen = eol ? (size_t)(eol - (msg + i)) + 1 : len - i;

		if (linelen <= 2)	/* the empty line ends the header */
			break;
		if (linelen > n && strncasecmp(msg + i, name, n) == 0)
			count++;
		i += linelen;
	}
	return count;
}

/* Message submission (RFC 6409 8.2, 8.3): a message from an authenticated
 * user gets the Date and Message-ID it lacks, after our Received header. */
static void
session_complete_headers(struct smtp_session *s)
{
	const char *content = s->msg.data + s->hdr_len;
	size_t clen = s->msg.len - s->hdr_len;
	char date[64], id[QUEUE_ID_LEN + 1], add[512];
	int n = 0, m;
	struct buf nb;

	if (s->auth_user[0] == '\0')
		return;
	if (session_header_count(content, clen, "Date:") == 0) {
		m = snprintf(add + n, sizeof add - (size_t)n, "Date: %s\r\n",
		    time_rfc5322(time(NULL), date, sizeof date));
		if (m > 0 && (size_t)m < sizeof add - (size_t)n)
			n += m;
	}
	if (session_header_count(content, clen, "Message-ID:") == 0) {
		m = snprintf(add + n, sizeof add - (size_t)n, "Message-ID: <%s@%s>\r\n",
		    queue_id_format(s->qid, id, sizeof id), s->cfg->hostname);
		if (m > 0 && (size_t)m < sizeof add - (size_t)n)
			n += m;
	}
	if (n == 0)
		return;
	buf_init(&nb, s->msg.max + sizeof add);
	buf_append(&nb, s->msg.data, s->hdr_len);
	buf_append(&nb, add, (size_t)n);
	buf_append(&nb, content, clen);
	buf_free(&s->msg);
	s->msg = nb;
}

/* End of DATA or of the last BDAT chunk: check the flags, then commit. */
static void
session_end_message(struct smtp_session *s, unsigned flags)
{
	s->phase = PH_COMMAND;
	if (flags & SMTP_DATA_TOO_BIG)
		session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
	else if (flags & SMTP_DATA_BARE_EOL)
		session_reply(s, "550 5.5.2 Message contains bare CR or LF; only CRLF ends a line");
	else if (flags & SMTP_DATA_NUL)
		session_reply(s, "550 5.6.0 Message contains NUL bytes");
	else if (flags & SMTP_DATA_LONG_LINE)
		session_reply(s, "500 5.5.2 Message contains a line longer than 1000 octets");
	/* More Received fields (ours included) than hops allowed: a mail
	 * loop (RFC 5321 6.3). */
	else if (session_header_count(s->msg.data, s->msg.len, "Received:") >
	    SESSION_MAX_HOPS)
		session_reply(s, "554 5.4.6 Too many hops: mail loop detected");
	else {
		session_complete_headers(s);
		session_commit(s);
		return;
	}
	queue_stats_add_rejected(1);
	log_info("reject: %s from [%s]: %s", s->mail.addr, s->peer_ip,
	    s->out.len > 4 ? s->out.data + 4 : "");
	session_txn_reset(s);
}

/* ---- commands ---- */

typedef void (*cmd_fn)(struct smtp_session *s, const char *arg);

static int
session_bad_syntax_errors(struct smtp_session *s)
{
	if (++s->errors >= s->cfg->max_errors) {
		session_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
		s->phase = PH_CLOSING;
		return 1;
	}
	return 0;
}

/* A HELO/EHLO argument: a domain or an address literal, printable. */
static int
helo_valid(const char *arg)
{
	size_t n = strlen(arg);

	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)arg[i];
		if (c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == '<' ||
		    c == '>' || c == '\\' || c == '"')
			return 0;
	}
	return 1;
}

/* Returns 0 when the name was taken, -1 after a 501. */
static int
cmd_helo_common(struct smtp_session *s, const char *arg, int esmtp)
{
	char name[256];
	size_t n = strcspn(arg, " ");

	if (n >= sizeof name)
		n = sizeof name - 1;
	memcpy(name, arg, n);
	name[n] = '\0';
	if (!helo_valid(name)) {
		session_reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		session_bad_syntax_errors(s);
		return -1;
	}
	session_txn_reset(s);
	str_copy(s->helo, name, sizeof s->helo);
	s->helo_seen = 1;
	s->esmtp = esmtp;
	return 0;
}

static int
session_auth_allowed(const struct smtp_session *s)
{
	/* Passwords only over TLS, except from loopback. */
	return s->auth_user[0] == '\0' &&
	    (s->tls_active || strcmp(s->peer_ip, "127.0.0.1") == 0 ||
	    strcmp(s->peer_ip, "::1") == 0);
}

static void
cmd_ehlo(struct smtp_session *s, const char *arg)
{
	if (cmd_helo_common(s, arg, 1) < 0)
		return;
	session_reply(s, "250-%s", s->cfg->hostname);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %zu", s->cfg->max_message_size);
	if (s->rt->tls && !s->tls_active)
		session_reply(s, "250-STARTTLS");
	if (session_auth_allowed(s))
		session_reply(s, "250-AUTH PLAIN LOGIN");
	session_reply(s, "250-ENHANCEDSTATUSCODES");
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-DSN");
	session_reply(s, "250-SMTPUTF8");
	session_reply(s, "250 CHUNKING");
}

static void
cmd_helo(struct smtp_session *s, const char *arg)
{
	if (cmd_helo_common(s, arg, 0) == 0)
		session_reply(s, "250 %s", s->cfg->hostname);
}

static void
cmd_mail(struct smtp_session *s, const char *arg)
{
	char err[256];

	if (!s->helo_seen) {
		session_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_txn) {
		session_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->kind != LISTEN_SMTP && s->auth_user[0] == '\0') {
		session_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (arg == NULL || smtp_parse_mail(arg, &s->mail, err, sizeof err) < 0) {
		if (arg == NULL)
			session_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		else
			session_reply(s, "%s", err);
		session_bad_syntax_errors(s);
		memset(&s->mail, 0, sizeof s->mail);
		return;
	}
	if (!s->esmtp && (s->mail.size || s->mail.body || s->mail.smtputf8 ||
	    s->mail.ret || s->mail.envid[0] || s->mail.auth[0])) {
		session_reply(s, "555 5.5.4 Parameters need EHLO");
		memset(&s->mail, 0, sizeof s->mail);
		return;
	}
	if (s->mail.size > s->cfg->max_message_size) {
		session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		queue_stats_add_rejected(1);
		memset(&s->mail, 0, sizeof s->mail);
		return;
	}
	s->in_txn = 1;
	session_reply(s, "250 2.1.0 Ok");
}

/* The recipient policy (README "Recipient policy"). Returns NULL to accept,
 * else the reply. */
static const char *
session_rcpt_policy(struct smtp_session *s, const char *addr)
{
	const char *at = strrchr(addr, '@');
	const char *domain = at ? at + 1 : "";

	if (at == NULL)
		return NULL;	/* <postmaster>, checked by the parser */
	if (config_is_local_domain(s->cfg, domain)) {
		if (strncasecmp(addr, "postmaster@", 11) == 0)
			return NULL;
		if (userdb_lookup(s->rt->udb, addr) == USERDB_NONE)
			return "550 5.1.1 Recipient address rejected: User unknown in local recipient table";
		return NULL;
	}
	if (config_is_relay_domain(s->cfg, domain) || s->may_relay)
		return NULL;
	return "554 5.7.1 Relay access denied";
}

static void
cmd_rcpt(struct smtp_session *s, const char *arg)
{
	struct smtp_rcpt_args r;
	const char *deny;
	char err[256];

	if (!s->in_txn) {
		session_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->bdat_used) {
		session_reply(s, "503 5.5.1 Error: RCPT after BDAT");
		return;
	}
	if (arg == NULL || smtp_parse_rcpt(arg, s->mail.smtputf8, &r, err, sizeof err) < 0) {
		if (arg == NULL)
			session_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		else
			session_reply(s, "%s", err);
		session_bad_syntax_errors(s);
		return;
	}
	if (!s->esmtp && (r.notify || r.orcpt[0])) {
		session_reply(s, "555 5.5.4 Parameters need EHLO");
		return;
	}
	if (s->nrcpts >= s->cfg->max_recipients) {
		session_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	if ((deny = session_rcpt_policy(s, r.addr)) != NULL) {
		session_reply(s, "%s", deny);
		log_info("reject: RCPT from [%s]: %.3s <%s>", s->peer_ip, deny, r.addr);
		queue_stats_add_rejected(1);
		session_bad_syntax_errors(s);
		return;
	}
	if (s->nrcpts == s->caprcpts) {
		s->caprcpts = s->caprcpts ? s->caprcpts * 2 : 4;
		s->rcpts = xrealloc(s->rcpts, s->caprcpts * sizeof *s->rcpts);
	}
	s->rcpts[s->nrcpts].addr = xstrdup(r.addr);
	s->rcpts[s->nrcpts].orcpt = r.orcpt[0] ? xstrdup(r.orcpt) : NULL;
	s->rcpts[s->nrcpts].notify = r.notify;
	s->nrcpts++;
	session_reply(s, "250 2.1.5 Ok");
}

static void
cmd_data(struct smtp_session *s, const char *arg)
{
	if (*arg) {
		session_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_txn) {
		session_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->bdat_used) {
		session_reply(s, "503 5.5.1 Error: DATA after BDAT");
		return;
	}
	if (s->nrcpts == 0) {
		session_reply(s, "554 5.5.1 Error: no valid recipients");
		/* A client that sent its message before our reply (improper
		 * pipelining) must not have that message read as commands. */
		if (s->in.len > s->in_off) {
			log_info("improper pipelining after DATA from [%s]", s->peer_ip);
			s->in_off = s->in.len;
			s->phase = PH_CLOSING;
		}
		return;
	}
	s->phase = PH_DATA;
	session_begin_message(s);
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* BDAT size [LAST] (RFC 3030). The chunk is always read, even when it
 * will be refused, so the session stays in step with the client. */
static void
cmd_bdat(struct smtp_session *s, const char *arg)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(arg, &end, 10);
	if (arg[0] < '0' || arg[0] > '9' || errno || strlen(arg) > 40 ||
	    (*end != '\0' && strcasecmp(end, " LAST") != 0)) {
		session_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		session_bad_syntax_errors(s);
		s->phase = PH_CLOSING;	/* the chunk size is unknown: cannot resync */
		return;
	}
	s->bdat_left = n;
	s->bdat_last = *end != '\0';
	if (!s->bdat_bad) {
		if (!s->in_txn) {
			s->bdat_bad = 1;
			snprintf(s->bdat_err, sizeof s->bdat_err, "503 5.5.1 Error: need MAIL command");
		} else if (s->nrcpts == 0) {
			s->bdat_bad = 1;
			snprintf(s->bdat_err, sizeof s->bdat_err, "554 5.5.1 Error: no valid recipients");
		} else if (!s->bdat_used) {
			s->bdat_used = 1;
			s->phase = PH_BDAT;
			session_begin_message(s);
		}
	}
	s->phase = PH_BDAT;
}

static void
session_bdat_chunk_done(struct smtp_session *s)
{
	s->phase = PH_COMMAND;
	if (s->bdat_bad) {
		session_reply(s, "%s", s->bdat_err);
		if (s->bdat_last) {
			session_txn_reset(s);
			s->bdat_bad = 0;
		}
		return;
	}
	if (!s->bdat_last) {
		session_reply(s, "250 2.0.0 %zu octets received", s->msg.len - s->hdr_len);
		return;
	}
	session_end_message(s, smtp_data_finish(&s->dp));
}

static void
cmd_rset(struct smtp_session *s, const char *arg)
{
	(void)arg;
	session_txn_reset(s);
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, const char *arg)
{
	(void)arg;
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtp_session *s, const char *arg)
{
	(void)arg;
	session_reply(s, "221 2.0.0 Bye");
	s->phase = PH_CLOSING;
}

static void
cmd_vrfy(struct smtp_session *s, const char *arg)
{
	if (*arg == '\0') {
		session_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	session_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_expn(struct smtp_session *s, const char *arg)
{
	(void)arg;
	session_reply(s, "502 5.5.1 Error: command not implemented");
}

static void
cmd_help(struct smtp_session *s, const char *arg)
{
	(void)arg;
	session_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
}

static void
cmd_starttls(struct smtp_session *s, const char *arg)
{
	if (*arg) {
		session_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->tls_active) {
		session_reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (s->rt->tls == NULL) {
		session_reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if ((s->tls = tls_server_new(s->rt->tls, s->fd)) == NULL) {
		session_reply(s, "454 4.7.0 TLS not available due to local problem");
		return;
	}
	session_reply(s, "220 2.0.0 Ready to start TLS");
	/* Plaintext pipelined after STARTTLS is never read (CVE-2011-0411). */
	s->in_off = s->in.len;
	smtp_cmd_parser_reset(&s->cp);
	s->phase = PH_TLS_HANDSHAKE;
}

static void
session_auth_finish(struct smtp_session *s, const char *user, const char *pass)
{
	s->auth_mech = AUTH_NONE;
	s->phase = PH_COMMAND;
	smtp_cmd_parser_set_max(&s->cp, SMTP_COMMAND_LINE_MAX);
	if (user[0] && userdb_check_password(s->rt->udb, user, pass)) {
		str_copy(s->auth_user, user, sizeof s->auth_user);
		s->may_relay = 1;
		log_info("auth: [%s] sasl_username=%s", s->peer_ip, user);
		session_reply(s, "235 2.7.0 Authentication successful");
		return;
	}
	log_info("auth failed: [%s] sasl_username=%s", s->peer_ip, user);
	session_reply(s, "535 5.7.8 Error: authentication failed");
	session_bad_syntax_errors(s);
}

/* Decodes base64 text into out (NUL-terminated); -1 when invalid. */
static int
session_b64(const char *text, char *out, size_t outsize, size_t *len_r)
{
	gnutls_datum_t in = { (unsigned char *)text, (unsigned)strlen(text) };
	gnutls_datum_t dec = { NULL, 0 };

	if (strcmp(text, "=") == 0) {
		out[0] = '\0';
		*len_r = 0;
		return 0;
	}
	if (gnutls_base64_decode2(&in, &dec) < 0)
		return -1;
	if (dec.size >= outsize) {
		gnutls_free(dec.data);
		return -1;
	}
	memcpy(out, dec.data, dec.size);
	out[dec.size] = '\0';
	*len_r = dec.size;
	gnutls_free(dec.data);
	return 0;
}

static void
session_auth_plain(struct smtp_session *s, const char *resp)
{
	char dec[1024];
	size_t n;
	const char *authcid, *pass;

	if (session_b64(resp, dec, sizeof dec, &n) < 0) {
		session_auth_finish(s, "", "");
		return;
	}
	/* authzid NUL authcid NUL passwd */
	authcid = memchr(dec, '\0', n);
	if (authcid == NULL || (pass = memchr(authcid + 1, '\0', n - (size_t)(authcid + 1 - dec))) == NULL) {
		session_auth_finish(s, "", "");
		return;
	}
	authcid++;
	pass++;
	if (dec[0] && strcmp(dec, authcid) != 0) {	/* no proxy authorisation */
		session_auth_finish(s, "", "");
		return;
	}
	session_auth_finish(s, authcid, pass);
}

/* A SASL response line while PH_AUTH. */
static void
session_auth_response(struct smtp_session *s, const char *line)
{
	char dec[1024];
	size_t n;

	if (strcmp(line, "*") == 0) {
		s->auth_mech = AUTH_NONE;
		s->phase = PH_COMMAND;
		smtp_cmd_parser_set_max(&s->cp, SMTP_COMMAND_LINE_MAX);
		session_reply(s, "501 5.7.0 Authentication aborted");
		return;
	}
	switch (s->auth_mech) {
	case AUTH_PLAIN:
		session_auth_plain(s, line);
		break;
	case AUTH_LOGIN_USER:
		if (session_b64(line, dec, sizeof dec, &n) < 0 || strlen(dec) != n) {
			session_auth_finish(s, "", "");
			break;
		}
		str_copy(s->auth_login_user, dec, sizeof s->auth_login_user);
		s->auth_mech = AUTH_LOGIN_PASS;
		session_reply(s, "334 UGFzc3dvcmQ6");
		break;
	case AUTH_LOGIN_PASS:
		if (session_b64(line, dec, sizeof dec, &n) < 0 || strlen(dec) != n)
			session_auth_finish(s, "", "");
		else
			session_auth_finish(s, s->auth_login_user, dec);
		break;
	case AUTH_NONE:
		break;
	}
}

static void
cmd_auth(struct smtp_session *s, const char *arg)
{
	char mech[32];
	const char *initial;
	size_t n = strcspn(arg, " ");

	if (!s->esmtp) {
		session_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->auth_user[0]) {
		session_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->in_txn) {
		session_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (!session_auth_allowed(s)) {
		session_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	if (n == 0 || n >= sizeof mech) {
		session_reply(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	memcpy(mech, arg, n);
	mech[n] = '\0';
	initial = arg[n] ? arg + n + 1 : NULL;
	smtp_cmd_parser_set_max(&s->cp, SMTP_AUTH_LINE_MAX);
	if (strcasecmp(mech, "PLAIN") == 0) {
		s->auth_mech = AUTH_PLAIN;
		if (initial) {
			session_auth_plain(s, initial);
		} else {
			s->phase = PH_AUTH;
			session_reply(s, "334 ");
		}
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		s->auth_mech = AUTH_LOGIN_USER;
		s->phase = PH_AUTH;
		if (initial)
			session_auth_response(s, initial);
		else
			session_reply(s, "334 VXNlcm5hbWU6");
	} else {
		smtp_cmd_parser_set_max(&s->cp, SMTP_COMMAND_LINE_MAX);
		session_reply(s, "504 5.5.4 Unrecognized authentication type");
	}
}

struct smtp_command {
	enum smtp_verb verb;
	cmd_fn fn;
	int needs_arg;		/* 1: argument required (else 501) */
};

static const struct smtp_command session_commands[] = {
	{ SMTP_VERB_EHLO, cmd_ehlo, 1 },
	{ SMTP_VERB_HELO, cmd_helo, 1 },
	{ SMTP_VERB_MAIL, cmd_mail, 0 },
	{ SMTP_VERB_RCPT, cmd_rcpt, 0 },
	{ SMTP_VERB_DATA, cmd_data, 0 },
	{ SMTP_VERB_BDAT, cmd_bdat, 1 },
	{ SMTP_VERB_RSET, cmd_rset, 0 },
	{ SMTP_VERB_NOOP, cmd_noop, 0 },
	{ SMTP_VERB_QUIT, cmd_quit, 0 },
	{ SMTP_VERB_VRFY, cmd_vrfy, 0 },
	{ SMTP_VERB_EXPN, cmd_expn, 0 },
	{ SMTP_VERB_HELP, cmd_help, 0 },
	{ SMTP_VERB_STARTTLS, cmd_starttls, 0 },
	{ SMTP_VERB_AUTH, cmd_auth, 1 },
};

static void
session_command(struct smtp_session *s, const char *line)
{
	const char *arg = "";
	int http = 0;
	enum smtp_verb verb = smtp_cmd_verb(line, &arg, &http);

	if (http) {
		log_info("HTTP request from [%s]: closed", s->peer_ip);
		s->phase = PH_CLOSING;
		s->out.len = 0;
		return;
	}
	for (size_t i = 0; i < sizeof session_commands / sizeof session_commands[0]; i++) {
		const struct smtp_command *c = &session_commands[i];
		if (c->verb != verb)
			continue;
		if (c->needs_arg && (arg == NULL || *arg == '\0')) {
			session_reply(s, "501 5.5.4 Syntax: argument required");
			session_bad_syntax_errors(s);
			return;
		}
		c->fn(s, arg);
		return;
	}
	session_reply(s, "500 5.5.2 Error: command not recognized");
	session_bad_syntax_errors(s);
}

/* ---- the input loop ---- */

/* Handles buffered input until it runs out or the session must wait. */
static void
session_process(struct smtp_session *s)
{
	while (s->in_off < s->in.len && s->out.len < SESSION_OUT_HIGH) {
		const char *p = s->in.data + s->in_off;
		size_t avail = s->in.len - s->in_off, n;
		enum smtp_cmd_result res;
		int done = 0;

		switch (s->phase) {
		case PH_COMMAND:
		case PH_AUTH:
			n = smtp_cmd_parse(&s->cp, p, avail, &res);
			s->in_off += n;
			if (res == SMTP_CMD_NEED_MORE)
				break;
			if (res != SMTP_CMD_READY && s->phase == PH_AUTH) {
				/* a broken SASL response ends the exchange */
				s->auth_mech = AUTH_NONE;
				s->phase = PH_COMMAND;
				smtp_cmd_parser_set_max(&s->cp, SMTP_COMMAND_LINE_MAX);
			}
			if (res == SMTP_CMD_TOO_LONG) {
				session_reply(s, "500 5.5.2 Error: line too long");
				session_bad_syntax_errors(s);
			} else if (res == SMTP_CMD_BARE_EOL) {
				session_reply(s, "500 5.5.2 Error: bare CR or LF in command; use CRLF");
				session_bad_syntax_errors(s);
			} else if (s->phase == PH_AUTH) {
				session_auth_response(s, s->cp.line);
			} else {
				session_command(s, s->cp.line);
			}
			break;
		case PH_DATA:
			n = smtp_data_parse(&s->dp, p, avail, &done);
			s->in_off += n;
			if (done)
				session_end_message(s, s->dp.flags);
			break;
		case PH_BDAT:
			n = avail < s->bdat_left ? avail : (size_t)s->bdat_left;
			if (!s->bdat_bad)
				smtp_data_parse(&s->dp, p, n, &done);
			s->in_off += n;
			s->bdat_left -= n;
			if (s->bdat_left == 0)
				session_bdat_chunk_done(s);
			break;
		default:
			return;
		}
		if (s->phase != PH_COMMAND && s->phase != PH_AUTH &&
		    s->phase != PH_DATA && s->phase != PH_BDAT)
			break;
	}
	/* A zero-length BDAT chunk completes without input. */
	if (s->phase == PH_BDAT && s->bdat_left == 0)
		session_bdat_chunk_done(s);
	if (s->in_off == s->in.len) {
		buf_reset(&s->in);
		s->in_off = 0;
	} else if (s->in_off > 0 && s->phase != PH_TLS_HANDSHAKE) {
		buf_consume(&s->in, s->in_off);
		s->in_off = 0;
	}
}

/* Reads what the socket has. Returns -1 on EOF or error. */
static int
session_read(struct smtp_session *s)
{
	char tmp[16384];
	int soft_errors = 0;

	while (s->in.len < SESSION_IN_MAX) {
		size_t room = SESSION_IN_MAX - s->in.len;
		ssize_t n;

		if (room > sizeof tmp)
			room = sizeof tmp;
		if (s->tls_active) {
			n = gnutls_record_recv(s->tls, tmp, room);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				return 0;
			/* A non-fatal alert: go on, but not forever. */
			if (n < 0 && !gnutls_error_is_fatal((int)n) && ++soft_errors < 8)
				continue;
		} else {
			n = recv(s->fd, tmp, room, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
		}
		if (n <= 0)
			return -1;
		buf_append(&s->in, tmp, (size_t)n);
		session_set_deadline(s);
		if (!s->tls_active && (size_t)n < room)
			return 0;
	}
	return 0;
}

static void
session_close_fd(struct smtp_session *s)
{
	if (s->fd < 0)
		return;
	if (s->tls) {
		if (s->tls_active)
			gnutls_bye(s->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(s->tls);
		s->tls = NULL;
	}
	/* Unread input would turn the close into a reset that can destroy
	 * our last reply before the client reads it: discard what is there. */
	shutdown(s->fd, SHUT_WR);
	for (int i = 0; i < 16; i++) {
		char junk[4096];
		if (recv(s->fd, junk, sizeof junk, MSG_DONTWAIT) <= 0)
			break;
	}
	close(s->fd);	/* also leaves the epoll set */
	s->fd = -1;
	connlimit_release((struct sockaddr *)&s->peer);
	log_debug("disconnect from [%s]", s->peer_ip);
}

/* Ends the session: now, or when its commit answered. */
static int
session_end(struct smtp_session *s)
{
	session_close_fd(s);
	s->phase = s->commit ? PH_COMMIT : PH_CLOSED;
	return -1;
}

static int
session_handshake(struct smtp_session *s)
{
	int r = tls_handshake(s->tls);

	if (r == GNUTLS_E_AGAIN)
		return 0;
	if (r < 0) {
		log_info("TLS handshake failed from [%s]: %s", s->peer_ip, gnutls_strerror(r));
		return -1;
	}
	s->tls_active = 1;
	tls_describe(s->tls, s->tls_desc, sizeof s->tls_desc);
	/* RFC 3207: forget everything said before TLS; a new EHLO is needed. */
	s->helo_seen = 0;
	s->esmtp = 0;
	s->helo[0] = '\0';
	session_txn_reset(s);
	s->phase = PH_COMMAND;
	buf_reset(&s->in);
	s->in_off = 0;
	if (s->kind == LISTEN_SMTPS)
		session_reply(s, "220 %s ESMTP mailserver", s->cfg->hostname);
	return 0;
}

/* Did the client speak before our greeting (RFC 5321 4.3.1)? Then it is
 * refused. */
static int
session_pregreet(struct smtp_session *s)
{
	char c;

	if (recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
		return 0;
	log_info("pregreet from [%s]: refused", s->peer_ip);
	session_reply(s, "554 5.5.1 Error: SMTP protocol synchronization");
	s->phase = PH_CLOSING;
	return 1;
}

/* Runs the session after any event until it has to wait. */
static int
session_run(struct smtp_session *s)
{
	for (int round = 0; round < 64; round++) {
		if (s->phase == PH_TLS_HANDSHAKE) {
			if (s->out.len > 0) {	/* the 220 to STARTTLS goes in clear */
				if (session_flush(s) < 0)
					return session_end(s);
				if (s->out.len > 0)
					break;
			}
			if (session_handshake(s) < 0)
				return session_end(s);
			if (s->phase == PH_TLS_HANDSHAKE)
				break;
		}
		if (s->phase != PH_CLOSING && s->phase != PH_COMMIT)
			session_process(s);
		if (session_flush(s) < 0)
			return session_end(s);
		if (s->phase == PH_CLOSING && s->out.len == 0 && !s->tls_pending)
			return session_end(s);
		if (s->phase == PH_TLS_HANDSHAKE)
			continue;
		/* TLS may hold decrypted bytes that epoll cannot see. */
		if (s->tls_active && s->phase != PH_COMMIT && s->phase != PH_CLOSING &&
		    gnutls_record_check_pending(s->tls) > 0 && s->in.len < SESSION_IN_MAX &&
		    s->out.len < SESSION_OUT_HIGH) {
			if (session_read(s) < 0)
				return session_end(s);
			continue;
		}
		break;
	}
	if (s->draining && (s->phase == PH_COMMAND || s->phase == PH_AUTH)) {
		session_reply(s, "421 4.3.2 Server shutting down");
		s->phase = PH_CLOSING;
		if (session_flush(s) < 0 || s->out.len == 0)
			return session_end(s);
	}
	session_update_watch(s);
	return 0;
}

int
smtp_session_event(struct smtp_session *s, uint32_t events)
{
	if (s->fd < 0)
		return -1;
	if (s->phase == PH_GREET_WAIT) {
		char c;
		ssize_t n;

		if (session_pregreet(s))
			return session_run(s);
		n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return session_end(s);	/* gone before the greeting */
		return 0;
	}
	if ((events & EPOLLIN) && s->phase != PH_TLS_HANDSHAKE &&
	    s->phase != PH_COMMIT && s->phase != PH_CLOSING) {
		if (session_read(s) < 0) {
			/* Handle what arrived before the close (QUIT pipelined). */
			session_process(s);
			session_flush(s);
			return session_end(s);
		}
	} else if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLOUT)) {
		return session_end(s);
	}
	return session_run(s);
}

int
smtp_session_commit_done(struct smtp_session *s, enum commit_status st)
{
	char id[QUEUE_ID_LEN + 1];
	struct commit_msg *c = s->commit;

	s->commit = NULL;
	queue_id_format(c->env.id, id, sizeof id);
	if (st == COMMIT_OK) {
		log_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queued)", id,
		    c->env.sender, c->body_len, c->env.nrcpts);
	} else {
		log_warn("%s: from=<%s>: queue commit failed (%s)", id, c->env.sender,
		    st == COMMIT_FULL ? "queue full" : "I/O error");
	}
	commit_msg_free(c);
	if (s->fd < 0) {
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
	if (s->fd < 0)
		return -1;
	if (now < s->deadline || s->phase == PH_COMMIT)
		return 0;
	if (s->phase == PH_GREET_WAIT) {
		s->phase = PH_COMMAND;
		session_reply(s, "220 %s ESMTP mailserver", s->cfg->hostname);
		session_set_deadline(s);
		return session_run(s);
	}
	log_info("timeout from [%s]", s->peer_ip);
	if (s->phase != PH_TLS_HANDSHAKE && !s->tls_pending) {
		s->out.len = 0;
		session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
		session_flush(s);
	}
	return session_end(s);
}

int
smtp_session_drain(struct smtp_session *s)
{
	if (s->fd < 0)
		return -1;
	s->draining = 1;
	return session_run(s);
}

int
smtp_session_can_free(const struct smtp_session *s)
{
	return s->commit == NULL;
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
	s->fd = fd;
	s->kind = kind;
	memcpy(&s->peer, peer, peerlen);
	sockaddr_ntop(peer, s->peer_ip, sizeof s->peer_ip);
	if (strncmp(s->peer_ip, "::ffff:", 7) == 0 && strchr(s->peer_ip + 7, '.'))
		memmove(s->peer_ip, s->peer_ip + 7, strlen(s->peer_ip + 7) + 1);
	s->rt = runtime_current();
	s->cfg = s->rt->cfg;
	s->may_relay = config_client_may_relay(s->cfg, peer);
	buf_init(&s->in, SESSION_IN_MAX);
	buf_init(&s->out, SESSION_OUT_MAX);
	smtp_cmd_parser_init(&s->cp, SMTP_AUTH_LINE_MAX);
	smtp_cmd_parser_set_max(&s->cp, SMTP_COMMAND_LINE_MAX);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	log_debug("connect from [%s]", s->peer_ip);
	s->phase = PH_COMMAND;
	session_set_deadline(s);

	if (kind == LISTEN_SMTPS) {
		if (s->rt->tls == NULL || (s->tls = tls_server_new(s->rt->tls, fd)) == NULL) {
			log_warn("smtps listener without TLS certificate: closing [%s]", s->peer_ip);
			session_end(s);
			smtp_session_free(&s);
			return NULL;
		}
		s->phase = PH_TLS_HANDSHAKE;
	} else if (s->cfg->greeting_delay > 0) {
		s->phase = PH_GREET_WAIT;
		s->deadline = time_mono_ms() + (int64_t)s->cfg->greeting_delay * 1000;
		worker_timer_hint(w, s->deadline);
		worker_watch(w, s, fd, EPOLLIN);
		s->watching = EPOLLIN;
		return s;
	} else if (session_pregreet(s)) {
		;
	} else {
		session_reply(s, "220 %s ESMTP mailserver", s->cfg->hostname);
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
	session_close_fd(s);
	session_txn_reset(s);
	free(s->rcpts);
	buf_free(&s->in);
	buf_free(&s->out);
	smtp_cmd_parser_free(&s->cp);
	runtime_unref(&s->rt);
	free(s);
}
