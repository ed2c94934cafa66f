/*
 * store_stage: bodies written before their message (store.h, Staging).
 * A staged id has body records 1, 2, ... and a mark in `stage`, written
 * together with its first record and dropped in the transaction that
 * makes the message (store_put_msg_parts) or gives it up
 * (store_stage_discard); the daemon's start drops every mark left, with
 * its records (store_stage_sweep). A body record of a marked id is never
 * an orphan.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/store_internal.h"

#define STAGE_MARK_VERSION 1
#define STAGE_MARK_LEN 9		/* u8 version, i64 start */
#define STAGE_SWEEP_BATCH 64		/* ids per transaction of a sweep */

int
stage_marked(struct queue_store *s, MDB_txn *txn, queue_id_t id, int *rc_r)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_val k = key_id(kb, id), v;

	*rc_r = 0;
	if (s->no_stage)
		return 0;
	*rc_r = s_get(s, txn, s->dbi_stage, &k, &v);
	if (*rc_r == MDB_NOTFOUND) {
		*rc_r = 0;
		return 0;
	}
	return *rc_r == 0 ? 1 : -1;
}

int
stage_unmark(struct store_wtxn *t, queue_id_t id)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_val k = key_id(kb, id);

	return wdel(t, t->s->dbi_stage, &k, "dropping a stage mark");
}

int
stage_verify(struct store_wtxn *t, queue_id_t id, uint32_t staged,
    uint64_t *bytes_r)
{
	struct queue_store *s = t->s;
	uint8_t kb[KEY_RCPT_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t bytes = 0;
	uint32_t want = 1;
	int rc, marked;

	*bytes_r = 0;
	if (t->dead)
		return t->dead_status;
	marked = stage_marked(s, t->txn, id, &rc);
	if (marked < 0)
		return wtxn_fail(t, rc, "reading a stage mark");
	if (!marked)
		return STORE_INVALID;
	if ((rc = mdb_cursor_open(t->txn, s->dbi_body, &c)) != 0)
		return wtxn_fail(t, rc, "reading staged records");
	k = key_rcpt(kb, id, 0);
	for (rc = s_cget(s, c, &k, &v, MDB_SET_RANGE);
	    rc == 0 && key_has_id(&k, id);
	    rc = s_cget(s, c, &k, &v, MDB_NEXT)) {
		/* Exactly 1..staged, in order, each of a size staging
		 * allows; record 0 is the final commit's. */
		if (k.mv_size != KEY_RCPT_LEN ||
		    be_get32((const uint8_t *)k.mv_data + 8) != want ||
		    want > staged || v.mv_size == 0 || v.mv_size > RECORD_CHUNK_MAX) {
			mdb_cursor_close(c);
			return STORE_INVALID;
		}
		bytes += v.mv_size;
		want++;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc, "reading staged records");
	if (want != staged + 1)
		return STORE_INVALID;
	*bytes_r = bytes;
	return STORE_OK;
}

int
store_stage_chunk(struct store_wtxn *t, queue_id_t id, uint32_t chunk,
    const void *data, size_t len)
{
	struct queue_store *s = t->s;
	uint8_t kb[KEY_RCPT_LEN], mark[STAGE_MARK_LEN];
	MDB_val k, v;
	int st, rc, marked;

	if (t->dead)
		return t->dead_status;
	if (id == 0 || chunk == 0 || data == NULL || len == 0 ||
	    len > RECORD_CHUNK_MAX || s->no_stage)
		return STORE_INVALID;
	k = key_id(kb, id);
	rc = s_get(s, t->txn, s->dbi_msg, &k, &v);
	if (rc == 0)
		return STORE_EXISTS;
	if (rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc, "checking a queue id");
	marked = stage_marked(s, t->txn, id, &rc);
	if (marked < 0)
		return wtxn_fail(t, rc, "reading a stage mark");
	if (chunk > 1 && !marked)
		return STORE_NOTFOUND;
	/* The records with their B-tree and overflow slack. */
	if ((st = store_room(t, (uint64_t)len / 4 * 5 + s->psize)) != STORE_OK)
		return st;
	if (!marked) {
		mark[0] = STAGE_MARK_VERSION;
		be_put64(mark + 1, (uint64_t)time(NULL));
		k = key_id(kb, id);
		v = (MDB_val){ sizeof mark, mark };
		if ((st = wput(t, s->dbi_stage, &k, &v, 0, "writing a stage mark")))
			return st;
	}
	k = key_rcpt(kb, id, chunk);
	v = (MDB_val){ len, (void *)data };
	rc = s_put(s, t->txn, s->dbi_body, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return STORE_EXISTS;
	return rc == 0 ? STORE_OK : wtxn_fail(t, rc, "staging a body record");
}

int
store_stage_discard(struct store_wtxn *t, queue_id_t id)
{
	struct queue_store *s = t->s;
	uint8_t kb[KEY_ID_LEN];
	MDB_val k = key_id(kb, id), v;
	int rc, st, found = 0;

	if (t->dead)
		return t->dead_status;
	if (s->no_stage)
		return STORE_OK;
	rc = s_get(s, t->txn, s->dbi_msg, &k, &v);
	if (rc == 0)
		return STORE_EXISTS;
	if (rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc, "checking a queue id");
	if ((st = delete_prefix(t, s->dbi_body, id, &found)) != STORE_OK)
		return st;
	if (found)
		t->freed = 1;
	return stage_unmark(t, id);
}

int
store_stage_read(struct queue_store *s, queue_id_t id, uint32_t chunk,
    struct buf *out)
{
	uint8_t kb[KEY_RCPT_LEN], mk[KEY_ID_LEN];
	MDB_txn *txn;
	MDB_val k, v, m;
	int st, rc, marked, full = 0;

	if (id == 0 || chunk == 0 || s->no_stage)
		return STORE_NOTFOUND;
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	/* Only a staged id's records: a message's are the delivery's. */
	m = key_id(mk, id);
	rc = s_get(s, txn, s->dbi_msg, &m, &v);
	if (rc == 0) {
		rtxn_end(s, &txn);
		return STORE_NOTFOUND;
	}
	marked = rc == MDB_NOTFOUND ? stage_marked(s, txn, id, &rc) : -1;
	if (marked == 1) {
		k = key_rcpt(kb, id, chunk);
		rc = s_get(s, txn, s->dbi_body, &k, &v);
		if (rc == 0 && buf_append(out, v.mv_data, v.mv_size) != 0)
			full = 1;
	} else if (marked == 0) {
		rc = MDB_NOTFOUND;
	}
	rtxn_end(s, &txn);
	if (full)
		return STORE_FULL;
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	return rc == 0 ? STORE_OK : store_err(s, rc, "reading a staged record");
}

int
store_stage_sweep(struct queue_store *s, uint64_t *count_r)
{
	uint64_t total = 0;

	if (count_r != NULL)
		*count_r = 0;
	if (s->rdonly || s->no_stage)
		return STORE_OK;
	for (;;) {
		queue_id_t ids[STAGE_SWEEP_BATCH];
		struct store_wtxn *t;
		MDB_cursor *c;
		MDB_val k, v;
		size_t n = 0;
		int st, rc;

		if ((st = store_wtxn_begin(s, NULL, &t)) != STORE_OK)
			return st;
		if ((rc = mdb_cursor_open(t->txn, s->dbi_stage, &c)) != 0) {
			st = wtxn_fail(t, rc, "sweeping stages");
			store_wtxn_abort(&t);
			return st;
		}
		for (rc = s_cget(s, c, &k, &v, MDB_FIRST);
		    rc == 0 && n < STAGE_SWEEP_BATCH;
		    rc = s_cget(s, c, &k, &v, MDB_NEXT)) {
			if (k.mv_size == KEY_ID_LEN)
				ids[n++] = be_get64(k.mv_data);
		}
		mdb_cursor_close(c);
		if (rc != 0 && rc != MDB_NOTFOUND && n < STAGE_SWEEP_BATCH) {
			st = wtxn_fail(t, rc, "sweeping stages");
			store_wtxn_abort(&t);
			return st;
		}
		if (n == 0) {
			MDB_stat ms;

			/* Keys of another length are junk with nothing to
			 * say: the whole database goes. */
			rc = mdb_stat(t->txn, s->dbi_stage, &ms);
			if (rc == 0 && ms.ms_entries > 0)
				rc = mdb_drop(t->txn, s->dbi_stage, 0);
			st = rc == 0 ? store_wtxn_commit(&t) :
			    wtxn_fail(t, rc, "sweeping stages");
			store_wtxn_abort(&t);
			if (st != STORE_OK)
				return st;
			break;
		}
		st = STORE_OK;
		for (size_t i = 0; i < n && st == STORE_OK; i++) {
			st = store_stage_discard(t, ids[i]);
			if (st == STORE_EXISTS)	/* whole already: only the mark */
				st = stage_unmark(t, ids[i]);
		}
		if (st == STORE_OK)
			st = store_wtxn_commit(&t);
		else
			store_wtxn_abort(&t);
		if (st != STORE_OK)
			return st;
		total += n;
	}
	if (total > 0)
		log_warn("queue: %" PRIu64 " message(s) left half received (by a "
		    "crash or a lost connection) dropped", total);
	if (count_r != NULL)
		*count_r = total;
	return STORE_OK;
}

int
store_stage_count(struct queue_store *s, uint64_t *count_r)
{
	MDB_txn *txn;
	MDB_stat ms;
	int st, rc;

	*count_r = 0;
	if (s->no_stage)
		return STORE_OK;
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	rc = mdb_stat(txn, s->dbi_stage, &ms);
	rtxn_end(s, &txn);
	if (rc != 0)
		return store_err(s, rc, "counting stages");
	*count_r = ms.ms_entries;
	return STORE_OK;
}
