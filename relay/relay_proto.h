/*
 * relay_proto: the pure protocol pieces of the outbound SMTP client
 * (relay/relay.c), apart from any socket so that they can be unit-tested
 * byte by byte and fuzzed: the incremental reply parser, EHLO capability
 * parsing, the DATA encoder (CRLF, dot-stuffing, line folding), xtext
 * encoding and the check of what may go into a command line.
 *
 * Errors: functions return a status; nothing aborts on bad input, nothing
 * is logged. Out of memory aborts (lib/util.h).
 * Threads: reentrant; each struct belongs to one thread at a time.
 */
#ifndef RELAY_RELAY_PROTO_H
#define RELAY_RELAY_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* Limits of a reply (RFC 5321 4.5.3.1.5 says 512 per line; be tolerant). */
#define RELAY_REPLY_LINE_MAX	4096	/* octets per line without CRLF */
#define RELAY_REPLY_LINES_MAX	100	/* lines per reply */
#define RELAY_REPLY_TEXT_MAX	8192	/* text kept; more is cut off */

enum relay_reply_rc {
	RELAY_REPLY_DONE = 0,	/* the final line was seen */
	RELAY_REPLY_MORE,	/* complete lines consumed; need more bytes */
	RELAY_REPLY_ERROR,	/* malformed: r->error says why */
};

/* A reply being parsed or parsed. */
struct relay_reply {
	int code;		/* 200..599 once the first line is in */
	char esc[16];		/* enhanced status code of the first line
				 * ("5.1.1"), "" when absent or of a class
				 * other than the code's */
	size_t nlines;
	size_t text_len;	/* bytes in text */
	int truncated;		/* text was cut at RELAY_REPLY_TEXT_MAX */
	const char *error;	/* static reason after RELAY_REPLY_ERROR */
	/* The text of each line (after "xyz-" or "xyz "), lines separated
	 * by '\n', NUL-terminated. Control bytes and bytes >= 0x7f are
	 * replaced by '?', so the text is printable ASCII. */
	char text[RELAY_REPLY_TEXT_MAX + 1];
};

/* Empties r for a new reply. */
void relay_reply_init(struct relay_reply *r);

/*
 * Feeds bytes to the parser. Consumes whole lines only (ended by LF; a CR
 * before it is dropped; a bare LF is tolerated) and sets *used_r to the
 * bytes consumed; the caller drops them and calls again with the rest
 * plus new bytes. Returns:
 *   RELAY_REPLY_DONE: the reply is complete; bytes after it (a pipelined
 *     next reply) are not consumed.
 *   RELAY_REPLY_MORE: no final line yet; data holds no complete line
 *     beyond *used_r, and the rest is shorter than a line may be.
 *   RELAY_REPLY_ERROR: a line is not "DDD", "DDD text" or "DDD-text" with
 *     D1 in 2..5, D2 in 0..5; a continuation line has another code; a
 *     line is longer than RELAY_REPLY_LINE_MAX (also when no LF came
 *     within that many bytes); more than RELAY_REPLY_LINES_MAX lines.
 * After DONE or ERROR, call relay_reply_init before the next reply.
 */
int relay_reply_feed(struct relay_reply *r, const char *data, size_t len,
    size_t *used_r);

/*
 * The reply in one line for diagnostics: "550 5.1.1 text of line 1 text
 * of line 2" (lines joined by a space; an enhanced code repeated at the
 * start of later lines is dropped). Always NUL-terminated (outsize > 0),
 * cut to fit. Returns out.
 */
char *relay_reply_oneline(const struct relay_reply *r, char *out,
    size_t outsize);

/* ESMTP capabilities (RFC 5321 4.1.1.1 and the extensions used). */
enum relay_cap {
	RELAY_CAP_PIPELINING = 1,
	RELAY_CAP_SIZE = 2,
	RELAY_CAP_8BITMIME = 4,
	RELAY_CAP_SMTPUTF8 = 8,
	RELAY_CAP_DSN = 16,
	RELAY_CAP_STARTTLS = 32,
	RELAY_CAP_REQUIRETLS = 64,	/* RFC 8689 */
};

struct relay_caps {
	unsigned flags;		/* enum relay_cap */
	uint64_t size_max;	/* SIZE n; 0 = no limit given */
};

/* Reads the capabilities from a 2xx EHLO reply (first line: the greeting,
 * then one keyword per line, any case). Unknown keywords are ignored. */
void relay_caps_parse(const struct relay_reply *r, struct relay_caps *caps);

/*
 * The DATA encoder: turns message bytes into what goes after "354":
 * CRLF line ends (a bare CR or LF becomes CRLF), a '.' at the start of a
 * line doubled, lines longer than RELAY_DATA_LINE_MAX folded (CRLF SPACE
 * in the header, i.e. before the first empty line; CRLF in the body).
 * Input may come in pieces of any size (a CR at the end of a piece is
 * held until the next byte is seen).
 */
#define RELAY_DATA_LINE_MAX 998

struct relay_data_enc {
	size_t line_len;	/* octets on the current output line */
	int pending_cr;		/* a CR waits for its LF */
	int in_header;		/* no empty line seen yet */
};

void relay_data_enc_init(struct relay_data_enc *e);

/* Appends the encoding of in[0..len-1] to out. out must have room for
 * 2 * len + 8 more bytes (buf max); returns 0, or -1 when it has not (out
 * may then hold part of the output). */
int relay_data_enc_feed(struct relay_data_enc *e, const char *in, size_t len,
    struct buf *out);

/* Appends the end: a CRLF if the last line is not ended, then ".\r\n".
 * Returns 0, or -1 when out is full. */
int relay_data_enc_finish(struct relay_data_enc *e, struct buf *out);


/*
 * Does the header section of the message msg[0..len) (up to the first
 * empty line, at most RELAY_HEADER_SCAN_MAX octets looked at) hold the
 * field `TLS-Required: No` (RFC 8689 5: name and value in any case,
 * folding white space around the value)? 1 or 0.
 */
#define RELAY_HEADER_SCAN_MAX	(1024 * 1024)
int relay_header_tls_optional(const char *msg, size_t len);

/* May s go into a command line as an address: no byte below 0x20, no DEL,
 * no '<' or '>' (they would end the path early), not longer than maxlen. Returns 1 (yes) or 0. *eightbit_r (may be NULL)
 * is set to 1 when s has a byte >= 0x80 (needs SMTPUTF8). */
int relay_addr_ok(const char *s, size_t maxlen, int *eightbit_r);

#endif
