/*
 * store_admin: what an administrator does to messages (mailctl; store.h,
 * "the administrator's operations"): hold and release, requeue, bounce,
 * and the body read chunk by chunk.
 *
 * A hold is the envelope's ENV_HELD and every recipient not done moved to
 * STORE_HOLD_TIME in the due index, in one transaction: the scheduler
 * never finds them due, nothing expires them, and store_write.c keeps
 * them there when an attempt that was under way records its outcome.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "queue/store_internal.h"

#define STORE_HOLD_CHUNK 256	/* messages per transaction of store_hold_all */

/* Puts id on hold or takes it off (the envelope's ENV_HELD flag, changed
 * in place: a record of either version stays as it is otherwise); *was_r
 * gets the flag as it was. STORE_CORRUPT after setting the message aside. */
static int
env_set_held(struct store_wtxn *t, queue_id_t id, int hold, int *was_r)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_val k = key_id(kb, id), v;
	unsigned flags;
	struct buf b;
	int rc, st;

	if (t->dead)
		return t->dead_status;
	rc = s_get(t->s, t->txn, t->s->dbi_msg, &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND :
		    wtxn_fail(t, rc, "reading an envelope");
	if (record_msg_peek(v.mv_data, v.mv_size, NULL, NULL, &flags) != 0) {
		if ((st = setaside_msg(t, id)) != STORE_OK)
			return st;
		return STORE_CORRUPT;
	}
	*was_r = (flags & ENV_HELD) != 0;
	if (*was_r == hold)
		return STORE_OK;
	flags = hold ? flags | ENV_HELD : flags & ~(unsigned)ENV_HELD;
	buf_init(&b, STORE_RECORD_BUF_MAX);
	if (buf_append(&b, v.mv_data, v.mv_size) != 0 ||
	    record_msg_set_flags(b.data, b.len, flags) != 0) {
		buf_free(&b);
		return STORE_INVALID;
	}
	v = (MDB_val){ b.len, b.data };
	st = wput(t, t->s->dbi_msg, &k, &v, 0, "writing an envelope");
	buf_free(&b);
	return st;
}

/* The recipients of id under t, decoded, into *list_r (free with
 * rcpts_free). Undecodable ones are left out (the readers set them
 * aside). */
static int
rcpts_get(struct store_wtxn *t, queue_id_t id, struct queue_rcpt **list_r, size_t *n_r)
{
	struct queue_rcpt *list = NULL;
	uint8_t kb[KEY_RCPT_LEN];
	size_t n = 0, cap = 0;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi_rcpt, &c)) != 0)
		return wtxn_fail(t, rc, "reading recipients");
	k = key_rcpt(kb, id, 0);
	for (rc = s_cget(t->s, c, &k, &v, MDB_SET_RANGE);
	    rc == 0 && key_has_id(&k, id);
	    rc = s_cget(t->s, c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != KEY_RCPT_LEN)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			list = xrealloc(list, cap * sizeof *list);
		}
		if (record_rcpt_decode(v.mv_data, v.mv_size, &list[n]) != 0)
			continue;
		list[n++].idx = be_get32((const uint8_t *)k.mv_data + 8);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		for (size_t i = 0; i < n; i++)
			queue_rcpt_clear(&list[i]);
		free(list);
		return wtxn_fail(t, rc, "reading recipients");
	}
	*list_r = list;
	*n_r = n;
	return STORE_OK;
}

static void
rcpts_free(struct queue_rcpt *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		queue_rcpt_clear(&list[i]);
	free(list);
}

/* Moves recipient r of id (not done) to be due at when. */
static int
rcpt_move(struct store_wtxn *t, queue_id_t id, struct queue_rcpt *r, int64_t when)
{
	uint8_t kb[KEY_DUE_LEN];
	MDB_val k, v = { 0, NULL };
	int st;

	k = key_due(kb, r->next_try, id, r->idx);
	if ((st = wdel(t, t->s->dbi_due, &k, "moving a due entry")) != STORE_OK)
		return st;
	r->next_try = when;
	if ((st = rcpt_put(t, id, r)) != STORE_OK)
		return st;
	k = key_due(kb, when, id, r->idx);
	return wput(t, t->s->dbi_due, &k, &v, 0, "moving a due entry");
}

/*
 * The common part of hold, release and requeue: the envelope's hold flag
 * set to hold, and every recipient not done due at STORE_HOLD_TIME (hold),
 * or, released, at now (those that were held; with requeue every one not
 * final, its attempts counted afresh).
 */
static int
msg_schedule(struct store_wtxn *t, queue_id_t id, int hold, int requeue, int64_t now,
    int *changed_r)
{
	struct queue_rcpt *list;
	size_t n;
	int st, was = 0;

	if (changed_r != NULL)
		*changed_r = 0;
	if ((st = env_set_held(t, id, hold, &was)) != STORE_OK)
		return st;
	if (was != hold && changed_r != NULL)
		*changed_r = 1;
	if ((st = rcpts_get(t, id, &list, &n)) != STORE_OK)
		return st;
	for (size_t i = 0; i < n && st == STORE_OK; i++) {
		struct queue_rcpt *r = &list[i];
		int64_t when = r->next_try;

		if (RCPT_IS_DONE(r->state, r->flags))
			continue;
		if (hold)
			when = STORE_HOLD_TIME;
		else if (r->next_try == STORE_HOLD_TIME || requeue)
			when = now;
		if (requeue && !RCPT_IS_FINAL(r->state) && r->attempts != 0) {
			r->attempts = 0;
			if (when == r->next_try && (st = rcpt_put(t, id, r)) != STORE_OK)
				break;
		}
		if (when != r->next_try)
			st = rcpt_move(t, id, r, when);
	}
	rcpts_free(list, n);
	return st;
}

int
store_msg_hold(struct store_wtxn *t, queue_id_t id, int hold, int64_t now,
    int *changed_r)
{
	if (now < 0 || now >= STORE_HOLD_TIME)
		return STORE_INVALID;
	return msg_schedule(t, id, hold != 0, 0, now, changed_r);
}

int
store_msg_requeue(struct store_wtxn *t, queue_id_t id, int64_t now)
{
	if (now < 0 || now >= STORE_HOLD_TIME)
		return STORE_INVALID;
	return msg_schedule(t, id, 0, 1, now, NULL);
}

int
store_msg_bounce(struct store_wtxn *t, queue_id_t id, int64_t now,
    const char *status, const char *diag, size_t *nbounced_r)
{
	struct queue_rcpt *list;
	size_t n;
	int st;

	*nbounced_r = 0;
	if ((st = store_msg_hold(t, id, 0, now, NULL)) != STORE_OK ||
	    (st = rcpts_get(t, id, &list, &n)) != STORE_OK)
		return st;
	for (size_t i = 0; i < n && st == STORE_OK; i++) {
		struct rcpt_update u = {
			.state = RCPT_BOUNCED,
			.next_try = now,	/* the notice is due now */
			.set_flags = RCPT_F_NOTICE_PENDING,
			.diag = diag,
			.status = status,
		};

		if (RCPT_IS_FINAL(list[i].state))
			continue;
		if ((st = store_rcpt_update(t, id, list[i].idx, &u, NULL)) == STORE_OK)
			(*nbounced_r)++;
	}
	rcpts_free(list, n);
	return st;
}

/* Up to STORE_HOLD_CHUNK messages after *after (0: from the start) into
 * ids; *n_r is how many. */
static int
ids_after(struct queue_store *s, queue_id_t *after, queue_id_t *ids, size_t *n_r)
{
	uint8_t kb[KEY_ID_LEN];
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	size_t n = 0;
	int st, rc;

	*n_r = 0;
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	if ((rc = mdb_cursor_open(txn, s->dbi_msg, &c)) == 0) {
		k = key_id(kb, *after + 1);
		for (rc = s_cget(s, c, &k, &v, *after ? MDB_SET_RANGE : MDB_FIRST);
		    rc == 0 && n < STORE_HOLD_CHUNK;
		    rc = s_cget(s, c, &k, &v, MDB_NEXT))
			if (k.mv_size == KEY_ID_LEN)
				ids[n++] = *after = be_get64(k.mv_data);
		mdb_cursor_close(c);
	}
	rtxn_end(s, &txn);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_err(s, rc, "listing messages");
	*n_r = n;
	return STORE_OK;
}

int
store_hold_all(struct queue_store *s, int hold, int64_t now, uint64_t *count_r)
{
	queue_id_t ids[STORE_HOLD_CHUNK], after = 0;
	size_t n;
	int st;

	*count_r = 0;
	for (;;) {
		struct store_wtxn *t;
		uint64_t changed = 0;

		if ((st = ids_after(s, &after, ids, &n)) != STORE_OK)
			return st;
		if (n == 0)
			break;
		if ((st = store_wtxn_begin(s, NULL, &t)) != STORE_OK)
			return st;
		for (size_t i = 0; i < n && st == STORE_OK; i++) {
			int c = 0;

			st = store_msg_hold(t, ids[i], hold, now, &c);
			if (st == STORE_NOTFOUND || st == STORE_CORRUPT)
				st = STORE_OK;	/* gone meanwhile, or set aside */
			changed += (uint64_t)c;
		}
		if (st == STORE_OK)
			st = store_wtxn_commit(&t);
		else
			store_wtxn_abort(&t);
		if (st == STORE_FULL && store_grow(s)) {
			after = ids[0] - 1;	/* this batch again */
			continue;
		}
		if (st != STORE_OK)
			return st;
		*count_r += changed;
		if (n < STORE_HOLD_CHUNK)
			break;
	}
	return STORE_OK;
}

/* ---- the body in chunks ---- */

int
store_body_foreach(struct queue_store *s, queue_id_t id, store_chunk_fn fn, void *arg)
{
	struct store_body *b;
	const char *p;
	size_t n;
	int st;

	if ((st = store_body_open(s, id, &b)) != STORE_OK)
		return st;
	while ((st = store_body_next(b, &p, &n)) == STORE_OK && n > 0)
		if ((st = fn(p, n, arg)) != 0)
			break;
	store_body_close(&b);
	return st;
}
