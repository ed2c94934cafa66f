/*
 * test_bounce: delivery status notifications. Each report is split at
 * the boundary announced in its Content-Type and each part checked: the
 * kinds, RET=FULL against headers only, ORCPT and ENVID, hostile input
 * (CR/LF in every field, an original holding the boundary, huge words, a
 * 20 MiB original), SMTPUTF8, line syntax, and Python's email package
 * parsing a sample.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "queue/bounce.h"
#include "server/smtp_args.h"

_Static_assert(DSN_RET_FULL == 1, "bounce.c assumes DSN_RET_FULL is 1");

#define ORIG_HDRS "Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n" \
	"From: Alice <alice@example.org>\r\n" \
	"To: bob@example.net\r\n" \
	"Subject: hello\r\n" \
	"Message-ID: <m1@example.org>\r\n"
#define ORIG_BODY "Hi Bob,\r\n\r\nsecret body line\r\n"
#define ORIG ORIG_HDRS "\r\n" ORIG_BODY

struct part {
	char *hdrs;	/* header section, NUL-terminated */
	char *body;
	size_t body_len;
};

struct report {
	char *msg;
	size_t len;
	char boundary[128];
	struct part parts[4];
	size_t nparts;
};

/* The original is read in pieces of ORIG_PIECE bytes, so that every scan
 * (header section, 8-bit, the boundary) meets piece boundaries. */
#define ORIG_PIECE 997
static struct body_reader orig_reader;
static struct body_mem orig_mem;

static void
orig_set(struct bounce_orig *o, const char *body, size_t len)
{
	body_reader_mem(&orig_reader, &orig_mem, body, len, ORIG_PIECE);
	o->body = &orig_reader;
}

static void
orig_init(struct bounce_orig *o, const char *body, int ret)
{
	memset(o, 0, sizeof *o);
	o->queue_id = "18C0FFEE12345";
	o->sender = "alice@example.org";
	o->ret = ret;
	o->arrival = 1700000000;
	orig_set(o, body, strlen(body));
}

static int
sink_buf(void *arg, const char *p, size_t n)
{
	return buf_append(arg, p, n);
}

/* What the last build_mem said of 8-bit data in its report. */
static int built_eightbit;

/* The report in memory (the tests' way to read it). */
static char *
build_mem(enum bounce_kind kind, const struct bounce_orig *o,
    const struct bounce_rcpt *rc, size_t n, int64_t retry_until, size_t *len_r)
{
	struct buf b;
	struct bounce_sink sink = { sink_buf, &b };

	buf_init(&b, (size_t)1 << 30);
	built_eightbit = -1;
	if (bounce_build(kind, "mx.example.com", o, rc, n, retry_until,
	    &sink, &built_eightbit) != 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b, len_r);
}

static void
rcpt_init(struct bounce_rcpt *r, const char *addr, const char *status,
    const char *diag)
{
	memset(r, 0, sizeof *r);
	r->addr = addr;
	r->status = status;
	r->diag = diag;
	r->remote_mta = "mx.example.net";
	r->last_attempt = 1700000100;
}

/* Every line ends with CRLF, holds no other CR or LF, and has at most 998
 * octets before the CRLF. */
static int
lines_ok(const char *m, size_t len)
{
	size_t start = 0, i;

	for (i = 0; i < len; i++) {
		if (m[i] == '\r') {
			if (i + 1 >= len || m[i + 1] != '\n')
				return 0;
			if (i - start > 998)
				return 0;
			start = i + 2;
			i++;
		} else if (m[i] == '\n') {
			return 0;
		}
	}
	return start == len;
}

/* The value of field name in a header section (first one, unfolded
 * only up to its first line), or NULL. */
static const char *
field(const char *hdrs, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);
	const char *p = hdrs, *e;

	while (*p != '\0') {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			p += nl + 1;
			while (*p == ' ')
				p++;
			e = strstr(p, "\r\n");
			if (e == NULL)
				e = p + strlen(p);
			snprintf(out, size, "%.*s", (int)(e - p), p);
			return out;
		}
		e = strstr(p, "\r\n");
		if (e == NULL)
			break;
		p = e + 2;
	}
	return NULL;
}

/* Whether some line of m (of len) starts with prefix. */
static int
has_line(const char *m, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix), i;

	for (i = 0; i + pl <= len; i++)
		if ((i == 0 || m[i - 1] == '\n') &&
		    strncmp(m + i, prefix, pl) == 0)
			return 1;
	return 0;
}

static void
part_split(struct part *pt, const char *s, size_t len)
{
	const char *sep = memmem(s, len, "\r\n\r\n", 4);
	size_t hl;

	CU_ASSERT_FATAL(sep != NULL);
	hl = (size_t)(sep - s) + 2;
	pt->hdrs = strndup(s, hl);
	pt->body_len = len - hl - 2;
	pt->body = malloc(pt->body_len + 1);
	memcpy(pt->body, sep + 4, pt->body_len);
	pt->body[pt->body_len] = '\0';
}

/* Builds a report and splits it at its boundary. */
static void
report_build(struct report *r, enum bounce_kind kind,
    const struct bounce_orig *o, const struct bounce_rcpt *rc, size_t n,
    int64_t retry_until)
{
	char delim[160], close_delim[160];
	const char *b, *p, *next, *end;
	size_t dl;

	memset(r, 0, sizeof *r);
	r->msg = build_mem(kind, o, rc, n, retry_until, &r->len);
	CU_ASSERT_FATAL(r->msg != NULL);
	CU_ASSERT(lines_ok(r->msg, r->len));
	b = strstr(r->msg, "boundary=\"");
	CU_ASSERT_FATAL(b != NULL);
	b += strlen("boundary=\"");
	end = strchr(b, '"');
	CU_ASSERT_FATAL(end != NULL && end - b < 71 && end > b);
	snprintf(r->boundary, sizeof r->boundary, "%.*s", (int)(end - b), b);
	snprintf(delim, sizeof delim, "\r\n--%s\r\n", r->boundary);
	snprintf(close_delim, sizeof close_delim, "\r\n--%s--\r\n",
	    r->boundary);
	dl = strlen(delim);
	end = memmem(r->msg, r->len, close_delim, strlen(close_delim));
	CU_ASSERT_FATAL(end != NULL);
	CU_ASSERT((size_t)(end - r->msg) + strlen(close_delim) == r->len);
	p = memmem(r->msg, r->len, delim, dl);
	CU_ASSERT_FATAL(p != NULL);
	p += dl;
	while (r->nparts < 4) {
		next = memmem(p, (size_t)(end - p), delim, dl);
		if (next == NULL)
			next = end;
		part_split(&r->parts[r->nparts++], p, (size_t)(next - p));
		if (next == end)
			break;
		p = next + dl;
	}
}

static void
report_free(struct report *r)
{
	size_t i;

	for (i = 0; i < r->nparts; i++) {
		free(r->parts[i].hdrs);
		free(r->parts[i].body);
	}
	free(r->msg);
}

static void
test_kinds(void)
{
	static const struct {
		enum bounce_kind kind;
		const char *subject, *action, *status;
	} cases[] = {
		{ BOUNCE_FAILED, "Undelivered Mail Returned to Sender",
		  "failed", "5.1.1" },
		{ BOUNCE_DELAYED, "Delayed Mail (still being retried)",
		  "delayed", "4.4.1" },
		{ BOUNCE_DELIVERED, "Successful Mail Delivery Report",
		  "delivered", "2.0.0" },
		{ BOUNCE_RELAYED, "Successful Mail Relay Report",
		  "relayed", "2.0.0" },
		{ BOUNCE_EXPANDED, "Successful Mail Expansion Report",
		  "expanded", "2.0.0" },
	};
	struct bounce_orig o;
	struct bounce_rcpt rc[2];
	struct report r;
	char v[512];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		orig_init(&o, ORIG, DSN_RET_FULL);
		rcpt_init(&rc[0], "bob@example.net", cases[i].status,
		    "smtp; 550 5.1.1 user unknown");
		rcpt_init(&rc[1], "carol@example.net", cases[i].status, NULL);
		rc[1].remote_mta = NULL;
		rc[1].last_attempt = 0;
		report_build(&r, cases[i].kind, &o, rc, 2, 1700400000);
		CU_ASSERT_EQUAL_FATAL(r.nparts, 3);
		CU_ASSERT_STRING_EQUAL(field(r.msg, "Subject", v, sizeof v),
		    cases[i].subject);
		CU_ASSERT_STRING_EQUAL(field(r.msg, "From", v, sizeof v),
		    "MAILER-DAEMON@mx.example.com (Mail Delivery System)");
		CU_ASSERT_STRING_EQUAL(field(r.msg, "To", v, sizeof v),
		    "<alice@example.org>");
		CU_ASSERT_STRING_EQUAL(field(r.msg, "Auto-Submitted", v,
		    sizeof v), "auto-replied");
		CU_ASSERT_STRING_EQUAL(field(r.msg, "MIME-Version", v,
		    sizeof v), "1.0");
		CU_ASSERT_PTR_NOT_NULL(field(r.msg, "Date", v, sizeof v));
		CU_ASSERT(field(r.msg, "Message-ID", v, sizeof v) != NULL &&
		    strstr(v, "<18C0FFEE12345.") == v &&
		    strstr(v, "@mx.example.com>") != NULL);
		CU_ASSERT(strstr(r.msg, "Content-Type: multipart/report; "
		    "report-type=delivery-status;") != NULL);

		/* part 1: readable */
		CU_ASSERT_STRING_EQUAL(field(r.parts[0].hdrs, "Content-Type",
		    v, sizeof v), "text/plain; charset=us-ascii");
		CU_ASSERT_STRING_EQUAL(field(r.parts[0].hdrs,
		    "Content-Description", v, sizeof v), "Notification");
		CU_ASSERT(strstr(r.parts[0].body, "mx.example.com") != NULL);
		CU_ASSERT(strstr(r.parts[0].body, "<bob@example.net>: smtp; "
		    "550 5.1.1 user unknown") != NULL);
		CU_ASSERT(strstr(r.parts[0].body, "<carol@example.net>: ") !=
		    NULL);

		/* part 2: machine-readable */
		CU_ASSERT_STRING_EQUAL(field(r.parts[1].hdrs, "Content-Type",
		    v, sizeof v), "message/delivery-status");
		CU_ASSERT_STRING_EQUAL(field(r.parts[1].hdrs,
		    "Content-Description", v, sizeof v), "Delivery report");
		CU_ASSERT(strncmp(r.parts[1].body,
		    "Reporting-MTA: dns; mx.example.com\r\n"
		    "X-Mailserver-Queue-ID: 18C0FFEE12345\r\n"
		    "Arrival-Date: ", 88) == 0);
		CU_ASSERT(strstr(r.parts[1].body, "\r\n\r\nFinal-Recipient: "
		    "rfc822; bob@example.net\r\n") != NULL);
		CU_ASSERT(strstr(r.parts[1].body, "\r\n\r\nFinal-Recipient: "
		    "rfc822; carol@example.net\r\n") != NULL);
		snprintf(v, sizeof v, "\r\nAction: %s\r\nStatus: %s\r\n"
		    "Remote-MTA: dns; mx.example.net\r\nDiagnostic-Code: smtp; "
		    "550 5.1.1 user unknown\r\nLast-Attempt-Date: ",
		    cases[i].action, cases[i].status);
		CU_ASSERT(strstr(r.parts[1].body, v) != NULL);
		CU_ASSERT_EQUAL(has_line(r.parts[1].body, r.parts[1].body_len,
		    "Will-Retry-Until: "), cases[i].kind == BOUNCE_DELAYED);
		CU_ASSERT(!has_line(r.parts[1].body, r.parts[1].body_len,
		    "Original-Envelope-Id:"));
		CU_ASSERT(!has_line(r.parts[1].body, r.parts[1].body_len,
		    "Original-Recipient:"));

		/* part 3: RET=FULL only for failures */
		if (cases[i].kind == BOUNCE_FAILED) {
			CU_ASSERT_STRING_EQUAL(field(r.parts[2].hdrs,
			    "Content-Type", v, sizeof v), "message/rfc822");
			CU_ASSERT_STRING_EQUAL(field(r.parts[2].hdrs,
			    "Content-Description", v, sizeof v),
			    "Undelivered Message");
			CU_ASSERT_STRING_EQUAL(r.parts[2].body, ORIG);
		} else {
			CU_ASSERT_STRING_EQUAL(field(r.parts[2].hdrs,
			    "Content-Type", v, sizeof v), "text/rfc822-headers");
			CU_ASSERT_STRING_EQUAL(r.parts[2].body, ORIG_HDRS);
		}
		report_free(&r);
	}
}

static void
test_ret_hdrs(void)
{
	static const int rets[] = { DSN_RET_HDRS, DSN_RET_UNSET };
	struct bounce_orig o;
	struct bounce_rcpt rc;
	struct report r;
	char v[256];
	size_t i;

	for (i = 0; i < 2; i++) {
		orig_init(&o, ORIG, rets[i]);
		rcpt_init(&rc, "bob@example.net", "5.1.1", NULL);
		report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
		CU_ASSERT_EQUAL_FATAL(r.nparts, 3);
		CU_ASSERT_STRING_EQUAL(field(r.parts[2].hdrs, "Content-Type", v,
		    sizeof v), "text/rfc822-headers");
		CU_ASSERT_STRING_EQUAL(field(r.parts[2].hdrs,
		    "Content-Description", v, sizeof v),
		    "Undelivered Message Headers");
		CU_ASSERT_STRING_EQUAL(r.parts[2].body, ORIG_HDRS);
		CU_ASSERT(memmem(r.msg, r.len, "secret body line", 16) == NULL);
		report_free(&r);
	}
	/* an original without a body, and one without a header/body break */
	orig_init(&o, ORIG_HDRS, DSN_RET_HDRS);
	rcpt_init(&rc, "bob@example.net", "5.1.1", NULL);
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_STRING_EQUAL(r.parts[2].body, ORIG_HDRS);
	report_free(&r);
	orig_init(&o, "", DSN_RET_FULL);
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_EQUAL(r.nparts, 3);
	report_free(&r);
}

static void
test_orcpt_envid(void)
{
	struct bounce_orig o;
	struct bounce_rcpt rc[2];
	struct report r;
	char v[256];

	orig_init(&o, ORIG, DSN_RET_HDRS);
	o.envid = "QQ314159";
	rcpt_init(&rc[0], "bob@example.net", "5.1.1", NULL);
	rc[0].orcpt = "rfc822;Bob@Example.NET";
	rcpt_init(&rc[1], "carol@example.net", "5.1.1", NULL);
	/* Not a global DSN: a UTF-8 ORCPT in RFC 6533's 7-bit form. */
	rc[1].orcpt = "utf-8;c\xc3\xa9line@example.net";
	report_build(&r, BOUNCE_FAILED, &o, rc, 2, 0);
	CU_ASSERT_STRING_EQUAL(field(r.parts[1].body, "Original-Envelope-Id",
	    v, sizeof v), "QQ314159");
	CU_ASSERT(strstr(r.parts[1].body, "Final-Recipient: rfc822; "
	    "bob@example.net\r\nOriginal-Recipient: rfc822;Bob@Example.NET\r\n"
	    "Action: failed\r\n") != NULL);
	CU_ASSERT(strstr(r.parts[1].body, "Final-Recipient: rfc822; "
	    "carol@example.net\r\nOriginal-Recipient: utf-8;c\\x{E9}line@"
	    "example.net\r\nAction: failed\r\n") != NULL);
	report_free(&r);
}

static void
test_injection(void)
{
	struct bounce_orig o;
	struct bounce_rcpt rc;
	struct report r;
	char v[512];

	orig_init(&o, ORIG, DSN_RET_HDRS);
	o.sender = "alice@example.org>\r\nBcc: evil@example.com";
	o.envid = "id\r\nX-Env-Injected: 1";
	o.queue_id = "ABC\r\nX-Qid-Injected: 1";
	rcpt_init(&rc, "bob@example.net\nX-Addr-Injected: 1", "5.1.1\r\nX: 1",
	    "550 5.1.1 no\r\nX-Diag-Injected: yes\r\n\r\n--fake\x01\x7f\xff");
	rc.orcpt = "rfc822;b\r\nX-Orcpt-Injected: 1";
	rc.remote_mta = "mx\r\nX-Mta-Injected: 1";
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_EQUAL_FATAL(r.nparts, 3);
	CU_ASSERT(!has_line(r.msg, r.len, "Bcc:"));
	CU_ASSERT(!has_line(r.msg, r.len, "X-Env-Injected"));
	CU_ASSERT(!has_line(r.msg, r.len, "X-Qid-Injected"));
	CU_ASSERT(!has_line(r.msg, r.len, "X-Addr-Injected"));
	CU_ASSERT(!has_line(r.msg, r.len, "X-Diag-Injected"));
	CU_ASSERT(!has_line(r.msg, r.len, "X-Orcpt-Injected"));
	CU_ASSERT(!has_line(r.msg, r.len, "X-Mta-Injected"));
	CU_ASSERT(!has_line(r.msg, r.len, "--fake"));
	CU_ASSERT(!has_line(r.msg, r.len, "X: 1"));
	CU_ASSERT_STRING_EQUAL(field(r.msg, "To", v, sizeof v),
	    "<alice@example.org> Bcc: evil@example.com>");
	/* a malformed status is replaced, not copied */
	CU_ASSERT(strstr(r.parts[1].body, "Status: 5.0.0\r\n") != NULL);
	CU_ASSERT(strstr(r.parts[1].body, "Diagnostic-Code: smtp; 550 5.1.1 "
	    "no X-Diag-Injected: yes --fake ?\r\n") != NULL);
	CU_ASSERT(strstr(r.parts[0].body, "<bob@example.net X-Addr-Injected: "
	    "1>: 550 5.1.1 no") != NULL);
	CU_ASSERT(strstr(r.msg, "Message-ID: <ABCXXXQidXInjectedXX1.") != NULL);
	report_free(&r);
}

static void
test_boundary_collision(void)
{
	struct bounce_orig o;
	struct bounce_rcpt rc;
	struct report r;
	char first[128], *body;
	size_t blen;

	orig_init(&o, ORIG, DSN_RET_FULL);
	rcpt_init(&rc, "bob@example.net", "5.1.1", NULL);
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	snprintf(first, sizeof first, "%s", r.boundary);
	report_free(&r);

	/* the same message gives the same first choice; plant it */
	blen = strlen(ORIG) + 2 * strlen(first) + 64;
	body = malloc(blen);
	snprintf(body, blen, ORIG_HDRS "X-Trap: %s\r\n\r\n--%s\r\n"
	    "Content-Type: text/plain\r\n\r\nfake\r\n", first, first);
	orig_init(&o, body, DSN_RET_FULL);
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_STRING_NOT_EQUAL(r.boundary, first);
	CU_ASSERT(strstr(body, r.boundary) == NULL);
	CU_ASSERT_EQUAL_FATAL(r.nparts, 3);
	CU_ASSERT_STRING_EQUAL(r.parts[2].body, body);
	report_free(&r);

	/* headers only: the trap in the header section counts too */
	orig_init(&o, body, DSN_RET_HDRS);
	report_build(&r, BOUNCE_DELAYED, &o, &rc, 1, 0);
	CU_ASSERT_STRING_NOT_EQUAL(r.boundary, first);
	CU_ASSERT_EQUAL(r.nparts, 3);
	report_free(&r);
	free(body);
}

static void
test_long_lines(void)
{
	struct bounce_orig o;
	struct bounce_rcpt rc[3];
	struct report r;
	char *word, *words, *addr;
	size_t i;

	word = malloc(5001);
	memset(word, 'w', 5000);
	word[5000] = '\0';
	words = malloc(5001);
	for (i = 0; i < 5000; i++)
		words[i] = i % 7 == 6 ? ' ' : 'a';
	words[5000] = '\0';
	addr = malloc(3001);
	memset(addr, 'l', 3000);
	memcpy(addr + 2980, "@example.net", 13);

	orig_init(&o, ORIG, DSN_RET_FULL);
	o.sender = addr;
	o.envid = word;
	rcpt_init(&rc[0], addr, "5.1.1", word);
	rc[0].orcpt = word;
	rc[0].remote_mta = word;
	rcpt_init(&rc[1], "bob@example.net", "5.1.1", words);
	rcpt_init(&rc[2], "c@example.net", "5.1.1", "\t \t");
	/* report_build checks every line */
	report_build(&r, BOUNCE_FAILED, &o, rc, 3, 0);
	CU_ASSERT_EQUAL(r.nparts, 3);
	CU_ASSERT(strstr(r.parts[1].body, "Diagnostic-Code: smtp; aaaaaa "
	    "aaaaaa") != NULL);
	CU_ASSERT(r.len < 100000);
	report_free(&r);
	free(word);
	free(words);
	free(addr);
}

/* A large original made as it is read: ORIG_HDRS, an empty line, then
 * lines of 78 'x' and CRLF, size bytes in all (whole lines). */
struct gen_orig {
	uint64_t size, off;
	char piece[65536];
};

static void
gen_fill(uint64_t at, char *out, size_t n)
{
	size_t hl = strlen(ORIG_HDRS "\r\n");

	for (size_t i = 0; i < n; i++, at++) {
		if (at < hl)
			out[i] = (ORIG_HDRS "\r\n")[at];
		else
			out[i] = (at - hl) % 80 == 78 ? '\r' :
			    (at - hl) % 80 == 79 ? '\n' : 'x';
	}
}

static int
gen_next(void *arg, const char **p, size_t *n)
{
	struct gen_orig *g = arg;
	size_t k = g->size - g->off < sizeof g->piece ?
	    (size_t)(g->size - g->off) : sizeof g->piece;

	gen_fill(g->off, g->piece, k);
	g->off += k;
	*p = g->piece;
	*n = k;
	return 0;
}

static int
gen_rewind(void *arg)
{
	((struct gen_orig *)arg)->off = 0;
	return 0;
}

static void
test_large_original(void)
{
	size_t hl = strlen(ORIG_HDRS) + 2;
	struct gen_orig *g = calloc(1, sizeof *g);
	struct body_reader rd = { gen_next, gen_rewind, g, 0 };
	struct bounce_orig o;
	struct bounce_rcpt rc;
	struct report r;
	char v[256], *want;
	int same = 1;

	/* Over the limit: its header section only. */
	g->size = hl + (BOUNCE_FULL_MAX / 80 + 1) * 80;
	rd.size = g->size;
	orig_init(&o, "", DSN_RET_FULL);
	o.body = &rd;
	rcpt_init(&rc, "bob@example.net", "5.2.2", "552 mailbox full");
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_EQUAL_FATAL(r.nparts, 3);
	CU_ASSERT(r.len < 64 * 1024);
	CU_ASSERT_STRING_EQUAL(field(r.parts[2].hdrs, "Content-Type", v,
	    sizeof v), "text/rfc822-headers");
	CU_ASSERT_STRING_EQUAL(r.parts[2].body, ORIG_HDRS);
	CU_ASSERT(strstr(r.parts[0].body, "too large") != NULL);
	report_free(&r);

	/* 20 MiB: whole, read in pieces, copied byte for byte. */
	g->size = hl + (20u * 1024 * 1024 / 80) * 80;
	rd.size = g->size;
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_STRING_EQUAL(field(r.parts[2].hdrs, "Content-Type", v,
	    sizeof v), "message/rfc822");
	CU_ASSERT_EQUAL_FATAL(r.parts[2].body_len, g->size);
	want = malloc(65536);
	for (uint64_t at = 0; at < g->size && same; at += 65536) {
		size_t k = g->size - at < 65536 ? (size_t)(g->size - at) : 65536;
		gen_fill(at, want, k);
		same = memcmp(r.parts[2].body + at, want, k) == 0;
	}
	CU_ASSERT(same);
	free(want);
	report_free(&r);
	free(g);
}

static void
test_smtputf8(void)
{
	static const char orig8[] = "From: J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc"
	    "cher.example>\r\nSubject: gr\xc3\xbc\xc3\x9f" "e\r\n\r\nbody\r\n";
	struct bounce_orig o;
	struct bounce_rcpt rc;
	struct report r;
	char v[256];

	orig_init(&o, orig8, DSN_RET_FULL);
	o.smtputf8 = 1;
	o.sender = "j\xc3\xb6rg@b\xc3\xbc" "cher.example";
	rcpt_init(&rc, "m\xc3\xbcller@example.net", "5.1.1",
	    "550 unknown \xc3\xbc");
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_EQUAL_FATAL(r.nparts, 3);
	CU_ASSERT_STRING_EQUAL(field(r.msg, "To", v, sizeof v),
	    "<j\xc3\xb6rg@b\xc3\xbc" "cher.example>");
	CU_ASSERT_STRING_EQUAL(field(r.parts[1].hdrs, "Content-Type", v,
	    sizeof v), "message/global-delivery-status");
	CU_ASSERT(strstr(r.parts[1].body, "Final-Recipient: utf-8; "
	    "m\xc3\xbcller@example.net\r\n") != NULL);
	/* diagnostics stay printable ASCII */
	CU_ASSERT(strstr(r.parts[1].body, "550 unknown ?\r\n") != NULL);
	CU_ASSERT_STRING_EQUAL(field(r.parts[2].hdrs, "Content-Type", v,
	    sizeof v), "message/global");
	CU_ASSERT_STRING_EQUAL(r.parts[2].body, orig8);
	report_free(&r);

	o.ret = DSN_RET_HDRS;
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_STRING_EQUAL(field(r.parts[2].hdrs, "Content-Type", v,
	    sizeof v), "message/global-headers");
	report_free(&r);

	/* not SMTPUTF8: 8-bit in addresses does not pass */
	o.smtputf8 = 0;
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT(strstr(r.parts[1].body, "Final-Recipient: rfc822; "
	    "m?ller@example.net\r\n") != NULL);
	CU_ASSERT_STRING_EQUAL(field(r.msg, "To", v, sizeof v),
	    "<j?rg@b?cher.example>");
	report_free(&r);
}

/* A report that holds 8-bit data says so (its envelope must then carry
 * BODY=8BITMIME, RFC 6152 3); one of 7-bit data does not. */
static void
test_eightbit_flag(void)
{
	static const char orig8[] = "From: a@example.org\r\nSubject: x\r\n\r\n"
	    "caf\xc3\xa9\r\n";
	struct bounce_orig o;
	struct bounce_rcpt rc;
	struct report r;

	rcpt_init(&rc, "bob@example.net", "5.1.1", NULL);
	orig_init(&o, orig8, DSN_RET_FULL);
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_EQUAL(built_eightbit, 1);
	report_free(&r);
	orig_init(&o, orig8, DSN_RET_HDRS);	/* the 8-bit body stays out */
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_EQUAL(built_eightbit, 0);
	report_free(&r);
	orig_init(&o, ORIG, DSN_RET_FULL);
	report_build(&r, BOUNCE_FAILED, &o, &rc, 1, 0);
	CU_ASSERT_EQUAL(built_eightbit, 0);
	report_free(&r);
}

static void
test_python_parses(void)
{
	static const char script[] =
	    "import email,sys\n"
	    "m=email.message_from_bytes(open(sys.argv[1],'rb').read())\n"
	    "assert m.is_multipart()\n"
	    "assert m.get_content_type()=='multipart/report'\n"
	    "assert m.get_param('report-type')=='delivery-status'\n"
	    "p=m.get_payload()\n"
	    "assert len(p)==3, len(p)\n"
	    "assert p[0].get_content_type()=='text/plain'\n"
	    "assert p[1].get_content_type()=='message/delivery-status'\n"
	    "b=p[1].get_payload()\n"
	    "assert b[0]['Reporting-MTA']=='dns; mx.example.com'\n"
	    "assert b[1]['Action']=='failed' and b[1]['Status']=='5.1.1'\n"
	    "assert b[2]['Final-Recipient']=='rfc822; carol@example.net'\n"
	    "assert p[2].get_content_type()=='message/rfc822'\n"
	    "assert p[2].get_payload()[0]['Subject']=='hello'\n"
	    "assert not m.defects and not p[1].defects\n";
	char path[] = "/tmp/test_bounce_XXXXXX", spath[] =
	    "/tmp/test_bounce_py_XXXXXX", cmd[256];
	struct bounce_orig o;
	struct bounce_rcpt rc[2];
	char *msg;
	size_t len;
	int fd, sfd, rcode;

	if (system("command -v python3 >/dev/null 2>&1") != 0)
		return;	/* no python3 here: nothing to compare against */
	orig_init(&o, ORIG, DSN_RET_FULL);
	rcpt_init(&rc[0], "bob@example.net", "5.1.1",
	    "smtp; 550 5.1.1 user unknown");
	rcpt_init(&rc[1], "carol@example.net", "5.1.1", NULL);
	msg = build_mem(BOUNCE_FAILED, &o, rc, 2, 0, &len);
	fd = mkstemp(path);
	sfd = mkstemp(spath);
	CU_ASSERT_FATAL(fd >= 0 && sfd >= 0);
	CU_ASSERT_FATAL(write(fd, msg, len) == (ssize_t)len);
	CU_ASSERT_FATAL(write(sfd, script, sizeof script - 1) ==
	    (ssize_t)(sizeof script - 1));
	close(fd);
	close(sfd);
	CU_ASSERT_FATAL(snprintf(cmd, sizeof cmd, "python3 %s %s", spath,
	    path) < (int)sizeof cmd);
	rcode = system(cmd);
	CU_ASSERT_EQUAL(rcode, 0);
	unlink(path);
	unlink(spath);
	free(msg);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("bounce", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "each kind", test_kinds) == NULL ||
	    CU_add_test(s, "RET=HDRS", test_ret_hdrs) == NULL ||
	    CU_add_test(s, "ORCPT and ENVID", test_orcpt_envid) == NULL ||
	    CU_add_test(s, "CR/LF injection", test_injection) == NULL ||
	    CU_add_test(s, "boundary in original",
	    test_boundary_collision) == NULL ||
	    CU_add_test(s, "long lines", test_long_lines) == NULL ||
	    CU_add_test(s, "20 MiB original", test_large_original) == NULL ||
	    CU_add_test(s, "SMTPUTF8", test_smtputf8) == NULL ||
	    CU_add_test(s, "8-bit data is told", test_eightbit_flag) == NULL ||
	    CU_add_test(s, "python email parses it",
	    test_python_parses) == NULL) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed != 0 ? 1 : 0;
}
