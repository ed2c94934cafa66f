/*
 * Unit tests of server/smtp_parser: command lines, verbs, DATA and BDAT
 * content. Every input is fed in one block, one byte at a time and in
 * pseudo-random slices, and all three must give the same results, which
 * are compared against a table. Hostile inputs: bare CR / LF / NUL, every
 * look-alike of the end of data, smuggled commands, endless lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "server/smtp_parser.h"

/* Lengths are explicit so that inputs may hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

enum feed_mode { FEED_BLOCK, FEED_BYTES, FEED_SLICES, FEED_MODES };

/* A small deterministic generator for slice sizes. */
static size_t
slice_len(unsigned *seed, size_t left)
{
	*seed = *seed * 1103515245u + 12345u;
	return 1 + (*seed >> 16) % (left < 7 ? left : 7);
}

static size_t
feed_chunk(enum feed_mode mode, unsigned *seed, size_t left)
{
	switch (mode) {
	case FEED_BLOCK:
		return left;
	case FEED_BYTES:
		return 1;
	default:
		return slice_len(seed, left);
	}
}

/* ---------------------------------------------------------------------
 * Command lines
 */

/*
 * Feeds in[0..len) and writes the results into trace: "R<line>|" for
 * READY, "L|" for TOO_LONG, "E|" for BARE_EOL (NUL bytes of a line are
 * shown as "\0"). Checks progress and the memory bound on the way.
 */
static void
cmd_trace(size_t max_line, const char *in, size_t len, enum feed_mode mode,
    struct buf *trace)
{
	struct smtp_cmd_parser p;
	size_t off = 0;
	unsigned seed = 7;

	smtp_cmd_parser_init(&p, max_line);
	buf_reset(trace);
	buf_puts(trace, "");
	while (off < len) {
		size_t avail = feed_chunk(mode, &seed, len - off);
		size_t pos = 0;

		while (pos < avail) {
			enum smtp_cmd_result res;
			size_t n = smtp_cmd_parse(&p, in + off + pos,
			    avail - pos, &res);

			CU_ASSERT_FATAL(n <= avail - pos);
			CU_ASSERT(p.len + 2 <= p.max_line);
			CU_ASSERT(p.max_line >= max_line);
			pos += n;
			if (res == SMTP_CMD_NEED_MORE) {
				CU_ASSERT_EQUAL(pos, avail);
				break;
			}
			CU_ASSERT(n > 0);
			if (res == SMTP_CMD_READY) {
				CU_ASSERT_EQUAL(strlen(p.line), p.len);
				buf_puts(trace, "R");
				buf_append(trace, p.line, p.len);
				buf_puts(trace, "|");
			} else if (res == SMTP_CMD_TOO_LONG) {
				buf_puts(trace, "L|");
			} else {
				buf_puts(trace, "E|");
			}
		}
		off += avail;
	}
	smtp_cmd_parser_free(&p);
}

struct cmd_case {
	const char *in;
	size_t len;
	size_t max_line;
	const char *expect;
};

static const struct cmd_case cmd_cases[] = {
	{ S("HELO x\r\n"), 512, "RHELO x|" },
	{ S("a\r\nb\r\n"), 512, "Ra|Rb|" },
	{ S("\r\n"), 512, "R|" },
	{ S("\r\n\r\n"), 512, "R|R|" },
	{ S("QUIT\r\nGARBAGE"), 512, "RQUIT|" },
	{ S("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"), 512,
	  "RMAIL FROM:<a@b>|RRCPT TO:<c@d>|RDATA|" },
	/* Incomplete lines give nothing. */
	{ S("abc"), 512, "" },
	{ S("abc\r"), 512, "" },
	{ S(""), 512, "" },
	/* Bare LF: an immediate error, never a command. */
	{ S("\n"), 512, "E|" },
	{ S("NOOP\n"), 512, "E|" },
	{ S("a\nb\r\n"), 512, "E|Rb|" },
	{ S("a\n\r\n"), 512, "E|R|" },
	{ S("QUIT\nQUIT\nQUIT\n"), 512, "E|E|E|" },
	/* Bare CR: the line is rejected at its end. */
	{ S("a\rb\r\n"), 512, "E|" },
	{ S("a\r\r\n"), 512, "E|" },
	{ S("\r\r\n"), 512, "E|" },
	{ S("\rX\r\nNOOP\r\n"), 512, "E|RNOOP|" },
	{ S("a\rb\nNOOP\r\n"), 512, "E|RNOOP|" },
	{ S("RSET\r\rQUIT\r\n"), 512, "E|" },
	/* NUL bytes. */
	{ S("a\0b\r\n"), 512, "E|" },
	{ S("\0\r\nNOOP\r\n"), 512, "E|RNOOP|" },
	{ S("MAIL FROM:<a\0@b>\r\n"), 512, "E|" },
	/* Limits: max_line counts the CRLF. */
	{ S("01234567\r\n"), 10, "R01234567|" },
	{ S("012345678\r\nok\r\n"), 10, "L|Rok|" },
	{ S("0123456789\r\nok\r\n"), 10, "L|Rok|" },
	{ S("0123456789\nok\r\n"), 10, "L|Rok|" },
	{ S("0123456789abcdefghij\r\nok\r\n"), 10, "L|Rok|" },
	{ S("0123456789abcd\rxyz\r\nok\r\n"), 10, "L|Rok|" },
	{ S("01234567\rx\r\nok\r\n"), 10, "L|Rok|" },
	{ S("0123456\rx\r\nok\r\n"), 10, "L|Rok|" },
	{ S("012345\rx\r\nok\r\n"), 10, "E|Rok|" },
	{ S("0123456\r\r\nok\r\n"), 10, "E|Rok|" },
	{ S("01234567\r\r\nok\r\n"), 10, "L|Rok|" },
	{ S("0123456789"), 10, "L|" },
	{ S("0123456789\r"), 10, "L|" },
	{ S("\r\n"), 2, "R|" },
	{ S("a\r\n\r\n"), 2, "L|R|" },
	{ S("a\r\n"), 0, "L|" },
};

static void
test_cmd_table(void)
{
	struct buf trace;

	buf_init(&trace, 1 << 20);
	for (size_t i = 0; i < sizeof cmd_cases / sizeof cmd_cases[0]; i++) {
		const struct cmd_case *c = &cmd_cases[i];

		for (int m = 0; m < FEED_MODES; m++) {
			cmd_trace(c->max_line, c->in, c->len, (enum feed_mode)m,
			    &trace);
			if (strcmp(trace.data, c->expect) != 0) {
				fprintf(stderr, "\ncmd case %zu mode %d: got "
				    "\"%s\" want \"%s\"\n", i, m, trace.data,
				    c->expect);
				CU_FAIL("command trace differs");
			}
		}
	}
	buf_free(&trace);
}

/* A 100 kB line with no newline: TOO_LONG once, memory stays at max_line,
 * and the parser is in sync again after the line's LF. */
static void
test_cmd_endless_line(void)
{
	size_t big = 100 * 1024;
	char *in = xmalloc(big + 64);
	struct buf trace;
	size_t len;

	memset(in, 'A', big);
	memcpy(in + big, "\r\nNOOP\r\n", 8);
	len = big + 8;
	buf_init(&trace, 1 << 20);
	for (int m = 0; m < FEED_MODES; m++) {
		cmd_trace(SMTP_COMMAND_LINE_MAX, in, big, (enum feed_mode)m,
		    &trace);
		CU_ASSERT_STRING_EQUAL(trace.data, "L|");
		cmd_trace(SMTP_COMMAND_LINE_MAX, in, len, (enum feed_mode)m,
		    &trace);
		CU_ASSERT_STRING_EQUAL(trace.data, "L|RNOOP|");
	}
	/* Bare LF inside the skipped part just ends it. */
	memcpy(in + 1000, "\nNOOP\r\n", 7);
	cmd_trace(SMTP_COMMAND_LINE_MAX, in, 1007, FEED_BLOCK, &trace);
	CU_ASSERT_STRING_EQUAL(trace.data, "L|RNOOP|");
	buf_free(&trace);
	free(in);
}

/* The AUTH limit, and reset after STARTTLS. */
static void
test_cmd_set_max_reset(void)
{
	struct smtp_cmd_parser p;
	enum smtp_cmd_result res;
	size_t n, big = 5000;
	char *in = xmalloc(big + 2);

	memset(in, 'Z', big);
	memcpy(in + big, "\r\n", 2);

	smtp_cmd_parser_init(&p, SMTP_AUTH_LINE_MAX);
	smtp_cmd_parser_set_max(&p, SMTP_COMMAND_LINE_MAX);
	n = smtp_cmd_parse(&p, in, big + 2, &res);
	CU_ASSERT_EQUAL(res, SMTP_CMD_TOO_LONG);
	n += smtp_cmd_parse(&p, in + n, big + 2 - n, &res);
	CU_ASSERT_EQUAL(res, SMTP_CMD_NEED_MORE);
	CU_ASSERT_EQUAL(n, big + 2);

	smtp_cmd_parser_set_max(&p, SMTP_AUTH_LINE_MAX);
	n = smtp_cmd_parse(&p, in, big + 2, &res);
	CU_ASSERT_EQUAL(res, SMTP_CMD_READY);
	CU_ASSERT_EQUAL(n, big + 2);
	CU_ASSERT_EQUAL(p.len, big);
	smtp_cmd_parser_set_max(&p, SMTP_COMMAND_LINE_MAX);

	/* A partial plaintext line does not survive a reset. */
	n = smtp_cmd_parse(&p, "RCPT TO:<evil@x>", 16, &res);
	CU_ASSERT_EQUAL(res, SMTP_CMD_NEED_MORE);
	smtp_cmd_parser_reset(&p);
	n = smtp_cmd_parse(&p, "NOOP\r\n", 6, &res);
	CU_ASSERT_EQUAL(res, SMTP_CMD_READY);
	CU_ASSERT_STRING_EQUAL(p.line, "NOOP");

	/* Raising above the init size is capped there, and the line buffer
	 * never moves (a session holds pointers into it across set_max). */
	smtp_cmd_parser_free(&p);
	smtp_cmd_parser_init(&p, 16);
	{
		char *line = p.line;
		smtp_cmd_parser_set_max(&p, big + 2);
		CU_ASSERT_PTR_EQUAL(p.line, line);
		CU_ASSERT_EQUAL(p.max_line, 16);
	}
	n = smtp_cmd_parse(&p, in, big + 2, &res);
	CU_ASSERT_EQUAL(res, SMTP_CMD_TOO_LONG);
	smtp_cmd_parser_free(&p);
	free(in);
}

/* ---------------------------------------------------------------------
 * Verbs
 */

struct verb_case {
	const char *line;
	enum smtp_verb verb;
	const char *arg;	/* NULL: *arg_r must be NULL */
	int http;
};

static const struct verb_case verb_cases[] = {
	{ "HELO example.org", SMTP_VERB_HELO, "example.org", 0 },
	{ "ehlo  example.org", SMTP_VERB_EHLO, "example.org", 0 },
	{ "EHLO", SMTP_VERB_EHLO, "", 0 },
	{ "EhLo ", SMTP_VERB_EHLO, "", 0 },
	{ "MAIL FROM:<a@b>", SMTP_VERB_MAIL, "<a@b>", 0 },
	{ "mail from:<a@b> SIZE=10", SMTP_VERB_MAIL, "<a@b> SIZE=10", 0 },
	{ "MAIL FROM: <a@b>", SMTP_VERB_MAIL, "<a@b>", 0 },
	{ "MAIL FROM:   <>", SMTP_VERB_MAIL, "<>", 0 },
	{ "MAIL  FROM:<a@b>", SMTP_VERB_MAIL, "<a@b>", 0 },
	{ "MAIL FROM:", SMTP_VERB_MAIL, "", 0 },
	{ "MAIL FROM <a@b>", SMTP_VERB_MAIL, NULL, 0 },
	{ "MAIL TO:<a@b>", SMTP_VERB_MAIL, NULL, 0 },
	{ "MAIL", SMTP_VERB_MAIL, NULL, 0 },
	{ "MAIL ", SMTP_VERB_MAIL, NULL, 0 },
	{ "MAILFROM:<a@b>", SMTP_VERB_UNKNOWN, "", 0 },
	{ "MAILX", SMTP_VERB_UNKNOWN, "", 0 },
	{ "RCPT TO:<c@d>", SMTP_VERB_RCPT, "<c@d>", 0 },
	{ "Rcpt To: <c@d> NOTIFY=NEVER", SMTP_VERB_RCPT, "<c@d> NOTIFY=NEVER", 0 },
	{ "RCPT FROM:<c@d>", SMTP_VERB_RCPT, NULL, 0 },
	{ "RCPT TO <c@d>", SMTP_VERB_RCPT, NULL, 0 },
	{ "DATA", SMTP_VERB_DATA, "", 0 },
	{ "data", SMTP_VERB_DATA, "", 0 },
	{ "DATAX", SMTP_VERB_UNKNOWN, "", 0 },
	{ "DATA x", SMTP_VERB_DATA, "x", 0 },
	{ "BDAT 100 LAST", SMTP_VERB_BDAT, "100 LAST", 0 },
	{ "RSET", SMTP_VERB_RSET, "", 0 },
	{ "NOOP whatever", SMTP_VERB_NOOP, "whatever", 0 },
	{ "QUIT", SMTP_VERB_QUIT, "", 0 },
	{ "VRFY root", SMTP_VERB_VRFY, "root", 0 },
	{ "EXPN list", SMTP_VERB_EXPN, "list", 0 },
	{ "HELP", SMTP_VERB_HELP, "", 0 },
	{ "STARTTLS", SMTP_VERB_STARTTLS, "", 0 },
	{ "starttls", SMTP_VERB_STARTTLS, "", 0 },
	{ "STARTTLSX", SMTP_VERB_UNKNOWN, "", 0 },
	{ "START", SMTP_VERB_UNKNOWN, "", 0 },
	{ "AUTH PLAIN AGFAAGI=", SMTP_VERB_AUTH, "PLAIN AGFAAGI=", 0 },
	{ "", SMTP_VERB_UNKNOWN, "", 0 },
	{ " HELO x", SMTP_VERB_UNKNOWN, "HELO x", 0 },
	{ "HEL", SMTP_VERB_UNKNOWN, "", 0 },
	{ "HELO\tx", SMTP_VERB_UNKNOWN, "", 0 },
	{ "GET / HTTP/1.1", SMTP_VERB_UNKNOWN, "/ HTTP/1.1", 1 },
	{ "POST /cgi HTTP/1.0", SMTP_VERB_UNKNOWN, "/cgi HTTP/1.0", 1 },
	{ "HEAD / HTTP/1.1", SMTP_VERB_UNKNOWN, "/ HTTP/1.1", 1 },
	{ "PUT /x HTTP/1.1", SMTP_VERB_UNKNOWN, "/x HTTP/1.1", 1 },
	{ "CONNECT mx.example:25 HTTP/1.1", SMTP_VERB_UNKNOWN,
	  "mx.example:25 HTTP/1.1", 1 },
	{ "OPTIONS * HTTP/1.1", SMTP_VERB_UNKNOWN, "* HTTP/1.1", 1 },
	{ "GET", SMTP_VERB_UNKNOWN, "", 0 },
	{ "GETX /", SMTP_VERB_UNKNOWN, "/", 0 },
};

static void
test_verb_table(void)
{
	for (size_t i = 0; i < sizeof verb_cases / sizeof verb_cases[0]; i++) {
		const struct verb_case *c = &verb_cases[i];
		const char *arg = "unset";
		int http = -1;
		enum smtp_verb v = smtp_cmd_verb(c->line, &arg, &http);

		if (v != c->verb || http != c->http ||
		    (c->arg == NULL) != (arg == NULL) ||
		    (c->arg != NULL && strcmp(arg, c->arg) != 0)) {
			fprintf(stderr, "\nverb case %zu \"%s\": got %d \"%s\" "
			    "http %d\n", i, c->line, (int)v,
			    arg ? arg : "(null)", http);
			CU_FAIL("verb differs");
		}
	}
	/* Optional outputs. */
	CU_ASSERT_EQUAL(smtp_cmd_verb("QUIT", NULL, NULL), SMTP_VERB_QUIT);
	CU_ASSERT_EQUAL(smtp_cmd_verb("GET /", NULL, NULL), SMTP_VERB_UNKNOWN);
}

/* ---------------------------------------------------------------------
 * Message content
 */

struct data_result {
	size_t consumed;
	int done;
	unsigned flags;
};

/* Feeds in[0..len) (stopping at the end of data) and returns the outcome;
 * out receives the content. When finish is set, calls smtp_data_finish. */
static struct data_result
data_run(enum smtp_data_mode dmode, size_t max_size, const char *in,
    size_t len, enum feed_mode mode, int finish, struct buf *out)
{
	struct smtp_data_parser p;
	struct data_result r = { 0, 0, 0 };
	unsigned seed = 11;

	buf_free(out);
	buf_init(out, max_size);
	smtp_data_parser_init(&p, dmode, out, max_size);
	while (r.consumed < len && !r.done) {
		size_t avail = feed_chunk(mode, &seed, len - r.consumed);
		size_t n = smtp_data_parse(&p, in + r.consumed, avail, &r.done);

		CU_ASSERT_FATAL(n <= avail);
		CU_ASSERT(out->len <= max_size);
		if (!r.done)
			CU_ASSERT_EQUAL(n, avail);
		r.consumed += n;
	}
	r.flags = finish ? smtp_data_finish(&p) : p.flags;
	return r;
}

struct data_case {
	const char *in;
	size_t len;
	enum smtp_data_mode mode;
	size_t max_size;
	size_t consumed;	/* (size_t)-1: all of the input */
	int done;
	unsigned flags;		/* after smtp_data_finish */
	const char *out;	/* expected content when flags are 0 */
	size_t outlen;
};

#define ALL ((size_t)-1)
#define DOT SMTP_DATA_DOTTED
#define BDAT SMTP_DATA_BDAT
#define BARE SMTP_DATA_BARE_EOL
#define NUL SMTP_DATA_NUL
#define BIG SMTP_DATA_TOO_BIG
#define LONG SMTP_DATA_LONG_LINE

static const struct data_case data_cases[] = {
	/* Normal ends. */
	{ S(".\r\n"), DOT, 1000, ALL, 1, 0, S("") },
	{ S("a\r\n.\r\n"), DOT, 1000, ALL, 1, 0, S("a\r\n") },
	{ S("\r\n.\r\n"), DOT, 1000, ALL, 1, 0, S("\r\n") },
	{ S("Subject: x\r\n\r\nbody\r\n.\r\n"), DOT, 1000, ALL, 1, 0,
	  S("Subject: x\r\n\r\nbody\r\n") },
	/* Pipelined bytes after the end are left to the command parser. */
	{ S("a\r\n.\r\nQUIT\r\n"), DOT, 1000, 6, 1, 0, S("a\r\n") },
	{ S(".\r\nMAIL FROM:<a@b>\r\n"), DOT, 1000, 3, 1, 0, S("") },
	{ S("a\r\n.\r\n.\r\n"), DOT, 1000, 6, 1, 0, S("a\r\n") },
	/* Dot-unstuffing. */
	{ S("..\r\n.\r\n"), DOT, 1000, ALL, 1, 0, S(".\r\n") },
	{ S("..a\r\n.\r\n"), DOT, 1000, ALL, 1, 0, S(".a\r\n") },
	{ S(".a\r\n.\r\n"), DOT, 1000, ALL, 1, 0, S("a\r\n") },
	{ S("a\r\n..\r\n.\r\n"), DOT, 1000, ALL, 1, 0, S("a\r\n.\r\n") },
	{ S("a\r\n...\r\n.\r\n"), DOT, 1000, ALL, 1, 0, S("a\r\n..\r\n") },
	{ S("a.\r\nb..c\r\n.\r\n"), DOT, 1000, ALL, 1, 0,
	  S("a.\r\nb..c\r\n") },
	{ S("..\r\n..\r\n.\r\n"), DOT, 1000, ALL, 1, 0, S(".\r\n.\r\n") },
	/* Incomplete: nothing ends. */
	{ S("a\r\n."), DOT, 1000, ALL, 0, 0, S("a\r\n") },
	{ S("a\r\n.\r"), DOT, 1000, ALL, 0, 0, S("a\r\n") },
	{ S("a\r"), DOT, 1000, ALL, 0, 0, S("a") },
	/* Look-alikes of the end: flagged, never the end. */
	{ S("a\n.\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("a\r.\r"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("a\n.\r\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("a\r\n.\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("a\r\n.\rX"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("a\r.\r\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("\n.\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S(".\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S(".\r.\r\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("\r.\r\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("a\r\n\r.\r\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("a\r\n\n.\r\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("a\r\n.\0\r\n"), DOT, 1000, ALL, 0, NUL, NULL, 0 },
	{ S("a\r\n\0.\r\n"), DOT, 1000, ALL, 0, NUL, NULL, 0 },
	{ S("a\0\r\n.\0\r\n"), DOT, 1000, ALL, 0, NUL, NULL, 0 },
	{ S("a\r\0\n.\r\n"), DOT, 1000, ALL, 0, BARE | NUL, NULL, 0 },
	{ S("a\n\r.\n\r"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	/* The real end still works after a flag, at a true CRLF. */
	{ S("a\n.\r\nb\r\n.\r\nQUIT\r\n"), DOT, 1000, 11, 1, BARE, NULL, 0 },
	{ S("a\r\r\n.\r\n"), DOT, 1000, ALL, 1, BARE, NULL, 0 },
	{ S("a\0\r\n.\r\n"), DOT, 1000, ALL, 1, NUL, NULL, 0 },
	{ S(".\r\r\n.\r\n"), DOT, 1000, ALL, 1, BARE, NULL, 0 },
	/* The smuggling attempt. */
	{ S("content\r\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\n"
	    "smuggled\r\n.\r\nQUIT\r\n"), DOT, 1000, ALL - 6, 1, BARE,
	  NULL, 0 },
	{ S("content\n.\nMAIL FROM:<evil@x>\nRCPT TO:<v@y>\nDATA\n"
	    "smuggled\n.\n"), DOT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("content\r.\rMAIL FROM:<evil@x>\r\n"), DOT, 1000, ALL, 0, BARE,
	  NULL, 0 },
	/* Size. */
	{ S("123456\r\n.\r\n"), DOT, 8, ALL, 1, 0, S("123456\r\n") },
	{ S("123456\r\n.\r\n"), DOT, 7, ALL, 1, BIG, NULL, 0 },
	{ S("123456\r\n.\r\n"), DOT, 0, ALL, 1, BIG, NULL, 0 },
	{ S("..\r\n.\r\n"), DOT, 3, ALL, 1, 0, S(".\r\n") },
	{ S(".\r\n"), DOT, 0, ALL, 1, 0, S("") },
	{ S("123456789\r\n\n.\r\n"), DOT, 5, ALL, 0, BIG | BARE, NULL, 0 },
	{ S("123456789\r\n\n\r\n.\r\n"), DOT, 5, ALL, 1, BIG | BARE, NULL, 0 },
	/* BDAT: no dots, no end, CRLF across chunks is fine. */
	{ S("a\r\n.\r\n"), BDAT, 1000, ALL, 0, 0, S("a\r\n.\r\n") },
	{ S("..\r\n"), BDAT, 1000, ALL, 0, 0, S("..\r\n") },
	{ S("abc\r\ndef\r\n"), BDAT, 1000, ALL, 0, 0, S("abc\r\ndef\r\n") },
	{ S("abc"), BDAT, 1000, ALL, 0, 0, S("abc") },
	{ S("abc\r"), BDAT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("abc\rx"), BDAT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("abc\nx\r\n"), BDAT, 1000, ALL, 0, BARE, NULL, 0 },
	{ S("abc\0x\r\n"), BDAT, 1000, ALL, 0, NUL, NULL, 0 },
	{ S("abcde"), BDAT, 4, ALL, 0, BIG, NULL, 0 },
	{ S("abcd"), BDAT, 4, ALL, 0, 0, S("abcd") },
};

static void
test_data_table(void)
{
	struct buf out;

	buf_init(&out, 0);
	for (size_t i = 0; i < sizeof data_cases / sizeof data_cases[0]; i++) {
		const struct data_case *c = &data_cases[i];
		size_t want = c->consumed;

		if (want == ALL)
			want = c->len;
		else if (want > c->len)	/* ALL - k: all but the last k */
			want = c->len - (ALL - want);
		for (int m = 0; m < FEED_MODES; m++) {
			struct data_result r = data_run(c->mode, c->max_size,
			    c->in, c->len, (enum feed_mode)m,
			    c->mode == SMTP_DATA_BDAT, &out);
			int ok = r.consumed == want && r.done == c->done &&
			    r.flags == c->flags;

			if (ok && c->flags == 0 && c->out != NULL)
				ok = out.len == c->outlen &&
				    memcmp(out.data ? out.data : "", c->out,
				    c->outlen) == 0;
			if (!ok) {
				fprintf(stderr, "\ndata case %zu mode %d: "
				    "consumed %zu/%zu done %d flags %u "
				    "out \"%s\"\n", i, m, r.consumed, want,
				    r.done, r.flags,
				    out.data ? out.data : "");
				CU_FAIL("data result differs");
			}
		}
	}
	buf_free(&out);
}

/* Line length: 998 octets plus CRLF pass, 999 do not; a stuffed dot does
 * not count; BDAT checks across chunk boundaries. */
static void
test_data_long_lines(void)
{
	char *in = xmalloc(4096);
	struct buf out;
	struct data_result r;
	size_t n;

	buf_init(&out, 0);
	for (int m = 0; m < FEED_MODES; m++) {
		memset(in, 'x', 998);
		memcpy(in + 998, "\r\n.\r\n", 5);
		r = data_run(DOT, 1 << 20, in, 1003, (enum feed_mode)m, 0, &out);
		CU_ASSERT(r.done && r.flags == 0 && out.len == 1000);

		memset(in, 'x', 999);
		memcpy(in + 999, "\r\n.\r\n", 5);
		r = data_run(DOT, 1 << 20, in, 1004, (enum feed_mode)m, 0, &out);
		CU_ASSERT(r.done && r.flags == SMTP_DATA_LONG_LINE);

		/* "." + 998: the stuffed dot is not counted. */
		in[0] = '.';
		memset(in + 1, 'x', 998);
		memcpy(in + 999, "\r\n.\r\n", 5);
		r = data_run(DOT, 1 << 20, in, 1004, (enum feed_mode)m, 0, &out);
		CU_ASSERT(r.done && r.flags == 0 && out.len == 1000);

		/* ".." + 998: 999 after unstuffing. */
		in[0] = '.';
		in[1] = '.';
		memset(in + 2, 'x', 998);
		memcpy(in + 1000, "\r\n.\r\n", 5);
		r = data_run(DOT, 1 << 20, in, 1005, (enum feed_mode)m, 0, &out);
		CU_ASSERT(r.done && r.flags == SMTP_DATA_LONG_LINE);

		/* Many short lines do not add up. */
		n = 0;
		for (int k = 0; k < 500; k++) {
			memcpy(in + n, "abcdef\r\n", 8);
			n += 8;
		}
		memcpy(in + n, ".\r\n", 3);
		r = data_run(DOT, 1 << 20, in, n + 3, (enum feed_mode)m, 0, &out);
		CU_ASSERT(r.done && r.flags == 0 && out.len == n);

		/* LF-only text: bare LF, but no long line. */
		n = 0;
		for (int k = 0; k < 500; k++) {
			memcpy(in + n, "abcdef\n", 7);
			n += 7;
		}
		r = data_run(DOT, 1 << 20, in, n, (enum feed_mode)m, 0, &out);
		CU_ASSERT(!r.done && r.flags == SMTP_DATA_BARE_EOL);

		/* A long line full of NULs and bare CRs is still long. */
		memset(in, '\0', 1500);
		memcpy(in + 1500, "\r\n", 2);
		r = data_run(BDAT, 1 << 20, in, 1502, (enum feed_mode)m, 1, &out);
		CU_ASSERT(r.flags == (SMTP_DATA_NUL | SMTP_DATA_LONG_LINE));
		memset(in, '\r', 1500);
		in[1500] = 'x';
		r = data_run(BDAT, 1 << 20, in, 1501, (enum feed_mode)m, 1, &out);
		CU_ASSERT(r.flags == (SMTP_DATA_BARE_EOL | SMTP_DATA_LONG_LINE));
	}
	buf_free(&out);
	free(in);
}

/* BDAT chunks handed over one by one, with CR and LF split between them. */
static void
test_data_bdat_chunks(void)
{
	static const struct {
		const char *chunks[4];
		unsigned flags;
		const char *out;
	} cases[] = {
		{ { "abc\r", "\ndef\r\n", NULL }, 0, "abc\r\ndef\r\n" },
		{ { "abc\r", "\r\n", NULL }, SMTP_DATA_BARE_EOL, NULL },
		{ { "abc\r", "x", NULL }, SMTP_DATA_BARE_EOL, NULL },
		{ { "abc\r", NULL }, SMTP_DATA_BARE_EOL, NULL },
		{ { "abc", "\r", "\n", NULL }, 0, "abc\r\n" },
		{ { "abc", "", "\r\n", NULL }, 0, "abc\r\n" },
		{ { "abc\r", "", "\n", NULL }, 0, "abc\r\n" },
		{ { "a\r\n.", "\r\n", NULL }, 0, "a\r\n.\r\n" },
		{ { "a", "\n", NULL }, SMTP_DATA_BARE_EOL, NULL },
		{ { NULL }, 0, "" },
	};
	struct buf out;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct smtp_data_parser p;
		unsigned flags;
		int done;

		buf_init(&out, 1000);
		smtp_data_parser_init(&p, SMTP_DATA_BDAT, &out, 1000);
		for (int k = 0; cases[i].chunks[k] != NULL; k++) {
			size_t len = strlen(cases[i].chunks[k]);

			CU_ASSERT_EQUAL(smtp_data_parse(&p, cases[i].chunks[k],
			    len, &done), len);
			CU_ASSERT_EQUAL(done, 0);
		}
		flags = smtp_data_finish(&p);
		CU_ASSERT_EQUAL(flags, cases[i].flags);
		if (flags == 0 && cases[i].out != NULL) {
			CU_ASSERT_EQUAL(out.len, strlen(cases[i].out));
			CU_ASSERT_STRING_EQUAL(out.data ? out.data : "",
			    cases[i].out);
		}
		buf_free(&out);
	}
}

/* Builds a large dot-stuffed message and checks the content comes back
 * unstuffed in every feeding mode; and that a finished parser consumes
 * nothing more. */
static void
test_data_large(void)
{
	struct buf in, expect, out;
	struct data_result r;
	struct smtp_data_parser p;
	int done;

	buf_init(&in, 1 << 22);
	buf_init(&expect, 1 << 22);
	buf_init(&out, 0);
	for (int k = 0; k < 4000; k++) {
		if (k % 7 == 0) {
			buf_printf(&in, "..line %d with a leading dot\r\n", k);
			buf_printf(&expect, ".line %d with a leading dot\r\n", k);
		} else {
			buf_printf(&in, "line %d: the quick brown fox jumps "
			    "over the lazy dog.\r\n", k);
			buf_printf(&expect, "line %d: the quick brown fox jumps "
			    "over the lazy dog.\r\n", k);
		}
	}
	buf_puts(&in, ".\r\nQUIT\r\n");
	for (int m = 0; m < FEED_MODES; m++) {
		r = data_run(DOT, 1 << 22, in.data, in.len, (enum feed_mode)m,
		    0, &out);
		CU_ASSERT(r.done && r.flags == 0);
		CU_ASSERT_EQUAL(r.consumed, in.len - 6);
		CU_ASSERT_EQUAL(out.len, expect.len);
		CU_ASSERT(out.len == expect.len &&
		    memcmp(out.data, expect.data, out.len) == 0);
	}
	/* Too big by one byte, found while the whole message is consumed. */
	r = data_run(DOT, expect.len - 1, in.data, in.len, FEED_BLOCK, 0, &out);
	CU_ASSERT(r.done && r.flags == SMTP_DATA_TOO_BIG);
	CU_ASSERT_EQUAL(r.consumed, in.len - 6);

	buf_free(&out);
	buf_init(&out, 100);
	smtp_data_parser_init(&p, SMTP_DATA_DOTTED, &out, 100);
	CU_ASSERT_EQUAL(smtp_data_parse(&p, ".\r\nNOOP\r\n", 9, &done), 3);
	CU_ASSERT_EQUAL(done, 1);
	CU_ASSERT_EQUAL(smtp_data_parse(&p, "NOOP\r\n", 6, &done), 0);
	CU_ASSERT_EQUAL(done, 1);
	CU_ASSERT_EQUAL(smtp_data_finish(&p), 0);
	buf_free(&out);
	buf_free(&in);
	buf_free(&expect);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("smtp_cmd", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "table, all feeding modes", test_cmd_table) == NULL ||
	    CU_add_test(s, "100 kB line", test_cmd_endless_line) == NULL ||
	    CU_add_test(s, "set_max and reset", test_cmd_set_max_reset) == NULL ||
	    CU_add_test(s, "verbs", test_verb_table) == NULL)
		goto fail;
	s = CU_add_suite("smtp_data", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "table, all feeding modes", test_data_table) == NULL ||
	    CU_add_test(s, "long lines", test_data_long_lines) == NULL ||
	    CU_add_test(s, "BDAT chunks", test_data_bdat_chunks) == NULL ||
	    CU_add_test(s, "large message", test_data_large) == NULL)
		goto fail;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
fail:
	CU_cleanup_registry();
	return 1;
}
