/* log: thread-safe line logging to stderr, a file or syslog. */
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = 2;			/* guarded by log_lock */
static int log_syslog;			/* guarded by log_lock */
static char log_path[4096];		/* guarded by log_lock */
static _Atomic int log_level = LOG_LVL_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int
log_open(const char *target)
{
	int fd = -1, r = 0;

	if (target != NULL && *target != '\0' && strcmp(target, "syslog") != 0) {
		fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0)
			return -1;
	}
	pthread_mutex_lock(&log_lock);
	if (log_fd > 2)
		close(log_fd);
	log_fd = 2;
	log_syslog = 0;
	log_path[0] = '\0';
	if (fd >= 0) {
		log_fd = fd;
		str_copy(log_path, target, sizeof log_path);
	} else if (target != NULL && strcmp(target, "syslog") == 0) {
		openlog("mailserver", LOG_PID | LOG_NDELAY, LOG_MAIL);
		log_syslog = 1;
	}
	pthread_mutex_unlock(&log_lock);
	return r;
}

int
log_reopen(void)
{
	char path[sizeof log_path];

	pthread_mutex_lock(&log_lock);
	str_copy(path, log_path, sizeof path);
	pthread_mutex_unlock(&log_lock);
	if (path[0] == '\0')
		return 0;
	return log_open(path);
}

void
log_set_level(enum log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level);
}

int
log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
	char line[4096];
	size_t off = 0;
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, saved = errno;

	if ((int)level < atomic_load(&log_level))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	off = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line + off, sizeof line - off, ".%03ldZ mailserver[%d]: %s: ",
	    ts.tv_nsec / 1000000, (int)getpid(), level_names[level]);
	if (n > 0)
		off += (size_t)n;
	va_start(ap, fmt);
	n = vsnprintf(line + off, sizeof line - off - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	off += (size_t)n;
	if (off > sizeof line - 2)
		off = sizeof line - 2;
	/* Control characters from peers never reach the log raw. */
	for (size_t i = 0; i < off; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[off++] = '\n';

	pthread_mutex_lock(&log_lock);
	if (log_syslog) {
		char *msg = strstr(line, "]: ");
		syslog(prio[level], "%.*s", (int)(off - 1), msg ? msg + 3 : line);
	} else {
		ssize_t w = write(log_fd, line, off);
		(void)w;
	}
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}
