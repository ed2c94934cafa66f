/*
 * smtp_parser: incremental parsers for what an SMTP client sends, apart
 * from the session: command lines, and DATA / BDAT message content.
 *
 * Both parsers are byte-driven state machines: feed them whatever bytes
 * arrived (one at a time or a whole buffer), they consume what they can and
 * say "need more", "command ready" / "done", or an error. Memory is bounded
 * by the limits given at init, whatever the input.
 *
 * Only CRLF ends a line. A bare LF or a bare CR is never a line end: in a
 * command it is an error; in message content it marks the message as
 * rejected (the content is still consumed up to the real end of data, so
 * the session stays in sync and no smuggled command is ever read).
 *
 * Threads: a parser belongs to one session; no shared state.
 */
#ifndef SERVER_SMTP_PARSER_H
#define SERVER_SMTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* RFC 5321 4.5.3.1 limits, as used by the parsers. */
#define SMTP_COMMAND_LINE_MAX 512	/* command line incl. CRLF */
#define SMTP_TEXT_LINE_MAX 1000		/* text line incl. CRLF */
#define SMTP_AUTH_LINE_MAX 12288	/* AUTH command and SASL responses */

enum smtp_cmd_result {
	SMTP_CMD_NEED_MORE,	/* all input consumed, no complete line yet */
	SMTP_CMD_READY,		/* a command line is in parser->line */
	SMTP_CMD_TOO_LONG,	/* line passed the limit: reply 500 5.5.2; the
				 * rest of that line is skipped silently */
	SMTP_CMD_BARE_EOL,	/* line had a bare CR or bare LF: reply 500 5.5.2;
				 * the line is discarded (through the LF) */
};

struct smtp_cmd_parser {
	size_t max_line;	/* bytes allowed incl. CRLF */
	char *line;		/* NUL-terminated command without CRLF (READY) */
	size_t len;
	size_t alloc;		/* internal: bytes allocated at init */
	int state;		/* internal */
	int bad;		/* internal */
};

/* max_line includes the CRLF. Allocates max_line bytes once. */
void smtp_cmd_parser_init(struct smtp_cmd_parser *p, size_t max_line);
void smtp_cmd_parser_free(struct smtp_cmd_parser *p);

/* Forget any partial line (after STARTTLS, so no plaintext survives). */
void smtp_cmd_parser_reset(struct smtp_cmd_parser *p);

/* Change the line limit (e.g. to SMTP_AUTH_LINE_MAX during AUTH); only
 * between lines. It never reallocates (p->line stays where it is); a limit
 * above the size given at init is taken as that size. */
void smtp_cmd_parser_set_max(struct smtp_cmd_parser *p, size_t max_line);

/*
 * Consumes bytes from in[0..len) up to the end of at most one line and
 * stores the result in *res. Returns the number of bytes consumed; the
 * caller passes the rest again after handling a READY or an error.
 * p->line is valid until the next call.
 */
size_t smtp_cmd_parse(struct smtp_cmd_parser *p, const char *in, size_t len,
    enum smtp_cmd_result *res);

/* Verbs, recognised case-insensitively by smtp_cmd_verb. */
enum smtp_verb {
	SMTP_VERB_UNKNOWN, SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL,
	SMTP_VERB_RCPT, SMTP_VERB_DATA, SMTP_VERB_BDAT, SMTP_VERB_RSET,
	SMTP_VERB_NOOP, SMTP_VERB_QUIT, SMTP_VERB_VRFY, SMTP_VERB_EXPN,
	SMTP_VERB_HELP, SMTP_VERB_STARTTLS, SMTP_VERB_AUTH,
};

/* Splits a command line into its verb and argument. For MAIL and RCPT the
 * verb includes "FROM:" / "TO:" (any case; spaces after the colon are
 * tolerated) and *arg_r points after the colon. *arg_r points into line,
 * past leading spaces; "" when there is none. An HTTP request line
 * ("GET / HTTP/1.1", "POST ...", "CONNECT ...") returns SMTP_VERB_UNKNOWN
 * and sets *http_r to 1. */
enum smtp_verb smtp_cmd_verb(const char *line, const char **arg_r, int *http_r);

/* Message content: DATA (dot-stuffed, ends at CRLF.CRLF) or BDAT chunks. */
enum smtp_data_mode { SMTP_DATA_DOTTED, SMTP_DATA_BDAT };

enum smtp_data_flag {
	SMTP_DATA_TOO_BIG = 1,		/* passed max_size: reply 552 5.3.4 */
	SMTP_DATA_BARE_EOL = 2,		/* bare CR or LF: reply 550 5.5.2 */
	SMTP_DATA_LONG_LINE = 4,	/* a line over SMTP_TEXT_LINE_MAX: 550 5.6.0 */
	SMTP_DATA_NUL = 8,		/* a NUL byte: reply 550 5.6.0 */
};

struct smtp_data_parser {
	enum smtp_data_mode mode;
	struct buf *out;	/* receives the content, dot-stuffing undone,
				 * CRLF kept; not written once a flag is set */
	size_t max_size;	/* content limit */
	size_t size;		/* content bytes written to out so far */
	unsigned flags;		/* enum smtp_data_flag, accumulated */
	size_t line_len;	/* internal */
	int state;		/* internal */
};

/* out must have been buf_init'ed by the caller; it may hold bytes already
 * (they do not count). The parser appends at most max_size content bytes;
 * more, or a buffer that cannot take them, is SMTP_DATA_TOO_BIG. */
void smtp_data_parser_init(struct smtp_data_parser *p, enum smtp_data_mode mode,
    struct buf *out, size_t max_size);

/*
 * DOTTED mode: consumes in[0..len) up to and including the terminating
 * CRLF.CRLF (the first CRLF of which belongs to the content's last line;
 * an empty message is ".\r\n" at the start). Sets *done_r to 1 when the end
 * was consumed. Returns bytes consumed; bytes after the end are left for
 * the command parser.
 * BDAT mode: consumes all of in (the caller gives exactly the chunk's
 * bytes); a CR at the end of one chunk may pair with an LF at the start of
 * the next. Call smtp_data_finish at BDAT LAST.
 */
size_t smtp_data_parse(struct smtp_data_parser *p, const char *in, size_t len,
    int *done_r);

/* BDAT LAST: a dangling CR at the very end counts as a bare CR. Returns the
 * final flags. */
unsigned smtp_data_finish(struct smtp_data_parser *p);

#endif
