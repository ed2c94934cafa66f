/*
 * auth_throttle: failed logins counted per client address (connlimit_key:
 * an IPv4 address or an IPv6 /64), shared by every worker. Each failure
 * makes the answer to it wait longer (delay, doubling, at most 16 times
 * delay); the limit-th failure within block time blocks the address for
 * block time: AUTH from it then gets 421. A login that succeeds forgets
 * the address's failures. Failures are forgotten block time after the last
 * one.
 *
 * Memory: at most AUTH_THROTTLE_MAX addresses are tracked; when the table
 * is full of recent failures a new address is not tracked (it gets the
 * first delay each time), and that is logged once a minute.
 * Threads: any thread (one mutex).
 */
#ifndef SERVER_AUTH_THROTTLE_H
#define SERVER_AUTH_THROTTLE_H

#include <stdint.h>
#include <sys/socket.h>

#define AUTH_THROTTLE_MAX 65536

struct auth_throttle_limits {
	int64_t delay_ms;	/* before the answer to the first failure */
	unsigned limit;		/* failures that block the address */
	int64_t block_ms;	/* how long a block lasts, and failures count */
};

/* How much longer (ms) sa is blocked at now; 0 when it is not. */
int64_t auth_throttle_blocked(const struct sockaddr *sa, int64_t now,
    const struct auth_throttle_limits *lim);

/* Counts a failed login from sa at now. Returns the delay (ms) before the
 * answer; *failures_r gets the failures counted so far, *blocked_r 1 when
 * this one blocked the address. */
int64_t auth_throttle_failed(const struct sockaddr *sa, int64_t now,
    const struct auth_throttle_limits *lim, unsigned *failures_r,
    int *blocked_r);

/* A successful login from sa: its failures are forgotten. */
void auth_throttle_succeeded(const struct sockaddr *sa);

/* Forgets everything (for tests). */
void auth_throttle_reset(void);

#endif
