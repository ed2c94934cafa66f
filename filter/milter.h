/*
 * milter: one connection to one mail filter (the MTA side of the
 * Sendmail/Postfix milter protocol, version 6): its configuration, the
 * option negotiation, each event with its macros, the filter's replies,
 * the default action when the filter fails, and the macro table the
 * events draw from. The SMTP session does not use this directly: it talks
 * to a chain of milters (filter/milter_chain.h), which calls these.
 *
 * A connection lives for one SMTP session (libmilter closes its side when
 * it sees the session end, so connections are never shared or reused).
 * It keeps the filter's state (Postfix's milter8 states): ready, in the
 * session, in a transaction, in the message; done with the message after
 * it accepted or discarded it; done with the session after it accepted or
 * rejected the connection (the socket is closed then); failed.
 *
 * Failure: a refused or timed-out connect, a timeout on any write or
 * reply, end of stream, a packet the decoder refuses, a reply not allowed
 * at that event or an action the filter did not negotiate, a custom reply
 * that fails filter_reply_check, a modification that fails the checks of
 * milter_mods.h. Then the socket is closed, a warning is logged ("milter
 * NAME: why") and the filter's default_action decides this event and
 * every later one of the session: accept (the filter is left out),
 * tempfail (451 4.7.1) or reject (550 5.7.1).
 *
 * Timeouts (milliseconds): connect_timeout for the TCP or Unix connect;
 * command_timeout for each write and for each reply to negotiation,
 * CONNECT, HELO, MAIL, RCPT, DATA, unknown commands, headers, end of
 * headers and body chunks; eom_timeout for the replies to end of body.
 * SMFIR_PROGRESS restarts the running timeout (at most
 * MILTER_PROGRESS_MAX times per event).
 *
 * Threads: every call but milter_conn_close blocks up to its timeout
 * (milter_conn_close never waits), unless the connection is in
 * non-blocking mode (below): call blocking ones from a pool thread, never
 * from a session worker's event loop. A connection belongs to one
 * thread at a time (it may move between pool threads between calls). A
 * spec is immutable once parsed and may be shared by every thread.
 * Errors: as above; out of memory aborts (lib/util.h).
 */
#ifndef FILTER_MILTER_H
#define FILTER_MILTER_H

#include <stddef.h>
#include <stdint.h>

#include "filter/endpoint.h"
#include "filter/milter_mods.h"
#include "filter/milter_proto.h"

#define MILTER_PROGRESS_MAX	1000

enum milter_default {
	MILTER_DEFAULT_ACCEPT,
	MILTER_DEFAULT_TEMPFAIL,
	MILTER_DEFAULT_REJECT,
};

/* One configured milter. */
struct milter_spec {
	struct filter_endpoint ep;	/* ep.text names it in logs */
	enum milter_default default_action;
	unsigned connect_timeout_ms;
	unsigned command_timeout_ms;
	unsigned eom_timeout_ms;
};

/* Defaults as Postfix: tempfail, 30s connect, 30s command, 300s eom. */
#define MILTER_CONNECT_TIMEOUT_MS	30000
#define MILTER_COMMAND_TIMEOUT_MS	30000
#define MILTER_EOM_TIMEOUT_MS		300000

/* Fills s for endpoint ("unix:/path", "inet:host:port") with the defaults.
 * Returns 0, or -1 with a reason in err. */
int milter_spec_init(struct milter_spec *s, const char *endpoint, char *err,
    size_t errsize);
/* "accept", "tempfail", "reject" (any case): 0, or -1 when unknown. */
int milter_default_parse(const char *s, enum milter_default *d);

/* ---- the macro table: values the session knows, sent by name ---- */

#define MILTER_MACROS_MAX	64
#define MILTER_MACRO_NAME_MAX	64
#define MILTER_MACRO_VALUE_MAX	1024

struct milter_macros {
	size_t n;
	char *names[MILTER_MACROS_MAX];	/* without braces: "auth_authen", "i" */
	char *values[MILTER_MACROS_MAX];
};

void milter_macros_init(struct milter_macros *t);
void milter_macros_free(struct milter_macros *t);
/* Sets name ("{auth_authen}" or "auth_authen", "i") to value (NULL
 * removes it). Control bytes in value become '?'. Returns 0, or -1 when a
 * limit would be passed or name is empty or not printable. */
int milter_macros_set(struct milter_macros *t, const char *name,
    const char *value);
/* The value of name (with or without braces), or NULL. */
const char *milter_macros_get(const struct milter_macros *t, const char *name);

/* ---- one filter connection ---- */

/* What a filter decided for one event. */
enum milter_action {
	MILTER_CONTINUE = 0,	/* go on */
	MILTER_ACCEPT,		/* accept: no more events of this message
				 * (at connect/HELO: of the session) */
	MILTER_REJECT,		/* 5xx: reply holds it */
	MILTER_TEMPFAIL,	/* 4xx: reply holds it */
	MILTER_DISCARD,		/* accept the message and drop it */
	MILTER_SHUTDOWN,	/* 421: reply holds it; close the session */
};

struct milter_result {
	enum milter_action action;
	int from_default;	/* the default action of a failed filter */
	char reply[FILTER_REPLY_MAX + 1];	/* REJECT, TEMPFAIL, SHUTDOWN */
};

struct milter_conn;

/* Connects to the filter and negotiates. Never NULL: when the filter
 * cannot be reached or negotiation fails, the connection is in the failed
 * state and answers with the default action (*res gets it then, else
 * continue). index is the milter's place in its chain (recorded in
 * modifications). nonblocking: the connection starts in non-blocking mode
 * (below), and the connect and negotiation are an exchange under way as
 * an event's: milter_conn_waiting, _step and _expire with res. */
struct milter_conn *milter_conn_open(const struct milter_spec *spec,
    size_t index, int nonblocking, struct milter_result *res);

/* Sends SMFIC_QUIT when the filter is still there and the packet goes
 * out at once (it never waits), closes, frees, sets *m to NULL. */
void milter_conn_close(struct milter_conn **m);

/* The milter's name (its endpoint text). */
const char *milter_conn_name(const struct milter_conn *m);
/* Is the filter still taking part in the session (not failed, not done
 * with the session)? */
int milter_conn_live(const struct milter_conn *m);
/* Does the filter still want events of the current message (in a
 * transaction, not accepted or discarded it)? */
int milter_conn_in_message(const struct milter_conn *m);
/* Does the filter want headers / the body of the current message? */
int milter_conn_wants_headers(const struct milter_conn *m);
int milter_conn_wants_body(const struct milter_conn *m);
/* Did the filter negotiate SMFIP_HDR_LEADSPC? */
int milter_conn_leadspc(const struct milter_conn *m);
/* Negotiated values, for tests and logs. */
void milter_conn_negotiated(const struct milter_conn *m, uint32_t *version,
    uint32_t *actions, uint32_t *steps);

/*
 * Events. Each sends the macros the filter wants for the stage (its own
 * list from negotiation, else the defaults of milter_chain.h) that the
 * table defines, then the event unless the filter asked not to get it,
 * then reads the reply unless the filter said it sends none; and fills
 * *res. A filter that is failed, done or not in the right state is not
 * asked: *res is its standing answer (continue, or the default action).
 */
void milter_conn_connect(struct milter_conn *m, const struct milter_macros *t,
    const char *host, int family, uint16_t port, const char *addr,
    struct milter_result *res);
void milter_conn_helo(struct milter_conn *m, const struct milter_macros *t,
    const char *helo, struct milter_result *res);
/* argv: "<addr>" then ESMTP parameters, NULL-terminated. */
void milter_conn_mail(struct milter_conn *m, const struct milter_macros *t,
    const char *const *argv, struct milter_result *res);
void milter_conn_rcpt(struct milter_conn *m, const struct milter_macros *t,
    const char *const *argv, struct milter_result *res);
/* A recipient the session refused: sent only to filters that asked for
 * them (SMFIP_RCPT_REJ); their answer does not matter. */
void milter_conn_rcpt_rejected(struct milter_conn *m,
    const struct milter_macros *t, const char *const *argv);
void milter_conn_data(struct milter_conn *m, const struct milter_macros *t,
    struct milter_result *res);
void milter_conn_unknown(struct milter_conn *m, const struct milter_macros *t,
    const char *line, struct milter_result *res);
/* value: the header's value with folded lines joined by LF, and its
 * leading space kept (it is dropped here unless SMFIP_HDR_LEADSPC). */
void milter_conn_header(struct milter_conn *m, const struct milter_macros *t,
    const char *name, const char *value, struct milter_result *res);
void milter_conn_eoh(struct milter_conn *m, const struct milter_macros *t,
    struct milter_result *res);
/* len <= MILTER_CHUNK_MAX. A filter that answered SMFIR_SKIP gets no more
 * chunks of this message. */
void milter_conn_body(struct milter_conn *m, const void *data, size_t len,
    struct milter_result *res);
/* End of body: the filter's modifications are appended to mods, then its
 * final answer is in *res. The message is over for the filter. */
void milter_conn_eom(struct milter_conn *m, const struct milter_macros *t,
    struct milter_mods *mods, struct milter_result *res);
/* Ends the current transaction (SMFIC_ABORT) if the filter is in one.
 * In non-blocking mode the ABORT goes out with the next event (whatever
 * the mode then). */
void milter_conn_abort(struct milter_conn *m);

/*
 * Non-blocking mode, for an event loop: every event but _rcpt_rejected
 * (which always waits for its reply) sends what it can and returns at
 * once (_eom keeps or drops the filter's changes when its exchange
 * ends). When the exchange is not over, milter_conn_waiting says what it waits for (the
 * socket, readable or writable, before a deadline) and *res is not final:
 * call milter_conn_step with the same res when the socket is ready (it
 * may wait again), or milter_conn_expire once the deadline passed (the
 * filter fails: its default action). Set the mode between events, never
 * while one is under way.
 */
enum milter_wait {
	MILTER_WAIT_NONE,	/* nothing under way: *res is final */
	MILTER_WAIT_READ,
	MILTER_WAIT_WRITE,
};

void milter_conn_set_nonblocking(struct milter_conn *m, int on);
enum milter_wait milter_conn_waiting(const struct milter_conn *m, int *fd_r,
    int64_t *deadline_r);
enum milter_wait milter_conn_step(struct milter_conn *m,
    struct milter_result *res);
void milter_conn_expire(struct milter_conn *m, struct milter_result *res);

#endif
