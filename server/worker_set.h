/*
 * worker_set: the session workers, a pool that a reload grows and shrinks
 * (session_workers) without dropping a session.
 *
 * The acceptor hands each connection to the next worker of the set that
 * takes connections, round robin. Growing starts workers that take the
 * next connections at once. Shrinking retires the workers past the new
 * size: under the set's lock they stop taking connections, then
 * worker_retire lets their sessions run to their natural end, with
 * everything in flight to them (commit results, staged records, off-loop
 * jobs); their threads end by themselves and worker_set_reap frees them.
 * Until then they still count: their sessions are described, drained at
 * a stop, and counted by worker_set_sessions.
 *
 * Errors: a worker that cannot start is logged; the set keeps the
 * workers it has.
 * Threads: worker_set_hand from the acceptor; worker_set_describe from the
 * control thread; everything else from the main thread. Two locks: one
 * guards the workers taking connections (held for one hand-over), the
 * other the list of every worker alive (held through a describe, so that
 * no worker is freed under it). Order: list, then hand-over, then a
 * worker's own.
 */
#ifndef SERVER_WORKER_SET_H
#define SERVER_WORKER_SET_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include "queue/committer.h"
#include "server/config.h"
#include "server/worker.h"

struct worker_set;

/* n (>= 1) workers committing through c, their sessions sharing pools
 * (copied); NULL (logged) when one cannot start. */
struct worker_set *worker_set_start(size_t n, struct committer *c,
    const struct worker_pools *pools);

/* Main thread: the workers taking connections now. */
size_t worker_set_size(const struct worker_set *ws);

/* Main thread: grows or shrinks the set to n (>= 1) workers taking
 * connections (see above). Returns 0, or -1 when a new worker could not
 * start (logged; the set is as large as it could be made). */
int worker_set_resize(struct worker_set *ws, size_t n);

/* Main thread: frees the retired workers whose thread ended; returns how
 * many retired ones are left. */
size_t worker_set_reap(struct worker_set *ws);

/* Acceptor: hands an accepted socket to the next worker (worker_add_conn:
 * it owns fd and its connlimit count from then on). */
void worker_set_hand(struct worker_set *ws, int fd, const struct sockaddr *peer,
    socklen_t peerlen, enum listen_kind kind);

/* Control thread: worker_describe over every worker alive; returns the
 * number of sessions written. */
size_t worker_set_describe(struct worker_set *ws, FILE *f, int json);

/* Main thread, at the stop: worker_drain, worker_sessions (summed) and
 * worker_halt over every worker alive. */
void worker_set_drain(struct worker_set *ws);
unsigned worker_set_sessions(struct worker_set *ws);
void worker_set_halt(struct worker_set *ws);

/* worker_stop of every worker (after the committer and the pools
 * stopped), and frees the set. */
void worker_set_stop(struct worker_set **wsp);

#endif
