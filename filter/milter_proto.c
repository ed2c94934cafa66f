/*
 * milter_proto: packets of the mail filter protocol (see milter_proto.h).
 */
#include "filter/milter_proto.h"

#include <stdio.h>
#include <string.h>

#include "lib/util.h"

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

int
milter_packet_decode(const unsigned char *in, size_t len, size_t *used_r,
    struct milter_packet *p, const char **why_r)
{
	uint32_t plen;

	*used_r = 0;
	if (len < 4)
		return MILTER_DECODE_MORE;
	plen = get32(in);
	if (plen == 0) {
		*why_r = "packet length 0";
		return MILTER_DECODE_ERROR;
	}
	if (plen > MILTER_PACKET_MAX + 1) {
		*why_r = "packet length over the limit";
		return MILTER_DECODE_ERROR;
	}
	if (len - 4 < plen)
		return MILTER_DECODE_MORE;
	p->cmd = in[4];
	p->data = in + 5;
	p->len = plen - 1;
	*used_r = 4 + (size_t)plen;
	return MILTER_DECODE_DONE;
}

/* Reads the NUL-terminated string at data[*off]: returns it, or NULL when
 * no NUL ends it inside len. */
static const char *
take_string(const unsigned char *data, size_t len, size_t *off)
{
	const unsigned char *nul;

	if (*off >= len)
		return NULL;
	nul = memchr(data + *off, '\0', len - *off);
	if (nul == NULL)
		return NULL;
	{
		const char *s = (const char *)data + *off;
		*off = (size_t)(nul - data) + 1;
		return s;
	}
}

/* Exactly min..max strings fill the data after skip bytes. */
static int
take_strings(const struct milter_packet *p, size_t skip, int min, int max,
    const char **s1, const char **s2, const char **why_r)
{
	size_t off = skip;
	int n = 0;

	*s1 = NULL;
	*s2 = NULL;
	while (off < p->len) {
		const char *s;

		if (n == max) {
			*why_r = "data after the last string";
			return -1;
		}
		s = take_string(p->data, p->len, &off);
		if (s == NULL) {
			*why_r = "string without its NUL";
			return -1;
		}
		if (n == 0)
			*s1 = s;
		else
			*s2 = s;
		n++;
	}
	if (n < min) {
		*why_r = "missing string";
		return -1;
	}
	return 0;
}

int
milter_reply_decode(const struct milter_packet *p, struct milter_reply *r,
    const char **why_r)
{
	memset(r, 0, sizeof *r);
	r->cmd = p->cmd;
	switch (p->cmd) {
	case SMFIR_ACCEPT:
	case SMFIR_CONTINUE:
	case SMFIR_DISCARD:
	case SMFIR_PROGRESS:
	case SMFIR_REJECT:
	case SMFIR_SKIP:
	case SMFIR_TEMPFAIL:
	case SMFIR_SHUTDOWN:
	case SMFIR_CONN_FAIL:
		if (p->len != 0) {
			*why_r = "data after a reply that has none";
			return -1;
		}
		return 0;
	case SMFIR_REPLYCODE:
	case SMFIR_QUARANTINE:
	case SMFIR_ADDRCPT:
	case SMFIR_DELRCPT:
		return take_strings(p, 0, 1, 1, &r->s1, &r->s2, why_r);
	case SMFIR_CHGFROM:
	case SMFIR_ADDRCPT_PAR:
		return take_strings(p, 0, 1, 2, &r->s1, &r->s2, why_r);
	case SMFIR_ADDHEADER:
		return take_strings(p, 0, 2, 2, &r->s1, &r->s2, why_r);
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (p->len < 4) {
			*why_r = "header index cut off";
			return -1;
		}
		r->index = get32(p->data);
		return take_strings(p, 4, 2, 2, &r->s1, &r->s2, why_r);
	case SMFIR_REPLBODY:
		r->body = p->data;
		r->body_len = p->len;
		return 0;
	default:
		*why_r = "unknown reply";
		return -1;
	}
}

int
milter_optneg_decode(const struct milter_packet *p, struct milter_optneg *o,
    const char **why_r)
{
	size_t off = 12;

	memset(o, 0, sizeof *o);
	if (p->cmd != SMFIC_OPTNEG) {
		*why_r = "not an option negotiation reply";
		return -1;
	}
	if (p->len < 12) {
		*why_r = "option negotiation reply too short";
		return -1;
	}
	o->version = get32(p->data);
	o->actions = get32(p->data + 4);
	o->steps = get32(p->data + 8);
	while (off < p->len) {
		uint32_t stage;
		const char *names;

		if (p->len - off < 4) {
			*why_r = "macro stage cut off";
			return -1;
		}
		stage = get32(p->data + off);
		off += 4;
		names = take_string(p->data, p->len, &off);
		if (names == NULL) {
			*why_r = "macro list without its NUL";
			return -1;
		}
		if (stage < MILTER_STAGES)
			o->macros[stage] = names;
	}
	return 0;
}

/* ---- encoding ---- */

/* Appends the 5-byte head of a packet of datalen data bytes. */
static int
encode_head(struct buf *out, unsigned char cmd, size_t datalen)
{
	unsigned char h[5];

	if (datalen > MILTER_PACKET_MAX || out->len + 5 + datalen > out->max)
		return -1;
	put32(h, (uint32_t)(datalen + 1));
	h[4] = cmd;
	return buf_append(out, h, 5);
}

static void
encode_str(struct buf *out, const char *s)
{
	(void)buf_append(out, s, strlen(s) + 1);
}

int
milter_encode_simple(struct buf *out, unsigned char cmd)
{
	return encode_head(out, cmd, 0);
}

int
milter_encode_optneg(struct buf *out, uint32_t version, uint32_t actions,
    uint32_t steps)
{
	unsigned char d[12];

	put32(d, version);
	put32(d + 4, actions);
	put32(d + 8, steps);
	if (encode_head(out, SMFIC_OPTNEG, sizeof d) != 0)
		return -1;
	return buf_append(out, d, sizeof d);
}

int
milter_encode_macros(struct buf *out, unsigned char stage_cmd,
    const char *const *names, const char *const *values, size_t n)
{
	size_t len = 1;

	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1 + strlen(values[i]) + 1;
	if (encode_head(out, SMFIC_MACRO, len) != 0)
		return -1;
	(void)buf_append(out, &stage_cmd, 1);
	for (size_t i = 0; i < n; i++) {
		encode_str(out, names[i]);
		encode_str(out, values[i]);
	}
	return 0;
}

int
milter_encode_connect(struct buf *out, const char *host, char family,
    uint16_t port, const char *addr)
{
	size_t len = strlen(host) + 1 + 1;
	unsigned char pb[2] = { (unsigned char)(port >> 8), (unsigned char)port };

	if (family != SMFIA_UNKNOWN)
		len += 2 + strlen(addr) + 1;
	if (encode_head(out, SMFIC_CONNECT, len) != 0)
		return -1;
	encode_str(out, host);
	(void)buf_append(out, &family, 1);
	if (family != SMFIA_UNKNOWN) {
		(void)buf_append(out, pb, 2);
		encode_str(out, addr);
	}
	return 0;
}

int
milter_encode_string(struct buf *out, unsigned char cmd, const char *s)
{
	if (encode_head(out, cmd, strlen(s) + 1) != 0)
		return -1;
	encode_str(out, s);
	return 0;
}

int
milter_encode_argv(struct buf *out, unsigned char cmd, const char *const *argv)
{
	size_t len = 0;

	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
		len += strlen(argv[i]) + 1;
	if (encode_head(out, cmd, len) != 0)
		return -1;
	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
		encode_str(out, argv[i]);
	return 0;
}

int
milter_encode_header(struct buf *out, const char *name, const char *value)
{
	if (encode_head(out, SMFIC_HEADER, strlen(name) + 1 + strlen(value) + 1) != 0)
		return -1;
	encode_str(out, name);
	encode_str(out, value);
	return 0;
}

int
milter_encode_body(struct buf *out, const void *data, size_t len)
{
	if (len > MILTER_CHUNK_MAX || encode_head(out, SMFIC_BODY, len) != 0)
		return -1;
	return buf_append(out, data, len);
}

const char *
milter_cmd_name(unsigned char cmd, int from_filter)
{
	static const struct {
		unsigned char c;
		const char *name;
	} mta[] = {
		{ SMFIC_ABORT, "SMFIC_ABORT" }, { SMFIC_BODY, "SMFIC_BODY" },
		{ SMFIC_CONNECT, "SMFIC_CONNECT" }, { SMFIC_MACRO, "SMFIC_MACRO" },
		{ SMFIC_BODYEOB, "SMFIC_BODYEOB" }, { SMFIC_HELO, "SMFIC_HELO" },
		{ SMFIC_QUIT_NC, "SMFIC_QUIT_NC" }, { SMFIC_HEADER, "SMFIC_HEADER" },
		{ SMFIC_MAIL, "SMFIC_MAIL" }, { SMFIC_EOH, "SMFIC_EOH" },
		{ SMFIC_OPTNEG, "SMFIC_OPTNEG" }, { SMFIC_QUIT, "SMFIC_QUIT" },
		{ SMFIC_RCPT, "SMFIC_RCPT" }, { SMFIC_DATA, "SMFIC_DATA" },
		{ SMFIC_UNKNOWN, "SMFIC_UNKNOWN" },
	}, filt[] = {
		{ SMFIR_ADDRCPT, "SMFIR_ADDRCPT" }, { SMFIR_DELRCPT, "SMFIR_DELRCPT" },
		{ SMFIR_ADDRCPT_PAR, "SMFIR_ADDRCPT_PAR" },
		{ SMFIR_SHUTDOWN, "SMFIR_SHUTDOWN" }, { SMFIR_ACCEPT, "SMFIR_ACCEPT" },
		{ SMFIR_REPLBODY, "SMFIR_REPLBODY" },
		{ SMFIR_CONTINUE, "SMFIR_CONTINUE" },
		{ SMFIR_DISCARD, "SMFIR_DISCARD" }, { SMFIR_CHGFROM, "SMFIR_CHGFROM" },
		{ SMFIR_CONN_FAIL, "SMFIR_CONN_FAIL" },
		{ SMFIR_ADDHEADER, "SMFIR_ADDHEADER" },
		{ SMFIR_INSHEADER, "SMFIR_INSHEADER" },
		{ SMFIR_SETSYMLIST, "SMFIR_SETSYMLIST" },
		{ SMFIR_CHGHEADER, "SMFIR_CHGHEADER" },
		{ SMFIR_PROGRESS, "SMFIR_PROGRESS" },
		{ SMFIR_QUARANTINE, "SMFIR_QUARANTINE" },
		{ SMFIR_REJECT, "SMFIR_REJECT" }, { SMFIR_SKIP, "SMFIR_SKIP" },
		{ SMFIR_TEMPFAIL, "SMFIR_TEMPFAIL" },
		{ SMFIR_REPLYCODE, "SMFIR_REPLYCODE" },
		{ SMFIC_OPTNEG, "SMFIC_OPTNEG" },
	};

	if (from_filter) {
		for (size_t i = 0; i < sizeof filt / sizeof filt[0]; i++)
			if (filt[i].c == cmd)
				return filt[i].name;
	} else {
		for (size_t i = 0; i < sizeof mta / sizeof mta[0]; i++)
			if (mta[i].c == cmd)
				return mta[i].name;
	}
	return "unknown";
}
