/*
 * connlimit: counts of open sessions, in total and per client address,
 * for max_connections and max_connections_per_ip. A client address is an
 * IPv4 address, or the /64 of an IPv6 one (one host often has a whole
 * /64), as for every per-address limit (connlimit_key).
 *
 * Threads: any thread (one mutex). The acceptor acquires; whichever worker
 * ends the session releases.
 */
#ifndef SERVER_CONNLIMIT_H
#define SERVER_CONNLIMIT_H

#include <stdint.h>
#include <sys/socket.h>

/* The key of per-address limits: an IPv4 address (as v4-mapped IPv6, a
 * v4-mapped address counts as IPv4), or the first 64 bits of an IPv6 one,
 * the rest zero. Unknown families give all zeros. */
void connlimit_key(const struct sockaddr *sa, uint8_t key[16]);

/* A hash of a connlimit_key for the tables of per-address state: SipHash
 * under a random key made once per process, so that a client with many
 * addresses (IPv6 networks are plentiful) cannot aim them at one bucket. */
uint64_t connlimit_key_hash(const uint8_t key[16]);

/* Counts a new session from sa unless that passes a limit.
 * Returns 0 (counted), or -1 (over a limit; nothing counted). */
int connlimit_acquire(const struct sockaddr *sa, unsigned max_total,
    unsigned max_per_ip);

/* Uncounts a session counted by connlimit_acquire. */
void connlimit_release(const struct sockaddr *sa);

/* Sessions open now. */
unsigned connlimit_total(void);

#endif
