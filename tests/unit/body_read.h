/*
 * body_read: a message's whole body through the store's body cursor, for
 * tests that compare bodies (the server itself never reads a body whole).
 */
#ifndef TESTS_UNIT_BODY_READ_H
#define TESTS_UNIT_BODY_READ_H

#include <stdlib.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "queue/store.h"

/* Copies at most limit bytes (0: all) of id's body into a heap string
 * *body_r (NUL-terminated; free it) of *len_r bytes. Returns the cursor's
 * status (STORE_OK, STORE_NOTFOUND, STORE_CORRUPT, ...). */
static inline int
body_read(struct queue_store *s, queue_id_t id, size_t limit, char **body_r,
    size_t *len_r)
{
	struct store_body *b;
	struct buf out;
	int st;

	*body_r = NULL;
	*len_r = 0;
	if ((st = store_body_open(s, id, &b)) != STORE_OK)
		return st;
	buf_init(&out, (size_t)1 << 32);
	for (;;) {
		const char *p;
		size_t n;

		if ((st = store_body_next(b, &p, &n)) != STORE_OK || n == 0)
			break;
		if (limit != 0 && n > limit - out.len)
			n = limit - out.len;
		buf_append(&out, p, n);
		if (limit != 0 && out.len == limit)
			break;
	}
	store_body_close(&b);
	if (st != STORE_OK) {
		buf_free(&out);
		return st;
	}
	*body_r = buf_steal(&out, len_r);
	return STORE_OK;
}

#endif
