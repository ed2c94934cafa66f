/*
 * smtp_sasl: the server side of the SASL mechanisms PLAIN (RFC 4616) and
 * LOGIN as AUTH (RFC 4954) runs them: a small state machine that takes the
 * initial response and the client's response lines, and tells the session
 * what to answer: a challenge, credentials to check, or an error.
 *
 * Responses are strict base64 (RFC 4648, padding required, no blanks);
 * "=" is the empty initial response and "*" cancels. Decoded, the user
 * name holds at most SMTP_SASL_USER_MAX bytes, the password at most
 * SMTP_SASL_PASS_MAX, neither may hold a NUL, and PLAIN's authorization
 * identity must be empty or the user itself (no proxy logins).
 *
 * Secrets: the password lives in the struct until smtp_sasl_clear, which
 * wipes it; callers clear as soon as the credentials are copied.
 * Threads: a struct smtp_sasl belongs to one session.
 */
#ifndef SERVER_SMTP_SASL_H
#define SERVER_SMTP_SASL_H

#include <stddef.h>

#define SMTP_SASL_USER_MAX 255
#define SMTP_SASL_PASS_MAX 1024

enum smtp_sasl_result {
	SMTP_SASL_CHALLENGE,	/* reply "334 " + sasl->challenge */
	SMTP_SASL_CHECK,	/* sasl->user and sasl->pass are ready */
	SMTP_SASL_BAD_BASE64,	/* 501 5.5.2 (RFC 4954 4) */
	SMTP_SASL_MALFORMED,	/* decodes, but is no valid response: 535 */
	SMTP_SASL_CANCELLED,	/* "*": 501 5.7.0 */
	SMTP_SASL_UNKNOWN,	/* not a mechanism we offer: 504 5.5.4 */
};

enum smtp_sasl_step { SASL_STEP_NONE, SASL_STEP_PLAIN, SASL_STEP_LOGIN_USER,
	SASL_STEP_LOGIN_PASS };

struct smtp_sasl {
	enum smtp_sasl_step step;		/* internal */
	const char *challenge;			/* base64 text after "334 " */
	char user[SMTP_SASL_USER_MAX + 1];
	char pass[SMTP_SASL_PASS_MAX + 1];
};

/* The mechanisms we offer, for the EHLO line: "PLAIN LOGIN". */
#define SMTP_SASL_MECHANISMS "PLAIN LOGIN"

/* Starts mechanism mech (any case); initial is the initial response or
 * NULL. */
enum smtp_sasl_result smtp_sasl_start(struct smtp_sasl *a, const char *mech,
    const char *initial);

/* The client's next response line, after SMTP_SASL_CHALLENGE. */
enum smtp_sasl_result smtp_sasl_step(struct smtp_sasl *a, const char *line);

/* Wipes the credentials and ends the exchange. */
void smtp_sasl_clear(struct smtp_sasl *a);

/* Strict base64 decoding of text into out (outsize bytes); returns the
 * decoded length, or -1 when text is not base64 or does not fit. With out
 * NULL it only checks text and returns the length it decodes to. */
long smtp_sasl_base64_decode(const char *text, unsigned char *out, size_t outsize);

#endif
