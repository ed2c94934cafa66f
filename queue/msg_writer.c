/* msg_writer: a new message staged as it is made (see msg_writer.h). */
#include "queue/msg_writer.h"

#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "queue/record.h"

static void
rec_done(struct commit_stage *req, enum commit_status st)
{
	struct msg_writer_rec *r = req->arg;
	struct msg_writer *w = r->w;

	pthread_mutex_lock(&w->lock);
	/* A full queue is the cause when a later record finds no stage. */
	if (st != COMMIT_OK && w->status != COMMIT_FULL)
		w->status = st;
	r->busy = 0;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void
msg_writer_init(struct msg_writer *w, struct committer *c)
{
	memset(w, 0, sizeof *w);
	w->c = c;
	w->id = queue_id_next();
	w->status = COMMIT_OK;
	buf_init(&w->head, RECORD_CHUNK_SIZE);
	buf_init(&w->cur, RECORD_CHUNK_SIZE);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	for (int i = 0; i < MSG_WRITER_INFLIGHT; i++) {
		w->recs[i].w = w;
		buf_init(&w->recs[i].data, RECORD_CHUNK_SIZE);
	}
}

/* Hands the full record in cur to the committer: into a free slot,
 * waiting for one. Returns 0, or -1 after a failure. */
static int
stage_cur(struct msg_writer *w)
{
	struct msg_writer_rec *r = NULL;
	struct buf tmp;

	pthread_mutex_lock(&w->lock);
	while (w->status == COMMIT_OK) {
		for (int i = 0; i < MSG_WRITER_INFLIGHT && r == NULL; i++)
			if (!w->recs[i].busy)
				r = &w->recs[i];
		if (r != NULL)
			break;
		pthread_cond_wait(&w->cond, &w->lock);
	}
	if (w->status != COMMIT_OK) {
		pthread_mutex_unlock(&w->lock);
		return -1;
	}
	r->busy = 1;
	pthread_mutex_unlock(&w->lock);
	/* The slot's buffer and cur trade places: no copy. */
	tmp = r->data;
	r->data = w->cur;
	w->cur = tmp;
	buf_reset(&w->cur);
	memset(&r->req, 0, sizeof r->req);
	r->req.id = w->id;
	r->req.chunk = ++w->staged;
	r->req.data = r->data.data;
	r->req.len = r->data.len;
	r->req.done = rec_done;
	r->req.arg = r;
	committer_submit_stage(w->c, &r->req);
	return 0;
}

int
msg_writer_write(void *arg, const char *p, size_t n)
{
	struct msg_writer *w = arg;

	while (n > 0) {
		struct buf *b = w->head.len < RECORD_CHUNK_SIZE ? &w->head : &w->cur;
		size_t take = RECORD_CHUNK_SIZE - b->len;

		if (take > n)
			take = n;
		buf_append(b, p, take);	/* fits: max is RECORD_CHUNK_SIZE */
		p += take;
		n -= take;
		if (w->cur.len == RECORD_CHUNK_SIZE && stage_cur(w) != 0)
			return -1;
	}
	pthread_mutex_lock(&w->lock);
	n = w->status != COMMIT_OK;
	pthread_mutex_unlock(&w->lock);
	return n ? -1 : 0;
}

static void
wait_idle(struct msg_writer *w)
{
	pthread_mutex_lock(&w->lock);
	for (;;) {
		int busy = 0;

		for (int i = 0; i < MSG_WRITER_INFLIGHT; i++)
			busy |= w->recs[i].busy;
		if (!busy)
			break;
		pthread_cond_wait(&w->cond, &w->lock);
	}
	pthread_mutex_unlock(&w->lock);
}

enum commit_status
msg_writer_status(struct msg_writer *w)
{
	enum commit_status st;

	wait_idle(w);
	pthread_mutex_lock(&w->lock);
	st = w->status;
	pthread_mutex_unlock(&w->lock);
	return st;
}

enum commit_status
msg_writer_finish(struct msg_writer *w, struct commit_newmsg *m)
{
	enum commit_status st = msg_writer_status(w);

	if (st != COMMIT_OK)
		return st;
	m->env.id = w->id;
	m->body = buf_steal(&w->head, &m->body_len);
	m->staged = w->staged;
	m->tail = NULL;
	m->tail_len = 0;
	if (w->cur.len > 0)
		m->tail = buf_steal(&w->cur, &m->tail_len);
	return COMMIT_OK;
}

void
msg_writer_free(struct msg_writer *w)
{
	wait_idle(w);
	buf_free(&w->head);
	buf_free(&w->cur);
	for (int i = 0; i < MSG_WRITER_INFLIGHT; i++)
		buf_free(&w->recs[i].data);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
}

void
msg_writer_own_envelope(struct commit_newmsg *m, const char *hostname,
    const char *sender, const char *rcpt, unsigned flags, int64_t now)
{
	m->env.arrival = now;
	m->env.helo = xstrdup(hostname);
	m->env.client_addr = xstrdup("127.0.0.1");
	m->env.sender = xstrdup(sender);
	m->env.flags = ENV_NOTICE | flags;
	m->env.rcpts = xcalloc(1, sizeof *m->env.rcpts);
	m->env.rcpts[0].addr = xstrdup(rcpt);
	m->env.nrcpts = 1;
}

enum commit_status
msg_writer_queue(struct committer *c, const char *hostname, const char *sender,
    const char *rcpt, unsigned flags, int64_t now, const char *msg, size_t len,
    queue_id_t *id_r)
{
	struct commit_results req;
	struct msg_writer w;
	enum commit_status st;

	memset(&req, 0, sizeof req);
	req.msgs = xcalloc(1, sizeof *req.msgs);
	msg_writer_init(&w, c);
	st = msg_writer_write(&w, msg, len) == 0 ?
	    msg_writer_finish(&w, &req.msgs[0]) : msg_writer_status(&w);
	if (st == COMMIT_OK) {
		req.nmsgs = 1;
		msg_writer_own_envelope(&req.msgs[0], hostname, sender, rcpt, flags, now);
		*id_r = req.msgs[0].env.id;
		st = committer_submit_results_wait(c, &req);
	}
	if (st != COMMIT_OK && w.staged > 0)
		committer_discard(c, w.id);
	commit_results_free(&req);
	msg_writer_free(&w);
	return st;
}
