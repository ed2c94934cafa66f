/*
 * test_hold: the hold rules (server/hold.c) over a config read from a
 * file, and the account ages kept in <queue_dir>/accounts: the accounts
 * of the first users file count as old, later ones are dated, the file
 * survives a reopen, and bad lines in it are skipped.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/config.h"
#include "server/hold.h"
#include "storage/userdb.h"

static char dir[64];

static void
write_file(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	CU_ASSERT_FATAL((f = fopen(path, "w")) != NULL);
	fputs(text, f);
	fclose(f);
}

/* The config of extra; errors are shown only when quiet is 0. */
static struct config *
load_config_errs(const char *extra, int quiet)
{
	char path[128], text[1024];

	snprintf(text, sizeof text, "queue_dir = %s/q\n%s", dir, extra);
	write_file("mailserver.conf", text);
	snprintf(path, sizeof path, "%s/mailserver.conf", dir);
	return config_load(path, quiet ? NULL : stderr);
}

static struct config *
load_config(const char *extra)
{
	return load_config_errs(extra, 0);
}

static struct userdb *
load_users(const char *text)
{
	char path[128];

	write_file("users", text);
	snprintf(path, sizeof path, "%s/users", dir);
	return userdb_load(path, NULL, stderr);
}

static int
held(const struct config *cfg, struct hold_accounts *a, const char *sender,
    const char *rcpt, const char *client, const char *user, char *why)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	const char *rcpts[2] = { "other@example.org", rcpt };
	struct hold_msg m = { sender, rcpts, 2, (struct sockaddr *)&sin, user };

	inet_pton(AF_INET, client, &sin.sin_addr);
	why[0] = '\0';
	return hold_match(cfg, a, &m, 1000000, why, 200);
}

static void
test_rules(void)
{
	struct config *cfg = load_config(
	    "hold_senders = @Spam.Example <> boss@example.org\n"
	    "hold_recipients = ceo@example.org\n"
	    "hold_clients = 192.0.2.0/24\n"
	    "hold_users = intern@example.org\n");
	char why[200];

	CU_ASSERT_FATAL(cfg != NULL);
	CU_ASSERT(held(cfg, NULL, "x@spam.example", "a@b.example", "10.0.0.1", "", why));
	CU_ASSERT_STRING_EQUAL(why, "hold_senders @spam.example matches <x@spam.example>");
	CU_ASSERT(held(cfg, NULL, "", "a@b.example", "10.0.0.1", "", why));
	CU_ASSERT(held(cfg, NULL, "BOSS@example.org", "a@b.example", "10.0.0.1", "", why));
	CU_ASSERT(!held(cfg, NULL, "x@notspam.example", "a@b.example", "10.0.0.1", "", why));
	CU_ASSERT(!held(cfg, NULL, "x@sub.spam.example", "a@b.example", "10.0.0.1", "", why));
	CU_ASSERT(held(cfg, NULL, "x@a.example", "CEO@example.org", "10.0.0.1", "", why));
	CU_ASSERT_STRING_EQUAL(why, "hold_recipients ceo@example.org matches <CEO@example.org>");
	CU_ASSERT(held(cfg, NULL, "x@a.example", "y@b.example", "192.0.2.77", "", why));
	CU_ASSERT_STRING_EQUAL(why, "hold_clients matches [192.0.2.77]");
	CU_ASSERT(held(cfg, NULL, "x@a.example", "y@b.example", "10.0.0.1",
	    "Intern@example.org", why));
	CU_ASSERT(!held(cfg, NULL, "x@a.example", "y@b.example", "10.0.0.1",
	    "other@example.org", why));
	config_unref(&cfg);
	/* what the parser refuses */
	CU_ASSERT_PTR_NULL(load_config_errs("hold_senders = nodomain\n", 1));
	CU_ASSERT_PTR_NULL(load_config_errs("hold_users = @example.org\n", 1));
	CU_ASSERT_PTR_NULL(load_config_errs("hold_users = <>\n", 1));
	CU_ASSERT_PTR_NULL(load_config_errs("hold_clients = 300.1.1.1\n", 1));
	CU_ASSERT_PTR_NULL(load_config_errs("hold_new_accounts = soon\n", 1));
}

static void
test_account_ages(void)
{
	struct config *cfg = load_config("hold_new_accounts = 1h\n");
	struct userdb *udb = load_users("old@example.org:\n");
	struct hold_accounts *a;
	char err[256], path[128], why[200];
	FILE *f;

	CU_ASSERT_FATAL(cfg != NULL && udb != NULL);
	snprintf(path, sizeof path, "%s/q", dir);
	mkdir(path, 0700);
	CU_ASSERT_FATAL((a = hold_accounts_open(path, err, sizeof err)) != NULL);
	hold_accounts_update(a, udb, 999000);	/* the first file: old */
	CU_ASSERT(hold_accounts_age(a, "OLD@example.org", 1000000) > 3600);
	CU_ASSERT_EQUAL(hold_accounts_age(a, "nobody@example.org", 1000000), -1);
	userdb_free(&udb);
	udb = load_users("old@example.org:\nnew@example.org:\n");
	hold_accounts_update(a, udb, 999000);
	CU_ASSERT_EQUAL(hold_accounts_age(a, "new@example.org", 1000000), 1000);
	CU_ASSERT(held(cfg, a, "n@example.org", "x@y.example", "10.0.0.1",
	    "new@example.org", why));
	CU_ASSERT_STRING_EQUAL(why, "hold_new_accounts: sasl_username=new@example.org is 1000 s old");
	CU_ASSERT(!held(cfg, a, "n@example.org", "x@y.example", "10.0.0.1",
	    "old@example.org", why));
	CU_ASSERT(!held(cfg, a, "n@example.org", "x@y.example", "10.0.0.1", "", why));
	hold_accounts_free(&a);
	/* reopened: the ages stay; a bad line is skipped */
	snprintf(path, sizeof path, "%s/q/accounts", dir);
	CU_ASSERT_FATAL((f = fopen(path, "a")) != NULL);
	fputs("junk\nx@y.example -5\n", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/q", dir);
	CU_ASSERT_FATAL((a = hold_accounts_open(path, err, sizeof err)) != NULL);
	hold_accounts_update(a, udb, 2000000);
	CU_ASSERT_EQUAL(hold_accounts_age(a, "new@example.org", 1000000), 1000);
	CU_ASSERT(hold_accounts_age(a, "old@example.org", 1000000) > 3600);
	CU_ASSERT_EQUAL(hold_accounts_age(a, "x@y.example", 1000000), -1);
	hold_accounts_free(&a);
	userdb_free(&udb);
	config_unref(&cfg);
}

int
main(void)
{
	CU_pSuite suite;
	unsigned failures;
	char cmd[128];

	log_set_level(LOG_LVL_ERROR);
	str_copy(dir, "/tmp/test_hold.XXXXXX", sizeof dir);
	if (mkdtemp(dir) == NULL || CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	suite = CU_add_suite("hold", NULL, NULL);
	if (suite == NULL ||
	    !CU_add_test(suite, "rules", test_rules) ||
	    !CU_add_test(suite, "account ages", test_account_ages)) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return failures ? 1 : 0;
}
