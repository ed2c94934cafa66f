/*
 * Fuzz target for what a hostile policy service answers
 * (filter/policy.h): the input is fed to the reply parser once whole and
 * once in pieces whose size comes from the first byte, keeping what was
 * not consumed, as filter/policy.c does; both ways must agree. A complete
 * reply's action goes through policy_action_parse. Checks what the SMTP
 * session relies on: a reply is a valid 4xx/5xx line, printable and
 * bounded; a PREPEND header is "Name: value" without a line break; an
 * address has no space, bracket or control byte; texts are printable.
 * Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/milter_mods.h"
#include "filter/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static int
fuzz_feed(const char *in, size_t len, size_t piece, struct policy_reply *r)
{
	char *pend = malloc(len + 1);
	size_t plen = 0, off = 0;
	int rc = POLICY_REPLY_MORE;

	policy_reply_init(r);
	while (off < len) {
		size_t n = len - off < piece ? len - off : piece, used;

		memcpy(pend + plen, in + off, n);
		plen += n;
		off += n;
		rc = policy_reply_feed(r, pend, plen, &used);
		FUZZ_CHECK(used <= plen);
		memmove(pend, pend + used, plen - used);
		plen -= used;
		if (rc == POLICY_REPLY_MORE)
			FUZZ_CHECK(plen <= POLICY_LINE_MAX + 1 &&
			    memchr(pend, '\n', plen) == NULL);
		else
			break;
	}
	free(pend);
	return rc;
}

static void
printable(const char *s, int tab_ok)
{
	for (; *s != '\0'; s++)
		FUZZ_CHECK(((unsigned char)*s >= 0x20 && (unsigned char)*s != 0x7f) ||
		    (tab_ok && *s == '\t'));
}

static void
check_verdict(const struct policy_verdict *v)
{
	size_t n = strlen(v->reply);

	FUZZ_CHECK(n <= FILTER_REPLY_MAX);
	if (n > 0) {
		FUZZ_CHECK(n >= 4 && (v->reply[0] == '4' || v->reply[0] == '5'));
		FUZZ_CHECK(v->reply[3] == ' ' && strstr(v->reply, "\r\n") == NULL);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK((unsigned char)v->reply[i] >= 0x20 &&
			    (unsigned char)v->reply[i] < 0x7f);
	}
	FUZZ_CHECK((n > 0) == (v->kind == POLICY_REJECT || v->kind == POLICY_DEFER ||
	    v->kind == POLICY_DEFER_IF_PERMIT || v->kind == POLICY_DEFER_IF_REJECT ||
	    v->kind == POLICY_SHUTDOWN));
	if (v->header[0] != '\0') {
		const char *colon = strchr(v->header, ':');
		char name[MILTER_HEADER_NAME_MAX + 1];

		FUZZ_CHECK(v->kind == POLICY_PREPEND && colon != NULL);
		FUZZ_CHECK((size_t)(colon - v->header) <= MILTER_HEADER_NAME_MAX);
		memcpy(name, v->header, (size_t)(colon - v->header));
		name[colon - v->header] = '\0';
		FUZZ_CHECK(milter_header_name_ok(name));
		printable(v->header, 1);
	}
	if (v->addr[0] != '\0') {
		FUZZ_CHECK(strpbrk(v->addr, " \t<>") == NULL);
		printable(v->addr, 0);
	}
	printable(v->text, 0);
	for (const char *p = v->text; *p != '\0'; p++)
		FUZZ_CHECK((unsigned char)*p < 0x7f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_reply *a, *b;
	struct policy_verdict v;
	const char *why = NULL;
	size_t piece;
	int ra, rb;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] % 29 + 1;
	a = malloc(sizeof *a);
	b = malloc(sizeof *b);
	ra = fuzz_feed((const char *)data + 1, size - 1, size, a);
	rb = fuzz_feed((const char *)data + 1, size - 1, piece, b);
	FUZZ_CHECK(ra == rb);
	if (ra == POLICY_REPLY_ERROR)
		FUZZ_CHECK(a->why != NULL && b->why != NULL);
	if (ra == POLICY_REPLY_DONE) {
		FUZZ_CHECK(strcmp(a->action, b->action) == 0);
		if (policy_action_parse(a->action, &v, &why) != 0)
			FUZZ_CHECK(why != NULL && v.kind == POLICY_DEFER);
		check_verdict(&v);
	}
	/* The action parser on the raw input too (NUL-terminated). */
	{
		char *s = malloc(size);
		memcpy(s, data + 1, size - 1);
		s[size - 1] = '\0';
		(void)policy_action_parse(s, &v, &why);
		check_verdict(&v);
		free(s);
	}
	free(a);
	free(b);
	return 0;
}
