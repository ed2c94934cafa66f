/*
 * milter_chain: the milters of one SMTP session, applied in order. This is
 * what the session calls, stage by stage (from its event loop in
 * non-blocking mode, or from a pool thread): each call gives the verdict
 * of the stage; the end of the message also returns
 * the list of changes to make to the message and envelope before the 250.
 *
 * One chain per SMTP session, made when the session starts; it opens one
 * connection to each milter at milter_chain_connect (filters keep state
 * per connection, so connections are never shared between sessions).
 *
 * Order of calls, as the SMTP session goes (every call may be skipped
 * when the session never reaches that stage):
 *   milter_chain_new                  session start
 *   milter_chain_macro                whenever a value becomes known
 *   milter_chain_connect              before the greeting
 *   milter_chain_helo                 HELO/EHLO (each one)
 *   milter_chain_mail                 MAIL, after the session's own checks
 *   milter_chain_rcpt                 RCPT the session accepted
 *   milter_chain_rcpt_rejected        RCPT the session refused
 *   milter_chain_data                 DATA (or the first BDAT), before 354
 *   milter_chain_message (repeated)   message bytes as they stream in
 *   milter_chain_eom                  end of data, before the commit
 *   milter_chain_abort                RSET, a transaction given up
 *   milter_chain_unknown              a command the session does not know
 *   milter_chain_free                 session end (sends QUIT)
 *
 * Verdicts (struct milter_verdict):
 *   CONTINUE  go on as the session would without milters.
 *   ACCEPT    as CONTINUE; in addition no milter wants more of this
 *             message (at connect/HELO: of this session), so the session
 *             may stop feeding message bytes (it still calls
 *             milter_chain_eom, whose ACCEPT means: queue it).
 *   REJECT, TEMPFAIL  answer the command with v->reply (a whole SMTP
 *             reply, lines joined by CRLF, without the final CRLF). At
 *             connect or HELO this holds for the whole session: answer
 *             every later command but QUIT (and RSET, NOOP) with it. At
 *             RCPT it refuses that recipient only. At MAIL, DATA, in the
 *             message and at the end it ends the transaction (the chain
 *             has already told the milters).
 *   DISCARD   (MAIL, RCPT, DATA, message, end) the session goes on with
 *             its usual replies, answers 250 at the end of data, and
 *             drops the message instead of queueing it.
 *   SHUTDOWN  send v->reply (421) and close the session.
 * A verdict met inside the message (milter_chain_message) is the answer
 * to the end of data: keep reading the data, discard it, and reply at the
 * end (milter_chain_eom returns the same verdict).
 *
 * Several milters: each event goes to the milters in order; the first
 * that answers other than continue or accept decides and the rest are not
 * asked for that event. Every milter sees the message as received (as
 * Sendmail does); the changes of all milters are listed in chain order.
 *
 * Threads: every call but milter_chain_free blocks (on the milters, up
 * to their timeouts), but for the non-blocking mode below; call blocking
 * ones from a pool thread, never from a session worker's event loop
 * (milter_chain_free never waits). A chain
 * belongs to one thread at a time (it may move between pool threads
 * between calls). Errors: a milter that fails is handled by its
 * default_action (filter/milter.h); nothing here fails the session by
 * itself. Out of memory aborts (lib/util.h).
 */
#ifndef FILTER_MILTER_CHAIN_H
#define FILTER_MILTER_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "filter/milter.h"
#include "filter/milter_mods.h"
#include "filter/milter_split.h"	/* MILTER_HEADER_MAX */

struct milter_verdict {
	enum milter_action action;
	int from_default;	/* a failed milter's default_action decided */
	const char *milter;	/* name of the milter that decided, or NULL */
	char reply[FILTER_REPLY_MAX + 1];
};

/* The client, for milter_chain_connect. */
struct milter_client {
	const char *name;	/* verified reverse name, or NULL ("unknown") */
	const char *addr;	/* "192.0.2.1", "2001:db8::1" */
	uint16_t port;
	int family;		/* AF_INET, AF_INET6, AF_UNIX, 0 (unknown) */
};

struct milter_chain;

/*
 * A chain over specs[0..n-1] (the array and the specs must outlive the
 * chain: keep them in the runtime snapshot the session holds). body_max
 * bounds a replacement body (the session's max_message_size). Nothing is
 * connected yet.
 */
struct milter_chain *milter_chain_new(const struct milter_spec *specs,
    size_t n, size_t body_max);

/* QUIT to every milter still connected (when it goes out at once: never
 * waits), close, free; *c = NULL. */
void milter_chain_free(struct milter_chain **c);

/*
 * Sets a macro milters may ask for ("j", "{daemon_name}", "i",
 * "{auth_authen}", "{tls_version}", ...; braces optional); NULL removes
 * it. The chain itself sets {client_addr}, {client_name}, {client_port}
 * at connect, {mail_addr} at MAIL and {rcpt_addr} at RCPT. Returns 0, or
 * -1 when over MILTER_MACROS_MAX or MILTER_MACRO_VALUE_MAX.
 */
int milter_chain_macro(struct milter_chain *c, const char *name,
    const char *value);

/* Opens every milter connection (connect, negotiate; all at once in
 * non-blocking mode) and sends CONNECT to each in order. */
int milter_chain_connect(struct milter_chain *c, const struct milter_client *cl,
    struct milter_verdict *v);
int milter_chain_helo(struct milter_chain *c, const char *helo,
    struct milter_verdict *v);
/* sender without angle brackets ("" for <>); params: the ESMTP parameters
 * as given ("SIZE=100", "BODY=8BITMIME"), NULL-terminated, may be NULL.
 * A transaction still open is aborted first. CONNECT, HELO, MAIL, RCPT
 * and DATA return 1 with the verdict in *v; in non-blocking mode (below)
 * they may return 0 instead: the verdict comes from milter_chain_step. */
int milter_chain_mail(struct milter_chain *c, const char *sender,
    const char *const *params, struct milter_verdict *v);
int milter_chain_rcpt(struct milter_chain *c, const char *rcpt,
    const char *const *params, struct milter_verdict *v);
void milter_chain_rcpt_rejected(struct milter_chain *c, const char *rcpt,
    const char *const *params);
int milter_chain_data(struct milter_chain *c, struct milter_verdict *v);
/*
 * Message bytes as received: CRLF line ends, dot-stuffing undone, without
 * the final ".", in pieces of any size and boundary. The chain splits the
 * header (one HEADER event per header, folded lines joined by LF), sends
 * end of headers at the empty line (or at the first line that is not a
 * header), then the body in chunks of at most MILTER_CHUNK_MAX bytes.
 * Cheap once the message is decided or no milter wants it. Returns 1
 * with the verdict so far in *v; in non-blocking mode it may return 0
 * (below), and data must then stay as it is until the call is over.
 */
int milter_chain_message(struct milter_chain *c, const void *data, size_t len,
    struct milter_verdict *v);
/*
 * End of data: flushes what is buffered, sends end of body to each milter
 * in order and collects their changes. The verdict is ACCEPT (queue the
 * message, with the changes from milter_chain_mods), or REJECT, TEMPFAIL,
 * DISCARD, SHUTDOWN. The transaction is over for the milters afterwards.
 * Returns 1, or 0 in non-blocking mode (below).
 */
int milter_chain_eom(struct milter_chain *c, struct milter_verdict *v);
/* The changes of the end of data that ended last, when its verdict was
 * ACCEPT (owned by the chain, valid until the next call on the chain;
 * n == 0 when nothing changes), else NULL. */
const struct milter_mods *milter_chain_mods(const struct milter_chain *c);
/* Ends the open transaction, if any, in every milter (RSET, a refused or
 * dropped transaction, a new EHLO). */
void milter_chain_abort(struct milter_chain *c);
void milter_chain_unknown(struct milter_chain *c, const char *line,
    struct milter_verdict *v);

/*
 * Non-blocking mode (filter/milter.h), for the session's event loop:
 * CONNECT (with the connects and negotiations), HELO, MAIL, RCPT, DATA,
 * the message and its end go to the milters without waiting (one call
 * at a time: the message's events, header by header and chunk by chunk,
 * go on inside the call). When one of them
 * returns 0, milter_chain_waiting names the socket, the readiness and the
 * deadline of the milter it waits for; when the socket is ready call
 * milter_chain_step, and once the deadline passed milter_chain_expire
 * (that milter fails: its default action). Each returns 1 with the
 * event's verdict in *v, or 0 when it waits again (perhaps for the next
 * milter: ask milter_chain_waiting again). An ABORT (milter_chain_abort,
 * or a verdict that ends the transaction) goes out with the next event.
 * The refused recipients and unknown commands wait for their replies in
 * either mode; make calls only between events. The mode is set between
 * events.
 */
void milter_chain_set_nonblocking(struct milter_chain *c, int on);
enum milter_wait milter_chain_waiting(const struct milter_chain *c, int *fd_r,
    int64_t *deadline_r);
int milter_chain_step(struct milter_chain *c, struct milter_verdict *v);
int milter_chain_expire(struct milter_chain *c, struct milter_verdict *v);

/* How many milters the chain has, and the connection of milter i (tests
 * and logs). */
size_t milter_chain_count(const struct milter_chain *c);
struct milter_conn *milter_chain_conn(struct milter_chain *c, size_t i);

/* "continue", "accept", "reject", "tempfail", "discard", "shutdown". */
const char *milter_action_name(enum milter_action a);

#endif
