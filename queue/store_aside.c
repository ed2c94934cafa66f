/*
 * store_aside: what does not decode is set aside into `bad`, never
 * deleted silently and never a crash (STYLE.md 7). Readers collect what
 * they find under their read transaction (bad_add) and set it aside in a
 * short write transaction of their own afterwards (bad_apply), checking
 * again that it still fails. A recipient record set aside leaves a
 * placeholder in its place when the envelope survives, so that the sender
 * is told and the message still leaves the queue. Records of messages
 * that no longer exist (orphans) are collected here too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/store_internal.h"

void
bad_add(struct bad_list *bl, enum bad_kind kind, queue_id_t id, uint32_t idx,
    const MDB_val *key)
{
	struct bad_item *b;

	if (bl->n == bl->cap) {
		bl->cap = bl->cap ? bl->cap * 2 : 8;
		bl->v = xrealloc(bl->v, bl->cap * sizeof *bl->v);
	}
	b = &bl->v[bl->n++];
	memset(b, 0, sizeof *b);
	b->kind = kind;
	b->id = id;
	b->idx = idx;
	if (key != NULL) {
		b->klen = key->mv_size < KEY_BAD_MAX ? key->mv_size : KEY_BAD_MAX;
		memcpy(b->key, key->mv_data, b->klen);
	}
}

const char *
key_text(const MDB_val *k, char *out, size_t outsize)
{
	char id[QUEUE_ID_LEN + 1];

	if (k->mv_size == KEY_ID_LEN)
		snprintf(out, outsize, "%s", queue_id_format(be_get64(k->mv_data),
		    id, sizeof id));
	else if (k->mv_size == KEY_RCPT_LEN)
		snprintf(out, outsize, "%s#%" PRIu32, queue_id_format(
		    be_get64(k->mv_data), id, sizeof id),
		    be_get32((const uint8_t *)k->mv_data + 8));
	else
		snprintf(out, outsize, "(key of %zu bytes)", k->mv_size);
	return out;
}

int
setaside_record(struct store_wtxn *t, MDB_dbi dbi, char tag, const MDB_val *key)
{
	struct queue_store *s = t->s;
	uint8_t bk[1 + 511];
	MDB_val v, bkey;
	char txt[64];
	int rc;

	if (key->mv_size > sizeof bk - 1)
		return STORE_INVALID;
	rc = s_get(s, t->txn, dbi, (MDB_val *)key, &v);
	if (rc == MDB_NOTFOUND)
		return STORE_OK;
	if (rc != 0)
		return wtxn_fail(t, rc, "set aside: read");
	bk[0] = (uint8_t)tag;
	memcpy(bk + 1, key->mv_data, key->mv_size);
	bkey = (MDB_val){ key->mv_size + 1, bk };
	/* A record set aside before under this key (a bad recipient whose
	 * placeholder follows its envelope to bad later) keeps its first,
	 * original copy. */
	rc = s_put(s, t->txn, s->dbi_bad, &bkey, &v, MDB_NOOVERWRITE);
	if ((rc != 0 && rc != MDB_KEYEXIST) ||
	    (rc = s_del(s, t->txn, dbi, (MDB_val *)key)) != 0)
		return wtxn_fail(t, rc, "set aside");
	log_warn("queue: %c/%s: record set aside (moved to bad)",
	    tag, key_text(key, txt, sizeof txt));
	return STORE_OK;
}

int
due_purge_scan(struct store_wtxn *t, queue_id_t id, int all_idx, uint32_t idx)
{
	struct queue_store *s = t->s;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(t->txn, s->dbi_due, &c)) != 0)
		return wtxn_fail(t, rc, "due scan");
	rc = s_cget(s, c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		const uint8_t *p = k.mv_data;
		if (k.mv_size == KEY_DUE_LEN && be_get64(p + 8) == id &&
		    (all_idx || be_get32(p + 16) == idx)) {
			if ((rc = s_cdel(s, c)) != 0)
				break;
			/* After a delete MDB_NEXT yields the following entry. */
		}
		rc = s_cget(s, c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? STORE_OK : wtxn_fail(t, rc, "due scan");
}

/* Moves every record of dbi whose key starts with id into `bad`. */
static int
setaside_prefix(struct store_wtxn *t, MDB_dbi dbi, char tag, queue_id_t id)
{
	struct queue_store *s = t->s;
	uint8_t kb[KEY_ID_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	int rc, st;

	for (;;) {
		if ((rc = mdb_cursor_open(t->txn, dbi, &c)) != 0)
			return wtxn_fail(t, rc, "set aside");
		k = key_id(kb, id);
		rc = s_cget(s, c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && !key_has_id(&k, id))
			rc = MDB_NOTFOUND;
		if (rc != 0) {
			mdb_cursor_close(c);
			return rc == MDB_NOTFOUND ? STORE_OK :
			    wtxn_fail(t, rc, "set aside");
		}
		uint8_t copy[KEY_BAD_MAX];
		MDB_val ck = { k.mv_size < sizeof copy ? k.mv_size : sizeof copy, copy };
		memcpy(copy, k.mv_data, ck.mv_size);
		mdb_cursor_close(c);
		if (ck.mv_size != k.mv_size)
			return STORE_INVALID;
		if ((st = setaside_record(t, dbi, tag, &ck)) != STORE_OK)
			return st;
	}
}

int
setaside_msg(struct store_wtxn *t, queue_id_t id)
{
	struct queue_store *s = t->s;
	uint8_t kb[KEY_ID_LEN];
	MDB_val k = key_id(kb, id);
	int st;

	if ((st = setaside_record(t, s->dbi_msg, 'm', &k)) != STORE_OK ||
	    (st = setaside_prefix(t, s->dbi_body, 'b', id)) != STORE_OK ||
	    (st = setaside_prefix(t, s->dbi_rcpt, 'r', id)) != STORE_OK ||
	    (st = wdel(t, s->dbi_live, &k, "set aside")) != STORE_OK ||
	    (!s->no_stage && (st = stage_unmark(t, id)) != STORE_OK))
		return st;
	return due_purge_scan(t, id, 1, 0);
}

int
setaside_rcpt(struct store_wtxn *t, queue_id_t id, uint32_t idx)
{
	struct queue_store *s = t->s;
	uint8_t kb[KEY_RCPT_LEN], dk[KEY_DUE_LEN];
	MDB_val k = key_rcpt(kb, id, idx), v;
	struct envelope env;
	struct record_body layout;
	char addr[64], idtxt[QUEUE_ID_LEN + 1];
	int64_t now = time(NULL);
	int st, rc;

	if ((st = setaside_record(t, s->dbi_rcpt, 'r', &k)) != STORE_OK ||
	    (st = due_purge_scan(t, id, 0, idx)) != STORE_OK)
		return st;
	k = key_id(kb, id);
	rc = s_get(s, t->txn, s->dbi_msg, &k, &v);
	if (rc == MDB_NOTFOUND)
		return STORE_OK;
	if (rc != 0)
		return wtxn_fail(t, rc, "set aside: envelope");
	if (record_msg_decode(v.mv_data, v.mv_size, &env, &layout) != 0)
		return STORE_OK;	/* the whole message goes aside when read */
	envelope_free(&env);
	snprintf(addr, sizeof addr, "(recipient #%" PRIu32 ": unreadable)", idx);
	struct queue_rcpt r = {
		.idx = idx,
		.addr = addr,
		.state = RCPT_BOUNCED,
		.flags = RCPT_F_LOST | RCPT_F_NOTICE_PENDING,
		.next_try = now,
		.last_try = now,
		.diag = "the queue record of this recipient could not be read and "
		    "was set aside; the message was not delivered to it",
		.status = "5.3.0",
	};
	v = (MDB_val){ 0, NULL };
	k = key_due(dk, now, id, idx);
	if ((st = rcpt_put(t, id, &r)) != STORE_OK ||
	    (st = wput(t, s->dbi_due, &k, &v, 0, "set aside: due entry")) != STORE_OK ||
	    (st = live_recount(t, id, NULL)) != STORE_OK)
		return st;
	log_warn("%s: recipient %" PRIu32 " could not be read: its sender will "
	    "be told", queue_id_format(id, idtxt, sizeof idtxt), idx);
	return STORE_OK;
}

void
bad_apply(struct queue_store *s, struct bad_list *bl)
{
	struct store_wtxn *t;
	int st = STORE_OK;

	if (bl->n == 0)
		goto out;
	if (s->rdonly) {
		log_warn("queue: %zu undecodable record(s) skipped (read-only)",
		    bl->n);
		goto out;
	}
	if (store_wtxn_begin(s, NULL, &t) != STORE_OK)
		goto out;
	for (size_t i = 0; i < bl->n && st == STORE_OK; i++) {
		struct bad_item *b = &bl->v[i];
		MDB_val k = { b->klen, b->key }, v;
		struct queue_rcpt rc;
		int rcode, grc;

		switch (b->kind) {
		case BAD_MSG:
			/* The envelope or the body was bad: the whole message
			 * goes aside together (ids are never reused). */
			rcode = s_get(s, t->txn, s->dbi_msg, &k, &v);
			if (rcode == 0 && k.mv_size == KEY_ID_LEN)
				st = setaside_msg(t, b->id);
			else if (rcode == 0)
				st = setaside_record(t, s->dbi_msg, 'm', &k);
			break;
		case BAD_RCPT:
			rcode = s_get(s, t->txn, s->dbi_rcpt, &k, &v);
			if (rcode != 0)
				break;
			if (k.mv_size == KEY_RCPT_LEN &&
			    record_rcpt_decode(v.mv_data, v.mv_size, &rc) == 0) {
				queue_rcpt_clear(&rc);
				break;
			}
			if (k.mv_size == KEY_RCPT_LEN)
				st = setaside_rcpt(t, b->id, b->idx);
			else
				st = setaside_record(t, s->dbi_rcpt, 'r', &k);
			break;
		case BAD_DUE:
			if (k.mv_size == KEY_DUE_LEN && due_is_live(t->txn, s,
			    (int64_t)be_get64(b->key), be_get64(b->key + 8),
			    be_get32(b->key + 16), NULL, 0, &grc) == 1)
				break;	/* made live again meanwhile */
			rcode = s_del(s, t->txn, s->dbi_due, &k);
			if (rcode != 0 && rcode != MDB_NOTFOUND)
				st = wtxn_fail(t, rcode, "dropping a stale due entry");
			break;
		}
	}
	if (st == STORE_OK)
		store_wtxn_commit(&t);
	else
		store_wtxn_abort(&t);
out:
	free(bl->v);
	memset(bl, 0, sizeof *bl);
}

/* ---- orphans ---- */

struct orphan {
	MDB_dbi dbi;
	char tag;
	queue_id_t id;
	int stale_due;		/* a due entry: dropped, it carries nothing */
	uint8_t key[KEY_DUE_LEN];
};

static void
orphan_add(struct orphan **v, size_t *n, size_t *cap, const struct orphan *o)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = xrealloc(*v, *cap * sizeof **v);
	}
	(*v)[(*n)++] = *o;
}

int
store_collect_orphans(struct queue_store *s, uint64_t *count_r)
{
	struct { MDB_dbi dbi; char tag; } dbs[] = {
		{ s->dbi_body, 'b' }, { s->dbi_rcpt, 'r' }, { s->dbi_live, 'l' },
	};
	struct orphan *v = NULL;
	size_t n = 0, cap = 0;
	struct store_wtxn *t;
	MDB_txn *txn;
	int st, rc = 0;

	if (count_r != NULL)
		*count_r = 0;
	if (s->rdonly)
		return STORE_IO;
	if ((st = rtxn_begin(s, &txn)) != STORE_OK)
		return st;
	for (size_t d = 0; d < sizeof dbs / sizeof dbs[0] && rc == 0; d++) {
		uint8_t kb[KEY_ID_LEN], mk[KEY_ID_LEN];
		MDB_cursor *c;
		MDB_val k, val;
		int staged, srcode;

		if ((rc = mdb_cursor_open(txn, dbs[d].dbi, &c)) != 0)
			break;
		/* One look per message: seek from id to id + 1. */
		for (rc = s_cget(s, c, &k, &val, MDB_FIRST); rc == 0;) {
			struct orphan o = { .dbi = dbs[d].dbi, .tag = dbs[d].tag };
			MDB_val mkey;

			if (k.mv_size < KEY_ID_LEN) {
				rc = s_cget(s, c, &k, &val, MDB_NEXT);
				continue;	/* set aside by the readers */
			}
			o.id = be_get64(k.mv_data);
			mkey = key_id(mk, o.id);
			rc = s_get(s, txn, s->dbi_msg, &mkey, &val);
			/* A staged body has no message yet: it is being
			 * received, never an orphan (store.h, Staging). */
			staged = 0;
			if (rc == MDB_NOTFOUND && dbs[d].dbi == s->dbi_body &&
			    (staged = stage_marked(s, txn, o.id, &srcode)) < 0) {
				rc = srcode;
				break;
			}
			if (rc == MDB_NOTFOUND && staged) {
				rc = 0;
			} else if (rc == MDB_NOTFOUND) {
				rc = 0;
				orphan_add(&v, &n, &cap, &o);
			} else if (rc != 0) {
				break;
			}
			if (o.id == UINT64_MAX)
				break;
			k = key_id(kb, o.id + 1);
			rc = s_cget(s, c, &k, &val, MDB_SET_RANGE);
		}
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (rc == 0) {
		MDB_cursor *c;
		MDB_val k, val;

		if ((rc = mdb_cursor_open(txn, s->dbi_due, &c)) == 0) {
			for (rc = s_cget(s, c, &k, &val, MDB_FIRST); rc == 0;
			    rc = s_cget(s, c, &k, &val, MDB_NEXT)) {
				const uint8_t *p = k.mv_data;
				struct orphan o = { .dbi = s->dbi_due, .stale_due = 1 };
				int grc;

				if (k.mv_size != KEY_DUE_LEN ||
				    due_is_live(txn, s, (int64_t)be_get64(p),
				    be_get64(p + 8), be_get32(p + 16), NULL, 0,
				    &grc) != 0 || grc != 0)
					continue;
				memcpy(o.key, p, KEY_DUE_LEN);
				orphan_add(&v, &n, &cap, &o);
			}
			mdb_cursor_close(c);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		}
	}
	rtxn_end(s, &txn);
	if (rc != 0) {
		free(v);
		return store_err(s, rc, "looking for orphaned records");
	}
	if (n == 0)
		return STORE_OK;
	if ((st = store_wtxn_begin(s, NULL, &t)) != STORE_OK) {
		free(v);
		return st;
	}
	for (size_t i = 0; i < n && st == STORE_OK; i++) {
		uint8_t mk[KEY_ID_LEN];
		MDB_val mkey = key_id(mk, v[i].id), val;

		if (v[i].stale_due) {
			MDB_val k = { KEY_DUE_LEN, v[i].key };
			st = wdel(t, s->dbi_due, &k, "dropping a stale due entry");
			continue;
		}
		/* Still without its message (none may appear: ids are never
		 * reused), and not being staged? */
		rc = s_get(s, t->txn, s->dbi_msg, &mkey, &val);
		if (rc == 0)
			continue;
		if (rc == MDB_NOTFOUND && v[i].dbi == s->dbi_body) {
			int srcode, staged = stage_marked(s, t->txn, v[i].id, &srcode);

			if (staged < 0)
				rc = srcode;
			else if (staged > 0)
				continue;
		}
		if (rc != MDB_NOTFOUND)
			st = wtxn_fail(t, rc, "collecting orphans");
		else if (v[i].dbi == s->dbi_live)
			st = wdel(t, s->dbi_live, &mkey, "collecting orphans");
		else
			st = setaside_prefix(t, v[i].dbi, v[i].tag, v[i].id);
	}
	if (st == STORE_OK)
		st = store_wtxn_commit(&t);
	else
		store_wtxn_abort(&t);
	if (st == STORE_OK) {
		log_warn("queue: %zu orphaned record group(s) collected "
		    "(records of messages that are gone)", n);
		if (count_r != NULL)
			*count_r = n;
	}
	free(v);
	return st;
}
