/*
 * Fuzz target for lib/metrics's inputs from outside: the input, up to its
 * first NUL, is an HTTP Accept header for metrics_format_from_accept
 * (which must answer one of the two formats); then, split at newlines, it
 * gives the label values of the top-N gauge, and the rendering must stay
 * printable ASCII lines (escaped label values cannot break a line or a
 * quote) in both formats. Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static const uint8_t *fuzz_data;
static size_t fuzz_size;

static size_t
fuzz_top(struct metrics_sample *out, size_t max, void *arg)
{
	size_t n = 0, pos = 0;

	(void)arg;
	while (n < max && pos < fuzz_size) {
		size_t len = 0;
		while (pos < fuzz_size && fuzz_data[pos] != '\n' &&
		    len < sizeof out[n].label - 1)
			out[n].label[len++] = (char)fuzz_data[pos++];
		out[n].label[len] = '\0';
		out[n].value = (double)len;
		n++;
		pos++;
	}
	return n;
}

static void
fuzz_render(enum metrics_format fmt)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	FUZZ_CHECK(metrics_render(&b, fmt) == 0);
	for (size_t i = 0; i < b.len; i++) {
		unsigned char c = (unsigned char)b.data[i];
		FUZZ_CHECK(c == '\n' || (c >= 0x20 && c < 0x7f));
	}
	/* Each sample line of the gauge ends its label value with '"}'. */
	for (const char *p = b.data; (p = strstr(p, "mailserver_destination_concurrency{")) != NULL;) {
		const char *end = strchr(p, '\n');
		FUZZ_CHECK(end != NULL);
		FUZZ_CHECK(strstr(p, "\"} ") != NULL && strstr(p, "\"} ") < end);
		p = end;
	}
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	enum metrics_format f;

	if (size > 1 << 16)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	f = metrics_format_from_accept(text);
	FUZZ_CHECK(f == METRICS_TEXT || f == METRICS_OPENMETRICS);
	free(text);

	fuzz_data = data;
	fuzz_size = size;
	metrics_top_callback(M_DESTINATION_CONCURRENCY, fuzz_top, NULL);
	fuzz_render(METRICS_TEXT);
	fuzz_render(METRICS_OPENMETRICS);
	metrics_top_callback(M_DESTINATION_CONCURRENCY, NULL, NULL);
	return 0;
}
