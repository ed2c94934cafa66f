/*
 * sasl_dovecot: SMTP AUTH checked by Dovecot's auth service, through its
 * auth-client protocol (version 1; Postfix's smtpd_sasl_type = dovecot),
 * so users are defined once, in Dovecot.
 *
 * Dovecot runs the SASL mechanism; this client carries the exchange:
 *   connect: C "VERSION 1 2", "CPID pid"; S "VERSION 1 x", "MECH name
 *     flags..." per mechanism, "SPID", "CUID", "COOKIE", "DONE".
 *   sasl_dovecot_start: C "AUTH id mech service=smtp nologin [secured]
 *     lip= rip= lport= rport= [resp=base64]".
 *   S "CONT id base64" (a challenge: the session sends "334 base64" and
 *     passes the client's answer to sasl_dovecot_continue, C "CONT id
 *     base64"), "OK id user=name ...", or "FAIL id reason=... [temp]
 *     [code=temp_fail]".
 * Lines are TAB-separated and tab-escaped (\001 then 0 1 t r n l).
 *
 * What the session answers (RFC 4954):
 *   SASL_DOVECOT_OK        235 2.7.0; the user is res->user (Dovecot's
 *                          name for the login).
 *   SASL_DOVECOT_CONTINUE  334 res->challenge
 *   SASL_DOVECOT_FAIL      535 5.7.8
 *   SASL_DOVECOT_TEMPFAIL  454 4.7.0 (Dovecot's temporary failure, Dovecot
 *                          down, a timeout, a broken answer)
 *   SASL_DOVECOT_INVALID   501 5.5.2 (the client's data is not base64;
 *                          nothing was sent, the exchange is over)
 * The client's "*" ends an exchange: sasl_dovecot_cancel, then 501 5.7.0.
 * "secured" (TLS, or a loopback client) tells Dovecot that plaintext
 * mechanisms are allowed (its disable_plaintext_auth).
 *
 * A handle is one connection, used for one exchange at a time and kept
 * for the next ones (Dovecot serves many per connection). A connection
 * found closed when a new exchange starts is replaced once; a failure in
 * the middle of one gives TEMPFAIL and the next start reconnects.
 * Limits: lines of SASL_DOVECOT_LINE_MAX (Dovecot's own), at most
 * SASL_DOVECOT_MECHS_MAX mechanisms, at most SASL_DOVECOT_SKIP_MAX lines
 * for other requests or of unknown kinds while waiting for an answer.
 *
 * Threads: every call blocks up to timeout_ms per wait: call from a pool
 * thread, never from a session worker's event loop. A handle belongs to
 * one thread at a time; a spec is immutable and may be shared.
 * Errors: failures are logged as warnings ("dovecot auth PATH: why") and
 * reported as TEMPFAIL; out of memory aborts (lib/util.h).
 */
#ifndef SERVER_SASL_DOVECOT_H
#define SERVER_SASL_DOVECOT_H

#include <stddef.h>
#include <stdint.h>

#include "filter/endpoint.h"

#define SASL_DOVECOT_LINE_MAX	16384
#define SASL_DOVECOT_MECHS_MAX	32
#define SASL_DOVECOT_SKIP_MAX	100
#define SASL_DOVECOT_TIMEOUT_MS	30000

struct sasl_dovecot_spec {
	struct filter_endpoint ep;	/* unix:/path/auth-client or inet: */
	unsigned timeout_ms;
};

/* endpoint: "unix:/path" or "inet:host:port". 0, or -1 with err. */
int sasl_dovecot_spec_init(struct sasl_dovecot_spec *s, const char *endpoint,
    char *err, size_t errsize);

enum sasl_dovecot_status {
	SASL_DOVECOT_OK = 0,
	SASL_DOVECOT_CONTINUE,
	SASL_DOVECOT_FAIL,
	SASL_DOVECOT_TEMPFAIL,
	SASL_DOVECOT_INVALID,
};

struct sasl_dovecot_request {
	const char *mech;	/* "PLAIN", "LOGIN", ... (any case) */
	const char *initial;	/* base64 initial response; "=" is an empty
				 * one; NULL: none */
	const char *service;	/* NULL: "smtp" */
	const char *local_ip, *remote_ip;	/* NULL: not sent */
	uint16_t local_port, remote_port;	/* 0: not sent */
	int secured;		/* TLS or loopback */
};

struct sasl_dovecot_result {
	enum sasl_dovecot_status status;
	char user[256];		/* OK; FAIL when Dovecot names one */
	char reason[256];	/* FAIL, TEMPFAIL: printable */
	char challenge[SASL_DOVECOT_LINE_MAX];	/* CONTINUE: base64 */
};

struct sasl_dovecot;

/* A handle; not connected yet. */
struct sasl_dovecot *sasl_dovecot_new(const struct sasl_dovecot_spec *spec);
void sasl_dovecot_free(struct sasl_dovecot **c);

/* Connects and handshakes unless connected. Returns 0, or -1 (logged). */
int sasl_dovecot_connect(struct sasl_dovecot *c);
/* The mechanisms Dovecot offers (not "private" or "anonymous" ones: an
 * anonymous login would count as authenticated), space-separated,
 * for the EHLO AUTH line ("PLAIN LOGIN"); "" when not connected. */
const char *sasl_dovecot_mechs(const struct sasl_dovecot *c);
/* Does Dovecot offer mech (any case)? */
int sasl_dovecot_has_mech(const struct sasl_dovecot *c, const char *mech);

/* Starts an exchange (connecting if needed). An exchange still open is
 * cancelled first. */
void sasl_dovecot_start(struct sasl_dovecot *c,
    const struct sasl_dovecot_request *rq, struct sasl_dovecot_result *res);
/* The client's answer (base64) to a CONTINUE. */
void sasl_dovecot_continue(struct sasl_dovecot *c, const char *response,
    struct sasl_dovecot_result *res);
/* The client gave up ("*"): tells Dovecot, ends the exchange. */
void sasl_dovecot_cancel(struct sasl_dovecot *c);

/* ---- the protocol's pure parts (unit tests, fuzzing) ---- */

/* The handshake so far. */
struct sasl_dovecot_handshake {
	int version_ok, done;
	int any_mech;		/* a MECH line came (kept or not) */
	size_t nmechs;
	char mechs[SASL_DOVECOT_MECHS_MAX][64];
	char mechlist[SASL_DOVECOT_MECHS_MAX * 65];
};

/* One handshake line (without LF). Returns 0 (go on; hs->done after
 * DONE), or -1 with a static reason (major version not 1, DONE before
 * VERSION or without any MECH: the wrong socket, too many mechanisms). */
int sasl_dovecot_handshake_line(struct sasl_dovecot_handshake *hs,
    const char *line, const char **why_r);

/* One answer line (without LF) while waiting for request id. Returns 1
 * when it answers the request (res filled), 0 when it is about something
 * else (skip it), -1 with a static reason when it is malformed. */
int sasl_dovecot_reply_line(const char *line, unsigned id,
    struct sasl_dovecot_result *res, const char **why_r);

/* Is s base64 ([A-Za-z0-9+/] then up to two '='; may be empty), or "="? */
int sasl_dovecot_base64_ok(const char *s);

#endif
