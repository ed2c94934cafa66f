/*
 * Unit tests of server/smtp_args: MAIL FROM and RCPT TO arguments, table
 * driven: valid and hostile paths (brackets, quoting, literals, source
 * routes, controls, UTF-8, length limits), every ESMTP parameter, xtext in
 * both directions, and the reply each error gives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "lib/xtext.h"
#include "server/smtp_args.h"

/* Builds "<" + n copies of c + suffix + ">" into out. */
static const char *
args_make(char *out, size_t outsize, const char *prefix, size_t n, char c,
    const char *suffix)
{
	size_t len = strlen(prefix);

	CU_ASSERT_FATAL(len + n + strlen(suffix) + 1 <= outsize);
	memcpy(out, prefix, len);
	memset(out + len, c, n);
	snprintf(out + len + n, outsize - len - n, "%s", suffix);
	return out;
}

struct mail_case {
	const char *arg;
	const char *expect;	/* the address, or the reply's first bytes */
	int rc;
	uint64_t size;
	enum smtp_body body;
	int smtputf8;
	enum dsn_ret ret;
	const char *envid;
	const char *auth;
};

#define SYN "501 5.5.4 Syntax: MAIL FROM:<address>"
#define BADS "501 5.1.7"
#define U8 "553 5.6.7"
#define UNK "555 5.5.4"
#define DUP "501 5.5.4 Duplicate"
#define BADP "501 5.5.4"

static const struct mail_case mail_cases[] = {
	/* Paths. */
	{ "<a@b.example>", "a@b.example", 0, 0, 0, 0, 0, "", "" },
	{ "<>", "", 0, 0, 0, 0, 0, "", "" },
	{ "  <a@b>", "a@b", 0, 0, 0, 0, 0, "", "" },
	{ "<a@b>   ", "a@b", 0, 0, 0, 0, 0, "", "" },
	{ "<first.last+tag@sub.example.org>", "first.last+tag@sub.example.org",
	  0, 0, 0, 0, 0, "", "" },
	{ "<!#$%&'*+-/=?^_`{|}~@x>", "!#$%&'*+-/=?^_`{|}~@x", 0, 0, 0, 0, 0,
	  "", "" },
	{ "<user@localhost>", "user@localhost", 0, 0, 0, 0, 0, "", "" },
	{ "<\"john doe\"@x.example>", "\"john doe\"@x.example", 0, 0, 0, 0, 0,
	  "", "" },
	{ "<\"a>b\"@x>", "\"a>b\"@x", 0, 0, 0, 0, 0, "", "" },
	{ "<\"a\\\"b\"@x>", "\"a\\\"b\"@x", 0, 0, 0, 0, 0, "", "" },
	{ "<\"@\"@x>", "\"@\"@x", 0, 0, 0, 0, 0, "", "" },
	/* Quotes that were not needed go (RFC 5322 3.2.4); needed ones stay. */
	{ "<\"alice\"@x>", "alice@x", 0, 0, 0, 0, 0, "", "" },
	{ "<\"first.last\"@x>", "first.last@x", 0, 0, 0, 0, 0, "", "" },
	{ "<\"a\\b\"@x>", "ab@x", 0, 0, 0, 0, 0, "", "" },
	{ "<\"a..b\"@x>", "\"a..b\"@x", 0, 0, 0, 0, 0, "", "" },
	{ "<\".a\"@x>", "\".a\"@x", 0, 0, 0, 0, 0, "", "" },
	{ "<\"a.\"@x>", "\"a.\"@x", 0, 0, 0, 0, 0, "", "" },
	{ "<\"\"@x>", "\"\"@x", 0, 0, 0, 0, 0, "", "" },
	{ "<\"a\\\\b\"@x>", "\"a\\\\b\"@x", 0, 0, 0, 0, 0, "", "" },
	{ "<@hop:\"alice\"@x>", "alice@x", 0, 0, 0, 0, 0, "", "" },
	{ "<a@[192.0.2.1]>", "a@[192.0.2.1]", 0, 0, 0, 0, 0, "", "" },
	{ "<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]", 0, 0, 0, 0, 0,
	  "", "" },
	{ "<a@[ipv6:::1]>", "a@[ipv6:::1]", 0, 0, 0, 0, 0, "", "" },
	{ "<@relay.example:a@b>", "a@b", 0, 0, 0, 0, 0, "", "" },
	{ "<@r1.example,@r2.example:a@b>", "a@b", 0, 0, 0, 0, 0, "", "" },
	{ "<a@x-y.example>", "a@x-y.example", 0, 0, 0, 0, 0, "", "" },
	{ "<a@123.example>", "a@123.example", 0, 0, 0, 0, 0, "", "" },
	/* Bad paths. */
	{ "a@b", SYN, -1, 0, 0, 0, 0, "", "" },
	{ "", SYN, -1, 0, 0, 0, 0, "", "" },
	{ NULL, SYN, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b", SYN, -1, 0, 0, 0, 0, "", "" },
	{ "a@b>", SYN, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b>x", SYN, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b><c@d>", SYN, -1, 0, 0, 0, 0, "", "" },
	{ "<\"a@b>", SYN, -1, 0, 0, 0, 0, "", "" },
	{ "SIZE=10 <a@b>", SYN, -1, 0, 0, 0, 0, "", "" },
	{ "<a>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<@>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<@b>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a b@c>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b c>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a\t@b>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a\x7f@b>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a\r@b>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<\"a\tb\"@c>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<.a@b>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a.@b>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a..b@c>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b..c>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@.b>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b.>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@-b>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b->", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b_c>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b@c>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@[1.2.3]>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@[1.2.3.256]>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@[IPv6:1.2.3.4]>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@[IPv6:zz::1]>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@[x-tag:foo]>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@[]>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@[1.2.3.4]x>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b.example:x>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<@r1:>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<@r1,r2:a@b>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<@:a@b>", BADS, -1, 0, 0, 0, 0, "", "" },
	{ "<\"unterminated@b>", SYN, -1, 0, 0, 0, 0, "", "" },
	{ "<\"a\\\x01\"@b>", BADS, -1, 0, 0, 0, 0, "", "" },
	/* UTF-8 only with SMTPUTF8. */
	{ "<j\xc3\xb6rg@b\xc3\xbc.example> SMTPUTF8",
	  "j\xc3\xb6rg@b\xc3\xbc.example", 0, 0, 0, 1, 0, "", "" },
	{ "<j\xc3\xb6rg@b.example>", U8, -1, 0, 0, 0, 0, "", "" },
	{ "<j\xc3rg@b.example> SMTPUTF8", U8, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b\xed\xa0\x80> SMTPUTF8", U8, -1, 0, 0, 0, 0, "", "" },
	{ "<a\xc0\xaf@b> SMTPUTF8", U8, -1, 0, 0, 0, 0, "", "" },
	{ "<a\xf4\x90\x80\x80@b> SMTPUTF8", U8, -1, 0, 0, 0, 0, "", "" },
	{ "<a\xff@b> SMTPUTF8", U8, -1, 0, 0, 0, 0, "", "" },
	{ "<\"\xe2\x82\xac\"@b> SMTPUTF8", "\xe2\x82\xac@b", 0, 0, 0, 1, 0,
	  "", "" },
	{ "<\"\xe2\x82\xac \"@b> SMTPUTF8", "\"\xe2\x82\xac \"@b", 0, 0, 0, 1, 0,
	  "", "" },
	{ "<> SMTPUTF8", "", 0, 0, 0, 1, 0, "", "" },
	/* SIZE. */
	{ "<a@b> SIZE=12345", "a@b", 0, 12345, 0, 0, 0, "", "" },
	{ "<a@b> size=0", "a@b", 0, 0, 0, 0, 0, "", "" },
	{ "<a@b> SIZE=18446744073709551615", "a@b", 0, UINT64_MAX, 0, 0, 0,
	  "", "" },
	{ "<a@b> SIZE=18446744073709551616", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> SIZE=99999999999999999999999", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> SIZE=00000000000000000000001", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> SIZE=-1", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> SIZE=1k", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> SIZE=", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> SIZE", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> SIZE=1 SIZE=2", DUP, -1, 0, 0, 0, 0, "", "" },
	/* BODY. */
	{ "<a@b> BODY=8BITMIME", "a@b", 0, 0, SMTP_BODY_8BITMIME, 0, 0, "", "" },
	{ "<a@b> body=7bit", "a@b", 0, 0, SMTP_BODY_7BIT, 0, 0, "", "" },
	{ "<a@b> BODY=BINARYMIME", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> BODY=7BIT BODY=7BIT", DUP, -1, 0, 0, 0, 0, "", "" },
	/* SMTPUTF8. */
	{ "<a@b> SMTPUTF8", "a@b", 0, 0, 0, 1, 0, "", "" },
	{ "<a@b> SMTPUTF8=yes", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> SMTPUTF8 smtputf8", DUP, -1, 0, 0, 0, 0, "", "" },
	/* RET and ENVID. */
	{ "<a@b> RET=FULL", "a@b", 0, 0, 0, 0, DSN_RET_FULL, "", "" },
	{ "<a@b> ret=hdrs", "a@b", 0, 0, 0, 0, DSN_RET_HDRS, "", "" },
	{ "<a@b> RET=BOTH", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> RET=FULL RET=HDRS", DUP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> ENVID=QQ314159", "a@b", 0, 0, 0, 0, 0, "QQ314159", "" },
	{ "<a@b> ENVID=a+2Bb+3Dc+20d", "a@b", 0, 0, 0, 0, 0, "a+b=c d", "" },
	{ "<a@b> ENVID=a+2b", "a@b", 0, 0, 0, 0, 0, "a+", "" },
	{ "<a@b> ENVID=a+", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> ENVID=a+2", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> ENVID=a+G0", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> ENVID=a+0D+0ABcc:x", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> ENVID=+00", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> ENVID=+FF", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> ENVID=", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> ENVID=a==b", "501 5.5.4 Syntax error", -1, 0, 0, 0, 0, "",
	  "" },
	{ "<a@b> ENVID=1 ENVID=2", DUP, -1, 0, 0, 0, 0, "", "" },
	/* AUTH. */
	{ "<a@b> AUTH=<>", "a@b", 0, 0, 0, 0, 0, "", "<>" },
	{ "<a@b> AUTH=user+40example.org", "a@b", 0, 0, 0, 0, 0, "",
	  "user@example.org" },
	{ "<a@b> AUTH=bad+", BADP, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> AUTH", BADP, -1, 0, 0, 0, 0, "", "" },
	/* Everything at once, and spacing. */
	{ "<a@b> SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id1 AUTH=<>",
	  "a@b", 0, 100, SMTP_BODY_8BITMIME, 1, DSN_RET_HDRS, "id1", "<>" },
	{ "<a@b>  SIZE=100   RET=FULL ", "a@b", 0, 100, 0, 0, DSN_RET_FULL,
	  "", "" },
	/* Unknown and malformed parameters. */
	{ "<a@b> FOO=bar", UNK, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> NOTIFY=NEVER", UNK, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> X-FOO", UNK, -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> =x", "501 5.5.4 Syntax error", -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> -X=1", "501 5.5.4 Syntax error", -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> SIZE=1\t", "501 5.5.4 Syntax error", -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> SIZE=\xff", "501 5.5.4 Syntax error", -1, 0, 0, 0, 0, "", "" },
	{ "<a@b> K_Y=1", "501 5.5.4 Syntax error", -1, 0, 0, 0, 0, "", "" },
};

static void
test_mail_table(void)
{
	for (size_t i = 0; i < sizeof mail_cases / sizeof mail_cases[0]; i++) {
		const struct mail_case *c = &mail_cases[i];
		struct smtp_mail_args a;
		char err[256] = "";
		int rc = smtp_parse_mail(c->arg, &a, err, sizeof err);
		int ok = rc == c->rc;

		if (ok && rc == 0)
			ok = strcmp(a.addr, c->expect) == 0 &&
			    a.size == c->size && a.body == c->body &&
			    a.smtputf8 == c->smtputf8 && a.ret == c->ret &&
			    strcmp(a.envid, c->envid) == 0 &&
			    strcmp(a.auth, c->auth) == 0;
		else if (ok)
			ok = strncmp(err, c->expect, strlen(c->expect)) == 0 &&
			    strchr(err, '\r') == NULL &&
			    strchr(err, '\n') == NULL;
		if (!ok) {
			fprintf(stderr, "\nmail case %zu \"%s\": rc %d addr "
			    "\"%s\" err \"%s\"\n", i, c->arg ? c->arg : "(null)",
			    rc, rc == 0 ? a.addr : "", err);
			CU_FAIL("MAIL result differs");
		}
	}
}

/* REQUIRETLS (RFC 8689 3): a keyword without a value, once. */
static void
test_requiretls(void)
{
	static const struct {
		const char *arg;
		int rc, requiretls;
		const char *err;
	} cases[] = {
		{ "<a@b> REQUIRETLS", 0, 1, "" },
		{ "<a@b> requiretls SMTPUTF8 BODY=8BITMIME", 0, 1, "" },
		{ "<a@b> SIZE=10", 0, 0, "" },
		{ "<> REQUIRETLS", 0, 1, "" },
		{ "<a@b> REQUIRETLS=YES", -1, 0, "501 5.5.4 Bad REQUIRETLS parameter" },
		{ "<a@b> REQUIRETLS=", -1, 0, "501 5.5.4" },
		{ "<a@b> REQUIRETLS REQUIRETLS", -1, 0, "501 5.5.4 Duplicate" },
		{ "<a@b> REQUIRETLSX", -1, 0, "555 5.5.4" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct smtp_mail_args a;
		char err[256] = "";
		int rc = smtp_parse_mail(cases[i].arg, &a, err, sizeof err);

		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc == 0) {
			CU_ASSERT_EQUAL(a.requiretls, cases[i].requiretls);
		} else {
			CU_ASSERT_EQUAL(strncmp(err, cases[i].err, strlen(cases[i].err)), 0);
		}
	}
}

struct rcpt_case {
	const char *arg;
	int utf8_ok;
	const char *expect;
	int rc;
	unsigned notify;
	const char *orcpt;
};

#define RSYN "501 5.5.4 Syntax: RCPT TO:<address>"
#define BADR "501 5.1.3"

static const struct rcpt_case rcpt_cases[] = {
	{ "<c@d.example>", 0, "c@d.example", 0, 0, "" },
	{ "<postmaster>", 0, "postmaster", 0, 0, "" },
	{ "<PostMaster>", 0, "postmaster", 0, 0, "" },
	{ "<postmaster@d.example>", 0, "postmaster@d.example", 0, 0, "" },
	{ "<postmast>", 0, BADR, -1, 0, "" },
	{ "<>", 0, BADR, -1, 0, "" },
	{ "c@d", 0, RSYN, -1, 0, "" },
	{ NULL, 0, RSYN, -1, 0, "" },
	{ "<c@d", 0, RSYN, -1, 0, "" },
	{ "<@hop:c@d>", 0, "c@d", 0, 0, "" },
	{ "<\"Alice\"@d>", 0, "Alice@d", 0, 0, "" },
	{ "<\"a b\"@d>", 0, "\"a b\"@d", 0, 0, "" },
	{ "<c d@e>", 0, BADR, -1, 0, "" },
	{ "<c@\xc3\xa9.example>", 0, U8, -1, 0, "" },
	{ "<c@\xc3\xa9.example>", 1, "c@\xc3\xa9.example", 0, 0, "" },
	{ "<c@\xc3.example>", 1, U8, -1, 0, "" },
	{ "<c@d> SMTPUTF8", 1, UNK, -1, 0, "" },
	/* NOTIFY. */
	{ "<c@d> NOTIFY=NEVER", 0, "c@d", 0, DSN_NOTIFY_NEVER, "" },
	{ "<c@d> NOTIFY=SUCCESS,FAILURE,DELAY", 0, "c@d", 0,
	  DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, "" },
	{ "<c@d> notify=failure", 0, "c@d", 0, DSN_NOTIFY_FAILURE, "" },
	{ "<c@d> NOTIFY=DELAY,FAILURE", 0, "c@d", 0,
	  DSN_NOTIFY_DELAY | DSN_NOTIFY_FAILURE, "" },
	{ "<c@d> NOTIFY=NEVER,DELAY", 0, BADP, -1, 0, "" },
	{ "<c@d> NOTIFY=SUCCESS,NEVER", 0, BADP, -1, 0, "" },
	{ "<c@d> NOTIFY=SUCCESS,", 0, BADP, -1, 0, "" },
	{ "<c@d> NOTIFY=,SUCCESS", 0, BADP, -1, 0, "" },
	{ "<c@d> NOTIFY=SUCCESS,,DELAY", 0, BADP, -1, 0, "" },
	{ "<c@d> NOTIFY=ALWAYS", 0, BADP, -1, 0, "" },
	{ "<c@d> NOTIFY", 0, BADP, -1, 0, "" },
	{ "<c@d> NOTIFY=NEVER NOTIFY=NEVER", 0, DUP, -1, 0, "" },
	/* ORCPT. */
	{ "<c@d> ORCPT=rfc822;c@d", 0, "c@d", 0, 0, "rfc822;c@d" },
	{ "<c@d> ORCPT=rfc822;a+2Bb@d", 0, "c@d", 0, 0, "rfc822;a+b@d" },
	{ "<c@d> ORCPT=rfc822;", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=;c@d", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=c@d", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=rfc822;c+0A@d", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=rfc822;c+@d", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=rf(c;c@d", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=rfc822;a ORCPT=rfc822;b", 0, DUP, -1, 0, "" },
	{ "<c@d> NOTIFY=SUCCESS ORCPT=rfc822;x@y", 0, "c@d", 0,
	  DSN_NOTIFY_SUCCESS, "rfc822;x@y" },
	/* UTF-8 addresses: Postfix's xtext of the UTF-8 bytes, and RFC 6533. */
	{ "<c@d> ORCPT=rfc822;j+C3+B6rg@x.example", 0, "c@d", 0, 0,
	  "rfc822;j\xc3\xb6rg@x.example" },
	{ "<c@d> ORCPT=rfc822;j+c3+b6rg@x", 1, "c@d", 0, 0, "rfc822;j\xc3\xb6rg@x" },
	{ "<c@d> ORCPT=rfc822;a+C3@x", 0, BADP, -1, 0, "" },		/* not UTF-8 */
	{ "<c@d> ORCPT=rfc822;a+C2+85@x", 0, BADP, -1, 0, "" },	/* C1 control */
	{ "<c@d> ORCPT=rfc822;a+ED+A0+80@x", 0, BADP, -1, 0, "" },	/* surrogate */
	{ "<c@d> ORCPT=utf-8;j\\x{F6}rg@x", 0, "c@d", 0, 0, "utf-8;j\xc3\xb6rg@x" },
	{ "<c@d> ORCPT=UTF-8;\\x{1F600}@x", 0, "c@d", 0, 0, "UTF-8;\xf0\x9f\x98\x80@x" },
	{ "<c@d> ORCPT=utf-8;a\\x{2B}b\\x{5c}@x", 0, "c@d", 0, 0, "utf-8;a+b\\@x" },
	{ "<c@\xc3\xa9> ORCPT=utf-8;j\xc3\xb6rg@x", 1, "c@\xc3\xa9", 0, 0,
	  "utf-8;j\xc3\xb6rg@x" },
	{ "<c@d> ORCPT=utf-8;j\xc3\xb6rg@x", 0, BADP, -1, 0, "" },	/* no SMTPUTF8 */
	{ "<c@d> ORCPT=utf-8;j\xc3rg@x", 1, BADP, -1, 0, "" },	/* broken UTF-8 */
	{ "<c@d> ORCPT=utf-8;a+b@x", 0, BADP, -1, 0, "" },		/* '+' is no QCHAR */
	{ "<c@d> ORCPT=utf-8;a\\x{D800}", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=utf-8;a\\x{110000}", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=utf-8;a\\x{}", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=utf-8;a\\x{0000041}", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=utf-8;a\\x{41", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=utf-8;a\\x{7F}", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=utf-8;a\\x{85}", 0, BADP, -1, 0, "" },
	{ "<c@d> ORCPT=utf-8;a\\y{41}", 0, BADP, -1, 0, "" },
	/* MAIL parameters are unknown here. */
	{ "<c@d> SIZE=10", 0, UNK, -1, 0, "" },
	{ "<c@d> RET=FULL", 0, UNK, -1, 0, "" },
	{ "<c@d> bogus", 0, UNK, -1, 0, "" },
};

static void
test_rcpt_table(void)
{
	for (size_t i = 0; i < sizeof rcpt_cases / sizeof rcpt_cases[0]; i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct smtp_rcpt_args a;
		char err[256] = "";
		int rc = smtp_parse_rcpt(c->arg, c->utf8_ok, &a, err, sizeof err);
		int ok = rc == c->rc;

		if (ok && rc == 0)
			ok = strcmp(a.addr, c->expect) == 0 &&
			    a.notify == c->notify &&
			    strcmp(a.orcpt, c->orcpt) == 0;
		else if (ok)
			ok = strncmp(err, c->expect, strlen(c->expect)) == 0;
		if (!ok) {
			fprintf(stderr, "\nrcpt case %zu \"%s\": rc %d addr "
			    "\"%s\" err \"%s\"\n", i, c->arg ? c->arg : "(null)",
			    rc, rc == 0 ? a.addr : "", err);
			CU_FAIL("RCPT result differs");
		}
	}
}

/* Length limits: path 256 with <>, domain 255, label 63, ENVID 100, AUTH
 * and ORCPT their buffers; the local part only the path's. */
static void
test_limits(void)
{
	char arg[2048], err[128];
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;

	/* Local part: past RFC 5321's 64, as VERP and SRS senders write
	 * them, up to what the path holds. */
	args_make(arg, sizeof arg, "<", 65, 'l', "@d.example>");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), 0);
	CU_ASSERT_EQUAL(strlen(m.addr), 65 + 10);
	args_make(arg, sizeof arg, "<", 244, 'l', "@d.example>");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), 0);
	args_make(arg, sizeof arg, "<", 245, 'l', "@d.example>");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), -1);
	CU_ASSERT_NSTRING_EQUAL(err, "501 5.5.4", 9);
	args_make(arg, sizeof arg, "<\"", 120, 'q', "\"@d.example>");
	CU_ASSERT_EQUAL(smtp_parse_rcpt(arg, 0, &r, err, sizeof err), 0);
	args_make(arg, sizeof arg, "<\"", 243, 'q', "\"@d.example>");
	CU_ASSERT_EQUAL(smtp_parse_rcpt(arg, 0, &r, err, sizeof err), -1);
	CU_ASSERT_NSTRING_EQUAL(err, "501 5.5.4", 9);

	/* Label: 63 passes, 64 fails. */
	args_make(arg, sizeof arg, "<a@", 63, 'x', ".example>");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), 0);
	args_make(arg, sizeof arg, "<a@", 64, 'x', ".example>");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), -1);

	/* Path: 256 with the brackets passes, 257 fails. "<a@" + labels. */
	{
		char dom[300];
		size_t n = 0;

		/* 251 octets of domain: three labels of 62 and dots, then 62. */
		for (int k = 0; k < 3; k++) {
			memset(dom + n, 'd', 62);
			n += 62;
			dom[n++] = '.';
		}
		memset(dom + n, 'e', 62);
		n += 62;
		dom[n] = '\0';
		CU_ASSERT_EQUAL(n, 251);
		snprintf(arg, sizeof arg, "<a@%s>", dom);
		CU_ASSERT_EQUAL(strlen(arg), 255);
		CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), 0);
		snprintf(arg, sizeof arg, "<ab@%s>", dom);
		CU_ASSERT_EQUAL(strlen(arg), 256);
		CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), 0);
		CU_ASSERT_EQUAL(strlen(m.addr), 254);
		snprintf(arg, sizeof arg, "<abc@%s>", dom);
		CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), -1);
		CU_ASSERT_STRING_EQUAL(err, "501 5.5.4 Path too long");
		CU_ASSERT_EQUAL(smtp_parse_rcpt(arg, 0, &r, err, sizeof err), -1);
		CU_ASSERT_STRING_EQUAL(err, "501 5.5.4 Path too long");
	}
	/* A source route counts towards the path but is dropped. */
	{
		size_t n = snprintf(arg, sizeof arg, "<@r");

		for (int k = 0; k < 130; k++)
			n += snprintf(arg + n, sizeof arg - n, ".r");
		snprintf(arg + n, sizeof arg - n, ":a@b>");
		CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), -1);
		CU_ASSERT_STRING_EQUAL(err, "501 5.5.4 Path too long");
	}
	args_make(arg, sizeof arg, "<@", 60, 'r', ":a@b>");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), 0);
	CU_ASSERT_STRING_EQUAL(m.addr, "a@b");
	/* A huge path with no '>' at all. */
	args_make(arg, sizeof arg, "<", 2000, 'a', "");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), -1);
	CU_ASSERT_NSTRING_EQUAL(err, "501 5.5.4", 9);

	/* ENVID: 100 decoded passes, 101 fails; encoded form may be longer. */
	args_make(arg, sizeof arg, "<a@b> ENVID=", 100, 'e', "");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), 0);
	CU_ASSERT_EQUAL(strlen(m.envid), 100);
	args_make(arg, sizeof arg, "<a@b> ENVID=", 101, 'e', "");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), -1);
	{
		size_t n = snprintf(arg, sizeof arg, "<a@b> ENVID=");

		for (int k = 0; k < 100; k++)
			n += snprintf(arg + n, sizeof arg - n, "+2B");
		CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), 0);
		CU_ASSERT_EQUAL(strlen(m.envid), 100);
		CU_ASSERT_EQUAL(m.envid[99], '+');
	}
	/* AUTH: 255 decoded passes, 256 fails. */
	args_make(arg, sizeof arg, "<a@b> AUTH=", 255, 'u', "");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), 0);
	args_make(arg, sizeof arg, "<a@b> AUTH=", 256, 'u', "");
	CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), -1);
	/* ORCPT: an address of 500 decoded bytes passes, 501 do not, whatever
	 * the type's length (RFC 3461 4.2). */
	args_make(arg, sizeof arg, "<c@d> ORCPT=rfc822;", 500, 'o', "");
	CU_ASSERT_EQUAL(smtp_parse_rcpt(arg, 0, &r, err, sizeof err), 0);
	CU_ASSERT_EQUAL(strlen(r.orcpt), 507);
	args_make(arg, sizeof arg, "<c@d> ORCPT=rfc822;", 501, 'o', "");
	CU_ASSERT_EQUAL(smtp_parse_rcpt(arg, 0, &r, err, sizeof err), -1);
	args_make(arg, sizeof arg, "<c@d> ORCPT=x;", 500, 'o', "");
	CU_ASSERT_EQUAL(smtp_parse_rcpt(arg, 0, &r, err, sizeof err), 0);
	args_make(arg, sizeof arg, "<c@d> ORCPT=x;", 501, 'o', "");
	CU_ASSERT_EQUAL(smtp_parse_rcpt(arg, 0, &r, err, sizeof err), -1);
	args_make(arg, sizeof arg, "<c@d> ORCPT=", 33, 't', ";a@b");
	CU_ASSERT_EQUAL(smtp_parse_rcpt(arg, 0, &r, err, sizeof err), -1);

	/* Tiny and absent error buffers. */
	CU_ASSERT_EQUAL(smtp_parse_mail("x", &m, err, 4), -1);
	CU_ASSERT_STRING_EQUAL(err, "501");
	CU_ASSERT_EQUAL(smtp_parse_mail("x", &m, NULL, 0), -1);
	CU_ASSERT_EQUAL(smtp_parse_rcpt("x", 0, &r, err, 1), -1);
	CU_ASSERT_STRING_EQUAL(err, "");
}

static void
test_xtext(void)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
		{ "", "" },
		{ "abc", "abc" },
		{ "a+b=c", "a+2Bb+3Dc" },
		{ "a b", "a+20b" },
		{ "\x01\x7f\xff", "+01+7F+FF" },
		{ "<>", "<>" },
		{ "~!", "~!" },
	};
	char out[64], err[128], arg[128];
	struct smtp_mail_args m;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CU_ASSERT_EQUAL(xtext_encode(cases[i].in, out, sizeof out), 0);
		CU_ASSERT_STRING_EQUAL(out, cases[i].out);
	}
	/* Exactly fitting, one short, and zero-size. */
	CU_ASSERT_EQUAL(xtext_encode("a+", out, 5), 0);
	CU_ASSERT_STRING_EQUAL(out, "a+2B");
	CU_ASSERT_EQUAL(xtext_encode("a+", out, 4), -1);
	CU_ASSERT_STRING_EQUAL(out, "a");
	CU_ASSERT_EQUAL(xtext_encode("abc", out, 3), -1);
	CU_ASSERT_STRING_EQUAL(out, "ab");
	CU_ASSERT_EQUAL(xtext_encode("abc", out, 0), -1);

	/* RFC 6533's utf-8-addr-xtext: "\x{HEX}" per code point, minimal
	 * upper-case hex, for '+', '=', '\\', space, controls and non-ASCII;
	 * invalid UTF-8 and a short buffer fail. */
	CU_ASSERT_EQUAL(xtext_encode_utf8_addr("a+b=c\\ d", out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out, "a\\x{2B}b\\x{3D}c\\x{5C}\\x{20}d");
	CU_ASSERT_EQUAL(xtext_encode_utf8_addr("\x01\xc3\xa9\xe2\x82\xac"
	    "\xf0\x9f\x93\xa7", out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out, "\\x{01}\\x{E9}\\x{20AC}\\x{1F4E7}");
	CU_ASSERT_EQUAL(xtext_encode_utf8_addr("\xc3(", out, sizeof out), -1);
	CU_ASSERT_EQUAL(xtext_encode_utf8_addr("\xed\xa0\x80", out, sizeof out), -1);
	CU_ASSERT_EQUAL(xtext_encode_utf8_addr("ab+", out, 8), -1);
	CU_ASSERT_STRING_EQUAL(out, "ab");
	CU_ASSERT_EQUAL(xtext_encode_utf8_addr("ab+", out, 9), 0);
	/* ... and back through RCPT's ORCPT, with and without SMTPUTF8. */
	{
		static const char *const addrs[] = {
			"j\xc3\xb6rg@b\xc3\xbc" "cher.example", "a+b=c@x.test",
			"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test",
			"x\\y@z.test",
		};
		struct smtp_rcpt_args r;

		for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
			char want[128];

			CU_ASSERT_EQUAL_FATAL(xtext_encode_utf8_addr(addrs[i], out,
			    sizeof out), 0);
			snprintf(arg, sizeof arg, "<r@x.test> ORCPT=utf-8;%s", out);
			snprintf(want, sizeof want, "utf-8;%s", addrs[i]);
			for (int utf8 = 0; utf8 < 2; utf8++) {
				CU_ASSERT_EQUAL(smtp_parse_rcpt(arg, utf8, &r, err,
				    sizeof err), 0);
				CU_ASSERT_STRING_EQUAL(r.orcpt, want);
			}
		}
	}

	/* Round trip through ENVID for every printable byte. */
	for (int c = 32; c < 127; c++) {
		char s[4] = { 'x', (char)c, 'y', '\0' };

		CU_ASSERT_EQUAL(xtext_encode(s, out, sizeof out), 0);
		snprintf(arg, sizeof arg, "<a@b> ENVID=%s", out);
		CU_ASSERT_EQUAL(smtp_parse_mail(arg, &m, err, sizeof err), 0);
		CU_ASSERT_STRING_EQUAL(m.envid, s);
	}
}

static void
test_addr_split(void)
{
	static const struct {
		const char *addr;
		int rc;
		const char *local;
		const char *domain;
	} cases[] = {
		{ "User@Example.ORG", 0, "User", "example.org" },
		{ "\"a@b\"@C", 0, "\"a@b\"", "c" },
		{ "a@", 0, "a", "" },
		{ "@d", 0, "", "d" },
		{ "postmaster", -1, NULL, NULL },
		{ "", -1, NULL, NULL },
		{ "a@[192.0.2.1]", 0, "a", "[192.0.2.1]" },
	};
	char local[SMTP_PATH_MAX], domain[SMTP_DOMAIN_MAX + 1];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = smtp_addr_split(cases[i].addr, local, sizeof local,
		    domain, sizeof domain);

		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc == 0 && cases[i].rc == 0) {
			CU_ASSERT_STRING_EQUAL(local, cases[i].local);
			CU_ASSERT_STRING_EQUAL(domain, cases[i].domain);
		}
	}
	/* Buffers too small. */
	CU_ASSERT_EQUAL(smtp_addr_split("abc@d", local, 3, domain, 10), -1);
	CU_ASSERT_EQUAL(smtp_addr_split("abc@d", local, 4, domain, 10), 0);
	CU_ASSERT_EQUAL(smtp_addr_split("a@def", local, 4, domain, 3), -1);
	CU_ASSERT_EQUAL(smtp_addr_split("a@def", NULL, 0, domain, 4), 0);
	CU_ASSERT_STRING_EQUAL(domain, "def");
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("smtp_args", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "MAIL table", test_mail_table) == NULL ||
	    CU_add_test(s, "REQUIRETLS", test_requiretls) == NULL ||
	    CU_add_test(s, "RCPT table", test_rcpt_table) == NULL ||
	    CU_add_test(s, "limits", test_limits) == NULL ||
	    CU_add_test(s, "xtext", test_xtext) == NULL ||
	    CU_add_test(s, "addr_split", test_addr_split) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
