/*
 * store_write: the changes of the store (store.h): new messages,
 * recipient updates and notices done, alias expansions, deletes, flushes
 * and counters. The change that makes the last recipient of a message
 * done removes the message in the same transaction. The `live` count of
 * each message makes that check cheap (a message of 1,000 recipients
 * costs linear work, not quadratic): it is verified by a scan of the
 * recipients, once, when it reaches zero, and recounted when missing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/store_internal.h"

#define STORE_FLUSH_CHUNK 2000	/* recipients per transaction of a flush */

static const char *const store_counter_names[STORE_CTR_COUNT] = {
	"received", "delivered", "deferred", "bounced", "rejected",
};

int
store_counter_add(struct store_wtxn *t, enum store_counter c, uint64_t n)
{
	const char *name;
	MDB_val k, v;
	uint8_t nb[8];
	uint64_t cur = 0;
	int rc;

	if ((unsigned)c >= STORE_CTR_COUNT)
		return STORE_INVALID;
	if (t->dead)
		return t->dead_status;
	if (n == 0)
		return STORE_OK;
	name = store_counter_names[c];
	k = (MDB_val){ strlen(name), (void *)name };
	rc = s_get(t->s, t->txn, t->s->dbi_meta, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		cur = be_get64(v.mv_data);
	else if (rc == 0 && setaside_record(t, t->s->dbi_meta, 'M', &k) != STORE_OK)
		return t->dead ? t->dead_status : STORE_IO;
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc, "reading a counter");
	be_put64(nb, cur + n);
	v = (MDB_val){ sizeof nb, nb };
	return wput(t, t->s->dbi_meta, &k, &v, 0, "writing a counter");
}

/* ---- live counts ---- */

static int
live_write(struct store_wtxn *t, queue_id_t id, uint32_t n)
{
	uint8_t kb[KEY_ID_LEN], nb[4];
	MDB_val k = key_id(kb, id), v = { sizeof nb, nb };

	be_put32(nb, n);
	return wput(t, t->s->dbi_live, &k, &v, 0, "writing a live count");
}

int
live_recount(struct store_wtxn *t, queue_id_t id, uint32_t *n_r)
{
	struct queue_store *s = t->s;
	uint8_t kb[KEY_RCPT_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	uint32_t n = 0;
	int rc;

	if (t->dead)
		return t->dead_status;
	if ((rc = mdb_cursor_open(t->txn, s->dbi_rcpt, &c)) != 0)
		return wtxn_fail(t, rc, "counting recipients");
	k = key_rcpt(kb, id, 0);
	for (rc = s_cget(s, c, &k, &v, MDB_SET_RANGE);
	    rc == 0 && key_has_id(&k, id);
	    rc = s_cget(s, c, &k, &v, MDB_NEXT)) {
		struct queue_rcpt r;

		/* Undecodable: not done, so the message is never removed
		 * under it; it is set aside (with a placeholder) when read. */
		if (record_rcpt_decode(v.mv_data, v.mv_size, &r) != 0) {
			n++;
			continue;
		}
		n += !RCPT_IS_DONE(r.state, r.flags);
		queue_rcpt_clear(&r);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc, "counting recipients");
	if (n_r != NULL)
		*n_r = n;
	return live_write(t, id, n);
}

/*
 * The number of recipients of id that are not done changed by delta (the
 * records are written already). *zero_r is set when none is left, after a
 * scan confirmed it.
 */
static int
live_change(struct store_wtxn *t, queue_id_t id, int delta, int *zero_r)
{
	struct queue_store *s = t->s;
	uint8_t kb[KEY_ID_LEN];
	MDB_val k = key_id(kb, id), v;
	uint32_t n;
	int rc, st;

	*zero_r = 0;
	if (t->dead)
		return t->dead_status;
	rc = s_get(s, t->txn, s->dbi_live, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc, "reading a live count");
	if (rc == MDB_NOTFOUND || v.mv_size != 4 ||
	    (int64_t)be_get32(v.mv_data) + delta <= 0) {
		/* Missing (a queue of schema 1), odd, or at zero: count. */
		if ((st = live_recount(t, id, &n)) != STORE_OK)
			return st;
		if (n == 0)
			*zero_r = 1;
		return STORE_OK;
	}
	n = (uint32_t)((int64_t)be_get32(v.mv_data) + delta);
	return live_write(t, id, n);
}

/* ---- messages ---- */

/* Writes part p[0..n) as `body` records of RECORD_CHUNK_SIZE (the last
 * the rest) from record *next on. */
static int
put_body_records(struct store_wtxn *t, queue_id_t id, const char *p, size_t n,
    uint32_t *next)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_val k, v;
	int st;

	for (size_t off = 0; off < n; off += RECORD_CHUNK_SIZE) {
		size_t len = n - off < RECORD_CHUNK_SIZE ? n - off : RECORD_CHUNK_SIZE;

		k = key_rcpt(kb, id, (*next)++);
		v = (MDB_val){ len, (void *)(p + off) };
		if ((st = wput(t, t->s->dbi_body, &k, &v, 0, "writing a body")))
			return st;
	}
	return STORE_OK;
}

int
store_put_msg_parts(struct store_wtxn *t, const struct envelope *env,
    const struct store_body_parts *b)
{
	struct queue_store *s = t->s;
	struct record_body layout;
	struct buf mrec, rrec;
	size_t *roff = NULL;
	uint8_t kb[KEY_DUE_LEN];
	MDB_val k, v;
	uint64_t need, staged_bytes = 0;
	uint32_t next;
	int64_t due = (env->flags & ENV_HELD) ? STORE_HOLD_TIME : env->arrival;
	int st = STORE_OK, rc, marked;

	if (t->dead)
		return t->dead_status;
	if (env->id == 0 || env->nrcpts == 0 || env->rcpts == NULL ||
	    (b->head == NULL && b->head_len > 0) ||
	    (b->tail == NULL && b->tail_len > 0) ||
	    (b->staged > 0 && (b->head_len == 0 || b->head_len > RECORD_CHUNK_MAX)) ||
	    b->staged > UINT32_MAX / 2)
		return STORE_INVALID;
	buf_init(&mrec, STORE_RECORD_BUF_MAX);
	buf_init(&rrec, (size_t)STORE_RECORD_BUF_MAX * 16);
	if (b->staged > 0) {
		if ((st = stage_verify(t, env->id, b->staged, &staged_bytes)))
			goto out;
	} else if ((marked = stage_marked(s, t->txn, env->id, &rc)) != 0) {
		/* A staged id given as a message of none: a caller's bug. */
		st = marked < 0 ? wtxn_fail(t, rc, "reading a stage mark") :
		    STORE_INVALID;
		goto out;
	}
	layout.fixed = 0;
	layout.size = b->head_len + staged_bytes + b->tail_len;
	layout.nchunks = (b->staged > 0 ? 1 + b->staged :
	    record_body_chunks(b->head_len)) + record_body_chunks(b->tail_len);
	if (record_msg_encode(env, &layout, &mrec) != 0) {
		st = STORE_INVALID;
		goto out;
	}
	roff = xcalloc(env->nrcpts + 1, sizeof *roff);
	for (size_t i = 0; i < env->nrcpts; i++) {
		struct queue_rcpt r = {
			.addr = env->rcpts[i].addr,
			.orcpt = env->rcpts[i].orcpt,
			.notify = env->rcpts[i].notify,
			.state = RCPT_QUEUED,
			.next_try = due,
			.diag = "",
		};
		roff[i] = rrec.len;
		if (record_rcpt_encode(&r, &rrec) != 0) {
			st = STORE_INVALID;
			goto out;
		}
	}
	roff[env->nrcpts] = rrec.len;
	/* Pages hold the records with some slack; due keys and B-tree
	 * overhead on top. */
	need = (b->head_len + b->tail_len + rrec.len + mrec.len +
	    env->nrcpts * 48) / 4 * 5 + 2 * s->psize;
	if ((st = store_room(t, need)) != STORE_OK)
		goto out;
	k = key_id(kb, env->id);
	rc = s_get(s, t->txn, s->dbi_msg, &k, &v);
	if (rc == 0) {
		st = STORE_EXISTS;
		goto out;
	}
	if (rc != MDB_NOTFOUND) {
		st = wtxn_fail(t, rc, "checking a queue id");
		goto out;
	}
	v = (MDB_val){ mrec.len, mrec.data };
	if ((st = wput(t, s->dbi_msg, &k, &v, MDB_NOOVERWRITE, "writing an envelope")))
		goto out;
	next = 0;
	if (b->staged > 0) {
		k = key_rcpt(kb, env->id, 0);
		v = (MDB_val){ b->head_len, (void *)b->head };
		if ((st = wput(t, s->dbi_body, &k, &v, 0, "writing a body")))
			goto out;
		next = 1 + b->staged;
		if ((st = stage_unmark(t, env->id)) != STORE_OK)
			goto out;
	} else if ((st = put_body_records(t, env->id, b->head, b->head_len,
	    &next)) != STORE_OK) {
		goto out;
	}
	if ((st = put_body_records(t, env->id, b->tail, b->tail_len, &next)))
		goto out;
	for (size_t i = 0; i < env->nrcpts; i++) {
		k = key_rcpt(kb, env->id, (uint32_t)i);
		v = (MDB_val){ roff[i + 1] - roff[i], rrec.data + roff[i] };
		if ((st = wput(t, s->dbi_rcpt, &k, &v, 0, "writing a recipient")))
			goto out;
		k = key_due(kb, due, env->id, (uint32_t)i);
		v = (MDB_val){ 0, NULL };
		if ((st = wput(t, s->dbi_due, &k, &v, 0, "writing a due entry")))
			goto out;
	}
	if ((st = live_write(t, env->id, (uint32_t)env->nrcpts)) != STORE_OK)
		goto out;
	st = store_counter_add(t, STORE_CTR_RECEIVED, 1);
out:
	free(roff);
	buf_free(&mrec);
	buf_free(&rrec);
	return st;
}

int
store_put_msg(struct store_wtxn *t, const struct envelope *env,
    const char *body, size_t body_len)
{
	struct store_body_parts b = { .head = body, .head_len = body_len };

	return store_put_msg_parts(t, env, &b);
}

/* Deletes every record of dbi whose key starts with id; *found_r is set
 * when there was one. */
int
delete_prefix(struct store_wtxn *t, MDB_dbi dbi, queue_id_t id, int *found_r)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if (t->dead)
		return t->dead_status;
	if ((rc = mdb_cursor_open(t->txn, dbi, &c)) != 0)
		return wtxn_fail(t, rc, "deleting");
	k = key_id(kb, id);
	/* Re-seek after each delete: simple and safe at page boundaries. */
	while ((rc = s_cget(t->s, c, &k, &v, MDB_SET_RANGE)) == 0 &&
	    key_has_id(&k, id)) {
		*found_r = 1;
		if ((rc = s_cdel(t->s, c)) != 0)
			break;
		k = key_id(kb, id);
	}
	mdb_cursor_close(c);
	if (rc == 0 || rc == MDB_NOTFOUND)
		return STORE_OK;
	return wtxn_fail(t, rc, "deleting");
}

/* Removes the due entries of id's recipients (read from their records;
 * a full scan when one does not decode). */
static int
delete_dues_of(struct store_wtxn *t, queue_id_t id)
{
	uint8_t kb[KEY_RCPT_LEN], dk[KEY_DUE_LEN];
	struct { int64_t when; uint32_t idx; } *dues = NULL;
	size_t n = 0, cap = 0;
	MDB_cursor *c;
	MDB_val k, v;
	int rc, st = STORE_OK, scan = 0;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi_rcpt, &c)) != 0)
		return wtxn_fail(t, rc, "deleting");
	k = key_rcpt(kb, id, 0);
	for (rc = s_cget(t->s, c, &k, &v, MDB_SET_RANGE);
	    rc == 0 && key_has_id(&k, id);
	    rc = s_cget(t->s, c, &k, &v, MDB_NEXT)) {
		struct queue_rcpt r;

		if (k.mv_size != KEY_RCPT_LEN ||
		    record_rcpt_decode(v.mv_data, v.mv_size, &r) != 0) {
			scan = 1;
			continue;
		}
		if (!RCPT_IS_DONE(r.state, r.flags)) {
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				dues = xrealloc(dues, cap * sizeof *dues);
			}
			dues[n].when = r.next_try;
			dues[n].idx = be_get32((const uint8_t *)k.mv_data + 8);
			n++;
		}
		queue_rcpt_clear(&r);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		st = wtxn_fail(t, rc, "deleting");
	for (size_t i = 0; i < n && st == STORE_OK; i++) {
		k = key_due(dk, dues[i].when, id, dues[i].idx);
		st = wdel(t, t->s->dbi_due, &k, "deleting a due entry");
	}
	free(dues);
	if (st == STORE_OK && scan)
		st = due_purge_scan(t, id, 1, 0);
	return st;
}

static int
delete_msg(struct store_wtxn *t, queue_id_t id)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_val k = key_id(kb, id);
	int st, found = 0, rc;

	if (t->dead)
		return t->dead_status;
	rc = s_del(t->s, t->txn, t->s->dbi_msg, &k);
	if (rc == 0)
		found = 1;
	else if (rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc, "deleting an envelope");
	if ((st = delete_dues_of(t, id)) != STORE_OK ||
	    (st = delete_prefix(t, t->s->dbi_rcpt, id, &found)) != STORE_OK ||
	    (st = delete_prefix(t, t->s->dbi_body, id, &found)) != STORE_OK ||
	    (st = wdel(t, t->s->dbi_live, &k, "deleting a live count")) != STORE_OK)
		return st;
	return found ? STORE_OK : STORE_NOTFOUND;
}

int
store_delete_msg(struct store_wtxn *t, queue_id_t id)
{
	int st = delete_msg(t, id);

	if (st == STORE_OK)
		t->freed = 1;
	return st;
}

int
store_delete_all(struct store_wtxn *t, uint64_t *count_r)
{
	struct queue_store *s = t->s;
	MDB_dbi dbis[] = { s->dbi_msg, s->dbi_body, s->dbi_rcpt, s->dbi_due,
	    s->dbi_live, s->dbi_stage };
	MDB_stat ms;
	int rc = 0;
	uint64_t n;

	if (t->dead)
		return t->dead_status;
	if ((rc = mdb_stat(t->txn, s->dbi_msg, &ms)) != 0)
		return wtxn_fail(t, rc, "counting messages");
	n = ms.ms_entries;
	for (size_t i = 0; i < sizeof dbis / sizeof dbis[0]; i++)
		if ((rc = mdb_drop(t->txn, dbis[i], 0)) != 0)
			return wtxn_fail(t, rc, "deleting all messages");
	if (count_r != NULL)
		*count_r = n;
	t->freed = 1;
	return STORE_OK;
}

int
rcpt_get(struct store_wtxn *t, queue_id_t id, uint32_t idx, struct queue_rcpt *r)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_val k = key_rcpt(kb, id, idx), v;
	int rc, st;

	if (t->dead)
		return t->dead_status;
	rc = s_get(t->s, t->txn, t->s->dbi_rcpt, &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND :
		    wtxn_fail(t, rc, "reading a recipient");
	if (record_rcpt_decode(v.mv_data, v.mv_size, r) == 0) {
		r->idx = idx;
		return STORE_OK;
	}
	if ((st = setaside_rcpt(t, id, idx)) != STORE_OK)
		return st;
	return STORE_CORRUPT;
}

int
rcpt_put(struct store_wtxn *t, queue_id_t id, const struct queue_rcpt *r)
{
	uint8_t kb[KEY_RCPT_LEN];
	MDB_val k = key_rcpt(kb, id, r->idx), v;
	struct buf b;
	int st;

	buf_init(&b, STORE_RECORD_BUF_MAX);
	if (record_rcpt_encode(r, &b) != 0) {
		buf_free(&b);
		return STORE_INVALID;
	}
	v = (MDB_val){ b.len, b.data };
	st = wput(t, t->s->dbi_rcpt, &k, &v, 0, "writing a recipient");
	buf_free(&b);
	return st;
}

/* The recipient just became done: one less live; the message goes with
 * the last one. */
static int
rcpt_done(struct store_wtxn *t, queue_id_t id, int *removed_r)
{
	int zero, st = live_change(t, id, -1, &zero);

	if (st != STORE_OK || !zero)
		return st;
	st = delete_msg(t, id);
	if (st == STORE_NOTFOUND)
		st = STORE_OK;
	if (st == STORE_OK && removed_r != NULL)
		*removed_r = 1;
	return st;
}

static int
due_del(struct store_wtxn *t, queue_id_t id, const struct queue_rcpt *r)
{
	uint8_t kb[KEY_DUE_LEN];
	MDB_val k = key_due(kb, r->next_try, id, r->idx);

	return wdel(t, t->s->dbi_due, &k, "deleting a due entry");
}

static int
due_put(struct store_wtxn *t, queue_id_t id, const struct queue_rcpt *r)
{
	uint8_t kb[KEY_DUE_LEN];
	MDB_val k = key_due(kb, r->next_try, id, r->idx), v = { 0, NULL };

	return wput(t, t->s->dbi_due, &k, &v, 0, "writing a due entry");
}

/* Replaces *field by a copy of value cut to max bytes (NULL: keep when
 * keep_null, else clear). */
static void
set_str(char **field, const char *value, size_t max, int keep_null)
{
	if (value == NULL && keep_null)
		return;
	free(*field);
	*field = value != NULL ? xstrndup(value, max) : NULL;
}

int
store_rcpt_update(struct store_wtxn *t, queue_id_t id, uint32_t idx,
    const struct rcpt_update *u, int *removed_r)
{
	struct queue_rcpt r;
	int st;

	if (removed_r != NULL)
		*removed_r = 0;
	if (t->dead)
		return t->dead_status;
	if ((unsigned)u->state > RCPT_BOUNCED || u->next_try < 0 ||
	    u->attempt_time < 0 || ((u->set_flags | u->clear_flags) & ~RCPT_F_ALL) != 0)
		return STORE_INVALID;
	if ((st = rcpt_get(t, id, idx, &r)) != STORE_OK)
		return st;
	if (RCPT_IS_FINAL(r.state) && !(u->state == RCPT_SENT &&
	    r.state == RCPT_BOUNCED && (r.flags & RCPT_F_NOTICE_PENDING))) {
		queue_rcpt_clear(&r);
		return STORE_OK;	/* a repeated result */
	}
	/* Else a delivery that went through while the recipient was bounced
	 * apart from it (mailctl bounce, its lifetime) and the notice is not
	 * out yet: the mail arrived, so the notice saying it did not goes. */
	if ((st = due_del(t, id, &r)) != STORE_OK)
		goto out;
	if (RCPT_IS_FINAL(r.state))
		r.flags &= ~(unsigned)RCPT_F_NOTICE_PENDING;
	r.state = u->state;
	r.flags = (r.flags & ~u->clear_flags) | u->set_flags;
	if (u->attempt_time > 0) {
		r.attempts++;
		r.last_try = u->attempt_time;
	}
	set_str(&r.diag, u->diag, RECORD_DIAG_MAX - 1, 1);
	set_str(&r.status, u->status, RECORD_STATUS_MAX, 1);
	set_str(&r.remote_mta, u->remote_mta, RECORD_STR_MAX, 0);
	/* A held message stays held whatever an attempt under way when the
	 * hold came decided. */
	if (r.next_try != STORE_HOLD_TIME || RCPT_IS_DONE(r.state, r.flags))
		r.next_try = u->next_try;
	if ((st = rcpt_put(t, id, &r)) != STORE_OK)
		goto out;
	if (!RCPT_IS_DONE(r.state, r.flags) && (st = due_put(t, id, &r)) != STORE_OK)
		goto out;
	if (r.state == RCPT_SENT)
		st = store_counter_add(t, STORE_CTR_DELIVERED, 1);
	else if (r.state == RCPT_BOUNCED)
		st = store_counter_add(t, STORE_CTR_BOUNCED, 1);
	else if (r.state == RCPT_DEFERRED)
		st = store_counter_add(t, STORE_CTR_DEFERRED, 1);
	if (st == STORE_OK && RCPT_IS_DONE(r.state, r.flags))
		st = rcpt_done(t, id, removed_r);
out:
	queue_rcpt_clear(&r);
	return st;
}

int
store_rcpt_notice_done(struct store_wtxn *t, queue_id_t id, uint32_t idx,
    unsigned set_flags, int *removed_r)
{
	struct queue_rcpt r;
	int st;

	if (removed_r != NULL)
		*removed_r = 0;
	if (t->dead)
		return t->dead_status;
	if ((set_flags & ~RCPT_F_ALL) != 0)
		return STORE_INVALID;
	if ((st = rcpt_get(t, id, idx, &r)) != STORE_OK)
		return st;
	if (!(r.flags & RCPT_F_NOTICE_PENDING)) {
		queue_rcpt_clear(&r);
		return STORE_OK;
	}
	if (RCPT_IS_FINAL(r.state) && (st = due_del(t, id, &r)) != STORE_OK)
		goto out;
	r.flags = (r.flags & ~(unsigned)RCPT_F_NOTICE_PENDING) | set_flags;
	if ((st = rcpt_put(t, id, &r)) != STORE_OK)
		goto out;
	if (RCPT_IS_FINAL(r.state))
		st = rcpt_done(t, id, removed_r);
out:
	queue_rcpt_clear(&r);
	return st;
}

/* The highest recipient index of id, under t. */
static int
last_rcpt_idx(struct store_wtxn *t, queue_id_t id, uint32_t *idx_r)
{
	struct queue_store *s = t->s;
	uint8_t kb[KEY_RCPT_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(t->txn, s->dbi_rcpt, &c)) != 0)
		return wtxn_fail(t, rc, "reading recipients");
	if (id == UINT64_MAX) {
		rc = s_cget(s, c, &k, &v, MDB_LAST);
	} else {
		k = key_rcpt(kb, id + 1, 0);
		rc = s_cget(s, c, &k, &v, MDB_SET_RANGE);
		rc = s_cget(s, c, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
	}
	if (rc == 0 && (k.mv_size != KEY_RCPT_LEN || !key_has_id(&k, id)))
		rc = MDB_NOTFOUND;
	if (rc == 0)
		*idx_r = be_get32((const uint8_t *)k.mv_data + 8);
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	return rc == 0 ? STORE_OK : wtxn_fail(t, rc, "reading recipients");
}

/* Counts in t->mbox each recipient of id that is a mailbox to deliver
 * to: every one but the aliases expanded (compared without case). */
static int
mbox_load(struct store_wtxn *t, queue_id_t id)
{
	struct queue_store *s = t->s;
	uint8_t kb[KEY_RCPT_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if (t->mbox_valid && t->mbox_id == id)
		return STORE_OK;
	strcount_free(&t->mbox);
	t->mbox_valid = 0;
	if ((rc = mdb_cursor_open(t->txn, s->dbi_rcpt, &c)) != 0)
		return wtxn_fail(t, rc, "reading recipients");
	strcount_init(&t->mbox);
	k = key_rcpt(kb, id, 0);
	for (rc = s_cget(s, c, &k, &v, MDB_SET_RANGE);
	    rc == 0 && key_has_id(&k, id);
	    rc = s_cget(s, c, &k, &v, MDB_NEXT)) {
		struct queue_rcpt r;

		if (record_rcpt_decode(v.mv_data, v.mv_size, &r) != 0)
			continue;
		if (r.state != RCPT_EXPANDED)
			strcount_add(&t->mbox, r.addr);
		queue_rcpt_clear(&r);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return wtxn_fail(t, rc, "reading recipients");
	t->mbox_valid = 1;
	t->mbox_id = id;
	return STORE_OK;
}

int
store_rcpt_expand(struct store_wtxn *t, queue_id_t id, uint32_t idx,
    const struct store_target *targets, size_t n, int64_t next_try,
    uint32_t *first_r, int *removed_r)
{
	struct queue_rcpt r;
	struct buf check;
	unsigned char *dup = NULL;
	uint32_t last = 0, k = 0;
	size_t left = 0;
	int st, zero;

	if (removed_r != NULL)
		*removed_r = 0;
	if (t->dead)
		return t->dead_status;
	if (n == 0 || next_try < 0)
		return STORE_INVALID;
	/* Every target must make a record before anything is written. */
	buf_init(&check, STORE_RECORD_BUF_MAX);
	for (size_t i = 0; i < n; i++) {
		struct queue_rcpt nr = { .addr = (char *)targets[i].addr,
		    .orcpt = (char *)targets[i].orcpt, .notify = targets[i].notify,
		    .diag = "" };
		buf_reset(&check);
		if (record_rcpt_encode(&nr, &check) != 0) {
			buf_free(&check);
			return STORE_INVALID;
		}
	}
	buf_free(&check);
	if ((st = store_room(t, (uint64_t)n * 512)) != STORE_OK)
		return st;
	if ((st = rcpt_get(t, id, idx, &r)) != STORE_OK)
		return st;
	if (RCPT_IS_FINAL(r.state)) {
		queue_rcpt_clear(&r);
		return STORE_INVALID;
	}
	/* The alias is no mailbox; a target already one is left out. */
	if ((st = mbox_load(t, id)) != STORE_OK)
		goto out;
	strcount_sub(&t->mbox, r.addr);
	dup = xcalloc(n, 1);
	for (size_t i = 0; i < n; i++) {
		dup[i] = strcount_add(&t->mbox, targets[i].addr) > 0;
		left += !dup[i];
	}
	if ((st = last_rcpt_idx(t, id, &last)) != STORE_OK)
		goto out;
	if ((uint64_t)last + 1 + left > RECORD_RCPTS_MAX) {
		st = STORE_INVALID;
		goto out;
	}
	if ((st = due_del(t, id, &r)) != STORE_OK)
		goto out;
	r.state = RCPT_EXPANDED;
	r.flags &= ~(unsigned)RCPT_F_NOTICE_PENDING;
	if ((st = rcpt_put(t, id, &r)) != STORE_OK)
		goto out;
	for (size_t i = 0; i < n && st == STORE_OK; i++) {
		if (dup[i])
			continue;
		struct queue_rcpt nr = {
			.idx = last + 1 + k++,
			.addr = (char *)targets[i].addr,
			.orcpt = (char *)targets[i].orcpt,
			.notify = targets[i].notify,
			.state = RCPT_QUEUED,
			.flags = RCPT_F_ALIAS_TARGET,
			/* the targets of a held alias are held too */
			.next_try = r.next_try == STORE_HOLD_TIME ? STORE_HOLD_TIME :
			    next_try,
			.diag = "",
		};
		if ((st = rcpt_put(t, id, &nr)) == STORE_OK)
			st = due_put(t, id, &nr);
	}
	if (st == STORE_OK && left == 0)
		st = rcpt_done(t, id, removed_r);	/* each target was there */
	else if (st == STORE_OK)
		st = live_change(t, id, (int)left - 1, &zero);
	if (st == STORE_OK && first_r != NULL)
		*first_r = last + 1;
out:
	if (st != STORE_OK)
		t->mbox_valid = 0;
	free(dup);
	queue_rcpt_clear(&r);
	return st;
}

/* ---- flush ---- */

/* Makes up to max due entries later than now due at now; *more_r is set
 * when more were left. */
static int
flush_some(struct store_wtxn *t, int64_t now, size_t max, uint64_t *moved_r,
    int *more_r)
{
	struct queue_store *s = t->s;
	struct store_due *list = NULL;
	size_t n = 0, cap = 0;
	uint8_t kb[KEY_DUE_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	int rc, st = STORE_OK;

	*more_r = 0;
	if ((rc = mdb_cursor_open(t->txn, s->dbi_due, &c)) != 0)
		return wtxn_fail(t, rc, "flush");
	k = key_due(kb, now + 1, 0, 0);
	for (rc = s_cget(s, c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = s_cget(s, c, &k, &v, MDB_NEXT)) {
		const uint8_t *p = k.mv_data;

		if (k.mv_size != KEY_DUE_LEN)
			continue;
		if ((int64_t)be_get64(p) >= STORE_HOLD_TIME)
			break;	/* held: only a release makes it due */
		if (n == max) {
			*more_r = 1;
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			list = xrealloc(list, cap * sizeof *list);
		}
		list[n].when = (int64_t)be_get64(p);
		list[n].id = be_get64(p + 8);
		list[n].idx = be_get32(p + 16);
		n++;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		st = wtxn_fail(t, rc, "flush");
	for (size_t i = 0; i < n && st == STORE_OK; i++) {
		struct queue_rcpt r;
		int live;

		k = key_due(kb, list[i].when, list[i].id, list[i].idx);
		if ((st = wdel(t, s->dbi_due, &k, "flush")) != STORE_OK)
			break;
		st = rcpt_get(t, list[i].id, list[i].idx, &r);
		if (st == STORE_NOTFOUND || st == STORE_CORRUPT) {
			st = STORE_OK;	/* a stale entry: dropped above */
			continue;
		}
		if (st != STORE_OK)
			break;
		live = !RCPT_IS_DONE(r.state, r.flags) && r.next_try == list[i].when;
		if (live) {
			r.next_try = now;
			st = rcpt_put(t, list[i].id, &r);
			if (st == STORE_OK)
				st = due_put(t, list[i].id, &r);
			(*moved_r)++;
		}
		queue_rcpt_clear(&r);
	}
	free(list);
	return st;
}

int
store_flush(struct store_wtxn *t, int64_t now, uint64_t *count_r)
{
	uint64_t moved = 0;
	int more, st;

	if (count_r != NULL)
		*count_r = 0;
	if (t->dead)
		return t->dead_status;
	if (now < 0 || now == INT64_MAX)
		return STORE_INVALID;
	st = flush_some(t, now, SIZE_MAX, &moved, &more);
	if (st == STORE_OK && count_r != NULL)
		*count_r = moved;
	return st;
}

int
store_flush_all(struct queue_store *s, int64_t now, uint64_t *count_r)
{
	uint64_t total = 0;
	int st, more = 1;

	if (count_r != NULL)
		*count_r = 0;
	if (now < 0 || now == INT64_MAX)
		return STORE_INVALID;
	while (more) {
		struct store_wtxn *t;
		uint64_t moved = 0;

		if ((st = store_wtxn_begin(s, NULL, &t)) != STORE_OK)
			return st;
		st = flush_some(t, now, STORE_FLUSH_CHUNK, &moved, &more);
		if (st == STORE_OK)
			st = store_wtxn_commit(&t);
		else
			store_wtxn_abort(&t);
		if (st == STORE_FULL && store_grow(s)) {
			more = 1;
			continue;
		}
		if (st != STORE_OK)
			return st;
		total += moved;
		if (count_r != NULL)
			*count_r = total;
	}
	return STORE_OK;
}
