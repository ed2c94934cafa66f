/*
 * trace: every decision about a message, from the connection it came on
 * to its final result, kept for `trace_retention` after it left the
 * queue (mailctl trace ID). An event is a time, a short kind ("connect",
 * "tls", "auth", "mail", "rcpt", "held", "queued", "delivery", "notice",
 * "admin", "removed", ...) and a line of text in the key=value style of
 * the log.
 *
 * The events live in an LMDB environment of their own, <queue_dir>/trace
 * (the queue's environment belongs to the committer, and the trace must
 * outlive the messages):
 *   ev    id(8) time_us(8) seq(4) -> record: u8 version, u8 kind length,
 *         kind, u16 text length, text
 *   done  time(8) id(8)           -> empty: the message left the queue
 *         then; its events go retention seconds later
 * Events of a message whose end was never recorded (a crash at the wrong
 * moment) go once the message is older than TRACE_ORPHAN_AGE plus the
 * retention.
 *
 * Like the log, the daemon's trace is process-wide: trace_start opens it
 * and starts one writer thread; trace_add and trace_done may then be
 * called from any thread (session workers, delivery threads, the
 * committer). They copy the event into a bounded queue and never block or
 * fail: when the queue is full, or no trace is started, the event is
 * dropped (counted, and logged once a minute). The writer commits the
 * queue in one transaction at most once a second (one fsync), and sweeps
 * what is past its retention once a minute. A crash loses at most the
 * last second of events; the trace is a record of what happened, not
 * mail.
 *
 * mailctl reads (and writes its own events) through a struct trace_db.
 *
 * Errors: trace_start and trace_db_open fail with a message; a write that
 * fails later is logged (its events are dropped). Records that do not
 * decode are skipped by readers (trace_record_decode).
 * Threads: trace_start, trace_set_retention and trace_stop on the main
 * thread; trace_add and trace_done on any; a struct trace_db on one
 * thread at a time.
 */
#ifndef QUEUE_TRACE_H
#define QUEUE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"

#define TRACE_KIND_MAX 15		/* bytes of a kind */
#define TRACE_TEXT_MAX 2000		/* bytes of a text; longer is cut */
#define TRACE_QUEUE_EVENTS 200000	/* events waiting for the writer */
#define TRACE_QUEUE_BYTES (32u << 20)	/* their bytes */
#define TRACE_ORPHAN_AGE (400 * 86400)	/* s: an unfinished trace goes after */
#define TRACE_MAP_SIZE ((size_t)4 << 30)

/* One event read back. */
struct trace_rec {
	int64_t time_us;		/* unix microseconds */
	char kind[TRACE_KIND_MAX + 1];
	char text[TRACE_TEXT_MAX + 1];
};

/* Decodes an `ev` value into *r. Returns 0, or -1 (a bad record). */
int trace_record_decode(const void *p, size_t n, struct trace_rec *r);

/* Encodes kind and text (cut to their maximums) into out (at least
 * TRACE_RECORD_MAX bytes); returns the length. */
#define TRACE_RECORD_MAX (4 + TRACE_KIND_MAX + TRACE_TEXT_MAX)
size_t trace_record_encode(const char *kind, const char *text, uint8_t *out);

/* ---- the daemon's trace ---- */

/* Opens (creating) <queue_dir>/trace and starts the writer, which keeps
 * the events of a message retention_s seconds after it left the queue.
 * Returns 0, or -1 with a message in err. */
int trace_start(const char *queue_dir, unsigned retention_s, char *err,
    size_t errsize);

/* A new retention (a reload). */
void trace_set_retention(unsigned retention_s);

/* Writes what is queued, stops the writer and closes. Later events are
 * dropped. */
void trace_stop(void);

/* One event of message id at time_us (unix microseconds; 0: now). */
void trace_add(queue_id_t id, int64_t time_us, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Message id left the queue at when (unix seconds): its events are kept
 * retention seconds more. */
void trace_done(queue_id_t id, int64_t when);

/* Events dropped since the start (queue full, no trace, write errors). */
uint64_t trace_dropped(void);

/* The time now in unix microseconds. */
int64_t trace_now_us(void);

/* ---- direct access (mailctl) ---- */

struct trace_db;

/* Opens <queue_dir>/trace: read-only, or writable (created when missing).
 * A read-only open of a trace that does not exist fails with "no trace
 * recorded". NULL with a message in err. */
struct trace_db *trace_db_open(const char *queue_dir, int writable, char *err,
    size_t errsize);
void trace_db_close(struct trace_db **dbp);

/* Calls fn for each event of id in time order (outside any transaction);
 * fn returns 0 to go on. Returns the number of events, or -1 on a read
 * error (logged). */
int trace_db_read(struct trace_db *db, queue_id_t id,
    int (*fn)(const struct trace_rec *r, void *arg), void *arg);

/* Calls fn for every event of every message, by message and in time
 * order within each, inside one read transaction (fn must not use db;
 * r is valid during the call only); fn returns 0 to go on. Undecodable
 * records are skipped. Returns the number of events seen, or -1 on a
 * read error (logged). For mailctl: it reads the whole trace. */
long trace_db_scan(struct trace_db *db,
    int (*fn)(queue_id_t id, const struct trace_rec *r, void *arg), void *arg);

/* Writes one event of id now, and with done set its end, in one synced
 * transaction of its own. Returns 0 or -1 (logged). */
int trace_db_write(struct trace_db *db, queue_id_t id, const char *kind,
    const char *text, int done);

/* Removes the events of the messages that left the queue more than
 * retention seconds before now, and of those never recorded as gone and
 * older than TRACE_ORPHAN_AGE on top (the daemon's writer calls it once a
 * minute). One bounded transaction: returns 1 when there may be more to
 * sweep, 0 when done, -1 on an error (logged). */
int trace_db_sweep(struct trace_db *db, int64_t now, unsigned retention);

#endif
