/*
 * test_sasl_dovecot: the Dovecot auth-client protocol's pure parts with
 * hostile input (handshake lines, answer lines, base64, tab-escaping), and
 * the client against an in-process fake auth service on a Unix socket that
 * records every line it gets and answers from a script: the exact AUTH,
 * CONT and CANCEL lines, request ids, lines about other requests, broken
 * answers, limits.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/sasl_dovecot.h"

#define HANDSHAKE "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n" \
	"MECH\tAPOP\tprivate\nSPID\t1\nCUID\t2\nCOOKIE\tabc\nDONE\n"

static void
test_handshake(void)
{
	static const struct {
		const char *lines[8];
		int rc;		/* of the last line */
		const char *mechs;
	} cases[] = {
		{ { "VERSION\t1\t2", "MECH\tPLAIN\tplaintext", "DONE" }, 0, "PLAIN" },
		{ { "VERSION\t1\t3", "SPID\t9", "CUID\t1", "COOKIE\tx", "MECH\tLOGIN",
		    "MECH\tX-TOKEN\tprivate", "FUTURE\tthing", "DONE" }, 0, "LOGIN" },
		{ { "VERSION\t2\t0" }, -1, "" },
		{ { "VERSION" }, -1, "" },
		{ { "MECH\tPLAIN", "DONE" }, -1, "PLAIN" },
		{ { "VERSION\t1\t2", "SPID\t9", "DONE" }, -1, "" },
		{ { "VERSION\t1\t2", "MECH\tPL AIN" }, -1, "" },
		{ { "VERSION\t1\t2", "MECH\t" }, -1, "" },
		{ { "VERSION\t1\t2", "MECH\tPLAIN\x01" }, -1, "" },
		/* Anonymous mechanisms are never offered. */
		{ { "VERSION\t1\t2", "MECH\tANONYMOUS\tanonymous", "MECH\tPLAIN\tplaintext",
		    "DONE" }, 0, "PLAIN" },
		{ { "VERSION\t1\t2", "MECH\tANONYMOUS\tanonymous", "DONE" }, -1, "" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sasl_dovecot_handshake hs;
		const char *why = NULL;
		int rc = 0;

		memset(&hs, 0, sizeof hs);
		for (size_t k = 0; k < 8 && cases[i].lines[k] != NULL; k++) {
			rc = sasl_dovecot_handshake_line(&hs, cases[i].lines[k], &why);
			if (rc != 0)
				break;
		}
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc == 0) {
			CU_ASSERT(hs.done);
			CU_ASSERT_STRING_EQUAL(hs.mechlist, cases[i].mechs);
		} else {
			CU_ASSERT_PTR_NOT_NULL(why);
		}
	}
	{
		/* At most SASL_DOVECOT_MECHS_MAX mechanisms. */
		struct sasl_dovecot_handshake hs;
		const char *why;
		char line[64];
		int rc = 0;

		memset(&hs, 0, sizeof hs);
		sasl_dovecot_handshake_line(&hs, "VERSION\t1\t2", &why);
		for (int k = 0; k <= SASL_DOVECOT_MECHS_MAX && rc == 0; k++) {
			snprintf(line, sizeof line, "MECH\tM%d", k);
			rc = sasl_dovecot_handshake_line(&hs, line, &why);
		}
		CU_ASSERT_EQUAL(rc, -1);
		CU_ASSERT_EQUAL(hs.nmechs, SASL_DOVECOT_MECHS_MAX);
		CU_ASSERT(strlen(hs.mechlist) < sizeof hs.mechlist);
	}
}

static void
test_reply_lines(void)
{
	static const struct {
		const char *line;
		int rc;
		enum sasl_dovecot_status st;
		const char *user, *reason, *challenge;
	} cases[] = {
		{ "OK\t7\tuser=carol@example.org", 1, SASL_DOVECOT_OK, "carol@example.org", "", "" },
		{ "OK\t7\tuser=a\001tb\001nc\0011d", 1, SASL_DOVECOT_OK, "a?b?c?d", "", "" },
		{ "OK\t7", -1, 0, "", "", "" },
		{ "OK\t7\tuser=", -1, 0, "", "", "" },
		{ "OK\t8\tuser=x", 0, 0, "", "", "" },
		{ "OK\t07\tuser=x", 0, 0, "", "", "" },
		{ "OK", 0, 0, "", "", "" },
		{ "FAIL\t7", 1, SASL_DOVECOT_FAIL, "", "", "" },
		{ "FAIL\t7\tuser=dave\treason=Password mismatch", 1, SASL_DOVECOT_FAIL,
		    "dave", "Password mismatch", "" },
		{ "FAIL\t7\ttemp", 1, SASL_DOVECOT_TEMPFAIL, "", "", "" },
		{ "FAIL\t7\tcode=temp_fail\treason=db down", 1, SASL_DOVECOT_TEMPFAIL, "",
		    "db down", "" },
		{ "FAIL\t7\tcode=authz_fail", 1, SASL_DOVECOT_FAIL, "", "", "" },
		{ "CONT\t7\tVXNlcm5hbWU6", 1, SASL_DOVECOT_CONTINUE, "", "", "VXNlcm5hbWU6" },
		{ "CONT\t7\t", 1, SASL_DOVECOT_CONTINUE, "", "", "" },
		{ "CONT\t7", -1, 0, "", "", "" },
		{ "CONT\t7\tnot base64!", -1, 0, "", "", "" },
		{ "CONT\t7\t#", -1, 0, "", "", "" },
		{ "CANCELLED\t7", 0, 0, "", "", "" },
		{ "", 0, 0, "", "", "" },
		{ "SOMETHING\telse", 0, 0, "", "", "" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sasl_dovecot_result *res = xcalloc(1, sizeof *res);
		const char *why = NULL;
		int rc = sasl_dovecot_reply_line(cases[i].line, 7, res, &why);

		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc != cases[i].rc)
			printf("\nreply case %zu: rc %d\n", i, rc);
		if (rc == 1) {
			CU_ASSERT_EQUAL(res->status, cases[i].st);
			CU_ASSERT_STRING_EQUAL(res->user, cases[i].user);
			CU_ASSERT_STRING_EQUAL(res->reason, cases[i].reason);
			CU_ASSERT_STRING_EQUAL(res->challenge, cases[i].challenge);
		}
		if (rc < 0)
			CU_ASSERT_PTR_NOT_NULL(why);
		free(res);
	}
}

static void
test_base64(void)
{
	CU_ASSERT(sasl_dovecot_base64_ok(""));
	CU_ASSERT(sasl_dovecot_base64_ok("="));
	CU_ASSERT(sasl_dovecot_base64_ok("AGNhcm9sAHB3"));
	CU_ASSERT(sasl_dovecot_base64_ok("YQ=="));
	CU_ASSERT(sasl_dovecot_base64_ok("YWI="));
	CU_ASSERT(sasl_dovecot_base64_ok("a+/9"));
	CU_ASSERT(!sasl_dovecot_base64_ok("YQ==="));
	CU_ASSERT(!sasl_dovecot_base64_ok("Y=Q="));
	CU_ASSERT(!sasl_dovecot_base64_ok("a b"));
	CU_ASSERT(!sasl_dovecot_base64_ok("a\tb"));
	CU_ASSERT(!sasl_dovecot_base64_ok("a\nb"));
	CU_ASSERT(!sasl_dovecot_base64_ok("*"));
	CU_ASSERT(!sasl_dovecot_base64_ok("\001t"));
}

/* ---- a fake auth service ---- */

struct fake {
	int lfd;
	char path[108];
	pthread_t th;
	const char *handshake;
	const char *const *answers;	/* one per line after the handshake,
					 * across connections; NULL closes
					 * the connection */
	size_t step;
	int stop;			/* atomic: set by fake_stop */
	struct buf got;			/* every line received after CPID */
};

static void
fake_serve(struct fake *f, int fd)
{
	char buf[65536];
	size_t have = 0;
	int handshaken = 0;

	if (write(fd, f->handshake, strlen(f->handshake)) < 0)
		return;
	for (;;) {
		char *nl;
		ssize_t r;

		while ((nl = memchr(buf, '\n', have)) != NULL) {
			size_t n = (size_t)(nl - buf) + 1;

			if (handshaken) {
				const char *a = f->answers[f->step++];

				buf_append(&f->got, buf, n);
				if (a == NULL)
					return;
				if (a[0] != '\0' && write(fd, a, strlen(a)) < 0)
					return;
			} else if (strncmp(buf, "CPID\t", 5) == 0) {
				handshaken = 1;
			}
			memmove(buf, buf + n, have - n);
			have -= n;
		}
		r = read(fd, buf + have, sizeof buf - have);
		if (r <= 0)
			return;
		have += (size_t)r;
	}
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		int fd = accept(f->lfd, NULL, NULL);

		if (fd < 0 || __atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
			if (fd >= 0)
				close(fd);
			return NULL;
		}
		fake_serve(f, fd);
		close(fd);
	}
}

static void
fake_start(struct fake *f, const char *handshake, const char *const *answers)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static int n;

	memset(f, 0, sizeof *f);
	snprintf(f->path, sizeof f->path, "/tmp/ms-test-sasl-%d-%d.sock", (int)getpid(), n++);
	unlink(f->path);
	memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(bind(f->lfd, (struct sockaddr *)&sun, sizeof sun) == 0);
	CU_ASSERT_FATAL(listen(f->lfd, 4) == 0);
	f->handshake = handshake;
	f->answers = answers;
	buf_init(&f->got, 1 << 20);
	pthread_create(&f->th, NULL, fake_main, f);
}

/* Wakes the accept with a connection of its own, then joins. */
static void
fake_stop(struct fake *f)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	__atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
	memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
	(void)connect(fd, (struct sockaddr *)&sun, sizeof sun);
	pthread_join(f->th, NULL);
	close(fd);
	close(f->lfd);
	unlink(f->path);
}

static struct sasl_dovecot *
client(struct fake *f, struct sasl_dovecot_spec *spec)
{
	char ep[140], err[128];

	snprintf(ep, sizeof ep, "unix:%s", f->path);
	CU_ASSERT_FATAL(sasl_dovecot_spec_init(spec, ep, err, sizeof err) == 0);
	spec->timeout_ms = 2000;
	return sasl_dovecot_new(spec);
}

/* The exact lines, one exchange per fake, so each can be checked. */
static void
expect_lines(const char *const *answers, void (*drive)(struct sasl_dovecot *,
    struct sasl_dovecot_result *), const char *want)
{
	struct fake f;
	struct sasl_dovecot_spec spec;
	struct sasl_dovecot *c;
	struct sasl_dovecot_result *res = xcalloc(1, sizeof *res);

	fake_start(&f, HANDSHAKE, answers);
	c = client(&f, &spec);
	drive(c, res);
	sasl_dovecot_free(&c);
	fake_stop(&f);
	CU_ASSERT_STRING_EQUAL(f.got.data != NULL ? f.got.data : "", want);
	if (strcmp(f.got.data != NULL ? f.got.data : "", want) != 0)
		printf("\ngot:\n%s\nwant:\n%s\n", f.got.data, want);
	buf_free(&f.got);
	free(res);
}

static void
drive_login(struct sasl_dovecot *c, struct sasl_dovecot_result *res)
{
	struct sasl_dovecot_request rq = {
		.mech = "login", .secured = 1, .local_ip = "127.0.0.1",
		.remote_ip = "192.0.2.7", .local_port = 587, .remote_port = 40000,
	};

	sasl_dovecot_start(c, &rq, res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_CONTINUE);
	CU_ASSERT_STRING_EQUAL(res->challenge, "VXNlcm5hbWU6");
	sasl_dovecot_continue(c, "ZGF2ZQ==", res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_CONTINUE);
	CU_ASSERT_STRING_EQUAL(res->challenge, "UGFzc3dvcmQ6");
	sasl_dovecot_continue(c, "cHc=", res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_OK);
	CU_ASSERT_STRING_EQUAL(res->user, "dave");
	/* A new one while none is open. */
	rq.mech = "PLAIN";
	rq.secured = 0;
	rq.local_ip = rq.remote_ip = NULL;
	rq.local_port = rq.remote_port = 0;
	rq.service = "submission";
	rq.initial = "=";
	sasl_dovecot_start(c, &rq, res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_FAIL);
	CU_ASSERT_STRING_EQUAL(res->reason, "nope");
	/* Starting while one is open cancels it first. */
	rq.initial = NULL;
	sasl_dovecot_start(c, &rq, res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_CONTINUE);
	sasl_dovecot_start(c, &rq, res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_TEMPFAIL);
	CU_ASSERT_STRING_EQUAL(res->challenge, "");
}

static void
test_wire_lines(void)
{
	static const char *const answers[] = {
		"CONT\t1\tVXNlcm5hbWU6\n",
		"OK\t99\tuser=other\nCANCELLED\t0\nCONT\t1\tUGFzc3dvcmQ6\n",
		"OK\t1\tuser=dave\n",
		"FAIL\t2\treason=nope\n",
		"CONT\t3\t\n",
		"",		/* CANCEL: Dovecot 2.3 does not answer */
		NULL,		/* AUTH 4: the service hangs up... */
		NULL,		/* ... and on the new connection, AUTH 5 */
		NULL, NULL,
	};

	expect_lines(answers, drive_login,
	    "AUTH\t1\tLOGIN\tservice=smtp\tnologin\tsecured\tlip=127.0.0.1\t"
	    "rip=192.0.2.7\tlport=587\trport=40000\n"
	    "CONT\t1\tZGF2ZQ==\n"
	    "CONT\t1\tcHc=\n"
	    "AUTH\t2\tPLAIN\tservice=submission\tnologin\tresp=\n"
	    "AUTH\t3\tPLAIN\tservice=submission\tnologin\n"
	    "CANCEL\t3\n"
	    "AUTH\t4\tPLAIN\tservice=submission\tnologin\n"
	    "AUTH\t5\tPLAIN\tservice=submission\tnologin\n");
}

static void
drive_hostile(struct sasl_dovecot *c, struct sasl_dovecot_result *res)
{
	struct sasl_dovecot_request rq = { .mech = "PLAIN", .initial = "eA==" };

	/* Not base64, a tab, a mechanism not offered: nothing is sent. */
	rq.initial = "x\ty";
	sasl_dovecot_start(c, &rq, res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_INVALID);
	rq.initial = "eA==";
	rq.mech = "PLAIN\tresp=x";
	sasl_dovecot_start(c, &rq, res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_FAIL);
	rq.mech = "APOP";
	sasl_dovecot_start(c, &rq, res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_FAIL);
	rq.mech = "PLAIN";
	/* Too many lines about other things: tempfail, connection dropped. */
	sasl_dovecot_start(c, &rq, res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_TEMPFAIL);
	/* A new connection, and the service hangs up. */
	sasl_dovecot_start(c, &rq, res);
	CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_TEMPFAIL);
}

static void
test_hostile_service(void)
{
	static char junk[SASL_DOVECOT_SKIP_MAX * 12 + 64];
	static const char *answers[4];
	size_t n = 0;

	for (int i = 0; i <= SASL_DOVECOT_SKIP_MAX; i++)
		n += (size_t)snprintf(junk + n, sizeof junk - n, "OK\t9\tuser=x\n");
	answers[0] = junk;	/* AUTH 1: only lines about other requests */
	answers[1] = NULL;	/* AUTH 2 on a new connection: hang up */
	answers[2] = NULL;
	answers[3] = NULL;
	{
		struct fake f;
		struct sasl_dovecot_spec spec;
		struct sasl_dovecot *c;
		struct sasl_dovecot_result *res = xcalloc(1, sizeof *res);

		fake_start(&f, HANDSHAKE, answers);
		c = client(&f, &spec);
		drive_hostile(c, res);
		sasl_dovecot_free(&c);
		fake_stop(&f);
		/* Two AUTH lines, nothing of the refused ones. */
		CU_ASSERT_STRING_EQUAL(f.got.data,
		    "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tresp=eA==\n"
		    "AUTH\t2\tPLAIN\tservice=smtp\tnologin\tresp=eA==\n");
		buf_free(&f.got);
		free(res);
	}
}

static void
test_wrong_sockets(void)
{
	static const char *const none[] = { NULL, NULL };
	static const char *const hs[] = {
		"VERSION\t1\t2\nSPID\t1\n",			/* auth-master-like */
		"VERSION\t2\t0\nMECH\tPLAIN\nDONE\n",	/* another major version */
		"MECH\tPLAIN\nDONE\n",			/* no VERSION */
		"220 smtp.example ESMTP\r\n",		/* not Dovecot */
	};

	for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
		struct fake f;
		struct sasl_dovecot_spec spec;
		struct sasl_dovecot *c;
		struct sasl_dovecot_result *res = xcalloc(1, sizeof *res);
		struct sasl_dovecot_request rq = { .mech = "PLAIN", .initial = "eA==" };

		fake_start(&f, hs[i], none);
		c = client(&f, &spec);
		spec.timeout_ms = 300;
		sasl_dovecot_start(c, &rq, res);
		CU_ASSERT_EQUAL(res->status, SASL_DOVECOT_TEMPFAIL);
		CU_ASSERT_STRING_EQUAL(sasl_dovecot_mechs(c), "");
		sasl_dovecot_free(&c);
		fake_stop(&f);
		buf_free(&f.got);
		free(res);
	}
}

int
main(void)
{
	CU_pSuite s;
	int failed;

	log_set_level(LOG_LVL_ERROR);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("sasl_dovecot", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "handshake", test_handshake) == NULL ||
	    CU_add_test(s, "answer lines", test_reply_lines) == NULL ||
	    CU_add_test(s, "base64", test_base64) == NULL ||
	    CU_add_test(s, "lines on the wire", test_wire_lines) == NULL ||
	    CU_add_test(s, "hostile service", test_hostile_service) == NULL ||
	    CU_add_test(s, "wrong sockets", test_wrong_sockets) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
