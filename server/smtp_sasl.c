/*
 * smtp_sasl: PLAIN and LOGIN, server side (contract in smtp_sasl.h).
 */
#include "server/smtp_sasl.h"

#include <string.h>
#include <strings.h>

#include "lib/util.h"

/* Decoded bytes a response may hold: PLAIN's authzid, user and password. */
#define SASL_DECODED_MAX (2 * SMTP_SASL_USER_MAX + SMTP_SASL_PASS_MAX + 2)

static const char sasl_challenge_user[] = "VXNlcm5hbWU6";	/* "Username:" */
static const char sasl_challenge_pass[] = "UGFzc3dvcmQ6";	/* "Password:" */

static int
sasl_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
smtp_sasl_base64_decode(const char *text, unsigned char *out, size_t outsize)
{
	size_t n = strlen(text), o = 0;

	if (n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		unsigned char b[3];

		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)text[i + k];

			if (c == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad > 0 || (v[k] = sasl_b64_value(c)) < 0)
				return -1;
		}
		b[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		b[1] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		b[2] = (unsigned char)((v[2] & 3) << 6 | v[3]);
		for (int k = 0; k < 3 - pad; k++, o++)
			if (out != NULL && o < outsize)
				out[o] = b[k];
	}
	return out != NULL && o > outsize ? -1 : (long)o;
}

/* Decodes a response; "=" is the empty one. Returns the length, -1 for
 * bad base64, -2 when it decodes to more than outsize. */
static long
sasl_decode(const char *text, unsigned char *out, size_t outsize)
{
	long n;

	if (strcmp(text, "=") == 0)
		return 0;
	if ((n = smtp_sasl_base64_decode(text, NULL, 0)) < 0)
		return -1;
	if ((size_t)n > outsize)
		return -2;
	return smtp_sasl_base64_decode(text, out, outsize);
}

/* Copies a decoded name or password (no NUL inside) into dst. */
static int
sasl_copy(char *dst, size_t dstsize, const unsigned char *src, size_t n)
{
	if (n >= dstsize || memchr(src, '\0', n) != NULL)
		return -1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

static enum smtp_sasl_result
sasl_fail(struct smtp_sasl *a, enum smtp_sasl_result r)
{
	smtp_sasl_clear(a);
	return r;
}

/* authzid NUL authcid NUL passwd */
static enum smtp_sasl_result
sasl_plain(struct smtp_sasl *a, const char *text)
{
	unsigned char dec[SASL_DECODED_MAX];
	long n = sasl_decode(text, dec, sizeof dec);
	const unsigned char *nul1, *nul2, *user, *pass;
	size_t zlen, ulen, plen;

	if (n == -1)
		return sasl_fail(a, SMTP_SASL_BAD_BASE64);
	if (n < 0 || (nul1 = memchr(dec, '\0', (size_t)n)) == NULL)
		return sasl_fail(a, SMTP_SASL_MALFORMED);
	user = nul1 + 1;
	nul2 = memchr(user, '\0', (size_t)(dec + n - user));
	if (nul2 == NULL)
		return sasl_fail(a, SMTP_SASL_MALFORMED);
	pass = nul2 + 1;
	zlen = (size_t)(nul1 - dec);
	ulen = (size_t)(nul2 - user);
	plen = (size_t)(dec + n - pass);
	if (ulen == 0 || sasl_copy(a->user, sizeof a->user, user, ulen) < 0 ||
	    sasl_copy(a->pass, sizeof a->pass, pass, plen) < 0)
		return sasl_fail(a, SMTP_SASL_MALFORMED);
	/* No proxy authorisation: the authzid, if any, is the user. */
	if (zlen != 0 && (zlen != ulen || memcmp(dec, user, ulen) != 0))
		return sasl_fail(a, SMTP_SASL_MALFORMED);
	explicit_bzero(dec, sizeof dec);
	a->step = SASL_STEP_NONE;
	return SMTP_SASL_CHECK;
}

static enum smtp_sasl_result
sasl_login_user(struct smtp_sasl *a, const char *text)
{
	unsigned char dec[SMTP_SASL_USER_MAX + 1];
	long n = sasl_decode(text, dec, sizeof dec);

	if (n == -1)
		return sasl_fail(a, SMTP_SASL_BAD_BASE64);
	if (n <= 0 || sasl_copy(a->user, sizeof a->user, dec, (size_t)n) < 0)
		return sasl_fail(a, SMTP_SASL_MALFORMED);
	a->step = SASL_STEP_LOGIN_PASS;
	a->challenge = sasl_challenge_pass;
	return SMTP_SASL_CHALLENGE;
}

static enum smtp_sasl_result
sasl_login_pass(struct smtp_sasl *a, const char *text)
{
	unsigned char dec[SMTP_SASL_PASS_MAX + 1];
	long n = sasl_decode(text, dec, sizeof dec);

	if (n == -1)
		return sasl_fail(a, SMTP_SASL_BAD_BASE64);
	if (n < 0 || sasl_copy(a->pass, sizeof a->pass, dec, (size_t)n) < 0)
		return sasl_fail(a, SMTP_SASL_MALFORMED);
	explicit_bzero(dec, sizeof dec);
	a->step = SASL_STEP_NONE;
	return SMTP_SASL_CHECK;
}

enum smtp_sasl_result
smtp_sasl_start(struct smtp_sasl *a, const char *mech, const char *initial)
{
	smtp_sasl_clear(a);
	if (strcasecmp(mech, "PLAIN") == 0) {
		if (initial != NULL)
			return sasl_plain(a, initial);
		a->step = SASL_STEP_PLAIN;
		a->challenge = "";
		return SMTP_SASL_CHALLENGE;
	}
	if (strcasecmp(mech, "LOGIN") == 0) {
		/* An initial response carries the user name. */
		if (initial != NULL)
			return sasl_login_user(a, initial);
		a->step = SASL_STEP_LOGIN_USER;
		a->challenge = sasl_challenge_user;
		return SMTP_SASL_CHALLENGE;
	}
	return SMTP_SASL_UNKNOWN;
}

enum smtp_sasl_result
smtp_sasl_step(struct smtp_sasl *a, const char *line)
{
	if (strcmp(line, "*") == 0)
		return sasl_fail(a, SMTP_SASL_CANCELLED);
	switch (a->step) {
	case SASL_STEP_PLAIN:
		return sasl_plain(a, line);
	case SASL_STEP_LOGIN_USER:
		return sasl_login_user(a, line);
	case SASL_STEP_LOGIN_PASS:
		return sasl_login_pass(a, line);
	case SASL_STEP_NONE:
	default:
		return sasl_fail(a, SMTP_SASL_MALFORMED);
	}
}

void
smtp_sasl_clear(struct smtp_sasl *a)
{
	explicit_bzero(a, sizeof *a);
	a->step = SASL_STEP_NONE;
	a->challenge = "";
}
