/* xtext: RFC 3461 section 4 encoding, RFC 6533's utf-8-addr-xtext. */
#include "lib/xtext.h"

#include <stdio.h>
#include <string.h>

#include "lib/utf8.h"

int
xtext_encode(const char *s, char *out, size_t outsize)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (outsize == 0)
		return -1;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 33 && c <= 126 && c != '+' && c != '=') {
			if (o + 1 >= outsize)
				goto full;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outsize)
				goto full;
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return 0;
full:
	out[o] = '\0';
	return -1;
}

/* The code point of the valid UTF-8 sequence at s; *len_r its length. */
static unsigned long
utf8_point(const unsigned char *s, size_t *len_r)
{
	if (s[0] < 0x80) {
		*len_r = 1;
		return s[0];
	}
	if (s[0] < 0xE0) {
		*len_r = 2;
		return ((unsigned long)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
	}
	if (s[0] < 0xF0) {
		*len_r = 3;
		return ((unsigned long)(s[0] & 0x0F) << 12) |
		    ((unsigned long)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
	}
	*len_r = 4;
	return ((unsigned long)(s[0] & 0x07) << 18) |
	    ((unsigned long)(s[1] & 0x3F) << 12) |
	    ((unsigned long)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

int
xtext_encode_utf8_addr(const char *s, char *out, size_t outsize)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0;

	if (outsize == 0)
		return -1;
	out[0] = '\0';
	if (!utf8_valid(p, n))
		return -1;
	for (size_t i = 0; i < n;) {
		size_t len;
		unsigned long cp = utf8_point(p + i, &len);

		if (cp >= 0x21 && cp <= 0x7E && cp != '+' && cp != '=' &&
		    cp != '\\') {
			if (o + 1 >= outsize)
				goto full;
			out[o++] = (char)cp;
		} else {
			char esc[16];
			/* HEXPOINT: two digits at least (controls are "01"..) */
			int k = snprintf(esc, sizeof esc, "\\x{%02lX}", cp);

			if (k < 0 || o + (size_t)k >= outsize)
				goto full;
			memcpy(out + o, esc, (size_t)k);
			o += (size_t)k;
		}
		i += len;
	}
	out[o] = '\0';
	return 0;
full:
	out[o] = '\0';
	return -1;
}
