/*
 * store_read: the read functions of the store (store.h). Each is one
 * short read transaction on the calling thread; everything is copied out
 * before it ends, and what fails to decode is set aside afterwards
 * (store_aside.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/store_internal.h"

#define STORE_LIST_BATCH 64			/* messages per read txn */

queue_id_t
store_max_id(struct queue_store *s)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	queue_id_t id = 0;
	int rc;

	if (rtxn_begin(s, &txn) != STORE_OK)
		return 0;
	rc = mdb_cursor_open(txn, s->dbi_msg, &c);
	if (rc == 0) {
		/* Skip over junk keys of another length (they are set aside
		 * when met by the readers). */
		rc = s_cget(s, c, &k, &v, MDB_LAST);
		while (rc == 0 && k.mv_size != KEY_ID_LEN)
			rc = s_cget(s, c, &k, &v, MDB_PREV);
		if (rc == 0)
			id = be_get64(k.mv_data);
		mdb_cursor_close(c);
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		store_err(s, rc, "reading the largest queue id");
	rtxn_end(s, &txn);
	return id;
}

/* Reads the recipients of id into m (under txn); undecodable ones go to
 * bl. */
static int
read_rcpts(struct queue_store *s, MDB_txn *txn, queue_id_t id,
    struct queue_msg *m, struct bad_list *bl)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	size_t cap = 0;
	int rc;

	if ((rc = mdb_cursor_open(txn, s->dbi_rcpt, &c)) != 0)
		return store_err(s, rc, "reading recipients");
	k = key_rcpt(kb, id, 0);
	for (rc = s_cget(s, c, &k, &v, MDB_SET_RANGE);
	    rc == 0 && key_has_id(&k, id);
	    rc = s_cget(s, c, &k, &v, MDB_NEXT)) {
		struct queue_rcpt r;
		uint32_t idx = k.mv_size == KEY_RCPT_LEN ?
		    be_get32((const uint8_t *)k.mv_data + 8) : 0;
		char txt[64];

		if (k.mv_size != KEY_RCPT_LEN ||
		    record_rcpt_decode(v.mv_data, v.mv_size, &r) != 0) {
			log_warn("queue: r/%s: recipient record fails to decode",
			    key_text(&k, txt, sizeof txt));
			bad_add(bl, BAD_RCPT, id, idx, &k);
			continue;
		}
		r.idx = idx;
		if (m->nrcpts == cap) {
			cap = cap ? cap * 2 : 4;
			m->rcpts = xrealloc(m->rcpts, cap * sizeof *m->rcpts);
		}
		m->rcpts[m->nrcpts++] = r;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? STORE_OK :
	    store_err(s, rc, "reading recipients");
}

/* Decodes the message at (k, v) with its recipients into m. */
static int
read_msg(struct queue_store *s, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct queue_msg *m, struct bad_list *bl)
{
	char txt[64];
	int st;

	struct record_body layout;

	memset(m, 0, sizeof *m);
	if (k->mv_size != KEY_ID_LEN ||
	    record_msg_decode(v->mv_data, v->mv_size, &m->env, &layout) != 0) {
		log_warn("queue: m/%s: envelope record fails to decode",
		    key_text(k, txt, sizeof txt));
		bad_add(bl, BAD_MSG, k->mv_size == KEY_ID_LEN ?
		    be_get64(k->mv_data) : 0, 0, k);
		return STORE_CORRUPT;
	}
	m->env.id = be_get64(k->mv_data);
	m->size = layout.size;
	m->nchunks = layout.nchunks;
	st = read_rcpts(s, txn, m->env.id, m, bl);
	if (st != STORE_OK)
		queue_msg_free(m);
	return st;
}

int
store_msg_load(struct queue_store *s, queue_id_t id, struct queue_msg *msg_r)
{
	struct bad_list bl = { 0 };
	uint8_t kb[KEY_ID_LEN];
	MDB_txn *txn;
	MDB_val k = key_id(kb, id), v;
	int st, rc;

	memset(msg_r, 0, sizeof *msg_r);
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	rc = s_get(s, txn, s->dbi_msg, &k, &v);
	if (rc == 0)
		st = read_msg(s, txn, &k, &v, msg_r, &bl);
	else
		st = store_err(s, rc, "reading a message");
	rtxn_end(s, &txn);
	bad_apply(s, &bl);
	return st;
}

/* ---- the body cursor ---- */

struct store_body {
	struct queue_store *s;
	queue_id_t id;
	struct record_body layout;
	uint32_t next;		/* the record to read next */
	uint64_t done;		/* bytes handed out so far */
	int failed;		/* the status of an error, sticky */
	struct buf rec;		/* a copy of the last record */
};

/* The envelope (or a record) of id fails to check: the whole message
 * goes aside (when writable), as a reader finds it. */
static void
body_set_aside(struct queue_store *s, queue_id_t id)
{
	struct bad_list bl = { 0 };
	char idtxt[QUEUE_ID_LEN + 1];
	uint8_t kb[KEY_ID_LEN];
	MDB_val k = key_id(kb, id);

	log_warn("queue: %s: message body or envelope fails to decode",
	    queue_id_format(id, idtxt, sizeof idtxt));
	bad_add(&bl, BAD_MSG, id, 0, &k);
	bad_apply(s, &bl);
}

int
store_body_open(struct queue_store *s, queue_id_t id, struct store_body **b_r)
{
	uint8_t kb[KEY_ID_LEN];
	struct record_body layout;
	struct envelope env;
	MDB_txn *txn;
	MDB_val k = key_id(kb, id), v;
	int st, rc, bad = 0;

	*b_r = NULL;
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	rc = s_get(s, txn, s->dbi_msg, &k, &v);
	if (rc == 0 && record_msg_decode(v.mv_data, v.mv_size, &env, &layout) != 0)
		bad = 1;
	else if (rc == 0)
		envelope_free(&env);
	rtxn_end(s, &txn);
	if (rc != 0)
		return store_err(s, rc, "reading a message");
	if (bad) {
		body_set_aside(s, id);
		return STORE_CORRUPT;
	}
	*b_r = xcalloc(1, sizeof **b_r);
	(*b_r)->s = s;
	(*b_r)->id = id;
	(*b_r)->layout = layout;
	buf_init(&(*b_r)->rec, RECORD_CHUNK_MAX);
	return STORE_OK;
}

uint64_t
store_body_size(const struct store_body *b)
{
	return b->layout.size;
}

/* Does record number b->next of len bytes fit the layout? */
static int
body_record_ok(const struct store_body *b, size_t len)
{
	const struct record_body *l = &b->layout;
	uint64_t left = l->size - b->done;
	int last = b->next + 1 == l->nchunks;

	if (l->fixed != 0)
		return len == (left < l->fixed ? left : l->fixed) &&
		    (last ? len == left : len == l->fixed);
	return len >= 1 && len <= RECORD_CHUNK_MAX && len <= left &&
	    (!last || len == left);
}

int
store_body_next(struct store_body *b, const char **data_r, size_t *len_r)
{
	struct queue_store *s = b->s;
	uint8_t kb[KEY_RCPT_LEN];
	MDB_txn *txn;
	MDB_val k, v;
	int st, rc, bad = 0;

	*data_r = NULL;
	*len_r = 0;
	if (b->failed)
		return b->failed;
	if (b->next == b->layout.nchunks) {
		if (b->done == b->layout.size)
			return STORE_OK;
		bad = 1;
		goto fail;
	}
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	k = key_rcpt(kb, b->id, b->next);
	rc = s_get(s, txn, s->dbi_body, &k, &v);
	if (rc == 0 && body_record_ok(b, v.mv_size)) {
		buf_reset(&b->rec);
		buf_append(&b->rec, v.mv_data, v.mv_size);	/* fits: max */
	} else if (rc == 0) {
		bad = 1;
	} else if (rc == MDB_NOTFOUND) {
		/* Gone with its message (deleted meanwhile), or lost. */
		uint8_t mk[KEY_ID_LEN];
		MDB_val m = key_id(mk, b->id), mv;

		rc = s_get(s, txn, s->dbi_msg, &m, &mv);
		if (rc == MDB_NOTFOUND)
			b->failed = STORE_NOTFOUND;
		else if (rc == 0)
			bad = 1;
	}
	rtxn_end(s, &txn);
	if (rc != 0 && rc != MDB_NOTFOUND && !bad) {
		b->failed = store_err(s, rc, "reading a body");
		return b->failed;
	}
	if (b->failed)
		return b->failed;
	if (bad)
		goto fail;
	b->next++;
	b->done += b->rec.len;
	*data_r = b->rec.data;
	*len_r = b->rec.len;
	return STORE_OK;
fail:
	b->failed = STORE_CORRUPT;
	body_set_aside(s, b->id);
	return STORE_CORRUPT;
}

void
store_body_rewind(struct store_body *b)
{
	b->next = 0;
	b->done = 0;
}

static int
body_reader_next(void *arg, const char **data_r, size_t *len_r)
{
	return store_body_next(arg, data_r, len_r) == STORE_OK ? 0 : -1;
}

static int
body_reader_rewind(void *arg)
{
	struct store_body *b = arg;

	store_body_rewind(b);
	return b->failed ? -1 : 0;
}

void
store_body_reader(struct store_body *b, struct body_reader *r_r)
{
	r_r->next = body_reader_next;
	r_r->rewind = body_reader_rewind;
	r_r->arg = b;
	r_r->size = b->layout.size;
}

int
store_body_error(const struct store_body *b)
{
	return b->failed;
}

void
store_body_close(struct store_body **bp)
{
	if (*bp == NULL)
		return;
	buf_free(&(*bp)->rec);
	free(*bp);
	*bp = NULL;
}

int
store_foreach_msg(struct queue_store *s, store_msg_fn fn, void *arg)
{
	struct queue_msg batch[STORE_LIST_BATCH];
	queue_id_t next = 0;

	for (;;) {
		struct bad_list bl = { 0 };
		uint8_t kb[KEY_ID_LEN];
		MDB_txn *txn;
		MDB_cursor *c;
		MDB_val k, v;
		size_t n = 0;
		int st, rc, more = 0, ret = 0;

		if ((st = rtxn_begin(s, &txn)) != STORE_OK)
			return st;
		if ((rc = mdb_cursor_open(txn, s->dbi_msg, &c)) != 0) {
			rtxn_end(s, &txn);
			return store_err(s, rc, "listing messages");
		}
		k = key_id(kb, next);
		for (rc = s_cget(s, c, &k, &v, MDB_SET_RANGE); rc == 0;
		    rc = s_cget(s, c, &k, &v, MDB_NEXT)) {
			if (n == STORE_LIST_BATCH) {
				more = 1;
				break;
			}
			if (k.mv_size == KEY_ID_LEN)
				next = be_get64(k.mv_data) + 1;
			st = read_msg(s, txn, &k, &v, &batch[n], &bl);
			if (st == STORE_OK)
				n++;
			else if (st != STORE_CORRUPT)
				break;
		}
		mdb_cursor_close(c);
		rtxn_end(s, &txn);
		bad_apply(s, &bl);
		if (rc != 0 && rc != MDB_NOTFOUND) {
			st = store_err(s, rc, "listing messages");
			more = 0;
			ret = st;
		} else if (st != STORE_OK && st != STORE_CORRUPT) {
			more = 0;
			ret = st;
		}
		for (size_t i = 0; i < n; i++) {
			if (ret == 0)
				ret = fn(&batch[i], arg);
			queue_msg_free(&batch[i]);
		}
		if (ret != 0)
			return ret;
		if (!more)
			return STORE_OK;
	}
}

int
due_is_live(MDB_txn *txn, struct queue_store *s, int64_t when, queue_id_t id,
    uint32_t idx, char *dest, size_t destsize, int *rc_r)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_val k = key_rcpt(kb, id, idx), v;
	struct queue_rcpt r;
	int live;

	*rc_r = s_get(s, txn, s->dbi_rcpt, &k, &v);
	if (*rc_r == MDB_NOTFOUND) {
		*rc_r = 0;
		return 0;
	}
	if (*rc_r != 0)
		return 0;
	if (record_rcpt_decode(v.mv_data, v.mv_size, &r) != 0)
		return -1;
	live = !RCPT_IS_DONE(r.state, r.flags) && r.next_try == when;
	if (live && dest != NULL) {
		const char *at = strrchr(r.addr, '@');
		str_copy(dest, at ? at + 1 : "", destsize);
		str_lower(dest);
	}
	queue_rcpt_clear(&r);
	return live;
}

int
store_due_list(struct queue_store *s, const struct store_due *after,
    int64_t until, struct store_due *out, size_t max, size_t *n_r)
{
	struct bad_list bl = { 0 };
	uint8_t kb[KEY_DUE_LEN];
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	int st, rc;

	*n_r = 0;
	if (max == 0)
		return STORE_OK;
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	if ((rc = mdb_cursor_open(txn, s->dbi_due, &c)) != 0) {
		rtxn_end(s, &txn);
		return store_err(s, rc, "listing due recipients");
	}
	if (after != NULL) {
		k = key_due(kb, after->when, after->id, after->idx);
		rc = s_cget(s, c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == KEY_DUE_LEN &&
		    memcmp(k.mv_data, kb, KEY_DUE_LEN) == 0)
			rc = s_cget(s, c, &k, &v, MDB_NEXT);
	} else {
		rc = s_cget(s, c, &k, &v, MDB_FIRST);
	}
	for (; rc == 0 && *n_r < max; rc = s_cget(s, c, &k, &v, MDB_NEXT)) {
		const uint8_t *p = k.mv_data;
		int64_t when;
		queue_id_t id;
		uint32_t idx;
		int live, grc;

		if (k.mv_size != KEY_DUE_LEN) {
			bad_add(&bl, BAD_DUE, 0, 0, &k);
			continue;
		}
		when = (int64_t)be_get64(p);
		if (when > until || when < 0)
			break;
		id = be_get64(p + 8);
		idx = be_get32(p + 16);
		live = due_is_live(txn, s, when, id, idx, out[*n_r].dest,
		    sizeof out[*n_r].dest, &grc);
		if (grc != 0) {
			rc = grc;
			break;
		}
		if (live == 1) {
			out[*n_r].when = when;
			out[*n_r].id = id;
			out[*n_r].idx = idx;
			(*n_r)++;
			continue;
		}
		if (live < 0) {
			uint8_t rk[KEY_RCPT_LEN];
			MDB_val rkey = key_rcpt(rk, id, idx);
			bad_add(&bl, BAD_RCPT, id, idx, &rkey);
		}
		bad_add(&bl, BAD_DUE, id, idx, &k);
	}
	mdb_cursor_close(c);
	rtxn_end(s, &txn);
	if (bl.n > 0)
		log_warn("queue: %zu stale or bad due entries found", bl.n);
	bad_apply(s, &bl);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_err(s, rc, "listing due recipients");
	return STORE_OK;
}

static uint64_t
dbi_entries(MDB_txn *txn, MDB_dbi dbi, int *rc_r)
{
	MDB_stat ms;
	int rc = mdb_stat(txn, dbi, &ms);

	if (rc != 0) {
		*rc_r = rc;
		return 0;
	}
	return ms.ms_entries;
}

static uint64_t
meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name)
{
	MDB_val k = { strlen(name), (void *)name }, v;

	if (mdb_get(txn, dbi, &k, &v) != 0 || v.mv_size != 8)	/* not counted */
		return 0;
	return be_get64(v.mv_data);
}

int
store_stats_get(struct queue_store *s, struct store_stats *st_r)
{
	MDB_txn *txn;
	int st, rc = 0;

	memset(st_r, 0, sizeof *st_r);
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	st_r->received = meta_get_u64(txn, s->dbi_meta, "received");
	st_r->delivered = meta_get_u64(txn, s->dbi_meta, "delivered");
	st_r->deferred = meta_get_u64(txn, s->dbi_meta, "deferred");
	st_r->bounced = meta_get_u64(txn, s->dbi_meta, "bounced");
	st_r->rejected = meta_get_u64(txn, s->dbi_meta, "rejected");
	st_r->messages = dbi_entries(txn, s->dbi_msg, &rc);
	st_r->recipients = dbi_entries(txn, s->dbi_rcpt, &rc);
	st_r->pending = dbi_entries(txn, s->dbi_due, &rc);
	st_r->bad = dbi_entries(txn, s->dbi_bad, &rc);
	st_r->body_records = dbi_entries(txn, s->dbi_body, &rc);
	if (!s->no_stage)
		st_r->staged = dbi_entries(txn, s->dbi_stage, &rc);
	rtxn_end(s, &txn);
	return rc == 0 ? STORE_OK : store_err(s, rc, "reading stats");
}

