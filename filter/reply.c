/*
 * reply: the check of a reply a filter hands the session (see reply.h).
 */
#include "filter/reply.h"

#include <string.h>

#include "lib/buf.h"

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Length of an enhanced status code "C.x.y" (C one digit, x and y 1..3)
 * at s, followed by a space or the end; 0 when s does not start with one
 * (then the text is only text), -1 when it does with a class other than
 * cls. */
static int
esc_len(const char *s, size_t n, char cls)
{
	size_t i = 0;

	for (int part = 0; part < 3; part++) {
		size_t d = 0;

		if (part > 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
		while (i < n && is_digit(s[i]) && d < 4) {
			i++;
			d++;
		}
		if (d == 0 || d > 3 || (part == 0 && d != 1))
			return 0;
	}
	if (i < n && s[i] != ' ')
		return 0;
	return s[0] == cls ? (int)i : -1;
}

int
filter_reply_check(const char *text, int flags, char *out, size_t outsize,
    const char **why_r)
{
	struct buf b;
	const char *line = text;
	char code[4] = "";
	int rc = -1;

	buf_init(&b, FILTER_REPLY_MAX);
	if (outsize <= FILTER_REPLY_MAX) {
		*why_r = "output too small";
		goto done;
	}
	for (;;) {
		const char *end = strstr(line, "\r\n");
		size_t n = end != NULL ? (size_t)(end - line) : strlen(line);
		const char *t;
		size_t tn;
		int el;

		if (n < 4 || n > FILTER_REPLY_LINE_MAX) {
			*why_r = n < 4 ? "reply line too short" :
			    "reply line too long";
			goto done;
		}
		if ((line[0] != '4' && line[0] != '5') || line[1] < '0' ||
		    line[1] > '5' || !is_digit(line[2])) {
			*why_r = "reply code not 4xx or 5xx";
			goto done;
		}
		if (line[3] != (end != NULL ? '-' : ' ')) {
			*why_r = "reply line separator wrong";
			goto done;
		}
		if (code[0] == '\0')
			memcpy(code, line, 3);
		else if (memcmp(code, line, 3) != 0) {
			*why_r = "reply lines with different codes";
			goto done;
		}
		t = line + 4;
		tn = n - 4;
		for (size_t i = 0; i < tn; i++) {
			if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] > 0x7e) {
				*why_r = "control or non-ASCII byte in reply";
				goto done;
			}
		}
		el = esc_len(t, tn, code[0]);
		if (el < 0) {
			*why_r = "bad enhanced status code";
			goto done;
		}
		if (b.len > 0 && buf_puts(&b, "\r\n") != 0)
			goto toolong;
		if (buf_append(&b, line, 4) != 0)
			goto toolong;
		if (el == 0 && buf_printf(&b, "%c.7.1%s", code[0],
		    tn > 0 ? " " : "") != 0)
			goto toolong;
		for (size_t i = 0; i < tn; i++) {
			if (t[i] == '%' && (flags & FILTER_REPLY_PERCENT)) {
				if (i + 1 < tn && t[i + 1] == '%')
					i++;
				else
					continue;
			}
			if (buf_append(&b, &t[i], 1) != 0)
				goto toolong;
		}
		if (end == NULL)
			break;
		line = end + 2;
	}
	memcpy(out, b.data, b.len + 1);
	rc = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
	goto done;
toolong:
	*why_r = "reply too long";
done:
	buf_free(&b);
	return rc;
}
