/*
 * inflight: the global cap on message data held in memory by the
 * sessions (max_inflight_data). A message reserves its working buffers
 * here (server/smtp_message.h: a base when it starts, one buffer more at a
 * time while it sends records faster than they are committed) and gives
 * them back when they are freed; a reservation that would pass the cap is
 * refused: a new DATA or BDAT then gets 451 4.3.2, a message in progress
 * waits for its own buffers instead of taking more.
 *
 * Threads: any thread; one atomic counter for the process.
 */
#ifndef SERVER_INFLIGHT_H
#define SERVER_INFLIGHT_H

#include <stddef.h>

/* Takes n bytes if the total stays within cap. Returns 1 (taken) or 0. */
int inflight_reserve(size_t n, size_t cap);

/* Gives back n bytes taken before. */
void inflight_release(size_t n);

/* Bytes reserved now (metrics, tests). */
size_t inflight_bytes(void);

#endif
