/*
 * body_reader: a message read in pieces from wherever it is kept (the
 * queue's LMDB records, a buffer in memory), so that the parts that send,
 * store or quote a message (relay/, storage/, the bounces of queue/) never
 * need it whole in memory, nor know where it lives.
 *
 * Ownership: the reader and what arg points to belong to whoever made
 * them; a piece handed out is valid until the next call on the reader.
 * Errors: next and rewind return -1 when the message cannot be read (it
 * was deleted, a record is corrupt, an I/O error): the consumer gives up
 * this attempt (a temporary failure).
 * Threads: a reader belongs to one thread at a time.
 */
#ifndef LIB_BODY_READER_H
#define LIB_BODY_READER_H

#include <stddef.h>
#include <stdint.h>

struct body_reader {
	/* The next piece into *data_r, *len_r; *len_r is 0 at the end.
	 * Returns 0, or -1. */
	int (*next)(void *arg, const char **data_r, size_t *len_r);
	/* Back to the first byte. Returns 0, or -1. */
	int (*rewind)(void *arg);
	void *arg;
	uint64_t size;		/* bytes in the whole message */
};

/* A reader over bytes in memory, in pieces of at most piece bytes (0:
 * all in one), for messages built in memory and for tests. */
struct body_mem {
	const char *p;
	size_t len, off, piece;
};

/* Makes r read p[0..len) (borrowed) with its state in m. */
void body_reader_mem(struct body_reader *r, struct body_mem *m, const char *p,
    size_t len, size_t piece);

#endif
