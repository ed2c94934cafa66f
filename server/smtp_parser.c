/*
 * smtp_parser: the incremental command-line and message-content parsers of
 * the inbound server (contract in smtp_parser.h).
 *
 * Both are byte-driven state machines whose every decision depends only on
 * the bytes seen so far, never on how the input was split into calls, so
 * feeding one byte at a time gives the same results as one block. Memory is
 * bounded: the command parser owns one line buffer of max_line bytes, the
 * content parser writes only into the caller's bounded buf.
 */
#include "server/smtp_parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

/* ---------------------------------------------------------------------
 * Command lines
 */

enum {
	CMD_ST_TEXT = 0,	/* inside a line, previous byte not CR */
	CMD_ST_CR,		/* previous byte was a CR (not stored yet) */
	CMD_ST_SKIP,		/* discarding a too-long line through its LF */
	CMD_ST_DONE,		/* a result was returned; start a new line */
};

/* The smallest usable limit: an empty line, "\r\n". */
#define CMD_MIN_LINE 2

void
smtp_cmd_parser_init(struct smtp_cmd_parser *p, size_t max_line)
{
	if (max_line < CMD_MIN_LINE)
		max_line = CMD_MIN_LINE;
	p->max_line = max_line;
	p->alloc = max_line;
	/* Content is at most max_line - 2 bytes plus the NUL. */
	p->line = xmalloc(max_line);
	p->line[0] = '\0';
	p->len = 0;
	p->state = CMD_ST_TEXT;
	p->bad = 0;
}

void
smtp_cmd_parser_free(struct smtp_cmd_parser *p)
{
	free(p->line);
	p->line = NULL;
	p->len = 0;
	p->max_line = 0;
	p->state = CMD_ST_TEXT;
	p->bad = 0;
}

void
smtp_cmd_parser_reset(struct smtp_cmd_parser *p)
{
	p->len = 0;
	p->state = CMD_ST_TEXT;
	p->bad = 0;
	if (p->line != NULL)
		p->line[0] = '\0';
}

void
smtp_cmd_parser_set_max(struct smtp_cmd_parser *p, size_t max_line)
{
	if (max_line < CMD_MIN_LINE)
		max_line = CMD_MIN_LINE;
	/* Never reallocate: callers hold pointers into p->line. */
	if (max_line > p->alloc)
		max_line = p->alloc;
	p->max_line = max_line;
}

/* Stores one content byte of the current line; 0, or -1 when the line
 * can no longer fit with its CRLF. */
static int
cmd_store(struct smtp_cmd_parser *p, char c)
{
	if (p->len + 1 + 2 > p->max_line)
		return -1;
	p->line[p->len++] = c;
	if (c == '\0')
		p->bad = 1;
	return 0;
}

size_t
smtp_cmd_parse(struct smtp_cmd_parser *p, const char *in, size_t len,
    enum smtp_cmd_result *res)
{
	size_t i = 0;

	if (p->state == CMD_ST_DONE) {
		p->len = 0;
		p->bad = 0;
		p->line[0] = '\0';
		p->state = CMD_ST_TEXT;
	}
	while (i < len) {
		char c = in[i];

		switch (p->state) {
		case CMD_ST_SKIP: {
			const char *lf = memchr(in + i, '\n', len - i);

			if (lf == NULL) {
				i = len;
				break;
			}
			i = (size_t)(lf - in) + 1;
			p->len = 0;
			p->bad = 0;
			p->state = CMD_ST_TEXT;
			break;
		}
		case CMD_ST_CR:
			if (c == '\n') {
				i++;
				p->line[p->len] = '\0';
				p->state = CMD_ST_DONE;
				/* The length test only bites if the limit was
				 * lowered in mid-line, against the contract. */
				if (p->len + 2 > p->max_line)
					*res = SMTP_CMD_TOO_LONG;
				else if (p->bad)
					*res = SMTP_CMD_BARE_EOL;
				else
					*res = SMTP_CMD_READY;
				return i;
			}
			/* The pending CR was a bare CR: it is line content
			 * (the line is rejected anyway), and c is read anew. */
			p->bad = 1;
			p->state = CMD_ST_TEXT;
			if (cmd_store(p, '\r') < 0) {
				/* c is not an LF: it belongs to the line
				 * being skipped. */
				p->state = CMD_ST_SKIP;
				*res = SMTP_CMD_TOO_LONG;
				return i + 1;
			}
			break;
		case CMD_ST_TEXT:
		default:
			if (c == '\n') {
				i++;
				p->line[p->len] = '\0';
				p->state = CMD_ST_DONE;
				*res = SMTP_CMD_BARE_EOL;
				return i;
			}
			i++;
			if (c == '\r') {
				p->state = CMD_ST_CR;
				break;
			}
			if (cmd_store(p, c) < 0) {
				p->state = CMD_ST_SKIP;
				*res = SMTP_CMD_TOO_LONG;
				return i;
			}
			break;
		}
	}
	*res = SMTP_CMD_NEED_MORE;
	return i;
}

/* ---------------------------------------------------------------------
 * Verbs
 */

struct cmd_verb_entry {
	const char *name;
	size_t len;
	enum smtp_verb verb;
};

static const struct cmd_verb_entry cmd_verbs[] = {
	{ "HELO", 4, SMTP_VERB_HELO },
	{ "EHLO", 4, SMTP_VERB_EHLO },
	{ "MAIL", 4, SMTP_VERB_MAIL },
	{ "RCPT", 4, SMTP_VERB_RCPT },
	{ "DATA", 4, SMTP_VERB_DATA },
	{ "BDAT", 4, SMTP_VERB_BDAT },
	{ "RSET", 4, SMTP_VERB_RSET },
	{ "NOOP", 4, SMTP_VERB_NOOP },
	{ "QUIT", 4, SMTP_VERB_QUIT },
	{ "VRFY", 4, SMTP_VERB_VRFY },
	{ "EXPN", 4, SMTP_VERB_EXPN },
	{ "HELP", 4, SMTP_VERB_HELP },
	{ "STARTTLS", 8, SMTP_VERB_STARTTLS },
	{ "AUTH", 4, SMTP_VERB_AUTH },
};

/* HTTP request methods: a web client (or a browser tricked into posting
 * to port 25) talking to us; the session drops it at once. Methods are
 * case-sensitive in HTTP. */
static const char *const cmd_http_methods[] = {
	"GET ", "POST ", "HEAD ", "PUT ", "CONNECT ", "OPTIONS ",
};

static const char *
cmd_skip_spaces(const char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

/*
 * MAIL and RCPT: after the verb come spaces (RFC 5321 wants exactly one;
 * more are tolerated), "FROM:" or "TO:" in any case, optional spaces, then
 * the argument. A MAIL line without "FROM:" (e.g. "MAIL FROM <a@b>" or a
 * bare "MAIL") still returns SMTP_VERB_MAIL, but with *arg_r = NULL, so
 * the session answers 501 syntax rather than 500 unknown command; RCPT
 * without "TO:" likewise.
 */
static const char *
cmd_path_arg(const char *rest, const char *keyword, size_t keylen)
{
	if (*rest != ' ')
		return NULL;
	rest = cmd_skip_spaces(rest);
	if (strncasecmp(rest, keyword, keylen) != 0)
		return NULL;
	return cmd_skip_spaces(rest + keylen);
}

enum smtp_verb
smtp_cmd_verb(const char *line, const char **arg_r, int *http_r)
{
	enum smtp_verb verb = SMTP_VERB_UNKNOWN;
	const char *rest = NULL;
	const char *arg;
	size_t i;

	if (http_r != NULL)
		*http_r = 0;
	for (i = 0; i < sizeof cmd_http_methods / sizeof cmd_http_methods[0]; i++) {
		const char *m = cmd_http_methods[i];

		if (strncmp(line, m, strlen(m)) == 0) {
			if (http_r != NULL)
				*http_r = 1;
			if (arg_r != NULL)
				*arg_r = cmd_skip_spaces(line + strlen(m));
			return SMTP_VERB_UNKNOWN;
		}
	}
	for (i = 0; i < sizeof cmd_verbs / sizeof cmd_verbs[0]; i++) {
		const struct cmd_verb_entry *e = &cmd_verbs[i];

		if (strncasecmp(line, e->name, e->len) == 0 &&
		    (line[e->len] == '\0' || line[e->len] == ' ')) {
			verb = e->verb;
			rest = line + e->len;
			break;
		}
	}
	if (verb == SMTP_VERB_MAIL)
		arg = cmd_path_arg(rest, "FROM:", 5);
	else if (verb == SMTP_VERB_RCPT)
		arg = cmd_path_arg(rest, "TO:", 3);
	else if (verb != SMTP_VERB_UNKNOWN)
		arg = cmd_skip_spaces(rest);
	else {
		/* Unknown: the argument is whatever follows the first word. */
		const char *sp = strchr(line, ' ');

		arg = sp != NULL ? cmd_skip_spaces(sp) : line + strlen(line);
	}
	if (arg_r != NULL)
		*arg_r = arg;
	return verb;
}

/* ---------------------------------------------------------------------
 * Message content
 */

enum {
	DATA_ST_BOL = 0,	/* at a line start (DOTTED only) */
	DATA_ST_TEXT,		/* inside a line, previous byte not CR */
	DATA_ST_CR,		/* a CR ended the previous input; not yet output */
	DATA_ST_DOT,		/* "." at a line start (dropped) */
	DATA_ST_DOTCR,		/* "." CR at a line start */
	DATA_ST_DONE,		/* end of data consumed */
};

/* Content bytes a line may hold before its CRLF. */
#define DATA_LINE_CONTENT_MAX (SMTP_TEXT_LINE_MAX - 2)

void
smtp_data_parser_init(struct smtp_data_parser *p, enum smtp_data_mode mode,
    struct buf *out, size_t max_size)
{
	p->mode = mode;
	p->out = out;
	p->max_size = max_size;
	p->size = 0;
	p->flags = 0;
	p->line_len = 0;
	p->state = mode == SMTP_DATA_DOTTED ? DATA_ST_BOL : DATA_ST_TEXT;
}

/* Appends n bytes of content unless a flag already condemned the message. */
static void
data_emit(struct smtp_data_parser *p, const char *s, size_t n)
{
	if (n == 0 || p->flags != 0)
		return;
	if (n > p->max_size - p->size || buf_append(p->out, s, n) < 0)
		p->flags |= SMTP_DATA_TOO_BIG;
	else
		p->size += n;
}

/* Sets a flag after writing out the content that preceded the offending
 * byte, so that the flags found never depend on how input was split. */
static void
data_flag(struct smtp_data_parser *p, const char *in, size_t *seg, size_t at,
    unsigned flag)
{
	if (p->flags == 0)
		data_emit(p, in + *seg, at - *seg);
	*seg = at;
	p->flags |= flag;
}

/* Counts one content byte of a line whose message is already flagged
 * (a bare CR or a NUL); only the long-line check is left to do. */
static void
data_count_byte(struct smtp_data_parser *p)
{
	if (p->line_len + 1 > DATA_LINE_CONTENT_MAX)
		p->flags |= SMTP_DATA_LONG_LINE;
	else
		p->line_len++;
}

#define DATA_ONES 0x0101010101010101ULL
#define DATA_HIGHS 0x8080808080808080ULL
#define DATA_HAS_ZERO(v) (((v) - DATA_ONES) & ~(v) & DATA_HIGHS)

/* Length of the run of s[0..n) free of CR, LF and NUL: eight bytes at a
 * time, then byte by byte to locate the stop. */
static size_t
data_scan_plain(const char *s, size_t n)
{
	size_t i = 0;

	/* In hostile input stops come back to back: check one byte first. */
	if (n == 0 || s[0] == '\r' || s[0] == '\n' || s[0] == '\0')
		return 0;
	while (i + 8 <= n) {
		uint64_t w;

		memcpy(&w, s + i, 8);
		if (DATA_HAS_ZERO(w) | DATA_HAS_ZERO(w ^ (DATA_ONES * '\r')) |
		    DATA_HAS_ZERO(w ^ (DATA_ONES * '\n')))
			break;
		i += 8;
	}
	while (i < n && s[i] != '\r' && s[i] != '\n' && s[i] != '\0')
		i++;
	return i;
}

static int
data_after_crlf(const struct smtp_data_parser *p)
{
	return p->mode == SMTP_DATA_DOTTED ? DATA_ST_BOL : DATA_ST_TEXT;
}

size_t
smtp_data_parse(struct smtp_data_parser *p, const char *in, size_t len,
    int *done_r)
{
	size_t i = 0;
	size_t seg = 0;	/* start of input not yet given to out */

	*done_r = 0;
	if (p->state == DATA_ST_DONE) {
		*done_r = 1;
		return 0;
	}
	while (i < len) {
		switch (p->state) {
		case DATA_ST_BOL:
			if (in[i] == '.') {
				/* RFC 5321 4.5.2: the first dot is deleted, and
				 * not counted: a 998-octet line starting with a
				 * dot is legal once stuffed to 999. */
				data_emit(p, in + seg, i - seg);
				i++;
				seg = i;
				p->line_len = 0;
				p->state = DATA_ST_DOT;
				break;
			}
			p->state = DATA_ST_TEXT;
			break;
		case DATA_ST_DOT:
			if (in[i] != '\r') {
				p->state = DATA_ST_TEXT;
				break;
			}
			if (i + 1 == len) {
				i++;
				seg = i;
				p->state = DATA_ST_DOTCR;
				break;
			}
			if (in[i + 1] == '\n') {
				i += 2;
				p->state = DATA_ST_DONE;
				*done_r = 1;
				return i;
			}
			data_flag(p, in, &seg, i, SMTP_DATA_BARE_EOL);
			data_count_byte(p);
			i++;
			seg = i;
			p->state = DATA_ST_TEXT;
			break;
		case DATA_ST_DOTCR:
			if (in[i] == '\n') {
				i++;
				p->state = DATA_ST_DONE;
				*done_r = 1;
				return i;
			}
			data_flag(p, in, &seg, i, SMTP_DATA_BARE_EOL);
			data_count_byte(p);
			p->state = DATA_ST_TEXT;
			break;
		case DATA_ST_CR:
			if (in[i] == '\n') {
				/* The CR came at the end of the previous input. */
				data_emit(p, "\r", 1);
				seg = i;
				i++;
				p->line_len = 0;
				p->state = data_after_crlf(p);
				break;
			}
			data_flag(p, in, &seg, i, SMTP_DATA_BARE_EOL);
			data_count_byte(p);
			p->state = DATA_ST_TEXT;
			break;
		case DATA_ST_TEXT:
		default: {
			size_t run = data_scan_plain(in + i, len - i);

			if (!(p->flags & SMTP_DATA_LONG_LINE) &&
			    p->line_len + run > DATA_LINE_CONTENT_MAX) {
				data_flag(p, in, &seg,
				    i + (DATA_LINE_CONTENT_MAX - p->line_len),
				    SMTP_DATA_LONG_LINE);
			}
			p->line_len += run;
			if (p->line_len > DATA_LINE_CONTENT_MAX)
				p->line_len = DATA_LINE_CONTENT_MAX;
			i += run;
			if (i == len)
				break;
			if (in[i] == '\r') {
				if (i + 1 == len) {
					data_emit(p, in + seg, i - seg);
					i++;
					seg = i;
					p->state = DATA_ST_CR;
					break;
				}
				if (in[i + 1] == '\n') {
					/* CRLF stays in the current run. */
					i += 2;
					p->line_len = 0;
					p->state = data_after_crlf(p);
					break;
				}
				data_flag(p, in, &seg, i, SMTP_DATA_BARE_EOL);
				data_count_byte(p);
				i++;
				seg = i;
				break;
			}
			if (in[i] == '\n') {
				data_flag(p, in, &seg, i, SMTP_DATA_BARE_EOL);
				/* Counted as a line end for the length check, so
				 * LF-only text is reported as bare LF only. */
				p->line_len = 0;
				i++;
				seg = i;
				break;
			}
			data_flag(p, in, &seg, i, SMTP_DATA_NUL);
			data_count_byte(p);
			i++;
			seg = i;
			break;
		}
		}
	}
	data_emit(p, in + seg, i - seg);
	return i;
}

unsigned
smtp_data_finish(struct smtp_data_parser *p)
{
	if (p->state == DATA_ST_CR || p->state == DATA_ST_DOTCR) {
		p->flags |= SMTP_DATA_BARE_EOL;
		p->state = DATA_ST_TEXT;
	}
	return p->flags;
}
