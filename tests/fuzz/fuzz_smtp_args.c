/*
 * Fuzz target for server/smtp_args. Byte 0 picks MAIL or RCPT (and
 * utf8_ok for RCPT); the rest, up to its first NUL, is the argument.
 * Checks what callers rely on: a reply that is one well-formed line on
 * error; on success an address with no control bytes that parses again to
 * itself, printable decoded xtext that re-encodes and decodes to itself
 * (an ORCPT address may be UTF-8 text, never controls), a utf-8 ORCPT that
 * round-trips through RFC 6533's 7-bit form, and a working
 * smtp_addr_split. Any violation aborts.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xtext.h"
#include "server/smtp_args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)
#define FUZZ_ARG_MAX 4096

static void
fuzz_check_reply(const char *err)
{
	FUZZ_CHECK(strlen(err) > 4);
	FUZZ_CHECK(isdigit((unsigned char)err[0]) &&
	    isdigit((unsigned char)err[1]) && isdigit((unsigned char)err[2]));
	FUZZ_CHECK(err[0] == '5' && err[3] == ' ');
	for (const char *p = err; *p != '\0'; p++)
		FUZZ_CHECK((unsigned char)*p >= 32 && (unsigned char)*p < 127);
}

static void
fuzz_check_printable(const char *s)
{
	for (; *s != '\0'; s++)
		FUZZ_CHECK((unsigned char)*s >= 32 && (unsigned char)*s < 127);
}

/* UTF-8 text without C0 or C1 controls or DEL. */
static void
fuzz_check_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		unsigned cp;
		int more;

		if (*p < 0x80) {
			FUZZ_CHECK(*p >= 32 && *p != 127);
			p++;
			continue;
		}
		more = *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : 1;
		cp = *p & (0x3F >> more);
		FUZZ_CHECK(*p >= 0xC2 && *p <= 0xF4);
		for (int k = 1; k <= more; k++) {
			FUZZ_CHECK((p[k] & 0xC0) == 0x80);
			cp = cp << 6 | (p[k] & 0x3F);
		}
		FUZZ_CHECK(cp >= 0xA0 && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF));
		FUZZ_CHECK(cp >= (more == 1 ? 0x80u : more == 2 ? 0x800u : 0x10000u));
		p += more + 1;
	}
}

static void
fuzz_check_addr(const char *addr, int may_be_empty)
{
	char local[SMTP_PATH_MAX], domain[SMTP_PATH_MAX];
	size_t n = strlen(addr);

	FUZZ_CHECK(n + 2 <= SMTP_PATH_MAX);
	FUZZ_CHECK(may_be_empty || n > 0);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)addr[i] >= 32 &&
		    (unsigned char)addr[i] != 127);
	if (n > 0 && strcmp(addr, "postmaster") != 0) {
		FUZZ_CHECK(smtp_addr_split(addr, local, sizeof local, domain,
		    sizeof domain) == 0);
		FUZZ_CHECK(strlen(local) > 0 && strlen(local) + 1 + 2 < SMTP_PATH_MAX);
		FUZZ_CHECK(strlen(domain) > 0 &&
		    strlen(domain) <= SMTP_DOMAIN_MAX);
	}
}

/* "<addr>" + suffix must parse to the same address. */
static void
fuzz_mail_again(const struct smtp_mail_args *a)
{
	char arg[FUZZ_ARG_MAX], enc[3 * sizeof a->auth + 1], err[256];
	struct smtp_mail_args b;
	int n;

	n = snprintf(arg, sizeof arg, "<%s>%s", a->addr,
	    a->smtputf8 ? " SMTPUTF8" : "");
	FUZZ_CHECK(n > 0 && (size_t)n < sizeof arg);
	FUZZ_CHECK(smtp_parse_mail(arg, &b, err, sizeof err) == 0);
	FUZZ_CHECK(strcmp(a->addr, b.addr) == 0);
	if (a->envid[0] != '\0') {
		FUZZ_CHECK(xtext_encode(a->envid, enc, sizeof enc) == 0);
		n = snprintf(arg, sizeof arg, "<> ENVID=%s", enc);
		FUZZ_CHECK(n > 0 && (size_t)n < sizeof arg);
		FUZZ_CHECK(smtp_parse_mail(arg, &b, err, sizeof err) == 0);
		FUZZ_CHECK(strcmp(a->envid, b.envid) == 0);
	}
	if (a->auth[0] != '\0') {
		FUZZ_CHECK(xtext_encode(a->auth, enc, sizeof enc) == 0);
		n = snprintf(arg, sizeof arg, "<> AUTH=%s", enc);
		FUZZ_CHECK(n > 0 && (size_t)n < sizeof arg);
		FUZZ_CHECK(smtp_parse_mail(arg, &b, err, sizeof err) == 0);
		FUZZ_CHECK(strcmp(a->auth, b.auth) == 0);
	}
}

static void
fuzz_rcpt_again(const struct smtp_rcpt_args *a, int utf8_ok)
{
	char arg[FUZZ_ARG_MAX], err[256];
	struct smtp_rcpt_args b;
	int n;

	n = snprintf(arg, sizeof arg, "<%s>", a->addr);
	FUZZ_CHECK(n > 0 && (size_t)n < sizeof arg);
	FUZZ_CHECK(smtp_parse_rcpt(arg, utf8_ok, &b, err, sizeof err) == 0);
	FUZZ_CHECK(strcmp(a->addr, b.addr) == 0);
	/* ORCPT of any type but utf-8, xtext-encoded again (as Postfix
	 * does with UTF-8 too), gives the same decoded value. */
	if (a->orcpt[0] != '\0' && strncasecmp(a->orcpt, "utf-8;", 6) != 0) {
		const char *semi = strchr(a->orcpt, ';');
		char enc[3 * sizeof a->orcpt + 1];

		FUZZ_CHECK(xtext_encode(semi + 1, enc, sizeof enc) == 0);
		n = snprintf(arg, sizeof arg, "<a@b> ORCPT=%.*s;%s",
		    (int)(semi - a->orcpt), a->orcpt, enc);
		FUZZ_CHECK(n > 0 && (size_t)n < sizeof arg);
		FUZZ_CHECK(smtp_parse_rcpt(arg, 0, &b, err, sizeof err) == 0);
		FUZZ_CHECK(strcmp(a->orcpt, b.orcpt) == 0);
	}
	/* A utf-8 ORCPT in RFC 6533's 7-bit form (as the relay sends it)
	 * gives the same address, with or without SMTPUTF8. */
	if (strncasecmp(a->orcpt, "utf-8;", 6) == 0) {
		char enc[6 * sizeof a->orcpt + 1];

		FUZZ_CHECK(xtext_encode_utf8_addr(a->orcpt + 6, enc, sizeof enc) == 0);
		for (const char *p = enc; *p != '\0'; p++)
			FUZZ_CHECK((unsigned char)*p > 32 && (unsigned char)*p < 127);
		n = snprintf(arg, sizeof arg, "<a@b> ORCPT=utf-8;%s", enc);
		if (n > 0 && (size_t)n < sizeof arg) {
			FUZZ_CHECK(smtp_parse_rcpt(arg, 0, &b, err, sizeof err) == 0);
			FUZZ_CHECK(strcmp(a->orcpt + 6, b.orcpt + 6) == 0);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char arg[FUZZ_ARG_MAX + 1], err[256];
	unsigned sel;
	size_t n;

	if (size < 1)
		return 0;
	sel = data[0];
	n = size - 1 < FUZZ_ARG_MAX ? size - 1 : FUZZ_ARG_MAX;
	memcpy(arg, data + 1, n);
	arg[n] = '\0';
	memset(err, 'X', sizeof err);

	if (sel & 1) {
		struct smtp_mail_args a;

		if (smtp_parse_mail(arg, &a, err, sizeof err) == 0) {
			fuzz_check_addr(a.addr, 1);
			fuzz_check_printable(a.envid);
			fuzz_check_printable(a.auth);
			FUZZ_CHECK(strlen(a.envid) <= 100);
			FUZZ_CHECK(a.ret <= DSN_RET_HDRS);
			FUZZ_CHECK(a.body <= SMTP_BODY_8BITMIME);
			fuzz_mail_again(&a);
		} else
			fuzz_check_reply(err);
	} else {
		struct smtp_rcpt_args a;
		int utf8_ok = (sel >> 1) & 1;

		if (smtp_parse_rcpt(arg, utf8_ok, &a, err, sizeof err) == 0) {
			fuzz_check_addr(a.addr, 0);
			fuzz_check_text(a.orcpt);
			FUZZ_CHECK(a.orcpt[0] == '\0' ||
			    strchr(a.orcpt, ';') != NULL);
			FUZZ_CHECK(!(a.notify & DSN_NOTIFY_NEVER) ||
			    a.notify == DSN_NOTIFY_NEVER);
			fuzz_rcpt_again(&a, utf8_ok);
		} else
			fuzz_check_reply(err);
	}
	return 0;
}
