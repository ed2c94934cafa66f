/*
 * smtp_args: the arguments of MAIL FROM and RCPT TO (contract in
 * smtp_args.h): the path of RFC 5321 4.1.2 (with RFC 6531 UTF-8 addresses)
 * and the ESMTP parameters we announce.
 *
 * Strict by design: the path must be in angle brackets (as Postfix's
 * strict_rfc821_envelopes), a dot-string local part has no empty atoms,
 * addresses hold no controls and no spaces outside a quoted local part,
 * xtext must be well formed, and decoded xtext must be printable ASCII
 * (an ORCPT address: UTF-8 text without controls) so that nothing a
 * client sends can break a DSN or log line. Everything is
 * parsed in place from the (already length-bounded) command line; no
 * allocation.
 */
#include "server/smtp_args.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/utf8.h"
#include "lib/util.h"

/* Ways an address can be wrong; each maps to a reply. */
enum args_status {
	ARGS_OK = 0,
	ARGS_SYNTAX,		/* no <...>, or garbage around it */
	ARGS_TOO_LONG,		/* path over SMTP_PATH_MAX */
	ARGS_BAD_ADDR,		/* the mailbox itself is malformed */
	ARGS_NEED_UTF8,		/* non-ASCII without SMTPUTF8 */
	ARGS_BAD_UTF8,		/* not valid UTF-8 */
};

#define ARGS_LABEL_MAX 63		/* RFC 1035 */
#define ARGS_ENVID_MAX 100		/* RFC 3461 4.4 */
#define ARGS_SIZE_DIGITS 20		/* UINT64_MAX has 20 digits */
#define ARGS_ECHO_MAX 32		/* keyword bytes echoed in a reply */

static int args_error(char *err, size_t errsize, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes a reply line into err; always returns -1 for the caller's use. */
static int
args_error(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errsize == 0)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
	if (n < 0)
		err[0] = '\0';
	/* A truncated reply is still a reply: the caller's buffer decides. */
	return -1;
}

/* ---------------------------------------------------------------------
 * Character classes
 */

static int
args_is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
args_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 atext. */
static int
args_is_atext(unsigned char c)
{
	return args_is_alpha(c) || args_is_digit(c) ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int
args_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* ---------------------------------------------------------------------
 * Addresses
 */

/* Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str];
 * with utf8, non-ASCII bytes count as letters (U-labels, RFC 6531). */
static int
args_domain_ok(const unsigned char *s, size_t n, int utf8)
{
	size_t label = 0;

	if (n == 0 || n > SMTP_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (c == '-') {
			if (label == 0)
				return 0;
		} else if (!args_is_alpha(c) && !args_is_digit(c) &&
		    !(utf8 && c >= 0x80))
			return 0;
		if (++label > ARGS_LABEL_MAX)
			return 0;
	}
	return label > 0 && s[n - 1] != '-';
}

/* address-literal: "[" IPv4 "]" or "[IPv6:" IPv6 "]". General address
 * literals (tag:content) name no protocol we speak: refused. */
static int
args_literal_ok(const unsigned char *s, size_t n)
{
	char text[SMTP_DOMAIN_MAX + 1];
	unsigned char addr[16];
	size_t len;

	if (n < 3 || n > SMTP_DOMAIN_MAX || s[0] != '[' || s[n - 1] != ']')
		return 0;
	len = n - 2;
	memcpy(text, s + 1, len);
	text[len] = '\0';
	if (strlen(text) != len)
		return 0;
	if (len > 5 && strncasecmp(text, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, text + 5, addr) == 1;
	return inet_pton(AF_INET, text, addr) == 1;
}

/* Local-part = Dot-string / Quoted-string. Returns its length in s (the
 * '@' that follows is not included), or 0 when malformed. */
static size_t
args_local_part(const unsigned char *s, size_t n, int utf8)
{
	size_t i = 0;

	if (n > 0 && s[0] == '"') {
		for (i = 1; i < n; i++) {
			unsigned char c = s[i];

			if (c == '"')
				return i + 1;
			if (c == '\\') {
				if (i + 1 >= n || s[i + 1] < 32 || s[i + 1] > 126)
					return 0;
				i++;
			} else if (c < 32 || c == 127 || (c >= 0x80 && !utf8))
				return 0;
		}
		return 0;
	}
	for (;;) {
		size_t atom = 0;

		while (i < n && (args_is_atext(s[i]) || (utf8 && s[i] >= 0x80))) {
			i++;
			atom++;
		}
		if (atom == 0)
			return 0;
		if (i < n && s[i] == '.') {
			i++;
			continue;
		}
		return i;
	}
}

/*
 * Copies the mailbox m[0..n) into out (which holds n + 1 bytes at least),
 * without the quotes of a quoted local part that did not need them:
 * "alice"@example.org is alice@example.org (RFC 5322 3.2.4: a quoted
 * string is the same as an atom), as users_file, aliases and the
 * Maildirs know it. A local part that needs its quotes is kept as sent.
 */
static void
args_copy_mailbox(char *out, const char *m, size_t n, int utf8)
{
	const char *at = memrchr(m, '@', n);
	size_t o = 0;

	if (n > 0 && m[0] == '"' && at != NULL && at - m >= 2 && at[-1] == '"') {
		for (const char *p = m + 1; p < at - 1; p++) {
			if (*p == '\\')
				p++;
			out[o++] = *p;
		}
		if (o > 0 && args_local_part((const unsigned char *)out, o, utf8) == o) {
			memcpy(out + o, at, (size_t)(m + n - at));
			out[o + (size_t)(m + n - at)] = '\0';
			return;
		}
	}
	memcpy(out, m, n);
	out[n] = '\0';
}

/*
 * Checks the text between < and > (not empty) and finds the mailbox in it,
 * dropping a source route. utf8: non-ASCII allowed (then valid UTF-8).
 */
static enum args_status
args_check_path(const char *inner, size_t n, int utf8, const char **mbox_r,
    size_t *mbox_len_r)
{
	const unsigned char *s = (const unsigned char *)inner;
	int has8 = 0;
	size_t i = 0, local, at;

	for (size_t k = 0; k < n; k++) {
		if (s[k] < 32 || s[k] == 127)
			return ARGS_BAD_ADDR;
		if (s[k] >= 0x80)
			has8 = 1;
	}
	if (has8 && !utf8)
		return ARGS_NEED_UTF8;
	if (has8 && !utf8_valid(s, n))
		return ARGS_BAD_UTF8;

	/* A-d-l = At-domain *( "," At-domain ) ":", ignored (RFC 5321 4.1.2
	 * and appendix C). */
	if (n > 0 && s[0] == '@') {
		for (;;) {
			size_t start = ++i;

			while (i < n && s[i] != ',' && s[i] != ':')
				i++;
			if (i >= n || !args_domain_ok(s + start, i - start, utf8))
				return ARGS_BAD_ADDR;
			if (s[i] == ':')
				break;
			if (i + 1 >= n || s[i + 1] != '@')
				return ARGS_BAD_ADDR;
			i++;
		}
		i++;
	}

	local = args_local_part(s + i, n - i, utf8);
	if (local == 0)
		return ARGS_BAD_ADDR;
	at = i + local;
	if (at >= n || s[at] != '@')
		return ARGS_BAD_ADDR;
	if (at + 1 < n && s[at + 1] == '[') {
		if (!args_literal_ok(s + at + 1, n - at - 1))
			return ARGS_BAD_ADDR;
	} else if (!args_domain_ok(s + at + 1, n - at - 1, utf8))
		return ARGS_BAD_ADDR;
	*mbox_r = inner + i;
	*mbox_len_r = n - i;
	return ARGS_OK;
}

/*
 * Finds "<...>" at the start of arg (after spaces). A '>' inside a quoted
 * local part does not close the path. *rest_r is what follows the '>'.
 */
static enum args_status
args_split_path(const char *arg, const char **inner_r, size_t *len_r,
    const char **rest_r)
{
	const char *s, *p;
	int quoted = 0;

	if (arg == NULL)
		return ARGS_SYNTAX;
	s = arg;
	while (*s == ' ')
		s++;
	if (*s != '<')
		return ARGS_SYNTAX;
	for (p = s + 1; *p != '\0'; p++) {
		if (quoted) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				quoted = 0;
		} else if (*p == '"')
			quoted = 1;
		else if (*p == '>')
			break;
	}
	if (*p != '>')
		return ARGS_SYNTAX;
	if (*(p + 1) != '\0' && *(p + 1) != ' ')
		return ARGS_SYNTAX;
	*inner_r = s + 1;
	*len_r = (size_t)(p - (s + 1));
	*rest_r = p + 1;
	if (*len_r + 2 > SMTP_PATH_MAX)
		return ARGS_TOO_LONG;
	return ARGS_OK;
}

/* ---------------------------------------------------------------------
 * Parameters
 */

/* One "KEYWORD[=value]" token of the parameter list. */
struct args_param {
	const char *key;
	size_t keylen;
	const char *value;	/* NULL when there is no '=' */
	size_t valuelen;
};

/*
 * Takes the next parameter from *cursor (space separated). Returns 1 with
 * *param filled, 0 at the end, -1 on a malformed token (esmtp-keyword and
 * esmtp-value of RFC 5321 4.1.2: printable ASCII, no '=' in the value).
 */
static int
args_next_param(const char **cursor, struct args_param *param, int allow8)
{
	const char *s = *cursor, *end;

	while (*s == ' ')
		s++;
	if (*s == '\0') {
		*cursor = s;
		return 0;
	}
	end = s;
	while (*end != '\0' && *end != ' ')
		end++;
	*cursor = end;
	param->key = s;
	param->value = NULL;
	param->valuelen = 0;
	while (s < end && *s != '=')
		s++;
	param->keylen = (size_t)(s - param->key);
	if (param->keylen == 0 ||
	    !(args_is_alpha((unsigned char)param->key[0]) ||
	    args_is_digit((unsigned char)param->key[0])))
		return -1;
	for (size_t k = 1; k < param->keylen; k++) {
		unsigned char c = (unsigned char)param->key[k];

		if (!args_is_alpha(c) && !args_is_digit(c) && c != '-')
			return -1;
	}
	if (s == end)
		return 1;
	param->value = s + 1;
	param->valuelen = (size_t)(end - param->value);
	if (param->valuelen == 0)
		return -1;
	for (size_t k = 0; k < param->valuelen; k++) {
		unsigned char c = (unsigned char)param->value[k];

		/* RFC 6531 3.3: with SMTPUTF8 a value may hold UTF-8. */
		if (c < 33 || c == 127 || c == '=' || (c > 127 && !allow8))
			return -1;
	}
	if (allow8 && !utf8_valid((const unsigned char *)param->value,
	    param->valuelen))
		return -1;
	return 1;
}

static int
args_key_is(const struct args_param *param, const char *name)
{
	return strlen(name) == param->keylen &&
	    strncasecmp(param->key, name, param->keylen) == 0;
}

static int
args_value_is(const char *v, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(v, name, n) == 0;
}

/*
 * Decoded text that ends up in DSN fields and logs: printable ASCII, or
 * with utf8 also UTF-8 (RFC 3629) without C1 controls.
 */
static int
args_text_ok(const char *s, size_t n, int utf8)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 32 || c == 127 || (c >= 0x80 && !utf8))
			return 0;
	}
	return !utf8 || (utf8_valid((const unsigned char *)s, n) &&
	    !utf8_has_c1((const unsigned char *)s, n));
}

/*
 * xtext (RFC 3461 4): "+" and two hex digits, or a character 33-126 other
 * than '+' and '='. Lower-case hex is tolerated. The decoded text must be
 * printable ASCII (it ends up in DSN headers), or with utf8 UTF-8 text
 * (Postfix sends a UTF-8 ORCPT address so, byte by byte). Returns 0, or -1
 * when malformed or when it does not fit in out (outsize includes the
 * NUL).
 */
static int
args_xtext_decode(const char *v, size_t n, int utf8, char *out, size_t outsize)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '+') {
			int hi, lo;

			if (n - i < 3)
				return -1;
			hi = args_hex_value((unsigned char)v[i + 1]);
			lo = args_hex_value((unsigned char)v[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return -1;
		if (o + 1 >= outsize)
			return -1;
		out[o++] = (char)c;
	}
	if (outsize == 0)
		return -1;
	out[o] = '\0';
	return args_text_ok(out, o, utf8) ? 0 : -1;
}

/* Appends code point cp as UTF-8; -1 when it does not fit. */
static int
args_put_utf8(char *out, size_t outsize, size_t *o, unsigned long cp)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xC0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xE0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		b[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xF0 | cp >> 18);
		b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
		b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		b[3] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	if (*o + n >= outsize)
		return -1;
	memcpy(out + *o, b, n);
	*o += n;
	return 0;
}

/*
 * RFC 6533 3: utf-8-addr-xtext (QCHAR and "\x{HEX}") or, with utf8,
 * utf-8-addr-unitext (UTF-8 as is). Decoded into out as UTF-8 text.
 */
static int
args_uxtext_decode(const char *v, size_t n, int utf8, char *out, size_t outsize)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '\\') {
			unsigned long cp = 0;
			size_t digits = 0;

			if (n - i < 5 || v[i + 1] != 'x' || v[i + 2] != '{')
				return -1;
			for (i += 3; i < n && v[i] != '}'; i++) {
				int h = args_hex_value((unsigned char)v[i]);

				if (h < 0 || ++digits > 6)
					return -1;
				cp = cp * 16 + (unsigned long)h;
			}
			if (i == n || digits == 0 || cp > 0x10FFFF ||
			    (cp >= 0xD800 && cp <= 0xDFFF) ||
			    args_put_utf8(out, outsize, &o, cp) < 0)
				return -1;
			continue;
		}
		if (c < 33 || c == 127 || c == '+' || c == '=' || (c > 127 && !utf8))
			return -1;
		if (o + 1 >= outsize)
			return -1;
		out[o++] = (char)c;
	}
	if (outsize == 0)
		return -1;
	out[o] = '\0';
	return args_text_ok(out, o, 1) ? 0 : -1;
}

/* SIZE=1*20DIGIT, without overflow. */
static int
args_parse_size(const char *v, size_t n, uint64_t *size_r)
{
	uint64_t size = 0;

	if (n == 0 || n > ARGS_SIZE_DIGITS)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (!args_is_digit((unsigned char)v[i]))
			return -1;
		d = (unsigned)(v[i] - '0');
		if (size > (UINT64_MAX - d) / 10)
			return -1;
		size = size * 10 + d;
	}
	*size_r = size;
	return 0;
}

/* NOTIFY=NEVER / 1#(SUCCESS / FAILURE / DELAY). */
static int
args_parse_notify(const char *v, size_t n, unsigned *notify_r)
{
	unsigned notify = 0;
	size_t i = 0;

	while (i <= n) {
		size_t start = i;

		while (i < n && v[i] != ',')
			i++;
		if (args_value_is(v + start, i - start, "NEVER"))
			notify |= DSN_NOTIFY_NEVER;
		else if (args_value_is(v + start, i - start, "SUCCESS"))
			notify |= DSN_NOTIFY_SUCCESS;
		else if (args_value_is(v + start, i - start, "FAILURE"))
			notify |= DSN_NOTIFY_FAILURE;
		else if (args_value_is(v + start, i - start, "DELAY"))
			notify |= DSN_NOTIFY_DELAY;
		else
			return -1;
		i++;
	}
	if ((notify & DSN_NOTIFY_NEVER) && notify != DSN_NOTIFY_NEVER)
		return -1;
	*notify_r = notify;
	return 0;
}

/*
 * ORCPT=addr-type ";" value, stored as "type;decoded" with the address at
 * most SMTP_ORCPT_MAX bytes. The value is xtext (RFC 3461), whose decoded
 * bytes may be UTF-8; for addr-type utf-8 it is RFC 6533's form.
 */
static int
args_parse_orcpt(const char *v, size_t n, int utf8, char *out, size_t outsize)
{
	const char *semi = memchr(v, ';', n);
	size_t typelen;

	if (semi == NULL || semi == v || (size_t)(semi - v) + 1 == n)
		return -1;
	typelen = (size_t)(semi - v);
	if (typelen > SMTP_ADDR_TYPE_MAX || typelen + 1 + SMTP_ORCPT_MAX + 1 > outsize)
		return -1;
	for (size_t i = 0; i < typelen; i++)
		if (!args_is_atext((unsigned char)v[i]))
			return -1;
	memcpy(out, v, typelen + 1);
	if (typelen == 5 && strncasecmp(v, "utf-8", 5) == 0)
		return args_uxtext_decode(semi + 1, n - typelen - 1, utf8,
		    out + typelen + 1, SMTP_ORCPT_MAX + 1);
	return args_xtext_decode(semi + 1, n - typelen - 1, 1, out + typelen + 1,
	    SMTP_ORCPT_MAX + 1);
}

/* ---------------------------------------------------------------------
 * MAIL and RCPT
 */

enum {
	SEEN_SIZE = 1, SEEN_BODY = 2, SEEN_SMTPUTF8 = 4, SEEN_RET = 8,
	SEEN_ENVID = 16, SEEN_AUTH = 32, SEEN_NOTIFY = 64, SEEN_ORCPT = 128,
	SEEN_REQUIRETLS = 256,
};

/* The error for an unusable path; who: "sender" or "recipient". */
static int
args_path_error(enum args_status st, const char *verb, const char *who,
    const char *code, char *err, size_t errsize)
{
	switch (st) {
	case ARGS_TOO_LONG:
		return args_error(err, errsize, "501 5.5.4 Path too long");
	case ARGS_BAD_ADDR:
		return args_error(err, errsize, "501 %s Bad %s address syntax",
		    code, who);
	case ARGS_NEED_UTF8:
		return args_error(err, errsize, "553 5.6.7 Must declare "
		    "SMTPUTF8 to send a non-ASCII address");
	case ARGS_BAD_UTF8:
		return args_error(err, errsize, "553 5.6.7 Invalid UTF-8 in "
		    "%s address", who);
	case ARGS_SYNTAX:
	case ARGS_OK:
	default:
		return args_error(err, errsize, "501 5.5.4 Syntax: %s:<address>",
		    verb);
	}
}

static int
args_param_error(const struct args_param *param, const char *what,
    char *err, size_t errsize)
{
	size_t n = param->keylen < ARGS_ECHO_MAX ? param->keylen : ARGS_ECHO_MAX;

	return args_error(err, errsize, "501 5.5.4 %s %.*s parameter", what,
	    (int)n, param->key);
}

static int
args_unknown_param(const struct args_param *param, char *err, size_t errsize)
{
	size_t n = param->keylen < ARGS_ECHO_MAX ? param->keylen : ARGS_ECHO_MAX;

	return args_error(err, errsize, "555 5.5.4 Unsupported option: %.*s",
	    (int)n, param->key);
}

/* Marks a parameter seen; -1 (with the reply) when it was already. */
static int
args_seen(unsigned *seen, unsigned bit, const struct args_param *param,
    char *err, size_t errsize)
{
	if (*seen & bit)
		return args_param_error(param, "Duplicate", err, errsize);
	*seen |= bit;
	return 0;
}

static int
args_mail_param(const struct args_param *pa, unsigned *seen,
    struct smtp_mail_args *out, char *err, size_t errsize)
{
	const char *v = pa->value;
	size_t n = pa->valuelen;
	unsigned bit;

	if (args_key_is(pa, "SIZE"))
		bit = SEEN_SIZE;
	else if (args_key_is(pa, "BODY"))
		bit = SEEN_BODY;
	else if (args_key_is(pa, "SMTPUTF8"))
		bit = SEEN_SMTPUTF8;
	else if (args_key_is(pa, "RET"))
		bit = SEEN_RET;
	else if (args_key_is(pa, "ENVID"))
		bit = SEEN_ENVID;
	else if (args_key_is(pa, "AUTH"))
		bit = SEEN_AUTH;
	else if (args_key_is(pa, "REQUIRETLS"))
		bit = SEEN_REQUIRETLS;
	else
		return args_unknown_param(pa, err, errsize);
	if (args_seen(seen, bit, pa, err, errsize) < 0)
		return -1;
	if (bit == SEEN_SMTPUTF8 || bit == SEEN_REQUIRETLS) {
		/* Keywords without a value (RFC 6531, RFC 8689 3). */
		if (v != NULL)
			return args_param_error(pa, "Bad", err, errsize);
		if (bit == SEEN_SMTPUTF8)
			out->smtputf8 = 1;
		else
			out->requiretls = 1;
		return 0;
	}
	if (v == NULL)
		return args_param_error(pa, "Bad", err, errsize);
	switch (bit) {
	case SEEN_SIZE:
		if (args_parse_size(v, n, &out->size) < 0)
			return args_param_error(pa, "Bad", err, errsize);
		return 0;
	case SEEN_BODY:
		if (args_value_is(v, n, "7BIT"))
			out->body = SMTP_BODY_7BIT;
		else if (args_value_is(v, n, "8BITMIME"))
			out->body = SMTP_BODY_8BITMIME;
		else
			return args_param_error(pa, "Bad", err, errsize);
		return 0;
	case SEEN_RET:
		if (args_value_is(v, n, "FULL"))
			out->ret = DSN_RET_FULL;
		else if (args_value_is(v, n, "HDRS"))
			out->ret = DSN_RET_HDRS;
		else
			return args_param_error(pa, "Bad", err, errsize);
		return 0;
	case SEEN_ENVID:
		if (args_xtext_decode(v, n, 0, out->envid, ARGS_ENVID_MAX + 1) < 0)
			return args_param_error(pa, "Bad", err, errsize);
		return 0;
	default:	/* SEEN_AUTH */
		if (args_xtext_decode(v, n, 0, out->auth, sizeof out->auth) < 0)
			return args_param_error(pa, "Bad", err, errsize);
		return 0;
	}
}

int
smtp_parse_mail(const char *arg, struct smtp_mail_args *out,
    char *err, size_t errsize)
{
	const char *inner, *rest, *mbox;
	size_t len, mbox_len;
	enum args_status st;
	struct args_param pa;
	unsigned seen = 0;
	int r;

	memset(out, 0, sizeof *out);
	st = args_split_path(arg, &inner, &len, &rest);
	if (st != ARGS_OK)
		return args_path_error(st, "MAIL FROM", "sender", "5.1.7", err,
		    errsize);
	/* Parameters first: SMTPUTF8 decides what the address may hold. */
	while ((r = args_next_param(&rest, &pa, 0)) > 0)
		if (args_mail_param(&pa, &seen, out, err, errsize) < 0)
			return -1;
	if (r < 0)
		return args_error(err, errsize, "501 5.5.4 Syntax error in "
		    "parameters");
	if (len == 0) {
		out->addr[0] = '\0';	/* the null reverse-path */
		return 0;
	}
	st = args_check_path(inner, len, out->smtputf8, &mbox, &mbox_len);
	if (st != ARGS_OK)
		return args_path_error(st, "MAIL FROM", "sender", "5.1.7", err,
		    errsize);
	args_copy_mailbox(out->addr, mbox, mbox_len, out->smtputf8);
	return 0;
}

static int
args_rcpt_param(const struct args_param *pa, unsigned *seen, int utf8_ok,
    struct smtp_rcpt_args *out, char *err, size_t errsize)
{
	if (args_key_is(pa, "NOTIFY")) {
		if (args_seen(seen, SEEN_NOTIFY, pa, err, errsize) < 0)
			return -1;
		if (pa->value == NULL ||
		    args_parse_notify(pa->value, pa->valuelen, &out->notify) < 0)
			return args_param_error(pa, "Bad", err, errsize);
		return 0;
	}
	if (args_key_is(pa, "ORCPT")) {
		if (args_seen(seen, SEEN_ORCPT, pa, err, errsize) < 0)
			return -1;
		if (pa->value == NULL ||
		    args_parse_orcpt(pa->value, pa->valuelen, utf8_ok, out->orcpt,
		    sizeof out->orcpt) < 0) {
			out->orcpt[0] = '\0';
			return args_param_error(pa, "Bad", err, errsize);
		}
		return 0;
	}
	return args_unknown_param(pa, err, errsize);
}

int
smtp_parse_rcpt(const char *arg, int utf8_ok, struct smtp_rcpt_args *out,
    char *err, size_t errsize)
{
	const char *inner, *rest, *mbox;
	size_t len, mbox_len;
	enum args_status st;
	struct args_param pa;
	unsigned seen = 0;
	int r;

	memset(out, 0, sizeof *out);
	st = args_split_path(arg, &inner, &len, &rest);
	if (st != ARGS_OK)
		return args_path_error(st, "RCPT TO", "recipient", "5.1.3", err,
		    errsize);
	if (len == strlen("postmaster") &&
	    strncasecmp(inner, "postmaster", len) == 0) {
		/* RFC 5321 4.1.1.3: no domain needed; stored in one case. */
		mbox = "postmaster";
		mbox_len = len;
	} else {
		if (len == 0)
			st = ARGS_BAD_ADDR;
		else
			st = args_check_path(inner, len, utf8_ok, &mbox,
			    &mbox_len);
		if (st != ARGS_OK)
			return args_path_error(st, "RCPT TO", "recipient",
			    "5.1.3", err, errsize);
	}
	args_copy_mailbox(out->addr, mbox, mbox_len, utf8_ok);
	while ((r = args_next_param(&rest, &pa, utf8_ok)) > 0)
		if (args_rcpt_param(&pa, &seen, utf8_ok, out, err, errsize) < 0)
			return -1;
	if (r < 0)
		return args_error(err, errsize, "501 5.5.4 Syntax error in "
		    "parameters");
	return 0;
}

/* Also -1 when a part does not fit its buffer (NULL buffers are skipped). */
int
smtp_addr_split(const char *addr, char *local_r, size_t localsize,
    char *domain_r, size_t domainsize)
{
	const char *at = strrchr(addr, '@');
	size_t local_len;

	if (at == NULL)
		return -1;
	local_len = (size_t)(at - addr);
	if (local_r != NULL) {
		if (local_len >= localsize)
			return -1;
		memcpy(local_r, addr, local_len);
		local_r[local_len] = '\0';
	}
	if (domain_r != NULL) {
		if (domainsize == 0 || str_copy(domain_r, at + 1, domainsize) < 0)
			return -1;
		str_lower(domain_r);
	}
	return 0;
}
