/*
 * Fuzz target for the reply parser of the outbound SMTP client
 * (relay/relay_proto.h): the input is what a hostile server sends. It is
 * fed twice, in one block and in pieces whose sizes come from the first
 * byte, keeping what the parser did not consume, as relay/relay_conn.c
 * does. Checks what callers rely on: both ways give the same outcome,
 * code and text; a done reply has a code 200..599, at least one line,
 * at most RELAY_REPLY_LINES_MAX lines, printable text within bounds, an
 * enhanced code of the reply's class or none; the one-line form is
 * printable and bounded; EHLO capability parsing works on any reply; an
 * error has a reason. Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/relay_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* Parses replies one after another, as a pipelined conversation; returns
 * the outcome of the last one and leaves it in r. */
static int
fuzz_parse(const char *in, size_t len, size_t piece, struct relay_reply *r,
    size_t *nreplies_r)
{
	char *pend = malloc(len + 1);
	size_t plen = 0, off = 0, used;
	int rc = RELAY_REPLY_MORE;

	*nreplies_r = 0;
	relay_reply_init(r);
	while (off < len) {
		size_t n = len - off < piece ? len - off : piece;

		memcpy(pend + plen, in + off, n);
		plen += n;
		off += n;
		/* Consume every complete reply buffered so far. */
		for (int guard = 0; guard < 1000000 && plen > 0; guard++) {
			rc = relay_reply_feed(r, pend, plen, &used);
			FUZZ_CHECK(used <= plen);
			memmove(pend, pend + used, plen - used);
			plen -= used;
			if (rc == RELAY_REPLY_ERROR) {
				free(pend);
				return rc;
			}
			if (rc == RELAY_REPLY_MORE) {
				/* Whatever is left is shorter than a line. */
				FUZZ_CHECK(plen < RELAY_REPLY_LINE_MAX + 2);
				FUZZ_CHECK(memchr(pend, '\n', plen) == NULL);
				break;
			}
			(*nreplies_r)++;
			FUZZ_CHECK(used > 0);
			if (plen > 0 || off < len)
				relay_reply_init(r);
		}
	}
	free(pend);
	return rc;
}

static void
fuzz_check_reply(const struct relay_reply *r)
{
	char line[600];
	struct relay_caps caps;
	size_t n;

	FUZZ_CHECK(r->code >= 200 && r->code <= 559);
	FUZZ_CHECK(r->nlines >= 1 && r->nlines <= RELAY_REPLY_LINES_MAX);
	FUZZ_CHECK(r->text_len <= RELAY_REPLY_TEXT_MAX);
	FUZZ_CHECK(strlen(r->text) == r->text_len);
	for (size_t i = 0; i < r->text_len; i++)
		FUZZ_CHECK(r->text[i] == '\n' ||
		    (r->text[i] >= 0x20 && r->text[i] < 0x7f));
	if (r->esc[0] != '\0') {
		FUZZ_CHECK(r->esc[0] == '0' + r->code / 100);
		FUZZ_CHECK(r->esc[1] == '.');
		FUZZ_CHECK(strlen(r->esc) <= 9);
	}
	relay_reply_oneline(r, line, sizeof line);
	n = strlen(line);
	FUZZ_CHECK(n < sizeof line && n >= 3);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(line[i] >= 0x20 && line[i] < 0x7f);
	relay_caps_parse(r, &caps);
	FUZZ_CHECK((caps.flags & ~0x3fu) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_reply *a, *b;
	size_t piece, na, nb;
	int rca, rcb;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	a = malloc(sizeof *a);
	b = malloc(sizeof *b);
	rca = fuzz_parse((const char *)data, size, size ? size : 1, a, &na);
	rcb = fuzz_parse((const char *)data, size, piece, b, &nb);
	FUZZ_CHECK(rca == rcb);
	FUZZ_CHECK(na == nb);
	if (rca == RELAY_REPLY_ERROR) {
		FUZZ_CHECK(a->error != NULL && b->error != NULL);
	} else if (na > 0 && rca == RELAY_REPLY_DONE) {
		fuzz_check_reply(a);
		fuzz_check_reply(b);
		FUZZ_CHECK(a->code == b->code);
		FUZZ_CHECK(strcmp(a->text, b->text) == 0);
		FUZZ_CHECK(strcmp(a->esc, b->esc) == 0);
	}
	free(a);
	free(b);
	return 0;
}
