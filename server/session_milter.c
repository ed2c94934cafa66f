/*
 * session_milter: a session's side of the milters (README "Milters"; the
 * protocol is filter/milter_chain.h). Each session that has milters gets
 * one chain, made at its first HELO/EHLO. HELO (with the connects and
 * CONNECT), MAIL, RCPT, DATA and the message go to the milters from the
 * worker's own event loop (the chain in non-blocking mode, the milter's
 * socket in the worker's epoll, its deadline checked by the session's
 * tick; the message's staged records are read on the worker, one short
 * read transaction each); unknown commands, and the others when refused
 * recipients are still to be told (their replies are waited for), are
 * jobs on the filter pool. The session holds its input meanwhile
 * (PH_MILTER):
 *   HELO/EHLO   CONNECT (once), then HELO, before the session's reply
 *   a command the session does not know, before its 500
 *   MAIL        after the session's checks and SPF, before the 250
 *   RCPT        after the session's checks and the policy services
 *   DATA, BDAT  before the 354 (the first chunk is not read yet)
 *   end of data after mail authentication and the policy services: the
 *               message as it will be queued (record 0, the records it
 *               staged, read back from the queue, and the rest), then
 *               end of body; the changes are made before the commit.
 * What needs no answer waits for the next job: the ABORT of a reset
 * transaction and the recipients the session refused go out first then.
 *
 * The chain is the job's while it runs (so a session that ends meanwhile
 * never frees it under the pool thread); it comes back with the result.
 * A chain left over (the session ended) is closed on the worker:
 * milter_chain_free sends QUIT only if it goes out at once, never waits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#include "filter/milter_chain.h"
#include "lib/log.h"
#include "lib/netaddr.h"
#include "lib/util.h"
#include "lib/xtext.h"
#include "queue/store.h"
#include "server/smtp_session_int.h"
#include "server/worker.h"

/* Refused recipients kept for the milters until the next event; more are
 * not told (they only inform). */
#define MILTER_REFUSED_MAX 64
/* Macros set by one job, and their values' room. */
#define MILTER_JOB_MACROS 16
#define MILTER_JOB_VALUE 256
/* ESMTP parameters told with MAIL or RCPT. */
#define MILTER_JOB_PARAMS 8

#define MILTER_BUSY_REPLY "451 4.3.2 Too busy to filter; try again later"

struct session_milter {
	struct milter_chain *chain;	/* NULL while a job has it */
	int connected;			/* CONNECT went out */
	char refusal[FILTER_REPLY_MAX + 1];	/* a CONNECT/HELO refusal that
					 * holds for the session; "" none */
	char reply[FILTER_REPLY_MAX + 1];	/* a BDAT refusal's text */
	int discard;			/* a milter discards the transaction */
	int abort;			/* the transaction was reset: ABORT */
	int wait_staged;		/* the end of data waits for its records */
	int own_refusal;		/* a milter refuses this recipient */
	char *quarantine;		/* a milter quarantines the message */
	char *refused[MILTER_REFUSED_MAX];
	size_t nrefused;
	struct milter_job *loop;	/* the stage asked from the event loop */
	int64_t loop_deadline;		/* of the milter it waits for */
	int watch_fd;			/* that milter's socket in the epoll, or -1 */
	uint32_t watch_events;
};

enum milter_step {
	MSTEP_HELO, MSTEP_MAIL, MSTEP_RCPT, MSTEP_DATA, MSTEP_EOM, MSTEP_UNKNOWN
};

struct milter_job {
	struct session_job sj;		/* first */
	struct runtime *rt;		/* keeps the milters' specs */
	struct offloop *pool;		/* the filter pool */
	struct milter_chain *chain;	/* the session's, while the job runs */
	enum milter_step stage;
	/* sent before the event */
	int abort;
	char **refused;
	size_t nrefused;
	size_t nmacros;
	const char *mname[MILTER_JOB_MACROS];
	char mvalue[MILTER_JOB_MACROS][MILTER_JOB_VALUE];
	/* MSTEP_HELO */
	int connect;
	int helo_next;			/* from the loop: HELO after CONNECT */
	char client_name[256], client_addr[64];
	uint16_t client_port;
	int family;
	char helo[256];
	/* MSTEP_MAIL, MSTEP_RCPT */
	char addr[SMTP_PATH_MAX];
	char pbuf[2048];		/* the parameters' text, one after another */
	size_t pused;
	const char *params[MILTER_JOB_PARAMS + 1];
	struct smtp_rcpt_args rcpt;
	/* MSTEP_UNKNOWN */
	char line[SMTP_COMMAND_LINE_MAX + 1];
	/* MSTEP_EOM: the message, copied (record 0 and the bytes after the
	 * staged records), and where its staged records are */
	char *head, *tail;
	size_t head_len, tail_len;
	uint32_t staged;
	queue_id_t id;
	struct queue_store *store;
	enum { MP_HEAD, MP_STAGED, MP_TAIL, MP_EOM, MP_DONE } mpart;	/* the
					 * piece to go next */
	uint32_t mrec;			/* MP_STAGED: the record to go next */
	struct buf rec;			/* the staged record going now */
	/* the result */
	struct milter_verdict v;
	const struct milter_mods *mods;	/* the chain's: read before its next call */
};

static struct session_milter *
milter_get(struct smtp_session *s)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof local;
	char addr[64], port[8];
	struct milter_chain *c;

	if (s->milter != NULL)
		return s->milter;
	s->milter = xcalloc(1, sizeof *s->milter);
	s->milter->watch_fd = -1;
	c = s->milter->chain = milter_chain_new(s->rt->milters, s->rt->nmilters,
	    s->cfg->max_message_size);
	(void)milter_chain_macro(c, "j", s->cfg->hostname);
	(void)milter_chain_macro(c, "{daemon_name}", "mailserver");
	(void)milter_chain_macro(c, "v", "mailserver");
	if (getsockname(s->io.fd, (struct sockaddr *)&local, &len) == 0 &&
	    sockaddr_ntop((const struct sockaddr *)&local, addr, sizeof addr) != NULL) {
		snprintf(port, sizeof port, "%u",
		    (unsigned)sockaddr_port((const struct sockaddr *)&local));
		(void)milter_chain_macro(c, "{daemon_addr}", addr);
		(void)milter_chain_macro(c, "{if_addr}", addr);
		(void)milter_chain_macro(c, "{daemon_port}", port);
	}
	return s->milter;
}

/* Does this session have milters (and so a chain)? */
static int
milter_on(const struct smtp_session *s)
{
	return s->rt->nmilters > 0;
}

static void
job_macro(struct milter_job *j, const char *name, const char *value)
{
	if (j->nmacros == MILTER_JOB_MACROS)
		return;
	j->mname[j->nmacros] = name;
	str_copy(j->mvalue[j->nmacros], value != NULL ? value : "", MILTER_JOB_VALUE);
	j->nmacros++;
}

/* The domain of addr ("" for none). */
static const char *
addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* The {mail_mailer}/{rcpt_mailer} of addr: "local" for our domains and
 * for an address literal of our own, else "smtp". */
static const char *
milter_mailer(const struct smtp_session *s, const char *addr)
{
	const char *d = addr_domain(addr);

	return config_is_local_domain(s->cfg, d) ||
	    ip_literal_in(d, s->rt->own_addrs, s->rt->nown_addrs) ? "local" : "smtp";
}

static void
milter_job_free(struct milter_job *j)
{
	for (size_t i = 0; i < j->nrefused; i++)
		free(j->refused[i]);
	free(j->refused);
	free(j->head);
	free(j->tail);
	buf_free(&j->rec);
	milter_chain_free(&j->chain);
	runtime_unref(&j->rt);
	free(j);
}

/* What waited for this event: the ABORT, the refused recipients, the
 * macros of the stage. */
static void
milter_job_before(struct milter_job *j)
{
	if (j->abort)
		milter_chain_abort(j->chain);
	for (size_t i = 0; i < j->nrefused; i++)
		milter_chain_rcpt_rejected(j->chain, j->refused[i], NULL);
	for (size_t i = 0; i < j->nmacros; i++)
		(void)milter_chain_macro(j->chain, j->mname[i], j->mvalue[i]);
}

/* The message to the milters: record 0, the staged records from the
 * queue (one short read transaction each), the rest; then the end of
 * body. done: the call before is over (always, in blocking mode).
 * Returns 1 when the end of body's verdict is in j->v (and its changes
 * in j->mods), 0 when a milter's reply is awaited. */
static int
milter_message_go(struct milter_job *j, struct milter_chain *c, int done)
{
	int st;

	while (done) {
		if (j->mpart == MP_DONE) {
			j->mods = milter_chain_mods(c);
			return 1;
		}
		if (j->mpart < MP_EOM && j->mpart > MP_HEAD &&
		    j->v.action != MILTER_CONTINUE)
			j->mpart = MP_EOM;	/* decided, or no milter wants more */
		switch (j->mpart) {
		case MP_HEAD:
			j->mpart = j->staged > 0 ? MP_STAGED : MP_TAIL;
			j->mrec = 1;
			done = milter_chain_message(c, j->head, j->head_len, &j->v);
			break;
		case MP_STAGED:
			if (j->rec.max == 0)
				buf_init(&j->rec, RECORD_CHUNK_MAX);
			buf_reset(&j->rec);
			if ((st = store_stage_read(j->store, j->id, j->mrec,
			    &j->rec)) != STORE_OK) {
				/* The records went (the message was given up
				 * meanwhile) or cannot be read: the milters
				 * never see half of it. */
				milter_chain_abort(c);
				memset(&j->v, 0, sizeof j->v);
				j->v.action = MILTER_TEMPFAIL;
				str_copy(j->v.reply,
				    "451 4.3.0 Error: queue file read error",
				    sizeof j->v.reply);
				log_warn("milter: staged record of a message "
				    "unreadable: %s", store_status_text(st));
				j->mpart = MP_DONE;
				j->mods = NULL;
				return 1;
			}
			if (++j->mrec > j->staged)
				j->mpart = MP_TAIL;
			done = milter_chain_message(c, j->rec.data, j->rec.len, &j->v);
			break;
		case MP_TAIL:
			j->mpart = MP_EOM;
			if (j->tail_len > 0)
				done = milter_chain_message(c, j->tail, j->tail_len,
				    &j->v);
			break;
		case MP_EOM:
			j->mpart = MP_DONE;
			done = milter_chain_eom(c, &j->v);
			break;
		case MP_DONE:
			break;
		}
	}
	return 0;
}

/* ---- on the pool thread ---- */

static void
milter_job_run(struct offloop_job *job)
{
	struct milter_job *j = (struct milter_job *)(void *)job;
	struct milter_client cl;

	milter_job_before(j);
	switch (j->stage) {
	case MSTEP_HELO:
		if (j->connect) {
			cl.name = j->client_name[0] ? j->client_name : NULL;
			cl.addr = j->client_addr;
			cl.port = j->client_port;
			cl.family = j->family;
			milter_chain_connect(j->chain, &cl, &j->v);
			if (j->v.action != MILTER_CONTINUE && j->v.action != MILTER_ACCEPT)
				break;
		}
		milter_chain_helo(j->chain, j->helo, &j->v);
		break;
	case MSTEP_MAIL:
		milter_chain_mail(j->chain, j->addr, j->params, &j->v);
		break;
	case MSTEP_RCPT:
		milter_chain_rcpt(j->chain, j->rcpt.addr, j->params, &j->v);
		break;
	case MSTEP_DATA:
		milter_chain_data(j->chain, &j->v);
		break;
	case MSTEP_UNKNOWN:
		milter_chain_unknown(j->chain, j->line, &j->v);
		break;
	case MSTEP_EOM:
		(void)milter_message_go(j, j->chain, 1);
		break;
	}
}

/* ---- on the worker ---- */

static void milter_act(struct smtp_session *s, struct milter_job *j);

static int
milter_job_finish(struct smtp_session *s, struct session_job *sj)
{
	struct milter_job *j = (struct milter_job *)(void *)sj;

	if (s->milter != NULL && s->milter->chain == NULL) {
		s->milter->chain = j->chain;
		j->chain = NULL;
	}
	if (s->io.fd < 0)
		return -1;
	if (s->phase != PH_MILTER)
		return session_continue(s);
	if (j->sj.base.cancelled) {
		s->phase = PH_CLOSING;
		session_reply(s, "421 4.3.2 Server shutting down");
		return session_continue(s);
	}
	s->phase = PH_COMMAND;
	session_set_deadline(s);
	milter_act(s, j);
	return session_continue(s);
}

/* A job whose session ended while it ran: its chain is closed here
 * (milter_chain_free never waits). */
static void
milter_job_release(struct session_job *sj)
{
	milter_job_free((struct milter_job *)(void *)sj);
}

static struct milter_job *
milter_job_new(struct smtp_session *s, enum milter_step stage)
{
	struct milter_job *j = xcalloc(1, sizeof *j);

	j->rt = runtime_ref(s->rt);
	j->stage = stage;
	j->pool = worker_pools(s->w)->filters;
	j->sj.base.run = milter_job_run;
	j->sj.finish = milter_job_finish;
	j->sj.release = milter_job_release;
	return j;
}

/* ---- on the worker's event loop ---- */

/* Puts the socket of the milter the chain waits for in the worker's
 * epoll (taking out the one of the milter before, if it was another). */
static void
milter_loop_watch(struct smtp_session *s)
{
	struct session_milter *sm = s->milter;
	int fd = -1;
	int64_t deadline = 0;
	enum milter_wait wt = milter_chain_waiting(sm->chain, &fd, &deadline);
	uint32_t events = wt == MILTER_WAIT_WRITE ? EPOLLOUT : EPOLLIN;

	if (sm->watch_fd >= 0 && sm->watch_fd != fd)
		worker_watch_aux(s->w, s, sm->watch_fd, 0);
	if (sm->watch_fd != fd || sm->watch_events != events)
		worker_watch_aux(s->w, s, fd, events);
	sm->watch_fd = fd;
	sm->watch_events = events;
	sm->loop_deadline = deadline;
	worker_timer_hint(s->w, deadline);
}

/* Takes the milter's socket out of the epoll. It may have been closed on
 * this thread meanwhile (the milter failed): then it left by itself, and
 * its number is not in this epoll under anything else yet (only this
 * thread adds to it). */
static void
milter_loop_unwatch(struct smtp_session *s)
{
	struct session_milter *sm = s->milter;

	if (sm->watch_fd >= 0)
		worker_watch_aux(s->w, s, sm->watch_fd, 0);
	sm->watch_fd = -1;
	sm->watch_events = 0;
}

/* The stage's verdict is in j->v: carried out as a job's would be. */
static int
milter_loop_done(struct smtp_session *s)
{
	struct session_milter *sm = s->milter;
	struct milter_job *j = sm->loop;

	sm->loop = NULL;
	milter_loop_unwatch(s);
	milter_chain_set_nonblocking(sm->chain, 0);
	if (s->phase == PH_MILTER) {
		s->phase = PH_COMMAND;
		session_set_deadline(s);
		milter_act(s, j);
	}
	milter_job_free(j);
	return session_continue(s);
}

/* An event of stage j is over (done): HELO follows CONNECT when the
 * CONNECT verdict lets it. Returns 1 when the stage's verdict is in j->v,
 * 0 when a reply is awaited. */
static int
milter_loop_next(struct smtp_session *s, struct milter_job *j, int done)
{
	if (j->stage == MSTEP_EOM)
		return milter_message_go(j, s->milter->chain, done);
	if (!done || !j->helo_next)
		return done;
	j->helo_next = 0;
	if (j->v.action != MILTER_CONTINUE && j->v.action != MILTER_ACCEPT)
		return 1;
	return milter_chain_helo(s->milter->chain, j->helo, &j->v);
}

/* Asks the chain for stage j from the loop: the verdict is carried out
 * at once when no reply is awaited, else once it arrives (PH_MILTER). */
static void
milter_loop_start(struct smtp_session *s, struct milter_job *j)
{
	struct session_milter *sm = s->milter;
	struct milter_client cl;
	int done = 1;

	j->chain = sm->chain;
	j->abort = sm->abort;
	sm->abort = 0;
	milter_chain_set_nonblocking(j->chain, 1);
	milter_job_before(j);
	switch (j->stage) {
	case MSTEP_HELO:
		if (!j->connect) {
			done = milter_chain_helo(j->chain, j->helo, &j->v);
			break;
		}
		cl.name = j->client_name[0] ? j->client_name : NULL;
		cl.addr = j->client_addr;
		cl.port = j->client_port;
		cl.family = j->family;
		j->helo_next = 1;
		done = milter_loop_next(s, j, milter_chain_connect(j->chain, &cl, &j->v));
		break;
	case MSTEP_MAIL:
		done = milter_chain_mail(j->chain, j->addr, j->params, &j->v);
		break;
	case MSTEP_RCPT:
		done = milter_chain_rcpt(j->chain, j->rcpt.addr, j->params, &j->v);
		break;
	case MSTEP_DATA:
		done = milter_chain_data(j->chain, &j->v);
		break;
	case MSTEP_EOM:
		done = milter_message_go(j, j->chain, 1);
		break;
	case MSTEP_UNKNOWN:
		break;
	}
	j->chain = NULL;
	if (done) {
		milter_chain_set_nonblocking(sm->chain, 0);
		milter_act(s, j);
		milter_job_free(j);
		return;
	}
	sm->loop = j;
	s->phase = PH_MILTER;
	milter_loop_watch(s);
}

int
session_milter_event(struct smtp_session *s)
{
	struct session_milter *sm = s->milter;

	if (sm == NULL || sm->loop == NULL)
		return 0;
	if (!milter_loop_next(s, sm->loop, milter_chain_step(sm->chain,
	    &sm->loop->v))) {
		milter_loop_watch(s);
		return 0;
	}
	return milter_loop_done(s);
}

int
session_milter_expired(const struct smtp_session *s, int64_t now)
{
	const struct session_milter *sm = s->milter;

	return sm != NULL && sm->loop != NULL && now >= sm->loop_deadline;
}

int
session_milter_expire(struct smtp_session *s)
{
	struct session_milter *sm = s->milter;

	if (!milter_loop_next(s, sm->loop, milter_chain_expire(sm->chain,
	    &sm->loop->v))) {
		milter_loop_watch(s);
		return 0;
	}
	return milter_loop_done(s);
}

/* ---- handing a stage over ---- */

/* Asks the milters for stage j with what waited for it: from the loop
 * (every stage but unknown commands, when no refused recipient waits to
 * be told), else as a job on the pool, given the chain. Returns 0 (the verdict is carried
 * out, or the session waits in PH_MILTER), or -1 when the pool is full
 * (j freed, the chain stays the session's). */
static int
milter_submit(struct smtp_session *s, struct milter_job *j)
{
	struct session_milter *sm = s->milter;

	if (j->stage != MSTEP_UNKNOWN && sm->nrefused == 0) {
		milter_loop_start(s, j);
		return 0;
	}
	j->chain = sm->chain;
	j->abort = sm->abort;
	if (sm->nrefused > 0) {
		j->refused = xcalloc(sm->nrefused, sizeof *j->refused);
		memcpy(j->refused, sm->refused, sm->nrefused * sizeof *j->refused);
		j->nrefused = sm->nrefused;
	}
	if (session_job_submit(s, j->pool, &j->sj) != 0) {
		j->chain = NULL;
		free(j->refused);
		j->refused = NULL;
		j->nrefused = 0;
		milter_job_free(j);
		log_warn("milter: filter pool busy; [%s] is answered %s", s->peer_ip,
		    MILTER_BUSY_REPLY);
		return -1;
	}
	sm->chain = NULL;
	sm->abort = 0;
	sm->nrefused = 0;
	s->phase = PH_MILTER;
	return 0;
}

/* The client's name (its lookup may end after CONNECT), the TLS and AUTH
 * macros, as they stand. */
static void
milter_session_macros(struct smtp_session *s, struct milter_job *j)
{
	char bits[16], under[512], tv[32];

	if (s->client_name[0] != '\0')
		job_macro(j, "{client_name}", s->client_name);
	snprintf(under, sizeof under, "%s [%s]",
	    s->client_name[0] ? s->client_name : "unknown", s->peer_ip);
	job_macro(j, "_", under);

	if (s->io.tls_active && s->io.tls != NULL) {
		gnutls_session_t t = s->io.tls;
		gnutls_cipher_algorithm_t c = gnutls_cipher_get(t);
		const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(t));
		const char *name = gnutls_cipher_get_name(c);

		/* "TLSv1.3", as Postfix and Sendmail name it */
		if (v != NULL && strncmp(v, "TLS", 3) == 0)
			snprintf(tv, sizeof tv, "TLSv%s", v + 3);
		else
			str_copy(tv, v != NULL ? v : "", sizeof tv);
		job_macro(j, "{tls_version}", tv);
		job_macro(j, "{cipher}", name != NULL ? name : "");
		snprintf(bits, sizeof bits, "%zu", gnutls_cipher_get_key_size(c) * 8);
		job_macro(j, "{cipher_bits}", bits);
	}
	if (s->auth_user[0] != '\0') {
		job_macro(j, "{auth_type}", s->auth_mech != NULL ? s->auth_mech : "");
		job_macro(j, "{auth_authen}", s->auth_user);
	}
}

/* Adds the ESMTP parameter name=v (v "" : the name alone), as a client
 * writes it: enc (ENVID, AUTH, ORCPT) encodes v as xtext, after its first
 * skip bytes (ORCPT's "type;"). A parameter that does not fit is left out. */
static void
milter_param(struct milter_job *j, size_t *n, const char *name, const char *v,
    int enc, size_t skip)
{
	char *out = j->pbuf + j->pused;
	size_t room = sizeof j->pbuf - j->pused;
	int len;

	if (*n == MILTER_JOB_PARAMS)
		return;
	len = snprintf(out, room, "%s%s%.*s", name, v[0] ? "=" : "",
	    (int)(enc ? skip : strlen(v)), v);
	if (len < 0 || (size_t)len >= room ||
	    (enc && xtext_encode(v + skip, out + len, room - (size_t)len) < 0))
		return;
	j->pused += strlen(out) + 1;
	j->params[*n] = out;
	(*n)++;
	j->params[*n] = NULL;
}

int
session_milter_refusal(struct smtp_session *s, const char **reply_r)
{
	if (s->milter == NULL || s->milter->refusal[0] == '\0')
		return 0;
	*reply_r = s->milter->refusal;
	return 1;
}

int
session_milter_helo(struct smtp_session *s)
{
	struct session_milter *sm;
	struct milter_job *j;
	int was;

	if (!milter_on(s))
		return 0;
	sm = milter_get(s);
	j = milter_job_new(s, MSTEP_HELO);
	j->connect = !sm->connected;
	str_copy(j->client_name, s->client_name, sizeof j->client_name);
	str_copy(j->client_addr, s->peer_ip, sizeof j->client_addr);
	j->client_port = sockaddr_port((const struct sockaddr *)&s->peer);
	j->family = s->peer.ss_family;
	str_copy(j->helo, s->helo, sizeof j->helo);
	milter_session_macros(s, j);
	was = sm->connected;
	sm->connected = 1;	/* (the verdict may be carried out at once) */
	if (milter_submit(s, j) != 0) {
		sm->connected = was;
		session_reply(s, MILTER_BUSY_REPLY);
		return 1;
	}
	return 1;
}

int
session_milter_mail(struct smtp_session *s)
{
	struct milter_job *j;
	size_t n = 0;
	char size[24];

	if (!milter_on(s))
		return 0;
	milter_get(s);
	j = milter_job_new(s, MSTEP_MAIL);
	str_copy(j->addr, s->mail.addr, sizeof j->addr);
	if (s->mail.size > 0) {
		snprintf(size, sizeof size, "%llu", (unsigned long long)s->mail.size);
		milter_param(j, &n, "SIZE", size, 0, 0);
	}
	if (s->mail.body != SMTP_BODY_UNSET)
		milter_param(j, &n, "BODY", s->mail.body == SMTP_BODY_8BITMIME ?
		    "8BITMIME" : "7BIT", 0, 0);
	if (s->mail.smtputf8)
		milter_param(j, &n, "SMTPUTF8", "", 0, 0);
	if (s->mail.requiretls)
		milter_param(j, &n, "REQUIRETLS", "", 0, 0);
	if (s->mail.ret != DSN_RET_UNSET)
		milter_param(j, &n, "RET", s->mail.ret == DSN_RET_FULL ? "FULL" : "HDRS",
		    0, 0);
	if (s->mail.envid[0] != '\0')
		milter_param(j, &n, "ENVID", s->mail.envid, 1, 0);
	if (s->mail.auth[0] != '\0')
		milter_param(j, &n, "AUTH", s->mail.auth, 1, 0);
	milter_session_macros(s, j);
	job_macro(j, "{mail_mailer}", milter_mailer(s, s->mail.addr));
	job_macro(j, "{mail_host}", addr_domain(s->mail.addr));
	if (milter_submit(s, j) != 0) {
		session_reply(s, MILTER_BUSY_REPLY);
		memset(&s->mail, 0, sizeof s->mail);
	}
	return 1;
}

int
session_milter_rcpt(struct smtp_session *s, const struct smtp_rcpt_args *r)
{
	struct milter_job *j;
	size_t n = 0;
	char notify[48] = "";

	if (!milter_on(s))
		return 0;
	milter_get(s);
	j = milter_job_new(s, MSTEP_RCPT);
	j->rcpt = *r;
	if (r->notify & DSN_NOTIFY_NEVER)
		str_copy(notify, "NEVER", sizeof notify);
	else if (r->notify != 0)
		snprintf(notify, sizeof notify, "%s%s%s",
		    r->notify & DSN_NOTIFY_SUCCESS ? "SUCCESS," : "",
		    r->notify & DSN_NOTIFY_FAILURE ? "FAILURE," : "",
		    r->notify & DSN_NOTIFY_DELAY ? "DELAY," : "");
	if (notify[0] != '\0') {
		size_t l = strlen(notify);
		if (notify[l - 1] == ',')
			notify[l - 1] = '\0';
		milter_param(j, &n, "NOTIFY", notify, 0, 0);
	}
	if (r->orcpt[0] != '\0' && strchr(r->orcpt, ';') != NULL)
		milter_param(j, &n, "ORCPT", r->orcpt, 1,
		    (size_t)(strchr(r->orcpt, ';') - r->orcpt) + 1);
	job_macro(j, "{rcpt_mailer}", milter_mailer(s, r->addr));
	job_macro(j, "{rcpt_host}", addr_domain(r->addr));
	milter_session_macros(s, j);
	if (milter_submit(s, j) != 0) {
		s->milter->own_refusal = 1;
		session_rcpt_refuse(s, r->addr, MILTER_BUSY_REPLY, 0);
		s->milter->own_refusal = 0;
	}
	return 1;
}

void
session_milter_rcpt_refused(struct smtp_session *s, const char *addr)
{
	struct session_milter *sm = s->milter;

	if (sm == NULL || sm->own_refusal || !sm->connected ||
	    sm->nrefused == MILTER_REFUSED_MAX)
		return;
	sm->refused[sm->nrefused++] = xstrdup(addr);
}

int
session_milter_data(struct smtp_session *s)
{
	struct milter_job *j;
	char id[QUEUE_ID_LEN + 1];

	if (!milter_on(s))
		return 0;
	milter_get(s);
	j = milter_job_new(s, MSTEP_DATA);
	job_macro(j, "i", queue_id_format(s->qid, id, sizeof id));
	milter_session_macros(s, j);
	if (milter_submit(s, j) != 0) {
		session_data_decided(s, MILTER_BUSY_REPLY);
		return 1;
	}
	return 1;
}

int
session_milter_unknown(struct smtp_session *s, const char *line)
{
	struct milter_job *j;

	if (!milter_on(s) || s->milter == NULL || !s->milter->connected)
		return 0;
	j = milter_job_new(s, MSTEP_UNKNOWN);
	str_copy(j->line, line, sizeof j->line);
	if (milter_submit(s, j) != 0)
		return 0;
	return 1;
}

/* The end of data once every staged record is in the queue. */
static void
milter_eom_submit(struct smtp_session *s)
{
	struct milter_job *j = milter_job_new(s, MSTEP_EOM);
	struct smtp_message_parts p;

	s->milter->wait_staged = 0;
	smtp_message_peek(s->msg, &p);
	j->head = xmalloc(p.head_len ? p.head_len : 1);
	memcpy(j->head, p.head, p.head_len);
	j->head_len = p.head_len;
	if (p.tail_len > 0) {
		j->tail = xmalloc(p.tail_len);
		memcpy(j->tail, p.tail, p.tail_len);
		j->tail_len = p.tail_len;
	}
	j->staged = p.staged;
	j->id = smtp_message_id(s->msg);
	j->store = worker_pools(s->w)->store;
	if (milter_submit(s, j) != 0)
		session_message_refused(s, MILTER_BUSY_REPLY);
}

/* A discarded message: the usual answer, nothing queued. */
static void
milter_discard(struct smtp_session *s, const char *who)
{
	char id[QUEUE_ID_LEN + 1];

	queue_id_format(s->qid, id, sizeof id);
	log_info("%s: from=<%s>, nrcpt=%zu: discarded by milter %s", id, s->mail.addr,
	    s->nrcpts, who != NULL ? who : "");
	session_reply(s, "250 2.0.0 Ok: queued as %s", id);
	session_txn_reset(s);
	session_set_deadline(s);
}

int
session_milter_end_message(struct smtp_session *s)
{
	struct session_milter *sm = s->milter;

	if (!milter_on(s) || sm == NULL || !sm->connected)
		return 0;
	if (sm->discard) {
		milter_discard(s, "(earlier)");
		return 1;
	}
	if (smtp_message_status(s->msg) != COMMIT_OK)
		return 0;	/* the commit path answers for the record */
	if (smtp_message_inflight(s->msg) > 0) {
		sm->wait_staged = 1;
		s->phase = PH_MILTER;
		return 1;
	}
	milter_eom_submit(s);
	return 1;
}

int
session_milter_staged(struct smtp_session *s)
{
	struct session_milter *sm = s->milter;

	if (s->phase != PH_MILTER || sm == NULL || !sm->wait_staged)
		return 0;
	if (smtp_message_inflight(s->msg) > 0)
		return 1;
	s->phase = PH_COMMAND;
	if (smtp_message_status(s->msg) != COMMIT_OK) {
		sm->wait_staged = 0;
		session_commit_now(s);
		return 1;
	}
	milter_eom_submit(s);
	return 1;
}

/* Everything the milters changed, before the commit. */
static void
milter_apply(struct smtp_session *s, const struct milter_mods *m)
{
	switch (session_milter_changes(s, m, &s->milter->quarantine)) {
	case 0:
		session_commit_now(s);
		break;
	case 1:
		milter_discard(s, "(every recipient deleted)");
		break;
	default:
		break;		/* refused, and answered */
	}
}

int
session_milter_hold(struct smtp_session *s)
{
	struct session_milter *sm = s->milter;
	char why[FILTER_REPLY_MAX + 64], id[QUEUE_ID_LEN + 1];

	if (sm == NULL || sm->quarantine == NULL)
		return 0;
	snprintf(why, sizeof why, "milter quarantine: %s", sm->quarantine);
	log_info("%s: held: %s", queue_id_format(s->qid, id, sizeof id), why);
	if (s->hold_why == NULL)
		s->hold_why = xstrdup(why);
	return 1;
}

static const char *
milter_stage_name(enum milter_step st)
{
	static const char *const names[] = { "HELO", "MAIL", "RCPT", "DATA",
		"END-OF-MESSAGE", "UNKNOWN" };

	return names[st];
}

/* The chain's verdict on the stage, carried out. */
static void
milter_act(struct smtp_session *s, struct milter_job *j)
{
	struct session_milter *sm = s->milter;
	const struct milter_verdict *v = &j->v;
	const char *who = v->milter != NULL ? v->milter : "";
	int refused = v->action == MILTER_REJECT || v->action == MILTER_TEMPFAIL;

	if (v->action == MILTER_SHUTDOWN) {
		session_reply(s, "%s", v->reply);
		log_info("milter %s: %s from [%s]: %s; closed", who,
		    milter_stage_name(j->stage), s->peer_ip, v->reply);
		session_txn_reset(s);
		s->phase = PH_CLOSING;
		return;
	}
	if (refused)
		log_info("milter %s: %s from [%s]: %s%s", who, milter_stage_name(j->stage),
		    s->peer_ip, v->reply, v->from_default ? " (default_action)" : "");
	switch (j->stage) {
	case MSTEP_HELO:
		if (refused) {
			str_copy(sm->refusal, v->reply, sizeof sm->refusal);
			session_reply(s, "%s", v->reply);
			return;
		}
		session_helo_reply(s);
		return;
	case MSTEP_MAIL:
		if (refused) {
			session_reply(s, "%s", v->reply);
			queue_stats_add_rejected(1);
			metrics_inc_label(M_REJECTIONS, MR_POLICY);
			memset(&s->mail, 0, sizeof s->mail);
			return;
		}
		if (v->action == MILTER_DISCARD)
			sm->discard = 1;
		session_mail_begin(s);
		return;
	case MSTEP_RCPT:
		if (refused) {
			sm->own_refusal = 1;
			session_rcpt_refuse_reason(s, j->rcpt.addr, v->reply, v->reply[0] == '5',
			    MR_POLICY);
			sm->own_refusal = 0;
			return;
		}
		if (v->action == MILTER_DISCARD)
			sm->discard = 1;
		session_rcpt_take(s, &j->rcpt);
		return;
	case MSTEP_DATA:
		if (v->action == MILTER_DISCARD)
			sm->discard = 1;
		if (refused)
			str_copy(sm->reply, v->reply, sizeof sm->reply);
		session_data_decided(s, refused ? sm->reply : NULL);
		return;
	case MSTEP_EOM:
		if (refused) {
			session_message_refused_reason(s, v->reply, MR_POLICY);
			return;
		}
		if (v->action == MILTER_DISCARD) {
			milter_discard(s, who);
			return;
		}
		milter_apply(s, j->mods);
		return;
	case MSTEP_UNKNOWN:
		session_reply(s, "%s", refused ? v->reply :
		    "500 5.5.2 Error: command not recognized");
		session_error(s);
		return;
	}
}

void
session_milter_txn_reset(struct smtp_session *s)
{
	struct session_milter *sm = s->milter;

	if (sm == NULL)
		return;
	sm->discard = 0;
	sm->wait_staged = 0;
	sm->abort = sm->connected;
	free(sm->quarantine);
	sm->quarantine = NULL;
	for (size_t i = 0; i < sm->nrefused; i++)
		free(sm->refused[i]);
	sm->nrefused = 0;
}

void
session_milter_free(struct smtp_session *s)
{
	struct session_milter *sm = s->milter;

	if (sm == NULL)
		return;
	/* A stage still awaited: its socket leaves the epoll as it closes. */
	if (sm->loop != NULL)
		milter_job_free(sm->loop);
	session_milter_txn_reset(s);
	milter_chain_free(&sm->chain);
	free(sm);
	s->milter = NULL;
}
