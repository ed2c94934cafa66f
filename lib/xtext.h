/*
 * xtext: the encoding of RFC 3461 section 4, used by the DSN parameters
 * ENVID and ORCPT and by AUTH=: '+', '=' and bytes outside 33..126 become
 * "+XX" (upper-case hex). And RFC 6533's utf-8-addr-xtext, the 7-bit form
 * of an ORCPT of type utf-8: "\x{HEX}" for a code point (upper-case hex,
 * no leading zeros) in place of '+', '=', '\\', space, controls and every
 * non-ASCII character; safe whether or not the next hop offers SMTPUTF8.
 *
 * Threads: reentrant.
 */
#ifndef LIB_XTEXT_H
#define LIB_XTEXT_H

#include <stddef.h>

/* Encodes s into out (always NUL-terminated when outsize > 0). Returns 0,
 * or -1 when the encoding does not fit (out then holds a prefix). */
int xtext_encode(const char *s, char *out, size_t outsize);

/* Encodes the UTF-8 address s as utf-8-addr-xtext into out (always
 * NUL-terminated when outsize > 0). Returns 0, or -1 when s is not valid
 * UTF-8 (lib/utf8.h) or the encoding does not fit. */
int xtext_encode_utf8_addr(const char *s, char *out, size_t outsize);

#endif
