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

struct smtp_message {
	struct buf buf;			/* Received header, then the content */
	struct smtp_data_parser dp;
	struct smtp_message_facts facts;
	int submission;
	size_t scan;			/* next byte of buf to scan */
	enum hscan hs;
	int any_field;			/* a field was seen (continuations allowed) */
	size_t line_start;
	char name[HS_NAME_MAX];
	size_t name_len;
	char date[80];
	char msgid[300];
};

struct smtp_message *
smtp_message_new(const struct smtp_message_info *info)
{
	struct smtp_message *m = xcalloc(1, sizeof *m);
	char date[64], id[QUEUE_ID_LEN + 1];
	const char *ip6 = strchr(info->client_ip, ':') ? "IPv6:" : "";

	time_rfc5322(info->now, date, sizeof date);
	queue_id_format(info->id, id, sizeof id);
	buf_init(&m->buf, info->max_size + MESSAGE_HEADROOM);
	if (info->client_name && info->client_name[0])
		buf_printf(&m->buf, "Received: from %s (%s [%s%s])", info->helo,
		    info->client_name, ip6, info->client_ip);
	else
		buf_printf(&m->buf, "Received: from %s ([%s%s])", info->helo, ip6,
		    info->client_ip);
	buf_printf(&m->buf, "\r\n\tby %s (mailserver) with %s id %s",
	    info->hostname, info->protocol, id);
	if (info->tls)
		buf_printf(&m->buf, "\r\n\t(using %s)", info->tls);
	if (info->rcpt)
		buf_printf(&m->buf, "\r\n\tfor <%s>", info->rcpt);
	buf_printf(&m->buf, "; %s\r\n", date);
	m->facts.received = 1;
	m->scan = m->buf.len;
	m->line_start = m->buf.len;
	m->hs = HS_BOL;
	m->submission = info->submission;
	snprintf(m->date, sizeof m->date, "Date: %s\r\n", date);
	snprintf(m->msgid, sizeof m->msgid, "Message-ID: <%s@%s>\r\n", id,
	    info->hostname);
	smtp_data_parser_init(&m->dp, info->mode, &m->buf, info->max_size);
	return m;
}

/* Inserts text at offset at of the message (the header end). */
static void
message_insert(struct smtp_message *m, size_t at, const char *text)
{
	size_t n = strlen(text), tail = m->buf.len - at;

	if (n == 0 || buf_append(&m->buf, text, n) < 0)
		return;
	memmove(m->buf.data + at + n, m->buf.data + at, tail);
	memcpy(m->buf.data + at, text, n);
	m->scan += n;
}

/* The header section ended at line_start: note it, add what submission
 * needs. */
static void
message_header_end(struct smtp_message *m)
{
	char add[sizeof m->date + sizeof m->msgid];

	m->hs = HS_BODY;
	m->facts.header_done = 1;
	m->facts.header_end = m->line_start;
	if (!m->submission || m->dp.flags != 0)
		return;
	/* Both fit: add is as large as the two together. */
	snprintf(add, sizeof add, "%s%s", m->facts.has_date ? "" : m->date,
	    m->facts.has_message_id ? "" : m->msgid);
	message_insert(m, m->line_start, add);
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

/* Scans the content written since the last call. */
static void
message_scan(struct smtp_message *m)
{
	while (m->scan < m->buf.len && m->hs != HS_BODY) {
		unsigned char c = (unsigned char)m->buf.data[m->scan];

		switch (m->hs) {
		case HS_BOL:
			m->line_start = m->scan;
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
			const char *lf = memchr(m->buf.data + m->scan, '\n',
			    m->buf.len - m->scan);

			if (lf == NULL) {
				m->scan = m->buf.len;
				continue;
			}
			m->scan = (size_t)(lf - m->buf.data);
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
		m->scan = m->buf.len;
}

size_t
smtp_message_feed(struct smtp_message *m, const char *in, size_t len,
    int *done_r)
{
	size_t n = smtp_data_parse(&m->dp, in, len, done_r);

	message_scan(m);
	m->facts.content = m->dp.size;
	return n;
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
		/* The whole message was header. A last line without its CRLF
		 * (BDAT allows that) gets one before anything is added. */
		if (m->submission && !(m->facts.has_date && m->facts.has_message_id) &&
		    m->buf.len > m->line_start && m->buf.data[m->buf.len - 1] != '\n')
			buf_append(&m->buf, "\r\n", 2);
		m->line_start = m->buf.len;
		message_header_end(m);
	}
	return 0;
}

int
smtp_message_prepend(struct smtp_message *m, const char *lines)
{
	size_t before = m->buf.len, n = strlen(lines);

	message_insert(m, 0, lines);
	if (n == 0 || m->buf.len == before)
		return n == 0 ? 0 : -1;
	m->facts.header_end += n;
	m->line_start += n;
	return 0;
}

const struct smtp_message_facts *
smtp_message_facts(const struct smtp_message *m)
{
	return &m->facts;
}

char *
smtp_message_take(struct smtp_message *m, size_t *len_r)
{
	return buf_steal(&m->buf, len_r);
}

void
smtp_message_free(struct smtp_message **mp)
{
	struct smtp_message *m = *mp;

	*mp = NULL;
	if (m == NULL)
		return;
	buf_free(&m->buf);
	free(m);
}
