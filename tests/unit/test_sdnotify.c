/*
 * test_sdnotify: server/sdnotify against a Unix datagram socket standing
 * in for systemd, bound at a path and in the abstract namespace: the
 * exact datagrams of READY, STOPPING, RELOADING and STATUS, the sender's
 * pid as the kernel reports it (what NotifyAccess=main checks), a status
 * that tries to add a line, no $NOTIFY_SOCKET, and malformed ones.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/sdnotify.h"

static char dir[] = "/tmp/test_sdnotify.XXXXXX";
static char path[100];
static int sock = -1;

static int
suite_init(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int one = 1;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof path, "%s/notify", dir);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)&sun, sizeof sun) != 0)
		return -1;
	/* As systemd does: the kernel then tells who sent each datagram. */
	setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
	return 0;
}

static int
suite_clean(void)
{
	close(sock);
	unlink(path);
	rmdir(dir);
	return 0;
}

/* The next datagram on fd (within 5 s) into out; its sender's pid. */
static pid_t
receive(int fd, char *out, size_t outsize)
{
	char cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { out, outsize - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	struct pollfd p = { fd, POLLIN, 0 };
	pid_t pid = -1;
	ssize_t n;

	out[0] = '\0';
	if (poll(&p, 1, 5000) != 1)
		return -1;
	n = recvmsg(fd, &mh, 0);
	if (n < 0)
		return -1;
	out[n] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cred;
			memcpy(&cred, CMSG_DATA(c), sizeof cred);
			pid = cred.pid;
		}
	return pid;
}

static void
test_messages(void)
{
	char got[1024];
	unsigned long long usec;

	setenv("NOTIFY_SOCKET", path, 1);
	CU_ASSERT_EQUAL(sdnotify_ready("serving 2 listeners"), 1);
	CU_ASSERT_EQUAL(receive(sock, got, sizeof got), getpid());
	CU_ASSERT_STRING_EQUAL(got, "READY=1\nSTATUS=serving 2 listeners\n");
	CU_ASSERT_EQUAL(sdnotify_ready(NULL), 1);
	receive(sock, got, sizeof got);
	CU_ASSERT_STRING_EQUAL(got, "READY=1\n");
	CU_ASSERT_EQUAL(sdnotify_stopping("stopping: 3 sessions left"), 1);
	receive(sock, got, sizeof got);
	CU_ASSERT_STRING_EQUAL(got, "STOPPING=1\nSTATUS=stopping: 3 sessions left\n");
	CU_ASSERT_EQUAL(sdnotify_status("%d sessions, queue %d", 12, 345), 1);
	receive(sock, got, sizeof got);
	CU_ASSERT_STRING_EQUAL(got, "STATUS=12 sessions, queue 345\n");
	CU_ASSERT_EQUAL(sdnotify_reloading(), 1);
	receive(sock, got, sizeof got);
	CU_ASSERT(sscanf(got, "RELOADING=1\nMONOTONIC_USEC=%llu\n", &usec) == 1 && usec > 0);
	CU_ASSERT_EQUAL(sdnotify_send("WATCHDOG=1"), 1);
	receive(sock, got, sizeof got);
	CU_ASSERT_STRING_EQUAL(got, "WATCHDOG=1");
}

static void
test_status_stays_one_line(void)
{
	char got[1024], big[1000];

	setenv("NOTIFY_SOCKET", path, 1);
	CU_ASSERT_EQUAL(sdnotify_status("bad\nREADY=1\r\tx\x7f"), 1);
	receive(sock, got, sizeof got);
	CU_ASSERT_STRING_EQUAL(got, "STATUS=bad READY=1  x \n");
	CU_ASSERT_EQUAL(sdnotify_stopping("a\nMAINPID=1"), 1);
	receive(sock, got, sizeof got);
	CU_ASSERT_STRING_EQUAL(got, "STOPPING=1\nSTATUS=a MAINPID=1\n");
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CU_ASSERT_EQUAL(sdnotify_ready(big), 1);
	receive(sock, got, sizeof got);
	CU_ASSERT_EQUAL(strlen(got), strlen("READY=1\nSTATUS=\n") + SDNOTIFY_STATUS_MAX);
	CU_ASSERT_EQUAL(sdnotify_status("%s", big), 1);
	receive(sock, got, sizeof got);
	CU_ASSERT_EQUAL(strlen(got), strlen("STATUS=\n") + SDNOTIFY_STATUS_MAX);
}

static void
test_abstract(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char name[64], got[256];
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	CU_ASSERT_FATAL(fd >= 0);
	snprintf(name, sizeof name, "@mailserver-test-%ld", (long)getpid());
	memcpy(sun.sun_path + 1, name + 1, strlen(name) - 1);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sun, len), 0);
	setenv("NOTIFY_SOCKET", name, 1);
	CU_ASSERT_EQUAL(sdnotify_ready("abstract"), 1);
	receive(fd, got, sizeof got);
	CU_ASSERT_STRING_EQUAL(got, "READY=1\nSTATUS=abstract\n");
	close(fd);
}

static void
test_not_under_systemd(void)
{
	char longpath[200];

	unsetenv("NOTIFY_SOCKET");
	CU_ASSERT_EQUAL(sdnotify_ready("x"), 0);
	CU_ASSERT_EQUAL(sdnotify_stopping(NULL), 0);
	CU_ASSERT_EQUAL(sdnotify_status("x"), 0);
	CU_ASSERT_EQUAL(sdnotify_reloading(), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	CU_ASSERT_EQUAL(sdnotify_ready("x"), 0);
	/* Malformed: relative, bare '@', too long, or nobody listening. */
	setenv("NOTIFY_SOCKET", "relative/socket", 1);
	CU_ASSERT_EQUAL(sdnotify_ready("x"), -1);
	setenv("NOTIFY_SOCKET", "@", 1);
	CU_ASSERT_EQUAL(sdnotify_ready("x"), -1);
	memset(longpath, 'a', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	setenv("NOTIFY_SOCKET", longpath, 1);
	CU_ASSERT_EQUAL(sdnotify_ready("x"), -1);
	setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
	CU_ASSERT_EQUAL(sdnotify_ready("x"), -1);
	CU_ASSERT(errno == ENOENT);
	unsetenv("NOTIFY_SOCKET");
}

int
main(void)
{
	static const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "READY, STOPPING, RELOADING, STATUS", test_messages },
		{ "a status stays one line", test_status_stays_one_line },
		{ "abstract socket", test_abstract },
		{ "not under systemd, malformed sockets", test_not_under_systemd },
	};
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite("sdnotify", suite_init, suite_clean);
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (s == NULL || CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
			CU_cleanup_registry();
			return 2;
		}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
	    CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
