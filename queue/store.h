/*
 * store: the durable queue, one LMDB environment under queue_dir.
 *
 * Named databases (keys big-endian, so they sort by number):
 *   msg   id(8)                      -> envelope record (queue/record.h)
 *   body  id(8) chunk(4)             -> body bytes: records 0..nchunks-1
 *                                       of the envelope's layout
 *   rcpt  id(8) index(4)             -> recipient record with its state
 *   due   next_try(8) id(8) index(4) -> empty; exactly one per recipient
 *                                       that is not done (record.h)
 *   live  id(8)                      -> u32: recipients of the message not
 *                                       done (a missing entry is counted
 *                                       again from `rcpt`)
 *   meta  name                       -> u64 counters, u32 "schema"
 *   bad   db-letter(1) original key  -> a record set aside because it
 *                                       failed to decode
 *   stage id(8)                      -> u8 version (1), i64 start (unix
 *                                       seconds): id's body is being
 *                                       staged (see Staging)
 * A message stays until every recipient is done (final, and no notice
 * about it pending), or an administrator deletes it. Every body, rcpt,
 * due and live record belongs to a message in `msg`, or (body only) to a
 * staged id; strays (orphans) are set aside by store_collect_orphans.
 *
 * Staging (DESIGN.md, the queue). A message that does not fit in memory
 * is written in pieces before it exists: store_stage_chunk writes body
 * records 1, 2, ... of an id that has no `msg` record yet and marks the
 * id in `stage` (in the same transaction as its first record); readers
 * never see them, since every reader starts from `msg`. The message is
 * made visible, whole, by the one transaction of store_put_msg_parts,
 * which checks the staged records, adds record 0 (the head), the last
 * ones, the envelope and the recipients, and drops the mark. What is
 * given up (a refused message, a client gone) is dropped with
 * store_stage_discard; what a crash left is dropped at the next start by
 * store_stage_sweep, which only the daemon (STORE_EXCLUSIVE) runs, before
 * anyone can stage: a marked id is never an orphan while a daemon runs.
 *
 * Room (issue: a full queue repeats nothing). The map starts at
 * limits.map_size and grows at run time (store_grow) up to map_max, the
 * ceiling for new mail, plus a reserve (map_max / 8, 1 MiB .. 256 MiB)
 * that only state changes of mail already queued may use: new mail
 * (store_put_msg, store_rcpt_expand) is refused with STORE_FULL when the
 * pages in use would pass map_max, or when the file system under the
 * queue would keep less than its reserve; recipient updates, notices
 * done, deletes and flushes are never refused for room. On the disk the
 * same reserve is kept allocated past the end of the data file (fallocate,
 * FALLOC_FL_KEEP_SIZE), so that a full file system can still take state
 * changes. A commit that fails with EIO or ENOSPC while the file system
 * is (nearly) full is STORE_FULL, not STORE_IO.
 *
 * LMDB threading rules, kept by this module and required of its callers:
 *   - one environment per process: open the queue once (store_open) and
 *     share the struct queue_store between threads; never open it twice in
 *     one process, not even read-only;
 *   - the environment is opened with MDB_NOTLS: any thread may run read
 *     functions at any time; each one begins and ends its own short read
 *     transaction on the calling thread;
 *   - a write transaction (struct store_wtxn) is begun, used and ended on
 *     one thread; LMDB allows one writer at a time per environment, across
 *     processes (the daemon's committer and mailctl), so store_wtxn_begin
 *     waits while another writer is active. A thread holding a write
 *     transaction must not call the read functions of this module (they
 *     may need the write lock to set corrupt records aside);
 *   - no network or other slow I/O inside a transaction: read functions
 *     copy everything out and call callbacks only after their transaction
 *     ended; a write transaction should be committed promptly;
 *   - full durability: no MDB_NOSYNC, MDB_NOMETASYNC or MDB_MAPASYNC; a
 *     successful store_wtxn_commit of a top-level transaction is on disk.
 *
 * Corrupt records: a record that fails to decode is logged and moved to
 * `bad` (never deleted silently, never a crash). Read functions skip it
 * and, when the store is writable, set it aside in a short write
 * transaction of their own after their read transaction ended. A
 * read-only store only logs and skips.
 *
 * Errors: functions return enum store_status. STORE_FULL (MDB_MAP_FULL,
 * MDB_TXN_FULL, ENOSPC, EDQUOT, the room rules above) means the queue
 * cannot grow now: the write transaction is dead and must be aborted, the
 * store stays usable (try store_grow, then again). MDB_PANIC is
 * STORE_PANIC: the environment is broken for this process, every later
 * call fails; it is logged once and store_panicked() says so, and the
 * process should exit (a restart reopens it). Unexpected LMDB errors are
 * logged and returned as STORE_IO.
 */
#ifndef QUEUE_STORE_H
#define QUEUE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/body_reader.h"
#include "lib/buf.h"
#include "queue/envelope.h"
#include "queue/record.h"

#define STORE_MAP_SIZE_DEFAULT ((size_t)8 << 30)
#define STORE_SCHEMA_VERSION 3	/* 2: `live`, recipient records v2;
				 * 3: `stage`, envelope records v2 (body
				 * records of any size); a queue of schema
				 * 1 or 2 is upgraded at open */

/* The next_try, and so the due time, of every recipient of a held message
 * (ENV_HELD) that is not done: later than any real time, so that no scan
 * finds it due and nothing expires it, and a flush leaves it alone. A
 * recipient update of a held message keeps it there (a delivery that was
 * under way when the hold came), and so do the targets of an alias
 * expanded then. store_msg_hold releases it. */
#define STORE_HOLD_TIME ((int64_t)1 << 62)

enum store_status {
	STORE_OK = 0,
	STORE_NOTFOUND = 1,	/* no such message or recipient */
	STORE_FULL = 2,		/* map or disk full */
	STORE_IO = 3,		/* any other LMDB or system failure */
	STORE_CORRUPT = 4,	/* a record failed to decode (set aside) */
	STORE_INVALID = 5,	/* the caller's data does not fit a record */
	STORE_EXISTS = 6,	/* the queue id is already in use */
	STORE_PANIC = 7,	/* MDB_PANIC: the environment is unusable */
};

/* Short text for a status ("map full", ...), static. */
const char *store_status_text(int status);

struct queue_store;

enum store_open_flag {
	STORE_RDONLY = 1,	/* mailctl reads: MDB_RDONLY, no writes at all */
	STORE_EXCLUSIVE = 2,	/* the daemon: holds <dir>/daemon.lock (an
				 * exclusive flock) while open, so that a
				 * second daemon on the same queue refuses to
				 * start; mailctl does not take it */
};

/* Sizes of the environment. */
struct store_limits {
	size_t map_size;	/* map at open, 0: STORE_MAP_SIZE_DEFAULT; never
				 * less than the map the file already has */
	size_t map_max;		/* ceiling for new mail (see Room), 0 or less
				 * than the map at open: the map at open */
	unsigned max_readers;	/* LMDB reader slots (one per concurrent read
				 * transaction of every process), 0: 126 */
};

/*
 * Opens (creating dir with mode 0700 and the databases when missing) the
 * queue under dir with lim (NULL: defaults). Another process that grew
 * the map is followed (MDB_MAP_RESIZED is handled inside). A read-only
 * open of a queue that does not exist yet creates it empty first. Checks
 * the schema version, clears stale reader slots of dead processes, and
 * raises the queue id floor (queue_id_floor) to the largest id present.
 * With STORE_EXCLUSIVE, fails when another process holds the queue's
 * daemon lock ("in use by another mailserver (pid N)"), and sweeps what
 * staging left behind (store_stage_sweep) before it returns.
 * Returns the store, or NULL with a message in err (errsize > 0).
 * Threads: any thread, once per process (see above).
 */
struct queue_store *store_open_limits(const char *dir,
    const struct store_limits *lim, unsigned flags, char *err,
    size_t errsize);

/* store_open_limits with map_size only (map_max: the map at open). */
struct queue_store *store_open(const char *dir, size_t map_size,
    unsigned flags, char *err, size_t errsize);

/* Closes the environment and frees the store; *sp becomes NULL. No
 * transaction may be active and no other thread may still use it. */
void store_close(struct queue_store **sp);

/* The largest queue id present in `msg`, 0 when the queue is empty (or on
 * a read failure, logged). Any thread. */
queue_id_t store_max_id(struct queue_store *s);

/* Number of write transactions committed by this process (tests and
 * stats; a top-level commit counts once). Any thread. */
uint64_t store_commit_count(struct queue_store *s);

/* LMDB record operations (get, put, del, cursor steps) made by this
 * process: the work a queue operation costs, for tests. Any thread. */
uint64_t store_op_count(struct queue_store *s);

/* 1 after MDB_PANIC (see Errors). Any thread. */
int store_panicked(struct queue_store *s);

/* Grows the map when LMDB ran out of it since the last call, by doubling,
 * up to map_max plus the reserve. Returns 1 when it grew (try again), 0
 * when it did not (at the limit, or the map was not what was full). The
 * calling thread must hold no transaction of this store; waits for the
 * others to end theirs. Any thread. */
int store_grow(struct queue_store *s);

/* Clears the reader slots of processes that died inside a read
 * transaction (they keep freed pages from being reused). Returns how many
 * were cleared (logged when any), or -1. Any thread; call it from time to
 * time and when the queue is full. */
int store_reader_check(struct queue_store *s);

struct store_space {
	size_t map_size;	/* the map now */
	size_t map_max;		/* the ceiling for new mail */
	size_t map_limit;	/* map_max plus the reserve */
	size_t used;		/* bytes of pages in use */
	size_t disk_reserve;	/* bytes kept allocated past the data */
};

/* The numbers of the Room rules. Returns STORE_OK or STORE_IO. */
int store_space_get(struct queue_store *s, struct store_space *sp_r);

/* ---- reading (any thread; each call is one short read transaction) ---- */

/* Loads message id: envelope and every stored recipient into msg_r (the
 * caller frees it with queue_msg_free). Returns STORE_OK, STORE_NOTFOUND,
 * STORE_CORRUPT (the envelope failed to decode; set aside when writable),
 * STORE_IO. Recipients that fail to decode are left out (set aside). */
int store_msg_load(struct queue_store *s, queue_id_t id,
    struct queue_msg *msg_r);

/*
 * A body cursor: the body of one message, record by record, so that no
 * reader holds a whole message (Maildir writing, the relay client,
 * bounces, mailctl). Each step is a short read transaction of its own
 * that copies one record out (no transaction spans the caller's I/O);
 * a message's records never change while it exists (ids are never
 * reused).
 */
struct store_body;

/* Opens the body of message id. Returns STORE_OK with *b_r set (close
 * it), STORE_NOTFOUND, STORE_CORRUPT (the envelope fails to decode; set
 * aside when writable), STORE_IO. */
int store_body_open(struct queue_store *s, queue_id_t id,
    struct store_body **b_r);

/* The body's size in bytes, as the envelope says. */
uint64_t store_body_size(const struct store_body *b);

/* The next record: *data_r, *len_r are valid until the next call on b
 * (a copy of b's own); *len_r is 0 at the end. Returns STORE_OK,
 * STORE_NOTFOUND (the message was deleted meanwhile), STORE_CORRUPT (a
 * record missing or of the wrong size, or sizes that do not add up to
 * the envelope's: the whole message is set aside when writable; the
 * bytes handed out before are not to be trusted), STORE_IO. After an
 * error every call fails the same way. */
int store_body_next(struct store_body *b, const char **data_r, size_t *len_r);

/* Back to the first byte (a delivery to several places reads it again). */
void store_body_rewind(struct store_body *b);

/* Frees *bp; NULL afterwards. NULL is fine. */
void store_body_close(struct store_body **bp);

/* A body_reader (lib/body_reader.h) over b, for relay/, storage/ and the
 * bounces: r_r reads b (borrowed) from its start; store_body_error(b)
 * says why a read failed. */
void store_body_reader(struct store_body *b, struct body_reader *r_r);

/* The status of b's last failure (STORE_OK when none). */
int store_body_error(const struct store_body *b);

/* Called per message, in queue id order, outside any transaction; msg is
 * valid during the call only. Return 0 to go on, anything else to stop
 * (store_foreach_msg then returns that value). */
typedef int (*store_msg_fn)(const struct queue_msg *msg, void *arg);

/* Moves records of body, rcpt, due and live whose message is not in msg
 * into bad (logged); *count_r (may be NULL) is how many. Needs a writable
 * store. Returns STORE_OK, STORE_FULL, STORE_IO. */
int store_collect_orphans(struct queue_store *s, uint64_t *count_r);

/* Calls fn for every message, reading them in small batches (one short
 * read transaction each), so a long listing neither holds a snapshot nor
 * memory for the whole queue. A message added or deleted meanwhile may or
 * may not be seen. Returns STORE_OK, fn's non-zero value, or STORE_IO. */
int store_foreach_msg(struct queue_store *s, store_msg_fn fn, void *arg);

/* One `due` entry: recipient idx of message id is due at when. */
struct store_due {
	int64_t when;		/* unix seconds */
	queue_id_t id;
	uint32_t idx;
	char dest[256];		/* store_due_list: the recipient's domain,
				 * lower case ("" for a bare local part) */
};

/* Copies up to max due entries with when <= until into out, in time
 * order, starting after *after (NULL: from the start), into out; *n_r is
 * the count. Page through the index by passing the last entry returned
 * as after. An entry whose recipient is gone or not due at that time is
 * skipped (and removed when writable). Returns STORE_OK or STORE_IO. */
int store_due_list(struct queue_store *s, const struct store_due *after,
    int64_t until, struct store_due *out, size_t max, size_t *n_r);

struct store_stats {
	uint64_t received;	/* messages committed, ever */
	uint64_t delivered;	/* recipients sent */
	uint64_t deferred;	/* deferrals (one per failed attempt) */
	uint64_t bounced;	/* recipients bounced */
	uint64_t rejected;	/* messages or recipients refused (sessions) */
	uint64_t messages;	/* messages in the queue now */
	uint64_t recipients;	/* recipient records in the queue now */
	uint64_t pending;	/* recipients still to deliver (due entries) */
	uint64_t bad;		/* records set aside */
	uint64_t body_records;	/* `body` records: of messages, and staged */
	uint64_t staged;	/* ids being staged (messages in DATA) */
};

/* Reads the counters and sizes. Returns STORE_OK or STORE_IO. */
int store_stats_get(struct queue_store *s, struct store_stats *st_r);

/* What the queue holds now, for the metrics' queue gauges. */
struct store_size {
	uint64_t messages;	/* messages in the queue */
	uint64_t pending;	/* recipients still to deliver (due entries) */
	uint64_t bytes;		/* the messages' sizes, summed */
	int64_t oldest;		/* arrival (unix s) of the oldest message, 0 if none */
};

/* Counts what the queue holds. The sizes take a pass over every envelope
 * (fixed fields only, in batches of short read transactions): linear in
 * the messages, about 0.1 s a million; call it from time to time, not
 * per message. A message added or removed meanwhile may or may not be
 * counted. Returns STORE_OK or STORE_IO. Any thread. */
int store_size_get(struct queue_store *s, struct store_size *sz_r);

/* ---- writing ---- */

struct store_wtxn;

/*
 * Begins a write transaction: top-level when parent is NULL (waits for
 * LMDB's writer lock), or nested inside parent (a savepoint: committing it
 * merges into parent, aborting it undoes only its own changes; parent must
 * not be used while the child is open). Returns STORE_OK with *txn_r set,
 * STORE_FULL or STORE_IO. Thread: the one that will end it (and, for a
 * child, the parent's thread).
 */
int store_wtxn_begin(struct queue_store *s, struct store_wtxn *parent,
    struct store_wtxn **txn_r);

/* Commits and frees *txnp (NULL afterwards) whatever the outcome. A
 * top-level commit is durable (one fsync) when it returns STORE_OK.
 * Returns STORE_OK, STORE_FULL or STORE_IO (nothing written then). */
int store_wtxn_commit(struct store_wtxn **txnp);

/* Undoes and frees *txnp (NULL afterwards; NULL is a no-op). */
void store_wtxn_abort(struct store_wtxn **txnp);

/*
 * Writes a new message: its envelope (env->id must be set, non-zero),
 * body (chunked), each recipient as RCPT_QUEUED with next_try =
 * env->arrival and its due entry; counts it as received. New mail: refused
 * with STORE_FULL under the Room rules. Everything is checked and encoded
 * before anything is written, so STORE_INVALID (a field too long, no
 * recipients), STORE_EXISTS and a refusal for room leave the transaction
 * usable; STORE_FULL from LMDB and STORE_IO leave it dead (abort it).
 */
int store_put_msg(struct store_wtxn *t, const struct envelope *env,
    const char *body, size_t body_len);

/* The body of a new message, for store_put_msg_parts. */
struct store_body_parts {
	const char *head;	/* staged 0: the body (or, with tail, its
				 * start), cut into records of
				 * RECORD_CHUNK_SIZE; staged > 0: record 0,
				 * 1 to RECORD_CHUNK_MAX bytes */
	size_t head_len;
	uint32_t staged;	/* records 1..staged of the id were written
				 * before by store_stage_chunk */
	const char *tail;	/* the bytes after all of them, cut as head
				 * (NULL when tail_len is 0) */
	size_t tail_len;
};

/*
 * store_put_msg for a body in parts, some of it staged before: checks
 * that records 1..staged of env->id are exactly what staging wrote (else
 * STORE_INVALID, nothing written), then writes record 0, the tail, the
 * envelope (size: every part) and recipients as store_put_msg, and drops
 * the id's stage mark, all in t: the message appears whole or not at
 * all. Room is asked only for what is new (the staged bytes were
 * admitted when staged). Returns as store_put_msg.
 */
int store_put_msg_parts(struct store_wtxn *t, const struct envelope *env,
    const struct store_body_parts *body);

/*
 * Stages record chunk (1, 2, ...) of the body of id, which is not a
 * message yet: len bytes (1 to RECORD_CHUNK_MAX) of data into `body`;
 * record 1 also marks id in `stage`, a later one needs that mark (else
 * STORE_NOTFOUND: the stage was discarded or swept). New mail: refused
 * with STORE_FULL under the Room rules. STORE_EXISTS when id is a
 * message or the record exists; STORE_INVALID for bad arguments (t
 * stays usable after those three).
 */
int store_stage_chunk(struct store_wtxn *t, queue_id_t id, uint32_t chunk,
    const void *data, size_t len);

/* Reads staged record chunk (1, 2, ...) of id, which is not a message
 * yet, appending its bytes to out (what the milters are fed at the end of
 * data, before the final commit). One short read transaction. Returns
 * STORE_OK, STORE_NOTFOUND (no such record: never staged, discarded,
 * swept, or id is a message now), STORE_FULL when out cannot take it
 * (out unchanged), STORE_IO. Any thread. */
int store_stage_read(struct queue_store *s, queue_id_t id, uint32_t chunk,
    struct buf *out);

/* Drops what was staged for id: its body records and its mark. A message
 * id (committed) is left alone (STORE_EXISTS). STORE_OK also when there
 * was nothing. Never refused for room. */
int store_stage_discard(struct store_wtxn *t, queue_id_t id);

/* Drops every staged id (records and mark) of the queue: what a crash or
 * a lost discard left. Only for the daemon at start, before anything is
 * staged (store_open_limits runs it with STORE_EXCLUSIVE); *count_r (may
 * be NULL) is how many ids. Logged when any. No transaction of this
 * store may be held by the caller. */
int store_stage_sweep(struct queue_store *s, uint64_t *count_r);

/* Ids staged now (a count of `stage`); tests and mailctl. Any thread. */
int store_stage_count(struct queue_store *s, uint64_t *count_r);

/* A recipient's new delivery state, for store_rcpt_update. */
struct rcpt_update {
	enum rcpt_state state;	/* new state (not EXPANDED) */
	int64_t next_try;	/* not final: when due next; final with
				 * RCPT_F_NOTICE_PENDING: when the notice is
				 * to be tried again */
	int64_t attempt_time;	/* >0: an attempt was made then (attempts+1) */
	unsigned set_flags;	/* enum rcpt_flag bits to add */
	unsigned clear_flags;	/* enum rcpt_flag bits to remove (first) */
	const char *diag;	/* new last diagnostic, or NULL to keep;
				 * cut to RECORD_DIAG_MAX - 1 bytes */
	const char *status;	/* new enhanced status, or NULL to keep */
	const char *remote_mta;	/* new remote server, or NULL: none */
};

/*
 * The committer's recipient update: applies u to recipient idx of message
 * id, moves its due entry (removed when it is done), and counts it (SENT:
 * delivered, BOUNCED: bounced, DEFERRED: deferred). A recipient already
 * final is left unchanged (a repeated result). When every recipient of
 * the message is done, the whole message (msg, body, rcpts) is deleted in
 * the same transaction and *removed_r (may be NULL) is set to 1. Never
 * refused for room. Returns STORE_OK, STORE_NOTFOUND (no such recipient,
 * e.g. deleted by an administrator; nothing changed), STORE_CORRUPT (its
 * record was set aside), STORE_INVALID (bad state or flags), STORE_FULL,
 * STORE_IO.
 */
int store_rcpt_update(struct store_wtxn *t, queue_id_t id, uint32_t idx,
    const struct rcpt_update *u, int *removed_r);

/*
 * The notice about recipient idx was queued: clears RCPT_F_NOTICE_PENDING
 * and adds set_flags (e.g. RCPT_F_DELAY_NOTIFIED); a final recipient is
 * then done (its due entry goes, and the message with the last one, as
 * store_rcpt_update). A recipient without a pending notice is left as it
 * is. Returns as store_rcpt_update.
 */
int store_rcpt_notice_done(struct store_wtxn *t, queue_id_t id, uint32_t idx,
    unsigned set_flags, int *removed_r);

/* A final target of an alias expansion. */
struct store_target {
	const char *addr;	/* never empty */
	const char *orcpt;	/* "rfc822;alias@domain" etc., or NULL */
	unsigned notify;	/* enum dsn_notify bits */
};

/*
 * Alias recipient idx of message id expanded into targets[0..n-1]: it
 * becomes RCPT_EXPANDED (final, done) and each target a recipient of the
 * message of its own, RCPT_QUEUED with RCPT_F_ALIAS_TARGET, due at
 * next_try, at indexes after the last one of the message (*first_r gets
 * the first). A target the message has already as a recipient (the
 * address compared without case; any state but RCPT_EXPANDED), or that
 * an earlier target repeats, is left out: one copy per mailbox, however
 * many of its recipients lead there. When every target is left out, the
 * alias is simply done, and *removed_r (may be NULL) says whether that
 * completed the message and removed it. New mail: refused with
 * STORE_FULL under the Room rules. STORE_INVALID when the recipient is
 * final or the message would pass RECORD_RCPTS_MAX recipients; otherwise
 * as store_rcpt_update.
 */
int store_rcpt_expand(struct store_wtxn *t, queue_id_t id, uint32_t idx,
    const struct store_target *targets, size_t n, int64_t next_try,
    uint32_t *first_r, int *removed_r);

/* Deletes message id with its body, recipients and due entries. Returns
 * STORE_OK, STORE_NOTFOUND, STORE_FULL, STORE_IO. */
int store_delete_msg(struct store_wtxn *t, queue_id_t id);

/* Deletes every message; *count_r (may be NULL) is how many. Counters
 * and `bad` are kept. What is being staged goes too (those messages then
 * fail at their end: store_put_msg_parts finds no stage). */
int store_delete_all(struct store_wtxn *t, uint64_t *count_r);

/* Makes every recipient waiting for a later time (deferred) due at now;
 * *count_r (may be NULL) is how many were moved. Never refused for room.
 * The whole queue in one transaction: see store_flush_all. */
int store_flush(struct store_wtxn *t, int64_t now, uint64_t *count_r);

/* store_flush in transactions of its own of a bounded size, growing the
 * map when it must (a full queue can still be flushed). No transaction of
 * this store may be held by the caller. */
int store_flush_all(struct queue_store *s, int64_t now, uint64_t *count_r);

/* ---- the administrator's operations (mailctl; queue/store_admin.c) ---- */

/*
 * Puts message id on hold (hold 1) or releases it (hold 0): ENV_HELD is
 * set or cleared, and every recipient not done goes to STORE_HOLD_TIME,
 * or from it to be due at now. *changed_r (may be NULL) is 0 when the
 * message already was so. A delivery under way when the hold comes
 * finishes; its outcome keeps the message held. Never refused for room.
 * Returns STORE_OK, STORE_NOTFOUND, STORE_CORRUPT (the envelope did not
 * decode: set aside), STORE_INVALID (now out of range), STORE_FULL,
 * STORE_IO.
 */
int store_msg_hold(struct store_wtxn *t, queue_id_t id, int hold, int64_t now,
    int *changed_r);

/* store_msg_hold of every message, in transactions of their own of a
 * bounded size (as store_flush_all); *count_r is how many changed. No
 * transaction of this store may be held by the caller. */
int store_hold_all(struct queue_store *s, int hold, int64_t now, uint64_t *count_r);

/* Delivery of id starts over: the hold ends, and every recipient not done
 * is due at now, the attempts of those not final counted from 0 (the
 * backoff starts again at retry_min). Returns as store_msg_hold. */
int store_msg_requeue(struct store_wtxn *t, queue_id_t id, int64_t now);

/* id goes back to its sender now: the hold ends, and every recipient not
 * final is BOUNCED with status and diag and its notice pending at now,
 * so that the delivery stage sends the DSN its NOTIFY asks for (and the
 * message leaves the queue once the notices are queued). *nbounced_r is
 * how many bounced. Returns as store_msg_hold. */
int store_msg_bounce(struct store_wtxn *t, queue_id_t id, int64_t now,
    const char *status, const char *diag, size_t *nbounced_r);

/* Called with the body of a message piece by piece, in order; return 0
 * to go on, anything else to stop. */
typedef int (*store_chunk_fn)(const char *p, size_t n, void *arg);

/* Reads the body of id chunk by chunk, each copied out of a short read
 * transaction of its own before fn sees it: neither the whole message nor
 * a snapshot is ever held, whatever its size. Returns STORE_OK, fn's
 * non-zero value, STORE_NOTFOUND (no such message, or it left the queue
 * meanwhile), STORE_CORRUPT (the chunks do not make up the size the
 * envelope records), STORE_IO. Any thread. */
int store_body_foreach(struct queue_store *s, queue_id_t id, store_chunk_fn fn,
    void *arg);

enum store_counter {
	STORE_CTR_RECEIVED,
	STORE_CTR_DELIVERED,
	STORE_CTR_DEFERRED,
	STORE_CTR_BOUNCED,
	STORE_CTR_REJECTED,
	STORE_CTR_COUNT
};

/* Adds n to a counter in `meta` within t. */
int store_counter_add(struct store_wtxn *t, enum store_counter c,
    uint64_t n);

/*
 * Tests only: fault injection (the SQLite fault.c idea, as
 * maildir_fault_set). After store_fault_set(op, nth, rc) the nth
 * following call of op in this process (any thread) fails with rc, an
 * LMDB or errno code (MDB_MAP_FULL, EIO, ENOSPC), once: a record write
 * fails as mdb_put would, a top-level commit is aborted and fails as
 * after a write error or a short write (LMDB reports those as EIO).
 * store_fault_clear() disarms all. Costs one relaxed atomic load per
 * call when unarmed.
 */
enum store_fault_op {
	STORE_FAULT_PUT,	/* one LMDB record write (mdb_put) */
	STORE_FAULT_COMMIT,	/* one top-level commit */
	STORE_FAULT_NOPS
};
void store_fault_set(enum store_fault_op op, int nth, int rc);
void store_fault_clear(void);

#endif
