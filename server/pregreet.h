/*
 * pregreet: postscreen's whitelist for the greeting test. A client that
 * waited for the (delayed) 220 greeting before talking is remembered for
 * a while, so that its next connections get their greeting without the
 * delay; a client that talks first is forgotten at once.
 *
 * Clients are keyed as every per-address limit is (connlimit_key): an
 * IPv4 address, or an IPv6 /64. The table has a fixed size; when it is full the least recently
 * seen client is forgotten (it is then delayed once more).
 *
 * Times are CLOCK_MONOTONIC milliseconds passed in. A restart forgets
 * everyone.
 *
 * Errors: out of memory aborts; a client of another family is never
 * remembered. Threads: any thread (session workers), except
 * pregreet_free.
 */
#ifndef SERVER_PREGREET_H
#define SERVER_PREGREET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct pregreet;

/* A whitelist of at most max_clients (>= 1) clients. */
struct pregreet *pregreet_new(size_t max_clients);
void pregreet_free(struct pregreet **pp);

/* sa passed the test at now_ms: remembered until now_ms + ttl_s seconds
 * (a later pass extends it). */
void pregreet_pass(struct pregreet *p, const struct sockaddr *sa, int64_t now_ms,
    unsigned ttl_s);

/* Did sa pass, and is that still remembered at now_ms? 1 or 0. An
 * expired entry is removed. */
int pregreet_known(struct pregreet *p, const struct sockaddr *sa, int64_t now_ms);

/* sa talked before the greeting: forget that it ever passed. */
void pregreet_forget(struct pregreet *p, const struct sockaddr *sa);

/* Clients remembered now (expired ones included until looked up). */
size_t pregreet_count(struct pregreet *p);

#endif
