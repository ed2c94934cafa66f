/*
 * relay_proto: reply parser, EHLO capabilities, DATA encoder, xtext and
 * command-line checks of the outbound SMTP client (see relay_proto.h).
 * No I/O here: relay/relay.c and relay/relay_conn.c do the talking.
 */
#include "relay/relay_proto.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void
relay_reply_init(struct relay_reply *r)
{
	r->code = 0;
	r->esc[0] = '\0';
	r->nlines = 0;
	r->text_len = 0;
	r->truncated = 0;
	r->error = NULL;
	r->text[0] = '\0';
}

static void
reply_text_add(struct relay_reply *r, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (r->text_len >= RELAY_REPLY_TEXT_MAX) {
			r->truncated = 1;
			break;
		}
		if (c != '\n' && (c < 0x20 || c >= 0x7f))
			c = '?';
		r->text[r->text_len++] = (char)c;
	}
	r->text[r->text_len] = '\0';
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Length of "D.DDD.DDD" at s (then end or space) whose class is cls, or 0. */
static size_t
esc_len(const char *s, size_t n, char cls)
{
	size_t i = 0, d;

	if (n < 5 || s[0] != cls || s[1] != '.')
		return 0;
	i = 2;
	for (d = 0; i < n && is_digit(s[i]) && d < 3; i++, d++)
		;
	if (d == 0 || i >= n || s[i] != '.')
		return 0;
	i++;
	for (d = 0; i < n && is_digit(s[i]) && d < 3; i++, d++)
		;
	if (d == 0 || (i < n && s[i] != ' '))
		return 0;
	return i;
}

/* One line without its line end. Returns 1 final, 0 more, -1 error. */
static int
reply_line(struct relay_reply *r, const char *line, size_t n)
{
	int code, final;
	const char *text;
	size_t tlen, elen;

	if (n < 3 || !is_digit(line[0]) || !is_digit(line[1]) ||
	    !is_digit(line[2])) {
		r->error = "reply line without a 3-digit code";
		return -1;
	}
	if (line[0] < '2' || line[0] > '5' || line[1] > '5') {
		r->error = "reply code out of range";
		return -1;
	}
	if (n > 3 && line[3] != ' ' && line[3] != '-') {
		r->error = "no space or hyphen after the reply code";
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code) {
		r->error = "reply code changed within a multi-line reply";
		return -1;
	}
	if (r->nlines >= RELAY_REPLY_LINES_MAX) {
		r->error = "too many lines in reply";
		return -1;
	}
	final = n == 3 || line[3] == ' ';
	text = n > 4 ? line + 4 : "";
	tlen = n > 4 ? n - 4 : 0;
	if (r->nlines == 0) {
		r->code = code;
		elen = esc_len(text, tlen, line[0]);
		if (elen > 0 && elen < sizeof r->esc) {
			memcpy(r->esc, text, elen);
			r->esc[elen] = '\0';
		}
	} else {
		reply_text_add(r, "\n", 1);
	}
	reply_text_add(r, text, tlen);
	r->nlines++;
	return final;
}

int
relay_reply_feed(struct relay_reply *r, const char *data, size_t len,
    size_t *used_r)
{
	size_t used = 0;

	*used_r = 0;
	if (r->error != NULL)
		return RELAY_REPLY_ERROR;
	while (used < len) {
		size_t avail = len - used, scan, n;
		const char *line = data + used;
		const char *lf;
		int rc;

		/* A line may be LINE_MAX octets plus CR plus LF. */
		scan = avail < RELAY_REPLY_LINE_MAX + 2 ? avail :
		    RELAY_REPLY_LINE_MAX + 2;
		lf = memchr(line, '\n', scan);
		if (lf == NULL) {
			if (avail >= RELAY_REPLY_LINE_MAX + 2) {
				r->error = "reply line too long";
				return RELAY_REPLY_ERROR;
			}
			break;
		}
		n = (size_t)(lf - line);
		used += n + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n > RELAY_REPLY_LINE_MAX) {
			r->error = "reply line too long";
			return RELAY_REPLY_ERROR;
		}
		rc = reply_line(r, line, n);
		*used_r = used;
		if (rc < 0)
			return RELAY_REPLY_ERROR;
		if (rc == 1)
			return RELAY_REPLY_DONE;
	}
	*used_r = used;
	return RELAY_REPLY_MORE;
}

char *
relay_reply_oneline(const struct relay_reply *r, char *out, size_t outsize)
{
	size_t o = 0;
	const char *p = r->text;
	const char *end = r->text + r->text_len;
	size_t esclen = strlen(r->esc);
	int first = 1;

	if (outsize == 0)
		return out;
	if (snprintf(out, outsize, "%03d", r->code) < 0)
		out[0] = '\0';
	o = strlen(out);
	while (p <= end && o + 1 < outsize) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		/* Later lines repeat the enhanced code: say it once. */
		if (!first && esclen > 0 && n >= esclen &&
		    memcmp(p, r->esc, esclen) == 0 &&
		    (n == esclen || p[esclen] == ' ')) {
			p += esclen;
			n -= esclen;
			while (n > 0 && *p == ' ') {
				p++;
				n--;
			}
		}
		if (n > 0) {
			out[o++] = ' ';
			if (n > outsize - 1 - o)
				n = outsize - 1 - o;
			memcpy(out + o, p, n);
			o += n;
		}
		out[o] = '\0';
		first = 0;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	out[o] = '\0';
	return out;
}

void
relay_caps_parse(const struct relay_reply *r, struct relay_caps *caps)
{
	const char *p = r->text;
	const char *end = r->text + r->text_len;
	const char *nl;

	caps->flags = 0;
	caps->size_max = 0;
	/* The first line is the server's greeting text, not a keyword. */
	nl = memchr(p, '\n', (size_t)(end - p));
	while (nl != NULL) {
		char kw[32];
		size_t n, k;

		p = nl + 1;
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		for (k = 0; k < n && p[k] != ' ' && k < sizeof kw - 1; k++)
			kw[k] = p[k];
		kw[k] = '\0';
		if (strcasecmp(kw, "PIPELINING") == 0)
			caps->flags |= RELAY_CAP_PIPELINING;
		else if (strcasecmp(kw, "8BITMIME") == 0)
			caps->flags |= RELAY_CAP_8BITMIME;
		else if (strcasecmp(kw, "SMTPUTF8") == 0)
			caps->flags |= RELAY_CAP_SMTPUTF8;
		else if (strcasecmp(kw, "DSN") == 0)
			caps->flags |= RELAY_CAP_DSN;
		else if (strcasecmp(kw, "STARTTLS") == 0)
			caps->flags |= RELAY_CAP_STARTTLS;
		else if (strcasecmp(kw, "REQUIRETLS") == 0)
			caps->flags |= RELAY_CAP_REQUIRETLS;
		else if (strcasecmp(kw, "SIZE") == 0) {
			uint64_t v = 0;
			int ok = 1;

			caps->flags |= RELAY_CAP_SIZE;
			for (k++; k < n && is_digit(p[k]); k++) {
				if (v > (UINT64_MAX - 9) / 10) {
					ok = 0;
					break;
				}
				v = v * 10 + (uint64_t)(p[k] - '0');
			}
			caps->size_max = ok ? v : 0;
		}
	}
}

void
relay_data_enc_init(struct relay_data_enc *e)
{
	e->line_len = 0;
	e->pending_cr = 0;
	e->in_header = 1;
}

static int
enc_end_line(struct relay_data_enc *e, struct buf *out)
{
	if (buf_append(out, "\r\n", 2) < 0)
		return -1;
	if (e->line_len == 0)
		e->in_header = 0;
	e->line_len = 0;
	return 0;
}

static int
enc_byte(struct relay_data_enc *e, char c, struct buf *out)
{
	if (e->line_len >= RELAY_DATA_LINE_MAX) {
		/* Fold: a header continuation starts with white space. */
		if (e->in_header) {
			if (buf_append(out, "\r\n ", 3) < 0)
				return -1;
			e->line_len = 1;
		} else {
			if (buf_append(out, "\r\n", 2) < 0)
				return -1;
			e->line_len = 0;
		}
	}
	if (e->line_len == 0 && c == '.') {
		if (buf_append(out, ".", 1) < 0)
			return -1;
		e->line_len++;
	}
	if (buf_append(out, &c, 1) < 0)
		return -1;
	e->line_len++;
	return 0;
}

/*
 * At a line start: the whole CRLF lines of in[0..len) that need nothing
 * but dot-stuffing (no bare CR, no fold), written out in runs. Returns the
 * bytes taken (0: the first line needs the byte-wise path), or -1.
 */
static ssize_t
enc_lines(struct relay_data_enc *e, const char *in, size_t len, struct buf *out)
{
	size_t start = 0, j = 0;

	while (j < len) {
		const char *nl = memchr(in + j, '\n', len - j);
		size_t ll, dot;

		if (nl == NULL)
			break;
		ll = (size_t)(nl - (in + j));	/* up to the LF, CR included */
		dot = in[j] == '.';
		if (ll == 0 || in[j + ll - 1] != '\r' || ll - 1 + dot > RELAY_DATA_LINE_MAX ||
		    (ll > 1 && memchr(in + j, '\r', ll - 1) != NULL))
			break;
		if (dot) {
			if (buf_append(out, in + start, j - start) < 0 ||
			    buf_append(out, ".", 1) < 0)
				return -1;
			start = j;
		}
		if (ll == 1)
			e->in_header = 0;
		j += ll + 1;
	}
	if (buf_append(out, in + start, j - start) < 0)
		return -1;
	return (ssize_t)j;
}

int
relay_data_enc_feed(struct relay_data_enc *e, const char *in, size_t len,
    struct buf *out)
{
	size_t i = 0;

	while (i < len) {
		char c;
		size_t n, max;

		if (e->line_len == 0 && !e->pending_cr) {
			ssize_t took = enc_lines(e, in + i, len - i, out);

			if (took < 0)
				return -1;
			i += (size_t)took;
			if (i == len)
				break;
		}
		c = in[i];
		if (e->pending_cr) {
			e->pending_cr = 0;
			if (enc_end_line(e, out) < 0)
				return -1;
			if (c == '\n') {
				i++;
				continue;
			}
		}
		if (c == '\r') {
			e->pending_cr = 1;
			i++;
			continue;
		}
		if (c == '\n') {
			if (enc_end_line(e, out) < 0)
				return -1;
			i++;
			continue;
		}
		if (e->line_len >= RELAY_DATA_LINE_MAX || (e->line_len == 0 && c == '.')) {
			/* a fold or a stuffed dot first */
			if (enc_byte(e, c, out) < 0)
				return -1;
			i++;
			continue;
		}
		/* A run of plain bytes, copied at once: up to the line's end or
		 * its limit. */
		max = len - i;
		if (max > RELAY_DATA_LINE_MAX - e->line_len)
			max = RELAY_DATA_LINE_MAX - e->line_len;
		n = max;
		if (n > 1) {
			const char *nl = memchr(in + i + 1, '\n', n - 1);
			const char *cr;

			if (nl != NULL)
				n = (size_t)(nl - (in + i));
			if (n > 1 && (cr = memchr(in + i + 1, '\r', n - 1)) != NULL)
				n = (size_t)(cr - (in + i));
		}
		if (buf_append(out, in + i, n) < 0)
			return -1;
		e->line_len += n;
		i += n;
	}
	return 0;
}

int
relay_data_enc_finish(struct relay_data_enc *e, struct buf *out)
{
	if (e->pending_cr) {
		e->pending_cr = 0;
		if (enc_end_line(e, out) < 0)
			return -1;
	}
	if (e->line_len > 0 && enc_end_line(e, out) < 0)
		return -1;
	return buf_append(out, ".\r\n", 3);
}

int
relay_addr_ok(const char *s, size_t maxlen, int *eightbit_r)
{
	size_t n = 0;
	int eight = 0;

	if (eightbit_r != NULL)
		*eightbit_r = 0;
	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= maxlen || c < 0x20 || c == 0x7f || c == '<' ||
		    c == '>')
			return 0;
		if (c >= 0x80)
			eight = 1;
	}
	if (eightbit_r != NULL)
		*eightbit_r = eight;
	return 1;
}

/* ---- the TLS-Required header field (RFC 8689 5) ---- */

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Is v[0..n) "No" with folding white space around it? */
static int
value_is_no(const char *v, size_t n)
{
	size_t i = 0, e = n;

	while (i < e && (is_wsp(v[i]) || v[i] == '\r' || v[i] == '\n'))
		i++;
	while (e > i && (is_wsp(v[e - 1]) || v[e - 1] == '\r' || v[e - 1] == '\n'))
		e--;
	return e - i == 2 && (v[i] == 'N' || v[i] == 'n') &&
	    (v[i + 1] == 'O' || v[i + 1] == 'o');
}

int
relay_header_tls_optional(const char *msg, size_t len)
{
	static const char name[] = "tls-required";
	size_t pos = 0;

	if (len > RELAY_HEADER_SCAN_MAX)
		len = RELAY_HEADER_SCAN_MAX;
	while (pos < len) {
		size_t start = pos, end, colon;

		/* One field: its first line and every continuation line. */
		if (msg[pos] == '\n' || (msg[pos] == '\r' && pos + 1 < len &&
		    msg[pos + 1] == '\n'))
			return 0;	/* the empty line: the header ended */
		for (end = pos; end < len; end++)
			if (msg[end] == '\n' && (end + 1 >= len || !is_wsp(msg[end + 1])))
				break;
		pos = end < len ? end + 1 : len;
		for (colon = start; colon < end && msg[colon] != ':' &&
		    msg[colon] != '\n'; colon++)
			;
		if (colon >= end || msg[colon] != ':')
			continue;
		{
			size_t nlen = colon - start;
			while (nlen > 0 && is_wsp(msg[start + nlen - 1]))
				nlen--;
			if (nlen == sizeof name - 1 &&
			    strncasecmp(msg + start, name, nlen) == 0 &&
			    value_is_no(msg + colon + 1, end - colon - 1))
				return 1;
		}
	}
	return 0;
}
