/*
 * Fuzz target for server/smtp_sasl: the SASL exchanges and the base64
 * decoder. Input: byte 0 picks the mechanism and whether the first line
 * is an initial response; the rest are response lines separated by LF.
 * Checks: credentials handed out are within their limits and hold no
 * NUL; a finished or failed exchange leaves no password behind; the
 * decoder agrees with a slow reference and with its own length-only mode.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/smtp_sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* Reference: strict base64 by the book, one sextet at a time. */
static long
ref_decode(const char *t, unsigned char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(t), pads = 0, o = 0;
	unsigned acc = 0, bits = 0;

	if (n % 4 != 0)
		return -1;
	while (pads < 2 && pads < n && t[n - 1 - pads] == '=')
		pads++;
	for (size_t i = 0; i < n - pads; i++) {
		const char *p = t[i] ? strchr(tab, t[i]) : NULL;

		if (p == NULL)
			return -1;
		acc = (acc << 6) | (unsigned)(p - tab);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* "x===" style: one sextet in the last group is no byte at all */
	if (n > 0 && pads == 2 && ((n - pads) % 4) != 2)
		return -1;
	return (long)o;
}

static void
check_line(const char *line)
{
	static unsigned char a[16384], b[16384];
	long n = smtp_sasl_base64_decode(line, a, sizeof a);
	long r = ref_decode(line, b);

	FUZZ_CHECK(n == r);
	FUZZ_CHECK(smtp_sasl_base64_decode(line, NULL, 0) == r);
	if (n > 0)
		FUZZ_CHECK(memcmp(a, b, (size_t)n) == 0);
}

static void
check_result(struct smtp_sasl *s, enum smtp_sasl_result r)
{
	if (r == SMTP_SASL_CHECK) {
		size_t u = strnlen(s->user, sizeof s->user);
		size_t p = strnlen(s->pass, sizeof s->pass);

		FUZZ_CHECK(u > 0 && u <= SMTP_SASL_USER_MAX);
		FUZZ_CHECK(p <= SMTP_SASL_PASS_MAX);
		smtp_sasl_clear(s);
	}
	if (r != SMTP_SASL_CHALLENGE)
		FUZZ_CHECK(s->pass[0] == '\0');
	else
		FUZZ_CHECK(s->challenge != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mechs[] = { "PLAIN", "LOGIN", "plain", "XOAUTH2" };
	struct smtp_sasl s;
	char *text, *line, *next;
	int first = 1;

	if (size < 1 || size > 65536)
		return 0;
	memset(&s, 0, sizeof s);
	text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (!(data[0] & 4))
		check_result(&s, smtp_sasl_start(&s, mechs[data[0] & 3], NULL));
	for (line = text; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		check_line(line);
		if (first && (data[0] & 4))
			check_result(&s, smtp_sasl_start(&s, mechs[data[0] & 3], line));
		else
			check_result(&s, smtp_sasl_step(&s, line));
		first = 0;
	}
	smtp_sasl_clear(&s);
	free(text);
	return 0;
}
