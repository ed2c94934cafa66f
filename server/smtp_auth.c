/*
 * smtp_auth: AUTH (RFC 4954) with the PLAIN and LOGIN mechanisms against
 * users_file.
 */
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/smtp_session_int.h"

static void
session_auth_finish(struct smtp_session *s, const char *user, const char *pass)
{
	s->auth_mech = AUTH_NONE;
	s->phase = PH_COMMAND;
	smtp_cmd_parser_set_max(&s->cp, SMTP_COMMAND_LINE_MAX);
	if (user[0] && userdb_check_password(s->rt->udb, user, pass)) {
		str_copy(s->auth_user, user, sizeof s->auth_user);
		s->may_relay = 1;
		log_info("auth: [%s] sasl_username=%s", s->peer_ip, user);
		session_reply(s, "235 2.7.0 Authentication successful");
		return;
	}
	log_info("auth failed: [%s] sasl_username=%s", s->peer_ip, user);
	session_reply(s, "535 5.7.8 Error: authentication failed");
	session_error(s);
}

/* Decodes base64 text into out (NUL-terminated); -1 when invalid. */
static int
session_b64(const char *text, char *out, size_t outsize, size_t *len_r)
{
	gnutls_datum_t in = { (unsigned char *)text, (unsigned)strlen(text) };
	gnutls_datum_t dec = { NULL, 0 };

	if (strcmp(text, "=") == 0) {
		out[0] = '\0';
		*len_r = 0;
		return 0;
	}
	if (gnutls_base64_decode2(&in, &dec) < 0)
		return -1;
	if (dec.size >= outsize) {
		gnutls_free(dec.data);
		return -1;
	}
	memcpy(out, dec.data, dec.size);
	out[dec.size] = '\0';
	*len_r = dec.size;
	gnutls_free(dec.data);
	return 0;
}

static void
session_auth_plain(struct smtp_session *s, const char *resp)
{
	char dec[1024];
	size_t n;
	const char *authcid, *pass;

	if (session_b64(resp, dec, sizeof dec, &n) < 0) {
		session_auth_finish(s, "", "");
		return;
	}
	/* authzid NUL authcid NUL passwd */
	authcid = memchr(dec, '\0', n);
	if (authcid == NULL || (pass = memchr(authcid + 1, '\0', n - (size_t)(authcid + 1 - dec))) == NULL) {
		session_auth_finish(s, "", "");
		return;
	}
	authcid++;
	pass++;
	if (dec[0] && strcmp(dec, authcid) != 0) {	/* no proxy authorisation */
		session_auth_finish(s, "", "");
		return;
	}
	session_auth_finish(s, authcid, pass);
}

void
session_auth_abort(struct smtp_session *s)
{
	s->auth_mech = AUTH_NONE;
	s->phase = PH_COMMAND;
	smtp_cmd_parser_set_max(&s->cp, SMTP_COMMAND_LINE_MAX);
}

void
session_auth_response(struct smtp_session *s, const char *line)
{
	char dec[1024];
	size_t n;

	if (strcmp(line, "*") == 0) {
		session_auth_abort(s);
		session_reply(s, "501 5.7.0 Authentication aborted");
		return;
	}
	switch (s->auth_mech) {
	case AUTH_PLAIN:
		session_auth_plain(s, line);
		break;
	case AUTH_LOGIN_USER:
		if (session_b64(line, dec, sizeof dec, &n) < 0 || strlen(dec) != n) {
			session_auth_finish(s, "", "");
			break;
		}
		str_copy(s->auth_login_user, dec, sizeof s->auth_login_user);
		s->auth_mech = AUTH_LOGIN_PASS;
		session_reply(s, "334 UGFzc3dvcmQ6");
		break;
	case AUTH_LOGIN_PASS:
		if (session_b64(line, dec, sizeof dec, &n) < 0 || strlen(dec) != n)
			session_auth_finish(s, "", "");
		else
			session_auth_finish(s, s->auth_login_user, dec);
		break;
	case AUTH_NONE:
		break;
	}
}

int
session_auth_offered(const struct smtp_session *s)
{
	/* Passwords only over TLS, except from loopback. */
	return s->auth_user[0] == '\0' &&
	    (s->io.tls_active || strcmp(s->peer_ip, "127.0.0.1") == 0 ||
	    strcmp(s->peer_ip, "::1") == 0);
}

void
session_cmd_auth(struct smtp_session *s, const char *arg)
{
	char mech[32];
	const char *initial;
	size_t n = strcspn(arg, " ");

	if (!s->esmtp) {
		session_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->auth_user[0]) {
		session_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->in_txn) {
		session_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (!session_auth_offered(s)) {
		session_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	if (n == 0 || n >= sizeof mech) {
		session_reply(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	memcpy(mech, arg, n);
	mech[n] = '\0';
	initial = arg[n] ? arg + n + 1 : NULL;
	smtp_cmd_parser_set_max(&s->cp, SMTP_AUTH_LINE_MAX);
	if (strcasecmp(mech, "PLAIN") == 0) {
		s->auth_mech = AUTH_PLAIN;
		if (initial) {
			session_auth_plain(s, initial);
		} else {
			s->phase = PH_AUTH;
			session_reply(s, "334 ");
		}
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		s->auth_mech = AUTH_LOGIN_USER;
		s->phase = PH_AUTH;
		if (initial)
			session_auth_response(s, initial);
		else
			session_reply(s, "334 VXNlcm5hbWU6");
	} else {
		smtp_cmd_parser_set_max(&s->cp, SMTP_COMMAND_LINE_MAX);
		session_reply(s, "504 5.5.4 Unrecognized authentication type");
	}
}
