/*
 * mailctl_out: how mailctl writes what it read (mailctl_int.h): JSON
 * strings that are always valid JSON, text that cannot drive a terminal,
 * times.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/mailctl_int.h"

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		len = 2, cp = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		len = 3, cp = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 ||
	    cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/* Writes s (n bytes) as a JSON string: quotes, escapes, and invalid
 * UTF-8 replaced by U+FFFD, so the output is always valid JSON. */
void
json_strn(FILE *f, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	fputc('"', f);
	while (i < n) {
		unsigned char ch = p[i];
		size_t len;

		switch (ch) {
		case '"':
			fputs("\\\"", f);
			i++;
			continue;
		case '\\':
			fputs("\\\\", f);
			i++;
			continue;
		case '\n':
			fputs("\\n", f);
			i++;
			continue;
		case '\r':
			fputs("\\r", f);
			i++;
			continue;
		case '\t':
			fputs("\\t", f);
			i++;
			continue;
		}
		if (ch < 0x20 || ch == 0x7F) {
			fprintf(f, "\\u%04x", ch);
			i++;
			continue;
		}
		len = utf8_seq_len(p + i, n - i);
		if (len == 0) {
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		fwrite(p + i, 1, len, f);
		i += len;
	}
	fputc('"', f);
}

void
json_str(FILE *f, const char *s)
{
	if (s == NULL)
		fputs("null", f);
	else
		json_strn(f, s, strlen(s));
}

/* Writes s (n bytes) for a terminal: control bytes other than tab
 * become '?', so stored text cannot drive the terminal. */
void
text_strn(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		fputc(ch < 0x20 && ch != '\t' ? '?' : ch == 0x7F ? '?' : ch, f);
	}
}

void
text_str(FILE *f, const char *s)
{
	if (s != NULL)
		text_strn(f, s, strlen(s));
}

char *
iso_time(int64_t t, char *out, size_t outsize)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, outsize, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, outsize, "%" PRId64, t);
	return out;
}

int
not_in_queue(const char *arg)
{
	fprintf(stderr, "mailctl: ");
	text_str(stderr, arg);
	fprintf(stderr, ": not in the queue\n");
	return 1;
}
