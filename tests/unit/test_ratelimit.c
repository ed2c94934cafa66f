/*
 * test_ratelimit: server/ratelimit with a clock the test controls.
 * Connection, message, recipient and unknown-recipient rates per client
 * (IPv4 /32, IPv6 /64, v4-mapped), the sliding window step by step, no
 * limit at 0, account quotas per day (messages, distinct recipients, a
 * large set), forgetting on eviction, a reload, the replies, and threads
 * racing one client (exactly `limit` allowed).
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "lib/metrics.h"
#include "server/ratelimit.h"
#include "tests/unit/sockaddr_text.h"

#define MIN_MS 60000
#define DAY_MS (24 * 3600 * (int64_t)1000)

static struct sockaddr_storage ss_a, ss_b, ss_6a, ss_6b, ss_6c, ss_mapped;
#define A ((struct sockaddr *)&ss_a)
#define B ((struct sockaddr *)&ss_b)
#define V6A ((struct sockaddr *)&ss_6a)
#define V6B ((struct sockaddr *)&ss_6b)
#define V6C ((struct sockaddr *)&ss_6c)
#define MAPPED ((struct sockaddr *)&ss_mapped)

static int
suite_init(void)
{
	sockaddr_text(&ss_a, "192.0.2.1");
	sockaddr_text(&ss_b, "192.0.2.2");
	sockaddr_text(&ss_6a, "2001:db8:0:1::1");
	sockaddr_text(&ss_6b, "2001:db8:0:1:abcd::99");	/* same /64 as 6a */
	sockaddr_text(&ss_6c, "2001:db8:0:2::1");		/* the next /64 */
	sockaddr_text(&ss_mapped, "::ffff:192.0.2.1");	/* A, mapped */
	return 0;
}

static struct ratelimit *
make(unsigned conn, unsigned msg, unsigned rcpt, unsigned unknown,
    unsigned acct_msg, unsigned acct_rcpt)
{
	struct ratelimit_limits l = { 60, conn, msg, rcpt, unknown, acct_msg, acct_rcpt };

	return ratelimit_new(1000, 100, &l);
}

static void
test_connection_rate(void)
{
	struct ratelimit *r = make(5, 0, 0, 0, 0, 0);
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(ratelimit_connect(r, A, i), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 10), RATELIMIT_CONNECTIONS);
	CU_ASSERT_EQUAL(ratelimit_connect(r, MAPPED, 11), RATELIMIT_CONNECTIONS);
	CU_ASSERT_EQUAL(ratelimit_connect(r, B, 12), RATELIMIT_OK);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ratelimit_connect(r, V6A, 20 + i), RATELIMIT_OK);
	for (int i = 0; i < 2; i++)
		CU_ASSERT_EQUAL(ratelimit_connect(r, V6B, 30 + i), RATELIMIT_OK);
	/* 6a and 6b are one /64: this is its sixth connection. */
	CU_ASSERT_EQUAL(ratelimit_connect(r, V6A, 40), RATELIMIT_CONNECTIONS);
	CU_ASSERT_EQUAL(ratelimit_connect(r, V6C, 41), RATELIMIT_OK);
	/* Only addresses are limited. */
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(ratelimit_connect(r, (struct sockaddr *)&un, 50), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_clients(r), 4);
	ratelimit_free(&r);
	CU_ASSERT_PTR_NULL(r);
	ratelimit_free(&r);
}

/* The window slides: the previous minute counts for the part of it that
 * still lies within the last 60 seconds. */
static void
test_sliding_window(void)
{
	struct ratelimit *r = make(10, 0, 0, 0, 0, 0);
	int ok = 0;

	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(ratelimit_connect(r, A, 0), RATELIMIT_OK);
	/* The 11th in the window: refused, and counted (cur = 11). */
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 1), RATELIMIT_CONNECTIONS);
	/* A new fixed window, but the last one still counts in full. */
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, MIN_MS), RATELIMIT_CONNECTIONS);
	/* Half way: 11 * 0.5 = 5 from before, and 2 in this window. */
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, MIN_MS + MIN_MS / 2), RATELIMIT_OK);
	for (int i = 0; i < 10; i++)
		ok += ratelimit_connect(r, A, MIN_MS + MIN_MS / 2) == RATELIMIT_OK;
	CU_ASSERT_EQUAL(ok, 3);		/* 5 + 3, 5 + 4, 5 + 5; then 11 */
	/* Two windows later nothing is left. */
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(ratelimit_connect(r, A, 5 * MIN_MS), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 5 * MIN_MS), RATELIMIT_CONNECTIONS);
	/* A clock that goes back starts afresh rather than underflowing. */
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 1000), RATELIMIT_OK);
	ratelimit_free(&r);
}

static void
test_messages_recipients(void)
{
	struct ratelimit *r = make(0, 3, 5, 0, 0, 0);

	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ratelimit_message(r, A, 100), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_message(r, A, 100), RATELIMIT_MESSAGES);
	CU_ASSERT_EQUAL(ratelimit_message(r, B, 100), RATELIMIT_OK);
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(ratelimit_recipient(r, A, 100), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_recipient(r, A, 100), RATELIMIT_RECIPIENTS);
	/* Connections have no limit here. */
	for (int i = 0; i < 1000; i++)
		CU_ASSERT_EQUAL(ratelimit_connect(r, A, 100), RATELIMIT_OK);
	/* Later, allowed again. */
	CU_ASSERT_EQUAL(ratelimit_message(r, A, 3 * MIN_MS), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_recipient(r, A, 3 * MIN_MS), RATELIMIT_OK);
	ratelimit_free(&r);
}

static void
test_unknown_recipients(void)
{
	struct ratelimit *r = make(0, 0, 0, 3, 0, 0);

	CU_ASSERT_EQUAL(ratelimit_recipient(r, A, 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_unknown_recipient(r, A, 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_recipient(r, A, 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_unknown_recipient(r, A, 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_recipient(r, A, 0), RATELIMIT_OK);
	/* The third unknown uses the budget up... */
	CU_ASSERT_EQUAL(ratelimit_unknown_recipient(r, A, 0), RATELIMIT_UNKNOWN_RECIPIENTS);
	/* ...so every RCPT is refused now, known or not. */
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(ratelimit_recipient(r, A, 1000), RATELIMIT_UNKNOWN_RECIPIENTS);
	CU_ASSERT_EQUAL(ratelimit_recipient(r, MAPPED, 1000), RATELIMIT_UNKNOWN_RECIPIENTS);
	CU_ASSERT_EQUAL(ratelimit_recipient(r, B, 1000), RATELIMIT_OK);
	/* Still a third of the budget is used 40 s into the next minute. */
	CU_ASSERT_EQUAL(ratelimit_recipient(r, A, MIN_MS + 40000), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_recipient(r, A, 3 * MIN_MS), RATELIMIT_OK);
	ratelimit_free(&r);
}

static void
test_no_limits(void)
{
	struct ratelimit *r = make(0, 0, 0, 0, 0, 0);

	for (int i = 0; i < 10000; i++) {
		CU_ASSERT_EQUAL(ratelimit_connect(r, A, 0), RATELIMIT_OK);
		CU_ASSERT_EQUAL(ratelimit_message(r, A, 0), RATELIMIT_OK);
		CU_ASSERT_EQUAL(ratelimit_recipient(r, A, 0), RATELIMIT_OK);
		CU_ASSERT_EQUAL(ratelimit_unknown_recipient(r, A, 0), RATELIMIT_OK);
		CU_ASSERT_EQUAL(ratelimit_account_message(r, "u@x", 0), RATELIMIT_OK);
		CU_ASSERT_EQUAL(ratelimit_account_recipient(r, "u@x", "r@y", 0), RATELIMIT_OK);
	}
	/* Without quotas no account is tracked. */
	CU_ASSERT_EQUAL(ratelimit_accounts(r), 0);
	ratelimit_free(&r);
}

static void
test_account_messages(void)
{
	struct ratelimit *r = make(0, 0, 0, 0, 3, 0);

	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ratelimit_account_message(r, "alice@example.org", i * 1000),
		    RATELIMIT_OK);
	/* Refusals are not counted: still refused, not more refused. */
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(ratelimit_account_message(r, "alice@example.org", 5000),
		    RATELIMIT_ACCOUNT_MESSAGES);
	CU_ASSERT_EQUAL(ratelimit_account_message(r, "bob@example.org", 5000), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_account_message(r, "alice@example.org", DAY_MS - 1),
	    RATELIMIT_ACCOUNT_MESSAGES);
	/* A day after alice's first message her count starts again. */
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ratelimit_account_message(r, "alice@example.org", DAY_MS),
		    RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_account_message(r, "alice@example.org", DAY_MS),
	    RATELIMIT_ACCOUNT_MESSAGES);
	CU_ASSERT_EQUAL(ratelimit_accounts(r), 2);
	ratelimit_free(&r);
}

static void
test_account_recipients(void)
{
	struct ratelimit *r = make(0, 0, 0, 0, 0, 3);
	const char *u = "alice@example.org";

	CU_ASSERT_EQUAL(ratelimit_account_recipient(r, u, "a@x", 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_account_recipient(r, u, "b@x", 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_account_recipient(r, u, "c@x", 0), RATELIMIT_OK);
	/* Known ones go on; a fourth distinct one does not. */
	for (int i = 0; i < 100; i++)
		CU_ASSERT_EQUAL(ratelimit_account_recipient(r, u, "b@x", 1), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_account_recipient(r, u, "d@x", 2),
	    RATELIMIT_ACCOUNT_RECIPIENTS);
	CU_ASSERT_EQUAL(ratelimit_account_recipient(r, u, "A@x", 2),
	    RATELIMIT_ACCOUNT_RECIPIENTS);	/* bytes as given */
	CU_ASSERT_EQUAL(ratelimit_account_recipient(r, "bob@example.org", "d@x", 2),
	    RATELIMIT_OK);
	/* The next day, a fresh set. */
	CU_ASSERT_EQUAL(ratelimit_account_recipient(r, u, "d@x", DAY_MS), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_account_recipient(r, u, "e@x", DAY_MS), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_account_recipient(r, u, "a@x", DAY_MS), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_account_recipient(r, u, "b@x", DAY_MS),
	    RATELIMIT_ACCOUNT_RECIPIENTS);
	ratelimit_free(&r);
}

static void
test_account_recipients_many(void)
{
	struct ratelimit *r = make(0, 0, 0, 0, 0, 5000);
	char rcpt[64];
	int refused = 0;

	for (int i = 0; i < 6000; i++) {
		snprintf(rcpt, sizeof rcpt, "user%d@example.net", i);
		refused += ratelimit_account_recipient(r, "u", rcpt, 0) != RATELIMIT_OK;
	}
	CU_ASSERT_EQUAL(refused, 1000);
	for (int i = 0; i < 5000; i += 7) {
		snprintf(rcpt, sizeof rcpt, "user%d@example.net", i);
		CU_ASSERT_EQUAL(ratelimit_account_recipient(r, "u", rcpt, 0), RATELIMIT_OK);
	}
	/* A long account name is cut, not overrun. */
	{
		char name[2000];
		memset(name, 'n', sizeof name - 1);
		name[sizeof name - 1] = '\0';
		CU_ASSERT_EQUAL(ratelimit_account_recipient(r, name, "x", 0), RATELIMIT_OK);
	}
	ratelimit_free(&r);
}

static void
test_eviction_forgets(void)
{
	struct ratelimit_limits l = { 60, 2, 0, 0, 0, 0, 0 };
	struct ratelimit *r = ratelimit_new(4, 1, &l);
	struct sockaddr_storage others[4];

	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 0), RATELIMIT_CONNECTIONS);
	for (int i = 0; i < 4; i++) {
		char text[32];
		snprintf(text, sizeof text, "198.51.100.%d", i + 1);
		sockaddr_text(&others[i], text);
		CU_ASSERT_EQUAL(ratelimit_connect(r, (struct sockaddr *)&others[i], 1),
		    RATELIMIT_OK);
	}
	CU_ASSERT_EQUAL(ratelimit_clients(r), 4);
	/* A was the least recently seen: forgotten, so allowed again. */
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 2), RATELIMIT_OK);
	ratelimit_free(&r);
}

static void
test_reload(void)
{
	struct ratelimit *r = make(3, 0, 0, 0, 0, 0);
	struct ratelimit_limits l = { 60, 5, 0, 0, 0, 0, 0 };

	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ratelimit_connect(r, A, 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 0), RATELIMIT_CONNECTIONS);
	ratelimit_set_limits(r, &l);
	/* The count (4) is kept: one more fits under 5. */
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 0), RATELIMIT_CONNECTIONS);
	l.connections = 0;
	ratelimit_set_limits(r, &l);
	CU_ASSERT_EQUAL(ratelimit_connect(r, A, 0), RATELIMIT_OK);
	l.window = 0;		/* counts as 1 s */
	l.connections = 1;
	ratelimit_set_limits(r, &l);
	CU_ASSERT_EQUAL(ratelimit_connect(r, B, 0), RATELIMIT_OK);
	CU_ASSERT_EQUAL(ratelimit_connect(r, B, 10), RATELIMIT_CONNECTIONS);
	CU_ASSERT_EQUAL(ratelimit_connect(r, B, 2500), RATELIMIT_OK);
	ratelimit_free(&r);
}

static void
test_replies(void)
{
	static const struct {
		int v;
		const char *start;
		unsigned reason;
	} t[] = {
		{ RATELIMIT_CONNECTIONS, "421 4.7.0 ", MR_CONNECTION_RATE },
		{ RATELIMIT_MESSAGES, "451 4.7.1 ", MR_MESSAGE_RATE },
		{ RATELIMIT_RECIPIENTS, "452 4.7.1 ", MR_RECIPIENT_RATE },
		{ RATELIMIT_UNKNOWN_RECIPIENTS, "450 4.7.1 ", MR_UNKNOWN_RECIPIENT_RATE },
		{ RATELIMIT_ACCOUNT_MESSAGES, "451 4.7.1 ", MR_ACCOUNT_QUOTA },
		{ RATELIMIT_ACCOUNT_RECIPIENTS, "452 4.7.1 ", MR_ACCOUNT_QUOTA },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		const char *reply = ratelimit_reply(t[i].v);
		CU_ASSERT(strncmp(reply, t[i].start, 10) == 0);
		CU_ASSERT(strlen(reply) > 12 && strpbrk(reply, "\r\n") == NULL);
		CU_ASSERT(strcmp(ratelimit_verdict_text(t[i].v), "?") != 0);
		CU_ASSERT_EQUAL(ratelimit_metric_reason(t[i].v), t[i].reason);
	}
	CU_ASSERT_STRING_EQUAL(ratelimit_reply(RATELIMIT_OK), "");
	CU_ASSERT_STRING_EQUAL(ratelimit_reply(99), "");
	CU_ASSERT_STRING_EQUAL(ratelimit_reply(-1), "");
	CU_ASSERT_STRING_EQUAL(ratelimit_verdict_text(99), "?");
	CU_ASSERT_EQUAL(ratelimit_metric_reason(99), MR_OTHER);
}

#define RACE_THREADS 4
#define RACE_LOOPS 1000

struct race {
	struct ratelimit *r;
	int ok;
};

static void *
race(void *arg)
{
	struct race *x = arg;

	for (int i = 0; i < RACE_LOOPS; i++) {
		x->ok += ratelimit_connect(x->r, A, 0) == RATELIMIT_OK;
		(void)ratelimit_account_recipient(x->r, "u", i % 2 ? "a" : "b", 0);
		(void)ratelimit_recipient(x->r, V6A, i);
	}
	return NULL;
}

static void
test_threads(void)
{
	struct ratelimit *r = make(1500, 0, 0, 0, 0, 10);
	struct race x[RACE_THREADS];
	pthread_t t[RACE_THREADS];
	int ok = 0;

	for (int i = 0; i < RACE_THREADS; i++) {
		x[i].r = r;
		x[i].ok = 0;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, race, &x[i]), 0);
	}
	for (int i = 0; i < RACE_THREADS; i++) {
		pthread_join(t[i], NULL);
		ok += x[i].ok;
	}
	CU_ASSERT_EQUAL(ok, 1500);
	ratelimit_free(&r);
}

int
main(void)
{
	static const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "connection rate per client", test_connection_rate },
		{ "the window slides", test_sliding_window },
		{ "messages and recipients", test_messages_recipients },
		{ "unknown recipients", test_unknown_recipients },
		{ "0 is no limit", test_no_limits },
		{ "account messages per day", test_account_messages },
		{ "account distinct recipients per day", test_account_recipients },
		{ "many distinct recipients", test_account_recipients_many },
		{ "eviction forgets", test_eviction_forgets },
		{ "reload", test_reload },
		{ "replies", test_replies },
		{ "threads racing one client", test_threads },
	};
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("ratelimit", suite_init, NULL);
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (s == NULL || CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
			CU_cleanup_registry();
			return 2;
		}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
