/*
 * milter: one filter connection, its state and its events (see milter.h).
 * Learned from Postfix's src/milter/milter8.c (states, default actions,
 * which replies each event allows) and Sendmail's libmilter engine.c
 * (which commands move its state machine where).
 */
#include "filter/milter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

/* Default macro lists per stage, as Postfix sends them, plus the client's
 * address, name and port at connect (rspamd and OpenDKIM read them). */
static const char *const milter_default_macros[MILTER_STAGES] = {
	[MILTER_STAGE_CONNECT] = "j {daemon_name} {daemon_addr} v _ "
	    "{client_addr} {client_name} {client_port}",
	[MILTER_STAGE_HELO] = "{tls_version} {cipher} {cipher_bits} "
	    "{cert_subject} {cert_issuer}",
	[MILTER_STAGE_MAIL] = "i {auth_type} {auth_authen} {auth_author} "
	    "{mail_addr} {mail_host} {mail_mailer}",
	[MILTER_STAGE_RCPT] = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
	[MILTER_STAGE_DATA] = "i",
	[MILTER_STAGE_EOM] = "i",
	[MILTER_STAGE_EOH] = "i",
};

static const unsigned char milter_stage_cmd[MILTER_STAGES] = {
	SMFIC_CONNECT, SMFIC_HELO, SMFIC_MAIL, SMFIC_RCPT, SMFIC_DATA,
	SMFIC_BODYEOB, SMFIC_EOH,
};

#define REPLY_REJECT	"550 5.7.1 Command rejected"
#define REPLY_REJECT_CONTENT	"550 5.7.1 Message content rejected"
#define REPLY_TEMPFAIL	"451 4.7.1 Service unavailable - try again later"
#define REPLY_SHUTDOWN	"421 4.7.0 Service unavailable - closing connection"
#define REPLY_DEF_TEMP	"451 4.7.1 Service unavailable - try again later"
#define REPLY_DEF_REJ	"550 5.7.1 Service unavailable"

/* Postfix's milter8 event masks: steps each protocol version knows. */
#define STEPS_V2 (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | \
	SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH)
#define STEPS_V3 (STEPS_V2 | SMFIP_NOUNKNOWN)
#define STEPS_V4 (STEPS_V3 | SMFIP_NODATA)
#define NOSEND_MASK (STEPS_V4)

/* The input buffer: one whole packet at most, plus what one read adds. */
#define CONN_IN_MAX	(MILTER_PACKET_MAX + 5 + 16384)

/* An exchange under way: m->out still to send, then (want_reply) the
 * replies to ev until a decision. */
enum wait_stage { W_CONNECT, W_OPTNEG, W_EVENT };

struct conn_wait {
	int active;
	enum wait_stage stage;	/* the connect, the negotiation, an event */
	int ev;			/* enum ev */
	int want_reply;
	unsigned timeout_ms;
	int64_t deadline;	/* for the next byte either way */
	int progress;		/* SMFIR_PROGRESS replies so far */
	int body_first;		/* no SMFIR_REPLBODY yet */
	struct milter_mods *mods;	/* EOM: where changes go */
	int eom_open;		/* EOM: its changes are to be kept or dropped
				 * when the exchange ends */
};

enum conn_state {
	CS_FAILED,		/* default action from now on */
	CS_SESSION_DONE,	/* accepted or rejected the session; closed */
	CS_OPENING,		/* connecting, negotiating */
	CS_READY,		/* negotiated, no CONNECT yet */
	CS_SESSION,		/* in the session, no transaction */
	CS_TXN,			/* after MAIL */
	CS_MESSAGE,		/* after DATA */
	CS_MSG_DONE,		/* accepted or discarded this message */
};

struct milter_conn {
	const struct milter_spec *spec;
	size_t index;
	int fd;
	enum conn_state state;
	uint32_t version, actions, steps;
	uint32_t np;		/* events its version lacks (SMFIP_NO* bits) */
	char *lists[MILTER_STAGES];	/* negotiated macro lists, or NULL */
	struct buf out, in;
	int skip_body;		/* answered SMFIR_SKIP to a body chunk */
	int txn_sent;		/* an event of the transaction went out */
	struct milter_result standing;	/* answer when failed or done */
	int nonblocking;	/* events return before their reply */
	struct conn_wait wait;	/* the exchange under way */
};

/* ---- specs and macros ---- */

int
milter_spec_init(struct milter_spec *s, const char *endpoint, char *err,
    size_t errsize)
{
	memset(s, 0, sizeof *s);
	if (filter_endpoint_parse(endpoint, &s->ep, err, errsize) != 0)
		return -1;
	s->default_action = MILTER_DEFAULT_TEMPFAIL;
	s->connect_timeout_ms = MILTER_CONNECT_TIMEOUT_MS;
	s->command_timeout_ms = MILTER_COMMAND_TIMEOUT_MS;
	s->eom_timeout_ms = MILTER_EOM_TIMEOUT_MS;
	return 0;
}

int
milter_default_parse(const char *s, enum milter_default *d)
{
	if (strcasecmp(s, "accept") == 0)
		*d = MILTER_DEFAULT_ACCEPT;
	else if (strcasecmp(s, "tempfail") == 0)
		*d = MILTER_DEFAULT_TEMPFAIL;
	else if (strcasecmp(s, "reject") == 0)
		*d = MILTER_DEFAULT_REJECT;
	else
		return -1;
	return 0;
}

void
milter_macros_init(struct milter_macros *t)
{
	memset(t, 0, sizeof *t);
}

void
milter_macros_free(struct milter_macros *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->names[i]);
		free(t->values[i]);
	}
	t->n = 0;
}

/* The bare name of "{x}" or "x" into out; -1 when empty, too long or not
 * printable. */
static int
macro_bare(const char *name, char *out, size_t outsize)
{
	size_t n = strlen(name);

	if (n >= 2 && name[0] == '{' && name[n - 1] == '}') {
		name++;
		n -= 2;
	}
	if (n == 0 || n >= outsize || n > MILTER_MACRO_NAME_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f ||
		    name[i] == '{' || name[i] == '}')
			return -1;
	memcpy(out, name, n);
	out[n] = '\0';
	return 0;
}

static ssize_t
macros_find(const struct milter_macros *t, const char *bare)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->names[i], bare) == 0)
			return (ssize_t)i;
	return -1;
}

int
milter_macros_set(struct milter_macros *t, const char *name, const char *value)
{
	char bare[MILTER_MACRO_NAME_MAX + 1];
	ssize_t i;
	char *v;

	if (macro_bare(name, bare, sizeof bare) != 0)
		return -1;
	i = macros_find(t, bare);
	if (value == NULL) {
		if (i >= 0) {
			free(t->names[i]);
			free(t->values[i]);
			t->n--;
			t->names[i] = t->names[t->n];
			t->values[i] = t->values[t->n];
		}
		return 0;
	}
	if (strlen(value) > MILTER_MACRO_VALUE_MAX)
		return -1;
	if (i < 0 && t->n >= MILTER_MACROS_MAX)
		return -1;
	v = xstrdup(value);
	for (char *p = v; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	if (i >= 0) {
		free(t->values[i]);
		t->values[i] = v;
	} else {
		t->names[t->n] = xstrdup(bare);
		t->values[t->n] = v;
		t->n++;
	}
	return 0;
}

const char *
milter_macros_get(const struct milter_macros *t, const char *name)
{
	char bare[MILTER_MACRO_NAME_MAX + 1];
	ssize_t i;

	if (macro_bare(name, bare, sizeof bare) != 0)
		return NULL;
	i = macros_find(t, bare);
	return i >= 0 ? t->values[i] : NULL;
}

/* ---- the connection ---- */

static void
set_result(struct milter_result *res, enum milter_action a, const char *reply)
{
	res->action = a;
	res->from_default = 0;
	if (str_copy(res->reply, reply != NULL ? reply : "", sizeof res->reply) != 0)
		res->reply[0] = '\0';
}

static void
conn_closefd(struct milter_conn *m)
{
	if (m->fd >= 0) {
		(void)shutdown(m->fd, SHUT_RDWR);
		close(m->fd);
		m->fd = -1;
	}
	buf_free(&m->in);
	buf_free(&m->out);
}

/* The filter failed: log, close, and answer with the default action from
 * now on. */
static void
conn_fail(struct milter_conn *m, const char *why, struct milter_result *res)
{
	struct milter_result *s = &m->standing;

	log_warn("milter %s: %s", m->spec->ep.text, why);
	conn_closefd(m);
	m->state = CS_FAILED;
	switch (m->spec->default_action) {
	case MILTER_DEFAULT_ACCEPT:
		set_result(s, MILTER_CONTINUE, NULL);
		break;
	case MILTER_DEFAULT_REJECT:
		set_result(s, MILTER_REJECT, REPLY_DEF_REJ);
		break;
	case MILTER_DEFAULT_TEMPFAIL:
		set_result(s, MILTER_TEMPFAIL, REPLY_DEF_TEMP);
		break;
	}
	s->from_default = 1;
	if (res != NULL)
		*res = *s;
}

static void
conn_fail_errno(struct milter_conn *m, const char *what, int e,
    struct milter_result *res)
{
	char why[256], tmp[128];
	const char *es = e == ETIMEDOUT ? "timed out" : strerror_r(e, tmp, sizeof tmp);

	snprintf(why, sizeof why, "%s: %s", what, es);
	conn_fail(m, why, res);
}

/* Tells a filter that is still there that the session is over, if the
 * packet goes out at once: it never waits (a filter that stopped reading
 * sees the close instead). */
static void
conn_quit(struct milter_conn *m)
{
	if (m->fd >= 0 && m->state != CS_FAILED) {
		buf_reset(&m->out);
		(void)milter_encode_simple(&m->out, SMFIC_QUIT);
		(void)filter_write_all(m->fd, m->out.data, m->out.len, time_mono_ms());
	}
}

/* The filter is done with the session (accepted or rejected it): QUIT,
 * close, and answer res from now on. */
static void
conn_session_done(struct milter_conn *m, const struct milter_result *res)
{
	conn_quit(m);
	conn_closefd(m);
	m->state = CS_SESSION_DONE;
	m->standing = *res;
}

/* Reads what has arrived (never waits): 1 some bytes, 0 none yet, -1
 * after conn_fail (end of stream, an error, over the limit). */
static int
conn_fill(struct milter_conn *m, struct milter_result *res)
{
	char chunk[16384];
	ssize_t r;

	do
		r = recv(m->fd, chunk, sizeof chunk, MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (r < 0) {
		conn_fail_errno(m, "read", errno, res);
		return -1;
	}
	if (r == 0) {
		conn_fail(m, m->in.len > 0 ? "connection closed inside a packet" :
		    "connection closed", res);
		return -1;
	}
	if (buf_append(&m->in, chunk, (size_t)r) != 0) {
		conn_fail(m, "input over the packet limit", res);
		return -1;
	}
	return 1;
}

/* Waits until deadline for fd to be ready for events (POLLIN, POLLOUT).
 * 0, or -1 after conn_fail (timed out, or the daemon stops). */
static int
conn_wait_fd(struct milter_conn *m, short events, int64_t deadline,
    struct milter_result *res)
{
	int rc = filter_wait(m->fd, events, deadline);

	if (rc > 0)
		return 0;
	conn_fail_errno(m, m->wait.stage == W_CONNECT ? "connect" :
	    events == POLLIN ? "read" : "write", rc == 0 ? ETIMEDOUT : errno, res);
	return -1;
}

/* The filter's answer to the negotiation: 1 (it is over: ready, or
 * failed). */
static int
conn_optneg_reply(struct milter_conn *m, const struct milter_packet *p,
    size_t used, struct milter_result *res)
{
	struct milter_optneg o;
	const char *why = NULL;

	if (milter_optneg_decode(p, &o, &why) != 0) {
		conn_fail(m, why, res);
		return 1;
	}
	if (o.version < 2 || o.version > MILTER_PROTO_VERSION) {
		char w[80];
		snprintf(w, sizeof w, "protocol version %u not supported",
		    (unsigned)o.version);
		conn_fail(m, w, res);
		return 1;
	}
	if ((o.actions & ~MILTER_ACTIONS_ALL) != 0) {
		conn_fail(m, "asks for actions this server does not offer", res);
		return 1;
	}
	m->version = o.version;
	m->actions = o.actions;
	m->steps = o.steps & MILTER_STEPS_ALL;
	if (m->version < 6) {
		uint32_t known = m->version >= 4 ? STEPS_V4 :
		    m->version == 3 ? STEPS_V3 : STEPS_V2;
		m->steps &= known;
		m->np = NOSEND_MASK & ~known;
	}
	for (int i = 0; i < MILTER_STAGES; i++)
		if (o.macros[i] != NULL && (m->actions & SMFIF_SETSYMLIST))
			m->lists[i] = xstrndup(o.macros[i], 4096);
	buf_consume(&m->in, used);
	m->state = CS_READY;
	log_debug("milter %s: version %u actions 0x%x steps 0x%x",
	    m->spec->ep.text, (unsigned)m->version, (unsigned)m->actions,
	    (unsigned)m->steps);
	return 1;
}

/* The connect is over (the socket is writable): the negotiation starts. */
static void
conn_optneg_begin(struct milter_conn *m)
{
	struct conn_wait *w = &m->wait;

	(void)milter_encode_optneg(&m->out, MILTER_PROTO_VERSION,
	    MILTER_ACTIONS_ALL, MILTER_STEPS_ALL);
	w->stage = W_OPTNEG;
	w->want_reply = 1;
	w->timeout_ms = m->spec->command_timeout_ms;
	w->deadline = time_mono_ms() + w->timeout_ms;
}

static enum milter_wait conn_step(struct milter_conn *m,
    struct milter_result *res);
static void conn_wait_end(struct milter_conn *m);
static void conn_run(struct milter_conn *m, struct milter_result *res);

struct milter_conn *
milter_conn_open(const struct milter_spec *spec, size_t index, int nonblocking,
    struct milter_result *res)
{
	struct milter_conn *m = xcalloc(1, sizeof *m);
	int pending;

	m->spec = spec;
	m->index = index;
	m->nonblocking = nonblocking;
	buf_init(&m->in, CONN_IN_MAX);
	buf_init(&m->out, MILTER_ENCODE_MAX);
	m->state = CS_OPENING;
	set_result(res, MILTER_CONTINUE, NULL);
	m->fd = filter_connect_start(&spec->ep, &pending);
	if (m->fd < 0) {
		conn_fail_errno(m, "connect", errno, res);
		return m;
	}
	m->wait.active = 1;
	m->wait.stage = W_CONNECT;
	m->wait.timeout_ms = spec->connect_timeout_ms;
	m->wait.deadline = time_mono_ms() + spec->connect_timeout_ms;
	if (!pending)
		conn_optneg_begin(m);
	conn_run(m, res);
	return m;
}

void
milter_conn_close(struct milter_conn **mp)
{
	struct milter_conn *m = *mp;

	if (m == NULL)
		return;
	conn_quit(m);
	conn_closefd(m);
	for (int i = 0; i < MILTER_STAGES; i++)
		free(m->lists[i]);
	free(m);
	*mp = NULL;
}

const char *
milter_conn_name(const struct milter_conn *m)
{
	return m->spec->ep.text;
}

int
milter_conn_live(const struct milter_conn *m)
{
	return m->state >= CS_READY;
}

int
milter_conn_in_message(const struct milter_conn *m)
{
	return m->state == CS_TXN || m->state == CS_MESSAGE;
}

int
milter_conn_wants_headers(const struct milter_conn *m)
{
	return m->state == CS_MESSAGE && !(m->steps & SMFIP_NOHDRS);
}

int
milter_conn_wants_body(const struct milter_conn *m)
{
	return m->state == CS_MESSAGE && !(m->steps & SMFIP_NOBODY) &&
	    !m->skip_body;
}

int
milter_conn_leadspc(const struct milter_conn *m)
{
	return (m->steps & SMFIP_HDR_LEADSPC) != 0;
}

void
milter_conn_negotiated(const struct milter_conn *m, uint32_t *version,
    uint32_t *actions, uint32_t *steps)
{
	*version = m->version;
	*actions = m->actions;
	*steps = m->steps;
}

/* Appends the SMFIC_MACRO packet for stage: the names of the filter's list
 * (or the default list) that the table defines. */
static void
conn_add_macros(struct milter_conn *m, const struct milter_macros *t,
    int stage)
{
	const char *names[MILTER_MACROS_MAX], *values[MILTER_MACROS_MAX];
	char spelled[MILTER_MACROS_MAX][MILTER_MACRO_NAME_MAX + 3];
	const char *list = m->lists[stage] != NULL ? m->lists[stage] :
	    milter_default_macros[stage];
	size_t n = 0;

	if (t == NULL)
		return;
	while (*list != '\0' && n < MILTER_MACROS_MAX) {
		char tok[MILTER_MACRO_NAME_MAX + 3], bare[MILTER_MACRO_NAME_MAX + 1];
		size_t len = strcspn(list, " \t,");
		const char *v;

		if (len == 0) {
			list++;
			continue;
		}
		if (len < sizeof tok) {
			memcpy(tok, list, len);
			tok[len] = '\0';
			if (macro_bare(tok, bare, sizeof bare) == 0 &&
			    (v = milter_macros_get(t, bare)) != NULL) {
				/* Sendmail's spelling: braces around long names. */
				if (strlen(bare) == 1)
					snprintf(spelled[n], sizeof spelled[n], "%s", bare);
				else
					snprintf(spelled[n], sizeof spelled[n], "{%s}", bare);
				names[n] = spelled[n];
				values[n] = v;
				n++;
			}
		}
		list += len;
	}
	if (n > 0 && milter_encode_macros(&m->out, milter_stage_cmd[stage],
	    names, values, n) != 0)
		log_warn("milter %s: macros for stage %d too long, not sent",
		    m->spec->ep.text, stage);
}

/* Is event no_flag (SMFIP_NO*; 0 for end of body) to be sent? */
static int
conn_sends(const struct milter_conn *m, uint32_t no_flag)
{
	return (no_flag & (m->steps | m->np)) == 0;
}

/* Event kinds for the reply rules. */
enum ev {
	EV_CONNECT, EV_HELO, EV_MAIL, EV_RCPT, EV_DATA, EV_UNKNOWN,
	EV_HEADER, EV_EOH, EV_BODY, EV_EOM,
};

/* After a message-level decision, libmilter is back in its HELO state:
 * the transaction is over on its side. */
static void
conn_txn_over(struct milter_conn *m, enum conn_state next)
{
	m->txn_sent = 0;
	m->skip_body = 0;
	m->state = next;
}

/* A decision (accept, reject, tempfail, discard, shutdown) for event ev. */
static void
conn_decide(struct milter_conn *m, enum ev ev, enum milter_action a,
    const char *reply, struct milter_result *res)
{
	set_result(res, a, reply);
	if (a == MILTER_SHUTDOWN) {
		conn_session_done(m, res);
		return;
	}
	if (ev == EV_CONNECT || ev == EV_HELO) {
		/* Accept or reject of the whole session: libmilter ends it
		 * and closes its side (Postfix closes too). */
		if (a == MILTER_ACCEPT || a == MILTER_REJECT || a == MILTER_TEMPFAIL)
			conn_session_done(m, res);
		return;
	}
	if (ev == EV_UNKNOWN)
		return;
	if (ev == EV_EOM) {
		conn_txn_over(m, CS_SESSION);
		return;
	}
	if (ev == EV_RCPT && (a == MILTER_REJECT || a == MILTER_TEMPFAIL))
		return;	/* this recipient only; the transaction goes on */
	if (a == MILTER_ACCEPT || a == MILTER_DISCARD)
		conn_txn_over(m, CS_MSG_DONE);
	else
		conn_txn_over(m, CS_SESSION);
}

/* Which SMFIF_* a modification reply needs. */
static uint32_t
mod_action(unsigned char cmd)
{
	switch (cmd) {
	case SMFIR_ADDHEADER: return SMFIF_ADDHDRS;
	case SMFIR_INSHEADER: return SMFIF_ADDHDRS;
	case SMFIR_CHGHEADER: return SMFIF_CHGHDRS;
	case SMFIR_REPLBODY: return SMFIF_CHGBODY;
	case SMFIR_CHGFROM: return SMFIF_CHGFROM;
	case SMFIR_ADDRCPT: return SMFIF_ADDRCPT;
	case SMFIR_ADDRCPT_PAR: return SMFIF_ADDRCPT_PAR;
	case SMFIR_DELRCPT: return SMFIF_DELRCPT;
	case SMFIR_QUARANTINE: return SMFIF_QUARANTINE;
	}
	return 0;
}

/* A modification at end of body. 0, or -1 with why. */
static int
conn_modify(struct milter_conn *m, const struct milter_reply *r,
    struct milter_mods *mods, int *body_first, const char **why)
{
	int lead = milter_conn_leadspc(m);
	uint32_t need = mod_action(r->cmd);

	if ((m->actions & need) == 0) {
		*why = "modification it did not negotiate";
		return -1;
	}
	switch (r->cmd) {
	case SMFIR_ADDHEADER:
		return milter_mods_header(mods, m->index, MILTER_MOD_ADD_HEADER, 0,
		    r->s1, r->s2, lead, why);
	case SMFIR_INSHEADER:
		return milter_mods_header(mods, m->index, MILTER_MOD_INSERT_HEADER,
		    r->index, r->s1, r->s2, lead, why);
	case SMFIR_CHGHEADER:
		/* Sendmail takes index 0 as the first instance. */
		return milter_mods_header(mods, m->index, MILTER_MOD_CHANGE_HEADER,
		    r->index == 0 ? 1 : r->index, r->s1, r->s2, lead, why);
	case SMFIR_REPLBODY: {
		int first = *body_first;
		*body_first = 0;
		return milter_mods_body(mods, m->index, first, r->body,
		    r->body_len, why);
	}
	case SMFIR_CHGFROM:
		return milter_mods_addr(mods, m->index, MILTER_MOD_CHANGE_FROM,
		    r->s1, r->s2, why);
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
		return milter_mods_addr(mods, m->index, MILTER_MOD_ADD_RCPT,
		    r->s1, r->s2, why);
	case SMFIR_DELRCPT:
		return milter_mods_addr(mods, m->index, MILTER_MOD_DELETE_RCPT,
		    r->s1, NULL, why);
	case SMFIR_QUARANTINE:
		return milter_mods_quarantine(mods, m->index, r->s1, why);
	}
	*why = "unexpected reply";
	return -1;
}

/* One reply to event ev (m->wait): 1 when it decides the event (*res
 * filled, or the filter failed), 0 when more replies are to come. */
static int
conn_reply(struct milter_conn *m, const struct milter_packet *p, size_t used,
    struct milter_result *res)
{
	struct conn_wait *w = &m->wait;
	enum ev ev = (enum ev)w->ev;
	struct milter_reply r;
	const char *why = NULL;
	char reply[FILTER_REPLY_MAX + 1];
	int code;

	if (milter_reply_decode(p, &r, &why) != 0) {
		char wh[160];
		snprintf(wh, sizeof wh, "%s (reply 0x%02x)", why, p->cmd);
		conn_fail(m, wh, res);
		return 1;
	}
	switch (r.cmd) {
	case SMFIR_PROGRESS:
		if (++w->progress > MILTER_PROGRESS_MAX) {
			conn_fail(m, "too many progress replies", res);
			return 1;
		}
		w->deadline = time_mono_ms() + w->timeout_ms;
		buf_consume(&m->in, used);
		return 0;
	case SMFIR_CONTINUE:
		buf_consume(&m->in, used);
		if (ev == EV_EOM)
			conn_txn_over(m, CS_SESSION);
		return 1;
	case SMFIR_ACCEPT:
		buf_consume(&m->in, used);
		conn_decide(m, ev, MILTER_ACCEPT, NULL, res);
		return 1;
	case SMFIR_DISCARD:
		buf_consume(&m->in, used);
		if (ev == EV_CONNECT || ev == EV_HELO || ev == EV_UNKNOWN) {
			conn_fail(m, "discard is not allowed here", res);
			return 1;
		}
		conn_decide(m, ev, MILTER_DISCARD, NULL, res);
		return 1;
	case SMFIR_REJECT:
		buf_consume(&m->in, used);
		conn_decide(m, ev, MILTER_REJECT, ev == EV_HEADER || ev == EV_EOH ||
		    ev == EV_BODY || ev == EV_EOM ? REPLY_REJECT_CONTENT : REPLY_REJECT,
		    res);
		return 1;
	case SMFIR_TEMPFAIL:
		buf_consume(&m->in, used);
		conn_decide(m, ev, MILTER_TEMPFAIL, REPLY_TEMPFAIL, res);
		return 1;
	case SMFIR_SHUTDOWN:
	case SMFIR_CONN_FAIL:
		buf_consume(&m->in, used);
		conn_decide(m, ev, MILTER_SHUTDOWN, REPLY_SHUTDOWN, res);
		return 1;
	case SMFIR_REPLYCODE:
		code = filter_reply_check(r.s1, FILTER_REPLY_PERCENT, reply,
		    sizeof reply, &why);
		buf_consume(&m->in, used);
		if (code < 0) {
			char wh[FILTER_REPLY_LINE_MAX];
			snprintf(wh, sizeof wh, "bad reply code: %s", why);
			conn_fail(m, wh, res);
			return 1;
		}
		conn_decide(m, ev, code == 421 ? MILTER_SHUTDOWN :
		    code >= 500 ? MILTER_REJECT : MILTER_TEMPFAIL, reply, res);
		return 1;
	case SMFIR_SKIP:
		buf_consume(&m->in, used);
		if (ev != EV_BODY) {
			conn_fail(m, "skip outside the body", res);
			return 1;
		}
		m->skip_body = 1;
		return 1;
	default:
		if (ev != EV_EOM || w->mods == NULL) {
			char wh[120];
			snprintf(wh, sizeof wh, "%s is not allowed here",
			    milter_cmd_name(r.cmd, 1));
			conn_fail(m, wh, res);
			return 1;
		}
		if (conn_modify(m, &r, w->mods, &w->body_first, &why) != 0) {
			char wh[160];
			snprintf(wh, sizeof wh, "%s: %s", milter_cmd_name(r.cmd, 1), why);
			conn_fail(m, wh, res);
			return 1;
		}
		buf_consume(&m->in, used);
		return 0;
	}
}

/* Moves the exchange under way as far as it goes without waiting: sends
 * what it can of m->out, then decodes the replies that have arrived.
 * Returns MILTER_WAIT_NONE once it is over (*res final), else what it
 * waits for (before m->wait.deadline). */
static enum milter_wait
conn_step(struct milter_conn *m, struct milter_result *res)
{
	struct conn_wait *w = &m->wait;

	if (w->stage == W_CONNECT) {
		struct pollfd p = { .fd = m->fd, .events = POLLOUT };

		if (poll(&p, 1, 0) == 0)
			return MILTER_WAIT_WRITE;
		if (filter_connect_finish(m->fd, m->spec->ep.family) != 0) {
			conn_fail_errno(m, "connect", errno, res);
			conn_wait_end(m);
			return MILTER_WAIT_NONE;
		}
		conn_optneg_begin(m);
	}
	while (m->state != CS_FAILED && m->out.len > 0) {
		ssize_t n = send(m->fd, m->out.data, m->out.len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			buf_consume(&m->out, (size_t)n);
			w->deadline = time_mono_ms() + w->timeout_ms;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return MILTER_WAIT_WRITE;
		} else {
			conn_fail_errno(m, "write", n == 0 ? EPIPE : errno, res);
		}
	}
	while (m->state != CS_FAILED && w->want_reply) {
		struct milter_packet p;
		size_t used;
		const char *why = NULL;
		int rc = milter_packet_decode((const unsigned char *)m->in.data,
		    m->in.len, &used, &p, &why);

		if (rc == MILTER_DECODE_ERROR) {
			conn_fail(m, why, res);
		} else if (rc == MILTER_DECODE_DONE) {
			if (w->stage == W_OPTNEG ? conn_optneg_reply(m, &p, used, res) :
			    conn_reply(m, &p, used, res))
				break;
		} else if ((rc = conn_fill(m, res)) == 0) {
			return MILTER_WAIT_READ;
		}
	}
	conn_wait_end(m);
	return MILTER_WAIT_NONE;
}

/* The end of the end of body: the filter's changes are kept, or dropped
 * when it failed, and its transaction is over. */
static void
conn_eom_end(struct milter_conn *m)
{
	struct conn_wait *w = &m->wait;

	if (!w->eom_open)
		return;
	w->eom_open = 0;
	if (m->state == CS_FAILED)
		milter_mods_rollback(w->mods);
	else
		milter_mods_commit(w->mods);
	if (m->state == CS_MESSAGE)
		conn_txn_over(m, CS_SESSION);
}

/* The exchange under way is over, whichever way it ended. */
static void
conn_wait_end(struct milter_conn *m)
{
	m->wait.active = 0;
	conn_eom_end(m);
}

/*
 * Sends what is in m->out (macros, and the event unless sent == 0), then
 * reads the replies to event ev until a decision, unless the filter said
 * it sends none (nr_flag in its steps). Fills *res; in non-blocking mode
 * it returns as soon as it would wait, with m->wait active.
 */
static void
conn_exchange(struct milter_conn *m, enum ev ev, int sent, uint32_t nr_flag,
    unsigned timeout_ms, struct milter_mods *mods, struct milter_result *res)
{
	struct conn_wait *w = &m->wait;

	set_result(res, MILTER_CONTINUE, NULL);
	w->active = 1;
	w->stage = W_EVENT;
	w->ev = ev;
	w->want_reply = sent && !(nr_flag != 0 && (m->steps & nr_flag) != 0);
	w->timeout_ms = timeout_ms;
	w->deadline = time_mono_ms() + timeout_ms;
	w->progress = 0;
	w->body_first = 1;
	w->mods = mods;
	conn_run(m, res);
}

/* Runs the exchange under way: to its end, or in non-blocking mode until
 * it would wait. */
static void
conn_run(struct milter_conn *m, struct milter_result *res)
{
	enum milter_wait want;

	while ((want = conn_step(m, res)) != MILTER_WAIT_NONE) {
		if (m->nonblocking)
			return;
		if (conn_wait_fd(m, want == MILTER_WAIT_READ ? POLLIN : POLLOUT,
		    m->wait.deadline, res) != 0) {
			conn_wait_end(m);
			return;
		}
	}
}

void
milter_conn_set_nonblocking(struct milter_conn *m, int on)
{
	m->nonblocking = on;
}

enum milter_wait
milter_conn_waiting(const struct milter_conn *m, int *fd_r, int64_t *deadline_r)
{
	if (!m->wait.active)
		return MILTER_WAIT_NONE;
	*fd_r = m->fd;
	*deadline_r = m->wait.deadline;
	return m->wait.stage == W_CONNECT || m->out.len > 0 ? MILTER_WAIT_WRITE :
	    MILTER_WAIT_READ;
}

enum milter_wait
milter_conn_step(struct milter_conn *m, struct milter_result *res)
{
	return m->wait.active ? conn_step(m, res) : MILTER_WAIT_NONE;
}

void
milter_conn_expire(struct milter_conn *m, struct milter_result *res)
{
	if (!m->wait.active)
		return;
	conn_fail_errno(m, m->wait.stage == W_CONNECT ? "connect" :
	    m->out.len > 0 ? "write" : "read", ETIMEDOUT, res);
	conn_wait_end(m);
}

/* The standing answer when the filter is not asked. */
static void
conn_standing(const struct milter_conn *m, struct milter_result *res)
{
	if (m->state == CS_FAILED || m->state == CS_SESSION_DONE)
		*res = m->standing;
	else
		set_result(res, MILTER_CONTINUE, NULL);
}

void
milter_conn_abort(struct milter_conn *m)
{
	if (m->state != CS_TXN && m->state != CS_MESSAGE &&
	    m->state != CS_MSG_DONE)
		return;
	if (m->txn_sent) {
		(void)milter_encode_simple(&m->out, SMFIC_ABORT);
		/* In non-blocking mode it goes out with the next event. */
		if (!m->nonblocking) {
			struct milter_result res;

			conn_exchange(m, EV_UNKNOWN, 0, 0, m->spec->command_timeout_ms,
			    NULL, &res);
			if (m->state == CS_FAILED)
				return;
		}
	}
	conn_txn_over(m, CS_SESSION);
}

/* What sets one event apart from another. */
struct ev_desc {
	enum ev ev;
	int stage;		/* macro stage, or -1: no macros */
	uint32_t no_flag;	/* SMFIP_NO*: the filter does not want it */
	uint32_t nr_flag;	/* SMFIP_NR_*: the filter does not answer it */
	int in_txn;		/* part of a transaction (ABORT ends it) */
	const char *too_long;
};

static const struct ev_desc EVD_CONNECT = { EV_CONNECT, MILTER_STAGE_CONNECT,
	SMFIP_NOCONNECT, SMFIP_NR_CONN, 0, "CONNECT too long" };
static const struct ev_desc EVD_HELO = { EV_HELO, MILTER_STAGE_HELO,
	SMFIP_NOHELO, SMFIP_NR_HELO, 0, "HELO too long" };
static const struct ev_desc EVD_MAIL = { EV_MAIL, MILTER_STAGE_MAIL,
	SMFIP_NOMAIL, SMFIP_NR_MAIL, 1, "MAIL too long" };
static const struct ev_desc EVD_RCPT = { EV_RCPT, MILTER_STAGE_RCPT,
	SMFIP_NORCPT, SMFIP_NR_RCPT, 1, "RCPT too long" };
static const struct ev_desc EVD_DATA = { EV_DATA, MILTER_STAGE_DATA,
	SMFIP_NODATA, SMFIP_NR_DATA, 1, "DATA too long" };
static const struct ev_desc EVD_UNKNOWN = { EV_UNKNOWN, -1,
	SMFIP_NOUNKNOWN, SMFIP_NR_UNKN, 0, "unknown command too long" };
static const struct ev_desc EVD_HEADER = { EV_HEADER, -1,
	SMFIP_NOHDRS, SMFIP_NR_HDR, 1, "header too long" };
static const struct ev_desc EVD_EOH = { EV_EOH, MILTER_STAGE_EOH,
	SMFIP_NOEOH, SMFIP_NR_EOH, 1, "end of headers too long" };
static const struct ev_desc EVD_BODY = { EV_BODY, -1,
	SMFIP_NOBODY, SMFIP_NR_BODY, 1, "body chunk too long" };
static const struct ev_desc EVD_EOM = { EV_EOM, MILTER_STAGE_EOM,
	0, 0, 1, "end of body too long" };

/* Starts event d: the macros of its stage go into m->out (Postfix sends
 * them even when the event itself is not wanted). Returns 1 when the
 * caller is to append the event packet, 0 when the filter does not want
 * the event. */
static int
conn_begin(struct milter_conn *m, const struct milter_macros *t,
    const struct ev_desc *d)
{
	/* m->out may hold an ABORT already (non-blocking mode). */
	if (d->stage >= 0)
		conn_add_macros(m, t, d->stage);
	return conn_sends(m, d->no_flag);
}

/* Ends event d: encoded is the encoder's result when sent (-1: the packet
 * did not fit). Sends and reads the answer into *res. */
static void
conn_end(struct milter_conn *m, const struct ev_desc *d, int sent,
    int encoded, struct milter_mods *mods, struct milter_result *res)
{
	if (sent && encoded != 0) {
		conn_fail(m, d->too_long, res);
		return;
	}
	if (sent && d->in_txn)
		m->txn_sent = 1;
	conn_exchange(m, d->ev, sent, d->nr_flag, d->ev == EV_EOM ?
	    m->spec->eom_timeout_ms : m->spec->command_timeout_ms, mods, res);
}

void
milter_conn_connect(struct milter_conn *m, const struct milter_macros *t,
    const char *host, int family, uint16_t port, const char *addr,
    struct milter_result *res)
{
	char name[300];
	char fam;
	int sent, rc = 0;

	if (m->state != CS_READY) {
		conn_standing(m, res);
		return;
	}
	m->state = CS_SESSION;
	if (host == NULL || host[0] == '\0' || strcmp(host, "unknown") == 0)
		snprintf(name, sizeof name, "[%s]", addr != NULL ? addr : "");
	else
		snprintf(name, sizeof name, "%s", host);
	fam = family == AF_INET ? SMFIA_INET : family == AF_INET6 ? SMFIA_INET6 :
	    family == AF_UNIX ? SMFIA_UNIX : SMFIA_UNKNOWN;
	if ((sent = conn_begin(m, t, &EVD_CONNECT)))
		rc = milter_encode_connect(&m->out, name, fam,
		    fam == SMFIA_UNIX ? 0 : port, addr != NULL ? addr : "");
	conn_end(m, &EVD_CONNECT, sent, rc, NULL, res);
}

/* A new HELO or MAIL ends the transaction in progress. */
static void
conn_leave_txn(struct milter_conn *m)
{
	if (m->state == CS_TXN || m->state == CS_MESSAGE || m->state == CS_MSG_DONE)
		milter_conn_abort(m);
}

void
milter_conn_helo(struct milter_conn *m, const struct milter_macros *t,
    const char *helo, struct milter_result *res)
{
	int sent, rc = 0;

	conn_leave_txn(m);
	if (m->state != CS_SESSION) {
		conn_standing(m, res);
		return;
	}
	if ((sent = conn_begin(m, t, &EVD_HELO)))
		rc = milter_encode_string(&m->out, SMFIC_HELO, helo);
	conn_end(m, &EVD_HELO, sent, rc, NULL, res);
}

void
milter_conn_mail(struct milter_conn *m, const struct milter_macros *t,
    const char *const *argv, struct milter_result *res)
{
	int sent, rc = 0;

	conn_leave_txn(m);
	if (m->state != CS_SESSION) {
		conn_standing(m, res);
		return;
	}
	m->state = CS_TXN;
	if ((sent = conn_begin(m, t, &EVD_MAIL)))
		rc = milter_encode_argv(&m->out, SMFIC_MAIL, argv);
	conn_end(m, &EVD_MAIL, sent, rc, NULL, res);
}

void
milter_conn_rcpt(struct milter_conn *m, const struct milter_macros *t,
    const char *const *argv, struct milter_result *res)
{
	int sent, rc = 0;

	if (m->state != CS_TXN) {
		conn_standing(m, res);
		return;
	}
	if ((sent = conn_begin(m, t, &EVD_RCPT)))
		rc = milter_encode_argv(&m->out, SMFIC_RCPT, argv);
	conn_end(m, &EVD_RCPT, sent, rc, NULL, res);
}

void
milter_conn_rcpt_rejected(struct milter_conn *m, const struct milter_macros *t,
    const char *const *argv)
{
	struct milter_result res;
	int nonblocking = m->nonblocking;

	if (m->state != CS_TXN || !(m->steps & SMFIP_RCPT_REJ))
		return;
	/* Its answer about a recipient already refused changes nothing
	 * for that recipient; its state moves as libmilter's does. It is
	 * waited for here, in either mode. */
	m->nonblocking = 0;
	milter_conn_rcpt(m, t, argv, &res);
	m->nonblocking = nonblocking;
}

void
milter_conn_data(struct milter_conn *m, const struct milter_macros *t,
    struct milter_result *res)
{
	int sent, rc = 0;

	if (m->state != CS_TXN) {
		conn_standing(m, res);
		return;
	}
	m->state = CS_MESSAGE;
	if ((sent = conn_begin(m, t, &EVD_DATA)))
		rc = milter_encode_simple(&m->out, SMFIC_DATA);
	conn_end(m, &EVD_DATA, sent, rc, NULL, res);
}

void
milter_conn_unknown(struct milter_conn *m, const struct milter_macros *t,
    const char *line, struct milter_result *res)
{
	int sent, rc = 0;

	if (m->state != CS_SESSION && m->state != CS_TXN) {
		conn_standing(m, res);
		return;
	}
	/* libmilter keeps no macros for unknown commands. */
	(void)t;
	if ((sent = conn_begin(m, NULL, &EVD_UNKNOWN)))
		rc = milter_encode_string(&m->out, SMFIC_UNKNOWN, line);
	conn_end(m, &EVD_UNKNOWN, sent, rc, NULL, res);
}

void
milter_conn_header(struct milter_conn *m, const struct milter_macros *t,
    const char *name, const char *value, struct milter_result *res)
{
	int sent, rc = 0;

	if (!milter_conn_wants_headers(m)) {
		conn_standing(m, res);
		return;
	}
	/* Sendmail drops the one space after the colon. */
	if (!milter_conn_leadspc(m) && value[0] == ' ')
		value++;
	if ((sent = conn_begin(m, t, &EVD_HEADER)))
		rc = milter_encode_header(&m->out, name, value);
	conn_end(m, &EVD_HEADER, sent, rc, NULL, res);
}

void
milter_conn_eoh(struct milter_conn *m, const struct milter_macros *t,
    struct milter_result *res)
{
	int sent, rc = 0;

	if (m->state != CS_MESSAGE) {
		conn_standing(m, res);
		return;
	}
	if ((sent = conn_begin(m, t, &EVD_EOH)))
		rc = milter_encode_simple(&m->out, SMFIC_EOH);
	conn_end(m, &EVD_EOH, sent, rc, NULL, res);
}

void
milter_conn_body(struct milter_conn *m, const void *data, size_t len,
    struct milter_result *res)
{
	int sent, rc = 0;

	if (!milter_conn_wants_body(m) || len == 0) {
		conn_standing(m, res);
		return;
	}
	if ((sent = conn_begin(m, NULL, &EVD_BODY)))
		rc = milter_encode_body(&m->out, data, len);
	conn_end(m, &EVD_BODY, sent, rc, NULL, res);
}

void
milter_conn_eom(struct milter_conn *m, const struct milter_macros *t,
    struct milter_mods *mods, struct milter_result *res)
{
	int sent, rc = 0;

	if (m->state != CS_MESSAGE && m->state != CS_TXN) {
		conn_standing(m, res);
		return;
	}
	m->state = CS_MESSAGE;
	if ((sent = conn_begin(m, t, &EVD_EOM)))
		rc = milter_encode_simple(&m->out, SMFIC_BODYEOB);
	m->wait.mods = mods;
	m->wait.eom_open = 1;
	conn_end(m, &EVD_EOM, sent, rc, mods, res);
	if (!m->wait.active)
		conn_eom_end(m);	/* over already (or never sent) */
}
