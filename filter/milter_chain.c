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

enum part { PART_HEADER, PART_BODY };

/* The event that goes to the milters one after the other (CONNECT, HELO,
 * MAIL, RCPT, DATA): in non-blocking mode it may stop at a milter and
 * resume there. */
enum chain_ev { CEV_NONE, CEV_CONNECT, CEV_HELO, CEV_MAIL, CEV_RCPT, CEV_DATA };

struct milter_chain {
	const struct milter_spec *specs;
	size_t n;
	struct milter_conn **conns;	/* NULL until milter_chain_connect */
	struct milter_macros macros;
	/* the transaction */
	int in_txn;
	int decided;			/* the message has its verdict */
	struct milter_verdict decision;
	/* the message stream */
	enum part part;
	struct buf line;		/* the header line being read */
	struct buf header;		/* the header being gathered */
	int have_header;
	struct buf chunk;		/* the body chunk being filled */
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
	buf_init(&c->line, MILTER_HEADER_MAX + 2);
	buf_init(&c->header, MILTER_HEADER_MAX);
	buf_init(&c->chunk, MILTER_CHUNK_MAX);
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
	buf_free(&c->line);
	buf_free(&c->header);
	buf_free(&c->chunk);
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
	c->part = PART_HEADER;
	buf_reset(&c->line);
	buf_reset(&c->header);
	c->have_header = 0;
	buf_reset(&c->chunk);
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
	case CEV_NONE:
		break;
	}
	milter_conn_set_nonblocking(m, 0);
}

/* The event is over: what its verdict does to the transaction. */
static void
chain_event_end(struct milter_chain *c, struct milter_verdict *v)
{
	enum chain_ev ev = c->ev;

	c->ev = CEV_NONE;
	free(c->ev_argv);
	free(c->ev_first);
	c->ev_argv = NULL;
	c->ev_first = NULL;
	if (ev == CEV_CONNECT || ev == CEV_HELO) {
		chain_settle(c, &c->ev_v, milter_conn_live);
		*v = c->ev_v;
		return;
	}
	if (ev != CEV_RCPT || c->ev_v.action == MILTER_DISCARD ||
	    c->ev_v.action == MILTER_SHUTDOWN)
		chain_after_txn_event(c, &c->ev_v);
	chain_settle(c, &c->ev_v, milter_conn_in_message);
	*v = c->ev_v;
}

/* Takes the answer of milter c->ev_next; 1 when it decides the event. */
static int
chain_answered(struct milter_chain *c)
{
	return chain_take(c, c->ev_next, &c->ev_res, &c->ev_v);
}

/* Asks the milters from c->ev_next on. Returns 1 with *v (the event is
 * over), or 0 when a milter's reply is awaited (non-blocking mode). */
static int
chain_run(struct milter_chain *c, struct milter_verdict *v)
{
	int fd;
	int64_t deadline;

	for (; c->conns != NULL && c->ev_next < c->n; c->ev_next++) {
		chain_send(c, c->ev_next);
		if (milter_conn_waiting(c->conns[c->ev_next], &fd, &deadline) !=
		    MILTER_WAIT_NONE)
			return 0;
		if (chain_answered(c))
			break;
	}
	chain_event_end(c, v);
	return 1;
}

/* Starts event ev (argv from addr and params for MAIL and RCPT). */
static int
chain_start(struct milter_chain *c, enum chain_ev ev, const char *addr,
    const char *const *params, struct milter_verdict *v)
{
	c->ev = ev;
	c->ev_next = 0;
	verdict_init(&c->ev_v);
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

/* The awaited milter answered (or failed): the event goes on. */
static int
chain_resume(struct milter_chain *c, struct milter_verdict *v)
{
	if (!c->ev_sent)
		return chain_run(c, v);	/* connected: now its CONNECT */
	if (chain_answered(c)) {
		chain_event_end(c, v);
		return 1;
	}
	c->ev_next++;
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

/* A decision inside the message: kept for the end of data. */
static void
chain_decide_message(struct milter_chain *c, const struct milter_verdict *v)
{
	c->decided = 1;
	c->decision = *v;
	for (size_t i = 0; i < c->n; i++)
		milter_conn_abort(c->conns[i]);
}

static void
chain_send_header(struct milter_chain *c)
{
	char *h, *colon, *name_end;
	struct milter_verdict v;

	if (!c->have_header)
		return;
	c->have_header = 0;
	if (c->decided || c->header.data == NULL) {
		buf_reset(&c->header);
		return;
	}
	h = c->header.data;
	colon = strchr(h, ':');
	if (colon == NULL) {
		buf_reset(&c->header);
		return;
	}
	name_end = colon;
	while (name_end > h && (name_end[-1] == ' ' || name_end[-1] == '\t'))
		name_end--;
	*name_end = '\0';
	verdict_init(&v);
	for (size_t i = 0; i < c->n; i++) {
		struct milter_result res;

		if (!milter_conn_wants_headers(c->conns[i]))
			continue;
		milter_conn_header(c->conns[i], &c->macros, h, colon + 1, &res);
		if (chain_take(c, i, &res, &v)) {
			chain_decide_message(c, &v);
			break;
		}
	}
	buf_reset(&c->header);
}

static void
chain_send_eoh(struct milter_chain *c)
{
	struct milter_verdict v;

	chain_send_header(c);
	c->part = PART_BODY;
	if (c->decided)
		return;
	verdict_init(&v);
	for (size_t i = 0; i < c->n; i++) {
		struct milter_result res;

		if (!milter_conn_in_message(c->conns[i]))
			continue;
		milter_conn_eoh(c->conns[i], &c->macros, &res);
		if (chain_take(c, i, &res, &v)) {
			chain_decide_message(c, &v);
			break;
		}
	}
}

static void
chain_send_chunk(struct milter_chain *c)
{
	struct milter_verdict v;

	if (c->chunk.len == 0)
		return;
	verdict_init(&v);
	for (size_t i = 0; !c->decided && i < c->n; i++) {
		struct milter_result res;

		if (!milter_conn_wants_body(c->conns[i]))
			continue;
		milter_conn_body(c->conns[i], c->chunk.data, c->chunk.len, &res);
		if (chain_take(c, i, &res, &v)) {
			chain_decide_message(c, &v);
			break;
		}
	}
	buf_reset(&c->chunk);
}

static void
chain_body(struct milter_chain *c, const char *data, size_t len)
{
	while (len > 0 && !c->decided) {
		size_t room = MILTER_CHUNK_MAX - c->chunk.len;
		size_t n = len < room ? len : room;

		(void)buf_append(&c->chunk, data, n);
		data += n;
		len -= n;
		if (c->chunk.len == MILTER_CHUNK_MAX)
			chain_send_chunk(c);
	}
}

/* Is s (n bytes) "field-name WSP* :" ... ? */
static int
is_header_line(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && (unsigned char)s[i] >= 33 && (unsigned char)s[i] <= 126 &&
	    s[i] != ':')
		i++;
	if (i == 0)
		return 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i < n && s[i] == ':';
}

/* One whole line of the header part (with its line end, if any). */
static void
chain_header_line(struct milter_chain *c, const char *line, size_t n)
{
	size_t content = n;

	if (content > 0 && line[content - 1] == '\n')
		content--;
	if (content > 0 && line[content - 1] == '\r')
		content--;
	if (content == 0) {
		chain_send_eoh(c);
		return;
	}
	if ((line[0] == ' ' || line[0] == '\t') && c->have_header) {
		/* Folded: joined by LF, as Sendmail gives them. The rest of
		 * a header past MILTER_HEADER_MAX is not seen. */
		(void)buf_puts(&c->header, "\n");
		(void)buf_append(&c->header, line,
		    content < c->header.max - c->header.len ? content :
		    c->header.max - c->header.len);
		return;
	}
	if (is_header_line(line, content)) {
		chain_send_header(c);
		(void)buf_append(&c->header, line,
		    content < c->header.max ? content : c->header.max);
		c->have_header = 1;
		return;
	}
	/* Not a header: the body starts with this line. */
	chain_send_eoh(c);
	chain_body(c, line, n);
}

static int
chain_wants_message(struct milter_chain *c)
{
	return !c->decided && chain_any(c, milter_conn_in_message);
}

void
milter_chain_message(struct milter_chain *c, const void *data, size_t len,
    struct milter_verdict *v)
{
	const char *p = data;

	verdict_init(v);
	while (len > 0 && chain_wants_message(c)) {
		const char *nl;
		size_t take;

		if (c->part == PART_BODY) {
			chain_body(c, p, len);
			break;
		}
		nl = memchr(p, '\n', len);
		take = nl != NULL ? (size_t)(nl - p) + 1 : len;
		if (c->line.len + take <= c->line.max)
			(void)buf_append(&c->line, p, take);
		else {
			/* Over-long line: keep its start and its line end. */
			size_t room = c->line.max - c->line.len;
			(void)buf_append(&c->line, p, room > 2 ? room - 2 : 0);
			if (nl != NULL)
				(void)buf_puts(&c->line, "\r\n");
		}
		p += take;
		len -= take;
		if (nl == NULL)
			break;
		chain_header_line(c, c->line.data, c->line.len);
		buf_reset(&c->line);
	}
	if (c->decided)
		*v = c->decision;
	else
		chain_settle(c, v, milter_conn_in_message);
}

void
milter_chain_eom(struct milter_chain *c, struct milter_verdict *v,
    const struct milter_mods **mods_r)
{
	verdict_init(v);
	*mods_r = NULL;
	if (!c->in_txn)
		milter_mods_reset(&c->mods);
	if (!c->decided && c->part == PART_HEADER) {
		if (c->line.len > 0) {
			chain_header_line(c, c->line.data, c->line.len);
			buf_reset(&c->line);
		}
		if (c->part == PART_HEADER)
			chain_send_eoh(c);
	}
	if (!c->decided)
		chain_send_chunk(c);
	if (c->decided) {
		*v = c->decision;
		milter_chain_abort(c);
		return;
	}
	for (size_t i = 0; c->conns != NULL && i < c->n; i++) {
		struct milter_result res;

		/* Milters out of the message answer with their standing
		 * verdict (a failed one's default, a rejected session). */
		milter_conn_eom(c->conns[i], &c->macros, &c->mods, &res);
		if (chain_take(c, i, &res, v))
			break;
	}
	if (v->action == MILTER_CONTINUE || v->action == MILTER_ACCEPT) {
		v->action = MILTER_ACCEPT;
		*mods_r = &c->mods;
	}
	milter_chain_abort(c);
}
