/*
 * mailctl_admin: the administrator's operations on messages (as
 * postsuper, postcat and exim -M do): hold and release, requeue, bounce,
 * cat. Each changes the queue in one short, fully synced write
 * transaction (hold all and release all in bounded batches); the
 * daemon's scheduler sees the change within a second.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/store.h"
#include "server/mailctl_int.h"

#define MAILCTL_BOUNCE_STATUS "5.0.0"
#define MAILCTL_BOUNCE_DIAG "returned to the sender by the administrator (mailctl bounce)"

enum admin_op { OP_HOLD, OP_RELEASE, OP_REQUEUE, OP_BOUNCE };

static const char *const op_done[] = {
	[OP_HOLD] = "held", [OP_RELEASE] = "released",
	[OP_REQUEUE] = "requeued", [OP_BOUNCE] = "bounced",
};

/* One operation on one message in t; *what_r is what to print. */
static int
admin_one(struct store_wtxn *t, enum admin_op op, queue_id_t id, int64_t now,
    char *what, size_t whatsize)
{
	size_t n = 0;
	int changed = 1, st;

	switch (op) {
	case OP_HOLD:
	case OP_RELEASE:
		st = store_msg_hold(t, id, op == OP_HOLD, now, &changed);
		break;
	case OP_REQUEUE:
		st = store_msg_requeue(t, id, now);
		break;
	default:
		st = store_msg_bounce(t, id, now, MAILCTL_BOUNCE_STATUS,
		    MAILCTL_BOUNCE_DIAG, &n);
		break;
	}
	if (op == OP_BOUNCE)
		snprintf(what, whatsize, "bounced (%zu recipients)", n);
	else
		snprintf(what, whatsize, "%s%s", changed ? "" : "already ", op_done[op]);
	return st;
}

/* The operation on every ID named, in one transaction: all of them or,
 * on a queue error, none. An ID not in the queue is reported and passed
 * over. */
static int
admin_ids(struct mailctl *mc, struct queue_store *s, char **ids, int nids,
    enum admin_op op)
{
	char (*what)[64] = xcalloc((size_t)nids, sizeof *what);
	queue_id_t *qids = xcalloc((size_t)nids, sizeof *qids);
	int64_t now = time(NULL);
	struct store_wtxn *t;
	int st, failed = 0;

	if ((st = store_wtxn_begin(s, NULL, &t)) != STORE_OK)
		goto fail;
	for (int i = 0; i < nids; i++) {
		if (queue_id_parse(ids[i], &qids[i]) != 0) {
			qids[i] = 0;
			failed |= not_in_queue(ids[i]);
			continue;
		}
		st = admin_one(t, op, qids[i], now, what[i], sizeof what[i]);
		if (st == STORE_NOTFOUND || st == STORE_CORRUPT) {
			/* STORE_CORRUPT: set aside, and so gone too */
			qids[i] = 0;
			failed |= not_in_queue(ids[i]);
			continue;
		}
		if (st != STORE_OK) {
			store_wtxn_abort(&t);
			goto fail;
		}
	}
	if ((st = store_wtxn_commit(&t)) != STORE_OK)
		goto fail;
	for (int i = 0; i < nids; i++) {
		char idtxt[QUEUE_ID_LEN + 1];

		if (qids[i] == 0)
			continue;
		fprintf(mc->out, "%s: %s\n",
		    queue_id_format(qids[i], idtxt, sizeof idtxt), what[i]);
		mailctl_trace_note(mc, qids[i], what[i], 0);
	}
	free(what);
	free(qids);
	return failed ? 1 : 0;
fail:
	fprintf(stderr, "mailctl: %s: %s\n", op_done[op], store_status_text(st));
	free(what);
	free(qids);
	return 1;
}

int
mailctl_hold(struct mailctl *mc, struct queue_store *s, char **ids, int nids,
    int hold)
{
	uint64_t count;
	int st;

	if (nids == 1 && strcmp(ids[0], "all") == 0) {
		st = store_hold_all(s, hold, time(NULL), &count);
		if (st != STORE_OK) {
			fprintf(stderr, "mailctl: %s all: %s\n", hold ? "hold" : "release",
			    store_status_text(st));
			return 1;
		}
		fprintf(mc->out, "%" PRIu64 " messages %s\n", count,
		    hold ? "held" : "released");
		return 0;
	}
	return admin_ids(mc, s, ids, nids, hold ? OP_HOLD : OP_RELEASE);
}

int
mailctl_requeue(struct mailctl *mc, struct queue_store *s, char **ids, int nids)
{
	return admin_ids(mc, s, ids, nids, OP_REQUEUE);
}

int
mailctl_bounce(struct mailctl *mc, struct queue_store *s, char **ids, int nids)
{
	return admin_ids(mc, s, ids, nids, OP_BOUNCE);
}

static int
cat_chunk(const char *p, size_t n, void *arg)
{
	FILE *f = arg;

	return fwrite(p, 1, n, f) == n ? 0 : -1;
}

int
mailctl_cat(struct mailctl *mc, struct queue_store *s, const char *arg)
{
	queue_id_t id;
	int st;

	if (queue_id_parse(arg, &id) != 0)
		return not_in_queue(arg);
	st = store_body_foreach(s, id, cat_chunk, mc->out);
	if (st == STORE_NOTFOUND)
		return not_in_queue(arg);
	if (st == -1) {
		fprintf(stderr, "mailctl: cat %s: write error\n", arg);
		return 1;
	}
	if (st != STORE_OK) {
		fprintf(stderr, "mailctl: cat %s: %s\n", arg, store_status_text(st));
		return 1;
	}
	return 0;
}
