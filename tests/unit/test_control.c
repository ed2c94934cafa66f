/*
 * test_control: the control socket (server/control.c). Requests parse
 * exactly, hostile ones (overlong, NUL, two lines, case) are refused; a
 * daemon side with a handler answers control_ask over a real Unix socket,
 * an unknown request gets an error that control_ask reports, a client
 * that never sends its line is dropped after the timeout without
 * blocking the next one for longer, a stale socket file is replaced, and
 * no daemon is a clear error.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/control.h"

static char dir[64];

static void
test_parse(void)
{
	char big[200];

	CU_ASSERT_EQUAL(control_parse_request("sessions\n", 9), CONTROL_SESSIONS);
	CU_ASSERT_EQUAL(control_parse_request("sessions\r\n", 10), CONTROL_SESSIONS);
	CU_ASSERT_EQUAL(control_parse_request("sessions", 8), CONTROL_SESSIONS);
	CU_ASSERT_EQUAL(control_parse_request("sessions json\n", 14), CONTROL_SESSIONS_JSON);
	CU_ASSERT_EQUAL(control_parse_request("", 0), CONTROL_BAD);
	CU_ASSERT_EQUAL(control_parse_request("\n", 1), CONTROL_BAD);
	CU_ASSERT_EQUAL(control_parse_request("SESSIONS\n", 9), CONTROL_BAD);
	CU_ASSERT_EQUAL(control_parse_request("sessions \n", 10), CONTROL_BAD);
	CU_ASSERT_EQUAL(control_parse_request("sessions\n\n", 10), CONTROL_BAD);
	CU_ASSERT_EQUAL(control_parse_request("sess\0ons\n", 9), CONTROL_BAD);
	CU_ASSERT_EQUAL(control_parse_request("sessions\0\n", 10), CONTROL_BAD);
	CU_ASSERT_EQUAL(control_parse_request("sessions json extra\n", 20), CONTROL_BAD);
	memset(big, 'a', sizeof big);
	CU_ASSERT_EQUAL(control_parse_request(big, sizeof big), CONTROL_BAD);
	{
		static const struct {
			const char *req, *arg;	/* arg "": not a send */
		} sends[] = {
			{ "tls-report send a.test 2026-01-02\n", "a.test 2026-01-02" },
			{ "tls-report send A_b-1.test x\r\n", "A_b-1.test x" },
			{ "tls-report send a.test\n", "" },
			{ "tls-report send a.test 2026-01-02 x\n", "" },
			{ "tls-report send  a.test 2026-01-02\n", "" },
			{ "tls-report send a.test  2026-01-02\n", "" },
			{ "tls-report send a.test 2026-01-02 \n", "" },
			{ "tls-report send a/b 2026-01-02\n", "" },
			{ "tls-report send a.test 2026\n01\n", "" },
			{ "tls-report send a.test\t2026-01-02\n", "" },
			{ "TLS-REPORT send a.test 2026-01-02\n", "" },
			{ "tls-report send \n", "" },
		};
		char arg[CONTROL_ARG_MAX], lng[CONTROL_ARG_MAX + 40];

		for (size_t i = 0; i < sizeof sends / sizeof sends[0]; i++) {
			size_t n = strlen(sends[i].req);
			control_parse_arg(sends[i].req, n, arg);
			CU_ASSERT_STRING_EQUAL(arg, sends[i].arg);
			CU_ASSERT_EQUAL(control_parse_request(sends[i].req, n),
			    sends[i].arg[0] ? CONTROL_TLS_REPORT_SEND : CONTROL_BAD);
		}
		/* an argument too long for CONTROL_ARG_MAX */
		memset(lng, 'a', sizeof lng);
		memcpy(lng, "tls-report send ", 16);
		lng[30] = ' ';
		control_parse_arg(lng, sizeof lng, arg);
		CU_ASSERT_STRING_EQUAL(arg, "");
		CU_ASSERT_EQUAL(control_parse_request("tls-report send a\0b c\n", 22), CONTROL_BAD);
	}
}

static int calls;

static void
handler(enum control_request req, const char *reqarg, FILE *out, void *arg)
{
	(void)reqarg;
	calls++;
	fprintf(out, "%s %s\n", (const char *)arg,
	    req == CONTROL_SESSIONS_JSON ? "json" : "text");
}

static char *
ask(const char *req, int *rc)
{
	char err[256], *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	*rc = control_ask(dir, req, f, err, sizeof err);
	fclose(f);
	if (*rc < 0) {
		free(text);
		return xstrdup(err);
	}
	return text;
}

static void
test_socket(void)
{
	char err[256], path[128];
	struct control *c;
	struct stat st;
	char *a;
	int rc, fd;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	a = ask("sessions", &rc);
	CU_ASSERT_EQUAL(rc, -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(a, "is the daemon running?"));
	free(a);
	/* A stale file where the socket goes. */
	snprintf(path, sizeof path, "%s/%s", dir, CONTROL_SOCKET);
	fclose(fopen(path, "w"));
	CU_ASSERT_FATAL((c = control_start(dir, handler, "hello", err, sizeof err)) != NULL);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT(S_ISSOCK(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 077, 0);

	a = ask("sessions", &rc);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(a, "hello text\n");
	free(a);
	a = ask("sessions json", &rc);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(a, "hello json\n");
	free(a);
	a = ask("shutdown", &rc);
	CU_ASSERT_EQUAL(rc, -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(a, "unknown request"));
	free(a);
	CU_ASSERT_EQUAL(calls, 2);

	/* A client that connects and says nothing is dropped at the
	 * timeout; the next one is served after it. */
	str_copy(sun.sun_path, path, sizeof sun.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	int64_t t0 = time_mono_ms();
	a = ask("sessions", &rc);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(time_mono_ms() - t0 < 2 * CONTROL_TIMEOUT_MS);
	free(a);
	close(fd);

	control_stop(&c);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);
}

int
main(void)
{
	CU_pSuite suite;
	unsigned failures;
	char cmd[128];

	log_set_level(LOG_LVL_ERROR);
	str_copy(dir, "/tmp/test_control.XXXXXX", sizeof dir);
	if (mkdtemp(dir) == NULL || CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	suite = CU_add_suite("control", NULL, NULL);
	if (suite == NULL ||
	    !CU_add_test(suite, "parse", test_parse) ||
	    !CU_add_test(suite, "socket", test_socket)) {
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
