/*
 * store_size: what the queue holds, summed for the metrics (store.h,
 * store_size_get). The message and recipient counts are the databases'
 * entry counts; the bytes and the oldest arrival take one pass over the
 * envelopes, in batches, each batch a read transaction of its own so that
 * no long snapshot keeps freed pages from being reused.
 */
#include <string.h>

#include "queue/store_internal.h"

#define STORE_SIZE_BATCH 4096	/* envelopes per read transaction */

/* One batch from the key after *after (0: from the start); *more_r is set
 * when the batch ended before the database did. */
static int
size_batch(struct queue_store *s, queue_id_t *after, struct store_size *sz,
    int *more_r)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	size_t n = 0;
	int st, rc;

	*more_r = 0;
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	if ((rc = mdb_cursor_open(txn, s->dbi_msg, &c)) != 0) {
		rtxn_end(s, &txn);
		return store_err(s, rc, "counting the queue");
	}
	if (*after == 0) {
		rc = s_cget(s, c, &k, &v, MDB_FIRST);
	} else {
		k = key_id(kb, *after);
		rc = s_cget(s, c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && key_has_id(&k, *after) && k.mv_size == KEY_ID_LEN)
			rc = s_cget(s, c, &k, &v, MDB_NEXT);
	}
	for (; rc == 0; rc = s_cget(s, c, &k, &v, MDB_NEXT)) {
		int64_t arrival;
		uint64_t size;

		if (n == STORE_SIZE_BATCH) {
			*more_r = 1;
			break;
		}
		if (k.mv_size != KEY_ID_LEN)
			continue;	/* junk: set aside by the readers */
		*after = be_get64(k.mv_data);
		n++;
		if (record_msg_peek(v.mv_data, v.mv_size, &arrival, &size, NULL) != 0)
			continue;	/* set aside when a reader meets it */
		sz->bytes += size;
		if (sz->oldest == 0 || arrival < sz->oldest)
			sz->oldest = arrival;
	}
	mdb_cursor_close(c);
	rtxn_end(s, &txn);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_err(s, rc, "counting the queue");
	return STORE_OK;
}

int
store_size_get(struct queue_store *s, struct store_size *sz_r)
{
	struct store_stats st;
	queue_id_t after = 0;
	int more = 1, rc;

	memset(sz_r, 0, sizeof *sz_r);
	if ((rc = store_stats_get(s, &st)) != STORE_OK)
		return rc;
	sz_r->messages = st.messages;
	sz_r->pending = st.pending;
	while (more)
		if ((rc = size_batch(s, &after, sz_r, &more)) != STORE_OK)
			return rc;
	return STORE_OK;
}
