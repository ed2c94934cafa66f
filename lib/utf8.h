/*
 * utf8: strict UTF-8 checks (RFC 3629) for text that arrives from the
 * network or from files: addresses, xtext-decoded parameters, local parts.
 *
 * Threads: reentrant.
 */
#ifndef LIB_UTF8_H
#define LIB_UTF8_H

#include <stddef.h>

/* Is s[0..n) valid UTF-8: no overlong forms, no surrogates, nothing
 * above U+10FFFF? ASCII (NUL included) is valid. */
int utf8_valid(const unsigned char *s, size_t n);

/* The length (1-4) of the valid UTF-8 character at s[0..n), or 0 when
 * none starts there (n == 0, a bad or cut sequence). */
size_t utf8_char_len(const unsigned char *s, size_t n);

/* Does s[0..n) hold a C1 control (U+0080..U+009F)? Assumes valid UTF-8. */
int utf8_has_c1(const unsigned char *s, size_t n);

#endif
