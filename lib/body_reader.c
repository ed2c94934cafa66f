/* body_reader: the in-memory reader (the interface is in body_reader.h). */
#include "lib/body_reader.h"

static int
body_mem_next(void *arg, const char **data_r, size_t *len_r)
{
	struct body_mem *m = arg;
	size_t n = m->len - m->off;

	if (m->piece > 0 && n > m->piece)
		n = m->piece;
	*data_r = m->p + m->off;
	*len_r = n;
	m->off += n;
	return 0;
}

static int
body_mem_rewind(void *arg)
{
	struct body_mem *m = arg;

	m->off = 0;
	return 0;
}

void
body_reader_mem(struct body_reader *r, struct body_mem *m, const char *p,
    size_t len, size_t piece)
{
	m->p = p != NULL ? p : "";
	m->len = p != NULL ? len : 0;
	m->off = 0;
	m->piece = piece;
	r->next = body_mem_next;
	r->rewind = body_mem_rewind;
	r->arg = m;
	r->size = m->len;
}
