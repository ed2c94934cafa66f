/*
 * tls: GnuTLS glue for the inbound server: credentials loaded from the
 * configured PEM files with the tls_priority string and a session ticket
 * key, and non-blocking server sessions on a socket.
 *
 * Errors: tls_creds_load returns NULL and puts a message in err; I/O
 * functions return GnuTLS codes (negative), GNUTLS_E_AGAIN meaning "try
 * again when the socket is ready" (tls_wants_write tells for what).
 * Threads: credentials are immutable after load and shared (refcounted);
 * a session belongs to one worker thread.
 */
#ifndef SERVER_TLS_H
#define SERVER_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>

/* The default tls_priority: TLS 1.3 and 1.2 only, forward-secret key
 * exchange (no static RSA), AEAD ciphers only (no CBC, so no CBC-SHA1),
 * and the server's order preferred. */
#define TLS_PRIORITY_DEFAULT \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-RSA:-SHA1:-AES-128-CBC:" \
	"-AES-256-CBC:-CAMELLIA-128-CBC:-CAMELLIA-256-CBC:-3DES-CBC:" \
	"-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1:%SERVER_PRECEDENCE"

struct tls_creds;

/*
 * Loads a certificate chain and key (PEM) and sets priority (a GnuTLS
 * priority string; NULL: TLS_PRIORITY_DEFAULT). Global GnuTLS init is
 * done on first use. Returns NULL with err filled when a file or the
 * priority is unusable; *no_access_r (may be NULL) is set to 1 when a
 * file could not be opened for lack of permission (EACCES, EPERM), else 0.
 */
struct tls_creds *tls_creds_load(const char *cert_file, const char *key_file,
    const char *priority, int *no_access_r, char *err, size_t errsize);
struct tls_creds *tls_creds_ref(struct tls_creds *c);
void tls_creds_unref(struct tls_creds **cp);

/* Checks a priority string; returns 0, or -1 with the reason (and where
 * in the string) in err. Any thread. */
int tls_priority_check(const char *priority, char *err, size_t errsize);

/* A server session over fd (non-blocking), with session resumption by
 * tickets (RFC 5077, TLS 1.3 tickets). NULL on failure. */
gnutls_session_t tls_server_new(struct tls_creds *c, int fd);

/* Runs the handshake: 0 done, GNUTLS_E_AGAIN (call again when ready),
 * or another negative code (fatal: send an alert for it, then close). */
int tls_handshake(gnutls_session_t s);

/* After E_AGAIN: does the session wait to write (1) or to read (0)? */
int tls_wants_write(gnutls_session_t s);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" style
 * description for Received headers and logs. */
void tls_describe(gnutls_session_t s, char *out, size_t outsize);

#endif
