/*
 * relay_conn: one outbound SMTP connection of relay/relay.c: a
 * non-blocking TCP socket, optionally under a GnuTLS client session, with
 * every wait bounded by poll() and a deadline, and a bounded input buffer
 * from which replies are parsed (relay/relay_proto.h).
 *
 * Internal to relay/relay*.c; not for other modules.
 *
 * Errors: each call returns an enum relay_io; a connection that returned
 * anything but RELAY_IO_OK must only be closed. SIGPIPE is never raised
 * (MSG_NOSIGNAL, GNUTLS_NO_SIGNAL).
 * Threads: a connection belongs to one thread at a time (it moves between
 * threads through the relay context's idle cache, under its mutex).
 */
#ifndef RELAY_RELAY_CONN_H
#define RELAY_RELAY_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#include "dns/dns.h"
#include "relay/relay_proto.h"

enum relay_io {
	RELAY_IO_OK = 0,
	RELAY_IO_TIMEOUT,	/* the deadline passed */
	RELAY_IO_EOF,		/* the peer closed or reset the connection */
	RELAY_IO_ERROR,		/* another socket or TLS error */
	RELAY_IO_PROTO,		/* a malformed reply (reply->error says why) */
	RELAY_IO_BODY,		/* the message could not be read (the
				 * connection is still fine, but must not
				 * be used: the final "." was not sent) */
};

struct relay_conn;

/* Connects to addr:port within timeout_ms. On success *c_r is the
 * connection (close with relay_conn_close). On failure err gets the
 * reason ("Connection refused", "Connection timed out"). */
int relay_conn_open(const struct dns_addr *addr, uint16_t port,
    unsigned timeout_ms, struct relay_conn **c_r, char *err, size_t errsize);

/* Connects to the Unix stream socket at path (LMTP, relay/lmtp.h)
 * within timeout_ms; as relay_conn_open otherwise ("No such file or
 * directory", "Connection refused"). */
int relay_conn_open_unix(const char *path, unsigned timeout_ms,
    struct relay_conn **c_r, char *err, size_t errsize);

/* Closes (TLS close_notify best effort, no waiting) and frees; *cp = NULL.
 * NULL is fine. */
void relay_conn_close(struct relay_conn **cp);

/* Ends a session politely: QUIT, its reply awaited up to timeout_ms
 * (what it says does not matter), then relay_conn_close. name is for the
 * debug log line. NULL is fine. */
void relay_conn_quit(struct relay_conn **cp, const char *name,
    unsigned timeout_ms);

/* Writes all n bytes within timeout_ms. */
int relay_conn_write(struct relay_conn *c, const void *p, size_t n,
    unsigned timeout_ms);

/* Reads one complete reply into r within timeout_ms. Bytes after it (the
 * next pipelined reply) stay buffered for the next call. */
int relay_conn_read_reply(struct relay_conn *c, struct relay_reply *r,
    unsigned timeout_ms);

/*
 * Sends the message of body after the 354 to DATA: rewound, read piece by
 * piece and encoded (relay_proto.h: CRLF, dot-stuffing, folding; the
 * encoder keeps its state across pieces, so the message is never whole in
 * memory), then the final ".". Each write waits at most block_timeout_ms
 * and never past deadline (monotonic ms). Returns RELAY_IO_OK, an I/O
 * status, or RELAY_IO_BODY when body failed: then the final "." was not
 * sent, and the connection must be closed (half a message must never
 * look whole).
 */
struct body_reader;
int relay_conn_send_data(struct relay_conn *c, const struct body_reader *body,
    unsigned block_timeout_ms, int64_t deadline);

/* Throws away every buffered input byte, then runs the TLS client
 * handshake within timeout_ms; sni (a host name, or NULL) is sent as
 * server name. tls12: offer TLS 1.2 and later only (RFC 8996), else
 * GnuTLS's default versions. Certificates are not verified here: the
 * caller judges the session (relay/tls_policy.h) before it sends
 * anything. On failure err gets the GnuTLS reason. cred is borrowed
 * (shared, read-only). */
int relay_conn_starttls(struct relay_conn *c,
    gnutls_certificate_credentials_t cred, const char *sni, int tls12,
    unsigned timeout_ms, char *err, size_t errsize);

/* Input received and not yet parsed (bytes). */
size_t relay_conn_buffered(const struct relay_conn *c);

/* 1 when the connection runs TLS. */
int relay_conn_is_tls(const struct relay_conn *c);

/* The GnuTLS session of a TLS connection (NULL in plaintext), to judge
 * the peer's certificate; it stays the connection's. */
gnutls_session_t relay_conn_tls_session(const struct relay_conn *c);

/* This side's address of the connection, numeric, into out ("" when it
 * cannot be had). */
void relay_conn_local_addr(const struct relay_conn *c, char *out, size_t outsize);

/* 1 when something is readable now without waiting (data or EOF): an
 * idle connection in that state is not reusable. */
int relay_conn_readable(struct relay_conn *c);

/* Bytes written so far (for debug logs and statistics). */
uint64_t relay_conn_bytes_out(const struct relay_conn *c);

#endif
