/*
 * util: allocation that cannot fail, bounded string copies, time, the
 * standard descriptors.
 *
 * Errors: x* allocators abort the process when memory is exhausted; there
 * is no sensible way for a mail server to go on without memory, and a crash
 * loses nothing acknowledged (DESIGN.md).
 * Threads: every function is thread-safe.
 */
#ifndef LIB_UTIL_H
#define LIB_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Copies src into dst of size dstsize, always NUL-terminating (dstsize > 0).
 * Returns 0, or -1 when src was truncated. */
int str_copy(char *dst, const char *src, size_t dstsize);

/* snprintf into dst for diagnostics, where cutting a long text short is
 * fine (dstsize > 0; the result is always NUL-terminated). */
void str_format(char *dst, size_t dstsize, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ASCII lower-casing in place; returns s. */
char *str_lower(char *s);

/* The length of the header field name that starts the line p (n bytes):
 * RFC 5322 ftext up to optional WSP and ':'; 0 when p is not a field. */
size_t header_name_len(const char *p, size_t n);

/* Milliseconds of CLOCK_MONOTONIC / CLOCK_REALTIME. */
int64_t time_mono_ms(void);
int64_t time_real_ms(void);

/* The CLOCK_MONOTONIC time ms from now, as an absolute deadline for a
 * condition variable whose clock is CLOCK_MONOTONIC
 * (pthread_condattr_setclock). */
void time_mono_deadline(struct timespec *ts, int64_t ms);

/* RFC 5322 date-time ("Mon, 29 Nov 2026 23:14:07 +0000") of t in local
 * time, into out (size >= 40). Returns out. */
char *time_rfc5322(time_t t, char *out, size_t outsize);

/* Opens /dev/null on any of the descriptors 0, 1 and 2 that is closed, so
 * that no file opened later (the queue's LMDB files) gets one and receives
 * what is written to stdout or stderr. Returns 0, or -1 (errno) when
 * /dev/null cannot be opened. Call it first in main, before any thread. */
int fd_std_ensure(void);

#endif
