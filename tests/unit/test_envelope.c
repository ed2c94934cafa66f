/*
 * test_envelope: the pipelined envelope (relay/envelope.h) against a
 * scripted peer in memory: what goes out in which group, which replies
 * are read and judged, and where it stops (MAIL refused, every RCPT
 * refused, a 421, a failed write or read, a line that must not go out).
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "relay/envelope.h"
#include "relay/relay_conn.h"
#include "relay/relay_proto.h"

/* The peer: a reply code per command (MAIL, each RCPT, DATA), the
 * groups written, the commands whose reply was read. */
struct peer {
	int mail, data, rcpt[8];
	int fail_write_at;		/* the Nth write fails (1-based; 0 never) */
	int fail_read_at;		/* the Nth read fails */
	int bad_line_for;		/* a recipient whose line has a CRLF (-1 none) */
	char groups[8][512];
	int ngroups, nreads, njudged;
	long read_order[16];
	struct relay_reply reply;
};

static void
p_build(void *arg, long cmd, struct buf *line)
{
	struct peer *p = arg;

	if (cmd == RELAY_ENV_MAIL)
		buf_puts(line, "MAIL FROM:<s@x>");
	else if (cmd == RELAY_ENV_DATA)
		buf_puts(line, "DATA");
	else if (cmd == p->bad_line_for)
		buf_puts(line, "RCPT TO:<a@x>\r\nRSET");
	else
		buf_printf(line, "RCPT TO:<r%ld@x>", cmd);
}

static int
p_write(void *arg, const char *d, size_t n, unsigned timeout_ms)
{
	struct peer *p = arg;

	(void)timeout_ms;
	if (++p->ngroups == p->fail_write_at)
		return RELAY_IO_EOF;
	snprintf(p->groups[p->ngroups - 1], sizeof p->groups[0], "%.*s", (int)n, d);
	return RELAY_IO_OK;
}

static int
p_read(void *arg, long cmd, unsigned timeout_ms)
{
	struct peer *p = arg;

	/* DATA's reply has its own timeout. */
	if (timeout_ms != (cmd == RELAY_ENV_DATA ? 20u : 10u))
		return RELAY_IO_ERROR;
	if (++p->nreads == p->fail_read_at)
		return RELAY_IO_TIMEOUT;
	p->read_order[p->nreads - 1] = cmd;
	p->reply.code = cmd == RELAY_ENV_MAIL ? p->mail : cmd == RELAY_ENV_DATA ?
	    p->data : p->rcpt[cmd];
	return RELAY_IO_OK;
}

static int
p_judge(void *arg, long cmd)
{
	struct peer *p = arg;

	p->njudged++;
	if (p->reply.code == 421)
		return -1;
	return cmd >= 0 && p->reply.code / 100 == 2;
}

static void
peer_init(struct peer *p)
{
	memset(p, 0, sizeof *p);
	p->mail = 250;
	p->data = 354;
	for (int i = 0; i < 8; i++)
		p->rcpt[i] = 250;
	p->bad_line_for = -1;
}

static const struct relay_envelope_ops p_ops = { p_build, p_write, p_read, p_judge };

static int
run(struct peer *p, size_t window, size_t n, struct relay_envelope *e)
{
	static const size_t idx[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };

	memset(e, 0, sizeof *e);
	e->ops = &p_ops;
	e->arg = p;
	e->window = window;
	e->line_max = 100;
	e->reply = &p->reply;
	e->peer = "test";
	e->command_timeout_ms = 10;
	e->data_init_timeout_ms = 20;
	return relay_envelope_run(e, idx, n);
}

static void
test_one_group_with_pipelining(void)
{
	struct peer p;
	struct relay_envelope e;

	peer_init(&p);
	p.rcpt[1] = 550;
	CU_ASSERT_EQUAL(run(&p, RELAY_ENV_WINDOW, 3, &e), RELAY_IO_OK);
	CU_ASSERT_EQUAL(p.ngroups, 1);
	CU_ASSERT_STRING_EQUAL(p.groups[0], "MAIL FROM:<s@x>\r\nRCPT TO:<r0@x>\r\n"
	    "RCPT TO:<r1@x>\r\nRCPT TO:<r2@x>\r\nDATA\r\n");
	CU_ASSERT_EQUAL(p.nreads, 5);
	CU_ASSERT_EQUAL(p.njudged, 5);
	CU_ASSERT_EQUAL(e.mail_code, 250);
	CU_ASSERT_EQUAL(e.data_code, 354);
	CU_ASSERT_EQUAL(e.nacc, 2);
	CU_ASSERT_TRUE(e.data_sent);
}

static void
test_one_at_a_time_without(void)
{
	struct peer p;
	struct relay_envelope e;

	peer_init(&p);
	CU_ASSERT_EQUAL(run(&p, 1, 2, &e), RELAY_IO_OK);
	CU_ASSERT_EQUAL(p.ngroups, 4);
	CU_ASSERT_STRING_EQUAL(p.groups[0], "MAIL FROM:<s@x>\r\n");
	CU_ASSERT_STRING_EQUAL(p.groups[2], "RCPT TO:<r1@x>\r\n");
	CU_ASSERT_STRING_EQUAL(p.groups[3], "DATA\r\n");
	CU_ASSERT_EQUAL(e.nacc, 2);
	CU_ASSERT_EQUAL(e.data_code, 354);

	/* A window of 2: MAIL+RCPT, RCPT+RCPT, DATA. */
	peer_init(&p);
	CU_ASSERT_EQUAL(run(&p, 2, 3, &e), RELAY_IO_OK);
	CU_ASSERT_EQUAL(p.ngroups, 3);
	CU_ASSERT_STRING_EQUAL(p.groups[1], "RCPT TO:<r1@x>\r\nRCPT TO:<r2@x>\r\n");
	CU_ASSERT_STRING_EQUAL(p.groups[2], "DATA\r\n");
}

static void
test_mail_refused(void)
{
	struct peer p;
	struct relay_envelope e;

	/* Without pipelining nothing follows a refused MAIL. */
	peer_init(&p);
	p.mail = 550;
	CU_ASSERT_EQUAL(run(&p, 1, 3, &e), RELAY_IO_OK);
	CU_ASSERT_EQUAL(p.ngroups, 1);
	CU_ASSERT_EQUAL(p.nreads, 1);
	CU_ASSERT_EQUAL(e.mail_code, 550);
	CU_ASSERT_FALSE(e.data_sent);

	/* Pipelined: the group's replies are read, the RCPTs' not judged;
	 * the 354 to DATA is reported for the caller to end. */
	peer_init(&p);
	p.mail = 451;
	CU_ASSERT_EQUAL(run(&p, RELAY_ENV_WINDOW, 2, &e), RELAY_IO_OK);
	CU_ASSERT_EQUAL(p.ngroups, 1);
	CU_ASSERT_EQUAL(p.nreads, 4);
	CU_ASSERT_EQUAL(p.njudged, 2);	/* MAIL and DATA */
	CU_ASSERT_EQUAL(e.nacc, 0);
	CU_ASSERT_EQUAL(e.data_code, 354);
	CU_ASSERT_TRUE(e.data_sent);
}

static void
test_every_rcpt_refused(void)
{
	struct peer p;
	struct relay_envelope e;

	peer_init(&p);
	p.rcpt[0] = p.rcpt[1] = 550;
	CU_ASSERT_EQUAL(run(&p, 1, 2, &e), RELAY_IO_OK);
	CU_ASSERT_EQUAL(p.ngroups, 3);	/* no DATA */
	CU_ASSERT_FALSE(e.data_sent);
	CU_ASSERT_EQUAL(e.data_code, 0);
	CU_ASSERT_EQUAL(e.nacc, 0);
}

static void
test_stop_and_failures(void)
{
	struct peer p;
	struct relay_envelope e;

	/* A 421 to the second RCPT: stopped there, DATA's reply unread. */
	peer_init(&p);
	p.rcpt[1] = 421;
	CU_ASSERT_EQUAL(run(&p, RELAY_ENV_WINDOW, 3, &e), RELAY_ENV_STOPPED);
	CU_ASSERT_EQUAL(p.nreads, 3);
	CU_ASSERT_EQUAL(e.at, 1);
	CU_ASSERT_EQUAL(e.nacc, 1);

	/* The second group's write fails: at names its first command. */
	peer_init(&p);
	p.fail_write_at = 2;
	CU_ASSERT_EQUAL(run(&p, 2, 3, &e), RELAY_IO_EOF);
	CU_ASSERT_EQUAL(e.at, 1);

	/* The reply to DATA times out. */
	peer_init(&p);
	p.fail_read_at = 3;
	CU_ASSERT_EQUAL(run(&p, RELAY_ENV_WINDOW, 1, &e), RELAY_IO_TIMEOUT);
	CU_ASSERT_EQUAL(e.at, RELAY_ENV_DATA);
	CU_ASSERT_EQUAL(e.data_code, 0);

	/* A line with CRLF in it never goes out, nor does its group. */
	peer_init(&p);
	p.bad_line_for = 1;
	CU_ASSERT_EQUAL(run(&p, RELAY_ENV_WINDOW, 2, &e), RELAY_IO_ERROR);
	CU_ASSERT_EQUAL(p.ngroups, 0);
	CU_ASSERT_EQUAL(e.at, 1);
	peer_init(&p);
	p.bad_line_for = 1;
	CU_ASSERT_EQUAL(run(&p, 1, 2, &e), RELAY_IO_ERROR);
	CU_ASSERT_EQUAL(p.ngroups, 2);	/* MAIL, the first RCPT */
}

int
main(void)
{
	CU_pSuite su;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	su = CU_add_suite("envelope", NULL, NULL);
	CU_add_test(su, "one group with PIPELINING", test_one_group_with_pipelining);
	CU_add_test(su, "one command at a time without", test_one_at_a_time_without);
	CU_add_test(su, "MAIL refused", test_mail_refused);
	CU_add_test(su, "every RCPT refused", test_every_rcpt_refused);
	CU_add_test(su, "a 421, failed writes and reads, a bad line",
	    test_stop_and_failures);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
