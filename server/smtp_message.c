/*
 * smtp_message: the Received header, incremental content intake and the
 * one-pass header scan (contract in smtp_message.h).
 *
 * The header scan is a small state machine over the unstuffed content,
 * run on each piece right after the data parser wrote it. A header line is
 * a field name (printable ASCII but ':'), optional blanks and a colon; a
 * line starting with a blank continues the field before it. The header
 * section ends at the first line that is neither: the empty line, or a
 * first body line where the empty line is missing. That line's start is
 * the header end, where submission headers go in.
 */
#include "server/smtp_message.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/util.h"

/* Room for our Received header and the submission headers. */
#define MESSAGE_HEADROOM 4096
#define HS_NAME_MAX 16		/* longest field name compared, plus one */

enum hscan {
	HS_BOL,			/* at a line start */
	HS_NAME,		/* in a field name */
	HS_NAME_WS,		/* blanks between the name and its colon */
	HS_VALUE,		/* in a field value, up to its LF */
	HS_EMPTY_CR,		/* a CR at a line start */
	HS_BODY,		/* past the header section */
};

struct smtp_message_rec {
	struct buf b;
	size_t off;		/* the record starts at b.data + off */
	int busy;		/* with the committer */
	struct smtp_message_rec *next;	/* every body buffer of the message */
};

struct smtp_message {
	const struct smtp_message_stager *stager;
	struct buf head;		/* the first buffer; record 0 after the cut */
	int cut;			/* records are being staged */
	int head_split;			/* the header section passed record 0 */
	struct smtp_message_rec *cur;	/* after the cut: the buffer filling;
					 * NULL while every buffer is out */
	struct smtp_message_rec *recs;
	unsigned nrecs, nbusy;
	queue_id_t id;
	uint32_t staged;
	uint64_t staged_bytes;
	enum commit_status status;
	size_t reserved;		/* bytes of the stager's reserve held */
	size_t body_reserved;		/* of them, for a replaced body in head */
	size_t base;			/* message bytes before the buffer written */
	size_t received_len;		/* our Received header */
	size_t added;			/* submission headers inserted at the end
					 * of the header section (before the cut) */
	struct smtp_data_parser dp;	/* dp.out: the buffer written */
	struct smtp_message_facts facts;
	int submission;
	size_t scan;			/* next byte of dp.out to scan */
	enum hscan hs;
	int any_field;			/* a field was seen (continuations allowed) */
	size_t line_start;		/* in the message bytes */
	char name[HS_NAME_MAX];
	size_t name_len;
	char date[80];
	char msgid[300];
	char added_fields[80 + 300];	/* what message_header_end added */
	void (*tap)(void *, const char *, size_t);
	void *tap_arg;
};

struct smtp_message *
smtp_message_new(const struct smtp_message_info *info)
{
	struct smtp_message *m;
	char date[64], id[QUEUE_ID_LEN + 1];
	const char *ip6 = strchr(info->client_ip, ':') ? "IPv6:" : "";

	if (info->stager != NULL &&
	    !info->stager->reserve(info->stager->arg, SMTP_MESSAGE_BASE))
		return NULL;
	m = xcalloc(1, sizeof *m);
	m->stager = info->stager;
	m->id = info->id;
	m->reserved = info->stager != NULL ? SMTP_MESSAGE_BASE : 0;
	m->status = COMMIT_OK;
	time_rfc5322(info->now, date, sizeof date);
	queue_id_format(info->id, id, sizeof id);
	buf_init(&m->head, info->stager != NULL ? SMTP_MESSAGE_BUF + SMTP_MESSAGE_TOP_ROOM :
	    info->max_size + MESSAGE_HEADROOM);
	if (info->client_name && info->client_name[0])
		buf_printf(&m->head, "Received: from %s (%s [%s%s])", info->helo,
		    info->client_name, ip6, info->client_ip);
	else
		buf_printf(&m->head, "Received: from %s ([%s%s])", info->helo, ip6,
		    info->client_ip);
	buf_printf(&m->head, "\r\n\tby %s (mailserver) with %s id %s",
	    info->hostname, info->protocol, id);
	if (info->tls)
		buf_printf(&m->head, "\r\n\t(using %s)", info->tls);
	if (info->rcpt)
		buf_printf(&m->head, "\r\n\tfor <%s>", info->rcpt);
	buf_printf(&m->head, "; %s\r\n", date);
	m->facts.received = 1;
	m->received_len = m->head.len;
	m->scan = m->head.len;
	m->line_start = m->head.len;
	m->hs = HS_BOL;
	m->submission = info->submission;
	m->tap = info->tap;
	m->tap_arg = info->tap_arg;
	snprintf(m->date, sizeof m->date, "Date: %s\r\n", date);
	snprintf(m->msgid, sizeof m->msgid, "Message-ID: <%s@%s>\r\n", id,
	    info->hostname);
	smtp_data_parser_init(&m->dp, info->mode, &m->head, info->max_size);
	return m;
}

/* Inserts text at offset at of b (record 0). Returns its length. */
static size_t
message_insert(struct smtp_message *m, struct buf *b, size_t at,
    const char *text)
{
	size_t n = strlen(text), tail = b->len - at;

	if (n == 0 || buf_append(b, text, n) < 0)
		return 0;
	memmove(b->data + at + n, b->data + at, tail);
	memcpy(b->data + at, text, n);
	if (m->dp.out == b)
		m->scan += n;
	return n;
}

/* The header section ended at line_start: note it, add what submission
 * needs: there, or (the header section was longer than the first
 * buffer) right after our Received header. */
static void
message_header_end(struct smtp_message *m)
{
	char add[sizeof m->date + sizeof m->msgid];

	m->hs = HS_BODY;
	m->facts.header_done = 1;
	m->facts.header_end = m->line_start;
	m->head_split = m->cut;	/* cut before it ended */
	if (!m->submission || m->dp.flags != 0)
		return;
	/* Both fit: add is as large as the two together. */
	snprintf(add, sizeof add, "%s%s", m->facts.has_date ? "" : m->date,
	    m->facts.has_message_id ? "" : m->msgid);
	str_copy(m->added_fields, add, sizeof m->added_fields);
	if (!m->cut)
		m->added = message_insert(m, &m->head, m->line_start, add);
	else
		message_insert(m, &m->head, m->received_len, add);
}

static void
message_field(struct smtp_message *m)
{
	m->any_field = 1;
	if (m->name_len == 8 && strncasecmp(m->name, "received", 8) == 0)
		m->facts.received++;
	else if (m->name_len == 4 && strncasecmp(m->name, "date", 4) == 0)
		m->facts.has_date = 1;
	else if (m->name_len == 10 && strncasecmp(m->name, "message-id", 10) == 0)
		m->facts.has_message_id = 1;
}

static int
message_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

/* Scans the content written to dp.out since the last call. */
static void
message_scan(struct smtp_message *m)
{
	struct buf *b = m->dp.out;

	while (m->scan < b->len && m->hs != HS_BODY) {
		unsigned char c = (unsigned char)b->data[m->scan];

		switch (m->hs) {
		case HS_BOL:
			m->line_start = m->base + m->scan;
			if (c == '\r')
				m->hs = HS_EMPTY_CR;
			else if ((c == ' ' || c == '\t') && m->any_field)
				m->hs = HS_VALUE;
			else if (message_ftext(c)) {
				m->name[0] = (char)c;
				m->name_len = 1;
				m->hs = HS_NAME;
			} else {
				message_header_end(m);
				continue;
			}
			break;
		case HS_NAME:
			if (c == ':') {
				message_field(m);
				m->hs = HS_VALUE;
			} else if (message_ftext(c)) {
				if (m->name_len < HS_NAME_MAX)
					m->name[m->name_len] = (char)c;
				m->name_len++;
			} else if (c == ' ' || c == '\t') {
				m->hs = HS_NAME_WS;
			} else {
				message_header_end(m);
				continue;
			}
			break;
		case HS_NAME_WS:
			if (c == ':') {
				message_field(m);
				m->hs = HS_VALUE;
			} else if (c != ' ' && c != '\t') {
				message_header_end(m);
				continue;
			}
			break;
		case HS_VALUE: {
			const char *lf = memchr(b->data + m->scan, '\n',
			    b->len - m->scan);

			if (lf == NULL) {
				m->scan = b->len;
				continue;
			}
			m->scan = (size_t)(lf - b->data);
			m->hs = HS_BOL;
			break;
		}
		case HS_EMPTY_CR:
		default:
			message_header_end(m);
			continue;
		}
		m->scan++;
	}
	if (m->hs == HS_BODY)
		m->scan = b->len;
}

/* ---- records ---- */

/* The buffer the data parser writes to now (NULL: every one is out). */
static struct buf *
message_out(struct smtp_message *m)
{
	if (!m->cut)
		return &m->head;
	return m->cur != NULL ? &m->cur->b : NULL;
}

/* Writing goes on in out from its start. */
static void
message_write_to(struct smtp_message *m, struct buf *out)
{
	if (out != NULL)
		m->dp.out = out;
	m->scan = 0;
}

/* A new body buffer: the base reserve holds one, more need the
 * stager's consent. NULL when there may be none now. */
static struct smtp_message_rec *
message_rec_new(struct smtp_message *m)
{
	struct smtp_message_rec *r;

	if (m->nrecs > SMTP_MESSAGE_DEEP)
		return NULL;
	if (m->nrecs > SMTP_MESSAGE_INFLIGHT) {
		if (m->stager->reserve_deep == NULL ||
		    !m->stager->reserve_deep(m->stager->arg, SMTP_MESSAGE_BUF))
			return NULL;
		m->reserved += SMTP_MESSAGE_BUF;
	} else if (m->nrecs >= 1) {
		if (!m->stager->reserve(m->stager->arg, SMTP_MESSAGE_BUF))
			return NULL;
		m->reserved += SMTP_MESSAGE_BUF;
	}
	r = xcalloc(1, sizeof *r);
	buf_init(&r->b, SMTP_MESSAGE_BUF);
	r->next = m->recs;
	m->recs = r;
	m->nrecs++;
	return r;
}

static void
message_rec_free(struct smtp_message *m, struct smtp_message_rec *r)
{
	for (struct smtp_message_rec **rp = &m->recs; *rp; rp = &(*rp)->next) {
		if (*rp == r) {
			*rp = r->next;
			break;
		}
	}
	if (m->nrecs-- > 1) {
		m->stager->release(m->stager->arg, SMTP_MESSAGE_BUF);
		m->reserved -= SMTP_MESSAGE_BUF;
	}
	buf_free(&r->b);
	free(r);
}

static void
message_stage(struct smtp_message *m, struct smtp_message_rec *r)
{
	r->busy = 1;
	m->nbusy++;
	m->staged++;
	m->staged_bytes += r->b.len - r->off;
	m->stager->stage(m->stager->arg, m, r, m->staged, r->b.data + r->off,
	    r->b.len - r->off);
}

/* The first buffer is full: what follows the header section in it is
 * record 1, the header section stays as record 0 (a copy of it: it is
 * short), and body buffers take the rest. */
static void
message_cut(struct smtp_message *m)
{
	size_t hl = m->facts.header_done ? m->facts.header_end + m->added :
	    m->head.len;
	struct smtp_message_rec *r;

	m->cut = 1;
	r = message_rec_new(m);		/* the base reserve's: never NULL */
	m->base = m->head.len;
	if (hl < m->head.len) {
		buf_free(&r->b);
		r->b = m->head;
		r->off = hl;
		buf_init(&m->head, SMTP_MESSAGE_BUF + SMTP_MESSAGE_TOP_ROOM);
		buf_append(&m->head, r->b.data, hl);
		message_stage(m, r);
		m->cur = message_rec_new(m);
	} else {
		m->cur = r;
	}
	message_write_to(m, message_out(m));
}

/* The body buffer is full: it goes, the next one fills. */
static void
message_rotate(struct smtp_message *m)
{
	struct smtp_message_rec *r = m->cur;

	m->base += r->b.len;
	message_stage(m, r);
	m->cur = message_rec_new(m);
	message_write_to(m, message_out(m));
}

int
smtp_message_blocked(const struct smtp_message *m)
{
	return m->cut && m->cur == NULL;
}

void
smtp_message_staged(struct smtp_message *m, struct smtp_message_rec *r,
    enum commit_status status)
{
	assert(r->busy && m->nbusy > 0);
	r->busy = 0;
	m->nbusy--;
	/* A full queue is the cause when a record after a refused one is
	 * refused too (it finds no stage): that reply wins. */
	if (status != COMMIT_OK && m->status != COMMIT_FULL)
		m->status = status;
	buf_reset(&r->b);
	r->off = 0;
	if (m->cur == NULL) {
		/* It was waited for: writing goes on in it. */
		m->cur = r;
		message_write_to(m, &r->b);
	} else {
		/* Nobody waits: a slow client holds one buffer, no more. */
		message_rec_free(m, r);
	}
}

queue_id_t
smtp_message_id(const struct smtp_message *m)
{
	return m->id;
}

unsigned
smtp_message_inflight(const struct smtp_message *m)
{
	return m->nbusy;
}

uint32_t
smtp_message_staged_count(const struct smtp_message *m)
{
	return m->staged;
}

enum commit_status
smtp_message_status(const struct smtp_message *m)
{
	return m->status;
}

size_t
smtp_message_feed(struct smtp_message *m, const char *in, size_t len,
    int *done_r)
{
	size_t total = 0;

	*done_r = 0;
	while (total < len) {
		struct buf *out = message_out(m);
		size_t want = len - total, n, before;

		if (out == NULL)
			break;		/* blocked */
		if (m->stager != NULL) {
			if (out->len >= SMTP_MESSAGE_CHUNK) {
				if (!m->cut)
					message_cut(m);
				else
					message_rotate(m);
				continue;
			}
			/* The output never passes the input by more than a
			 * held CR: a record stays within its buffer. */
			if (want > SMTP_MESSAGE_CHUNK - out->len)
				want = SMTP_MESSAGE_CHUNK - out->len;
		}
		before = out->len;
		n = smtp_data_parse(&m->dp, in + total, want, done_r);
		if (m->tap != NULL && out->len > before)
			m->tap(m->tap_arg, out->data + before, out->len - before);
		message_scan(m);
		if (m->status != COMMIT_OK && m->cut) {
			/* A record was refused: the rest is read, not kept. */
			buf_reset(out);
			m->scan = 0;
		}
		total += n;
		if (*done_r || n == 0)
			break;
	}
	m->facts.content = m->dp.size;
	return total;
}

int
smtp_message_finish(struct smtp_message *m, char *reply, size_t replysize)
{
	unsigned flags = m->dp.mode == SMTP_DATA_BDAT ? smtp_data_finish(&m->dp) :
	    m->dp.flags;
	const char *why = NULL;

	if (flags & SMTP_DATA_TOO_BIG)
		why = "552 5.3.4 Message size exceeds fixed limit";
	else if (flags & SMTP_DATA_BARE_EOL)
		why = "550 5.5.2 Message contains bare CR or LF; only CRLF ends a line";
	else if (flags & SMTP_DATA_NUL)
		why = "550 5.6.0 Message contains NUL bytes";
	else if (flags & SMTP_DATA_LONG_LINE)
		/* RFC 5321 4.5.3.1.6; a 5xx allowed at the end of data, not 500 */
		why = "550 5.6.0 Message contains a line longer than 998 octets";
	else if (m->facts.received > SMTP_MESSAGE_MAX_HOPS)
		/* a mail loop (RFC 5321 6.3) */
		why = "554 5.4.6 Too many hops: mail loop detected";
	if (why != NULL) {
		str_copy(reply, why, replysize);
		return -1;
	}
	if (m->hs != HS_BODY) {
		struct buf *out = message_out(m);

		/* The whole message was header. A last line without its CRLF
		 * (BDAT allows that) gets one before anything is added at
		 * its end. */
		if (!m->cut && m->submission &&
		    !(m->facts.has_date && m->facts.has_message_id) &&
		    m->head.len > m->line_start && m->head.data[m->head.len - 1] != '\n')
			buf_append(&m->head, "\r\n", 2);
		m->line_start = m->base + (out != NULL ? out->len : 0);
		message_header_end(m);
	}
	return 0;
}

int
smtp_message_prepend(struct smtp_message *m, const char *lines)
{
	size_t n = strlen(lines);

	if (n == 0)
		return 0;
	/* Record 0 is the head, whether the message was cut or not. */
	if (message_insert(m, &m->head, 0, lines) == 0)
		return -1;
	m->facts.header_end += n;
	m->line_start += n;
	m->received_len += n;
	return 0;
}

const char *
smtp_message_added_fields(const struct smtp_message *m)
{
	return m->added_fields;
}

int
smtp_message_header(const struct smtp_message *m, const char **p, size_t *len)
{
	if (!m->facts.header_done || m->head_split ||
	    m->facts.header_end > m->head.len ||
	    m->facts.header_end < m->received_len)
		return -1;
	*p = m->head.data + m->received_len;
	*len = m->facts.header_end - m->received_len;
	return 0;
}

/* Puts h[0..len) in place of record 0's bytes [at, at + oldlen). Returns
 * 0, or -1 when it does not fit (unchanged). */
static int
message_replace_range(struct smtp_message *m, size_t at, size_t oldlen,
    const char *h, size_t len)
{
	size_t tail = m->head.len - (at + oldlen);

	if (len > oldlen && buf_append(&m->head, h, len - oldlen) != 0)
		return -1;
	memmove(m->head.data + at + len, m->head.data + at + oldlen, tail);
	memcpy(m->head.data + at, h, len);
	if (len < oldlen)
		m->head.len -= oldlen - len;
	return 0;
}

int
smtp_message_replace_header(struct smtp_message *m, const char *h, size_t len)
{
	const char *old;
	size_t oldlen;

	if (smtp_message_header(m, &old, &oldlen) != 0 ||
	    message_replace_range(m, m->received_len, oldlen, h, len) != 0)
		return -1;
	m->facts.header_end = m->facts.header_end - oldlen + len;
	return 0;
}

int
smtp_message_head_fields(const struct smtp_message *m, const char **p,
    size_t *len)
{
	size_t end = m->facts.header_end + m->added;

	if (!m->facts.header_done || m->head_split || end > m->head.len ||
	    end < m->received_len)
		return -1;
	*p = m->head.data;
	*len = end;
	return 0;
}

int
smtp_message_replace_head_fields(struct smtp_message *m, const char *h,
    size_t len)
{
	const char *old;
	size_t oldlen;

	if (smtp_message_head_fields(m, &old, &oldlen) != 0 ||
	    message_replace_range(m, 0, oldlen, h, len) != 0)
		return -1;
	/* The section is the one given now: all of it is "the client's"
	 * for smtp_message_header, nothing of it ours any more. */
	m->received_len = 0;
	m->added = 0;
	m->facts.header_end = len;
	return 0;
}

long
smtp_message_replace_body(struct smtp_message *m, const char *body, size_t len)
{
	const char *h;
	size_t hl;
	long staged = (long)m->staged;

	assert(m->nbusy == 0);
	if (smtp_message_head_fields(m, &h, &hl) != 0)
		return -1;
	if (m->stager != NULL) {
		if (len > 0 && !m->stager->reserve(m->stager->arg, len))
			return -2;
		m->stager->release(m->stager->arg, m->body_reserved);
		m->reserved = m->reserved - m->body_reserved + len;
		m->body_reserved = len;
	}
	if (m->head.max < hl + 2 + len)
		m->head.max = hl + 2 + len;
	m->head.len = hl;
	if (buf_append(&m->head, "\r\n", 2) != 0 ||
	    (len > 0 && buf_append(&m->head, body, len) != 0))
		return -1;	/* not reached: max allows it */
	if (m->cut && m->cur != NULL) {
		buf_reset(&m->cur->b);
		m->cur->off = 0;
	}
	m->staged = 0;
	m->staged_bytes = 0;
	return staged;
}

void
smtp_message_peek(const struct smtp_message *m, struct smtp_message_parts *p)
{
	memset(p, 0, sizeof *p);
	p->head = m->head.data;
	p->head_len = m->head.len;
	p->staged = m->staged;
	if (m->cut && m->cur != NULL && m->cur->b.len > m->cur->off) {
		p->tail = m->cur->b.data + m->cur->off;
		p->tail_len = m->cur->b.len - m->cur->off;
	}
	p->size = p->head_len + m->staged_bytes + p->tail_len;
}

const struct smtp_message_facts *
smtp_message_facts(const struct smtp_message *m)
{
	return &m->facts;
}

void
smtp_message_take(struct smtp_message *m, struct smtp_message_parts *p)
{
	assert(m->status == COMMIT_OK);
	memset(p, 0, sizeof *p);
	p->head = buf_steal(&m->head, &p->head_len);
	p->staged = m->staged;
	if (m->cut && m->cur != NULL && m->cur->b.len > m->cur->off) {
		/* off is 0 but for record 1, which is never cur */
		p->tail = buf_steal(&m->cur->b, &p->tail_len);
	}
	p->size = p->head_len + m->staged_bytes + p->tail_len;
	if (m->stager != NULL) {
		p->reserved = SMTP_MESSAGE_BASE + m->body_reserved;
		m->reserved -= p->reserved;
		m->body_reserved = 0;
	}
}

void
smtp_message_free(struct smtp_message **mp)
{
	struct smtp_message *m = *mp;

	*mp = NULL;
	if (m == NULL)
		return;
	assert(m->nbusy == 0);
	while (m->recs != NULL)
		message_rec_free(m, m->recs);
	if (m->reserved > 0)
		m->stager->release(m->stager->arg, m->reserved);
	buf_free(&m->head);
	free(m);
}
