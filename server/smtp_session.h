/*
 * smtp_session: one inbound SMTP session (RFC 5321 with the ESMTP
 * extensions of the README), a non-blocking state machine driven by its
 * worker's event loop. Its parts live in their own files (see
 * smtp_session_int.h): the life cycle and run loop, the commands, AUTH,
 * the connection and TLS (session_io.h), message assembly
 * (smtp_message.h); the parsers apart (smtp_parser.h, smtp_args.h).
 *
 * Threads: every function runs on the owning worker's thread.
 */
#ifndef SERVER_SMTP_SESSION_H
#define SERVER_SMTP_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "queue/committer.h"
#include "server/config.h"

struct worker;
struct smtp_session;

/* Starts a session on fd (non-blocking, owned from now on): sends the
 * greeting (or starts implicit TLS). Returns NULL when the session ended
 * at once (the fd is closed then). */
struct smtp_session *smtp_session_new(struct worker *w, int fd,
    const struct sockaddr *peer, socklen_t peerlen, enum listen_kind kind);

/* Socket events (EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP). Returns 0 to keep
 * the session, -1 when it is over (the caller frees it once
 * smtp_session_can_free). */
int smtp_session_event(struct smtp_session *s, uint32_t events);

/* Events of another socket of s (worker_watch_aux: a milter's). Returns
 * as smtp_session_event. */
int smtp_session_aux_event(struct smtp_session *s, uint32_t events);

/* Runs s again after it gave up its turn (worker_run_again). Returns as
 * smtp_session_event. */
int smtp_session_resume(struct smtp_session *s);

/* An off-loop job of a session is back on the worker (from the worker's
 * job sink). Finishes it: when its session still exists (*s_r is set)
 * the session goes on; returns -1 when *s_r is over (as
 * smtp_session_event), else 0. A job whose session ended is just freed. */
struct offloop_job;
int smtp_session_job_done(struct offloop_job *job, struct smtp_session **s_r);

/* The committer's answer for the message s handed over. Returns as
 * smtp_session_event. */
int smtp_session_commit_done(struct smtp_session *s, enum commit_status st);

/* A record of s's message is back from the committer (the request
 * smtp_session_stage_post made). Returns as smtp_session_event. */
struct commit_stage;
int smtp_session_stage_done(struct smtp_session *s, struct commit_stage *req,
    enum commit_status st);

/* Checks the session's timers against now (monotonic ms); on a timeout
 * replies 421 4.4.2. Returns as smtp_session_event. */
int smtp_session_tick(struct smtp_session *s, int64_t now);

/* Graceful stop requested: returns as smtp_session_event. */
int smtp_session_drain(struct smtp_session *s);

/* Ends the connection of s at once, without a reply; s stays until it
 * may be freed. A commit result or job that comes back later finishes
 * without running the session. */
void smtp_session_abort(struct smtp_session *s);

/* May s be freed now (no commit, no record in flight)? */
int smtp_session_can_free(const struct smtp_session *s);

/* Closes the connection (if still open) and frees s; sets *sp to NULL. */
void smtp_session_free(struct smtp_session **sp);

/* One line about s for `mailctl sessions` (smtp_describe.c): client,
 * listener, state, age, bytes received, messages queued, TLS, AUTH user,
 * HELO name; a JSON object (preceded by a comma unless first) with json
 * set, else a text line. Every text field is cut to printable ASCII
 * without quotes or backslashes, so neither form needs escaping.
 * Worker-thread only. */
void smtp_session_describe(const struct smtp_session *s, FILE *f, int json, int first);

/* The worker's index of s in its session table (worker-thread only). */
size_t *smtp_session_slot(struct smtp_session *s);

#endif
