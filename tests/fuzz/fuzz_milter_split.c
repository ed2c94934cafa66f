/*
 * Fuzz target for the message as milters are sent it (filter/milter_split.h):
 * the input after its first byte is a message, split once fed whole and
 * once in pieces whose size comes from the first byte; both must give the
 * same events. Checks what the milter client relies on: a header's name
 * is non-empty, printable, without a colon, and bounded with its value;
 * a body chunk is non-empty and at most MILTER_CHUNK_MAX bytes; the end
 * of headers comes once, before any body; the end comes once, last; the
 * body never holds more bytes than were given. Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/milter_proto.h"
#include "filter/milter_split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* A digest of the events (FNV-1a over their kinds and bytes). */
struct trace {
	uint64_t h;
	size_t body, headers;
	int eoh, end;
};

static void
mix(struct trace *t, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		t->h = (t->h ^ c[i]) * 1099511628211ULL;
}

static void
drain(struct milter_split *sp, struct trace *t)
{
	const char *name, *value, *data;
	size_t len;
	enum milter_split_ev ev;

	while ((ev = milter_split_next(sp, &name, &value, &data, &len)) !=
	    MILTER_SPLIT_NONE) {
		unsigned char k = (unsigned char)ev;

		FUZZ_CHECK(!t->end);
		mix(t, &k, 1);
		switch (ev) {
		case MILTER_SPLIT_HEADER:
			FUZZ_CHECK(!t->eoh && name[0] != '\0');
			for (const char *p = name; *p != '\0'; p++)
				FUZZ_CHECK((unsigned char)*p > 32 &&
				    (unsigned char)*p < 127 && *p != ':');
			FUZZ_CHECK(strlen(name) + 1 + strlen(value) <=
			    MILTER_HEADER_MAX);
			mix(t, name, strlen(name) + 1);
			mix(t, value, strlen(value) + 1);
			t->headers++;
			break;
		case MILTER_SPLIT_EOH:
			FUZZ_CHECK(!t->eoh);
			t->eoh = 1;
			break;
		case MILTER_SPLIT_BODY:
			FUZZ_CHECK(t->eoh && len > 0 && len <= MILTER_CHUNK_MAX);
			mix(t, data, len);
			t->body += len;
			break;
		case MILTER_SPLIT_END:
			FUZZ_CHECK(t->eoh);
			t->end = 1;
			break;
		case MILTER_SPLIT_NONE:
			break;
		}
	}
}

static struct trace
run(const uint8_t *in, size_t len, size_t piece)
{
	struct milter_split sp;
	struct trace t = { 14695981039346656037ULL, 0, 0, 0, 0 };

	milter_split_init(&sp);
	for (size_t off = 0; off < len; off += piece) {
		size_t n = len - off < piece ? len - off : piece;

		milter_split_feed(&sp, in + off, n);
		drain(&sp, &t);
	}
	milter_split_finish(&sp);
	drain(&sp, &t);
	FUZZ_CHECK(t.end && t.body <= len);
	milter_split_free(&sp);
	return t;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace a, b;

	if (size < 1)
		return 0;
	a = run(data + 1, size - 1, size);
	b = run(data + 1, size - 1, (size_t)data[0] % 29 + 1);
	FUZZ_CHECK(a.h == b.h && a.body == b.body && a.headers == b.headers);
	return 0;
}
