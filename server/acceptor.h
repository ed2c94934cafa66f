/*
 * acceptor: the listening sockets and the one thread that accepts on them.
 *
 * Each accepted connection is checked against max_connections and
 * max_connections_per_ip (over a limit: `421 4.7.0` and close) and handed
 * to the next session worker, round robin (worker_set_hand: the set may
 * grow and shrink meanwhile). Out of file descriptors, the
 * acceptor refuses the next client with a reserve descriptor (`421 4.3.2`),
 * pauses accepting (50 ms, doubling to 1 s) and logs at most one line a
 * second.
 *
 * Threads: listener_set_* and acceptor_* are called by the main thread;
 * the acceptor thread only reads the set it was given.
 */
#ifndef SERVER_ACCEPTOR_H
#define SERVER_ACCEPTOR_H

#include <stddef.h>

#include "server/config.h"

struct worker_set;
struct acceptor;

struct listener {
	int fd;
	struct listen_spec spec;
};

struct listener_set {
	struct listener *v;
	size_t n;
};

/*
 * Binds the listeners cfg asks for into *set_r, reusing the sockets of
 * old (may be NULL) whose address is unchanged. Returns 0, or -1 with err
 * filled (nothing newly bound stays open; old is untouched).
 */
int listener_set_open(const struct config *cfg, const struct listener_set *old,
    struct listener_set *set_r, char *err, size_t errsize);

/* Closes the sockets of old that set does not reuse, and frees old. */
void listener_set_retire(struct listener_set *old, const struct listener_set *set);

/* Starts accepting on set (the acceptor keeps its own copy), handing the
 * connections to workers (which must outlive the acceptor). */
struct acceptor *acceptor_start(const struct listener_set *set,
    struct worker_set *workers);

/* Switches to a new set of listeners (SIGHUP); returns once the acceptor
 * no longer uses the old one. */
void acceptor_update(struct acceptor *a, const struct listener_set *set);

/* Stops accepting and joins the thread; the listeners stay open. */
void acceptor_stop(struct acceptor **ap);

#endif
