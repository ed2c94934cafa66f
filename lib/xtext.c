/* xtext: RFC 3461 section 4 encoding. */
#include "lib/xtext.h"

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
