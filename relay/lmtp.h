/*
 * lmtp: the LMTP client (RFC 2033), used by the delivery threads to hand
 * one message to a mailbox server (Dovecot's lmtp, Cyrus) for a local
 * domain (local_transport) or a route (routes = domain=lmtp:...), in
 * place of the Maildir store or an SMTP hop. Built on the relay client's
 * pieces: relay/relay_conn.h for the socket, the deadlines and the
 * streamed DATA (the message is read in pieces from the queue, never
 * whole in memory), relay/relay_proto.h for the bounded reply parser and
 * the capabilities.
 *
 * What one lmtp_deliver call does:
 *  - takes an idle connection to the same server (kept after an earlier
 *    transaction, checked with RSET), or connects: a Unix socket, or an
 *    IP address and port (no DNS: a name is never looked up). Reads the
 *    220 greeting, sends LHLO (RFC 2033 4.1) and reads the capabilities.
 *  - one transaction for all recipients: MAIL FROM with SIZE= (offered),
 *    BODY=8BITMIME (offered and msg->eightbit), SMTPUTF8 (offered, and
 *    msg->smtputf8 or a non-ASCII address); RCPT TO per recipient (no DSN
 *    parameters: the LMTP server is the last hop, and this server reports
 *    success itself); DATA; the message; then one reply per accepted
 *    recipient, in RCPT order (RFC 2033 4.2). MAIL, the RCPTs and DATA
 *    are pipelined when the server offers PIPELINING (relay/envelope.h),
 *    else go one at a time.
 *  - per recipient: a 2xx at RCPT goes on to DATA, 4xx defers, 5xx
 *    bounces (552 too: on LMTP it is the mailbox's answer, e.g. over
 *    quota). After the data each accepted recipient gets its own reply:
 *    2xx SENT, 4xx DEFERRED, 5xx BOUNCED, each with its own status. A
 *    5xx or 4xx to MAIL FROM or DATA applies to every recipient (still
 *    pending, or accepted). A recipient whose reply never came (lost
 *    connection, timeout, a malformed reply, a 421 before it) is
 *    DEFERRED: it may have been delivered, and is tried again (the
 *    at-least-once window).
 *  - cannot connect, a non-2xx greeting or LHLO, a lost connection or a
 *    timeout before the data: every recipient is DEFERRED (4.4.1,
 *    4.4.2), to be tried again by the queue.
 *  - what goes out: a sender or recipient with a control byte, an angle
 *    bracket or longer than RELAY_ADDR_MAX bounces unsent (5.1.7, 5.1.3);
 *    a non-ASCII address to a server without SMTPUTF8 bounces (5.6.7).
 *    The data is encoded as for SMTP (CRLF, dot-stuffing, 998-octet
 *    lines).
 *  - replies are parsed by relay_reply_feed: bounded lines and count, a
 *    malformed reply is a protocol error (the connection is closed).
 *  - timeouts from relay_settings: connect, greeting, each command, DATA
 *    initiation, each data block, each reply after the data
 *    (data_final_timeout_ms); the whole call is bounded by
 *    attempt_timeout_ms.
 *  - connections are reused: after a clean transaction the connection is
 *    kept idle (keyed by the server) for idle_ms, at most max_idle of them
 *    (RELAY_NO_REUSE: none), at most 100 transactions each.
 *  - TLS over TCP, as the relay client's "may" (relay_conn_starttls):
 *    STARTTLS when the server offers it (unless tls_outbound is
 *    RELAY_TLS_NONE), LHLO again after the handshake (only what is
 *    offered over TLS counts); a refused STARTTLS goes on in plaintext, a
 *    failed handshake is tried once more in plaintext on a new
 *    connection. Nothing is verified: an LMTP server is a host on a
 *    trusted network. Never over a Unix socket.
 *
 * Results: as relay_deliver's (relay.h): relay "lmtp:unix:/path" or
 * "lmtp:[ADDR]:PORT", diag "LMTP server unix:/path said: 552 5.2.2 <u@d>
 * Quota exceeded (in reply to end of DATA command)", dsn the reply's
 * enhanced status code (or X.0.0), tls "Untrusted TLSv1.3 with cipher
 * TLS_AES_256_GCM_SHA384 (256/256 bits) (may)" (as the relay client
 * describes a session) or "plaintext (may)" over TCP ("" over a Unix
 * socket), dsn_passed 0.
 *
 * Errors: lmtp_deliver never fails as a whole: every outcome is in the
 * results. Out of memory aborts. The conversation is logged at debug.
 * Threads: lmtp_ctx_new/free on one thread while no delivery runs;
 * lmtp_deliver on any number of threads at once on one context.
 */
#ifndef RELAY_LMTP_H
#define RELAY_LMTP_H

#include <stddef.h>
#include <stdint.h>

#include "relay/relay.h"

#define LMTP_PORT 24

/* An LMTP server: unix_path, or host (an IPv4 or IPv6 literal, brackets
 * optional) and port (0 = LMTP_PORT). Borrowed for the call. */
struct lmtp_dest {
	const char *unix_path;	/* non-NULL: a Unix stream socket */
	const char *host;
	uint16_t port;
};

struct lmtp_ctx;

/* A context with st's helo_name, tls_outbound, timeouts, idle_ms,
 * max_idle and attempt_timeout_ms (copied; NULL or 0 fields: the relay
 * defaults); loads the TLS client credentials.
 * Returns NULL with a reason in err when a setting is out of range. */
struct lmtp_ctx *lmtp_ctx_new(const struct relay_settings *st, char *err,
    size_t errsize);

/* Closes the idle connections (QUIT) and frees; *ctxp = NULL. NULL is
 * fine. No lmtp_deliver may run. */
void lmtp_ctx_free(struct lmtp_ctx **ctxp);

/* Idle connections held now (for tests). */
size_t lmtp_ctx_idle_count(struct lmtp_ctx *ctx);

/* Delivers msg (relay.h: the body reader is read from its start) to
 * rcpts[0..n-1] at dest, and fills results[0..n-1] in the same order.
 * Blocks at most attempt_timeout_ms. */
void lmtp_deliver(struct lmtp_ctx *ctx, const struct lmtp_dest *dest,
    const struct relay_msg *msg, const struct relay_rcpt *rcpts, size_t n,
    struct relay_result *results);

#endif
