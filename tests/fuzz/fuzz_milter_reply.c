/*
 * Fuzz target for what a hostile mail filter sends (filter/milter_proto.h,
 * filter/milter_mods.h): the input is a stream of packets, decoded one
 * after another as filter/milter.c does, fed once whole and once in pieces
 * whose size comes from the first byte (both must agree). Each packet goes
 * through the option negotiation or reply decoder; custom replies through
 * filter_reply_check; modifications into a bounded list. Checks what the
 * SMTP session will rely on: a checked reply is 4xx/5xx, bounded,
 * printable, lines joined by CRLF with the same code; a header value
 * cannot end the header section or start a new header; an address has no
 * brackets, spaces or control bytes; the replacement body stays within its
 * limit. Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/milter_mods.h"
#include "filter/milter_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)
#define FUZZ_BODY_MAX 4096

static void
check_reply(const char *in)
{
	char out[FILTER_REPLY_MAX + 1];
	const char *why = NULL;
	int code = filter_reply_check(in, FILTER_REPLY_PERCENT, out, sizeof out, &why);
	size_t n;

	if (code < 0) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	FUZZ_CHECK(code >= 400 && code <= 559);
	n = strlen(out);
	FUZZ_CHECK(n >= 4 && n <= FILTER_REPLY_MAX);
	for (const char *line = out;;) {
		const char *crlf = strstr(line, "\r\n");
		size_t ll = crlf != NULL ? (size_t)(crlf - line) : strlen(line);

		FUZZ_CHECK(ll >= 4 && memcmp(line, out, 3) == 0);
		FUZZ_CHECK(line[3] == (crlf != NULL ? '-' : ' '));
		for (size_t i = 0; i < ll; i++)
			FUZZ_CHECK((unsigned char)line[i] >= 0x20 &&
			    (unsigned char)line[i] <= 0x7e);
		if (crlf == NULL)
			break;
		line = crlf + 2;
	}
	/* The enhanced code of the first line is of the reply's class. */
	FUZZ_CHECK(out[4] == out[0] && out[5] == '.');
}

static void
check_mods(const struct milter_mods *m)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct milter_mod *d = &m->v[i];

		if (d->name != NULL)
			FUZZ_CHECK(milter_header_name_ok(d->name));
		if (d->value != NULL) {
			const char *v = d->value;
			size_t n = strlen(v);

			for (size_t k = 0; k < n; k++) {
				unsigned char c = (unsigned char)v[k];
				if (c == '\n')
					FUZZ_CHECK(k > 0 && v[k - 1] == '\r' && k + 1 < n &&
					    (v[k + 1] == ' ' || v[k + 1] == '\t'));
				else if (c == '\r')
					FUZZ_CHECK(k + 1 < n && v[k + 1] == '\n');
				else
					FUZZ_CHECK(c >= 0x20 || c == '\t');
				FUZZ_CHECK(c != 0x7f);
			}
		}
		if (d->addr != NULL) {
			for (const char *p = d->addr; *p != '\0'; p++)
				FUZZ_CHECK((unsigned char)*p >= 0x21 && *p != '<' &&
				    *p != '>' && *p != 0x7f);
			FUZZ_CHECK(strlen(d->addr) <= MILTER_ADDR_MAX);
		}
		if (d->args != NULL)
			for (const char *p = d->args; *p != '\0'; p++)
				FUZZ_CHECK((unsigned char)*p >= 0x20 &&
				    (unsigned char)*p < 0x7f);
	}
	FUZZ_CHECK(m->body.len <= FUZZ_BODY_MAX);
	FUZZ_CHECK(m->n <= MILTER_MODS_MAX);
}

static void
handle(const struct milter_packet *p, struct milter_mods *mods, int *first)
{
	struct milter_reply r;
	struct milter_optneg o;
	const char *why = NULL;
	int lead = p->len & 1;

	if (p->cmd == SMFIC_OPTNEG) {
		if (milter_optneg_decode(p, &o, &why) != 0)
			FUZZ_CHECK(why != NULL);
		return;
	}
	if (milter_reply_decode(p, &r, &why) != 0) {
		FUZZ_CHECK(why != NULL);
		return;
	}
	switch (r.cmd) {
	case SMFIR_REPLYCODE:
		check_reply(r.s1);
		break;
	case SMFIR_ADDHEADER:
		(void)milter_mods_header(mods, 0, MILTER_MOD_ADD_HEADER, 0, r.s1,
		    r.s2, lead, &why);
		break;
	case SMFIR_INSHEADER:
		(void)milter_mods_header(mods, 0, MILTER_MOD_INSERT_HEADER, r.index,
		    r.s1, r.s2, lead, &why);
		break;
	case SMFIR_CHGHEADER:
		(void)milter_mods_header(mods, 0, MILTER_MOD_CHANGE_HEADER, r.index,
		    r.s1, r.s2, lead, &why);
		break;
	case SMFIR_CHGFROM:
		(void)milter_mods_addr(mods, 0, MILTER_MOD_CHANGE_FROM, r.s1, r.s2, &why);
		break;
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
		(void)milter_mods_addr(mods, 0, MILTER_MOD_ADD_RCPT, r.s1, r.s2, &why);
		break;
	case SMFIR_DELRCPT:
		(void)milter_mods_addr(mods, 0, MILTER_MOD_DELETE_RCPT, r.s1, NULL, &why);
		break;
	case SMFIR_REPLBODY:
		if (milter_mods_body(mods, 0, *first, r.body, r.body_len, &why) != 0)
			milter_mods_rollback(mods);
		*first = 0;
		break;
	case SMFIR_QUARANTINE:
		(void)milter_mods_quarantine(mods, 0, r.s1, &why);
		break;
	case SMFIR_ACCEPT:
		milter_mods_commit(mods);
		*first = 1;
		break;
	default:
		break;
	}
}

/* Decodes packets from in, piece bytes at a time; returns their count. */
static size_t
run(const uint8_t *in, size_t len, size_t piece)
{
	uint8_t *pend = malloc(len + 1);
	size_t plen = 0, off = 0, count = 0;
	struct milter_mods mods;
	int first = 1, dead = 0;

	milter_mods_init(&mods, FUZZ_BODY_MAX);
	while (off < len && !dead) {
		size_t n = len - off < piece ? len - off : piece;

		memcpy(pend + plen, in + off, n);
		plen += n;
		off += n;
		for (;;) {
			struct milter_packet p;
			size_t used;
			const char *why = NULL;
			int rc = milter_packet_decode(pend, plen, &used, &p, &why);

			if (rc == MILTER_DECODE_ERROR) {
				FUZZ_CHECK(why != NULL);
				dead = 1;
				break;
			}
			if (rc == MILTER_DECODE_MORE) {
				FUZZ_CHECK(plen < 5 + MILTER_PACKET_MAX + 1);
				break;
			}
			FUZZ_CHECK(used >= 5 && used <= plen);
			FUZZ_CHECK(p.len == used - 5);
			handle(&p, &mods, &first);
			check_mods(&mods);
			count++;
			memmove(pend, pend + used, plen - used);
			plen -= used;
		}
	}
	milter_mods_free(&mods);
	free(pend);
	return count + (size_t)dead * 1000000;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t piece;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] % 23 + 1;
	FUZZ_CHECK(run(data + 1, size - 1, size) == run(data + 1, size - 1, piece));
	return 0;
}
