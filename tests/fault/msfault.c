/*
 * msfault: faults for the integration tests (tests/integration/faults.py)
 * that a test cannot make from outside the process, injected with
 * LD_PRELOAD into a mailserver started for one test. Never linked into
 * the server. Each fault is off unless its environment variable is set:
 *
 *   MSFAULT_REALTIME_OFFSET=SECONDS  the wall clock (CLOCK_REALTIME, time,
 *       gettimeofday) reads SECONDS off (a clock that was stepped); the
 *       monotonic clock is left alone, and so is the kernel, which still
 *       compares absolute CLOCK_REALTIME deadlines with the true time.
 *   MSFAULT_META_FAIL_AFTER=N  after N writes of an LMDB meta page (a
 *       short pwrite into the first two pages of a data.mdb), every further
 *       one fails with EIO, as a disk that fails under the commit would:
 *       LMDB then marks the environment broken (MDB_PANIC).
 *       MSFAULT_META_FILE=PATH limits it to that data.mdb (the queue's,
 *       not the trace's or the TLS reports').
 *   MSFAULT_EPOLL_FAIL_THREAD=NAME  epoll_wait fails (EBADF) in the
 *       thread of that name (pthread_setname_np: "worker1" is session
 *       worker 1), as a broken event loop would.
 *       MSFAULT_EPOLL_FAIL_FILE=PATH: only once PATH exists (a loop that
 *       breaks while it has sessions).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define META_AREA 8192		/* two pages of 4 KiB */

static long
env_long(const char *name, long dflt, int *set_r)
{
	const char *v = getenv(name);

	*set_r = v != NULL && *v != '\0';
	return *set_r ? strtol(v, NULL, 10) : dflt;
}

static long
realtime_offset(void)
{
	static _Atomic long offset;
	static atomic_int known;
	int set;

	if (!atomic_load(&known)) {
		atomic_store(&offset, env_long("MSFAULT_REALTIME_OFFSET", 0, &set));
		atomic_store(&known, 1);
	}
	return atomic_load(&offset);
}

int clock_gettime(clockid_t clk, struct timespec *ts);
int
clock_gettime(clockid_t clk, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	int rc;

	if (real == NULL)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT,
		    "clock_gettime");
	rc = real(clk, ts);
	if (rc == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE))
		ts->tv_sec += realtime_offset();
	return rc;
}

time_t time(time_t *t);
time_t
time(time_t *t)
{
	struct timespec ts;
	time_t v;

	clock_gettime(CLOCK_REALTIME, &ts);
	v = ts.tv_sec;
	if (t != NULL)
		*t = v;
	return v;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz);
int
gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;

	(void)tz;
	clock_gettime(CLOCK_REALTIME, &ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

/* Is fd the data file of an LMDB environment? */
static int
is_data_mdb(int fd)
{
	char link[64], path[4096];
	ssize_t n;

	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof path - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	if (getenv("MSFAULT_META_FILE") != NULL && *getenv("MSFAULT_META_FILE") != '\0')
		return strcmp(path, getenv("MSFAULT_META_FILE")) == 0;
	n = (ssize_t)strlen(path);
	return n >= 9 && strcmp(path + n - 9, "/data.mdb") == 0;
}

/* 1 when this write must fail. */
static int
meta_fault(int fd, size_t len, off_t off)
{
	static atomic_long writes;
	int set;
	long after = env_long("MSFAULT_META_FAIL_AFTER", 0, &set);

	if (!set || off >= META_AREA || len >= 4096 || !is_data_mdb(fd))
		return 0;
	return atomic_fetch_add(&writes, 1) >= after;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off);
ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);

	if (real == NULL)
		real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(
		    RTLD_NEXT, "pwrite");
	if (meta_fault(fd, len, off)) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off);
ssize_t
pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	return pwrite(fd, buf, len, off);
}

int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout);
int
epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
	static int (*real)(int, struct epoll_event *, int, int);
	const char *want = getenv("MSFAULT_EPOLL_FAIL_THREAD");
	char name[16];

	if (real == NULL)
		real = (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT,
		    "epoll_wait");
	if (want != NULL && *want != '\0' &&
	    pthread_getname_np(pthread_self(), name, sizeof name) == 0 &&
	    strcmp(name, want) == 0) {
		const char *file = getenv("MSFAULT_EPOLL_FAIL_FILE");

		if (file == NULL || *file == '\0' || access(file, F_OK) == 0) {
			errno = EBADF;
			return -1;
		}
	}
	return real(epfd, evs, max, timeout);
}
