/*
 * msg_writer: a new message that a delivery thread makes (a notice, which
 * may quote a large original) or the daemon makes (a TLS report,
 * msg_writer_queue), written into the queue as it is made, so
 * that it is never whole in memory: its first RECORD_CHUNK_SIZE bytes are
 * kept for the final commit (record 0), and each later full record is
 * staged (committer_submit_stage) while the next one fills; the writer
 * waits when both are with the committer. What is left (record 0 and the
 * last part) goes into a commit_newmsg with the staged count
 * (msg_writer_finish); the message becomes visible only with that
 * commit (store.h, Staging). A message that is not committed after all
 * is given up with committer_discard, or by the sweep at the next start.
 *
 * Errors: msg_writer_write fails (-1) once a record was refused (the
 * status is kept: COMMIT_FULL for a full queue); nothing is written after.
 * Threads: a writer belongs to one thread (it blocks on the committer).
 */
#ifndef QUEUE_MSG_WRITER_H
#define QUEUE_MSG_WRITER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "queue/committer.h"
#include "queue/results.h"

#define MSG_WRITER_INFLIGHT 2	/* records with the committer at once */

struct msg_writer {
	struct committer *c;
	queue_id_t id;			/* queue_id_next(), at init */
	struct buf head;		/* record 0 */
	struct buf cur;			/* the record being filled */
	uint32_t staged;		/* records submitted */
	enum commit_status status;	/* the first failure, or COMMIT_OK */
	/* the records with the committer: */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct msg_writer_rec {
		struct commit_stage req;
		struct buf data;
		int busy;
		struct msg_writer *w;
	} recs[MSG_WRITER_INFLIGHT];
};

/* Starts a message for committer c. */
void msg_writer_init(struct msg_writer *w, struct committer *c);

/* Appends p[0..n) (arg is the writer: it fits struct bounce_sink).
 * Returns 0, or -1 after a failure. */
int msg_writer_write(void *w, const char *p, size_t n);

/*
 * Waits for every staged record; then, when all went well, moves record 0,
 * the last part and the count into m (body, tail, staged; env.id is set)
 * and returns COMMIT_OK; else returns the failure (m is untouched; call
 * committer_discard). The writer must still be freed.
 */
enum commit_status msg_writer_finish(struct msg_writer *w,
    struct commit_newmsg *m);

/* Waits for every staged record and returns the first failure, or
 * COMMIT_OK. */
enum commit_status msg_writer_status(struct msg_writer *w);


/* Waits for the records with the committer and frees the buffers. */
void msg_writer_free(struct msg_writer *w);

/*
 * The envelope of mail the daemon makes itself (notices, reports) into
 * m->env (id kept): from sender ("" the null sender) to rcpt alone,
 * arrived now, from this host (HELO hostname, 127.0.0.1), flags
 * ENV_NOTICE | flags: a message of ours never gets a notice back.
 */
void msg_writer_own_envelope(struct commit_newmsg *m, const char *hostname,
    const char *sender, const char *rcpt, unsigned flags, int64_t now);

/*
 * Queues msg[0..len) (CRLF line ends), a whole message made by the
 * daemon, alone as new mail (results.h): through a writer, with
 * msg_writer_own_envelope, and waits until it is durable (COMMIT_OK, its
 * id in *id_r) or refused (COMMIT_FULL, COMMIT_IO: nothing of it stays).
 * Not on the committer thread.
 */
enum commit_status msg_writer_queue(struct committer *c, const char *hostname,
    const char *sender, const char *rcpt, unsigned flags, int64_t now,
    const char *msg, size_t len, queue_id_t *id_r);

#endif
