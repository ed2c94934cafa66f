/*
 * smtp_auth_dovecot: AUTH checked by Dovecot's auth service
 * (auth_service = dovecot:ENDPOINT) instead of users_file, as Postfix's
 * smtpd_sasl_type = dovecot does. The session passes the SASL exchange
 * through (server/sasl_dovecot.h speaks the protocol): the mechanisms are
 * Dovecot's, Dovecot runs them and names the user.
 *
 * Every exchange step waits on Dovecot, so it runs on the filter pool
 * (server/offloop.h), never on a session worker's event loop: a slow or
 * hung Dovecot delays only the sessions that are logging in. Between
 * the steps of one exchange (a challenge, "334", and the client's
 * answer) the session holds the connection the exchange runs on; at its
 * end the connection goes back to a pool of idle ones shared by all
 * sessions of the runtime snapshot.
 *
 * The EHLO line shows the mechanisms Dovecot offered on its last
 * handshake (without anonymous ones); before the first connection,
 * AUTH_DOVECOT_FALLBACK_MECHS, and the first EHLO starts a connection
 * in the background so that the next one shows Dovecot's list.
 *
 * What the session does with the session-level functions is in
 * smtp_session_int.h (session_dovecot_*).
 * Threads: auth_dovecot_new and _free where a runtime snapshot is made
 * and dropped; the rest from any thread (short critical sections).
 */
#ifndef SERVER_SMTP_AUTH_DOVECOT_H
#define SERVER_SMTP_AUTH_DOVECOT_H

#include <stddef.h>

#define AUTH_DOVECOT_FALLBACK_MECHS "PLAIN LOGIN"
#define AUTH_DOVECOT_IDLE_MAX 32	/* idle connections kept */

struct auth_dovecot;

/* The service at endpoint ("unix:/path" or "inet:host:port"), each wait
 * bounded by timeout_ms. Nothing is connected yet. NULL with a reason in
 * err when the endpoint is bad. */
struct auth_dovecot *auth_dovecot_new(const char *endpoint, unsigned timeout_ms,
    char *err, size_t errsize);
void auth_dovecot_free(struct auth_dovecot **dp);

/* The mechanisms for the EHLO line into out. Returns 1 when they are
 * Dovecot's, 0 for the fallback list (not connected yet). */
int auth_dovecot_mechs(struct auth_dovecot *d, char *out, size_t outsize);

#endif
