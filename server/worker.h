/*
 * worker: a session worker thread. Each worker owns one epoll loop and
 * every session handed to it, for that session's whole life, so session
 * state needs no locks. Other threads talk to a worker only through the
 * functions below, which post a message and wake the loop (eventfd).
 *
 * Threads: worker_start/worker_retire/worker_stop from the main thread;
 * worker_add_conn from the acceptor; worker_post_commit from the committer
 * thread; the job sink from pool threads; worker_watch and worker_*
 * session hooks only from the worker's own thread.
 *
 * Lifetime: a worker is freed only by worker_stop, after its thread
 * ended. The thread ends on worker_halt, or by itself once it was retired
 * and nothing can reach it any more: no session left (a session lives
 * until its commit and staged records are back), no off-loop job out
 * (worker_submit_job counts them until they are posted back), nothing in
 * its mailboxes. Every post wakes the loop before it lets go of the
 * worker's lock, so no poster still touches a worker that saw it all
 * empty under that lock. A loop that fails (epoll_wait) ends the thread
 * too: its sessions' connections are closed then (their results in flight
 * are taken, and the sessions freed, in worker_stop).
 */
#ifndef SERVER_WORKER_H
#define SERVER_WORKER_H

#include <stdint.h>
#include <sys/socket.h>

#include "queue/committer.h"
#include "server/config.h"
#include "server/offloop.h"

#include <stdio.h>

struct worker;
struct smtp_session;

struct ratelimit;
struct pregreet;
struct hold_accounts;

/* What the sessions of every worker share: the off-loop pools, and the
 * tables of abuse control that outlive reloads (any may be NULL: none). */
struct worker_pools {
	struct offloop *passwords;	/* password hashing (CPU) */
	struct offloop *lookups;	/* DNS and other waits */
	struct offloop *filters;	/* filter daemons: policy services,
					 * Dovecot auth (waits on their answers) */
	struct ratelimit *rates;	/* client and account rates */
	struct pregreet *greeted;	/* the greeting test's whitelist */
	struct hold_accounts *accounts;	/* the ages of the accounts (hold rules) */
	struct queue_store *store;	/* read by filter jobs: the records a
					 * message staged, fed to the milters */
};

/* Starts a worker thread that commits messages through c and runs
 * off-loop jobs on pools (copied). */
struct worker *worker_start(int index, struct committer *c,
    const struct worker_pools *pools);

/* Hands an accepted non-blocking socket to w (which then owns it and the
 * connlimit count taken for it). Returns 0, or -1 when w's loop has ended
 * (the caller keeps fd). Connections handed over that the loop did not
 * take before it ended get 421 4.3.2 and are closed. */
int worker_add_conn(struct worker *w, int fd, const struct sockaddr *peer,
    socklen_t peerlen, enum listen_kind kind);

/* Graceful stop: idle sessions get 421 4.3.2 and are closed; sessions in
 * DATA finish their message first. */
void worker_drain(struct worker *w);

/* Sessions still open on w (approximate; any thread). */
unsigned worker_sessions(struct worker *w);

/* Main thread: w gets no new connection from now on (the caller has made
 * sure that the acceptor hands it none). Its sessions run to their end,
 * with everything in flight to them; then its thread ends by itself
 * (worker_ended) and worker_stop frees it without waiting. */
void worker_retire(struct worker *w);

/* Any thread: 1 once w's thread ended (retired and empty, halted, or an
 * error of its loop), else 0. */
int worker_ended(struct worker *w);

/* Stops the worker's thread and joins it: no session runs any more.
 * Results that arrive later (commits, off-loop jobs) wait in its
 * mailboxes for worker_stop. Idempotent. */
void worker_halt(struct worker *w);

/* Halts w if need be, closes every remaining session, takes back the
 * results still in its mailboxes (which free what they hold, nothing
 * more), and frees w. Call it after the committer and the pools stopped. */
void worker_stop(struct worker **wp);

/* Worker-thread only: the committer this worker uses. */
struct committer *worker_committer(struct worker *w);

/* Worker-thread only: the pools this worker's sessions use. */
const struct worker_pools *worker_pools(struct worker *w);

/* Worker-thread only: submits job of one of w's sessions to pool, with
 * w's sink, which brings it back to w (smtp_session_job_done runs it
 * there), also once the session ended. w counts it as out until then.
 * Returns offloop_submit's result (-1: not taken), and -1 without
 * touching pool once w is halted: worker_stop frees the sessions after
 * the pools stopped, so what they would hand over is done inline. */
int worker_submit_job(struct worker *w, struct offloop *pool,
    struct offloop_job *job);

/* Worker-thread only: sets the epoll interest of s's socket (EPOLLIN,
 * EPOLLOUT or both; 0 for none). */
void worker_watch(struct worker *w, struct smtp_session *s, int fd,
    uint32_t events);

/* Worker-thread only: sets the epoll interest of fd, a socket of s other
 * than its client's (a milter's), to events (EPOLLIN or EPOLLOUT); 0
 * removes fd. Its events go to smtp_session_aux_event. Remove it before
 * the socket goes to another thread; a socket closed on this thread
 * leaves by itself. */
void worker_watch_aux(struct worker *w, struct smtp_session *s, int fd,
    uint32_t events);

/* Worker-thread only: check deadlines no later than when (monotonic ms);
 * they are checked at least once a second anyway. */
void worker_timer_hint(struct worker *w, int64_t when);

/* Worker-thread only: s gave up its turn with work left; the loop runs it
 * again (smtp_session_resume) after the other sessions' events. */
void worker_run_again(struct worker *w, struct smtp_session *s);

/* Any thread (the committer's done callback): delivers the result of a
 * commit to session s on worker w; s must not be freed before that. */
void worker_post_commit(struct worker *w, struct smtp_session *s,
    enum commit_status status);

/* Any thread (the committer's done callback): as worker_post_commit, for
 * a record of s's message staged with req (smtp_session_stage_done). */
void worker_post_stage(struct worker *w, struct smtp_session *s,
    struct commit_stage *req, enum commit_status status);
/* Any thread but w's own (the control socket's): has w's thread write one
 * line per session (smtp_session_describe, json as there) to f, and
 * waits for it; f belongs to w's thread meanwhile. Returns the number of
 * sessions: 0 once w's thread ended (worker_ended). Not after
 * worker_stop. */
size_t worker_describe(struct worker *w, FILE *f, int json, size_t first);

#endif
