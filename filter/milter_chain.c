/*
 * milter_chain: the milters of one session in order, the split of the
 * message stream into header, end of headers and body chunks, and the
 * verdict of each stage (see milter_chain.h).
 */
#include "filter/milter_chain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* The event that goes to the milters one after the other: in
 * non-blocking mode it may stop at a milter and resume there. The
 * message's events (a header, the end of headers, a body chunk, the end
 * of body) come one after another from the message stream's parser. */
enum chain_ev {
	CEV_NONE, CEV_CONNECT, CEV_HELO, CEV_MAIL, CEV_RCPT, CEV_DATA,
	CEV_HEADER, CEV_EOH, CEV_BODY, CEV_EOM,
};

struct milter_chain {
	const struct milter_spec *specs;
	size_t n;
	struct milter_conn **conns;	/* NULL until milter_chain_connect */
	struct milter_macros macros;
	/* the transaction */
	int in_txn;
	int decided;			/* the message has its verdict */
	struct milter_verdict decision;
	struct milter_split split;	/* the message stream */
	int eom;			/* the call under way is the end of data */
	int eom_flush;			/* its end of body is still to go */
	int mods_ok;			/* the last end of data accepted: mods */
	struct milter_mods mods;
	/* the event under way */
	int nonblocking;
	enum chain_ev ev;
	size_t ev_next;			/* the milter it is at */
	const char **ev_argv;		/* MAIL, RCPT: "<addr>" and parameters */
	char *ev_first;			/* ev_argv[0]; HELO: the name */
	int ev_sent;			/* CONNECT: went to milter ev_next (it
					 * may wait for its connect first) */
	struct milter_client ev_cl;	/* CONNECT: the client */
	char ev_cl_name[256], ev_cl_addr[64];
	const char *ev_hname, *ev_hvalue;	/* HEADER, BODY: in split */
	const char *ev_data;
	size_t ev_len;
	struct milter_result ev_res;	/* the answer of milter ev_next */
	struct milter_verdict ev_v;	/* the verdict so far */
};

const char *
milter_action_name(enum milter_action a)
{
	switch (a) {
	case MILTER_CONTINUE: return "continue";
	case MILTER_ACCEPT: return "accept";
	case MILTER_REJECT: return "reject";
	case MILTER_TEMPFAIL: return "tempfail";
	case MILTER_DISCARD: return "discard";
	case MILTER_SHUTDOWN: return "shutdown";
	}
	return "unknown";
}

struct milter_chain *
milter_chain_new(const struct milter_spec *specs, size_t n, size_t body_max)
{
	struct milter_chain *c = xcalloc(1, sizeof *c);

	c->specs = specs;
	c->n = n;
	milter_macros_init(&c->macros);
	milter_split_init(&c->split);
	milter_mods_init(&c->mods, body_max);
	return c;
}

void
milter_chain_free(struct milter_chain **cp)
{
	struct milter_chain *c = *cp;

	if (c == NULL)
		return;
	free(c->ev_argv);
	free(c->ev_first);
	if (c->conns != NULL) {
		for (size_t i = 0; i < c->n; i++)
			milter_conn_close(&c->conns[i]);
		free(c->conns);
	}
	milter_macros_free(&c->macros);
	milter_split_free(&c->split);
	milter_mods_free(&c->mods);
	free(c);
	*cp = NULL;
}

int
milter_chain_macro(struct milter_chain *c, const char *name, const char *value)
{
	return milter_macros_set(&c->macros, name, value);
}

size_t
milter_chain_count(const struct milter_chain *c)
{
	return c->n;
}

struct milter_conn *
milter_chain_conn(struct milter_chain *c, size_t i)
{
	return c->conns != NULL && i < c->n ? c->conns[i] : NULL;
}

static void
verdict_init(struct milter_verdict *v)
{
	memset(v, 0, sizeof *v);
	v->action = MILTER_CONTINUE;
}

/* Does res decide the event? Then it goes into v. */
static int
chain_take(struct milter_chain *c, size_t i, const struct milter_result *res,
    struct milter_verdict *v)
{
	if (res->action == MILTER_CONTINUE || res->action == MILTER_ACCEPT)
		return 0;
	v->action = res->action;
	v->from_default = res->from_default;
	v->milter = milter_conn_name(c->conns[i]);
	memcpy(v->reply, res->reply, sizeof v->reply);
	return 1;
}

static int
chain_any(struct milter_chain *c, int (*pred)(const struct milter_conn *))
{
	for (size_t i = 0; c->conns != NULL && i < c->n; i++)
		if (pred(c->conns[i]))
			return 1;
	return 0;
}

/* CONTINUE becomes ACCEPT when no milter wants more (pred false for all). */
static void
chain_settle(struct milter_chain *c, struct milter_verdict *v,
    int (*pred)(const struct milter_conn *))
{
	if (v->action == MILTER_CONTINUE && !chain_any(c, pred))
		v->action = MILTER_ACCEPT;
}

static void
chain_reset_message(struct milter_chain *c)
{
	c->decided = 0;
	verdict_init(&c->decision);
	milter_split_reset(&c->split);
	c->eom = 0;
	c->eom_flush = 0;
}

/* ABORT to milter i: in non-blocking mode it waits in the connection for
 * the next event. */
static void
chain_abort_one(struct milter_chain *c, size_t i)
{
	milter_conn_set_nonblocking(c->conns[i], c->nonblocking);
	milter_conn_abort(c->conns[i]);
	milter_conn_set_nonblocking(c->conns[i], 0);
}

void
milter_chain_abort(struct milter_chain *c)
{
	for (size_t i = 0; c->conns != NULL && i < c->n; i++)
		chain_abort_one(c, i);
	c->in_txn = 0;
	chain_reset_message(c);
}

/* argv for MAIL/RCPT: "<addr>" and the parameters. Returns the array
 * (free it); *bracketed_r holds the first element. */
static const char **
chain_argv(const char *addr, const char *const *params, char **bracketed_r)
{
	size_t np = 0;
	const char **argv;
	size_t alen = strlen(addr) + 3;

	while (params != NULL && params[np] != NULL)
		np++;
	argv = xcalloc(np + 2, sizeof *argv);
	*bracketed_r = xmalloc(alen);
	snprintf(*bracketed_r, alen, "<%s>", addr);
	argv[0] = *bracketed_r;
	for (size_t i = 0; i < np; i++)
		argv[i + 1] = params[i];
	return argv;
}

/* A verdict that ends the transaction at MAIL, DATA or in the message. */
static void
chain_after_txn_event(struct milter_chain *c, struct milter_verdict *v)
{
	if (v->action == MILTER_DISCARD) {
		/* The message is dropped; no milter sees more of it. */
		c->decided = 1;
		c->decision = *v;
		for (size_t i = 0; i < c->n; i++)
			chain_abort_one(c, i);
	} else if (v->action != MILTER_CONTINUE && v->action != MILTER_ACCEPT) {
		milter_chain_abort(c);
	}
}

/* The event under way, to milter i: its answer into c->ev_res, or (in
 * non-blocking mode) awaited. */
static void
chain_send(struct milter_chain *c, size_t i)
{
	struct milter_conn *m = c->conns[i];

	milter_conn_set_nonblocking(m, c->nonblocking);
	c->ev_sent = 1;
	switch (c->ev) {
	case CEV_CONNECT:
		/* Its connect may have gone on meanwhile: what arrived is
		 * read before the wait (and its deadline) is looked at. */
		if (milter_conn_step(m, &c->ev_res) != MILTER_WAIT_NONE) {
			c->ev_sent = 0;		/* its connect is under way */
			break;
		}
		milter_conn_connect(m, &c->macros, c->ev_cl.name, c->ev_cl.family,
		    c->ev_cl.port, c->ev_cl.addr, &c->ev_res);
		break;
	case CEV_HELO:
		milter_conn_helo(m, &c->macros, c->ev_first, &c->ev_res);
		break;
	case CEV_MAIL:
		milter_conn_mail(m, &c->macros, c->ev_argv, &c->ev_res);
		break;
	case CEV_RCPT:
		milter_conn_rcpt(m, &c->macros, c->ev_argv, &c->ev_res);
		break;
	case CEV_DATA:
		milter_conn_data(m, &c->macros, &c->ev_res);
		break;
	case CEV_HEADER:
		milter_conn_header(m, &c->macros, c->ev_hname, c->ev_hvalue,
		    &c->ev_res);
		break;
	case CEV_EOH:
		milter_conn_eoh(m, &c->macros, &c->ev_res);
		break;
	case CEV_BODY:
		milter_conn_body(m, c->ev_data, c->ev_len, &c->ev_res);
		break;
	case CEV_EOM:
		milter_conn_eom(m, &c->macros, &c->mods, &c->ev_res);
		break;
	case CEV_NONE:
		break;
	}
	milter_conn_set_nonblocking(m, 0);
}

/* Is milter i asked for the event under way? (The others answer the
 * message's events with nothing; the end of body goes to all: those out
 * of the message give their standing verdict.) */
static int
chain_asks(struct milter_chain *c, size_t i)
{
	switch (c->ev) {
	case CEV_HEADER:
		return milter_conn_wants_headers(c->conns[i]);
	case CEV_EOH:
		return milter_conn_in_message(c->conns[i]);
	case CEV_BODY:
		return milter_conn_wants_body(c->conns[i]);
	default:
		return 1;
	}
}

static int chain_message_next(struct milter_chain *c, struct milter_verdict *v);

/* A decision inside the message: kept for the end of data. */
static void
chain_decide_message(struct milter_chain *c, const struct milter_verdict *v)
{
	c->decided = 1;
	c->decision = *v;
	for (size_t i = 0; i < c->n; i++)
		chain_abort_one(c, i);
}

/* The event is over: what its verdict does to the transaction. Returns 1
 * with *v when the call is over, 0 when the message's next event is
 * under way. */
static int
chain_event_end(struct milter_chain *c, struct milter_verdict *v)
{
	enum chain_ev ev = c->ev;

	c->ev = CEV_NONE;
	switch (ev) {
	case CEV_HEADER:
	case CEV_EOH:
	case CEV_BODY:
		if (c->ev_v.action != MILTER_CONTINUE)
			chain_decide_message(c, &c->ev_v);
		return chain_message_next(c, v);
	case CEV_EOM:
		*v = c->ev_v;
		if (v->action == MILTER_CONTINUE || v->action == MILTER_ACCEPT) {
			v->action = MILTER_ACCEPT;
			c->mods_ok = 1;
		}
		milter_chain_abort(c);
		return 1;
	default:
		break;
	}
	free(c->ev_argv);
	free(c->ev_first);
	c->ev_argv = NULL;
	c->ev_first = NULL;
	if (ev == CEV_CONNECT || ev == CEV_HELO) {
		chain_settle(c, &c->ev_v, milter_conn_live);
		*v = c->ev_v;
		return 1;
	}
	if (ev != CEV_RCPT || c->ev_v.action == MILTER_DISCARD ||
	    c->ev_v.action == MILTER_SHUTDOWN)
		chain_after_txn_event(c, &c->ev_v);
	chain_settle(c, &c->ev_v, milter_conn_in_message);
	*v = c->ev_v;
	return 1;
}

/* Takes the answer of milter c->ev_next; 1 when it decides the event. */
static int
chain_answered(struct milter_chain *c)
{
	return chain_take(c, c->ev_next, &c->ev_res, &c->ev_v);
}

/* Asks the milters from c->ev_next on (and for the message, its next
 * events). Returns 1 with *v (the call is over), or 0 when a milter's
 * reply is awaited (non-blocking mode). */
static int
chain_run(struct milter_chain *c, struct milter_verdict *v)
{
	int fd;
	int64_t deadline;

	do {
		for (; c->conns != NULL && c->ev_next < c->n; c->ev_next++) {
			if (!chain_asks(c, c->ev_next))
				continue;
			chain_send(c, c->ev_next);
			if (milter_conn_waiting(c->conns[c->ev_next], &fd,
			    &deadline) != MILTER_WAIT_NONE)
				return 0;
			if (chain_answered(c))
				break;
		}
	} while (!chain_event_end(c, v));
	return 1;
}

/* Sets event ev under way, from the first milter. */
static void
chain_begin(struct milter_chain *c, enum chain_ev ev)
{
	c->ev = ev;
	c->ev_next = 0;
	verdict_init(&c->ev_v);
}

/* Starts event ev (argv from addr and params for MAIL and RCPT). */
static int
chain_start(struct milter_chain *c, enum chain_ev ev, const char *addr,
    const char *const *params, struct milter_verdict *v)
{
	chain_begin(c, ev);
	if (addr != NULL)
		c->ev_argv = chain_argv(addr, params, &c->ev_first);
	return chain_run(c, v);
}

int
milter_chain_connect(struct milter_chain *c, const struct milter_client *cl,
    struct milter_verdict *v)
{
	char port[8];

	verdict_init(v);
	/* Every milter's connect starts at once (in non-blocking mode they
	 * go on side by side); CONNECT goes to each in order. */
	if (c->conns == NULL) {
		c->conns = xcalloc(c->n ? c->n : 1, sizeof *c->conns);
		for (size_t i = 0; i < c->n; i++) {
			struct milter_result res;

			c->conns[i] = milter_conn_open(&c->specs[i], i, c->nonblocking,
			    &res);
			milter_conn_set_nonblocking(c->conns[i], 0);
		}
	}
	snprintf(port, sizeof port, "%u", (unsigned)cl->port);
	(void)milter_macros_set(&c->macros, "client_addr", cl->addr);
	(void)milter_macros_set(&c->macros, "client_name",
	    cl->name != NULL ? cl->name : "unknown");
	(void)milter_macros_set(&c->macros, "client_port", port);
	str_copy(c->ev_cl_name, cl->name != NULL ? cl->name : "", sizeof c->ev_cl_name);
	str_copy(c->ev_cl_addr, cl->addr != NULL ? cl->addr : "", sizeof c->ev_cl_addr);
	c->ev_cl = *cl;
	c->ev_cl.name = cl->name != NULL ? c->ev_cl_name : NULL;
	c->ev_cl.addr = c->ev_cl_addr;
	return chain_start(c, CEV_CONNECT, NULL, NULL, v);
}

int
milter_chain_helo(struct milter_chain *c, const char *helo,
    struct milter_verdict *v)
{
	verdict_init(v);
	if (c->in_txn)
		milter_chain_abort(c);
	c->ev_first = xstrdup(helo);
	return chain_start(c, CEV_HELO, NULL, NULL, v);
}

int
milter_chain_mail(struct milter_chain *c, const char *sender,
    const char *const *params, struct milter_verdict *v)
{
	verdict_init(v);
	if (c->in_txn)
		milter_chain_abort(c);
	chain_reset_message(c);
	milter_mods_reset(&c->mods);
	c->in_txn = 1;
	(void)milter_macros_set(&c->macros, "mail_addr", sender);
	return chain_start(c, CEV_MAIL, sender, params, v);
}

int
milter_chain_rcpt(struct milter_chain *c, const char *rcpt,
    const char *const *params, struct milter_verdict *v)
{
	verdict_init(v);
	if (c->decided) {
		*v = c->decision;
		return 1;
	}
	(void)milter_macros_set(&c->macros, "rcpt_addr", rcpt);
	return chain_start(c, CEV_RCPT, rcpt, params, v);
}

void
milter_chain_rcpt_rejected(struct milter_chain *c, const char *rcpt,
    const char *const *params)
{
	char *first;
	const char **argv;

	if (c->decided)
		return;
	(void)milter_macros_set(&c->macros, "rcpt_addr", rcpt);
	(void)milter_macros_set(&c->macros, "rcpt_mailer", "error");
	argv = chain_argv(rcpt, params, &first);
	for (size_t i = 0; c->conns != NULL && i < c->n; i++)
		milter_conn_rcpt_rejected(c->conns[i], &c->macros, argv);
	free(argv);
	free(first);
	(void)milter_macros_set(&c->macros, "rcpt_mailer", NULL);
}

int
milter_chain_data(struct milter_chain *c, struct milter_verdict *v)
{
	verdict_init(v);
	if (c->decided) {
		*v = c->decision;
		return 1;
	}
	return chain_start(c, CEV_DATA, NULL, NULL, v);
}

void
milter_chain_set_nonblocking(struct milter_chain *c, int on)
{
	c->nonblocking = on;
}

enum milter_wait
milter_chain_waiting(const struct milter_chain *c, int *fd_r,
    int64_t *deadline_r)
{
	if (c->ev == CEV_NONE || c->conns == NULL)
		return MILTER_WAIT_NONE;
	return milter_conn_waiting(c->conns[c->ev_next], fd_r, deadline_r);
}

/* The awaited milter answered (or failed): the event goes on (unless
 * the answer decided it), or if it was only connected, its CONNECT. */
static int
chain_resume(struct milter_chain *c, struct milter_verdict *v)
{
	if (c->ev_sent)
		c->ev_next = chain_answered(c) ? c->n : c->ev_next + 1;
	return chain_run(c, v);
}

int
milter_chain_step(struct milter_chain *c, struct milter_verdict *v)
{
	if (c->ev == CEV_NONE)
		return 1;
	if (milter_conn_step(c->conns[c->ev_next], &c->ev_res) != MILTER_WAIT_NONE)
		return 0;
	return chain_resume(c, v);
}

int
milter_chain_expire(struct milter_chain *c, struct milter_verdict *v)
{
	if (c->ev == CEV_NONE)
		return 1;
	milter_conn_expire(c->conns[c->ev_next], &c->ev_res);
	return chain_resume(c, v);
}

void
milter_chain_unknown(struct milter_chain *c, const char *line,
    struct milter_verdict *v)
{
	verdict_init(v);
	for (size_t i = 0; c->conns != NULL && i < c->n; i++) {
		struct milter_result res;

		milter_conn_unknown(c->conns[i], &c->macros, line, &res);
		if (chain_take(c, i, &res, v))
			break;
	}
}

/* ---- the message stream ---- */

/* The message's next event, from the splitter: CEV_NONE when the bytes
 * are used up, the message is decided or no milter wants more of it. */
static enum chain_ev
chain_parse(struct milter_chain *c)
{
	if (c->decided || !chain_any(c, milter_conn_in_message)) {
		milter_split_drop(&c->split);
		if (!c->decided && c->eom_flush) {
			c->eom_flush = 0;
			return CEV_EOM;		/* the standing verdicts */
		}
		return CEV_NONE;
	}
	switch (milter_split_next(&c->split, &c->ev_hname, &c->ev_hvalue,
	    &c->ev_data, &c->ev_len)) {
	case MILTER_SPLIT_HEADER:
		return CEV_HEADER;
	case MILTER_SPLIT_EOH:
		return CEV_EOH;
	case MILTER_SPLIT_BODY:
		return CEV_BODY;
	case MILTER_SPLIT_END:
		c->eom_flush = 0;
		return CEV_EOM;
	case MILTER_SPLIT_NONE:
		break;
	}
	return CEV_NONE;
}

/* The call under way (message bytes, or the end of data) goes on with
 * the message's next event: 0 when one is under way (run it), 1 with *v
 * when the call is over. */
static int
chain_message_next(struct milter_chain *c, struct milter_verdict *v)
{
	enum chain_ev ev = chain_parse(c);

	if (ev != CEV_NONE) {
		chain_begin(c, ev);
		return 0;
	}
	if (c->decided) {
		*v = c->decision;
		if (c->eom)
			milter_chain_abort(c);
	} else {
		verdict_init(v);
		chain_settle(c, v, milter_conn_in_message);
	}
	return 1;
}

int
milter_chain_message(struct milter_chain *c, const void *data, size_t len,
    struct milter_verdict *v)
{
	verdict_init(v);
	milter_split_feed(&c->split, data, len);
	return chain_message_next(c, v) || chain_run(c, v);
}

int
milter_chain_eom(struct milter_chain *c, struct milter_verdict *v)
{
	verdict_init(v);
	c->mods_ok = 0;
	if (!c->in_txn)
		milter_mods_reset(&c->mods);
	milter_split_drop(&c->split);
	milter_split_finish(&c->split);
	c->eom = 1;
	c->eom_flush = 1;
	return chain_message_next(c, v) || chain_run(c, v);
}

const struct milter_mods *
milter_chain_mods(const struct milter_chain *c)
{
	return c->mods_ok ? &c->mods : NULL;
}
