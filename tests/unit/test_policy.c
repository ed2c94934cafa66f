/*
 * test_policy: the policy delegation client's pure parts with hostile
 * input: the reply parser (whole and byte by byte, every limit), the
 * action table (every Postfix action, malformed ones), and the request
 * encoder (every attribute, control bytes, limits); and the end of every
 * wait on a filter daemon at the daemon's stop (filter_stop_all).
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "filter/policy.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"

/* Feeds in whole, or piece bytes at a time keeping what was not used;
 * returns the final rc and leaves the reply in r. */
static int
feed(const char *in, size_t len, size_t piece, struct policy_reply *r,
    size_t *left_r)
{
	char *pend = xmalloc(len + 1);
	size_t plen = 0, off = 0;
	int rc = POLICY_REPLY_MORE;

	policy_reply_init(r);
	while (off < len) {
		size_t n = len - off < piece ? len - off : piece, used;

		memcpy(pend + plen, in + off, n);
		plen += n;
		off += n;
		rc = policy_reply_feed(r, pend, plen, &used);
		CU_ASSERT(used <= plen);
		memmove(pend, pend + used, plen - used);
		plen -= used;
		if (rc != POLICY_REPLY_MORE)
			break;
	}
	free(pend);
	*left_r = plen + (len - off);
	return rc;
}

static void
test_reply_parser(void)
{
	static const struct {
		const char *in;
		int rc;
		const char *action;
		size_t len;	/* 0: strlen */
	} cases[] = {
		{ "action=OK\n\n", POLICY_REPLY_DONE, "OK", 0 },
		{ "action=OK\r\n\r\n", POLICY_REPLY_DONE, "OK", 0 },
		{ "foo=bar\naction=DUNNO\nbaz=\n\n", POLICY_REPLY_DONE, "DUNNO", 0 },
		{ "action=\n\n", POLICY_REPLY_DONE, "", 0 },
		{ "action=a=b=c\n\n", POLICY_REPLY_DONE, "a=b=c", 0 },
		{ "action=OK\n", POLICY_REPLY_MORE, NULL, 0 },
		{ "action=OK", POLICY_REPLY_MORE, NULL, 0 },
		{ "\n", POLICY_REPLY_ERROR, NULL, 0 },
		{ "foo=bar\n\n", POLICY_REPLY_ERROR, NULL, 0 },
		{ "action=OK\naction=REJECT\n\n", POLICY_REPLY_ERROR, NULL, 0 },
		{ "no equals sign\n\n", POLICY_REPLY_ERROR, NULL, 0 },
		{ "=value\n\n", POLICY_REPLY_ERROR, NULL, 0 },
		{ "action=O\0K\n\n", POLICY_REPLY_ERROR, NULL, 12 },
		{ "Action=OK\n\n", POLICY_REPLY_ERROR, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in), left;
		struct policy_reply r;

		for (size_t piece = 1; piece <= len + 1; piece++) {
			int rc = feed(cases[i].in, len, piece, &r, &left);

			CU_ASSERT_EQUAL(rc, cases[i].rc);
			if (rc != cases[i].rc)
				printf("\ncase %zu piece %zu: rc %d\n", i, piece, rc);
			if (rc == POLICY_REPLY_DONE) {
				CU_ASSERT_STRING_EQUAL(r.action, cases[i].action);
				CU_ASSERT_EQUAL(left, 0);
			}
			if (rc == POLICY_REPLY_ERROR)
				CU_ASSERT_PTR_NOT_NULL(r.why);
		}
	}
}

static void
test_reply_limits(void)
{
	struct buf b;
	struct policy_reply r;
	size_t left;

	buf_init(&b, 1 << 20);
	/* A line of exactly POLICY_LINE_MAX is fine, one more is not. */
	buf_puts(&b, "action=");
	while (b.len < POLICY_LINE_MAX)
		buf_puts(&b, "x");
	buf_puts(&b, "\n\n");
	CU_ASSERT_EQUAL(feed(b.data, b.len, b.len, &r, &left), POLICY_REPLY_ERROR);
	buf_reset(&b);
	buf_puts(&b, "x=");
	while (b.len < POLICY_LINE_MAX)
		buf_puts(&b, "x");
	buf_puts(&b, "\naction=OK\n\n");
	CU_ASSERT_EQUAL(feed(b.data, b.len, 3, &r, &left), POLICY_REPLY_DONE);
	buf_reset(&b);
	buf_puts(&b, "x=");
	while (b.len <= POLICY_LINE_MAX)
		buf_puts(&b, "x");
	buf_puts(&b, "\naction=OK\n\n");
	CU_ASSERT_EQUAL(feed(b.data, b.len, 7, &r, &left), POLICY_REPLY_ERROR);
	/* No LF within a line's worth of bytes: an error before more comes. */
	buf_reset(&b);
	while (b.len < POLICY_LINE_MAX + 100)
		buf_puts(&b, "y");
	CU_ASSERT_EQUAL(feed(b.data, b.len, 1000, &r, &left), POLICY_REPLY_ERROR);
	/* The attribute count. */
	buf_reset(&b);
	for (int i = 0; i < POLICY_ATTRS_MAX - 1; i++)
		buf_printf(&b, "a%d=b\n", i);
	buf_puts(&b, "action=OK\n\n");
	CU_ASSERT_EQUAL(feed(b.data, b.len, b.len, &r, &left), POLICY_REPLY_DONE);
	buf_reset(&b);
	for (int i = 0; i < POLICY_ATTRS_MAX; i++)
		buf_printf(&b, "a%d=b\n", i);
	buf_puts(&b, "action=OK\n\n");
	CU_ASSERT_EQUAL(feed(b.data, b.len, b.len, &r, &left), POLICY_REPLY_ERROR);
	/* Bytes after the reply are left for the caller. */
	CU_ASSERT_EQUAL(feed("action=OK\n\nextra", 16, 16, &r, &left), POLICY_REPLY_DONE);
	CU_ASSERT_EQUAL(left, 5);
	buf_free(&b);
}

static void
test_actions(void)
{
	static const struct {
		const char *action;
		int rc;
		enum policy_kind kind;
		const char *reply, *header, *addr, *text;
	} cases[] = {
		{ "OK", 0, POLICY_OK, "", "", "", "" },
		{ "  ok  ", 0, POLICY_OK, "", "", "", "" },
		{ "permit", 0, POLICY_OK, "", "", "", "" },
		{ "12345", 0, POLICY_OK, "", "", "", "" },
		{ "DUNNO", 0, POLICY_DUNNO, "", "", "", "" },
		{ "REJECT", 0, POLICY_REJECT, "554 5.7.1 Access denied", "", "", "" },
		{ "REJECT go away", 0, POLICY_REJECT, "554 5.7.1 go away", "", "", "" },
		{ "reject", 0, POLICY_REJECT, "554 5.7.1 Access denied", "", "", "" },
		{ "REJECT 5.7.26 DMARC", 0, POLICY_REJECT, "554 5.7.26 DMARC", "", "", "" },
		{ "REJECT tab\there\x01", 0, POLICY_REJECT, "554 5.7.1 tab?here?", "", "", "" },
		{ "DEFER", 0, POLICY_DEFER, "450 4.7.1 Try again later", "", "", "" },
		{ "defer", 0, POLICY_DEFER, "450 4.7.1 Try again later", "", "", "" },
		{ "DEFER_IF_PERMIT 4.2.0 Greylisted, see x", 0, POLICY_DEFER_IF_PERMIT,
		    "450 4.2.0 Greylisted, see x", "", "", "" },
		{ "DEFER_IF_REJECT", 0, POLICY_DEFER_IF_REJECT,
		    "450 4.7.1 Try again later", "", "", "" },
		{ "550 5.1.1 unknown", 0, POLICY_REJECT, "550 5.1.1 unknown", "", "", "" },
		{ "550 unknown", 0, POLICY_REJECT, "550 5.7.1 unknown", "", "", "" },
		{ "550", 0, POLICY_OK, "", "", "", "" },
		{ "450 4.7.0 later", 0, POLICY_DEFER, "450 4.7.0 later", "", "", "" },
		{ "421 4.7.0 bye", 0, POLICY_SHUTDOWN, "421 4.7.0 bye", "", "", "" },
		{ "DISCARD", 0, POLICY_DISCARD, "", "", "", "" },
		{ "HOLD look at it", 0, POLICY_HOLD, "", "", "", "look at it" },
		{ "PREPEND X-A: b", 0, POLICY_PREPEND, "", "X-A: b", "", "" },
		{ "prepend Received-SPF: Pass (x)", 0, POLICY_PREPEND, "",
		    "Received-SPF: Pass (x)", "", "" },
		{ "REDIRECT a@b", 0, POLICY_REDIRECT, "", "", "a@b", "" },
		{ "BCC c@d", 0, POLICY_BCC, "", "", "c@d", "" },
		{ "WARN odd", 0, POLICY_DUNNO, "", "", "", "odd" },
		{ "INFO x", 0, POLICY_DUNNO, "", "", "", "x" },
		{ "", -1, POLICY_DEFER, "451 4.3.5 Server configuration problem", "", "", "" },
		{ "FILTER smtp:x", -1, POLICY_DEFER, "451 4.3.5 Server configuration problem",
		    "", "", "" },
		{ "permit_mynetworks", -1, POLICY_DEFER,
		    "451 4.3.5 Server configuration problem", "", "", "" },
		{ "OKAY", -1, POLICY_DEFER, "451 4.3.5 Server configuration problem", "", "", "" },
		{ "550 4.1.1 wrong class", -1, POLICY_DEFER,
		    "451 4.3.5 Server configuration problem", "", "", "" },
		{ "550-multi", -1, POLICY_DEFER, "451 4.3.5 Server configuration problem",
		    "", "", "" },
		{ "250 fine", -1, POLICY_DEFER, "451 4.3.5 Server configuration problem",
		    "", "", "" },
		{ "599 x", -1, POLICY_DEFER, "451 4.3.5 Server configuration problem", "", "", "" },
		{ "PREPEND", -1, POLICY_DEFER, "451 4.3.5 Server configuration problem", "", "", "" },
		{ "PREPEND :x", -1, POLICY_DEFER, "451 4.3.5 Server configuration problem",
		    "", "", "" },
		{ "PREPEND X-A: b\rX-B: c", -1, POLICY_DEFER,
		    "451 4.3.5 Server configuration problem", "", "", "" },
		{ "REDIRECT <a@b>", -1, POLICY_DEFER, "451 4.3.5 Server configuration problem",
		    "", "", "" },
		{ "BCC", -1, POLICY_DEFER, "451 4.3.5 Server configuration problem", "", "", "" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct policy_verdict v;
		const char *why = NULL;
		int rc = policy_action_parse(cases[i].action, &v, &why);

		CU_ASSERT_EQUAL(rc, cases[i].rc);
		CU_ASSERT_EQUAL(v.kind, cases[i].kind);
		CU_ASSERT_STRING_EQUAL(v.reply, cases[i].reply);
		CU_ASSERT_STRING_EQUAL(v.header, cases[i].header);
		CU_ASSERT_STRING_EQUAL(v.addr, cases[i].addr);
		CU_ASSERT_STRING_EQUAL(v.text, cases[i].text);
		if (rc != cases[i].rc || v.kind != cases[i].kind ||
		    strcmp(v.reply, cases[i].reply) != 0)
			printf("\naction case %zu (%s): rc %d kind %d reply %s\n", i,
			    cases[i].action, rc, v.kind, v.reply);
		if (rc != 0)
			CU_ASSERT_PTR_NOT_NULL(why);
	}
	{
		/* A long text is cut so the reply line stays within limits. */
		char a[3000];
		struct policy_verdict v;
		const char *why;

		memcpy(a, "REJECT ", 7);
		memset(a + 7, 't', sizeof a - 8);
		a[sizeof a - 1] = '\0';
		CU_ASSERT_EQUAL(policy_action_parse(a, &v, &why), 0);
		CU_ASSERT(strlen(v.reply) <= FILTER_REPLY_LINE_MAX);
	}
}

static void
test_request(void)
{
	struct policy_request rq;
	struct buf b;
	char big[POLICY_VALUE_MAX + 100];

	memset(&rq, 0, sizeof rq);
	rq.protocol_state = "RCPT";
	rq.sender = "a\r\nb@example.org";
	rq.recipient = "j\xc3\xb6rg@example.net";
	rq.recipient_count = 3;
	rq.size = 12345;
	buf_init(&b, 1 << 16);
	CU_ASSERT_EQUAL(policy_request_encode(&rq, &b), 0);
	CU_ASSERT(strncmp(b.data, "request=smtpd_access_policy\nprotocol_state=RCPT\n", 47) == 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\nsender=a??b@example.org\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\nrecipient=j\xc3\xb6rg@example.net\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\nrecipient_count=3\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\nsize=12345\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\nhelo_name=\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\nmail_version=\n\n"));
	CU_ASSERT_EQUAL(b.data[b.len - 1], '\n');
	CU_ASSERT_EQUAL(b.data[b.len - 2], '\n');
	/* Exactly one empty line: at the end. */
	CU_ASSERT_EQUAL((size_t)(strstr(b.data, "\n\n") - b.data) + 2, b.len);
	buf_reset(&b);
	memset(big, 'v', sizeof big);
	big[sizeof big - 1] = '\0';
	rq.helo_name = big;
	CU_ASSERT_EQUAL(policy_request_encode(&rq, &b), 0);
	{
		const char *h = strstr(b.data, "\nhelo_name=") + 11;
		CU_ASSERT_EQUAL((size_t)(strchr(h, '\n') - h), POLICY_VALUE_MAX);
	}
	buf_free(&b);
	{
		struct buf small;

		buf_init(&small, 100);
		CU_ASSERT_EQUAL(policy_request_encode(&rq, &small), -1);
		CU_ASSERT_EQUAL(small.len, 0);
		buf_free(&small);
	}
}

static void
test_spec(void)
{
	struct policy_spec s;
	char err[128];

	CU_ASSERT_EQUAL(policy_spec_init(&s, "inet:127.0.0.1:10023", err, sizeof err), 0);
	CU_ASSERT_STRING_EQUAL(s.default_action, POLICY_DEFAULT_ACTION);
	CU_ASSERT_EQUAL(policy_spec_default(&s, "DUNNO", err, sizeof err), 0);
	CU_ASSERT_EQUAL(policy_spec_default(&s, "WHATEVER", err, sizeof err), -1);
	CU_ASSERT_STRING_EQUAL(s.default_action, "DUNNO");
	CU_ASSERT_EQUAL(policy_spec_init(&s, "tcp:x", err, sizeof err), -1);
}

struct blocked_read {
	int fd;
	ssize_t rc;
	int err;
};

static void *
blocked_read_run(void *arg)
{
	struct blocked_read *b = arg;
	char c;

	b->rc = filter_read_some(b->fd, &c, 1, time_mono_ms() + 20000);
	b->err = errno;
	return NULL;
}

/* Runs last: filter_stop_all cannot be undone in this process. */
static void
test_stop_all(void)
{
	struct blocked_read b = { .rc = 0 };
	int sv[2];
	int64_t t0 = time_mono_ms();
	pthread_t t;
	char c;

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	b.fd = sv[0];
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, blocked_read_run, &b), 0);
	filter_stop_all();
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(b.rc, -1);
	CU_ASSERT_EQUAL(b.err, ECANCELED);
	/* Later waits end at once too; bytes already there are still read. */
	CU_ASSERT_EQUAL(filter_read_some(sv[0], &c, 1, time_mono_ms() + 20000), -1);
	CU_ASSERT_EQUAL(errno, ECANCELED);
	CU_ASSERT_EQUAL(write(sv[1], "x", 1), 1);
	CU_ASSERT_EQUAL(filter_read_some(sv[0], &c, 1, time_mono_ms() + 20000), 1);
	CU_ASSERT(time_mono_ms() - t0 < 10000);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	CU_pSuite s;
	int failed;

	log_set_level(LOG_LVL_ERROR);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("policy", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "reply parser, every piece size", test_reply_parser) == NULL ||
	    CU_add_test(s, "reply limits", test_reply_limits) == NULL ||
	    CU_add_test(s, "actions", test_actions) == NULL ||
	    CU_add_test(s, "request", test_request) == NULL ||
	    CU_add_test(s, "spec", test_spec) == NULL ||
	    CU_add_test(s, "filter_stop_all ends every wait", test_stop_all) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
