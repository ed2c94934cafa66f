/*
 * Fuzz target for server/smtp_args. Byte 0 picks MAIL or RCPT (and
 * utf8_ok for RCPT); the rest, up to its first NUL, is the argument.
 * Checks what callers rely on: a reply that is one well-formed line on
 * error; on success an address with no control bytes that parses again to
 * itself, printable decoded xtext that re-encodes and decodes to itself,
 * and a working smtp_addr_split. Any violation aborts.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		FUZZ_CHECK(strlen(local) > 0 && strlen(local) <= SMTP_LOCAL_MAX);
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
			fuzz_check_printable(a.orcpt);
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
