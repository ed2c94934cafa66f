/*
 * smtp_commands: the inbound SMTP state machine's commands. Each complete
 * command line goes through the command table (verb, its line limit,
 * whether it takes an argument and is a junk command, its handler); the
 * handlers check the sequence and the arguments, apply the recipient and
 * sender policies, and run the mail transaction from MAIL to the hand-off
 * of the finished message to the committer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "server/inflight.h"
#include "server/smtp_session_int.h"
#include "server/tls.h"
#include "server/worker.h"

typedef void (*cmd_fn)(struct smtp_session *s, const char *arg);

/* ---- the transaction ---- */

void
session_rcpt_clear(struct smtp_session *s)
{
	for (size_t i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i].addr);
		free(s->rcpts[i].orcpt);
	}
	s->nrcpts = 0;
}

void
session_txn_reset(struct smtp_session *s)
{
	session_rcpt_clear(s);
	session_policy_txn_reset(s);
	session_mailauth_txn_reset(s);
	session_milter_txn_reset(s);
	s->in_txn = 0;
	s->bdat_used = 0;
	s->bdat_failed = 0;
	s->bdat_refusal = NULL;
	s->bdat_left = 0;
	s->bdat_last = 0;
	s->bdat_fail_reply = NULL;
	memset(&s->mail, 0, sizeof s->mail);
	session_msg_abandon(s);
	session_trace_notes_clear(s);
}

/* The Received header's protocol name (RFC 3848). */
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
	return names[s->mail.smtputf8 != 0][s->io.tls_active != 0][s->auth_user[0] != 0];
}

/* ---- the message's records (smtp_message.h, DESIGN.md) ---- */

/* Committer thread: a record is back; the worker takes it from here. */
static void
session_stage_cb(struct commit_stage *req, enum commit_status st)
{
	struct session_stage *sg = req->arg;

	worker_post_stage(sg->s->w, sg->s, req, st);
}

static void
session_stager_stage(void *arg, struct smtp_message *m,
    struct smtp_message_rec *rec, uint32_t chunk, const char *data, size_t len)
{
	struct smtp_session *s = arg;
	struct session_stage *sg = xcalloc(1, sizeof *sg);

	sg->req.id = smtp_message_id(m);
	sg->req.chunk = chunk;
	sg->req.data = data;
	sg->req.len = len;
	sg->req.done = session_stage_cb;
	sg->req.arg = sg;
	sg->s = s;
	sg->msg = m;
	sg->rec = rec;
	s->stages++;
	committer_submit_stage(worker_committer(s->w), &sg->req);
}

static int
session_stager_reserve(void *arg, size_t bytes)
{
	struct smtp_session *s = arg;

	return inflight_reserve(bytes, s->cfg->max_inflight_data);
}

static int
session_stager_reserve_deep(void *arg, size_t bytes)
{
	struct smtp_session *s = arg;

	return inflight_reserve(bytes, s->cfg->max_inflight_data < SMTP_MESSAGE_DEEP_TOTAL ?
	    s->cfg->max_inflight_data : SMTP_MESSAGE_DEEP_TOTAL);
}

static void
session_stager_release(void *arg, size_t bytes)
{
	(void)arg;
	inflight_release(bytes);
}

void
session_stager_init(struct smtp_session *s)
{
	s->stager.stage = session_stager_stage;
	s->stager.reserve = session_stager_reserve;
	s->stager.reserve_deep = session_stager_reserve_deep;
	s->stager.release = session_stager_release;
	s->stager.arg = s;
}

/* m has nothing with the committer: it goes, and what it staged too. */
static void
session_msg_drop(struct smtp_session *s, struct smtp_message *m)
{
	if (smtp_message_staged_count(m) > 0)
		committer_discard(worker_committer(s->w), smtp_message_id(m));
	smtp_message_free(&m);
}

/* m leaves the session with records still out: freed when they are
 * back (session_stage_back); committed: what it staged is not dropped. */
static void
session_msg_park(struct smtp_session *s, struct smtp_message *m, int committed)
{
	struct session_dying *d = xcalloc(1, sizeof *d);

	d->msg = m;
	d->committed = committed;
	d->next = s->dying;
	s->dying = d;
}

void
session_msg_abandon(struct smtp_session *s)
{
	struct smtp_message *m = s->msg;

	s->msg = NULL;
	s->blocked_since = 0;
	if (m == NULL)
		return;
	if (smtp_message_inflight(m) == 0) {
		session_msg_drop(s, m);
		return;
	}
	session_msg_park(s, m, 0);
}

int
session_msg_blocked(const struct smtp_session *s)
{
	return (s->phase == PH_DATA || s->phase == PH_BDAT) && s->msg != NULL &&
	    s->bdat_refusal == NULL && smtp_message_blocked(s->msg);
}

static void session_commit_when_staged(struct smtp_session *s);

void
session_stage_back(struct smtp_session *s, struct session_stage *sg,
    enum commit_status st)
{
	struct smtp_message *m = sg->msg;

	smtp_message_staged(m, sg->rec, st);
	s->stages--;
	if (m != s->msg) {
		/* A message given up or committed: it goes with its last
		 * record. */
		int committed = 0;

		if (smtp_message_inflight(m) > 0)
			return;
		for (struct session_dying **dp = &s->dying; *dp; dp = &(*dp)->next) {
			if ((*dp)->msg == m) {
				struct session_dying *d = *dp;
				committed = d->committed;
				*dp = d->next;
				free(d);
				break;
			}
		}
		if (!committed) {
			session_msg_drop(s, m);
			return;
		}
		/* The commit fails without the record; the reply says why. */
		if (smtp_message_status(m) != COMMIT_OK)
			s->commit_stage_status = smtp_message_status(m);
		smtp_message_free(&m);
		return;
	}
	if (s->phase == PH_COMMIT && s->commit == NULL) {
		session_commit_when_staged(s);
		return;
	}
	if (session_milter_staged(s))
		return;
	if (s->blocked_since != 0 && !smtp_message_blocked(m)) {
		/* Our wait does not count against the client's data rate. */
		s->msg_start += time_mono_ms() - s->blocked_since;
		s->blocked_since = 0;
		if (s->phase == PH_DATA || s->phase == PH_BDAT)
			session_set_deadline(s);
	}
}

/* Returns 0, or -1 when the global cap refuses a new message now. */
static int
session_begin_message(struct smtp_session *s, enum smtp_data_mode mode)
{
	struct smtp_message_info info = {
		.helo = s->helo,
		.client_ip = s->peer_ip,
		.client_name = s->client_name,
		.hostname = s->cfg->hostname,
		.protocol = session_protocol(s),
		.tls = s->io.tls_active ? s->tls_desc : NULL,
		.rcpt = s->nrcpts == 1 ? s->rcpts[0].addr : NULL,
		.submission = s->auth_user[0] != '\0',
		.max_size = s->cfg->max_message_size,
		.mode = mode,
		.now = time(NULL),
		.stager = &s->stager,
	};

	s->qid = queue_id_next();
	info.id = s->qid;
	session_mailauth_begin(s, &info);
	s->msg = smtp_message_new(&info);
	s->msg_start = time_mono_ms();
	s->msg_bytes = 0;
	s->blocked_since = 0;
	if (s->msg == NULL) {
		log_warn("too much mail data in flight (max_inflight_data): "
		    "a message from [%s] has to wait", s->peer_ip);
		return -1;
	}
	return 0;
}

#define SESSION_INFLIGHT_REPLY \
	"451 4.3.2 Too much mail data in flight; try again later"

static void
session_commit_cb(struct commit_msg *req, enum commit_status st)
{
	struct smtp_session *s = req->arg;

	worker_post_commit(s->w, s, st);
}

/* The whole message passed every check and every record of it is in:
 * the final commit makes it visible. */
static void
session_commit_final(struct smtp_session *s)
{
	struct commit_msg *c = &s->commit_storage;
	struct envelope *env = &c->env;
	struct smtp_message_parts parts;

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
	    (s->mail.smtputf8 ? ENV_SMTPUTF8 : 0) | (s->io.tls_active ? ENV_TLS : 0) |
	    (s->mail.requiretls ? ENV_REQUIRETLS : 0);
	env->rcpts = s->rcpts;
	env->nrcpts = s->nrcpts;
	if (session_hold_check(s, env) | session_milter_hold(s) |
	    session_policy_hold(s))
		env->flags |= ENV_HELD;
	s->rcpts = NULL;
	s->nrcpts = s->caprcpts = 0;
	smtp_message_take(s->msg, &parts);
	s->commit_stage_status = COMMIT_OK;
	if (smtp_message_inflight(s->msg) > 0) {
		session_msg_park(s, s->msg, 1);
		s->msg = NULL;
	} else {
		smtp_message_free(&s->msg);
	}
	c->body = parts.head;
	c->body_len = parts.head_len;
	c->staged = parts.staged;
	c->tail = parts.tail;
	c->tail_len = parts.tail_len;
	s->commit_reserved = parts.reserved;
	s->commit_size = parts.size;
	c->done = session_commit_cb;
	c->arg = s;
	s->commit = c;
	s->commit_us = metrics_clock_us();
	s->phase = PH_COMMIT;
	committer_submit(worker_committer(s->w), c);
}

/* The checks passed: the commit, at once (records still with the
 * committer are written before it: committer.h); or, once no record of
 * the message is out any more, the reply for a record refused. */
static void
session_commit_when_staged(struct smtp_session *s)
{
	enum commit_status st;
	char id[QUEUE_ID_LEN + 1];

	st = smtp_message_status(s->msg);
	if (st == COMMIT_OK) {
		session_commit_final(s);
		return;
	}
	if (smtp_message_inflight(s->msg) > 0)
		return;		/* session_stage_back calls again */
	s->phase = PH_COMMAND;
	log_warn("%s: from=<%s>: queue commit failed (%s)",
	    queue_id_format(s->qid, id, sizeof id), s->mail.addr,
	    st == COMMIT_FULL ? "queue full" : "I/O error");
	if (st == COMMIT_FULL)
		session_reply(s, "452 4.3.1 Insufficient system storage");
	else
		session_reply(s, "451 4.3.0 Error: queue file write error");
	session_txn_reset(s);
	session_set_deadline(s);
}

/* The whole message passed every check: the milters, then the commit. */
void
session_commit(struct smtp_session *s)
{
	if (session_milter_end_message(s))
		return;		/* session_commit_now comes from there */
	session_commit_now(s);
}

void
session_commit_now(struct smtp_session *s)
{
	s->phase = PH_COMMIT;
	session_commit_when_staged(s);
}

/* End of DATA or of the last BDAT chunk: the checks, then the commit. */
static void
session_end_message(struct smtp_session *s)
{
	char reply[256];

	s->phase = PH_COMMAND;
	if (smtp_message_finish(s->msg, reply, sizeof reply) == 0) {
		/* A client that delivers mail is not idling or probing. */
		s->junk = 0;
		s->refused_rcpts = 0;
		if (session_mailauth_end_message(s))
			return;	/* it goes on there */
		session_commit(s);
		return;
	}
	session_message_refused(s, reply);
}

void
session_message_refused(struct smtp_session *s, const char *reply)
{
	session_message_refused_reason(s, reply, session_reply_reason(reply));
}

void
session_message_refused_reason(struct smtp_session *s, const char *reply,
    unsigned reason)
{
	session_reply(s, "%s", reply);
	queue_stats_add_rejected(1);
	metrics_inc_label(M_REJECTIONS, reason);
	log_info("reject: %s from [%s]: %s", s->mail.addr, s->peer_ip, reply);
	session_txn_reset(s);
	session_set_deadline(s);
}

/* ---- commands ---- */

void
session_bad_sequence(struct smtp_session *s, const char *why)
{
	session_reply(s, "503 5.5.1 Error: %s", why);
	session_error(s);
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
		session_error(s);
		return -1;
	}
	session_txn_reset(s);
	str_copy(s->helo, name, sizeof s->helo);
	s->helo_seen = 1;
	s->trace_helo_us = session_trace_now();
	s->esmtp = esmtp;
	return 0;
}

void
session_helo_reply(struct smtp_session *s)
{
	if (!s->esmtp) {
		session_reply(s, "250 %s", s->cfg->hostname);
		return;
	}
	session_reply(s, "250-%s", s->cfg->hostname);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %zu", s->cfg->max_message_size);
	if (s->rt->tls && !s->io.tls_active)
		session_reply(s, "250-STARTTLS");
	if (session_auth_offered(s)) {
		char mechs[SMTP_AUTH_MECHS_MAX];

		session_auth_mechanisms(s, mechs, sizeof mechs);
		session_reply(s, "250-AUTH %s", mechs);
	}
	session_reply(s, "250-ENHANCEDSTATUSCODES");
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-DSN");
	session_reply(s, "250-SMTPUTF8");
	/* RFC 8689 2: only where the message arrives over TLS. */
	if (s->io.tls_active)
		session_reply(s, "250-REQUIRETLS");
	session_reply(s, "250 CHUNKING");
}

static void
cmd_ehlo(struct smtp_session *s, const char *arg)
{
	if (cmd_helo_common(s, arg, 1) < 0 || session_milter_helo(s))
		return;
	session_helo_reply(s);
}

static void
cmd_helo(struct smtp_session *s, const char *arg)
{
	if (cmd_helo_common(s, arg, 0) < 0 || session_milter_helo(s))
		return;
	session_helo_reply(s);
}

static void
cmd_mail(struct smtp_session *s, const char *arg)
{
	char err[256];

	if (!s->helo_seen) {
		session_bad_sequence(s, "send HELO/EHLO first");
		return;
	}
	/* A refused BDAT chunk failed the transaction: the client sends no
	 * more chunks (RFC 3030 2), so no LAST ends it; a new MAIL does. */
	if (s->in_txn && s->bdat_failed)
		session_txn_reset(s);
	if (s->in_txn) {
		session_bad_sequence(s, "nested MAIL command");
		return;
	}
	if (s->kind != LISTEN_SMTP && s->auth_user[0] == '\0') {
		session_reply(s, "530 5.7.0 Authentication required");
		metrics_inc_label(M_REJECTIONS, MR_AUTH_REQUIRED);
		return;
	}
	if (arg == NULL || smtp_parse_mail(arg, &s->mail, err, sizeof err) < 0) {
		if (arg == NULL)
			session_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		else
			session_reply(s, "%s", err);
		session_error(s);
		memset(&s->mail, 0, sizeof s->mail);
		return;
	}
	if (!s->esmtp && (s->mail.size || s->mail.body || s->mail.smtputf8 ||
	    s->mail.ret || s->mail.envid[0] || s->mail.auth[0] || s->mail.requiretls)) {
		session_reply(s, "555 5.5.4 Parameters need EHLO");
		memset(&s->mail, 0, sizeof s->mail);
		return;
	}
	/* AUTH= from a client that has not logged in vouches for nothing:
	 * taken as AUTH=<> (RFC 4954 5), so it reaches no milter or policy
	 * service. */
	if (s->auth_user[0] == '\0')
		s->mail.auth[0] = '\0';
	if (s->mail.requiretls && !s->io.tls_active) {
		/* Offered only inside TLS: the message would have crossed in
		 * clear already (RFC 8689 4.1). */
		session_reply(s, "530 5.7.10 REQUIRETLS needs a TLS session");
		memset(&s->mail, 0, sizeof s->mail);
		return;
	}
	if (s->mail.size > s->cfg->max_message_size) {
		session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		queue_stats_add_rejected(1);
		metrics_inc_label(M_REJECTIONS, MR_MESSAGE_SIZE);
		memset(&s->mail, 0, sizeof s->mail);
		return;
	}
	/* An authenticated user sends as itself: its own address or an alias
	 * that leads to it (the null sender too), unless auth_any_sender
	 * lets it send as anyone. */
	if (s->auth_user[0] && s->mail.addr[0] &&
	    !config_user_may_send_any(s->cfg, s->auth_user) &&
	    !session_sender_owned(s, s->mail.addr)) {
		session_reply(s, "553 5.7.1 <%s>: Sender address rejected: not owned by user %s",
		    s->mail.addr, s->auth_user);
		log_info("reject: MAIL from [%s]: 553 <%s> not owned by sasl_username=%s",
		    s->peer_ip, s->mail.addr, s->auth_user);
		queue_stats_add_rejected(1);
		metrics_inc_label(M_REJECTIONS, MR_SENDER_MISMATCH);
		memset(&s->mail, 0, sizeof s->mail);
		return;
	}
	if (session_rate_mail(s)) {
		memset(&s->mail, 0, sizeof s->mail);
		return;
	}
	if (session_mailauth_mail(s))
		return;		/* the reply comes after the SPF check */
	session_mail_accepted(s);
}

void
session_mail_accepted(struct smtp_session *s)
{
	if (session_milter_mail(s))
		return;		/* session_mail_begin comes from there */
	session_mail_begin(s);
}

void
session_mail_begin(struct smtp_session *s)
{
	s->in_txn = 1;
	s->trace_mail_us = session_trace_now();
	session_reply(s, "250 2.1.0 Ok");
}

/* The mailbox addr names: user@[one of our addresses] is this host
 * (RFC 5321 4.1.3), the mailbox of user at config_literal_domain (as
 * delivery maps it: local_address); any other addr is itself. Returns out,
 * or addr itself. */
/* A local part, '@', a domain. */
#define SESSION_MAILBOX_MAX (SMTP_PATH_MAX + 256)

static const char *
session_rcpt_mailbox(const struct smtp_session *s, const char *addr, char *out,
    size_t size)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL || !ip_literal_in(at + 1, s->rt->own_addrs, s->rt->nown_addrs))
		return addr;
	snprintf(out, size, "%.*s@%s", (int)(at - addr), addr,
	    config_literal_domain(s->cfg));
	return out;
}

/* addr (user@ a local domain) is a user, an alias or postmaster: NULL,
 * else the reply. */
static const char *
session_rcpt_local(struct smtp_session *s, const char *addr)
{
	if (strncasecmp(addr, "postmaster@", 11) == 0)
		return NULL;
	if (userdb_lookup(s->rt->udb, addr) == USERDB_NONE)
		return "550 5.1.1 Recipient address rejected: User unknown in local recipient table";
	return NULL;
}

/* The recipient policy (README "Recipient policy"). Returns NULL to accept,
 * else the reply. */
static const char *
session_rcpt_policy(struct smtp_session *s, const char *addr)
{
	const char *at = strrchr(addr, '@');
	const char *domain = at ? at + 1 : "";
	char mailbox[SESSION_MAILBOX_MAX];
	const char *mb;

	if (at == NULL)
		return NULL;	/* <postmaster>, checked by the parser */
	if (config_is_local_domain(s->cfg, domain))
		return session_rcpt_local(s, addr);
	/* An address literal of ours: the recipient stays as written. */
	if ((mb = session_rcpt_mailbox(s, addr, mailbox, sizeof mailbox)) != addr)
		return session_rcpt_local(s, mb);
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
		session_bad_sequence(s, "need MAIL command");
		return;
	}
	if (s->bdat_used) {
		session_bad_sequence(s, "RCPT after BDAT");
		return;
	}
	if (arg == NULL || smtp_parse_rcpt(arg, s->mail.smtputf8, &r, err, sizeof err) < 0) {
		if (arg == NULL)
			session_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		else
			session_reply(s, "%s", err);
		session_error(s);
		return;
	}
	if (!s->esmtp && (r.notify || r.orcpt[0])) {
		session_reply(s, "555 5.5.4 Parameters need EHLO");
		return;
	}
	if (s->nrcpts >= s->cfg->max_recipients) {
		session_reply(s, "452 4.5.3 Error: too many recipients");
		metrics_inc_label(M_REJECTIONS, MR_RECIPIENT_LIMIT);
		return;
	}
	if (session_rate_rcpt(s, r.addr))
		return;
	if ((deny = session_rcpt_policy(s, r.addr)) != NULL) {
		session_rcpt_refuse(s, r.addr, deny, 1);
		return;
	}
	if (session_policy_rcpt(s, &r))
		return;	/* the policy services decide */
	session_rcpt_accept(s, &r);
}

void
session_rcpt_refuse(struct smtp_session *s, const char *addr, const char *reply,
    int counts)
{
	session_rcpt_refuse_reason(s, addr, reply, counts, session_reply_reason(reply));
}

void
session_rcpt_refuse_reason(struct smtp_session *s, const char *addr, const char *reply,
    int counts, unsigned reason)
{
	session_reply(s, "%s", reply);
	session_milter_rcpt_refused(s, addr);
	if (strncmp(reply, "550 5.1.1", 9) == 0)
		session_rate_unknown(s);
	log_info("reject: RCPT from [%s]: %.3s <%s>", s->peer_ip, reply, addr);
	if (s->in_txn)
		session_trace_note(s, "rcpt", "to=<%s> refused (%s)", addr, reply);
	queue_stats_add_rejected(1);
	metrics_inc_label(M_REJECTIONS, reason);
	/* Refused recipients are not bad commands: a list with a few
	 * stale addresses goes on; a harvest of names does not. */
	if (counts && ++s->refused_rcpts >= s->cfg->max_unknown_recipients) {
		log_info("too many refused recipients from [%s]: closed", s->peer_ip);
		session_reply(s, "421 4.7.0 %s Error: too many refused recipients",
		    s->cfg->hostname);
		s->phase = PH_CLOSING;
	}
}

int
session_rcpt_has(const struct smtp_session *s, const char *addr)
{
	char a[SESSION_MAILBOX_MAX], b[SESSION_MAILBOX_MAX];
	const char *mb = session_rcpt_mailbox(s, addr, a, sizeof a);

	/* One mailbox, however it is written (an address literal of ours
	 * names a local mailbox too). */
	for (size_t i = 0; i < s->nrcpts; i++)
		if (strcasecmp(session_rcpt_mailbox(s, s->rcpts[i].addr, b, sizeof b),
		    mb) == 0)
			return 1;
	return 0;
}

int
session_rcpt_append(struct smtp_session *s, const char *addr, const char *orcpt,
    unsigned notify)
{
	if (session_rcpt_has(s, addr))
		return 0;
	if (s->nrcpts == s->caprcpts) {
		s->caprcpts = s->caprcpts ? s->caprcpts * 2 : 4;
		s->rcpts = xrealloc(s->rcpts, s->caprcpts * sizeof *s->rcpts);
	}
	s->rcpts[s->nrcpts].addr = xstrdup(addr);
	s->rcpts[s->nrcpts].orcpt = orcpt != NULL ? xstrdup(orcpt) : NULL;
	s->rcpts[s->nrcpts].notify = notify;
	s->nrcpts++;
	return 1;
}

void
session_rcpt_accept(struct smtp_session *s, const struct smtp_rcpt_args *r)
{
	if (session_milter_rcpt(s, r))
		return;		/* session_rcpt_take comes from there */
	session_rcpt_take(s, r);
}

void
session_rcpt_take(struct smtp_session *s, const struct smtp_rcpt_args *r)
{
	session_rcpt_append(s, r->addr, r->orcpt[0] ? r->orcpt : NULL, r->notify);
	s->trace_rcpt_us = session_trace_now();
	session_reply(s, "250 2.1.5 Ok");
}

/* The Received header should name the client: wait for its lookup, up to
 * client_dns_timeout after the connection began. */
static void
session_wait_for_name(struct smtp_session *s, enum session_phase then)
{
	s->name_then = then;
	s->phase = PH_NAME_WAIT;
	worker_timer_hint(s->w, s->name_deadline);
}

/* No 354: a client that sent its message before our reply (improper
 * pipelining) must not have that message read as commands. */
static void
session_data_refused(struct smtp_session *s)
{
	if (s->io.in.len > s->io.in_off) {
		log_info("improper pipelining after DATA from [%s]", s->peer_ip);
		session_io_discard_input(&s->io);
		s->phase = PH_CLOSING;
	}
}

static void
session_data_start(struct smtp_session *s)
{
	s->phase = PH_COMMAND;
	if (session_begin_message(s, SMTP_DATA_DOTTED) < 0) {
		session_reply(s, SESSION_INFLIGHT_REPLY);
		session_data_refused(s);
		return;
	}
	if (session_milter_data(s))
		return;		/* session_data_decided comes from there */
	session_data_decided(s, NULL);
}

static void session_bdat_start(struct smtp_session *s);

void
session_data_decided(struct smtp_session *s, const char *refusal)
{
	if (s->bdat_used) {
		if (refusal != NULL) {
			/* this chunk and the rest up to LAST are refused */
			session_msg_abandon(s);
			s->bdat_failed = 1;
			s->bdat_fail_reply = refusal;
			s->bdat_refusal = refusal;
		}
		session_bdat_start(s);
		return;
	}
	if (refusal != NULL) {
		session_reply(s, "%s", refusal);
		session_txn_reset(s);
		session_data_refused(s);
		return;
	}
	s->phase = PH_DATA;
	session_set_deadline(s);
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_data(struct smtp_session *s, const char *arg)
{
	if (*arg) {
		session_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_txn) {
		session_bad_sequence(s, "need MAIL command");
		return;
	}
	if (s->bdat_used) {
		session_bad_sequence(s, "DATA after BDAT");
		return;
	}
	if (s->nrcpts == 0) {
		session_reply(s, "554 5.5.1 Error: no valid recipients");
		session_data_refused(s);
		return;
	}
	if (session_name_pending(s)) {
		session_wait_for_name(s, PH_DATA);
		return;
	}
	session_data_start(s);
}

static void
session_bdat_chunk_done(struct smtp_session *s)
{
	s->phase = PH_COMMAND;
	session_set_deadline(s);
	if (s->bdat_refusal != NULL) {
		session_reply(s, "%s", s->bdat_refusal);
		s->bdat_refusal = NULL;
		if (s->bdat_last && s->bdat_failed)
			session_txn_reset(s);
		return;
	}
	if (!s->bdat_last && s->msg_bytes > s->cfg->max_message_size) {
		/* Refused at the chunk that passes the limit, not at LAST:
		 * the client stops sending; the chunks up to LAST are still
		 * read, and refused (RFC 3030 2). */
		session_msg_abandon(s);
		s->bdat_failed = 1;
		s->bdat_fail_reply = "552 5.3.4 Message size exceeds fixed limit";
		session_reply(s, "%s", s->bdat_fail_reply);
		queue_stats_add_rejected(1);
		metrics_inc_label(M_REJECTIONS, session_reply_reason(s->bdat_fail_reply));
		log_info("reject: %s from [%s]: %s", s->mail.addr, s->peer_ip,
		    s->bdat_fail_reply);
		return;
	}
	if (!s->bdat_last) {
		/* RFC 3030: the octets of this chunk, as read. */
		session_reply(s, "250 2.0.0 %llu octets received",
		    (unsigned long long)s->bdat_size);
		return;
	}
	session_end_message(s);
}

/* The first chunk of a BDAT transaction: the message begins, or (the
 * global cap) every chunk up to LAST is read and refused. Returns 1 when
 * the milters are asked first (session_data_decided goes on). */
static int
session_bdat_begin(struct smtp_session *s)
{
	if (session_begin_message(s, SMTP_DATA_BDAT) == 0)
		return session_milter_data(s);
	s->bdat_failed = 1;
	s->bdat_fail_reply = SESSION_INFLIGHT_REPLY;
	s->bdat_refusal = s->bdat_fail_reply;
	return 0;
}

/* The chunk announced is read now. */
static void
session_bdat_start(struct smtp_session *s)
{
	s->phase = PH_BDAT;
	session_set_deadline(s);
	/* A zero-length chunk completes without input. */
	if (s->bdat_left == 0)
		session_bdat_chunk_done(s);
}

/* BDAT size [LAST] (RFC 3030). The chunk is always read, even when it
 * will be refused, so the session stays in step with the client; a
 * refusal outside a transaction concerns that chunk alone. */
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
		session_error(s);
		s->phase = PH_CLOSING;	/* the chunk size is unknown: cannot resync */
		return;
	}
	s->bdat_left = n;
	s->bdat_size = n;
	s->bdat_last = *end != '\0';
	s->bdat_refusal = NULL;
	if (!s->in_txn) {
		s->bdat_refusal = "503 5.5.1 Error: need MAIL command";
		session_error(s);
	} else if (s->bdat_failed || s->nrcpts == 0) {
		if (!s->bdat_failed)
			s->bdat_fail_reply = "554 5.5.1 Error: no valid recipients";
		s->bdat_failed = 1;
		s->bdat_refusal = s->bdat_fail_reply;
	} else if (!s->bdat_used) {
		s->bdat_used = 1;
		if (session_name_pending(s)) {
			/* the chunk waits unread meanwhile */
			session_wait_for_name(s, PH_BDAT);
			return;
		}
		if (session_bdat_begin(s))
			return;
	}
	if (s->phase == PH_CLOSING)
		return;
	session_bdat_start(s);
}

void
session_name_known(struct smtp_session *s)
{
	if (s->name_then == PH_DATA) {
		session_data_start(s);
		return;
	}
	if (session_bdat_begin(s))
		return;
	session_bdat_start(s);
}

size_t
session_content(struct smtp_session *s, const char *p, size_t avail)
{
	int done = 0;
	size_t n;

	if (s->phase == PH_DATA) {
		n = smtp_message_feed(s->msg, p, avail, &done);
		s->msg_bytes += n;
		if (done)
			session_end_message(s);
		else if (smtp_message_blocked(s->msg) && s->blocked_since == 0)
			s->blocked_since = time_mono_ms();
		return n;
	}
	n = avail < s->bdat_left ? avail : (size_t)s->bdat_left;
	if (s->bdat_refusal == NULL) {
		n = smtp_message_feed(s->msg, p, n, &done);
		if (smtp_message_blocked(s->msg) && s->blocked_since == 0)
			s->blocked_since = time_mono_ms();
	}
	s->bdat_left -= n;
	s->msg_bytes += n;
	if (s->bdat_left == 0)
		session_bdat_chunk_done(s);
	return n;
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
	if (s->io.tls_active) {
		session_bad_sequence(s, "TLS already active");
		return;
	}
	if (s->rt->tls == NULL) {
		session_reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (session_io_start_tls(&s->io, s->rt->tls) < 0) {
		session_reply(s, "454 4.7.0 TLS not available due to local problem");
		return;
	}
	session_reply(s, "220 2.0.0 Ready to start TLS");
	/* Plaintext pipelined after STARTTLS is never read (CVE-2011-0411). */
	session_io_discard_input(&s->io);
	smtp_cmd_parser_reset(&s->cp);
}

void
session_tls_started(struct smtp_session *s)
{
	tls_describe(s->io.tls, s->tls_desc, sizeof s->tls_desc);
	s->trace_tls_us = session_trace_now();
	metrics_inc_label(M_TLS_SESSIONS, MT_INBOUND);
	/* RFC 3207 4.2: forget everything said before TLS, a login
	 * included; a new EHLO is needed. */
	s->helo_seen = 0;
	s->esmtp = 0;
	s->helo[0] = '\0';
	s->auth_user[0] = '\0';
	s->may_relay = config_client_may_relay(s->cfg, (const struct sockaddr *)&s->peer);
	session_txn_reset(s);
	s->phase = PH_COMMAND;
	session_set_deadline(s);
	if (s->kind == LISTEN_SMTPS)
		session_admit(s);
}

#define CMD_NEEDS_ARG 0x1	/* argument required (else 501) */
#define CMD_JUNK 0x2		/* moves no mail: counted toward max_junk_commands */

struct smtp_command {
	enum smtp_verb verb;
	cmd_fn fn;
	unsigned flags;
	size_t max_line;	/* the line with its CRLF */
};

/* MAIL and RCPT take the longer lines that AUTH=, ENVID and ORCPT need
 * (RFC 4954 5, RFC 3461 4: 500 more octets each, as Postfix's 2048); an
 * AUTH line may carry a whole initial response (RFC 4954 4). */
#define CMD_PATH_LINE_MAX 2048

static const struct smtp_command session_commands[] = {
	{ SMTP_VERB_EHLO, cmd_ehlo, CMD_NEEDS_ARG, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_HELO, cmd_helo, CMD_NEEDS_ARG, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_MAIL, cmd_mail, 0, CMD_PATH_LINE_MAX },
	{ SMTP_VERB_RCPT, cmd_rcpt, 0, CMD_PATH_LINE_MAX },
	{ SMTP_VERB_DATA, cmd_data, 0, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_BDAT, cmd_bdat, CMD_NEEDS_ARG, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_RSET, cmd_rset, CMD_JUNK, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_NOOP, cmd_noop, CMD_JUNK, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_QUIT, cmd_quit, 0, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_VRFY, cmd_vrfy, CMD_JUNK, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_EXPN, cmd_expn, CMD_JUNK, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_HELP, cmd_help, CMD_JUNK, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_STARTTLS, cmd_starttls, 0, SMTP_COMMAND_LINE_MAX },
	{ SMTP_VERB_AUTH, session_cmd_auth, CMD_NEEDS_ARG, SMTP_AUTH_LINE_MAX },
};

void
session_command(struct smtp_session *s, const char *line)
{
	const char *arg = "", *refusal;
	int http = 0;
	enum smtp_verb verb = smtp_cmd_verb(line, &arg, &http);
	size_t len = strlen(line) + 2;

	if (http) {
		log_info("HTTP request from [%s]: closed", s->peer_ip);
		s->phase = PH_CLOSING;
		buf_reset(&s->io.out);
		return;
	}
	for (size_t i = 0; i < sizeof session_commands / sizeof session_commands[0]; i++) {
		const struct smtp_command *c = &session_commands[i];
		if (c->verb != verb)
			continue;
		if (len > c->max_line) {
			session_reply(s, "500 5.5.2 Error: line too long");
			session_error(s);
			return;
		}
		if ((c->flags & CMD_NEEDS_ARG) && (arg == NULL || *arg == '\0')) {
			session_reply(s, "501 5.5.4 Syntax: argument required");
			session_error(s);
			return;
		}
		if (verb != SMTP_VERB_QUIT && verb != SMTP_VERB_RSET &&
		    verb != SMTP_VERB_NOOP && session_milter_refusal(s, &refusal)) {
			session_reply(s, "%s", refusal);
			return;
		}
		if ((c->flags & CMD_JUNK) && ++s->junk > s->cfg->max_junk_commands) {
			log_info("too many junk commands from [%s]: closed", s->peer_ip);
			session_reply(s, "421 4.7.0 %s Error: too many commands without mail",
			    s->cfg->hostname);
			s->phase = PH_CLOSING;
			return;
		}
		c->fn(s, arg);
		return;
	}
	if (len > SMTP_COMMAND_LINE_MAX)
		session_reply(s, "500 5.5.2 Error: line too long");
	else if (session_milter_unknown(s, line))
		return;		/* the 500 (or a refusal) comes from there */
	else
		session_reply(s, "500 5.5.2 Error: command not recognized");
	session_error(s);
}
