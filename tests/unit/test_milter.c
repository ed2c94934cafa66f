/*
 * test_milter: the milter client's pure parts with hostile input, table by
 * table: the packet decoder (fed whole and byte by byte), the typed reply
 * decoder, option negotiation, custom reply checks, the encoders (read
 * back through the decoder), the modification list and its checks, the
 * macro table, endpoints; and the chain's split of a message stream into
 * header, end of headers and body chunks, fed in every piece size against
 * an in-process filter on a Unix socket that records what it gets; and
 * the chain's non-blocking mode against filters whose replies the test
 * lets go one by one.
 */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "filter/endpoint.h"
#include "filter/milter.h"
#include "filter/milter_chain.h"
#include "filter/milter_mods.h"
#include "filter/milter_proto.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"

/* A packet: 4-byte length, command, data. */
static size_t
mkpkt(unsigned char *out, unsigned char cmd, const void *data, size_t len)
{
	uint32_t n = (uint32_t)len + 1;

	out[0] = (unsigned char)(n >> 24);
	out[1] = (unsigned char)(n >> 16);
	out[2] = (unsigned char)(n >> 8);
	out[3] = (unsigned char)n;
	out[4] = cmd;
	memcpy(out + 5, data, len);
	return len + 5;
}

static void
test_decoder(void)
{
	static const struct {
		const char *in;
		size_t len;
		int rc;
		size_t used;
	} cases[] = {
		{ "", 0, MILTER_DECODE_MORE, 0 },
		{ "\0\0\0", 3, MILTER_DECODE_MORE, 0 },
		{ "\0\0\0\0", 4, MILTER_DECODE_ERROR, 0 },
		{ "\0\0\0\1", 4, MILTER_DECODE_MORE, 0 },
		{ "\0\0\0\1c", 5, MILTER_DECODE_DONE, 5 },
		{ "\0\0\0\1cXX", 7, MILTER_DECODE_DONE, 5 },
		{ "\0\0\0\3hA", 6, MILTER_DECODE_MORE, 0 },
		{ "\x7f\xff\xff\xff", 4, MILTER_DECODE_ERROR, 0 },
		{ "\xff\xff\xff\xff" "c", 5, MILTER_DECODE_ERROR, 0 },
		/* MILTER_PACKET_MAX + 1 is the largest length accepted... */
		{ "\0\x10\0\1" "b", 5, MILTER_DECODE_MORE, 0 },
		/* ... one more is refused at once, before any data came. */
		{ "\0\x10\0\2", 4, MILTER_DECODE_ERROR, 0 },
		{ "hello, not milter", 17, MILTER_DECODE_ERROR, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct milter_packet p;
		size_t used = 99;
		const char *why = NULL;
		int rc = milter_packet_decode((const unsigned char *)cases[i].in,
		    cases[i].len, &used, &p, &why);

		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc != cases[i].rc)
			printf("\ncase %zu: rc %d\n", i, rc);
		if (rc == MILTER_DECODE_DONE)
			CU_ASSERT_EQUAL(used, cases[i].used);
		if (rc == MILTER_DECODE_ERROR)
			CU_ASSERT_PTR_NOT_NULL(why);
	}
}

/* Two packets fed one byte at a time come out as in one block. */
static void
test_decoder_bytewise(void)
{
	unsigned char in[64], acc[64];
	size_t len = 0, alen = 0, got = 0;

	len += mkpkt(in + len, SMFIR_ADDHEADER, "X-A\0b\0", 6);
	len += mkpkt(in + len, SMFIR_ACCEPT, "", 0);
	for (size_t i = 0; i < len; i++) {
		struct milter_packet p;
		size_t used;
		const char *why;
		int rc;

		acc[alen++] = in[i];
		rc = milter_packet_decode(acc, alen, &used, &p, &why);
		CU_ASSERT_NOT_EQUAL(rc, MILTER_DECODE_ERROR);
		if (rc == MILTER_DECODE_DONE) {
			if (got == 0) {
				CU_ASSERT_EQUAL(p.cmd, SMFIR_ADDHEADER);
				CU_ASSERT_EQUAL(p.len, 6);
				CU_ASSERT(memcmp(p.data, "X-A\0b\0", 6) == 0);
			} else {
				CU_ASSERT_EQUAL(p.cmd, SMFIR_ACCEPT);
				CU_ASSERT_EQUAL(p.len, 0);
			}
			got++;
			memmove(acc, acc + used, alen - used);
			alen -= used;
		}
	}
	CU_ASSERT_EQUAL(got, 2);
	CU_ASSERT_EQUAL(alen, 0);
}

static void
test_reply_decode(void)
{
	static const struct {
		unsigned char cmd;
		const char *data;
		size_t len;
		int ok;
		const char *s1, *s2;
		uint32_t index;
	} cases[] = {
		{ SMFIR_CONTINUE, "", 0, 1, NULL, NULL, 0 },
		{ SMFIR_CONTINUE, "x", 1, 0, NULL, NULL, 0 },
		{ SMFIR_ACCEPT, "\0", 1, 0, NULL, NULL, 0 },
		{ SMFIR_REJECT, "", 0, 1, NULL, NULL, 0 },
		{ SMFIR_SKIP, "", 0, 1, NULL, NULL, 0 },
		{ SMFIR_PROGRESS, "", 0, 1, NULL, NULL, 0 },
		{ SMFIR_SHUTDOWN, "", 0, 1, NULL, NULL, 0 },
		{ SMFIR_REPLYCODE, "550 5.7.1 no\0", 13, 1, "550 5.7.1 no", NULL, 0 },
		{ SMFIR_REPLYCODE, "550 no", 6, 0, NULL, NULL, 0 },
		{ SMFIR_REPLYCODE, "550\0x\0", 6, 0, NULL, NULL, 0 },
		{ SMFIR_REPLYCODE, "", 0, 0, NULL, NULL, 0 },
		{ SMFIR_QUARANTINE, "why\0", 4, 1, "why", NULL, 0 },
		{ SMFIR_ADDHEADER, "X-A\0v\0", 6, 1, "X-A", "v", 0 },
		{ SMFIR_ADDHEADER, "X-A\0", 4, 0, NULL, NULL, 0 },
		{ SMFIR_ADDHEADER, "X-A\0v", 5, 0, NULL, NULL, 0 },
		{ SMFIR_ADDHEADER, "X-A\0v\0junk", 10, 0, NULL, NULL, 0 },
		{ SMFIR_ADDHEADER, "X-A\0\0", 5, 1, "X-A", "", 0 },
		{ SMFIR_INSHEADER, "\0\0\0\3X\0v\0", 8, 1, "X", "v", 3 },
		{ SMFIR_INSHEADER, "\0\0\0", 3, 0, NULL, NULL, 0 },
		{ SMFIR_INSHEADER, "\0\0\0\1X\0", 6, 0, NULL, NULL, 0 },
		{ SMFIR_CHGHEADER, "\xff\xff\xff\xffX\0\0", 7, 1, "X", "", 0xffffffffu },
		{ SMFIR_CHGFROM, "<a@b>\0", 6, 1, "<a@b>", NULL, 0 },
		{ SMFIR_CHGFROM, "<a@b>\0SIZE=1\0", 13, 1, "<a@b>", "SIZE=1", 0 },
		{ SMFIR_CHGFROM, "<a@b>\0x\0y\0", 10, 0, NULL, NULL, 0 },
		{ SMFIR_ADDRCPT, "<a@b>\0", 6, 1, "<a@b>", NULL, 0 },
		{ SMFIR_ADDRCPT, "<a@b>\0x\0", 8, 0, NULL, NULL, 0 },
		{ SMFIR_ADDRCPT_PAR, "<a@b>\0x\0", 8, 1, "<a@b>", "x", 0 },
		{ SMFIR_DELRCPT, "", 0, 0, NULL, NULL, 0 },
		{ SMFIR_REPLBODY, "a\0b", 3, 1, NULL, NULL, 0 },
		{ SMFIR_REPLBODY, "", 0, 1, NULL, NULL, 0 },
		{ SMFIR_SETSYMLIST, "\0\0\0\0i\0", 6, 0, NULL, NULL, 0 },
		{ SMFIC_OPTNEG, "", 0, 0, NULL, NULL, 0 },
		{ 'Z', "", 0, 0, NULL, NULL, 0 },
		{ 0, "", 0, 0, NULL, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct milter_packet p = { cases[i].cmd,
		    (const unsigned char *)cases[i].data, cases[i].len };
		struct milter_reply r;
		const char *why = NULL;
		int rc = milter_reply_decode(&p, &r, &why);

		CU_ASSERT_EQUAL(rc == 0, cases[i].ok);
		if ((rc == 0) != cases[i].ok)
			printf("\nreply case %zu (%c): rc %d\n", i, cases[i].cmd, rc);
		if (rc != 0) {
			CU_ASSERT_PTR_NOT_NULL(why);
			continue;
		}
		if (cases[i].s1 != NULL)
			CU_ASSERT(r.s1 != NULL && strcmp(r.s1, cases[i].s1) == 0);
		if (cases[i].s2 != NULL) {
			CU_ASSERT(r.s2 != NULL && strcmp(r.s2, cases[i].s2) == 0);
		} else {
			CU_ASSERT_PTR_NULL(r.s2);
		}
		CU_ASSERT_EQUAL(r.index, cases[i].index);
		if (cases[i].cmd == SMFIR_REPLBODY)
			CU_ASSERT_EQUAL(r.body_len, cases[i].len);
	}
}

static void
test_optneg(void)
{
	static const unsigned char good[] = { 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0, 4, 0,
	    0, 0, 0, 0, '{', 'a', '}', ' ', 'j', 0,
	    0, 0, 0, 9, 'x', 0,	/* unknown stage: skipped */
	    0, 0, 0, 5, 'i', 0 };
	struct milter_packet p = { SMFIC_OPTNEG, good, sizeof good };
	struct milter_optneg o;
	const char *why;

	CU_ASSERT_EQUAL(milter_optneg_decode(&p, &o, &why), 0);
	CU_ASSERT_EQUAL(o.version, 6);
	CU_ASSERT_EQUAL(o.actions, 0x1ff);
	CU_ASSERT_EQUAL(o.steps, 0x400);
	CU_ASSERT_STRING_EQUAL(o.macros[MILTER_STAGE_CONNECT], "{a} j");
	CU_ASSERT_STRING_EQUAL(o.macros[MILTER_STAGE_EOM], "i");
	CU_ASSERT_PTR_NULL(o.macros[MILTER_STAGE_HELO]);
	p.len = 11;
	CU_ASSERT_EQUAL(milter_optneg_decode(&p, &o, &why), -1);
	p.len = 14;	/* stage number cut off */
	CU_ASSERT_EQUAL(milter_optneg_decode(&p, &o, &why), -1);
	p.len = 20;	/* names without NUL */
	CU_ASSERT_EQUAL(milter_optneg_decode(&p, &o, &why), -1);
	p.len = 12;
	CU_ASSERT_EQUAL(milter_optneg_decode(&p, &o, &why), 0);
	p.cmd = SMFIR_CONTINUE;
	CU_ASSERT_EQUAL(milter_optneg_decode(&p, &o, &why), -1);
}

static void
test_reply_check(void)
{
	static const struct {
		const char *in;
		int code;
		const char *out;
	} cases[] = {
		{ "550 5.7.1 go away", 550, "550 5.7.1 go away" },
		{ "550 go away", 550, "550 5.7.1 go away" },
		{ "451 4.3.0 later", 451, "451 4.3.0 later" },
		{ "451 later", 451, "451 4.7.1 later" },
		{ "421 4.7.0 bye", 421, "421 4.7.0 bye" },
		{ "550 ", 550, "550 5.7.1" },
		{ "550 100%% sure", 550, "550 5.7.1 100% sure" },
		{ "550 50% off", 550, "550 5.7.1 50 off" },
		{ "550 2023 was a year", 550, "550 5.7.1 2023 was a year" },
		{ "550-5.7.1 one\r\n550 5.7.1 two", 550,
		    "550-5.7.1 one\r\n550 5.7.1 two" },
		{ "550-one\r\n550 two", 550, "550-5.7.1 one\r\n550 5.7.1 two" },
		{ "553 5.1.10 x", 553, "553 5.1.10 x" },
		{ "550 4.7.1 wrong class", -1, NULL },
		{ "450 5.7.1 wrong class", -1, NULL },
		{ "250 ok", -1, NULL },
		{ "354 go", -1, NULL },
		{ "650 x", -1, NULL },
		{ "560 x", -1, NULL },
		{ "55 x", -1, NULL },
		{ "550", -1, NULL },
		{ "550-x", -1, NULL },
		{ "550 x\r\n", -1, NULL },
		{ "550 x\r\n550 y", -1, NULL },
		{ "550-x\r\n551 y", -1, NULL },
		{ "550-x\n550 y", -1, NULL },
		{ "550 bell\a", -1, NULL },
		{ "550 caf\xc3\xa9", -1, NULL },
		{ "550 tab\there", -1, NULL },
		/* without FILTER_REPLY_PERCENT, see test_reply_percent */
		{ "", -1, NULL },
	};
	char out[FILTER_REPLY_MAX + 1];
	char longline[FILTER_REPLY_LINE_MAX + 16];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *why = NULL;
		int code = filter_reply_check(cases[i].in, FILTER_REPLY_PERCENT,
		    out, sizeof out, &why);

		CU_ASSERT_EQUAL(code, cases[i].code);
		if (code != cases[i].code)
			printf("\ncheck case %zu: %d (%s)\n", i, code, why ? why : "");
		if (code > 0 && cases[i].out != NULL)
			CU_ASSERT_STRING_EQUAL(out, cases[i].out);
		if (code < 0)
			CU_ASSERT_PTR_NOT_NULL(why);
	}
	memset(longline, 'x', sizeof longline);
	memcpy(longline, "550 ", 4);
	longline[sizeof longline - 1] = '\0';
	CU_ASSERT_EQUAL(filter_reply_check(longline, FILTER_REPLY_PERCENT, out,
	    sizeof out,
	    &(const char *){ NULL }), -1);
	{
		/* Many lines: over FILTER_REPLY_MAX in all. */
		struct buf b;
		const char *why;

		buf_init(&b, 1 << 16);
		for (int i = 0; i < 20; i++)
			buf_printf(&b, "550-5.7.1 %0200d\r\n", i);
		buf_puts(&b, "550 5.7.1 end");
		CU_ASSERT_EQUAL(filter_reply_check(b.data, FILTER_REPLY_PERCENT, out,
		    sizeof out, &why), -1);
		buf_free(&b);
	}
}

/* Encoders produce what the decoder reads back. */
static void
test_reply_percent(void)
{
	char out[FILTER_REPLY_MAX + 1];
	const char *why;

	CU_ASSERT_EQUAL(filter_reply_check("550 50% off %%", 0, out, sizeof out, &why), 550);
	CU_ASSERT_STRING_EQUAL(out, "550 5.7.1 50% off %%");
}

static void
test_encoders(void)
{
	struct buf b;
	struct milter_packet p;
	size_t used;
	const char *why;
	const char *names[] = { "{client_addr}", "j" };
	const char *values[] = { "192.0.2.1", "mx.test" };
	const char *argv[] = { "<a@b>", "SIZE=10", NULL };
	unsigned char big[MILTER_CHUNK_MAX + 1];

	buf_init(&b, MILTER_ENCODE_MAX);
	CU_ASSERT_EQUAL(milter_encode_connect(&b, "host", SMFIA_INET, 2525, "192.0.2.1"), 0);
	CU_ASSERT_EQUAL(milter_packet_decode((unsigned char *)b.data, b.len, &used, &p, &why),
	    MILTER_DECODE_DONE);
	CU_ASSERT_EQUAL(used, b.len);
	CU_ASSERT_EQUAL(p.cmd, SMFIC_CONNECT);
	CU_ASSERT_EQUAL(p.len, 5 + 1 + 2 + 10);
	CU_ASSERT(memcmp(p.data, "host\0" "4\x09\xdd" "192.0.2.1\0", p.len) == 0);
	buf_reset(&b);
	CU_ASSERT_EQUAL(milter_encode_connect(&b, "[x]", SMFIA_UNKNOWN, 1, "ignored"), 0);
	CU_ASSERT_EQUAL(b.len, 5 + 4 + 1);
	buf_reset(&b);
	CU_ASSERT_EQUAL(milter_encode_macros(&b, SMFIC_CONNECT, names, values, 2), 0);
	milter_packet_decode((unsigned char *)b.data, b.len, &used, &p, &why);
	CU_ASSERT_EQUAL(p.cmd, SMFIC_MACRO);
	CU_ASSERT(p.len == 1 + 14 + 10 + 2 + 8 &&
	    memcmp(p.data, "C{client_addr}\0" "192.0.2.1\0j\0mx.test\0", p.len) == 0);
	buf_reset(&b);
	CU_ASSERT_EQUAL(milter_encode_argv(&b, SMFIC_MAIL, argv), 0);
	milter_packet_decode((unsigned char *)b.data, b.len, &used, &p, &why);
	CU_ASSERT(p.len == 14 && memcmp(p.data, "<a@b>\0SIZE=10\0", 14) == 0);
	buf_reset(&b);
	CU_ASSERT_EQUAL(milter_encode_header(&b, "Subject", "hi\n there"), 0);
	milter_packet_decode((unsigned char *)b.data, b.len, &used, &p, &why);
	CU_ASSERT(p.cmd == SMFIC_HEADER && p.len == 18 &&
	    memcmp(p.data, "Subject\0hi\n there\0", 18) == 0);
	buf_reset(&b);
	memset(big, 'x', sizeof big);
	CU_ASSERT_EQUAL(milter_encode_body(&b, big, MILTER_CHUNK_MAX), 0);
	CU_ASSERT_EQUAL(b.len, MILTER_CHUNK_MAX + 5);
	buf_reset(&b);
	CU_ASSERT_EQUAL(milter_encode_body(&b, big, MILTER_CHUNK_MAX + 1), -1);
	CU_ASSERT_EQUAL(b.len, 0);
	CU_ASSERT_EQUAL(milter_encode_optneg(&b, 6, 0x1ff, 0x1fffff), 0);
	CU_ASSERT(b.len == 17 && memcmp(b.data, "\0\0\0\x0dO\0\0\0\6\0\0\1\xff\0\x1f\xff\xff", 17) == 0);
	buf_free(&b);
	{
		struct buf small;

		buf_init(&small, 8);
		CU_ASSERT_EQUAL(milter_encode_string(&small, SMFIC_HELO, "toolong"), -1);
		CU_ASSERT_EQUAL(small.len, 0);
		buf_free(&small);
	}
}

static void
test_header_checks(void)
{
	static const struct {
		const char *v;
		int leadspc;
		const char *out;	/* NULL: refused */
	} cases[] = {
		{ "yes", 0, " yes" },
		{ " yes", 1, " yes" },
		{ "", 0, " " },
		{ "", 1, "" },
		{ "one\n\ttwo", 0, " one\r\n\ttwo" },
		{ "one\r\n two", 0, " one\r\n two" },
		{ "one\n two\n\tthree", 0, " one\r\n two\r\n\tthree" },
		{ "caf\xc3\xa9", 0, " caf\xc3\xa9" },
		{ "tab\tinside", 0, " tab\tinside" },
		{ "one\ntwo", 0, NULL },
		{ "one\r\nX-New: header", 0, NULL },
		{ "one\n", 0, NULL },
		{ "one\r\n", 0, NULL },
		{ "one\n\n two", 0, NULL },
		{ "bare\rcr", 0, NULL },
		{ "bell\a", 0, NULL },
		{ "del\x7f", 0, NULL },
		{ "\n x", 0, " \r\n x" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf b;
		const char *why = NULL;
		int rc;

		buf_init(&b, 1024);
		rc = milter_header_value_format(cases[i].v, cases[i].leadspc, &b, &why);
		if (cases[i].out == NULL) {
			CU_ASSERT_EQUAL(rc, -1);
			CU_ASSERT_PTR_NOT_NULL(why);
		} else {
			CU_ASSERT_EQUAL(rc, 0);
			CU_ASSERT_STRING_EQUAL(b.data != NULL ? b.data : "", cases[i].out);
		}
		if ((rc == 0) != (cases[i].out != NULL))
			printf("\nvalue case %zu: rc %d\n", i, rc);
		buf_free(&b);
	}
	CU_ASSERT(milter_header_name_ok("X-Spam-Status"));
	CU_ASSERT(milter_header_name_ok("a"));
	CU_ASSERT(!milter_header_name_ok(""));
	CU_ASSERT(!milter_header_name_ok("X:Y"));
	CU_ASSERT(!milter_header_name_ok("X Y"));
	CU_ASSERT(!milter_header_name_ok("X\tY"));
	CU_ASSERT(!milter_header_name_ok("X\xc3\xa9"));
	{
		char name[MILTER_HEADER_NAME_MAX + 2];

		memset(name, 'a', sizeof name);
		name[MILTER_HEADER_NAME_MAX] = '\0';
		CU_ASSERT(milter_header_name_ok(name));
		name[MILTER_HEADER_NAME_MAX] = 'a';
		name[MILTER_HEADER_NAME_MAX + 1] = '\0';
		CU_ASSERT(!milter_header_name_ok(name));
	}
}

static void
test_mods(void)
{
	struct milter_mods m;
	const char *why;

	milter_mods_init(&m, 16);
	CU_ASSERT_EQUAL(milter_mods_header(&m, 0, MILTER_MOD_CHANGE_HEADER, 2, "Subject", "",
	    0, &why), 0);
	CU_ASSERT_EQUAL(m.v[0].kind, MILTER_MOD_DELETE_HEADER);
	CU_ASSERT_PTR_NULL(m.v[0].value);
	CU_ASSERT_EQUAL(m.v[0].index, 2);
	CU_ASSERT_EQUAL(milter_mods_header(&m, 0, MILTER_MOD_ADD_HEADER, 0, "Bad Name", "x",
	    0, &why), -1);
	CU_ASSERT_EQUAL(milter_mods_addr(&m, 0, MILTER_MOD_CHANGE_FROM, "<>", NULL, &why), 0);
	CU_ASSERT_STRING_EQUAL(m.v[1].addr, "");
	CU_ASSERT_EQUAL(milter_mods_addr(&m, 0, MILTER_MOD_ADD_RCPT, "<>", NULL, &why), -1);
	CU_ASSERT_EQUAL(milter_mods_addr(&m, 0, MILTER_MOD_ADD_RCPT, "a@b", "", &why), 0);
	CU_ASSERT_STRING_EQUAL(m.v[2].addr, "a@b");
	CU_ASSERT_PTR_NULL(m.v[2].args);
	CU_ASSERT_EQUAL(milter_mods_addr(&m, 0, MILTER_MOD_ADD_RCPT, "<a@b> x", NULL, &why), -1);
	CU_ASSERT_EQUAL(milter_mods_addr(&m, 0, MILTER_MOD_ADD_RCPT, "<a<b>", NULL, &why), -1);
	CU_ASSERT_EQUAL(milter_mods_addr(&m, 0, MILTER_MOD_ADD_RCPT, "a\r\nb", NULL, &why), -1);
	CU_ASSERT_EQUAL(milter_mods_addr(&m, 0, MILTER_MOD_ADD_RCPT, "a@b", "X=\x01", &why), -1);
	CU_ASSERT_EQUAL(milter_mods_addr(&m, 0, MILTER_MOD_DELETE_RCPT, "<\xc3\xa9@b>", NULL,
	    &why), 0);
	CU_ASSERT_EQUAL(m.n, 4);
	milter_mods_commit(&m);

	/* A milter that fails leaves nothing half done behind. */
	CU_ASSERT_EQUAL(milter_mods_body(&m, 1, 1, "new body", 8, &why), 0);
	CU_ASSERT_EQUAL(milter_mods_quarantine(&m, 1, "q\r\nq", &why), 0);
	CU_ASSERT_STRING_EQUAL(m.quarantine, "q??q");
	milter_mods_rollback(&m);
	CU_ASSERT_EQUAL(m.n, 4);
	CU_ASSERT_EQUAL(m.body_replaced, 0);
	CU_ASSERT_PTR_NULL(m.quarantine);

	/* The body limit. */
	CU_ASSERT_EQUAL(milter_mods_body(&m, 1, 1, "0123456789", 10, &why), 0);
	CU_ASSERT_EQUAL(milter_mods_body(&m, 1, 0, "0123456", 7, &why), -1);
	CU_ASSERT_EQUAL(milter_mods_body(&m, 1, 0, "012345", 6, &why), 0);
	milter_mods_commit(&m);
	CU_ASSERT_EQUAL(m.body_replaced, 1);
	CU_ASSERT_EQUAL(m.body.len, 16);
	CU_ASSERT(memcmp(m.body.data, "0123456789012345", 16) == 0);
	/* A later milter's replacement wins; a failing one keeps the old. */
	CU_ASSERT_EQUAL(milter_mods_body(&m, 2, 1, "x", 1, &why), 0);
	milter_mods_rollback(&m);
	CU_ASSERT_EQUAL(m.body.len, 16);
	CU_ASSERT_EQUAL(milter_mods_body(&m, 2, 1, "y", 1, &why), 0);
	milter_mods_commit(&m);
	CU_ASSERT(m.body.len == 1 && m.body.data[0] == 'y');

	milter_mods_reset(&m);
	CU_ASSERT_EQUAL(m.n, 0);
	for (int i = 0; i < MILTER_MODS_MAX; i++)
		if (milter_mods_header(&m, 0, MILTER_MOD_ADD_HEADER, 0, "X", "v", 0, &why) != 0)
			break;
	CU_ASSERT_EQUAL(m.n, MILTER_MODS_MAX);
	CU_ASSERT_EQUAL(milter_mods_header(&m, 0, MILTER_MOD_ADD_HEADER, 0, "X", "v", 0, &why), -1);

	/* The bytes of all entries are bounded too, and a rollback gives
	 * them back. */
	milter_mods_reset(&m);
	{
		char *big = xmalloc(60001);
		int added = 0;

		memset(big, 'v', 60000);
		big[60000] = '\0';
		while (milter_mods_header(&m, 0, MILTER_MOD_ADD_HEADER, 0, "X-Big", big, 0,
		    &why) == 0)
			added++;
		CU_ASSERT_EQUAL(added, MILTER_MODS_BYTES_MAX / 60006);
		CU_ASSERT(m.bytes <= MILTER_MODS_BYTES_MAX);
		milter_mods_rollback(&m);
		CU_ASSERT_EQUAL(m.bytes, 0);
		CU_ASSERT_EQUAL(milter_mods_header(&m, 0, MILTER_MOD_ADD_HEADER, 0, "X-Big", big,
		    0, &why), 0);
		free(big);
	}
	milter_mods_free(&m);
}

static void
test_apply_header(void)
{
	static const struct {
		const char *hdr;
		struct {
			enum milter_mod_kind kind;
			uint32_t index;
			const char *name, *value;
		} mods[4];
		const char *out;
	} cases[] = {
		{ "A: 1\r\nB: 2\r\n", { { MILTER_MOD_ADD_HEADER, 0, "X", "yes" } },
		    "A: 1\r\nB: 2\r\nX: yes\r\n" },
		{ "A: 1\r\nB: 2\r\n", { { MILTER_MOD_INSERT_HEADER, 0, "X", "top" } },
		    "X: top\r\nA: 1\r\nB: 2\r\n" },
		{ "A: 1\r\nB: 2\r\n", { { MILTER_MOD_INSERT_HEADER, 1, "X", "mid" } },
		    "A: 1\r\nX: mid\r\nB: 2\r\n" },
		{ "A: 1\r\nB: 2\r\n", { { MILTER_MOD_INSERT_HEADER, 99, "X", "end" } },
		    "A: 1\r\nB: 2\r\nX: end\r\n" },
		/* change the second "b" (any case), folded lines and all */
		{ "B: 1\r\nA: x\r\nb: 2\r\n two\r\nB: 3\r\n",
		    { { MILTER_MOD_CHANGE_HEADER, 2, "B", "new" } },
		    "B: 1\r\nA: x\r\nB: new\r\nB: 3\r\n" },
		{ "A: 1\r\n", { { MILTER_MOD_CHANGE_HEADER, 3, "A", "added" } },
		    "A: 1\r\nA: added\r\n" },
		{ "A: 1\r\nS: x\r\n\ty\r\nA: 2\r\n",
		    { { MILTER_MOD_CHANGE_HEADER, 1, "S", "" } }, "A: 1\r\nA: 2\r\n" },
		{ "A: 1\r\n", { { MILTER_MOD_CHANGE_HEADER, 1, "Z", "" } }, "A: 1\r\n" },
		/* in order: each sees what the ones before did */
		{ "A: 1\r\n", { { MILTER_MOD_INSERT_HEADER, 0, "X", "1" },
		    { MILTER_MOD_INSERT_HEADER, 0, "Y", "2" },
		    { MILTER_MOD_CHANGE_HEADER, 1, "X", "3" },
		    { MILTER_MOD_ADD_HEADER, 0, "F", "a\n\tb" } },
		    "Y: 2\r\nX: 3\r\nA: 1\r\nF: a\r\n\tb\r\n" },
		/* bytes not touched stay as they were; an unended last line ends */
		{ "A:1\nnot a header\nB: 2", { { MILTER_MOD_ADD_HEADER, 0, "X", "y" } },
		    "A:1\nnot a header\nB: 2\r\nX: y\r\n" },
		{ "", { { MILTER_MOD_ADD_HEADER, 0, "X", "y" } }, "X: y\r\n" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct milter_mods m;
		struct buf out;
		const char *why;

		milter_mods_init(&m, 100);
		for (int k = 0; k < 4 && cases[i].mods[k].name != NULL; k++)
			CU_ASSERT_EQUAL(milter_mods_header(&m, 0, cases[i].mods[k].kind,
			    cases[i].mods[k].index, cases[i].mods[k].name,
			    cases[i].mods[k].value, 0, &why), 0);
		/* an envelope change in the list is not a header change */
		CU_ASSERT_EQUAL(milter_mods_addr(&m, 0, MILTER_MOD_ADD_RCPT, "a@b", NULL, &why), 0);
		buf_init(&out, 4096);
		CU_ASSERT_EQUAL(milter_mods_apply_header(&m, cases[i].hdr,
		    strlen(cases[i].hdr), &out), 0);
		CU_ASSERT_STRING_EQUAL(out.data != NULL ? out.data : "", cases[i].out);
		if (strcmp(out.data != NULL ? out.data : "", cases[i].out) != 0)
			printf("\napply case %zu: %s\n", i, out.data);
		buf_free(&out);
		milter_mods_free(&m);
	}
	{
		struct milter_mods m;
		struct buf out;
		const char *why;

		milter_mods_init(&m, 100);
		milter_mods_header(&m, 0, MILTER_MOD_ADD_HEADER, 0, "X", "0123456789", 0, &why);
		buf_init(&out, 10);
		CU_ASSERT_EQUAL(milter_mods_apply_header(&m, "A: 1\r\n", 6, &out), -1);
		buf_free(&out);
		milter_mods_free(&m);
	}
}

static void
test_macros(void)
{
	struct milter_macros t;
	char name[16], big[MILTER_MACRO_VALUE_MAX + 2];

	milter_macros_init(&t);
	CU_ASSERT_EQUAL(milter_macros_set(&t, "{auth_authen}", "alice"), 0);
	CU_ASSERT_STRING_EQUAL(milter_macros_get(&t, "auth_authen"), "alice");
	CU_ASSERT_STRING_EQUAL(milter_macros_get(&t, "{auth_authen}"), "alice");
	CU_ASSERT_EQUAL(milter_macros_set(&t, "auth_authen", "bob\r\n"), 0);
	CU_ASSERT_STRING_EQUAL(milter_macros_get(&t, "{auth_authen}"), "bob??");
	CU_ASSERT_EQUAL(milter_macros_set(&t, "{}", "x"), -1);
	CU_ASSERT_EQUAL(milter_macros_set(&t, "", "x"), -1);
	CU_ASSERT_EQUAL(milter_macros_set(&t, "a b", "x"), -1);
	CU_ASSERT_EQUAL(milter_macros_set(&t, "{a{b}", "x"), -1);
	memset(big, 'v', sizeof big);
	big[sizeof big - 1] = '\0';
	CU_ASSERT_EQUAL(milter_macros_set(&t, "i", big), -1);
	big[sizeof big - 2] = '\0';
	CU_ASSERT_EQUAL(milter_macros_set(&t, "i", big), 0);
	CU_ASSERT_EQUAL(milter_macros_set(&t, "auth_authen", NULL), 0);
	CU_ASSERT_PTR_NULL(milter_macros_get(&t, "auth_authen"));
	CU_ASSERT_EQUAL(t.n, 1);
	for (int i = 1; i < MILTER_MACROS_MAX; i++) {
		snprintf(name, sizeof name, "m%d", i);
		CU_ASSERT_EQUAL(milter_macros_set(&t, name, "x"), 0);
	}
	CU_ASSERT_EQUAL(milter_macros_set(&t, "one_more", "x"), -1);
	CU_ASSERT_EQUAL(milter_macros_set(&t, "m1", "replaced"), 0);
	CU_ASSERT_STRING_EQUAL(milter_macros_get(&t, "m1"), "replaced");
	milter_macros_free(&t);
}

static void
test_endpoints(void)
{
	static const struct {
		const char *s;
		int family;
	} cases[] = {
		{ "unix:/run/milter.sock", AF_UNIX },
		{ "inet:127.0.0.1:8891", AF_INET },
		{ "inet:localhost:11332", AF_INET },
		{ "inet:[::1]:8891", AF_INET6 },
		{ "unix:relative.sock", -1 },
		{ "unix:", -1 },
		{ "inet:127.0.0.1", -1 },
		{ "inet:127.0.0.1:0", -1 },
		{ "inet:127.0.0.1:65536", -1 },
		{ "inet:127.0.0.1:12x", -1 },
		{ "inet:127.0.0.1:", -1 },
		{ "inet:milter.example.com:8891", -1 },
		{ "inet:[::1:8891", -1 },
		{ "inet::8891", -1 },
		{ "tcp:127.0.0.1:1", -1 },
		{ "", -1 },
	};
	char path[200];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct filter_endpoint ep;
		char err[128] = "";
		int rc = filter_endpoint_parse(cases[i].s, &ep, err, sizeof err);

		CU_ASSERT_EQUAL(rc == 0 ? ep.family : -1, cases[i].family);
		if (rc != 0)
			CU_ASSERT(err[0] != '\0');
	}
	memset(path, 'a', sizeof path);
	memcpy(path, "unix:/", 6);
	path[sizeof path - 1] = '\0';
	{
		struct filter_endpoint ep;
		char err[128];
		CU_ASSERT_EQUAL(filter_endpoint_parse(path, &ep, err, sizeof err), -1);
	}
}

/* ---- the chain over an in-process filter ---- */

struct recorder {
	int lfd;
	char path[108];
	pthread_t th;
	struct buf headers;	/* "name\0value\0" per header */
	struct buf body;
	int eoh, eom;
	size_t max_chunk;
};

static int
read_full(int fd, void *p, size_t n)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = read(fd, c, n);
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static void *
recorder_main(void *arg)
{
	struct recorder *rec = arg;
	int fd = accept(rec->lfd, NULL, NULL);
	unsigned char h[4], *data = xmalloc(MILTER_PACKET_MAX + 1);

	while (fd >= 0 && read_full(fd, h, 4) == 0) {
		uint32_t n = (uint32_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
		unsigned char out[32];
		size_t olen = 0;

		if (n == 0 || n > MILTER_PACKET_MAX + 1 || read_full(fd, data, n) != 0)
			break;
		switch (data[0]) {
		case SMFIC_OPTNEG:
			olen = mkpkt(out, SMFIC_OPTNEG,
			    "\0\0\0\6\0\0\0\0\0\0\0\0", 12);
			break;
		case SMFIC_HEADER:
			buf_append(&rec->headers, data + 1, n - 1);
			olen = mkpkt(out, SMFIR_CONTINUE, "", 0);
			break;
		case SMFIC_BODY:
			buf_append(&rec->body, data + 1, n - 1);
			if (n - 1 > rec->max_chunk)
				rec->max_chunk = n - 1;
			olen = mkpkt(out, SMFIR_CONTINUE, "", 0);
			break;
		case SMFIC_EOH:
			rec->eoh++;
			olen = mkpkt(out, SMFIR_CONTINUE, "", 0);
			break;
		case SMFIC_BODYEOB:
			rec->eom++;
			olen = mkpkt(out, SMFIR_ACCEPT, "", 0);
			break;
		case SMFIC_MACRO:
		case SMFIC_ABORT:
			break;
		case SMFIC_QUIT:
			goto done;
		default:
			olen = mkpkt(out, SMFIR_CONTINUE, "", 0);
			break;
		}
		if (olen > 0 && write(fd, out, olen) != (ssize_t)olen)
			break;
	}
done:
	free(data);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void
recorder_start(struct recorder *rec, int n)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memset(rec, 0, sizeof *rec);
	snprintf(rec->path, sizeof rec->path, "/tmp/ms-test-milter-%d-%d.sock",
	    (int)getpid(), n);
	unlink(rec->path);
	memcpy(sun.sun_path, rec->path, strlen(rec->path) + 1);
	rec->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(bind(rec->lfd, (struct sockaddr *)&sun, sizeof sun) == 0);
	CU_ASSERT_FATAL(listen(rec->lfd, 1) == 0);
	buf_init(&rec->headers, 1 << 20);
	buf_init(&rec->body, 4 << 20);
	pthread_create(&rec->th, NULL, recorder_main, rec);
}

static void
recorder_join(struct recorder *rec)
{
	pthread_join(rec->th, NULL);
	close(rec->lfd);
	unlink(rec->path);
}

static int chain_wait_step(struct milter_chain *c, struct milter_verdict *v,
    int *fd_r);

/* The message through the chain in non-blocking mode (else blocking). */
static int chain_nb;

/* A call that returned done: in non-blocking mode, stepped to its end. */
static void
chain_finish(struct milter_chain *c, struct milter_verdict *v, int done)
{
	int fd;

	for (int i = 0; !done && i < 1000000; i++)
		done = chain_wait_step(c, v, &fd);
	CU_ASSERT(done);
}

/* Runs msg through a chain in pieces of piece bytes; rec records it. */
static void
chain_run(struct recorder *rec, const char *msg, size_t len, size_t piece,
    int n)
{
	struct milter_spec spec;
	struct milter_chain *c;
	struct milter_verdict v;
	const struct milter_mods *mods;
	char ep[140], err[128];
	struct milter_client cl = { "client.example", "192.0.2.1", 1234, AF_INET };

	recorder_start(rec, n);
	snprintf(ep, sizeof ep, "unix:%s", rec->path);
	CU_ASSERT_FATAL(milter_spec_init(&spec, ep, err, sizeof err) == 0);
	spec.command_timeout_ms = spec.eom_timeout_ms = 10000;
	c = milter_chain_new(&spec, 1, 1 << 20);
	milter_chain_connect(c, &cl, &v);
	CU_ASSERT_EQUAL(v.action, MILTER_CONTINUE);
	milter_chain_mail(c, "a@b", NULL, &v);
	milter_chain_rcpt(c, "c@d", NULL, &v);
	milter_chain_data(c, &v);
	milter_chain_set_nonblocking(c, chain_nb);
	for (size_t off = 0; off < len; off += piece) {
		size_t k = len - off < piece ? len - off : piece;
		chain_finish(c, &v, milter_chain_message(c, msg + off, k, &v));
		CU_ASSERT_EQUAL(v.action, MILTER_CONTINUE);
	}
	chain_finish(c, &v, milter_chain_eom(c, &v));
	milter_chain_set_nonblocking(c, 0);
	mods = milter_chain_mods(c);
	CU_ASSERT_EQUAL(v.action, MILTER_ACCEPT);
	CU_ASSERT_PTR_NOT_NULL(mods);
	milter_chain_free(&c);
	recorder_join(rec);
}

static void
test_chain_split(void)
{
	static const struct {
		const char *msg;
		const char *headers;	/* name\0value\0 ... */
		size_t hlen;
		const char *body;
	} cases[] = {
		{ "A: 1\r\nB:2\r\n\r\nbody\r\n", "A\0" "1\0B\0" "2\0", 8, "body\r\n" },
		{ "Subject: a\r\n b\r\n\tc\r\n\r\n", "Subject\0a\n b\n\tc\0", 16, "" },
		{ "X-A :  v\r\n\r\n.\r\n", "X-A\0 v\0", 7, ".\r\n" },
		{ "A: 1\r\nnot a header\r\nmore\r\n", "A\0" "1\0", 4,
		    "not a header\r\nmore\r\n" },
		{ "A: 1\r\n", "A\0" "1\0", 4, "" },
		{ "A: 1", "A\0" "1\0", 4, "" },
		{ " folded first\r\nA: 1\r\n\r\n", "", 0,
		    " folded first\r\nA: 1\r\n\r\n" },
		{ "\r\nbody only\r\n", "", 0, "body only\r\n" },
		{ "A: 1\n\nbare lf\n", "A\0" "1\0", 4, "bare lf\n" },
	};
	static const size_t pieces[] = { 1, 2, 3, 5, 7, 100000 };
	int n = 0;

	for (size_t k = 0; k < 2 * sizeof cases / sizeof cases[0]; k++) {
		size_t i = k % (sizeof cases / sizeof cases[0]);

		chain_nb = k >= sizeof cases / sizeof cases[0];
		for (size_t j = 0; j < sizeof pieces / sizeof pieces[0]; j++) {
			struct recorder rec;

			chain_run(&rec, cases[i].msg, strlen(cases[i].msg), pieces[j], n++);
			CU_ASSERT_EQUAL(rec.headers.len, cases[i].hlen);
			CU_ASSERT(rec.headers.len == cases[i].hlen &&
			    memcmp(rec.headers.data ? rec.headers.data : "",
			    cases[i].headers, cases[i].hlen) == 0);
			CU_ASSERT_EQUAL(rec.body.len, strlen(cases[i].body));
			CU_ASSERT_STRING_EQUAL(rec.body.data ? rec.body.data : "",
			    cases[i].body);
			CU_ASSERT_EQUAL(rec.eoh, 1);
			CU_ASSERT_EQUAL(rec.eom, 1);
			if (rec.headers.len != cases[i].hlen ||
			    rec.body.len != strlen(cases[i].body))
				printf("\nsplit case %zu piece %zu%s\n", i, pieces[j],
				    chain_nb ? " (non-blocking)" : "");
			buf_free(&rec.headers);
			buf_free(&rec.body);
		}
	}
	chain_nb = 0;
}

/* A large body arrives whole, in chunks of at most MILTER_CHUNK_MAX; an
 * over-long header is cut at MILTER_HEADER_MAX in what the filter sees. */
static void
test_chain_limits(void)
{
	struct buf m;
	struct recorder rec;
	size_t body_start;

	buf_init(&m, 4 << 20);
	buf_puts(&m, "X-Long: ");
	for (int i = 0; i < MILTER_HEADER_MAX; i++)
		buf_puts(&m, "h");
	buf_puts(&m, "\r\n continued\r\nB: 2\r\n\r\n");
	body_start = m.len;
	for (int i = 0; i < 30000; i++)
		buf_printf(&m, "%08d body line of the message\r\n", i);
	for (chain_nb = 0; chain_nb < 2; chain_nb++) {
		chain_run(&rec, m.data, m.len, 4093, 1000 + chain_nb);
		CU_ASSERT_EQUAL(rec.body.len, m.len - body_start);
		CU_ASSERT(memcmp(rec.body.data, m.data + body_start,
		    rec.body.len) == 0);
		CU_ASSERT_EQUAL(rec.max_chunk, MILTER_CHUNK_MAX);
		/* "X-Long\0" + at most MILTER_HEADER_MAX bytes + "\0", then
		 * "B\0" "2\0". */
		CU_ASSERT(rec.headers.len <= 7 + MILTER_HEADER_MAX + 1 + 4);
		CU_ASSERT(rec.headers.len >= 4 &&
		    memcmp(rec.headers.data + rec.headers.len - 4, "B\0" "2\0",
		    4) == 0);
		buf_free(&rec.headers);
		buf_free(&rec.body);
	}
	chain_nb = 0;
	buf_free(&m);
}


/* ---- the splitter alone, with hostile input ---- */

/* Splits msg fed in pieces of piece bytes: the events as text into out
 * ("H name=value|", "E|", "B n|", "Z|"), and the body into body. */
static void
split_run(const char *msg, size_t len, size_t piece, struct buf *out,
    struct buf *body)
{
	struct milter_split sp;
	const char *name, *value, *data;
	size_t n;
	enum milter_split_ev ev;

	milter_split_init(&sp);
	for (size_t off = 0;; off += piece) {
		if (off < len)
			milter_split_feed(&sp, msg + off, len - off < piece ?
			    len - off : piece);
		else
			milter_split_finish(&sp);
		while ((ev = milter_split_next(&sp, &name, &value, &data, &n)) !=
		    MILTER_SPLIT_NONE) {
			if (ev == MILTER_SPLIT_HEADER)
				buf_printf(out, "H %s=%zu|", name, strlen(value));
			else if (ev == MILTER_SPLIT_EOH)
				buf_puts(out, "E|");
			else if (ev == MILTER_SPLIT_BODY) {
				CU_ASSERT(n > 0 && n <= MILTER_CHUNK_MAX);
				buf_append(body, data, n);
			} else if (ev == MILTER_SPLIT_END)
				buf_puts(out, "Z|");
		}
		if (off >= len)
			break;
	}
	milter_split_free(&sp);
}

static void
test_split_hostile(void)
{
	static const struct {
		const char *msg;
		size_t len;
		const char *events;
		const char *body;
	} cases[] = {
#define M(s) s, sizeof s - 1
		{ M(""), "E|Z|", "" },
		{ M("\r\r\r"), "E|Z|", "\r\r\r" },
		{ M("A: x\0y\r\n\r\nb"), "H A=2|E|Z|", "b" },
		{ M(":\r\nA:\r\n"), "E|Z|", ":\r\nA:\r\n" },
		{ M("A:\r\n\r\n"), "H A=0|E|Z|", "" },
		{ M("A: 1\r\n\t\r\n\r\n"), "H A=4|E|Z|", "" },
		{ M("\x80: 1\r\n"), "E|Z|", "\x80: 1\r\n" },
		{ M("A: 1\n\r\n\n"), "H A=2|E|Z|", "\n" },
#undef M
	};
	struct buf long_msg, out, body, out2, body2;
	char want[64];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (size_t piece = 1; piece <= 8; piece += 7) {
			buf_init(&out, 4096);
			buf_init(&body, 4096);
			split_run(cases[i].msg, cases[i].len, piece, &out, &body);
			CU_ASSERT_STRING_EQUAL(out.data ? out.data : "",
			    cases[i].events);
			CU_ASSERT(body.len == strlen(cases[i].body) &&
			    memcmp(body.data ? body.data : "", cases[i].body,
			    body.len) == 0);
			if (strcmp(out.data ? out.data : "", cases[i].events) != 0 ||
			    body.len != strlen(cases[i].body))
				printf("\nsplit case %zu piece %zu: %s body %zu\n", i,
				    piece, out.data ? out.data : "", body.len);
			buf_free(&out);
			buf_free(&body);
		}
	}
	/* A header line three times the limit, fed whole and a byte at a
	 * time: cut the same way, and what follows is not lost. */
	buf_init(&long_msg, 1 << 20);
	buf_puts(&long_msg, "X: ");
	for (int i = 0; i < 3 * MILTER_HEADER_MAX; i++)
		buf_puts(&long_msg, "h");
	buf_puts(&long_msg, "\r\nB: 2\r\n\r\nthe body\r\n");
	buf_init(&out, 4096);
	buf_init(&body, 4096);
	buf_init(&out2, 4096);
	buf_init(&body2, 4096);
	split_run(long_msg.data, long_msg.len, long_msg.len, &out, &body);
	split_run(long_msg.data, long_msg.len, 1, &out2, &body2);
	snprintf(want, sizeof want, "H X=%d|H B=2|E|Z|", MILTER_HEADER_MAX - 2);
	CU_ASSERT_STRING_EQUAL(out.data, want);
	CU_ASSERT_STRING_EQUAL(out2.data, want);
	CU_ASSERT_STRING_EQUAL(body.data, "the body\r\n");
	CU_ASSERT_STRING_EQUAL(body2.data, "the body\r\n");
	buf_free(&out);
	buf_free(&body);
	buf_free(&out2);
	buf_free(&body2);
	buf_free(&long_msg);
}

/* ---- non-blocking mode: filters that answer MAIL, RCPT, DATA, headers
 * and the end of body only when the test says so ---- */

struct gate {
	int lfd;
	char path[108];
	int gate[2];		/* the test writes one byte per gated reply */
	pthread_t th;
	char cmds[256];		/* the commands it got, in order */
	size_t ncmds;
	pthread_mutex_t lock;
};

static void *
gate_main(void *arg)
{
	struct gate *g = arg;
	int fd = accept(g->lfd, NULL, NULL);
	unsigned char h[4], *data = xmalloc(MILTER_PACKET_MAX + 1);

	while (fd >= 0 && read_full(fd, h, 4) == 0) {
		uint32_t n = (uint32_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
		unsigned char out[64];
		size_t olen = 0;
		char say = 'c';

		if (n == 0 || n > MILTER_PACKET_MAX + 1 || read_full(fd, data, n) != 0)
			break;
		pthread_mutex_lock(&g->lock);
		if (g->ncmds < sizeof g->cmds - 1)
			g->cmds[g->ncmds++] = (char)data[0];
		pthread_mutex_unlock(&g->lock);
		if (data[0] == SMFIC_QUIT)
			break;
		if (data[0] == SMFIC_MACRO || data[0] == SMFIC_ABORT)
			continue;
		if (data[0] == SMFIC_OPTNEG) {
			olen = mkpkt(out, SMFIC_OPTNEG, "\0\0\0\6\0\0\0\0\0\0\0\0", 12);
		} else {
			int gated = data[0] == SMFIC_MAIL || data[0] == SMFIC_RCPT ||
			    data[0] == SMFIC_DATA || data[0] == SMFIC_HEADER ||
			    data[0] == SMFIC_BODYEOB;

			/* 'p': a progress reply, and the real one later */
			while (gated && read_full(g->gate[0], &say, 1) == 0 && say == 'p') {
				olen = mkpkt(out, SMFIR_PROGRESS, "", 0);
				if (write(fd, out, olen) != (ssize_t)olen)
					break;
			}
			if (say == 'n')
				continue;	/* never answers */
			olen = say == 'r' ? mkpkt(out, SMFIR_REJECT, "", 0) :
			    mkpkt(out, SMFIR_CONTINUE, "", 0);
		}
		if (write(fd, out, olen) != (ssize_t)olen)
			break;
	}
	free(data);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void
gate_start(struct gate *g, int n, struct milter_spec *spec)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char ep[140], err[128];

	memset(g, 0, sizeof *g);
	pthread_mutex_init(&g->lock, NULL);
	snprintf(g->path, sizeof g->path, "/tmp/ms-test-gate-%d-%d.sock",
	    (int)getpid(), n);
	unlink(g->path);
	memcpy(sun.sun_path, g->path, strlen(g->path) + 1);
	g->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(bind(g->lfd, (struct sockaddr *)&sun, sizeof sun) == 0);
	CU_ASSERT_FATAL(listen(g->lfd, 1) == 0);
	CU_ASSERT_FATAL(pipe(g->gate) == 0);
	pthread_create(&g->th, NULL, gate_main, g);
	snprintf(ep, sizeof ep, "unix:%s", g->path);
	CU_ASSERT_FATAL(milter_spec_init(spec, ep, err, sizeof err) == 0);
	spec->command_timeout_ms = 10000;
}

/* Ends g; out (if not NULL) gets every command g got. */
static void
gate_join(struct gate *g, char *out, size_t size)
{
	pthread_join(g->th, NULL);
	if (out != NULL)
		snprintf(out, size, "%.*s", (int)g->ncmds, g->cmds);
	close(g->lfd);
	close(g->gate[0]);
	close(g->gate[1]);
	unlink(g->path);
	pthread_mutex_destroy(&g->lock);
}

static void
gate_open(struct gate *g, char say)
{
	CU_ASSERT_EQUAL(write(g->gate[1], &say, 1), 1);
}

/* The commands g got so far. */
static void
gate_cmds(struct gate *g, char *out, size_t size)
{
	pthread_mutex_lock(&g->lock);
	snprintf(out, size, "%.*s", (int)g->ncmds, g->cmds);
	pthread_mutex_unlock(&g->lock);
}

/* Waits (bounded) for the socket the chain waits for, then steps: the
 * step's result. *fd_r is the socket it waited on. */
static int
chain_wait_step(struct milter_chain *c, struct milter_verdict *v, int *fd_r)
{
	int64_t deadline;
	enum milter_wait w = milter_chain_waiting(c, fd_r, &deadline);
	struct pollfd p = { .fd = *fd_r,
		.events = w == MILTER_WAIT_WRITE ? POLLOUT : POLLIN };

	CU_ASSERT(w != MILTER_WAIT_NONE);
	CU_ASSERT(deadline > time_mono_ms());
	CU_ASSERT_EQUAL(poll(&p, 1, 5000), 1);
	return milter_chain_step(c, v);
}

static void
test_chain_nonblocking(void)
{
	struct gate a, b;
	struct milter_spec specs[2];
	struct milter_chain *c;
	struct milter_verdict v;
	struct milter_client cl = { "client.example", "192.0.2.1", 1234, AF_INET };
	int fd_a = -1, fd_b = -1, fd = -1;
	int64_t deadline;
	char cmds[256];

	gate_start(&a, 0, &specs[0]);
	gate_start(&b, 1, &specs[1]);
	specs[0].default_action = MILTER_DEFAULT_ACCEPT;
	c = milter_chain_new(specs, 2, 1 << 20);
	milter_chain_connect(c, &cl, &v);	/* waits, in any mode */
	CU_ASSERT_EQUAL(v.action, MILTER_CONTINUE);
	milter_chain_set_nonblocking(c, 1);

	/* MAIL waits for a, then for b, then is over. */
	CU_ASSERT_EQUAL(milter_chain_mail(c, "a@b", NULL, &v), 0);
	CU_ASSERT_EQUAL(milter_chain_waiting(c, &fd_a, &deadline), MILTER_WAIT_READ);
	CU_ASSERT_EQUAL(milter_chain_step(c, &v), 0);	/* nothing yet */
	gate_open(&a, 'p');			/* progress: still waiting */
	CU_ASSERT_EQUAL(chain_wait_step(c, &v, &fd), 0);
	CU_ASSERT_EQUAL(fd, fd_a);
	gate_open(&a, 'c');
	CU_ASSERT_EQUAL(chain_wait_step(c, &v, &fd), 0);
	CU_ASSERT_EQUAL(milter_chain_waiting(c, &fd_b, &deadline), MILTER_WAIT_READ);
	CU_ASSERT(fd_b != fd_a);
	gate_open(&b, 'c');
	CU_ASSERT_EQUAL(chain_wait_step(c, &v, &fd), 1);
	CU_ASSERT_EQUAL(fd, fd_b);
	CU_ASSERT_EQUAL(v.action, MILTER_CONTINUE);
	CU_ASSERT_EQUAL(milter_chain_waiting(c, &fd, &deadline), MILTER_WAIT_NONE);

	/* a refuses the recipient: b is not asked. */
	CU_ASSERT_EQUAL(milter_chain_rcpt(c, "c@d", NULL, &v), 0);
	gate_open(&a, 'r');
	CU_ASSERT_EQUAL(chain_wait_step(c, &v, &fd), 1);
	CU_ASSERT_EQUAL(v.action, MILTER_REJECT);
	CU_ASSERT_STRING_EQUAL(v.milter, specs[0].ep.text);
	gate_cmds(&b, cmds, sizeof cmds);
	CU_ASSERT_PTR_NULL(strchr(cmds, SMFIC_RCPT));

	/* a never answers: past its deadline it fails, and its default
	 * action (accept) lets b decide. */
	CU_ASSERT_EQUAL(milter_chain_rcpt(c, "e@f", NULL, &v), 0);
	gate_open(&a, 'n');
	CU_ASSERT_EQUAL(milter_chain_expire(c, &v), 0);
	CU_ASSERT_EQUAL(milter_chain_waiting(c, &fd, &deadline), MILTER_WAIT_READ);
	CU_ASSERT_EQUAL(fd, fd_b);
	gate_open(&b, 'c');
	CU_ASSERT_EQUAL(chain_wait_step(c, &v, &fd), 1);
	CU_ASSERT_EQUAL(v.action, MILTER_CONTINUE);

	/* The ABORT waits in b's connection and goes out with the next
	 * MAIL; a is failed and answers at once. */
	milter_chain_abort(c);
	gate_cmds(&b, cmds, sizeof cmds);
	CU_ASSERT_PTR_NULL(strchr(cmds, SMFIC_ABORT));
	CU_ASSERT_EQUAL(milter_chain_mail(c, "g@h", NULL, &v), 0);
	gate_open(&b, 'r');
	CU_ASSERT_EQUAL(chain_wait_step(c, &v, &fd), 1);
	CU_ASSERT_EQUAL(v.action, MILTER_REJECT);
	CU_ASSERT_STRING_EQUAL(v.milter, specs[1].ep.text);
	milter_chain_free(&c);
	gate_join(&a, NULL, 0);
	/* b: ... the RCPT, then the ABORT, then the next MAIL, then QUIT */
	gate_join(&b, cmds, sizeof cmds);
	{
		char *abort_at = strchr(cmds, SMFIC_ABORT);

		CU_ASSERT_PTR_NOT_NULL_FATAL(abort_at);
		CU_ASSERT(strrchr(cmds, SMFIC_RCPT) < abort_at);
		CU_ASSERT(strrchr(cmds, SMFIC_MAIL) > abort_at);
	}
	CU_ASSERT_EQUAL(cmds[strlen(cmds) - 1], SMFIC_QUIT);
}

/* How many times cmd is in the command log. */
static size_t
cmd_count(const char *cmds, char cmd)
{
	size_t n = 0;

	for (; *cmds != '\0'; cmds++)
		n += *cmds == cmd;
	return n;
}

/* The message from the loop: each header and the end of body wait for
 * their replies; a refusal inside the message ends it at once. */
static void
test_chain_nonblocking_message(void)
{
	static const char msg[] = "A: 1\r\nB: 2\r\n\r\nbody\r\n";
	struct gate g;
	struct milter_spec spec;
	struct milter_chain *c;
	struct milter_verdict v;
	struct milter_client cl = { "client.example", "192.0.2.1", 1234, AF_INET };
	char cmds[256];

	gate_start(&g, 2, &spec);
	c = milter_chain_new(&spec, 1, 1 << 20);
	milter_chain_connect(c, &cl, &v);
	milter_chain_set_nonblocking(c, 1);
	for (int round = 0; round < 3; round++) {
		CU_ASSERT_EQUAL(milter_chain_mail(c, "a@b", NULL, &v), 0);
		gate_open(&g, 'c');
		chain_finish(c, &v, 0);
		CU_ASSERT_EQUAL(milter_chain_rcpt(c, "c@d", NULL, &v), 0);
		gate_open(&g, 'c');
		chain_finish(c, &v, 0);
		CU_ASSERT_EQUAL(milter_chain_data(c, &v), 0);
		gate_open(&g, 'c');
		chain_finish(c, &v, 0);
		/* the first header waits for its reply */
		CU_ASSERT_EQUAL(milter_chain_message(c, msg, sizeof msg - 1, &v), 0);
		if (round == 1) {
			/* refused at the first header: no more of it goes,
			 * and the end of body answers at once */
			gate_open(&g, 'r');
			chain_finish(c, &v, 0);
			CU_ASSERT_EQUAL(v.action, MILTER_REJECT);
			CU_ASSERT_EQUAL(milter_chain_eom(c, &v), 1);
			CU_ASSERT_EQUAL(v.action, MILTER_REJECT);
			CU_ASSERT_PTR_NULL(milter_chain_mods(c));
			continue;
		}
		gate_open(&g, 'p');	/* A: progress, then continue */
		gate_open(&g, 'c');
		gate_open(&g, 'c');	/* B */
		chain_finish(c, &v, 0);
		CU_ASSERT_EQUAL(v.action, MILTER_CONTINUE);
		CU_ASSERT_EQUAL(milter_chain_eom(c, &v), 0);
		gate_open(&g, round == 0 ? 'r' : 'c');
		chain_finish(c, &v, 0);
		CU_ASSERT_EQUAL(v.action, round == 0 ? MILTER_REJECT : MILTER_ACCEPT);
		CU_ASSERT_EQUAL(milter_chain_mods(c) != NULL, round == 2);
	}
	milter_chain_free(&c);
	gate_join(&g, cmds, sizeof cmds);
	/* headers A, B; A; A, B. Bodies and ends of body in rounds 0 and 2;
	 * a refusal ends the filter's transaction by itself (no ABORT). */
	CU_ASSERT_EQUAL(cmd_count(cmds, SMFIC_HEADER), 5);
	CU_ASSERT_EQUAL(cmd_count(cmds, SMFIC_EOH), 2);
	CU_ASSERT_EQUAL(cmd_count(cmds, SMFIC_BODY), 2);
	CU_ASSERT_EQUAL(cmd_count(cmds, SMFIC_BODYEOB), 2);
	CU_ASSERT_EQUAL(cmd_count(cmds, SMFIC_MAIL), 3);
	CU_ASSERT_EQUAL(cmd_count(cmds, SMFIC_ABORT), 0);
	CU_ASSERT_EQUAL(cmds[strlen(cmds) - 1], SMFIC_QUIT);
}

int
main(void)
{
	CU_pSuite s;
	int failed;

	log_set_level(LOG_LVL_ERROR);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("milter", NULL, NULL);
	if (s == NULL ||
	    CU_add_test(s, "packet decoder", test_decoder) == NULL ||
	    CU_add_test(s, "packet decoder byte by byte", test_decoder_bytewise) == NULL ||
	    CU_add_test(s, "reply decoder", test_reply_decode) == NULL ||
	    CU_add_test(s, "option negotiation", test_optneg) == NULL ||
	    CU_add_test(s, "custom replies", test_reply_check) == NULL ||
	    CU_add_test(s, "replies without % rules", test_reply_percent) == NULL ||
	    CU_add_test(s, "encoders", test_encoders) == NULL ||
	    CU_add_test(s, "header checks", test_header_checks) == NULL ||
	    CU_add_test(s, "modification list", test_mods) == NULL ||
	    CU_add_test(s, "header changes applied", test_apply_header) == NULL ||
	    CU_add_test(s, "macro table", test_macros) == NULL ||
	    CU_add_test(s, "endpoints", test_endpoints) == NULL ||
	    CU_add_test(s, "message split, every piece size", test_chain_split) == NULL ||
	    CU_add_test(s, "message limits", test_chain_limits) == NULL ||
	    CU_add_test(s, "non-blocking events", test_chain_nonblocking) == NULL ||
	    CU_add_test(s, "non-blocking message", test_chain_nonblocking_message) ==
	    NULL ||
	    CU_add_test(s, "splitter, hostile input", test_split_hostile) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 && CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
