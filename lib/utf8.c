/* utf8: strict UTF-8 validation (contract in utf8.h). */
#include "lib/utf8.h"

size_t
utf8_char_len(const unsigned char *s, size_t n)
{
	unsigned char c, lo = 0x80, hi = 0xBF;
	size_t more;

	if (n == 0)
		return 0;
	c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		more = 1;
	else if (c >= 0xE0 && c <= 0xEF)
		more = 2;
	else if (c >= 0xF0 && c <= 0xF4)
		more = 3;
	else
		return 0;
	/* the second byte's range rules out overlong forms, surrogates and
	 * code points past U+10FFFF */
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (n - 1 < more || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k <= more; k++)
		if (s[k] < 0x80 || s[k] > 0xBF)
			return 0;
	return more + 1;
}

int
utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0, len; i < n; i += len)
		if ((len = utf8_char_len(s + i, n - i)) == 0)
			return 0;
	return 1;
}

int
utf8_has_c1(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == 0xC2 && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F)
			return 1;
	return 0;
}
