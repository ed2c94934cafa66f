/*
 * buf: the one growable byte buffer of mailserver.
 *
 * A buffer has an explicit length and a hard maximum size set at init.
 * Appends that would pass the maximum fail and leave the buffer as it was,
 * so every input is bounded before it is buffered (STYLE.md habit 1).
 * The data is always followed by a NUL byte (not counted in len), so text
 * can be read as a C string.
 *
 * Errors: out of memory aborts the process (xmalloc policy, lib/util.h).
 * Threads: a buffer belongs to one thread at a time; no locking inside.
 */
#ifndef LIB_BUF_H
#define LIB_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;	/* NULL until the first append; then NUL-terminated */
	size_t len;	/* bytes held */
	size_t cap;	/* bytes allocated (excluding the NUL); grows by
			 * doubling, never past max */
	size_t max;	/* hard limit on len */
};

/* Empty buffer that may grow to max bytes. */
void buf_init(struct buf *b, size_t max);

/* Appends n bytes. Returns 0, or -1 if len would pass max (nothing added). */
int buf_append(struct buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string; as buf_append. */
int buf_puts(struct buf *b, const char *s);

/* Appends formatted text; -1 (nothing added) if it would pass max. */
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);

/* Keeps the first n bytes (nothing changes when n >= len). */
void buf_truncate(struct buf *b, size_t n);

/* len = 0; keeps the allocation. */
void buf_reset(struct buf *b);

/* Frees the storage; the buffer is empty afterwards and may be reused. */
void buf_free(struct buf *b);

/* Hands the storage to the caller (free() it); the buffer becomes empty. */
char *buf_steal(struct buf *b, size_t *len_r);

#endif
