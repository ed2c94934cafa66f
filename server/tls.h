/*
 * tls: GnuTLS glue for the inbound server: credentials loaded from the
 * configured PEM files, and non-blocking server sessions on a socket.
 *
 * Errors: load functions return NULL and put a message in err; I/O
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

struct tls_creds;

/* Loads a certificate chain and key (PEM). Global GnuTLS init is done on
 * first use. Returns NULL with err filled when the files are unusable. */
struct tls_creds *tls_creds_load(const char *cert_file, const char *key_file,
    char *err, size_t errsize);
struct tls_creds *tls_creds_ref(struct tls_creds *c);
void tls_creds_unref(struct tls_creds **cp);

/* A server session over fd (non-blocking). NULL on failure. */
gnutls_session_t tls_server_new(struct tls_creds *c, int fd);

/* Runs the handshake: 0 done, GNUTLS_E_AGAIN (call again when ready),
 * or another negative code (fatal: close). */
int tls_handshake(gnutls_session_t s);

/* After E_AGAIN: does the session wait to write (1) or to read (0)? */
int tls_wants_write(gnutls_session_t s);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" style
 * description for Received headers and logs. */
void tls_describe(gnutls_session_t s, char *out, size_t outsize);

#endif
