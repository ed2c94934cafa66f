/*
 * xtext: the encoding of RFC 3461 section 4, used by the DSN parameters
 * ENVID and ORCPT and by AUTH=: '+', '=' and bytes outside 33..126 become
 * "+XX" (upper-case hex).
 *
 * Threads: reentrant.
 */
#ifndef LIB_XTEXT_H
#define LIB_XTEXT_H

#include <stddef.h>

/* Encodes s into out (always NUL-terminated when outsize > 0). Returns 0,
 * or -1 when the encoding does not fit (out then holds a prefix). */
int xtext_encode(const char *s, char *out, size_t outsize);

#endif
