/*
 * test_smtp_policy: what the answers of the policy services add up to
 * (the order rules of smtp_policy.h, table-driven), and what a message
 * keeps of the accepted ones (headers once and bounded, BCC once, the
 * last redirect); the PREPEND path of message assembly; the idle pool.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/idle_pool.h"
#include "server/smtp_message.h"
#include "server/smtp_policy.h"

#define MAXV 4

/* Runs actions (as a service would answer them) through an outcome;
 * returns how many were taken before it was final. */
static size_t
run(const char *const *actions, struct smtp_policy_outcome *o)
{
	size_t n = 0;

	smtp_policy_outcome_init(o);
	for (; n < MAXV && actions[n] != NULL; n++) {
		struct policy_verdict v;
		const char *why;

		CU_ASSERT_EQUAL_FATAL(policy_action_parse(actions[n], &v, &why), 0);
		if (smtp_policy_outcome_add(o, &v)) {
			n++;
			break;
		}
	}
	smtp_policy_outcome_end(o);
	return n;
}

static void
test_outcome(void)
{
	static const struct {
		const char *actions[MAXV + 1];
		enum smtp_policy_result result;
		const char *reply;
		size_t asked;
	} cases[] = {
		{ { "DUNNO", "DUNNO" }, SMTP_POLICY_ACCEPT, "", 2 },
		{ { "OK", "REJECT" }, SMTP_POLICY_ACCEPT, "", 1 },
		{ { "DUNNO", "REJECT no" }, SMTP_POLICY_REFUSE, "554 5.7.1 no", 2 },
		{ { "DEFER later", "OK" }, SMTP_POLICY_REFUSE, "450 4.7.1 later", 1 },
		{ { "450 4.2.0 grey", "OK" }, SMTP_POLICY_REFUSE, "450 4.2.0 grey", 1 },
		{ { "DEFER_IF_PERMIT grey", "DUNNO" }, SMTP_POLICY_REFUSE, "450 4.7.1 grey", 2 },
		{ { "DEFER_IF_PERMIT grey", "OK" }, SMTP_POLICY_REFUSE, "450 4.7.1 grey", 2 },
		{ { "DEFER_IF_PERMIT grey", "REJECT no" }, SMTP_POLICY_REFUSE, "554 5.7.1 no", 2 },
		{ { "DEFER_IF_PERMIT a", "DEFER_IF_PERMIT b" }, SMTP_POLICY_REFUSE,
		  "450 4.7.1 a", 2 },
		{ { "DEFER_IF_REJECT maybe", "REJECT no" }, SMTP_POLICY_REFUSE,
		  "450 4.7.1 maybe", 2 },
		{ { "DEFER_IF_REJECT maybe", "DUNNO" }, SMTP_POLICY_ACCEPT, "", 2 },
		{ { "DEFER_IF_REJECT maybe", "550 5.1.1 gone" }, SMTP_POLICY_REFUSE,
		  "450 4.7.1 maybe", 2 },
		{ { "421 4.7.0 bye", "OK" }, SMTP_POLICY_SHUTDOWN, "421 4.7.0 bye", 1 },
		{ { "HOLD why", "OK" }, SMTP_POLICY_ACCEPT, "", 2 },
		{ { "HOLD why", "REJECT no" }, SMTP_POLICY_REFUSE, "554 5.7.1 no", 2 },
		{ { "DISCARD", "REJECT" }, SMTP_POLICY_ACCEPT, "", 1 },
		{ { "REDIRECT a@b.example", "REJECT" }, SMTP_POLICY_ACCEPT, "", 1 },
		{ { "WARN odd", "INFO x", "PREPEND X-A: 1", "BCC c@d.example" },
		  SMTP_POLICY_ACCEPT, "", 4 },
		{ { "PREPEND X-A: 1", "REJECT" }, SMTP_POLICY_REFUSE, "554 5.7.1 Access denied", 2 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct smtp_policy_outcome *o = xmalloc(sizeof *o);
		size_t asked = run(cases[i].actions, o);

		if (o->result != cases[i].result || strcmp(o->reply, cases[i].reply) != 0 ||
		    asked != cases[i].asked) {
			CU_FAIL("outcome");
			fprintf(stderr, "case %zu: result %d reply '%s' asked %zu\n", i,
			    (int)o->result, o->reply, asked);
		}
		CU_ASSERT(o->stop);
		free(o);
	}
}

static void
test_outcome_carries(void)
{
	static const char *const accepted[] = { "PREPEND X-A: 1", "BCC c@d.example",
		"PREPEND X-B: 2", "DISCARD", NULL };
	static const char *const refused[] = { "PREPEND X-A: 1", "BCC c@d.example",
		"DEFER_IF_PERMIT grey", NULL };
	static const char *const redirect[] = { "BCC e@f.example", "REDIRECT r@s.example", NULL };
	struct smtp_policy_outcome *o = xmalloc(sizeof *o);

	CU_ASSERT_EQUAL(run(accepted, o), 4);
	CU_ASSERT_EQUAL(o->nheaders, 2);
	CU_ASSERT_STRING_EQUAL(o->headers[1], "X-B: 2");
	CU_ASSERT_EQUAL(o->nbcc, 1);
	CU_ASSERT(o->discard);
	{
		static const char *const hold[] = { "HOLD look", "HOLD again", "DUNNO", NULL };
		static const char *const held_refused[] = { "HOLD look", "REJECT", NULL };

		run(hold, o);
		CU_ASSERT(o->held);
		CU_ASSERT_STRING_EQUAL(o->hold, "look");
		run(held_refused, o);
		CU_ASSERT(!o->held);
	}
	/* A refused request drops what it asked for. */
	run(refused, o);
	CU_ASSERT_EQUAL(o->result, SMTP_POLICY_REFUSE);
	CU_ASSERT_EQUAL(o->nheaders + o->nbcc, 0);
	run(redirect, o);
	CU_ASSERT_STRING_EQUAL(o->redirect, "r@s.example");
	CU_ASSERT_EQUAL(o->nbcc, 1);
	free(o);
}

static void
test_txn(void)
{
	static const char *const a[] = { "PREPEND X-Greylist: delayed 2s", "BCC copy@example.org",
		NULL };
	static const char *const b[] = { "PREPEND X-Greylist: delayed 2s", "PREPEND X-Other: y",
		"BCC Copy@Example.ORG", "REDIRECT one@example.org", NULL };
	static const char *const c[] = { "REDIRECT two@example.org", NULL };
	static const char *const no[] = { "PREPEND X-No: 1", "REJECT", NULL };
	struct smtp_policy_outcome *o = xmalloc(sizeof *o);
	struct smtp_policy_txn t;
	char many[8][32];

	smtp_policy_txn_init(&t);
	run(a, o);
	CU_ASSERT_EQUAL(smtp_policy_txn_take(&t, o), 0);
	run(b, o);
	CU_ASSERT_EQUAL(smtp_policy_txn_take(&t, o), 0);
	run(c, o);
	smtp_policy_txn_take(&t, o);
	run(no, o);
	smtp_policy_txn_take(&t, o);
	CU_ASSERT_STRING_EQUAL(t.headers.data, "X-Greylist: delayed 2s\r\nX-Other: y\r\n");
	CU_ASSERT_EQUAL(t.nheaders, 2);
	CU_ASSERT_EQUAL(t.nbcc, 1);
	CU_ASSERT_STRING_EQUAL(t.redirect, "two@example.org");
	CU_ASSERT_FALSE(t.discard);

	/* Bounded: at most SMTP_POLICY_HEADERS_MAX headers, and bytes. */
	smtp_policy_txn_reset(&t);
	CU_ASSERT_EQUAL(t.headers.len, 0);
	CU_ASSERT_PTR_NULL(t.redirect);
	for (int round = 0; round < 2; round++) {
		const char *acts[MAXV + 1] = { 0 };

		for (int k = 0; k < MAXV; k++) {
			snprintf(many[k], sizeof many[k], "PREPEND X-H%d: %d", round, k);
			acts[k] = many[k];
		}
		run(acts, o);
		CU_ASSERT_EQUAL(smtp_policy_txn_take(&t, o), 0);
	}
	{
		const char *more[] = { "PREPEND X-Over: 1", NULL };

		run(more, o);
		CU_ASSERT_EQUAL(smtp_policy_txn_take(&t, o), 1);
		CU_ASSERT_EQUAL(t.nheaders, SMTP_POLICY_HEADERS_MAX);
	}
	smtp_policy_txn_reset(&t);
	{
		static char big[900], act[920];
		const char *acts[2] = { act, NULL };
		size_t dropped = 0;

		memset(big, 'v', sizeof big - 1);
		for (int k = 0; k < 4; k++) {
			snprintf(act, sizeof act, "PREPEND X-Big%d: %s", k, big);
			run(acts, o);
			dropped += smtp_policy_txn_take(&t, o);
		}
		CU_ASSERT_EQUAL(t.nheaders, 2);
		CU_ASSERT_EQUAL(dropped, 2);
		CU_ASSERT(t.headers.len <= SMTP_POLICY_PREPEND_MAX);
	}
	smtp_policy_txn_free(&t);
	free(o);
}

static void
test_message_prepend(void)
{
	struct smtp_message_info info = {
		.id = 0x5F3C1B9E2B9A1ULL, .helo = "client.example", .client_ip = "192.0.2.1",
		.hostname = "mx.example", .protocol = "ESMTP", .max_size = 1024,
		.mode = SMTP_DATA_DOTTED, .now = 0,
	};
	static const char body[] = "Subject: x\r\n\r\nhi\r\n.\r\n";
	static const char block[] = "X-A: 1\r\nX-B: 2\r\n";
	struct smtp_message *m = smtp_message_new(&info);
	char reply[128], *bytes, big[5000];
	struct smtp_message_parts parts;
	size_t len, end;
	int done = 0;

	smtp_message_feed(m, body, strlen(body), &done);
	CU_ASSERT(done);
	CU_ASSERT_EQUAL(smtp_message_finish(m, reply, sizeof reply), 0);
	end = smtp_message_facts(m)->header_end;
	CU_ASSERT_EQUAL(smtp_message_prepend(m, block), 0);
	CU_ASSERT_EQUAL(smtp_message_prepend(m, ""), 0);
	CU_ASSERT_EQUAL(smtp_message_facts(m)->header_end, end + strlen(block));
	/* More than the room left: refused, the message as it was. */
	memset(big, 'x', sizeof big);
	memcpy(big, "X-C: ", 5);
	memcpy(big + sizeof big - 3, "\r\n", 3);
	CU_ASSERT_EQUAL(smtp_message_prepend(m, big), -1);
	end = smtp_message_facts(m)->header_end;
	smtp_message_take(m, &parts);
	bytes = parts.head;
	len = parts.head_len;
	CU_ASSERT_EQUAL(strncmp(bytes, "X-A: 1\r\nX-B: 2\r\nReceived: from client.example", 45), 0);
	CU_ASSERT(end < len && strcmp(bytes + end, "\r\nhi\r\n") == 0);
	CU_ASSERT_PTR_NULL(strstr(bytes, "X-C"));
	free(bytes);
	smtp_message_free(&m);
}

static int freed;

static void
count_free(void *item)
{
	freed++;
	free(item);
}

static void
test_idle_pool(void)
{
	struct idle_pool p;
	void *a = xmalloc(1), *b = xmalloc(1), *c = xmalloc(1);

	idle_pool_init(&p, 2, count_free);
	CU_ASSERT_PTR_NULL(idle_pool_take(&p));
	idle_pool_give(&p, a);
	idle_pool_give(&p, b);
	idle_pool_give(&p, c);		/* over max: freed */
	idle_pool_give(&p, NULL);
	CU_ASSERT_EQUAL(freed, 1);
	CU_ASSERT_PTR_EQUAL(idle_pool_take(&p), b);	/* the newest first */
	idle_pool_give(&p, b);
	idle_pool_destroy(&p);
	CU_ASSERT_EQUAL(freed, 3);
}

int
main(void)
{
	CU_pSuite s;
	int failed;

	log_set_level(LOG_LVL_ERROR);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("smtp_policy", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "outcome: the order rules", test_outcome) == NULL ||
	    CU_add_test(s, "outcome: what it carries", test_outcome_carries) == NULL ||
	    CU_add_test(s, "transaction: once, bounded", test_txn) == NULL ||
	    CU_add_test(s, "message: prepend", test_message_prepend) == NULL ||
	    CU_add_test(s, "idle pool", test_idle_pool) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
