/*
 * Fuzz target for server/smtp_message: message assembly and the one-pass
 * header scan. Input: byte 0 picks DATA or BDAT, submission or not, and
 * the feeding pattern seed; byte 1 the size limit; the rest is content.
 * Checks: every feeding pattern gives the same verdict, and for an
 * accepted message the same facts and bytes;
 * the content equals what smtp_data_parser alone makes, except for the
 * submission headers, which sit exactly at header_end; the facts agree
 * with a slow line-by-line reference scan. Any disagreement aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "server/smtp_message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

struct fuzz_run {
	int rc;
	struct smtp_message_facts facts;
	char *bytes;
	size_t len;
};

static struct fuzz_run
fuzz_run(const struct smtp_message_info *info, const char *in, size_t len,
    unsigned mode, unsigned seed)
{
	struct smtp_message *m = smtp_message_new(info);
	struct fuzz_run r = { 0 };
	char reply[256];
	size_t off = 0;
	int done = 0;

	while (off < len && !done) {
		size_t n = len - off;

		if (mode == 1)
			n = 1;
		else if (mode == 2) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % (n < 13 ? n : 13);
		}
		off += smtp_message_feed(m, in + off, n, &done);
	}
	r.rc = smtp_message_finish(m, reply, sizeof reply);
	r.facts = *smtp_message_facts(m);
	if (r.rc == 0) {
		struct smtp_message_parts parts;

		smtp_message_take(m, &parts);
		FUZZ_CHECK(parts.staged == 0 && parts.tail == NULL);
		r.bytes = parts.head;
		r.len = parts.head_len;
	}
	smtp_message_free(&m);
	return r;
}

static int
fuzz_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

/* The reference scan over plain content: header lines up to the first
 * line that is not one. */
static void
fuzz_reference(const char *c, size_t n, unsigned *received, int *date,
    int *msgid)
{
	size_t i = 0;
	int any = 0;

	*received = 1;
	*date = *msgid = 0;
	while (i < n) {
		const char *lf = memchr(c + i, '\n', n - i);
		size_t end = lf ? (size_t)(lf - c) : n, k = i;

		if (c[i] == ' ' || c[i] == '\t') {
			if (!any)
				return;
		} else {
			while (k < end && fuzz_ftext((unsigned char)c[k]))
				k++;
			if (k == i)
				return;
			{
				size_t name = k - i;
				while (k < end && (c[k] == ' ' || c[k] == '\t'))
					k++;
				if (k >= end || c[k] != ':')
					return;
				any = 1;
				if (name == 8 && strncasecmp(c + i, "received", 8) == 0)
					(*received)++;
				if (name == 4 && strncasecmp(c + i, "date", 4) == 0)
					*date = 1;
				if (name == 10 && strncasecmp(c + i, "message-id", 10) == 0)
					*msgid = 1;
			}
		}
		if (lf == NULL)
			return;
		i = end + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_message_info info = {
		.id = 1, .helo = "h", .client_ip = "192.0.2.1",
		.hostname = "mx.test", .protocol = "ESMTP", .now = 0,
	};
	struct fuzz_run first, plain;
	struct smtp_data_parser dp;
	struct buf ref;
	const char *in;
	size_t len, hdr;
	int done = 0, sub;

	if (size < 2)
		return 0;
	info.mode = (data[0] & 1) ? SMTP_DATA_BDAT : SMTP_DATA_DOTTED;
	info.submission = sub = (data[0] & 2) != 0;
	info.max_size = data[1] == 255 ? 1 << 20 : (size_t)data[1] * 16;
	in = (const char *)data + 2;
	len = size - 2;

	first = fuzz_run(&info, in, len, 0, data[0]);
	for (unsigned mode = 1; mode < 3; mode++) {
		struct fuzz_run r = fuzz_run(&info, in, len, mode, data[0]);

		FUZZ_CHECK(r.rc == first.rc);
		/* A refused message may have stopped at a split-dependent
		 * point; only what is accepted must agree byte for byte. */
		FUZZ_CHECK(r.rc != 0 ||
		    memcmp(&r.facts, &first.facts, sizeof r.facts) == 0);
		FUZZ_CHECK(r.len == first.len &&
		    (r.len == 0 || memcmp(r.bytes, first.bytes, r.len) == 0));
		free(r.bytes);
	}
	if (first.rc != 0)
		goto out;

	/* The data parser alone gives the same content. */
	buf_init(&ref, 1 << 21);
	smtp_data_parser_init(&dp, info.mode, &ref, info.max_size);
	(void)smtp_data_parse(&dp, in, len, &done);
	if (info.mode == SMTP_DATA_BDAT)
		(void)smtp_data_finish(&dp);
	FUZZ_CHECK(dp.flags == 0);
	info.submission = 0;
	plain = fuzz_run(&info, in, len, 0, 0);
	FUZZ_CHECK(plain.rc == 0);
	hdr = plain.len - ref.len;
	FUZZ_CHECK(plain.len >= ref.len &&
	    memcmp(plain.bytes + hdr, ref.data ? ref.data : "", ref.len) == 0);
	FUZZ_CHECK(plain.facts.header_done);
	FUZZ_CHECK(plain.facts.header_end >= hdr && plain.facts.header_end <= plain.len);
	{
		unsigned received;
		int date, msgid;

		fuzz_reference(plain.bytes + hdr, ref.len, &received, &date, &msgid);
		FUZZ_CHECK(received == plain.facts.received);
		FUZZ_CHECK(date == plain.facts.has_date);
		FUZZ_CHECK(msgid == plain.facts.has_message_id);
	}
	/* Submission: the same bytes with the additions at header_end (and a
	 * CRLF that completes a last header line without one). */
	if (first.len != plain.len) {
		size_t at = plain.facts.header_end, add_at = first.facts.header_end, extra;

		FUZZ_CHECK(first.len > plain.len);
		FUZZ_CHECK(memcmp(first.bytes, plain.bytes, at) == 0);
		FUZZ_CHECK(add_at == at || (add_at == at + 2 && at == plain.len &&
		    memcmp(first.bytes + at, "\r\n", 2) == 0));
		extra = first.len - plain.len - (add_at - at);
		FUZZ_CHECK(extra > 0);
		FUZZ_CHECK(memcmp(first.bytes + add_at + extra, plain.bytes + at,
		    plain.len - at) == 0);
		FUZZ_CHECK(memcmp(first.bytes + add_at, "Date: ", 6) == 0 ||
		    memcmp(first.bytes + add_at, "Message-ID: <", 13) == 0);
	} else {
		FUZZ_CHECK(!sub || (first.facts.has_date &&
		    first.facts.has_message_id));
	}
	free(plain.bytes);
	buf_free(&ref);
out:
	free(first.bytes);
	return 0;
}
