/*
 * milter_split: the message as milters are sent it. Message bytes go in
 * (CRLF line ends, dot-stuffing undone, without the final ".", in pieces
 * of any size and boundary); out come, one at a time: each header (name
 * and value; folded lines joined by LF, as Sendmail gives them), the end
 * of headers (at the empty line, or at the first line that is not a
 * header), the body in chunks of at most MILTER_CHUNK_MAX bytes, and the
 * end. One event at a time, so that a caller can wait for the milters'
 * replies to it before it asks for the next (an event loop stops and
 * resumes between any two).
 *
 * Limits: a header is kept up to MILTER_HEADER_MAX bytes (the rest is not
 * seen), a line up to MILTER_HEADER_MAX + 2 (an over-long one keeps its
 * first MILTER_HEADER_MAX bytes and ends in CRLF); nothing is ever
 * refused. Memory: the line, the
 * header and the chunk, each bounded. Not thread-safe: one splitter per
 * message, used by one thread at a time. Out of memory aborts.
 */
#ifndef FILTER_MILTER_SPLIT_H
#define FILTER_MILTER_SPLIT_H

#include <stddef.h>

#include "lib/buf.h"

/* Bytes of one header the milters see; the rest of a longer header is cut
 * off in what they see (the queued message keeps it whole). */
#define MILTER_HEADER_MAX	(64 * 1024)

enum milter_split_ev {
	MILTER_SPLIT_NONE,	/* the bytes given are used up */
	MILTER_SPLIT_HEADER,	/* *name, *value (NUL-terminated) */
	MILTER_SPLIT_EOH,
	MILTER_SPLIT_BODY,	/* *data, *len */
	MILTER_SPLIT_END,	/* after milter_split_finish: all of it went */
};

struct milter_split {
	int in_body;		/* the end of headers went */
	const char *in;		/* the caller's bytes not parsed yet */
	size_t in_len;
	struct buf line;	/* the header line being read */
	int line_ready;		/* line holds a whole line, not taken yet */
	int line_cut;		/* the line is over-long: bytes were dropped */
	int body_line;		/* line (from body_off) starts the body */
	size_t body_off;
	struct buf header;	/* the header being gathered */
	int have_header;
	int q_header, q_eoh;	/* to go next: the header, the end of headers */
	struct buf chunk;	/* the body chunk being filled */
	int finish;		/* no more bytes come: flush, then END */
	enum milter_split_ev last;	/* what _next gave last */
};

void milter_split_init(struct milter_split *sp);
void milter_split_free(struct milter_split *sp);
/* A new message. */
void milter_split_reset(struct milter_split *sp);
/* The next bytes; they must stay as they are until milter_split_next
 * returns MILTER_SPLIT_NONE (or milter_split_drop). */
void milter_split_feed(struct milter_split *sp, const void *data, size_t len);
/* No more bytes: what is buffered goes out, then MILTER_SPLIT_END (once). */
void milter_split_finish(struct milter_split *sp);
/* Forgets the bytes given and not parsed yet. */
void milter_split_drop(struct milter_split *sp);
/* The next event. What it points to stays valid until the next call. */
enum milter_split_ev milter_split_next(struct milter_split *sp,
    const char **name, const char **value, const char **data, size_t *len);

#endif
