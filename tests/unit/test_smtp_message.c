/*
 * Unit tests of server/smtp_message: the Received header, content taken in
 * pieces (one block, one byte at a time, pseudo-random slices: all must
 * give the same bytes and facts), the one-pass header scan (Received count,
 * Date, Message-ID, the end of the header section), the submission headers
 * inserted there, and the end-of-data verdicts. Hostile input: endless
 * header lines, no empty line, hop floods, headers split at every byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "server/smtp_message.h"

#define S(lit) lit, sizeof(lit) - 1

enum feed_mode { FEED_BLOCK, FEED_BYTES, FEED_SLICES, FEED_MODES };

static size_t
feed_chunk(enum feed_mode mode, unsigned *seed, size_t left)
{
	if (mode == FEED_BLOCK)
		return left;
	if (mode == FEED_BYTES)
		return 1;
	*seed = *seed * 1103515245u + 12345u;
	return 1 + (*seed >> 16) % (left < 11 ? left : 11);
}

struct run {
	int rc;			/* smtp_message_finish */
	char reply[256];
	struct smtp_message_facts facts;
	char *bytes;		/* the whole message */
	size_t len;
	size_t consumed;
	int done;
};

static void
run_free(struct run *r)
{
	free(r->bytes);
	r->bytes = NULL;
}

static struct smtp_message_info
info_default(int submission, enum smtp_data_mode mode, size_t max)
{
	struct smtp_message_info info = {
		.id = 0x123456789ABCDULL,
		.helo = "client.test",
		.client_ip = "192.0.2.7",
		.hostname = "mx.test",
		.protocol = "ESMTP",
		.submission = submission,
		.max_size = max,
		.mode = mode,
		.now = 1700000000,
	};
	return info;
}

/* Feeds in[0..len) as one DATA stream or one BDAT chunk. */
static struct run
run_message(const struct smtp_message_info *info, const char *in, size_t len,
    enum feed_mode mode)
{
	struct smtp_message *m = smtp_message_new(info);
	struct run r;
	unsigned seed = 5;

	memset(&r, 0, sizeof r);
	while (r.consumed < len && !r.done) {
		size_t n = feed_chunk(mode, &seed, len - r.consumed);
		size_t used = smtp_message_feed(m, in + r.consumed, n, &r.done);

		CU_ASSERT_FATAL(used <= n);
		if (!r.done)
			CU_ASSERT_EQUAL(used, n);
		r.consumed += used;
	}
	r.rc = smtp_message_finish(m, r.reply, sizeof r.reply);
	r.facts = *smtp_message_facts(m);
	if (r.rc == 0) {
		struct smtp_message_parts parts;

		smtp_message_take(m, &parts);
		/* Without a stager the message stays whole in one buffer. */
		CU_ASSERT(parts.staged == 0 && parts.tail == NULL);
		CU_ASSERT_EQUAL(parts.size, parts.head_len);
		r.bytes = parts.head;
		r.len = parts.head_len;
	}
	smtp_message_free(&m);
	CU_ASSERT_PTR_NULL(m);
	return r;
}

/* The content after our Received header (which ends at its first "\r\n"
 * not followed by a tab). */
static const char *
after_received(const struct run *r)
{
	const char *p = r->bytes;

	for (;;) {
		p = strstr(p, "\r\n");
		if (p == NULL)
			return NULL;
		p += 2;
		if (*p != '\t')
			return p;
	}
}

struct msg_case {
	const char *in;
	size_t len;
	enum smtp_data_mode mode;
	int submission;
	int rc;
	const char *reply;	/* prefix, when rc < 0 */
	const char *content;	/* after our Received header, when rc == 0 */
	unsigned received;
	int date, msgid, header_done;
};

#define DOT SMTP_DATA_DOTTED
#define BDAT SMTP_DATA_BDAT
#define ADDED "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <123456789ABCD@mx.test>\r\n"
#define ADD_DATE "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
#define ADD_ID "Message-ID: <123456789ABCD@mx.test>\r\n"

static const struct msg_case msg_cases[] = {
	/* Plain relay mail: nothing added, facts learned. */
	{ S("Subject: x\r\n\r\nbody\r\n.\r\n"), DOT, 0, 0, NULL,
	  "Subject: x\r\n\r\nbody\r\n", 1, 0, 0, 1 },
	{ S("Received: a\r\nreceived: b\r\nRECEIVED : c\r\nDate: d\r\n"
	    "Message-Id: <e>\r\n\r\nReceived: in body\r\n.\r\n"), DOT, 0, 0, NULL,
	  "Received: a\r\nreceived: b\r\nRECEIVED : c\r\nDate: d\r\n"
	  "Message-Id: <e>\r\n\r\nReceived: in body\r\n", 4, 1, 1, 1 },
	/* Submission: the missing fields go before the empty line. */
	{ S("Subject: x\r\n\r\nbody\r\n.\r\n"), DOT, 1, 0, NULL,
	  "Subject: x\r\n" ADDED "\r\nbody\r\n", 1, 0, 0, 1 },
	{ S("Subject: x\r\nDate: now\r\n\r\nbody\r\n.\r\n"), DOT, 1, 0, NULL,
	  "Subject: x\r\nDate: now\r\n" ADD_ID "\r\nbody\r\n", 1, 1, 0, 1 },
	{ S("Message-ID: <m@x>\r\n\r\n.\r\n"), DOT, 1, 0, NULL,
	  "Message-ID: <m@x>\r\n" ADD_DATE "\r\n", 1, 0, 1, 1 },
	{ S("Date: a\r\nMessage-ID: <b>\r\n\r\nx\r\n.\r\n"), DOT, 1, 0, NULL,
	  "Date: a\r\nMessage-ID: <b>\r\n\r\nx\r\n", 1, 1, 1, 1 },
	/* Folded fields: continuation lines belong to the header. */
	{ S("Subject: a\r\n b\r\n\tc\r\nTo: x\r\n\r\n.\r\n"), DOT, 1, 0, NULL,
	  "Subject: a\r\n b\r\n\tc\r\nTo: x\r\n" ADDED "\r\n", 1, 0, 0, 1 },
	/* No empty line: the first body line ends the header section. */
	{ S("Subject: x\r\nhello world\r\n.\r\n"), DOT, 1, 0, NULL,
	  "Subject: x\r\n" ADDED "hello world\r\n", 1, 0, 0, 1 },
	{ S("no header at all\r\n.\r\n"), DOT, 1, 0, NULL,
	  ADDED "no header at all\r\n", 1, 0, 0, 1 },
	{ S(" leading blank\r\n.\r\n"), DOT, 0, 0, NULL,
	  " leading blank\r\n", 1, 0, 0, 1 },
	{ S(":no name\r\n.\r\n"), DOT, 0, 0, NULL, ":no name\r\n", 1, 0, 0, 1 },
	/* Only header, then the end: added at the end. */
	{ S("Subject: x\r\n.\r\n"), DOT, 1, 0, NULL,
	  "Subject: x\r\n" ADDED, 1, 0, 0, 1 },
	{ S(".\r\n"), DOT, 1, 0, NULL, ADDED, 1, 0, 0, 1 },
	{ S(".\r\n"), DOT, 0, 0, NULL, "", 1, 0, 0, 1 },
	/* Dot-stuffing is undone before the scan. */
	{ S("..Date: x\r\n\r\n.\r\n"), DOT, 0, 0, NULL, ".Date: x\r\n\r\n",
	  1, 0, 0, 1 },
	/* BDAT: a last line without CRLF gets one before the additions. */
	{ S("Subject: x"), BDAT, 1, 0, NULL, "Subject: x\r\n" ADDED, 1, 0, 0, 1 },
	{ S("Subject: x"), BDAT, 0, 0, NULL, "Subject: x", 1, 0, 0, 1 },
	{ S("Subject: x\r\n\r\na\r\n.\r\nb"), BDAT, 1, 0, NULL,
	  "Subject: x\r\n" ADDED "\r\na\r\n.\r\nb", 1, 0, 0, 1 },
	/* Refusals, and nothing is added to a refused message. */
	{ S("Subject: x\r\n\r\nbare\nlf\r\n.\r\n"), DOT, 1, -1, "550 5.5.2",
	  NULL, 1, 0, 0, 1 },
	{ S("Subject: \0x\r\n\r\n.\r\n"), DOT, 0, -1, "550 5.6.0", NULL, 1, 0, 0, 0 },
	{ S("a\r\nb"), BDAT, 0, 0, NULL, "a\r\nb", 1, 0, 0, 1 },
	{ S("a\r\nb\r"), BDAT, 0, -1, "550 5.5.2", NULL, 1, 0, 0, 1 },
};

static void
test_message_table(void)
{
	for (size_t i = 0; i < sizeof msg_cases / sizeof msg_cases[0]; i++) {
		const struct msg_case *c = &msg_cases[i];
		struct smtp_message_info info = info_default(c->submission, c->mode, 1000);

		for (int m = 0; m < FEED_MODES; m++) {
			struct run r = run_message(&info, c->in, c->len, (enum feed_mode)m);
			int ok = r.rc == c->rc && r.facts.received == c->received &&
			    r.facts.has_date == c->date &&
			    r.facts.has_message_id == c->msgid &&
			    r.facts.header_done == c->header_done;

			if (ok && c->rc < 0)
				ok = strncmp(r.reply, c->reply, strlen(c->reply)) == 0;
			if (ok && c->rc == 0) {
				const char *content = after_received(&r);
				size_t clen = content ? r.len - (size_t)(content - r.bytes) : 0;

				ok = content != NULL && clen == strlen(c->content) &&
				    memcmp(content, c->content, clen) == 0 &&
				    r.facts.header_end <= r.len;
			}
			if (!ok) {
				fprintf(stderr, "\nmessage case %zu mode %d: rc %d (%s) "
				    "received %u date %d msgid %d done %d\n%.*s\n", i, m,
				    r.rc, r.reply, r.facts.received, r.facts.has_date,
				    r.facts.has_message_id, r.facts.header_done,
				    (int)r.len, r.bytes ? r.bytes : "");
				CU_FAIL("message case differs");
			}
			run_free(&r);
		}
	}
}

/* Our Received header: names, TLS, the one recipient, an IPv6 literal. */
static void
test_received_header(void)
{
	struct smtp_message_info info = info_default(0, DOT, 1000);
	struct run r;

	info.client_name = "mail.client.example";
	info.tls = "TLS1.3 with cipher X (256/256 bits)";
	info.rcpt = "bob@mx.test";
	info.protocol = "ESMTPS";
	r = run_message(&info, S(".\r\n"), FEED_BLOCK);
	CU_ASSERT_EQUAL_FATAL(r.rc, 0);
	CU_ASSERT_STRING_EQUAL(r.bytes,
	    "Received: from client.test (mail.client.example [192.0.2.7])\r\n"
	    "\tby mx.test (mailserver) with ESMTPS id 123456789ABCD\r\n"
	    "\t(using TLS1.3 with cipher X (256/256 bits))\r\n"
	    "\tfor <bob@mx.test>; Tue, 14 Nov 2023 22:13:20 +0000\r\n");
	run_free(&r);

	info = info_default(0, DOT, 1000);
	info.client_ip = "2001:db8::7";
	r = run_message(&info, S(".\r\n"), FEED_BLOCK);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.bytes, "from client.test ([IPv6:2001:db8::7])\r\n"));
	CU_ASSERT_PTR_NULL(strstr(r.bytes, "(using"));
	CU_ASSERT_PTR_NULL(strstr(r.bytes, "for <"));
	run_free(&r);
}

/* The hop limit counts ours too: 49 in the message pass, 50 do not. */
static void
test_hops(void)
{
	struct buf in;
	struct run r;

	for (int hops = 48; hops <= 51; hops++) {
		struct smtp_message_info info = info_default(0, DOT, 1 << 20);

		buf_init(&in, 1 << 20);
		for (int i = 0; i < hops; i++)
			buf_printf(&in, "Received: from h%d by h%d; date\r\n", i, i);
		buf_puts(&in, "Subject: loop\r\n\r\nReceived: not a header\r\n.\r\n");
		for (int m = 0; m < FEED_MODES; m++) {
			r = run_message(&info, in.data, in.len, (enum feed_mode)m);
			CU_ASSERT_EQUAL(r.facts.received, (unsigned)hops + 1);
			if (hops + 1 > SMTP_MESSAGE_MAX_HOPS) {
				CU_ASSERT_EQUAL(r.rc, -1);
				CU_ASSERT(strncmp(r.reply, "554 5.4.6", 9) == 0);
			} else {
				CU_ASSERT_EQUAL(r.rc, 0);
			}
			run_free(&r);
		}
		buf_free(&in);
	}
}

/* Hostile: size limit exactly, a header line of 100 KB (too long for a
 * line, refused), 10,000 header fields without an empty line. */
static void
test_hostile(void)
{
	struct smtp_message_info info = info_default(1, DOT, 20);
	struct buf in;
	struct run r;

	/* 20 content bytes exactly: fits, and the additions do not count. */
	r = run_message(&info, S("Subject: 0123456\r\n\r\n.\r\n"), FEED_BYTES);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.facts.content, 20);
	CU_ASSERT_PTR_NOT_NULL(r.bytes && strstr(r.bytes, "Message-ID: <"));
	run_free(&r);
	r = run_message(&info, S("Subject: 01234567\r\n\r\n.\r\n"), FEED_SLICES);
	CU_ASSERT_EQUAL(r.rc, -1);
	CU_ASSERT(strncmp(r.reply, "552 5.3.4", 9) == 0);
	run_free(&r);

	buf_init(&in, 1 << 20);
	buf_puts(&in, "X-Long: ");
	for (int i = 0; i < 100000; i++)
		buf_puts(&in, "y");
	buf_puts(&in, "\r\n\r\n.\r\n");
	info = info_default(0, DOT, 1 << 20);
	r = run_message(&info, in.data, in.len, FEED_SLICES);
	CU_ASSERT_EQUAL(r.rc, -1);
	CU_ASSERT_EQUAL(r.consumed, in.len);
	run_free(&r);
	buf_free(&in);

	buf_init(&in, 1 << 22);
	for (int i = 0; i < 10000; i++)
		buf_printf(&in, "X-%d: v\r\n", i);
	buf_puts(&in, ".\r\n");
	info = info_default(1, DOT, 1 << 22);
	for (int m = 0; m < FEED_MODES; m++) {
		r = run_message(&info, in.data, in.len, (enum feed_mode)m);
		CU_ASSERT_EQUAL(r.rc, 0);
		CU_ASSERT_EQUAL(r.facts.received, 1);
		CU_ASSERT(r.facts.header_done);
		/* the additions close the message */
		CU_ASSERT(r.len > strlen(ADD_ID) &&
		    strcmp(r.bytes + r.len - strlen(ADD_ID), ADD_ID) == 0);
		run_free(&r);
	}
	buf_free(&in);
}

/* ---- staging ---- */

/* A stager standing in for the session and the committer: records are
 * kept as they come, handed back in order when the test says so, and
 * the reserve is a fixed budget. */
#define FAKE_RECS 64
struct fake {
	struct smtp_message_stager st;
	struct smtp_message *m;
	struct buf recs[4096];		/* record n at recs[n] */
	uint32_t nrecs;
	struct smtp_message_rec *out[FAKE_RECS];	/* with "the committer" */
	size_t nout;
	size_t reserved, budget, peak;
	size_t deep_budget;		/* reserve_deep's total (fake_deep_on) */
	uint32_t fail_at;		/* this record is refused (COMMIT_FULL) */
};

static void
fake_stage(void *arg, struct smtp_message *m, struct smtp_message_rec *rec,
    uint32_t chunk, const char *data, size_t len)
{
	struct fake *f = arg;

	CU_ASSERT_FATAL(chunk == f->nrecs + 1 && chunk < 4096);
	CU_ASSERT(len >= 1 && len <= RECORD_CHUNK_MAX);
	f->m = m;
	f->nrecs = chunk;
	buf_init(&f->recs[chunk], RECORD_CHUNK_MAX);
	buf_append(&f->recs[chunk], data, len);
	CU_ASSERT_FATAL(f->nout < FAKE_RECS);
	f->out[f->nout++] = rec;
}

static int
fake_reserve(void *arg, size_t n)
{
	struct fake *f = arg;

	if (f->reserved + n > f->budget)
		return 0;
	f->reserved += n;
	if (f->reserved > f->peak)
		f->peak = f->reserved;
	return 1;
}

static void
fake_release(void *arg, size_t n)
{
	struct fake *f = arg;

	CU_ASSERT_FATAL(n <= f->reserved);
	f->reserved -= n;
}

static int
fake_reserve_deep(void *arg, size_t n)
{
	struct fake *f = arg;

	if (f->reserved + n > f->deep_budget)
		return 0;
	return fake_reserve(arg, n);
}

static void
fake_init(struct fake *f, size_t budget)
{
	memset(f, 0, sizeof *f);
	f->st.stage = fake_stage;
	f->st.reserve = fake_reserve;
	f->st.release = fake_release;
	f->st.arg = f;
	f->budget = budget;
}

/* Hands back the oldest n records (all when n is 0). */
static void
fake_return(struct fake *f, size_t n)
{
	if (n == 0 || n > f->nout)
		n = f->nout;
	for (size_t i = 0; i < n; i++) {
		uint32_t chunk = f->nrecs - (uint32_t)f->nout + 1;

		smtp_message_staged(f->m, f->out[i], chunk == f->fail_at ?
		    COMMIT_FULL : COMMIT_OK);
		f->out[i] = NULL;
		f->nout--;
		memmove(f->out, f->out + 1, f->nout * sizeof *f->out);
		i--;
		n--;
	}
}

static void
fake_free(struct fake *f)
{
	for (uint32_t i = 1; i <= f->nrecs; i++)
		buf_free(&f->recs[i]);
}

struct staged_run {
	struct run r;
	uint32_t staged;
	enum commit_status status;
};

/* As run_message, through a stager: the committer is slow (a record comes
 * back only when the message blocks, one at a time); then the records
 * are put together again. */
static struct staged_run
run_staged(struct smtp_message_info *info, struct fake *f, const char *in,
    size_t len, enum feed_mode mode)
{
	struct smtp_message *m;
	struct staged_run sr;
	unsigned seed = 9;

	memset(&sr, 0, sizeof sr);
	info->stager = &f->st;
	m = smtp_message_new(info);
	CU_ASSERT_FATAL(m != NULL);
	f->m = m;
	while (sr.r.consumed < len && !sr.r.done) {
		size_t n = feed_chunk(mode, &seed, len - sr.r.consumed), used;

		if (mode == FEED_SLICES)
			n = n * 997;	/* larger slices: a message of MiBs */
		if (n > len - sr.r.consumed)
			n = len - sr.r.consumed;
		used = smtp_message_feed(m, in + sr.r.consumed, n, &sr.r.done);
		CU_ASSERT_FATAL(used <= n);
		if (used < n && !sr.r.done) {
			/* only a message with every buffer out stops early */
			CU_ASSERT_FATAL(smtp_message_blocked(m));
			CU_ASSERT(smtp_message_inflight(m) > 0);
			fake_return(f, 1);
			CU_ASSERT(!smtp_message_blocked(m));
		}
		sr.r.consumed += used;
		/* memory stays bounded whatever the size */
		CU_ASSERT(f->reserved <= SMTP_MESSAGE_BASE +
		    SMTP_MESSAGE_INFLIGHT * (size_t)SMTP_MESSAGE_BUF);
	}
	fake_return(f, 0);
	CU_ASSERT_EQUAL(smtp_message_inflight(m), 0);
	sr.r.rc = smtp_message_finish(m, sr.r.reply, sizeof sr.r.reply);
	sr.r.facts = *smtp_message_facts(m);
	sr.status = smtp_message_status(m);
	sr.staged = smtp_message_staged_count(m);
	if (sr.r.rc == 0 && sr.status == COMMIT_OK) {
		struct smtp_message_parts p;
		struct buf all;

		smtp_message_take(m, &p);
		CU_ASSERT_EQUAL(p.staged, f->nrecs);
		CU_ASSERT_EQUAL(p.reserved, SMTP_MESSAGE_BASE);
		buf_init(&all, (size_t)1 << 30);
		buf_append(&all, p.head, p.head_len);
		for (uint32_t i = 1; i <= p.staged; i++)
			buf_append(&all, f->recs[i].data, f->recs[i].len);
		if (p.tail != NULL)
			buf_append(&all, p.tail, p.tail_len);
		CU_ASSERT_EQUAL(p.size, all.len);
		CU_ASSERT(p.head_len <= RECORD_CHUNK_MAX || p.staged == 0);
		fake_release(f, p.reserved);
		free(p.head);
		free(p.tail);
		sr.r.bytes = buf_steal(&all, &sr.r.len);
	}
	smtp_message_free(&m);
	CU_ASSERT_EQUAL(f->reserved, 0);	/* all given back */
	return sr;
}

/* A body of n lines of varied length, a few dots at line starts. */
static void
big_body(struct buf *b, const char *header, size_t lines)
{
	buf_puts(b, header);
	for (size_t i = 0; i < lines; i++) {
		size_t w = 1 + (i * 37) % 200;

		if (i % 13 == 0)
			buf_puts(b, "..");
		for (size_t k = 0; k < w; k++)
			buf_append(b, &"abcdefghij"[(i + k) % 10], 1);
		buf_puts(b, "\r\n");
	}
	buf_puts(b, ".\r\n");
}

/* Staged or whole, the bytes are the same, and the records are cut as
 * they come (memory bounded); the checks see every byte. */
static void
test_staged_same_bytes(void)
{
	static const char *const headers[] = {
		"Subject: big\r\nFrom: a@b\r\n\r\n",	/* submission adds */
		"Date: x\r\nMessage-ID: <y>\r\n\r\n",
	};
	struct buf in;
	struct fake f;

	for (size_t h = 0; h < 2; h++) {
		buf_init(&in, 1 << 24);
		big_body(&in, headers[h], 40000);	/* about 4 MiB */
		for (int mode = 0; mode < FEED_MODES; mode++) {
			struct smtp_message_info info = info_default(1, DOT, 1 << 24);
			struct run whole;
			struct staged_run st;

			if (mode == FEED_BYTES)
				continue;	/* 4 MiB byte by byte: slow, and slices cover it */
			whole = run_message(&info, in.data, in.len, (enum feed_mode)mode);
			fake_init(&f, 1 << 30);
			st = run_staged(&info, &f, in.data, in.len, (enum feed_mode)mode);
			CU_ASSERT_EQUAL(whole.rc, 0);
			CU_ASSERT_EQUAL(st.r.rc, 0);
			CU_ASSERT(st.staged > 50);
			CU_ASSERT_EQUAL(st.r.len, whole.len);
			CU_ASSERT(st.r.len == whole.len &&
			    memcmp(st.r.bytes, whole.bytes, whole.len) == 0);
			CU_ASSERT_EQUAL(st.r.facts.header_end, whole.facts.header_end);
			CU_ASSERT(f.peak <= SMTP_MESSAGE_BASE +
			    SMTP_MESSAGE_INFLIGHT * (size_t)SMTP_MESSAGE_BUF);
			run_free(&whole);
			run_free(&st.r);
			fake_free(&f);
		}
		buf_free(&in);
	}
}

static void
tap_collect(void *arg, const char *p, size_t n)
{
	buf_append(arg, p, n);
}

/* The tap sees the client's content once, in order, unstuffed; the header
 * section can be read and replaced in record 0; the fields submission
 * adds are told. */
static void
test_tap_and_header_edit(void)
{
	static const char in[] = "Subject: hi\r\nAuthentication-Results: mx.test; x\r\n"
	    "From: a@b.test\r\n\r\n..dotted\r\nbody\r\n.\r\n";
	static const char content[] = "Subject: hi\r\nAuthentication-Results: mx.test; x\r\n"
	    "From: a@b.test\r\n\r\n.dotted\r\nbody\r\n";
	static const char newhdr[] = "Subject: hi\r\nFrom: a@b.test\r\n";
	struct smtp_message_info info = info_default(1, DOT, 1 << 20);
	struct smtp_message_parts parts;
	struct smtp_message *m;
	struct buf seen;
	const char *h;
	char reply[128];
	size_t hlen;
	int done = 0;

	buf_init(&seen, 1 << 20);
	info.tap = tap_collect;
	info.tap_arg = &seen;
	m = smtp_message_new(&info);
	for (size_t i = 0; i < sizeof in - 1 && !done; i += 3)
		smtp_message_feed(m, in + i, sizeof in - 1 - i < 3 ? sizeof in - 1 - i : 3,
		    &done);
	CU_ASSERT(done);
	CU_ASSERT_EQUAL(smtp_message_finish(m, reply, sizeof reply), 0);
	CU_ASSERT_EQUAL(seen.len, strlen(content));
	CU_ASSERT(seen.len == strlen(content) && memcmp(seen.data, content, seen.len) == 0);
	CU_ASSERT(strstr(smtp_message_added_fields(m), "Date: ") != NULL);
	CU_ASSERT(strstr(smtp_message_added_fields(m), "Message-ID: <") != NULL);
	CU_ASSERT_EQUAL_FATAL(smtp_message_header(m, &h, &hlen), 0);
	CU_ASSERT(hlen == strlen(content) - strlen("\r\n.dotted\r\nbody\r\n"));
	CU_ASSERT(strncmp(h, "Subject: hi\r\n", 13) == 0);
	CU_ASSERT_EQUAL(smtp_message_replace_header(m, newhdr, strlen(newhdr)), 0);
	CU_ASSERT_EQUAL(smtp_message_prepend(m, "X-Top: 1\r\n"), 0);
	CU_ASSERT_EQUAL(smtp_message_header(m, &h, &hlen), 0);
	CU_ASSERT(hlen == strlen(newhdr) && memcmp(h, newhdr, hlen) == 0);
	smtp_message_take(m, &parts);
	CU_ASSERT(strncmp(parts.head, "X-Top: 1\r\nReceived: ", 20) == 0);
	CU_ASSERT(strstr(parts.head, "Authentication-Results") == NULL);
	CU_ASSERT(strstr(parts.head, "Subject: hi\r\nFrom: a@b.test\r\nDate: ") != NULL);
	CU_ASSERT(strstr(parts.head, "\r\n\r\n.dotted\r\nbody\r\n") != NULL);
	CU_ASSERT_EQUAL(parts.size, strlen(parts.head));
	free(parts.head);
	smtp_message_free(&m);
	buf_free(&seen);

	/* a header section longer than record 0 cannot be edited */
	{
		struct buf big;
		struct fake f;
		struct smtp_message_info si = info_default(0, DOT, 1 << 24);

		buf_init(&big, 1 << 22);
		for (int i = 0; i < 3000; i++)
			buf_printf(&big, "X-Long-%04d: some header text to make it long\r\n", i);
		buf_puts(&big, "\r\nbody\r\n.\r\n");
		fake_init(&f, 1 << 30);
		si.stager = &f.st;
		m = smtp_message_new(&si);
		f.m = m;
		done = 0;
		for (size_t off = 0; off < big.len && !done; ) {
			size_t used = smtp_message_feed(m, big.data + off, big.len - off, &done);
			off += used;
			if (smtp_message_blocked(m))
				fake_return(&f, 0);
		}
		fake_return(&f, 0);
		CU_ASSERT_EQUAL(smtp_message_finish(m, reply, sizeof reply), 0);
		CU_ASSERT_EQUAL(smtp_message_header(m, &h, &hlen), -1);
		CU_ASSERT_EQUAL(smtp_message_replace_header(m, "A: b\r\n", 6), -1);
		smtp_message_free(&m);
		fake_free(&f);
		buf_free(&big);
	}
}

/* A submission whose header section ends just past the cut of record 0
 * (within the Date and Message-ID we insert there): the accessors give
 * the client's section whole, or -1; never a part of it. */
static void
test_header_just_past_the_cut(void)
{
	struct buf in;
	int whole = 0, refused = 0;

	buf_init(&in, 1 << 20);
	for (size_t n = SMTP_MESSAGE_CHUNK - 700; n < SMTP_MESSAGE_CHUNK + 700; n++) {
		struct smtp_message_info info = info_default(1, DOT, 1 << 22);
		struct smtp_message *m;
		struct fake f;
		const char *h;
		char reply[128];
		size_t hlen, lines = (n - 8) / 100, r = n - lines * 100;
		int done = 0;

		buf_reset(&in);
		for (size_t i = 0; i < lines; i++)
			buf_printf(&in, "X-F: %093zu\r\n", i);
		buf_printf(&in, "X-R: %0*d\r\n", (int)(r - 7), 0);
		CU_ASSERT_EQUAL_FATAL(in.len, n);
		buf_puts(&in, "\r\nbody\r\n.\r\n");
		fake_init(&f, 1 << 30);
		info.stager = &f.st;
		m = smtp_message_new(&info);
		f.m = m;
		for (size_t off = 0; off < in.len && !done; ) {
			size_t want = in.len - off < 512 ? in.len - off : 512;
			off += smtp_message_feed(m, in.data + off, want, &done);
			if (smtp_message_blocked(m))
				fake_return(&f, 0);
		}
		fake_return(&f, 0);
		CU_ASSERT_EQUAL_FATAL(smtp_message_finish(m, reply, sizeof reply), 0);
		if (smtp_message_header(m, &h, &hlen) == 0) {
			CU_ASSERT(hlen == n && memcmp(h, in.data, n) == 0);
			whole++;
		} else {
			refused++;
		}
		if (smtp_message_head_fields(m, &h, &hlen) == 0)
			CU_ASSERT(memmem(h, hlen, in.data, n) != NULL);
		smtp_message_free(&m);
		fake_free(&f);
	}
	CU_ASSERT(whole > 0 && refused > 0);	/* the cut was in the range */
	buf_free(&in);
}

/* What the milters see and change: the whole header section from byte 0
 * (a field on top, our Received, the client's, the submission fields),
 * peeked without taking, replaced, and a body replaced in a message that
 * staged records (they are no longer its own; record 0 holds it all). */
static void
test_milter_edits(void)
{
	static const char in[] = "Subject: hi\r\nFrom: a@b.test\r\n\r\nbody\r\n.\r\n";
	struct smtp_message_info info = info_default(1, DOT, 1 << 20);
	struct smtp_message_parts p;
	struct smtp_message *m;
	const char *h;
	char reply[128];
	size_t hlen;
	int done = 0;

	m = smtp_message_new(&info);
	smtp_message_feed(m, in, sizeof in - 1, &done);
	CU_ASSERT(done);
	CU_ASSERT_EQUAL(smtp_message_finish(m, reply, sizeof reply), 0);
	CU_ASSERT_EQUAL(smtp_message_prepend(m, "X-Top: 1\r\n"), 0);
	CU_ASSERT_EQUAL_FATAL(smtp_message_head_fields(m, &h, &hlen), 0);
	CU_ASSERT(strncmp(h, "X-Top: 1\r\nReceived: ", 20) == 0);
	CU_ASSERT(hlen > 4 && memcmp(h + hlen - 2, "\r\n", 2) == 0);
	CU_ASSERT(strncmp(h + hlen, "\r\nbody\r\n", 8) == 0);
	CU_ASSERT(memmem(h, hlen, "Message-ID: <", 13) != NULL);
	smtp_message_peek(m, &p);
	CU_ASSERT_EQUAL(p.staged, 0);
	CU_ASSERT(p.tail == NULL);
	CU_ASSERT_EQUAL(p.size, p.head_len);
	CU_ASSERT_EQUAL(smtp_message_replace_head_fields(m, "A: 1\r\nB: 2\r\n", 12), 0);
	smtp_message_peek(m, &p);
	CU_ASSERT(p.head_len == 12 + 8 && memcmp(p.head, "A: 1\r\nB: 2\r\n\r\nbody\r\n", 20) == 0);
	CU_ASSERT_EQUAL(smtp_message_replace_body(m, "new\r\n", 5), 0);
	smtp_message_peek(m, &p);
	CU_ASSERT(p.head_len == 12 + 7 && memcmp(p.head, "A: 1\r\nB: 2\r\n\r\nnew\r\n", 19) == 0);
	smtp_message_free(&m);

	/* staged: the records are dropped from the message */
	{
		struct buf big;
		struct fake f;
		struct smtp_message_info si = info_default(0, DOT, 1 << 24);
		uint64_t sum;

		buf_init(&big, 1 << 22);
		big_body(&big, "Subject: big\r\n\r\n", 20000);
		fake_init(&f, 1 << 30);
		si.stager = &f.st;
		m = smtp_message_new(&si);
		f.m = m;
		done = 0;
		for (size_t off = 0; off < big.len && !done; ) {
			off += smtp_message_feed(m, big.data + off, big.len - off, &done);
			if (smtp_message_blocked(m))
				fake_return(&f, 0);
		}
		fake_return(&f, 0);
		CU_ASSERT_EQUAL(smtp_message_finish(m, reply, sizeof reply), 0);
		smtp_message_peek(m, &p);
		CU_ASSERT(p.staged > 3);
		sum = p.head_len + p.tail_len;
		for (uint32_t i = 1; i <= p.staged; i++)
			sum += f.recs[i].len;
		CU_ASSERT_EQUAL(p.size, sum);
		CU_ASSERT_EQUAL(smtp_message_head_fields(m, &h, &hlen), 0);
		CU_ASSERT(strstr(h, "Subject: big\r\n") != NULL);
		/* A new body past the reserve is refused; nothing changes. */
		{
			char nb[1000];
			size_t budget = f.budget;
			uint32_t staged = smtp_message_staged_count(m);

			memset(nb, 'n', sizeof nb);
			f.budget = f.reserved + 100;
			CU_ASSERT_EQUAL(smtp_message_replace_body(m, nb, sizeof nb), -2);
			CU_ASSERT_EQUAL(smtp_message_staged_count(m), staged);
			f.budget = budget;
		}
		CU_ASSERT_EQUAL(smtp_message_replace_body(m, "short\r\n", 7), (long)f.nrecs);
		CU_ASSERT_EQUAL(smtp_message_staged_count(m), 0);
		smtp_message_peek(m, &p);
		CU_ASSERT(p.tail == NULL);
		CU_ASSERT(p.head_len == hlen + 9 &&
		    memcmp(p.head + hlen, "\r\nshort\r\n", 9) == 0);
		CU_ASSERT_EQUAL(p.size, p.head_len);
		smtp_message_take(m, &p);
		CU_ASSERT_EQUAL(p.staged, 0);
		/* the new body is counted with record 0 until it is freed */
		CU_ASSERT_EQUAL(p.reserved, SMTP_MESSAGE_BASE + 7);
		fake_release(&f, p.reserved);
		free(p.head);
		free(p.tail);
		smtp_message_free(&m);
		CU_ASSERT_EQUAL(f.reserved, 0);
		fake_free(&f);
		buf_free(&big);
	}
}

/* A small message is never staged: one buffer, one commit. */
static void
test_staged_small(void)
{
	struct smtp_message_info info = info_default(0, DOT, 1 << 20);
	struct fake f;
	struct staged_run st;

	fake_init(&f, SMTP_MESSAGE_BASE);
	st = run_staged(&info, &f, S("Subject: x\r\n\r\nhi\r\n.\r\n"), FEED_BLOCK);
	CU_ASSERT_EQUAL(st.r.rc, 0);
	CU_ASSERT_EQUAL(st.staged, 0);
	CU_ASSERT_EQUAL(f.nrecs, 0);
	run_free(&st.r);
	/* The cap: no room for a message's base, no message. */
	fake_init(&f, SMTP_MESSAGE_BASE - 1);
	info.stager = &f.st;
	CU_ASSERT_PTR_NULL(smtp_message_new(&info));
}

/* With the base reserve only, a message waits for its records instead of
 * taking more memory, and still arrives whole. */
static void
test_staged_tight(void)
{
	struct smtp_message_info info = info_default(0, BDAT, 1 << 24);
	struct buf in;
	struct fake f;
	struct staged_run st;
	struct run whole;

	buf_init(&in, 1 << 24);
	big_body(&in, "Subject: t\r\n\r\n", 20000);
	in.len -= 3;	/* BDAT: no ".\r\n" */
	whole = run_message(&info, in.data, in.len, FEED_BLOCK);
	fake_init(&f, SMTP_MESSAGE_BASE);
	st = run_staged(&info, &f, in.data, in.len, FEED_BLOCK);
	CU_ASSERT_EQUAL(st.r.rc, 0);
	CU_ASSERT_EQUAL(f.peak, SMTP_MESSAGE_BASE);
	CU_ASSERT(st.r.len == whole.len &&
	    memcmp(st.r.bytes, whole.bytes, whole.len) == 0);
	run_free(&st.r);
	run_free(&whole);
	fake_free(&f);
	buf_free(&in);
}

/* Records of one message with the committer at once: SMTP_MESSAGE_INFLIGHT
 * while the total is over reserve_deep's, SMTP_MESSAGE_DEEP while under
 * it; either way the message arrives whole and every byte is given back. */
static void
test_staged_deep(void)
{
	struct buf in;

	buf_init(&in, 1 << 24);
	big_body(&in, "Subject: deep\r\n\r\n", 60000);	/* ~4.5 MiB */
	for (int deep = 0; deep <= 1; deep++) {
		struct smtp_message_info info = info_default(0, DOT, 1 << 24);
		struct smtp_message_parts p;
		struct smtp_message *m;
		struct fake f;
		size_t off = 0, first_block = 0;
		char reply[128];
		int done = 0;

		fake_init(&f, 1 << 30);
		f.st.reserve_deep = fake_reserve_deep;
		f.deep_budget = deep ? (size_t)1 << 30 : 0;
		info.stager = &f.st;
		m = smtp_message_new(&info);
		CU_ASSERT_FATAL(m != NULL);
		f.m = m;
		while (off < in.len && !done) {
			off += smtp_message_feed(m, in.data + off, in.len - off, &done);
			if (!done && smtp_message_blocked(m)) {
				if (first_block == 0)
					first_block = f.nout;
				fake_return(&f, 0);
			}
		}
		fake_return(&f, 0);
		/* the last one the base reserve holds, and the ones past it */
		CU_ASSERT_EQUAL(first_block, 1 + (deep ? SMTP_MESSAGE_DEEP : SMTP_MESSAGE_INFLIGHT));
		CU_ASSERT(f.peak <= SMTP_MESSAGE_BASE + (size_t)(deep ? SMTP_MESSAGE_DEEP :
		    SMTP_MESSAGE_INFLIGHT) * SMTP_MESSAGE_BUF);
		CU_ASSERT_EQUAL(smtp_message_finish(m, reply, sizeof reply), 0);
		smtp_message_take(m, &p);
		fake_release(&f, p.reserved);
		free(p.head);
		free(p.tail);
		smtp_message_free(&m);
		CU_ASSERT_EQUAL(f.reserved, 0);
		fake_free(&f);
	}
	buf_free(&in);
}

/* A header section longer than the first buffer: kept whole as record 0,
 * the scan goes on in the records after it (the hop count, Date and
 * Message-ID seen there), the additions follow our Received header. */
static void
test_staged_long_header(void)
{
	struct buf in;
	struct fake f;
	struct staged_run st;
	struct smtp_message_info info;
	const char *after;

	buf_init(&in, 1 << 22);
	for (int i = 0; i < 6000; i++)
		buf_printf(&in, "X-Filler-%04d: %s\r\n", i, "v v v v v v v v v v v");
	buf_puts(&in, "Received: late one\r\n\r\nbody\r\n.\r\n");
	info = info_default(1, DOT, 1 << 22);
	fake_init(&f, 1 << 30);
	st = run_staged(&info, &f, in.data, in.len, FEED_SLICES);
	CU_ASSERT_EQUAL_FATAL(st.r.rc, 0);
	CU_ASSERT(st.staged >= 1);
	CU_ASSERT_EQUAL(st.r.facts.received, 2);
	CU_ASSERT(st.r.facts.header_done);
	after = after_received(&st.r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(after);
	CU_ASSERT(strncmp(after, ADDED "X-Filler-0000:", strlen(ADDED) + 14) == 0);
	CU_ASSERT(memmem(st.r.bytes, st.r.len, S("Received: late one\r\n\r\nbody\r\n"))
	    != NULL);
	run_free(&st.r);
	fake_free(&f);

	/* 60 hops, spread over records: a loop all the same. */
	buf_reset(&in);
	for (int i = 0; i < 60; i++) {
		buf_printf(&in, "Received: from h%d by h%d; ", i, i);
		for (int k = 0; k < 80; k++)
			buf_puts(&in, "\r\n\tpadding padding padding padding");
		buf_puts(&in, "\r\n");
	}
	buf_puts(&in, "\r\nx\r\n.\r\n");
	info = info_default(0, DOT, 1 << 22);
	fake_init(&f, 1 << 30);
	st = run_staged(&info, &f, in.data, in.len, FEED_SLICES);
	CU_ASSERT(st.staged >= 1);
	CU_ASSERT_EQUAL(st.r.facts.received, 61);
	CU_ASSERT_EQUAL(st.r.rc, -1);
	CU_ASSERT(strncmp(st.r.reply, "554 5.4.6", 9) == 0);
	fake_free(&f);
	buf_free(&in);
}

/* A record refused (queue full): the rest is read to the end of data and
 * not kept; the status says why. */
static void
test_staged_refused(void)
{
	struct smtp_message_info info = info_default(0, DOT, 1 << 24);
	struct buf in;
	struct fake f;
	struct staged_run st;

	buf_init(&in, 1 << 24);
	big_body(&in, "Subject: r\r\n\r\n", 20000);
	fake_init(&f, 1 << 30);
	f.fail_at = 3;
	st = run_staged(&info, &f, in.data, in.len, FEED_SLICES);
	CU_ASSERT(st.r.done);
	CU_ASSERT_EQUAL(st.r.consumed, in.len);
	CU_ASSERT_EQUAL(st.status, COMMIT_FULL);
	CU_ASSERT(f.nrecs < 3 + SMTP_MESSAGE_INFLIGHT + 2);	/* none after it */
	fake_free(&f);
	buf_free(&in);
}

int
main(void)
{
	CU_pSuite s;
	unsigned failed;

	/* Dates in the expected texts are UTC. */
	setenv("TZ", "UTC", 1);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("smtp_message", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "table", test_message_table) == NULL ||
	    CU_add_test(s, "Received header", test_received_header) == NULL ||
	    CU_add_test(s, "hops", test_hops) == NULL ||
	    CU_add_test(s, "hostile", test_hostile) == NULL ||
	    CU_add_test(s, "staged: the same bytes", test_staged_same_bytes) == NULL ||
	    CU_add_test(s, "staged: small messages are not", test_staged_small) == NULL ||
	    CU_add_test(s, "staged: the base reserve only", test_staged_tight) == NULL ||
	    CU_add_test(s, "staged: deeper while the total is low", test_staged_deep) == NULL ||
	    CU_add_test(s, "staged: a long header section", test_staged_long_header) == NULL ||
	    CU_add_test(s, "staged: a record refused", test_staged_refused) == NULL ||
	    CU_add_test(s, "tap and header edits", test_tap_and_header_edit) == NULL ||
	    CU_add_test(s, "a header section just past the cut",
	    test_header_just_past_the_cut) == NULL ||
	    CU_add_test(s, "the milters' edits", test_milter_edits) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
