/*
 * Fuzz target for server/smtp_parser: command lines and DATA / BDAT
 * content. Input: byte 0 picks the parser and the feeding pattern, byte 1
 * the limit, the rest is what the client sends. Each input is fed in one
 * block, one byte at a time and in slices; all must agree, and must agree
 * with a slow, obviously-correct reference written here from the contract.
 * Any disagreement aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "server/smtp_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)
#define FUZZ_TRACE_MAX (1u << 24)

enum fuzz_feed { FEED_BLOCK, FEED_BYTES, FEED_SLICES, FEED_MODES };

static size_t
fuzz_chunk(enum fuzz_feed mode, unsigned *seed, size_t left)
{
	if (mode == FEED_BLOCK)
		return left;
	if (mode == FEED_BYTES)
		return 1;
	*seed = *seed * 1103515245u + 12345u;
	return 1 + (*seed >> 16) % (left < 13 ? left : 13);
}

/* Command parser: "R<line>|", "L|", "E|" per result. */
static void
fuzz_cmd_trace(size_t max_line, const char *in, size_t len,
    enum fuzz_feed mode, unsigned seed, struct buf *trace)
{
	struct smtp_cmd_parser p;
	size_t off = 0;

	smtp_cmd_parser_init(&p, max_line);
	buf_reset(trace);
	while (off < len) {
		size_t avail = fuzz_chunk(mode, &seed, len - off);
		size_t pos = 0;

		while (pos < avail) {
			enum smtp_cmd_result res;
			size_t n = smtp_cmd_parse(&p, in + off + pos,
			    avail - pos, &res);

			FUZZ_CHECK(n <= avail - pos);
			FUZZ_CHECK(p.len + 2 <= p.max_line);
			pos += n;
			if (res == SMTP_CMD_NEED_MORE) {
				FUZZ_CHECK(pos == avail);
				break;
			}
			FUZZ_CHECK(n > 0);
			if (res == SMTP_CMD_READY) {
				const char *arg;
				int http;

				FUZZ_CHECK(strlen(p.line) == p.len);
				FUZZ_CHECK(memchr(p.line, '\r', p.len) == NULL);
				FUZZ_CHECK(memchr(p.line, '\n', p.len) == NULL);
				(void)smtp_cmd_verb(p.line, &arg, &http);
				FUZZ_CHECK(arg == NULL ||
				    (arg >= p.line && arg <= p.line + p.len));
				FUZZ_CHECK(buf_puts(trace, "R") == 0);
				FUZZ_CHECK(buf_append(trace, p.line, p.len) == 0);
				FUZZ_CHECK(buf_puts(trace, "|") == 0);
			} else if (res == SMTP_CMD_TOO_LONG) {
				FUZZ_CHECK(buf_puts(trace, "L|") == 0);
			} else {
				FUZZ_CHECK(res == SMTP_CMD_BARE_EOL);
				FUZZ_CHECK(buf_puts(trace, "E|") == 0);
			}
		}
		off += avail;
	}
	smtp_cmd_parser_free(&p);
}

/* The contract, line by line: a line runs through its LF. */
static void
fuzz_cmd_reference(size_t max_line, const char *in, size_t len,
    struct buf *trace)
{
	size_t off = 0;

	buf_reset(trace);
	while (off < len) {
		const char *lf = memchr(in + off, '\n', len - off);
		size_t l = lf ? (size_t)(lf - (in + off)) : len - off;
		const char *line = in + off;
		int crlf = l > 0 && line[l - 1] == '\r';
		size_t stored = l - (crlf ? 1 : 0);

		if (stored + 2 > max_line)
			FUZZ_CHECK(buf_puts(trace, "L|") == 0);
		else if (lf == NULL)
			;	/* incomplete */
		else if (!crlf || memchr(line, '\r', stored) != NULL ||
		    memchr(line, '\0', stored) != NULL)
			FUZZ_CHECK(buf_puts(trace, "E|") == 0);
		else {
			FUZZ_CHECK(buf_puts(trace, "R") == 0);
			FUZZ_CHECK(buf_append(trace, line, stored) == 0);
			FUZZ_CHECK(buf_puts(trace, "|") == 0);
		}
		off += l + (lf ? 1 : 0);
	}
}

static void
fuzz_cmd(size_t max_line, const char *in, size_t len, unsigned seed)
{
	struct buf ref, got;

	buf_init(&ref, FUZZ_TRACE_MAX);
	buf_init(&got, FUZZ_TRACE_MAX);
	fuzz_cmd_reference(max_line < 2 ? 2 : max_line, in, len, &ref);
	buf_puts(&ref, "");
	for (int m = 0; m < FEED_MODES; m++) {
		fuzz_cmd_trace(max_line, in, len, (enum fuzz_feed)m, seed, &got);
		buf_puts(&got, "");
		FUZZ_CHECK(got.len == ref.len &&
		    memcmp(got.data, ref.data, got.len) == 0);
	}
	buf_free(&ref);
	buf_free(&got);
}

struct fuzz_data_result {
	size_t consumed;
	int done;
	unsigned flags;
};

static struct fuzz_data_result
fuzz_data_run(enum smtp_data_mode dmode, size_t max_size, const char *in,
    size_t len, enum fuzz_feed mode, unsigned seed, struct buf *out)
{
	struct smtp_data_parser p;
	struct fuzz_data_result r = { 0, 0, 0 };

	buf_free(out);
	buf_init(out, max_size);
	smtp_data_parser_init(&p, dmode, out, max_size);
	while (r.consumed < len && !r.done) {
		size_t avail = fuzz_chunk(mode, &seed, len - r.consumed);
		size_t n = smtp_data_parse(&p, in + r.consumed, avail, &r.done);

		FUZZ_CHECK(n <= avail);
		FUZZ_CHECK(r.done || n == avail);
		FUZZ_CHECK(out->len <= max_size);
		r.consumed += n;
	}
	r.flags = dmode == SMTP_DATA_BDAT ? smtp_data_finish(&p) : p.flags;
	return r;
}

/* Reference DATA/BDAT reader: lines are found by searching for CRLF. */
struct fuzz_ref {
	size_t consumed;
	int done;
	int bare_cr, bare_lf, nul, long_line;
	struct buf out;		/* unlimited content */
};

static void
fuzz_ref_line(struct fuzz_ref *r, const char *line, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (line[k] == '\r')
			r->bare_cr = 1;
		else if (line[k] == '\n')
			r->bare_lf = 1;
		else if (line[k] == '\0')
			r->nul = 1;
	}
	if (n + 2 > SMTP_TEXT_LINE_MAX)
		r->long_line = 1;
}

static void
fuzz_data_reference(enum smtp_data_mode dmode, const char *in, size_t len,
    struct fuzz_ref *r)
{
	size_t off = 0;

	r->consumed = 0;
	r->done = 0;
	r->bare_cr = r->bare_lf = r->nul = r->long_line = 0;
	buf_init(&r->out, FUZZ_TRACE_MAX);
	while (off < len) {
		const char *crlf = memmem(in + off, len - off, "\r\n", 2);
		const char *line = in + off;
		size_t n;

		if (crlf == NULL) {
			/* Unterminated: a trailing CR is still pending. */
			n = len - off;
			if (n > 0 && line[n - 1] == '\r' &&
			    dmode == SMTP_DATA_DOTTED)
				n--;
			if (dmode == SMTP_DATA_DOTTED && n > 0 &&
			    line[0] == '.') {
				line++;
				n--;
			}
			fuzz_ref_line(r, line, n);
			FUZZ_CHECK(buf_append(&r->out, line, n) == 0);
			off = len;
			break;
		}
		n = (size_t)(crlf - line);
		if (dmode == SMTP_DATA_DOTTED && n == 1 && line[0] == '.') {
			off += 3;
			r->done = 1;
			break;
		}
		if (dmode == SMTP_DATA_DOTTED && n > 0 && line[0] == '.') {
			line++;
			n--;
		}
		fuzz_ref_line(r, line, n);
		FUZZ_CHECK(buf_append(&r->out, line, n) == 0);
		FUZZ_CHECK(buf_append(&r->out, "\r\n", 2) == 0);
		off = (size_t)(crlf - in) + 2;
	}
	r->consumed = off;
}

static void
fuzz_data(enum smtp_data_mode dmode, size_t max_size, const char *in,
    size_t len, unsigned seed)
{
	struct buf out, first;
	struct fuzz_data_result r0 = { 0, 0, 0 };
	struct fuzz_ref ref;
	unsigned want_bare;

	buf_init(&out, 0);
	buf_init(&first, FUZZ_TRACE_MAX);
	for (int m = 0; m < FEED_MODES; m++) {
		struct fuzz_data_result r = fuzz_data_run(dmode, max_size, in,
		    len, (enum fuzz_feed)m, seed, &out);

		if (m == 0) {
			r0 = r;
			FUZZ_CHECK(buf_append(&first, out.data ? out.data : "",
			    out.len) == 0);
			continue;
		}
		FUZZ_CHECK(r.consumed == r0.consumed && r.done == r0.done &&
		    r.flags == r0.flags);
		if (r.flags == 0)
			FUZZ_CHECK(out.len == first.len && (out.len == 0 ||
			    memcmp(out.data, first.data, out.len) == 0));
	}

	fuzz_data_reference(dmode, in, len, &ref);
	FUZZ_CHECK(ref.consumed == r0.consumed && ref.done == r0.done);
	if (dmode == SMTP_DATA_BDAT || ref.done) {
		/* Every line is complete (or finished): flags are final. */
		want_bare = ref.bare_cr || ref.bare_lf ||
		    (dmode == SMTP_DATA_BDAT && len > 0 && in[len - 1] == '\r');
		FUZZ_CHECK(!!(r0.flags & SMTP_DATA_BARE_EOL) == !!want_bare);
		FUZZ_CHECK(!!(r0.flags & SMTP_DATA_NUL) == !!ref.nul);
		if (!ref.bare_lf)
			FUZZ_CHECK(!!(r0.flags & SMTP_DATA_LONG_LINE) ==
			    !!ref.long_line);
		if (!want_bare && !ref.nul && !ref.long_line)
			FUZZ_CHECK(!!(r0.flags & SMTP_DATA_TOO_BIG) ==
			    (ref.out.len > max_size));
	}
	if (r0.flags == 0) {
		FUZZ_CHECK(first.len == ref.out.len && (first.len == 0 ||
		    memcmp(first.data, ref.out.data, first.len) == 0));
		FUZZ_CHECK(first.len <= max_size);
	}
	buf_free(&ref.out);
	buf_free(&out);
	buf_free(&first);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in;
	size_t len, limit;
	unsigned sel;

	if (size < 2)
		return 0;
	sel = data[0];
	limit = data[1];
	in = (const char *)data + 2;
	len = size - 2;
	switch (sel % 3) {
	case 0:
		fuzz_cmd(limit == 255 ? SMTP_COMMAND_LINE_MAX : limit, in, len,
		    sel);
		break;
	case 1:
		fuzz_data(SMTP_DATA_DOTTED, limit == 255 ? 1 << 20 : limit * 8,
		    in, len, sel);
		break;
	default:
		fuzz_data(SMTP_DATA_BDAT, limit == 255 ? 1 << 20 : limit * 8,
		    in, len, sel);
		break;
	}
	return 0;
}
