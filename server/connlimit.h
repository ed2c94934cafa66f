/*
 * connlimit: counts of open sessions, in total and per client address,
 * for max_connections and max_connections_per_ip.
 *
 * Threads: any thread (one mutex). The acceptor acquires; whichever worker
 * ends the session releases.
 */
#ifndef SERVER_CONNLIMIT_H
#define SERVER_CONNLIMIT_H

#include <sys/socket.h>

/* Counts a new session from sa unless that passes a limit.
 * Returns 0 (counted), or -1 (over a limit; nothing counted). */
int connlimit_acquire(const struct sockaddr *sa, unsigned max_total,
    unsigned max_per_ip);

/* Uncounts a session counted by connlimit_acquire. */
void connlimit_release(const struct sockaddr *sa);

/* Sessions open now. */
unsigned connlimit_total(void);

#endif
