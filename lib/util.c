/* util: allocators that abort on exhaustion, string and time helpers. */
#include "lib/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
oom(void)
{
	static const char msg[] = "mailserver: out of memory\n";
	fwrite(msg, 1, sizeof msg - 1, stderr);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		oom();
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (p == NULL)
		oom();
	return p;
}

int
str_copy(char *dst, const char *src, size_t dstsize)
{
	size_t n = strlen(src);

	if (n >= dstsize) {
		memcpy(dst, src, dstsize - 1);
		dst[dstsize - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

void
str_format(char *dst, size_t dstsize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, dstsize, fmt, ap);
	va_end(ap);
}

char *
str_lower(char *s)
{
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

size_t
header_name_len(const char *p, size_t n)
{
	size_t i = 0, j;

	while (i < n && (unsigned char)p[i] >= 33 && (unsigned char)p[i] <= 126 &&
	    p[i] != ':')
		i++;
	for (j = i; j < n && (p[j] == ' ' || p[j] == '\t'); j++)
		;
	return i > 0 && j < n && p[j] == ':' ? i : 0;
}

static int64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
time_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t
time_real_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

void
time_mono_deadline(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

char *
time_rfc5322(time_t t, char *out, size_t outsize)
{
	struct tm tm;

	localtime_r(&t, &tm);
	if (strftime(out, outsize, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		out[0] = '\0';
	return out;
}

int
fd_std_ensure(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int n = open("/dev/null", O_RDWR);

		if (n < 0)
			return -1;
		if (n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
	return 0;
}
